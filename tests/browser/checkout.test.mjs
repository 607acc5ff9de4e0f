// Real-browser end-to-end test of the checkout page (web/dist/checkout.html) against the local
// shop (python -m devstack.shop, which runs the checkout API, the sweeper and the fake Stripe):
// a storefront tab follows live stock while a phone-sized tab reserves stock through the
// checkout API and pays (or is declined) with the fake Stripe's test cards. See README.md beside
// this file; the shop, the browser and the storefront helpers are in shop.mjs.
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
  expectLiveCount,
  installEmergencyStop,
  launchBrowser,
  sel,
  waitUntil,
} from './shop.mjs';

const FAILURE_SCREENSHOT = path.join(ARTIFACTS, 'checkout-failure.png');
const FAILURE_STOREFRONT_SCREENSHOT = path.join(ARTIFACTS, 'checkout-failure-storefront.png');
const FAILURE_LOGS = path.join(ARTIFACTS, 'checkout-test-logs');

const HOLD_TIMEOUT_MS = 30_000; // POST /checkout (retried by the page while the API is busy)
const PAYMENT_TIMEOUT_MS = 60_000; // confirm at the fake Stripe -> the Lambda -> polling
const STOCK_TIMEOUT_MS = 10_000; // the shop's catalog reflects a change
const PHONE = { width: 375, height: 812 };
const EMAIL = 'buyer@example.com';
// The local shop runs the checkout with the template's caps: while a product also sells through
// a Payment Link, holds may take at most half of it (rounded down), the rest stays for link
// buyers (CHECKOUT_HOLD_SHARE_PERCENT, docs/checkout.md "Caps").
const HOLD_SHARE_PERCENT = 50;
const holdable = (stock) => Math.floor((stock * HOLD_SHARE_PERCENT) / 100);

const ck = (testid) => `[data-testid="${testid}"]`;

// ------------------------------------------------------------------------------------ helpers

/** What the shop's catalog endpoint (the storefront's own source) says about a product. */
async function shopStock(ready, pid) {
  const url = new URL(`catalog/${encodeURIComponent(ready.store)}.json`, ready.url);
  const res = await fetch(url, { cache: 'no-store' });
  assert.equal(res.status, 200, `the shop's catalog ${url} should answer 200`);
  const doc = await res.json();
  const p = doc.products.find((x) => x.product_id === pid);
  assert.ok(p, `product ${pid} should be in the shop's catalog`);
  return p;
}

/** Waits (bounded) until the shop's catalog lists `expected` available for the product. */
async function expectShopStock(ready, pid, expected, what) {
  let last;
  const ok = await waitUntil(async () => {
    last = await shopStock(ready, pid);
    return last.available === expected;
  }, STOCK_TIMEOUT_MS, 250);
  assert.ok(ok, `${what}: the shop's catalog should list ${expected} available for ${pid} within ` +
    `${STOCK_TIMEOUT_MS / 1000} s, it lists ${JSON.stringify(last)}`);
}

/** The checkout page's visible state, for failure messages. */
async function checkoutState(page) {
  return page.evaluate(() => JSON.stringify({
    url: location.href,
    step: document.body.dataset.step,
    status: document.querySelector('[data-testid="checkout-status"]')?.textContent,
    alert: document.querySelector('[data-testid="checkout-alert"]')?.textContent,
    result: document.querySelector('[data-testid="payment-result"]')?.textContent,
    outcome: document.querySelector('[data-testid="payment-result"]')?.dataset.outcome,
    error: document.querySelector('[data-testid="error"]')?.textContent,
  })).catch((e) => `unavailable (${e.message})`);
}

/** Waits for `<body data-step=…>`; fails with what the page shows. */
async function expectStep(page, step, timeout, what) {
  try {
    await page.locator(`body[data-step="${step}"]`).waitFor({ state: 'attached', timeout });
  } catch (e) {
    if (e.name !== 'TimeoutError') throw e;
    assert.fail(`${what}: the checkout page should reach data-step="${step}" within ${timeout / 1000} s; ` +
      `it shows ${await checkoutState(page)}`);
  }
}

async function sidewaysOverflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
}

async function activeTestId(page) {
  return page.evaluate(() => document.activeElement?.getAttribute('data-testid') ?? document.activeElement?.tagName);
}

/** Seconds in "Your items are held for M:SS" (or H:MM:SS), else null. */
function heldSeconds(text) {
  const m = /^Your items are held for (?:(\d+):)?(\d+):(\d{2})$/.exec(text?.trim() ?? '');
  return m ? Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) : null;
}

/** The product's card in the storefront tab shows it sold out: badge, no links. */
// ------------------------------------------------------------------------------------ the test

describe('checkout page in a real browser', { timeout: 300_000 }, () => {
  const shop = new ShopProcess();
  let userDataDir;
  let context;
  let store; // the storefront tab (desktop width), never reloaded
  let buyer; // the checkout tab (phone width)
  const pageErrors = [];
  const requests = []; // every URL the browser asked for (HTTP and WebSocket)
  const navigations = []; // main-frame navigations of the storefront tab after the no-reload mark
  let failedStep = null;
  let stopped = null;
  let ready;
  let config;

  // State carried between steps.
  let bought; // {pid, name, n, amount}: the product whose whole stock is held and paid
  let declined; // {pid, name, n}: the product held once and declined

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
        mkdirSync(ARTIFACTS, { recursive: true });
        if (buyer && !buyer.isClosed()) await buyer.screenshot({ path: FAILURE_SCREENSHOT, fullPage: true }).catch(() => {});
        if (store && !store.isClosed()) await store.screenshot({ path: FAILURE_STOREFRONT_SCREENSHOT, fullPage: true }).catch(() => {});
        throw e;
      }
    });
  }

  installEmergencyStop(shop);

  before(async () => {
    rmSync(FAILURE_LOGS, { recursive: true, force: true }); // from an earlier failed run
    rmSync(FAILURE_SCREENSHOT, { force: true });
    rmSync(FAILURE_STOREFRONT_SCREENSHOT, { force: true });
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup --browser (or set CHROMIUM)`);
    ready = await shop.start([
      [path.join(ROOT, 'target', 'debug', 'checkout'), 'the checkout binary', 'cargo build --workspace'],
      [path.join(ROOT, 'target', 'debug', 'sweeper'), 'the sweeper binary', 'cargo build --workspace'],
      [path.join(ROOT, 'web', 'dist', 'checkout.html'), 'the built checkout page', '(cd web && npm ci && npm run build)'],
    ]);
    ({ context, userDataDir } = await launchBrowser({ locale: 'en-US' }));
    context.on('request', (r) => requests.push(r.url()));
    context.on('page', (page) => {
      page.on('websocket', (ws) => requests.push(ws.url()));
      page.on('pageerror', (e) => pageErrors.push(`${page === buyer ? 'checkout' : 'storefront'} tab: ${e.message}`));
    });
  }, { timeout: SHOP_START_TIMEOUT_MS + 90_000 });

  after(async () => {
    if (context) await context.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    if (failedStep) {
      shop.saveLogs(FAILURE_LOGS);
      console.error(`checkout test failed at "${failedStep}"; stack logs in ${FAILURE_LOGS}, ` +
        `screenshots ${FAILURE_SCREENSHOT}, ${FAILURE_STOREFRONT_SCREENSHOT}\n${shop.diagnostics()}`);
    }
    stopped ??= await shop.stop();
    shop.cleanup();
  });

  step('the shop serves the checkout: config.json has checkoutUrl, the publishable key and the fake Stripe', async () => {
    const res = await fetch(new URL('config.json', ready.url), { cache: 'no-store' });
    assert.equal(res.status, 200, 'the shop should serve config.json');
    config = await res.json();
    assert.ok(config.checkoutUrl, `config.json should have checkoutUrl (is target/debug/checkout built?): ${JSON.stringify(config)}`);
    assert.match(config.checkoutUrl, /^http:\/\/127\.0\.0\.1:\d+/, 'the checkout API should be on loopback');
    assert.match(config.stripePublishableKey ?? '', /^pk_test_/, 'config.json should have a test publishable key');
    assert.match(config.stripeApiBase ?? '', /^http:\/\/127\.0\.0\.1:\d+/, 'stripeApiBase should be the fake Stripe on loopback');
  });

  step('the storefront tab loads, connects and shows every product live with a "Buy with reserved stock" link', async () => {
    store = await context.newPage();
    const res = await store.goto(ready.url);
    assert.equal(res?.status(), 200, `the storefront ${ready.url} should load`);
    await store.locator('body[data-ready="true"]').waitFor({ state: 'attached' }).catch(async () => {
      assert.fail(`the catalog was not rendered (body[data-ready="true"]) within ${UI_TIMEOUT_MS / 1000} s; ` +
        `error: ${await store.locator('[data-testid="error"]').textContent().catch(() => 'none')}`);
    });
    await store.locator('[data-testid="connection"][data-state="connected"]').waitFor().catch(async () => {
      assert.fail('the connection indicator should reach "connected", it is ' +
        `${await store.locator('[data-testid="connection"]').getAttribute('data-state')}`);
    });
    for (const [pid, p] of Object.entries(ready.products)) {
      await expectLiveCount(store, 'storefront', pid, p.stock, UI_TIMEOUT_MS);
      assert.equal(await store.locator(`${sel.card(pid)} [data-testid="reserve-link"]`).count(), 1,
        `storefront: ${pid} should have a "Buy with reserved stock" link (the shop has a checkout API)`);
    }
    await store.evaluate(() => { window.__noReload = true; });
    store.on('framenavigated', (frame) => {
      if (frame === store.mainFrame()) navigations.push(frame.url());
    });
  });

  step('"Buy with reserved stock" opens the checkout page for the product, at phone width', async () => {
    // The product with the most stock: asking for one more must still be a choice (1..10).
    const [pid, p] = Object.entries(ready.products).sort((a, b) => b[1].stock - a[1].stock)[0];
    assert.ok(p.stock >= 2 && p.stock < 10, `a product with 2..9 in stock is needed: ${JSON.stringify(ready.products)}`);
    bought = { pid, name: p.name, n: p.stock, h: holdable(p.stock), amount: p.amount };

    buyer = await context.newPage();
    await buyer.setViewportSize(PHONE);
    const res = await buyer.goto(ready.url);
    assert.equal(res?.status(), 200, 'the storefront should load in the phone-sized tab');
    await buyer.locator('body[data-ready="true"]').waitFor({ state: 'attached' });
    const reserve = buyer.locator(`${sel.card(pid)} [data-testid="reserve-link"]`);
    const href = await reserve.getAttribute('href');
    assert.ok(href, `the "Buy with reserved stock" link of ${pid} should have an href while it is in stock`);
    await Promise.all([buyer.waitForURL(/checkout/), reserve.click()]);
    const url = new URL(buyer.url());
    assert.equal(url.origin, new URL(ready.url).origin, 'the checkout page is on the shop\'s origin');
    assert.equal(url.searchParams.get('product'), pid, `the checkout page should be for ${pid}: ${buyer.url()}`);
    assert.equal(url.searchParams.get('store'), ready.store, `the checkout page should name the store: ${buyer.url()}`);
    await expectStep(buyer, 'form', UI_TIMEOUT_MS, 'the checkout page loads');
    assert.equal((await buyer.locator(ck('product-name')).textContent())?.trim(), p.name, 'the product\'s name is shown');
    const options = await buyer.locator(`${ck('quantity')} option`).evaluateAll((os) => os.map((o) => o.value));
    assert.ok(options.length > p.stock, `the quantity list should offer more than the ${p.stock} in stock before asking: ${options}`);
    const overflow = await sidewaysOverflow(buyer);
    assert.ok(overflow <= 0, `at ${PHONE.width} px the checkout page scrolls sideways by ${overflow} px`);
  });

  step('asking for more than may be reserved: "Only H left", nothing reserved, the quantity list narrowed', async () => {
    const { pid, n, h } = bought;
    await buyer.locator(ck('quantity')).selectOption(String(n + 1));
    await buyer.locator(ck('hold-button')).click();
    const alert = buyer.locator(ck('checkout-alert'));
    try {
      await buyer.waitForFunction((want) => document.querySelector('[data-testid="checkout-alert"]')?.textContent?.includes(want),
        `Only ${h} left`, { timeout: HOLD_TIMEOUT_MS });
    } catch (e) {
      if (e.name !== 'TimeoutError') throw e;
      assert.fail(`asking for ${n + 1} of ${n} (${h} may be reserved) should show "Only ${h} left"; the page shows ${await checkoutState(buyer)}`);
    }
    assert.equal(await buyer.evaluate(() => document.body.dataset.step), 'form', 'the form stays (nothing was reserved)');
    assert.match(await alert.textContent(), /Nothing was reserved/, 'the alert says that nothing was reserved');
    const quantity = buyer.locator(ck('quantity'));
    const options = await quantity.locator('option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual(options, Array.from({ length: h }, (_, i) => String(i + 1)), `the quantity list should be narrowed to 1..${h}`);
    assert.equal(await quantity.inputValue(), String(h), `the most that may be reserved (${h}) should be preselected`);
    assert.equal(await quantity.getAttribute('aria-invalid'), 'true', 'the quantity is marked invalid');
    assert.equal((await buyer.locator(ck('quantity-error')).textContent())?.trim(), `Only ${h} left`, 'the field says how many may be reserved');
    assert.equal(await activeTestId(buyer), 'quantity', 'the quantity field gets the focus');
    // Nothing was held: the stock is untouched.
    await expectLiveCount(store, 'storefront', pid, n, 1000);
    assert.equal((await shopStock(ready, pid)).available, n, 'the 409 reserved nothing');
  });

  step('holding all H with the keyboard alone: the amount and a running countdown are shown', async () => {
    const { pid, n, h, name, amount } = bought;
    await buyer.bringToFront();
    // From the quantity field (focused by the page): Tab to the e-mail, type it, Tab to the
    // button, Enter.
    await buyer.keyboard.press('Tab');
    assert.equal(await activeTestId(buyer), 'email', 'Tab from the quantity should reach the e-mail field');
    await buyer.keyboard.type(EMAIL);
    await buyer.keyboard.press('Tab');
    assert.equal(await activeTestId(buyer), 'hold-button', 'Tab from the e-mail should reach the reserve button');
    const outline = await buyer.evaluate(() => {
      const s = getComputedStyle(document.activeElement);
      return `${s.outlineStyle} ${s.outlineWidth} ${s.boxShadow}`;
    });
    assert.ok(!/^none 0px none$/.test(outline), `the focused reserve button needs a visible focus style (got ${outline})`);
    assert.equal(await buyer.locator(ck('email')).inputValue(), EMAIL, 'the e-mail was typed');
    await buyer.keyboard.press('Enter');
    await expectStep(buyer, 'held', HOLD_TIMEOUT_MS, `holding ${h} × ${pid}`);

    const total = (amount * h) / 100;
    const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(total);
    assert.equal((await buyer.locator(ck('amount')).textContent())?.trim(), `${h} × ${name}: ${money}`,
      'the amount is the catalog price × quantity, from the checkout API');
    const countdown = buyer.locator(ck('hold-countdown'));
    assert.ok(await countdown.isVisible(), 'the countdown is visible');
    const first = await countdown.textContent();
    const seconds = heldSeconds(first);
    assert.ok(seconds !== null && seconds > 0 && seconds <= 900, `the countdown should read "Your items are held for M:SS" (hold 900 s), got "${first}"`);
    await buyer.waitForFunction((was) => document.querySelector('[data-testid="hold-countdown"]')?.textContent !== was,
      first, { timeout: 5000 }).catch(() => assert.fail(`the countdown should tick, it stays at "${first}"`));
    assert.ok(heldSeconds(await countdown.textContent()) < seconds, 'the countdown counts down');
    assert.ok(await buyer.locator(ck('pay-test-card')).isVisible(), 'the "Pay (test card)" button is shown');
    assert.ok(await buyer.locator(ck('decline-test-card')).isVisible(), 'the "Decline (test card)" button is shown');
    const overflow = await sidewaysOverflow(buyer);
    assert.ok(overflow <= 0, `at ${PHONE.width} px the held checkout scrolls sideways by ${overflow} px`);
    mkdirSync(ARTIFACTS, { recursive: true });
    await buyer.screenshot({ path: path.join(ARTIFACTS, 'checkout-held.png'), fullPage: true });

    // The hold takes its units at once (the rest stays for the Payment Link): live.
    await expectLiveCount(store, 'storefront', pid, n - h);
    await expectShopStock(ready, pid, n - h, 'after the hold');
  });

  step('"Pay (test card)": "Paid — your order is confirmed"; the stock stays where the hold took it, live', async () => {
    const { pid, n, h } = bought;
    await buyer.locator(ck('pay-test-card')).click();
    await expectStep(buyer, 'done', PAYMENT_TIMEOUT_MS, `paying for ${pid}`);
    const result = buyer.locator(ck('payment-result'));
    assert.equal(await result.getAttribute('data-outcome'), 'succeeded', `the payment should succeed: ${await checkoutState(buyer)}`);
    assert.equal((await result.textContent())?.trim(), 'Paid — your order is confirmed');
    assert.ok(await result.isVisible(), 'the outcome is visible');
    await buyer.screenshot({ path: path.join(ARTIFACTS, 'checkout-paid.png'), fullPage: true });

    await expectShopStock(ready, pid, n - h, 'after paying');
    await expectLiveCount(store, 'storefront', pid, n - h);
    assert.equal(await store.locator(sel.card(pid)).getAttribute('data-sold-out'), 'false',
      `storefront: ${pid} still sells through its link: ${await cardState(store, pid)}`);
    assert.equal(await store.evaluate(() => window.__noReload), true,
      'storefront: window.__noReload should survive: the update must come without reloading the page');
    assert.deepEqual(navigations, [], 'the storefront tab should not navigate');
  });

  step('another product: hold 1, "Decline (test card)": "Card declined — your items were released", the stock is back', async () => {
    // The product with the least stock >= 2 other than the one just bought.
    const [pid, p] = Object.entries(ready.products)
      .filter(([id, x]) => id !== bought.pid && x.stock >= 2)
      .sort((a, b) => a[1].stock - b[1].stock)[0] ?? [];
    assert.ok(pid, `another product with stock >= 2 is needed: ${JSON.stringify(ready.products)}`);
    declined = { pid, name: p.name, n: p.stock };

    const url = new URL('checkout.html', ready.url);
    url.search = new URLSearchParams({ store: ready.store, product: pid }).toString();
    const res = await buyer.goto(url.href);
    assert.equal(res?.status(), 200, `the checkout page ${url} should load`);
    await expectStep(buyer, 'form', UI_TIMEOUT_MS, `the checkout page of ${pid} loads`);
    assert.equal((await buyer.locator(ck('product-name')).textContent())?.trim(), p.name, 'the product\'s name is shown');
    assert.equal(await buyer.locator(ck('quantity')).inputValue(), '1', 'the quantity starts at 1');
    await buyer.locator(ck('hold-button')).click();
    await expectStep(buyer, 'held', HOLD_TIMEOUT_MS, `holding 1 × ${pid}`);
    const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' }).format(p.amount / 100);
    assert.equal((await buyer.locator(ck('amount')).textContent())?.trim(), `1 × ${p.name}: ${money}`, 'the amount of one');
    assert.ok(heldSeconds(await buyer.locator(ck('hold-countdown')).textContent()) > 0, 'the countdown is running');
    await expectLiveCount(store, 'storefront', pid, p.stock - 1);
    await expectShopStock(ready, pid, p.stock - 1, 'after holding 1');

    await buyer.locator(ck('decline-test-card')).click();
    await expectStep(buyer, 'done', PAYMENT_TIMEOUT_MS, `declining for ${pid}`);
    const result = buyer.locator(ck('payment-result'));
    assert.equal(await result.getAttribute('data-outcome'), 'declined', `the card should be declined: ${await checkoutState(buyer)}`);
    assert.equal((await result.textContent())?.trim(), 'Card declined — your items were released');
    assert.ok(await buyer.locator(ck('start-again')).isVisible(), 'after a decline the buyer may start again');
    await buyer.screenshot({ path: path.join(ARTIFACTS, 'checkout-declined.png'), fullPage: true });

    await expectLiveCount(store, 'storefront', pid, p.stock);
    await expectShopStock(ready, pid, p.stock, 'after the decline');
    const card = store.locator(sel.card(pid));
    assert.equal(await card.getAttribute('data-sold-out'), 'false', `storefront: ${pid} is in stock again: ${await cardState(store, pid)}`);
    assert.ok(await card.locator('[data-testid="reserve-link"]').getAttribute('href'), 'storefront: its "Buy with reserved stock" link works again');
    // The product bought before is untouched.
    await expectLiveCount(store, 'storefront', bought.pid, bought.n - bought.h, 1000);
    assert.equal(await store.evaluate(() => window.__noReload), true, 'storefront: no reload');
    assert.deepEqual(navigations, [], 'the storefront tab should not navigate');
  });

  step('screenshot of the storefront tab', async () => {
    await store.bringToFront();
    await store.evaluate(async () => { window.scrollTo(0, 0); await document.fonts.ready; });
    await store.screenshot({ path: path.join(ARTIFACTS, 'checkout-storefront.png'), fullPage: true });
    for (const name of ['checkout-held.png', 'checkout-paid.png', 'checkout-declined.png', 'checkout-storefront.png']) {
      assert.ok(existsSync(path.join(ARTIFACTS, name)), `artifacts/${name} should be written`);
    }
  });

  step('every request stayed on 127.0.0.1, and the pages threw no uncaught errors', () => {
    const checkoutApi = new URL(config.checkoutUrl);
    const stripe = new URL(config.stripeApiBase);
    assert.ok(requests.some((u) => u.startsWith(checkoutApi.origin) && new URL(u).pathname.endsWith('/checkout')),
      `the page should have called the checkout API at ${checkoutApi.origin}`);
    assert.ok(requests.some((u) => u.startsWith(stripe.origin) && /\/v1\/payment_intents\/[^/]+\/confirm$/.test(new URL(u).pathname)),
      `the page should have confirmed at the fake Stripe ${stripe.origin}`);
    assert.ok(requests.some((u) => u.startsWith('ws://127.0.0.1:')), 'the storefront should have opened its MQTT WebSocket');
    const away = requests.filter((u) => {
      const { protocol, hostname } = new URL(u);
      if (protocol === 'data:' || protocol === 'blob:' || protocol === 'about:') return false;
      return hostname !== '127.0.0.1';
    });
    assert.deepEqual([...new Set(away)], [], 'requests that left 127.0.0.1');
    assert.deepEqual(pageErrors, [], 'uncaught errors in the pages');
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
