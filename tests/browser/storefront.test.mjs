// Real-browser end-to-end test of the storefront (web/dist) against the local shop
// (python -m devstack.shop): two storefront tabs follow live stock over MQTT while a third tab
// pays on the fake Stripe's hosted payment page; the last unit sells the product out and its
// payment link goes dead; the sold-out card's "Notify me" form (POST {checkoutUrl}/waitlist on the
// real checkout function) is used with the keyboard only. See README.md beside this file.
//
// The shop, the browser and the storefront helpers are in shop.mjs (shared with checkout.test.mjs).
//
// Environment: CHROMIUM (default /usr/bin/chromium), SHOP_PYTHON (default <repo>/.venv/bin/python).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  ARTIFACTS,
  CHROMIUM,
  ROOT,
  SHOP_START_TIMEOUT_MS,
  ShopProcess,
  UI_TIMEOUT_MS,
  assertShopStoppedCleanly,
  cardState,
  closeBrowser,
  countOf,
  expectLiveCount,
  installEmergencyStop,
  launchBrowser,
  sel,
  waitUntil,
} from './shop.mjs';

const DOCS_SCREENSHOT = path.join(ROOT, 'docs', 'storefront.png');
const FAILURE_SCREENSHOT = path.join(ARTIFACTS, 'storefront-failure.png');
const FAILURE_LOGS = path.join(ARTIFACTS, 'browser-test-logs');

const PAYMENT_TIMEOUT_MS = 60_000; // POST /pay waits for the Lambda invocation
const WAITLIST_TIMEOUT_MS = 30_000; // POST /waitlist: a Lambda invocation (a cold start included)
const NOTIFY_LABEL = 'E-mail me when it is back';

// ------------------------------------------------------------------------------------ page helpers

/** Opens the payment link in `page`, pays, and expects the order to be confirmed. */
async function buy(page, href, what) {
  const res = await page.goto(href);
  assert.equal(res?.status(), 200, `the payment page of ${what} (${href}) should open with 200`);
  const pay = page.locator('[data-testid="pay-button"]');
  await pay.waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
  await pay.click();
  const outcome = page.locator(
    '[data-testid="order-ok"], [data-testid="order-refunded"], [data-testid="order-pending"], [data-testid="order-no-sink"]');
  await outcome.first().waitFor({ timeout: PAYMENT_TIMEOUT_MS });
  const testid = await outcome.first().getAttribute('data-testid');
  assert.equal(testid, 'order-ok',
    `paying for ${what} should confirm the order, got ${testid}: ${await outcome.first().textContent()}`);
  return outcome.first().getAttribute('data-order-id');
}

/** Presses Tab (at most `max` times) until the focused element matches `selector`; returns the path. */
async function tabUntil(page, selector, max = 80) {
  const path = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const [hit, what] = await page.evaluate((s) => {
      const el = document.activeElement;
      const what = el ? `${el.tagName.toLowerCase()}${el.dataset?.testid ? `[${el.dataset.testid}]` : ''}` : 'none';
      return [Boolean(el?.matches(s)), what];
    }, selector);
    path.push(what);
    if (hit) return { reached: true, path };
  }
  return { reached: false, path };
}

/** The notify form of a card, for failure messages. */
async function notifyState(page, pid) {
  return page.evaluate((s) => {
    const form = document.querySelector(`${s} [data-testid="notify-form"]`);
    if (!form) return 'no notify form';
    const input = form.querySelector('[data-testid="notify-email"]');
    return JSON.stringify({
      state: form.dataset.state,
      value: input?.value,
      ariaInvalid: input?.getAttribute('aria-invalid'),
      describedBy: input?.getAttribute('aria-describedby'),
      status: form.querySelector('[data-testid="notify-status"]')?.textContent,
      button: form.querySelector('[data-testid="notify-submit"]')?.disabled ? 'disabled' : 'enabled',
      focused: document.activeElement?.dataset?.testid ?? document.activeElement?.tagName,
    });
  }, sel.card(pid));
}

// ------------------------------------------------------------------------------------ the test

describe('storefront in a real browser', { timeout: 300_000 }, () => {
  const shop = new ShopProcess();
  let userDataDir;
  let context;
  let tabs = []; // the two storefront tabs
  let payPage;
  const pageErrors = [];
  const navigations = []; // main-frame navigations of the storefront tabs after the no-reload mark
  let failedStep = null;
  let stopped = null;
  let ready;

  // State carried between steps.
  let products; // product id -> count at the start (both tabs agree)
  let first; // {pid, n, href}: the product bought once
  let soldOut; // {pid, href}: the product sold out

  function step(name, fn) {
    it(name, async (t) => {
      if (failedStep) {
        t.skip(`an earlier step failed: ${failedStep}`);
        return;
      }
      try {
        await fn(t);
      } catch (e) {
        failedStep = name;
        if (tabs[0] && !tabs[0].isClosed()) {
          mkdirSync(ARTIFACTS, { recursive: true });
          await tabs[0].screenshot({ path: FAILURE_SCREENSHOT, fullPage: true }).catch(() => {});
        }
        throw e;
      }
    });
  }

  // Whatever happens, no shop or browser is left behind (also on Ctrl-C / SIGTERM of the runner).
  installEmergencyStop(shop);

  before(async () => {
    rmSync(FAILURE_LOGS, { recursive: true, force: true }); // from an earlier failed run
    rmSync(FAILURE_SCREENSHOT, { force: true });
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup --browser (or set CHROMIUM)`);
    // The checkout function serves POST /waitlist; with it the shop's config has checkoutUrl.
    ready = await shop.start([
      [path.join(ROOT, 'target', 'debug', 'checkout'), 'the checkout binary', 'cargo build --workspace'],
    ]);
    ({ context, userDataDir } = await launchBrowser());
  }, { timeout: SHOP_START_TIMEOUT_MS + 90_000 });

  after(async () => {
    if (context) await context.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    if (failedStep) {
      shop.saveLogs(FAILURE_LOGS);
      console.error(`storefront test failed at "${failedStep}"; stack logs in ${FAILURE_LOGS}, ` +
        `screenshot ${FAILURE_SCREENSHOT}\n${shop.diagnostics()}`);
    }
    stopped ??= await shop.stop();
    shop.cleanup();
  });

  step('two storefront tabs load the catalog and connect to the broker', async () => {
    for (let i = 0; i < 2; i++) {
      const page = await context.newPage();
      page.on('pageerror', (e) => pageErrors.push(`tab ${i + 1}: ${e.message}`));
      const res = await page.goto(ready.url);
      assert.equal(res?.status(), 200, `tab ${i + 1}: the storefront ${ready.url} should load`);
      tabs.push(page);
    }
    for (const [i, page] of tabs.entries()) {
      await page.locator('body[data-ready="true"]').waitFor({ state: 'attached' }).catch(async () => {
        assert.fail(`tab ${i + 1}: the catalog was not rendered (body[data-ready="true"]) within ` +
          `${UI_TIMEOUT_MS / 1000} s; error: ${await page.locator('[data-testid="error"]').textContent().catch(() => 'none')}`);
      });
      await page.locator('[data-testid="connection"][data-state="connected"]').waitFor().catch(async () => {
        assert.fail(`tab ${i + 1}: the connection indicator should reach "connected", it is ` +
          `${await page.locator('[data-testid="connection"]').getAttribute('data-state')}`);
      });
    }
    for (const [i, page] of tabs.entries()) {
      await page.evaluate(() => { window.__noReload = true; });
      page.on('framenavigated', (frame) => {
        if (frame === page.mainFrame()) navigations.push(`tab ${i + 1} -> ${frame.url()}`);
      });
    }
  });

  step('both tabs show every product live, with the seeded stock', async () => {
    const seeded = ready.products;
    const ids = Object.keys(seeded);
    assert.ok(ids.length >= 2, `the shop should seed at least two products, it seeded ${ids.length}`);
    for (const [i, page] of tabs.entries()) {
      const shown = await page.locator('[data-product-id]').evaluateAll((cards) => cards.map((c) => c.dataset.productId));
      assert.deepEqual([...shown].sort(), [...ids].sort(), `tab ${i + 1}: one card per seeded product`);
      for (const pid of ids) {
        // Retained messages make every count live shortly after connecting.
        await expectLiveCount(page, `tab ${i + 1}`, pid, seeded[pid].stock, UI_TIMEOUT_MS);
      }
    }
    products = Object.fromEntries(ids.map((pid) => [pid, seeded[pid].stock]));
  });

  step('a paid order on the hosted payment page moves the count in both tabs, without a reload', async () => {
    const pid = Object.keys(products).find((id) => products[id] >= 2);
    assert.ok(pid, `a product with stock >= 2 is needed: ${JSON.stringify(products)}`);
    const n = Number(await countOf(tabs[0], pid));
    assert.equal(Number(await countOf(tabs[1], pid)), n, 'both tabs should show the same count before the order');
    const href = await tabs[0].locator(`${sel.card(pid)} [data-testid="buy-link"]`).getAttribute('href');
    assert.ok(href, `the buy link of ${pid} should have an href while it is in stock`);
    assert.equal(href, ready.products[pid].link_url, 'the buy link should be the product\'s payment link');
    first = { pid, n, href };

    payPage = await context.newPage();
    await buy(payPage, href, `${ready.products[pid].name} (${pid})`);
    for (const [i, page] of tabs.entries()) await expectLiveCount(page, `tab ${i + 1}`, pid, n - 1);
    for (const [i, page] of tabs.entries()) {
      assert.equal(await page.evaluate(() => window.__noReload), true,
        `tab ${i + 1}: window.__noReload should survive: the update must come without reloading the page`);
      assert.equal(await page.locator(`${sel.card(pid)} [data-testid="buy-link"]`).getAttribute('href'), href,
        `tab ${i + 1}: ${pid} still has stock, its buy link should stay`);
    }
    assert.deepEqual(navigations, [], 'the storefront tabs should not navigate');
  });

  step('buying the last unit sells the product out in both tabs and switches its link off', async () => {
    // The product with the least stock (1 in the demo catalog) other than the one bought above.
    const [pid, n] = Object.entries(products)
      .filter(([id]) => id !== first.pid)
      .sort((a, b) => a[1] - b[1])[0];
    assert.ok(n >= 1, `the product to sell out should be in stock: ${pid} has ${n}`);
    const href = await tabs[0].locator(`${sel.card(pid)} [data-testid="buy-link"]`).getAttribute('href');
    assert.ok(href, `the buy link of ${pid} should have an href while it is in stock`);
    soldOut = { pid, href };

    for (let left = n; left > 0; left--) {
      await buy(payPage, href, `${ready.products[pid].name} (${pid}), ${left} left`);
      for (const [i, page] of tabs.entries()) await expectLiveCount(page, `tab ${i + 1}`, pid, left - 1);
    }

    for (const [i, page] of tabs.entries()) {
      const card = page.locator(sel.card(pid));
      const state = await cardState(page, pid);
      assert.equal(await card.getAttribute('data-sold-out'), 'true', `tab ${i + 1}: card should be data-sold-out="true": ${state}`);
      assert.equal(await card.locator('[data-testid="sold-out"]').count(), 1,
        `tab ${i + 1}: the "Sold out" badge should be shown: ${state}`);
      await assert.doesNotReject(card.locator('[data-testid="sold-out"]').waitFor({ state: 'visible', timeout: 1000 }),
        `tab ${i + 1}: the "Sold out" badge should be visible`);
      const link = card.locator('[data-testid="buy-link"]');
      assert.equal(await link.getAttribute('href'), null, `tab ${i + 1}: a sold-out product's buy link should have no href: ${state}`);
      assert.equal(await link.getAttribute('aria-disabled'), 'true', `tab ${i + 1}: the buy link should be aria-disabled="true": ${state}`);
      const qr = card.locator('[data-testid="qr"]');
      assert.equal(await qr.evaluate((e) => e.hidden), true, `tab ${i + 1}: the QR code should be hidden: ${state}`);
      assert.equal(await qr.isVisible(), false, `tab ${i + 1}: the QR code should not be visible`);
      assert.equal(await card.getAttribute('data-buyable'), 'false', `tab ${i + 1}: card should be data-buyable="false"`);
      // The other products are untouched.
      await expectLiveCount(page, `tab ${i + 1}`, first.pid, first.n - 1, 1000);
      assert.equal(await page.evaluate(() => window.__noReload), true, `tab ${i + 1}: no reload`);
    }
    assert.deepEqual(navigations, [], 'the storefront tabs should not navigate');

    const res = await payPage.goto(href);
    assert.equal(res?.status(), 410, `the sold-out product's payment link ${href} should answer 410 Gone`);
    await assert.doesNotReject(payPage.locator('[data-testid="link-inactive"]').waitFor({ state: 'visible', timeout: 5000 }),
      'the payment link should show the inactive page ([data-testid="link-inactive"])');
    assert.equal(await payPage.locator('[data-testid="pay-button"]').count(), 0, 'an inactive link offers no Pay button');
  });

  step('the sold-out card offers "Notify me": reached, filled in and sent with the keyboard only', async () => {
    const { pid } = soldOut;
    const name = ready.products[pid].name;
    const config = await (await fetch(new URL('config.json', ready.url), { cache: 'no-store' })).json();
    assert.ok(config.checkoutUrl, `config.json should have checkoutUrl (is target/debug/checkout built?): ${JSON.stringify(config)}`);
    for (const [i, page] of tabs.entries()) {
      assert.equal(await page.locator(`${sel.card(pid)} [data-testid="notify-form"]`).count(), 1,
        `tab ${i + 1}: the sold-out card ${pid} should have one notify form: ${await cardState(page, pid)}`);
      assert.equal(await page.locator(`${sel.card(first.pid)} [data-testid="notify-form"]`).count(), 0,
        `tab ${i + 1}: ${first.pid} is in stock and should have no notify form`);
    }

    const page = tabs[0];
    await page.bringToFront();
    const card = page.locator(sel.card(pid));
    const input = card.locator('[data-testid="notify-email"]');
    const status = card.locator('[data-testid="notify-status"]');
    // The accessible names: the label is tied to the input, the product's name tells cards apart.
    assert.equal(await card.getByLabel(NOTIFY_LABEL).getAttribute('data-testid'), 'notify-email',
      `the e-mail input should be labelled "${NOTIFY_LABEL}"`);
    const tree = await card.locator('[data-testid="notify-form"]').ariaSnapshot();
    assert.ok(tree.includes(`textbox "${NOTIFY_LABEL} (${name})"`), `accessibility tree of the form:\n${tree}`);
    assert.ok(tree.includes(`button "Notify me about ${name}"`), `accessibility tree of the form:\n${tree}`);
    assert.equal(await status.getAttribute('role'), 'status', 'the notify status should be role=status');
    assert.equal(await status.getAttribute('aria-live'), 'polite', 'the notify status should be aria-live=polite');
    const isWaitlistPost = (r) => r.method() === 'POST' && new URL(r.url()).pathname.endsWith('/waitlist');
    const posts = [];
    const failed = [];
    page.on('request', (r) => { if (isWaitlistPost(r)) posts.push(r); });
    page.on('requestfailed', (r) => { if (isWaitlistPost(r)) failed.push(`${r.url()}: ${r.failure()?.errorText}`); });

    // Keyboard only, from the top of the page.
    await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
    const tabbed = await tabUntil(page, `${sel.card(pid)} [data-testid="notify-email"]`);
    assert.ok(tabbed.reached, `Tab should reach the notify e-mail input of ${pid}; focus went ${tabbed.path.join(' → ')}`);

    // An address the input itself finds invalid: the page's own check (the form is novalidate),
    // nothing is sent.
    await page.keyboard.type('not-an-address');
    await page.keyboard.press('Enter');
    await card.locator('[data-testid="notify-form"][data-state="error"]').waitFor({ timeout: 5000 }).catch(async () => {
      assert.fail(`Enter on an invalid address should show an error: ${await notifyState(page, pid)}`);
    });
    const invalid = await input.evaluate((e) => ({
      valid: e.validity.valid, ariaInvalid: e.getAttribute('aria-invalid'), describedBy: e.getAttribute('aria-describedby'),
      focused: document.activeElement === e, value: e.value,
    }));
    const statusId = await status.getAttribute('id');
    assert.deepEqual(invalid, { valid: false, ariaInvalid: 'true', describedBy: statusId, focused: true, value: 'not-an-address' },
      `an invalid address: input marked, described by the status, focused, kept: ${await notifyState(page, pid)}`);
    assert.match(await status.textContent(), /valid e-mail address/i, 'the status should say what is wrong');
    assert.equal(posts.length, 0, 'an invalid address must not be sent');

    // A valid address, Enter: the real checkout function answers 202 (double opt-in).
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.type('buyer@example.com');
    const answered = page.waitForResponse((r) => isWaitlistPost(r.request()), { timeout: WAITLIST_TIMEOUT_MS }).catch(() => null);
    await page.keyboard.press('Enter');
    // The request is sent after the form left its earlier "error" state: then wait for the answer.
    assert.ok(await waitUntil(() => posts.length > 0, 5000), `Enter should send the address: ${await notifyState(page, pid)}`);
    const form = card.locator('[data-testid="notify-form"]');
    await form.and(page.locator('[data-state="requested"], [data-state="error"]')).waitFor({ timeout: WAITLIST_TIMEOUT_MS })
      .catch(async () => assert.fail(`the form should show an answer within ${WAITLIST_TIMEOUT_MS / 1000} s: ${await notifyState(page, pid)}`));
    const res = await Promise.race([answered, new Promise((r) => setTimeout(r, 2000, null))]);
    assert.ok(res, `POST {checkoutUrl}/waitlist got no HTTP answer (failed: ${failed.join('; ') || 'none'}; a refused CORS ` +
      `preflight? the checkout function must answer OPTIONS and POST /waitlist): ${await notifyState(page, pid)}`);
    assert.equal(res.status(), 202,
      `POST ${res.url()} should answer 202 (does the checkout function serve /waitlist?): ${await res.text().catch(() => '?')}`);
    assert.deepEqual(JSON.parse(res.request().postData() ?? 'null'),
      { store_id: ready.store, product_id: pid, email: 'buyer@example.com' }, 'the waitlist request body');
    assert.equal(res.request().headers()['content-type'], 'application/json', 'the waitlist request is JSON');
    assert.equal(await form.getAttribute('data-state'), 'requested', `after 202: ${await notifyState(page, pid)}`);
    assert.match(await status.textContent(), /check your inbox/i, 'the status should say to check the inbox');
    assert.equal(await input.getAttribute('aria-invalid'), null, 'the input is no longer marked invalid');
    assert.equal(await input.inputValue(), 'buyer@example.com', 'the typed address is kept');
    assert.equal(await input.evaluate((e) => document.activeElement === e), true, 'focus stays on the input');
    assert.equal(posts.length, 1, 'one request for one submit');

    // The other tab has its own, untouched form; neither tab navigated.
    const other = await notifyState(tabs[1], pid);
    assert.match(other, /"state":"idle".*"value":""/, `tab 2's form should be untouched: ${other}`);
    assert.deepEqual(navigations, [], 'the storefront tabs should not navigate');
  });

  step('screenshots', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const page = tabs[0];
    await page.bringToFront(); // the payment tab was in front
    // Product images are loading="lazy": bring each into view so that it loads, then go back up.
    const images = page.locator('[data-product-id] img');
    for (let i = 0; i < await images.count(); i++) await images.nth(i).scrollIntoViewIfNeeded();
    await page.waitForFunction(() => [...document.images].every((img) => img.complete && img.naturalWidth > 0),
      null, { timeout: 5000 }).catch(() => {}); // a missing image must not fail the test, only show
    await page.evaluate(async () => { window.scrollTo(0, 0); await document.fonts.ready; });
    await page.screenshot({ path: path.join(ARTIFACTS, 'storefront.png'), fullPage: true });
    if (!existsSync(DOCS_SCREENSHOT)) {
      mkdirSync(path.dirname(DOCS_SCREENSHOT), { recursive: true });
      await page.screenshot({ path: DOCS_SCREENSHOT, fullPage: true });
    }
    assert.ok(existsSync(path.join(ARTIFACTS, 'storefront.png')), 'artifacts/storefront.png should be written');
  });

  step('a phone-sized screen: no sideways scrolling, and Buy is reachable from the keyboard', async () => {
    const page = tabs[1];
    await page.bringToFront();
    await page.setViewportSize({ width: 375, height: 812 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `at 375 px the page scrolls sideways by ${overflow} px`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'storefront-phone.png'), fullPage: true });
    // Keyboard: tabbing from the top reaches a Buy link with a visible focus indicator.
    await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.getAttribute('data-testid') === 'buy-link');
    }
    assert.ok(reached, 'Tab should reach a Buy link');
    const outline = await page.evaluate(() => {
      const s = getComputedStyle(document.activeElement);
      return `${s.outlineStyle} ${s.outlineWidth} ${s.boxShadow}`;
    });
    assert.ok(!/^none 0px none$/.test(outline), `the focused Buy link needs a visible focus style (got ${outline})`);
  });

  step('the storefront threw no uncaught errors', () => {
    assert.deepEqual(pageErrors, [], 'uncaught errors in the storefront tabs');
  });

  it('the browser and the shop stop, leaving no process behind', async () => {
    if (context) {
      const closing = context;
      context = null;
      await closeBrowser(closing, userDataDir);
    }
    stopped = await shop.stop();
    assertShopStoppedCleanly(shop, stopped);
  });
});
