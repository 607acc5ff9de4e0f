// Real-browser end-to-end test of the storefront (web/dist) against the local shop
// (python -m devstack.shop): two storefront tabs follow live stock over MQTT while a third tab
// pays on the fake Stripe's hosted payment page; the last unit sells the product out and its
// payment link goes dead. See README.md beside this file.
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
} from './shop.mjs';

const DOCS_SCREENSHOT = path.join(ROOT, 'docs', 'storefront.png');
const FAILURE_SCREENSHOT = path.join(ARTIFACTS, 'storefront-failure.png');
const FAILURE_LOGS = path.join(ARTIFACTS, 'browser-test-logs');

const PAYMENT_TIMEOUT_MS = 60_000; // POST /pay waits for the Lambda invocation

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
    ready = await shop.start();
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
