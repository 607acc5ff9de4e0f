// Real-browser end-to-end test of the storefront (web/dist) against the local shop
// (python -m devstack.shop): two storefront tabs follow live stock over MQTT while a third tab
// pays on the fake Stripe's hosted payment page; the last unit sells the product out and its
// payment link goes dead. See README.md beside this file.
//
// Environment: CHROMIUM (default /usr/bin/chromium), SHOP_PYTHON (default <repo>/.venv/bin/python).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PYTHON = process.env.SHOP_PYTHON || path.join(ROOT, '.venv', 'bin', 'python');
const ARTIFACTS = path.join(ROOT, 'artifacts');
const DOCS_SCREENSHOT = path.join(ROOT, 'docs', 'storefront.png');
const FAILURE_SCREENSHOT = path.join(ARTIFACTS, 'storefront-failure.png');
const FAILURE_LOGS = path.join(ARTIFACTS, 'browser-test-logs');

const SHOP_START_TIMEOUT_MS = 120_000;
const SHOP_STOP_TIMEOUT_MS = 30_000;
const UI_TIMEOUT_MS = 20_000; // page load, MQTT connect, retained messages
const LIVE_UPDATE_TIMEOUT_MS = 10_000; // a paid order -> both tabs show the new level
const PAYMENT_TIMEOUT_MS = 60_000; // POST /pay waits for the Lambda invocation

// Without the background-networking flags Chromium's own connections (component updates,
// safe browsing...) are refused by the machine's closed network and slow everything down.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const sel = {
  card: (pid) => `[data-product-id=${JSON.stringify(pid)}]`,
  count: (pid) => `[data-product-id=${JSON.stringify(pid)}] [data-testid="stock-count"]`,
};

// ------------------------------------------------------------------------------------ processes

/** pid -> {ppid, state} for every process, from /proc. */
function processTable() {
  const table = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      table.set(Number(name), { state: rest[0], ppid: Number(rest[1]) });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Live processes whose command line mentions `needle` (e.g. the browser's user-data dir). */
function processesMentioning(needle) {
  const found = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(needle) && alive(Number(name))) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function descendants(roots) {
  const table = processTable();
  const found = new Set();
  const todo = [...roots];
  while (todo.length) {
    const parent = todo.pop();
    for (const [pid, p] of table) {
      if (p.ppid === parent && !found.has(pid)) {
        found.add(pid);
        todo.push(pid);
      }
    }
  }
  return found;
}

function kill(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function waitUntil(predicate, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The local shop as a subprocess. */
class ShopProcess {
  constructor() {
    this.tmp = mkdtempSync(path.join(tmpdir(), 'stockbridge-browser-'));
    this.readyFile = path.join(this.tmp, 'ready.json');
    this.stateDir = path.join(this.tmp, 'state');
    this.output = '';
    this.proc = null;
    this.exit = null; // {code, signal} once exited
    this.ready = null; // the ready file's document
    this.known = new Set(); // every pid seen below the shop
  }

  async start() {
    for (const [file, what, fix] of [
      [PYTHON, 'the test bed venv', 'scripts/setup'],
      [path.join(ROOT, 'target', 'debug', 'inventory'), 'the inventory binary', 'cargo build --workspace'],
      [path.join(ROOT, 'target', 'debug', 'stockbridge'), 'the stockbridge CLI', 'cargo build --workspace'],
      [path.join(ROOT, 'web', 'dist', 'index.html'), 'the built storefront', '(cd web && npm ci && npm run build)'],
    ]) {
      assert.ok(existsSync(file), `${file} (${what}) is missing: run ${fix}`);
    }
    const argv = ['-m', 'devstack.shop', '--port', '0', '--workers', '2',
      '--ready-file', this.readyFile, '--state-dir', this.stateDir];
    this.proc = spawn(PYTHON, argv, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    const collect = (chunk) => {
      this.output += chunk.toString();
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000);
    };
    this.proc.stdout.on('data', collect);
    this.proc.stderr.on('data', collect);
    this.exited = new Promise((resolve) => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    const ok = await waitUntil(() => this.exit !== null || existsSync(this.readyFile), SHOP_START_TIMEOUT_MS, 200);
    assert.ok(this.exit === null,
      `the shop exited during start-up (${JSON.stringify(this.exit)}):\n${this.output}`);
    assert.ok(ok, `the shop did not write ${this.readyFile} within ${SHOP_START_TIMEOUT_MS / 1000} s:\n${this.output}`);
    this.ready = JSON.parse(readFileSync(this.readyFile, 'utf8'));
    assert.match(this.ready.url, /^http:\/\/127\.0\.0\.1:\d+\/$/, 'the ready file names the storefront URL');
    this.remember();
    return this.ready;
  }

  /** Records the shop's process tree (its stack's children run in their own sessions). */
  remember() {
    if (!this.proc) return;
    const roots = [this.proc.pid, ...Object.values(this.ready?.stack_pids ?? {})];
    for (const pid of [...roots, ...descendants(roots)]) this.known.add(pid);
  }

  leftovers() {
    return [...this.known].filter(alive);
  }

  /** SIGTERM, wait; SIGKILL whatever is left. Returns {exit, graceful, leftovers}. */
  async stop() {
    if (!this.proc) return { exit: null, graceful: true, leftovers: [] };
    this.remember();
    let graceful = true;
    if (this.exit === null) {
      kill(this.proc.pid, 'SIGTERM');
      let timer;
      const timeout = new Promise((r) => { timer = setTimeout(r, SHOP_STOP_TIMEOUT_MS, 'timeout'); });
      const outcome = await Promise.race([this.exited, timeout]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        graceful = false;
        kill(this.proc.pid, 'SIGKILL');
        await this.exited;
      }
    }
    // The shop stops its stack itself; give orphans a moment, then make sure.
    await waitUntil(() => this.leftovers().length === 0, 10_000);
    const leftovers = this.leftovers();
    for (const pid of leftovers) kill(pid, 'SIGKILL');
    return { exit: this.exit, graceful, leftovers };
  }

  /** The tail of the shop's output and of its stack's logs (for failure messages). */
  diagnostics() {
    let out = `--- shop output (tail)\n${this.output.slice(-4000)}`;
    try {
      for (const name of readdirSync(this.stateDir).filter((n) => n.endsWith('.log'))) {
        out += `\n--- ${name} (tail)\n${readFileSync(path.join(this.stateDir, name), 'utf8').slice(-2000)}`;
      }
    } catch {
      // no state dir
    }
    return out;
  }

  saveLogs(dir) {
    mkdirSync(dir, { recursive: true });
    try {
      for (const name of readdirSync(this.stateDir).filter((n) => n.endsWith('.log'))) {
        copyFileSync(path.join(this.stateDir, name), path.join(dir, name));
      }
    } catch {
      // no state dir
    }
  }

  cleanup() {
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------ page helpers

async function countOf(page, pid) {
  return (await page.locator(sel.count(pid)).textContent())?.trim();
}

async function cardState(page, pid) {
  return page.evaluate((s) => {
    const card = document.querySelector(s);
    if (!card) return 'no card';
    const link = card.querySelector('[data-testid="buy-link"]');
    const qr = card.querySelector('[data-testid="qr"]');
    return JSON.stringify({
      count: card.querySelector('[data-testid="stock-count"]')?.textContent,
      live: card.dataset.live,
      soldOut: card.dataset.soldOut,
      buyable: card.dataset.buyable,
      badge: Boolean(card.querySelector('[data-testid="sold-out"]')),
      href: link?.getAttribute('href'),
      ariaDisabled: link?.getAttribute('aria-disabled'),
      qrHidden: qr?.hidden,
      connection: document.querySelector('[data-testid="connection"]')?.dataset.state,
    });
  }, sel.card(pid));
}

/** Waits (bounded) until the product's live count is `expected` in the page. */
async function expectLiveCount(page, label, pid, expected, timeout = LIVE_UPDATE_TIMEOUT_MS) {
  try {
    await page.waitForFunction(
      ([s, want]) => {
        const card = document.querySelector(s);
        return card?.dataset.live === 'true'
          && card.querySelector('[data-testid="stock-count"]')?.textContent?.trim() === want;
      },
      [sel.card(pid), String(expected)],
      { timeout, polling: 50 },
    );
  } catch (e) {
    if (e.name !== 'TimeoutError') throw e;
    assert.fail(`${label}: product ${pid} should show a live count of ${expected} within ` +
      `${timeout / 1000} s; the card is ${await cardState(page, pid)}`);
  }
}

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
  const emergencyStop = () => {
    if (shop.proc && shop.exit === null) kill(shop.proc.pid, 'SIGTERM');
  };
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      emergencyStop();
      process.exit(130);
    });
  }
  process.once('exit', emergencyStop);

  before(async () => {
    rmSync(FAILURE_LOGS, { recursive: true, force: true }); // from an earlier failed run
    rmSync(FAILURE_SCREENSHOT, { force: true });
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/setup --browser (or set CHROMIUM)`);
    ready = await shop.start();
    userDataDir = mkdtempSync(path.join(tmpdir(), 'stockbridge-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
      timeout: 60_000,
    });
    context.setDefaultTimeout(UI_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(UI_TIMEOUT_MS);
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
      await context.close();
      context = null;
      const gone = await waitUntil(() => processesMentioning(userDataDir).length === 0, 10_000);
      assert.ok(gone, `Chromium processes left after closing the browser: ${processesMentioning(userDataDir)}`);
    }
    stopped = await shop.stop();
    assert.ok(stopped.graceful, `the shop should exit within ${SHOP_STOP_TIMEOUT_MS / 1000} s of SIGTERM:\n${shop.diagnostics()}`);
    assert.equal(stopped.exit.code, 0, `the shop should exit with status 0 after SIGTERM (${JSON.stringify(stopped.exit)}):\n${shop.diagnostics()}`);
    assert.deepEqual(stopped.leftovers, [], 'processes left running after the shop stopped (killed now)');
  });
});
