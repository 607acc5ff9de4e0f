// Shared by the real-browser tests (storefront.test.mjs, checkout.test.mjs): the local shop
// (python -m devstack.shop) as a subprocess with a clean stop, Chromium (playwright-core) with a
// fresh profile, and storefront page helpers. See README.md beside this file.
//
// Environment: CHROMIUM (default /usr/bin/chromium), SHOP_PYTHON (default <repo>/.venv/bin/python).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const PYTHON = process.env.SHOP_PYTHON || path.join(ROOT, '.venv', 'bin', 'python');
export const ARTIFACTS = path.join(ROOT, 'artifacts');

export const SHOP_START_TIMEOUT_MS = 120_000;
export const SHOP_STOP_TIMEOUT_MS = 30_000;
export const UI_TIMEOUT_MS = 20_000; // page load, MQTT connect, retained messages
export const LIVE_UPDATE_TIMEOUT_MS = 10_000; // a stock change -> the storefront tabs show the new level

// Without the background-networking flags Chromium's own connections (component updates,
// safe browsing...) are refused by the machine's closed network and slow everything down.
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const sel = {
  card: (pid) => `[data-product-id=${JSON.stringify(pid)}]`,
  count: (pid) => `[data-product-id=${JSON.stringify(pid)}] [data-testid="stock-count"]`,
};

// ------------------------------------------------------------------------------------ processes

/** pid -> {ppid, state} for every process, from /proc. */
export function processTable() {
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

export function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Live processes whose command line mentions `needle` (e.g. the browser's user-data dir). */
export function processesMentioning(needle) {
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

export function descendants(roots) {
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

export function kill(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

export async function waitUntil(predicate, timeoutMs, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The local shop as a subprocess. */
export class ShopProcess {
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

  /** `extra`: more [file, what, fix] prerequisites a test needs (e.g. the checkout binary). */
  async start(extra = []) {
    for (const [file, what, fix] of [
      [PYTHON, 'the test bed venv', 'scripts/setup'],
      [path.join(ROOT, 'target', 'debug', 'inventory'), 'the inventory binary', 'cargo build --workspace'],
      [path.join(ROOT, 'target', 'debug', 'stockbridge'), 'the stockbridge CLI', 'cargo build --workspace'],
      [path.join(ROOT, 'web', 'dist', 'index.html'), 'the built storefront', '(cd web && npm ci && npm run build)'],
      ...extra,
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

/** Whatever happens, no shop is left behind (also on Ctrl-C / SIGTERM of the runner). */
export function installEmergencyStop(shop) {
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
}

/** The checks after `shop.stop()`: graceful, status 0, nothing left running. */
export function assertShopStoppedCleanly(shop, stopped) {
  assert.ok(stopped.graceful, `the shop should exit within ${SHOP_STOP_TIMEOUT_MS / 1000} s of SIGTERM:\n${shop.diagnostics()}`);
  assert.equal(stopped.exit.code, 0, `the shop should exit with status 0 after SIGTERM (${JSON.stringify(stopped.exit)}):\n${shop.diagnostics()}`);
  assert.deepEqual(stopped.leftovers, [], 'processes left running after the shop stopped (killed now)');
}

// ------------------------------------------------------------------------------------ the browser

/**
 * Debian's Chromium with a fresh profile (a persistent context, so that `context.close()` ends
 * the browser). Returns {context, userDataDir}; `options` go to launchPersistentContext.
 */
export async function launchBrowser(options = {}) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'stockbridge-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    timeout: 60_000,
    ...options,
  });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(UI_TIMEOUT_MS);
  return { context, userDataDir };
}

/** Closes the browser and checks that none of its processes is left. */
export async function closeBrowser(context, userDataDir) {
  await context.close();
  const gone = await waitUntil(() => processesMentioning(userDataDir).length === 0, 10_000);
  assert.ok(gone, `Chromium processes left after closing the browser: ${processesMentioning(userDataDir)}`);
}

// ------------------------------------------------------------------------------------ storefront page helpers

export async function countOf(page, pid) {
  return (await page.locator(sel.count(pid)).textContent())?.trim();
}

export async function cardState(page, pid) {
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
export async function expectLiveCount(page, label, pid, expected, timeout = LIVE_UPDATE_TIMEOUT_MS) {
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
