/**
 * The real thing on loopback: mqtt.js over WebSocket to a mosquitto started here, retained
 * messages, the broker going away and coming back. Skipped where mosquitto is not installed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StockConnection } from './connection';
import {
  applyMessage,
  initialState,
  markNotLive,
  productStock,
  setConnection,
  stockSubscriptions,
  type StoreState,
} from './stock';

const HOST = '127.0.0.1';
const DENIED = 'stockbridge/store_acl/products/prod_denied/stock';
const hasMosquitto = (() => {
  const r = spawnSync('sh', ['-c', 'command -v mosquitto || test -x /usr/sbin/mosquitto'], { stdio: 'ignore' });
  return r.status === 0;
})();
const MOSQUITTO = spawnSync('sh', ['-c', 'command -v mosquitto || echo /usr/sbin/mosquitto'], { encoding: 'utf8' }).stdout.trim();
/** mosquitto's dynamic security plugin: unlike `acl_file`, it refuses a SUBSCRIBE (SUBACK 0x80). */
const DYNSEC = [
  '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so',
  '/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so',
  '/usr/lib/mosquitto_dynamic_security.so',
  '/usr/local/lib/mosquitto_dynamic_security.so',
].find((p) => existsSync(p));

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, HOST, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!hasMosquitto)('StockConnection against mosquitto (loopback)', () => {
  let dir: string;
  let tcpPort: number;
  let wsPort: number;
  let broker: ChildProcess | null = null;
  /** Everything the brokers logged (`log_type all`). */
  const brokerLog = () => readFileSync(join(dir, 'mosquitto.log'), 'utf8');

  async function startBroker() {
    broker = spawn(MOSQUITTO, ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
    const end = Date.now() + 10_000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const c = mqtt.connect(`mqtt://${HOST}:${tcpPort}`, { reconnectPeriod: 0, connectTimeout: 1000 });
        c.once('connect', () => {
          c.end(true);
          resolve(true);
        });
        c.once('error', () => {
          c.end(true);
          resolve(false);
        });
        c.once('close', () => resolve(false));
      });
      if (ok) return;
      if (Date.now() > end) throw new Error('mosquitto did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function stopBroker() {
    const b = broker;
    broker = null;
    if (!b || b.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      b.once('exit', () => resolve());
      b.kill('SIGTERM');
    });
  }

  async function publish(topic: string, payload: object | string) {
    const c = await mqtt.connectAsync(`mqtt://${HOST}:${tcpPort}`, { reconnectPeriod: 0 });
    await c.publishAsync(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1, retain: true });
    await c.endAsync();
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stockbridge-web-'));
    // Started as root, mosquitto drops to its own user, which must reach its files here.
    chmodSync(dir, 0o755);
    tcpPort = await freePort();
    wsPort = await freePort();
    writeFileSync(
      join(dir, 'mosquitto.conf'),
      [
        'per_listener_settings false',
        'allow_anonymous true',
        'persistence false',
        `listener ${tcpPort} ${HOST}`,
        'protocol mqtt',
        `listener ${wsPort} ${HOST}`,
        'protocol websockets',
        `log_dest file ${join(dir, 'mosquitto.log')}`,
        'log_type all',
        ...(DYNSEC ? [`plugin ${DYNSEC}`, `plugin_opt_config_file ${join(dir, 'dynsec.json')}`] : []),
        '',
      ].join('\n'),
    );
    // Anonymous clients may do anything, except subscribe to the DENIED topic.
    writeFileSync(
      join(dir, 'dynsec.json'),
      JSON.stringify({
        defaultACLAccess: { publishClientSend: true, publishClientReceive: true, subscribe: true, unsubscribe: true },
        clients: [],
        groups: [{ groupname: 'anon', roles: [{ rolename: 'anon' }] }],
        anonymousGroup: 'anon',
        roles: [{ rolename: 'anon', acls: [{ acltype: 'subscribeLiteral', topic: DENIED, priority: 0, allow: false }] }],
      }),
    );
    writeFileSync(join(dir, 'mosquitto.log'), '');
    chmodSync(join(dir, 'dynsec.json'), 0o666);
    chmodSync(join(dir, 'mosquitto.log'), 0o666);
    await startBroker();
  });

  afterAll(async () => {
    await stopBroker();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('gets retained levels, live updates, and re-confirms after the broker restarts', { timeout: 40_000 }, async () => {
    const store = 'store_it';
    const topic = (p: string) => `stockbridge/${store}/products/${p}/stock`;
    const level = (p: string, available: number, version: number, s = store) => ({
      product_id: p,
      store_id: s,
      available,
      sold_out: available === 0,
      version,
      updated_at: '2026-11-23T10:15:02.123Z',
    });
    await publish(topic('prod_a'), level('prod_a', 5, 3));
    await publish(topic('prod_b'), level('prod_b', 0, 8));

    let state: StoreState = initialState(store, [
      { product_id: 'prod_a', available: 6, version: 2 },
      { product_id: 'prod_b', available: 1, version: 7 },
    ]);
    const states: string[] = [];
    const conn = new StockConnection({
      connect: (url, opts) => mqtt.connect(url, opts),
      url: async () => `ws://${HOST}:${wsPort}`,
      topicFilters: stockSubscriptions('stockbridge', store, ['prod_a', 'prod_b']).filters,
      onState: (s) => {
        states.push(s);
        state = setConnection(state, s);
      },
      onMessage: (t, p) => {
        state = applyMessage(state, p, t).state;
      },
      baseMs: 100,
      maxMs: 400,
      offlineAfter: 1000,
      log: () => undefined,
    });
    conn.start();
    try {
      await until('retained levels', () => productStock(state, 'prod_a').live && productStock(state, 'prod_b').live);
      expect(productStock(state, 'prod_a')).toMatchObject({ available: 5, version: 3, live: true });
      expect(productStock(state, 'prod_b')).toMatchObject({ available: 0, sold_out: true, live: true });

      // Live updates; stale, foreign and malformed ones change nothing.
      await publish(topic('prod_a'), level('prod_a', 4, 4));
      await until('the update', () => productStock(state, 'prod_a').version === 4);
      await publish(topic('prod_a'), level('prod_a', 9, 2));
      await publish(`stockbridge/other/products/prod_a/stock`, level('prod_a', 1, 99, 'other'));
      await publish(topic('prod_a'), 'not json');
      await publish(topic('prod_b'), level('prod_b', 10, 9));
      await until('the restock', () => productStock(state, 'prod_b').version === 9);
      expect(productStock(state, 'prod_a')).toMatchObject({ available: 4, version: 4, live: true });
      expect(productStock(state, 'prod_b')).toMatchObject({ available: 10, sold_out: false, live: true });

      // The broker goes away: nothing is live, the page says so.
      await stopBroker();
      await until('reconnecting', () => conn.connectionState === 'reconnecting');
      expect(productStock(state, 'prod_a').live).toBe(false);
      expect(productStock(state, 'prod_b').live).toBe(false);

      // It comes back (empty: persistence is off); the publisher republishes the current levels.
      await startBroker();
      await until('connected again', () => conn.connectionState === 'connected');
      expect(productStock(state, 'prod_a').live).toBe(false);
      await publish(topic('prod_a'), level('prod_a', 4, 4));
      await until('re-confirmation', () => productStock(state, 'prod_a').live);
      expect(productStock(state, 'prod_a')).toMatchObject({ available: 4, version: 4 });
      expect(productStock(state, 'prod_b').live).toBe(false);
      expect(states[0]).toBe('connecting');
      expect(states).toContain('reconnecting');
      expect(states.at(-1)).toBe('connected');
    } finally {
      conn.stop();
    }
  });

  it('sends the filters in SUBSCRIBE packets of at most 8 (mqtt.js, as mosquitto sees them)', { timeout: 20_000 }, async () => {
    const store = 'store_many';
    const ids = Array.from({ length: 60 }, (_, i) => `prod_${i + 1}`);
    const subs = stockSubscriptions('stockbridge', store, ids);
    const clientIds: string[] = [];
    let state: StoreState = initialState(store, ids.map((product_id) => ({ product_id, available: 1, version: 1 })));
    await publish(`stockbridge/${store}/products/prod_3/stock`, {
      product_id: 'prod_3',
      store_id: store,
      available: 9,
      sold_out: false,
      version: 2,
      updated_at: null,
    });
    const conn = new StockConnection({
      connect: (url, opts) => {
        clientIds.push(String(opts.clientId));
        return mqtt.connect(url, opts);
      },
      url: async () => `ws://${HOST}:${wsPort}`,
      topicFilters: subs.filters,
      onState: (s) => {
        state = setConnection(state, s);
      },
      onMessage: (t, p) => {
        state = applyMessage(state, p, t).state;
      },
      log: () => undefined,
    });
    conn.start();
    try {
      await until('the retained level', () => productStock(state, 'prod_3').live);
      const id = clientIds.at(-1)!;
      await until('the last SUBACK', () => brokerLog().split(`Sending SUBACK to ${id}`).length - 1 === 7);
      // mosquitto logs "Received SUBSCRIBE from <id>", a tab-indented line per filter in the packet
      // (among other lines), then "Sending SUBACK to <id>".
      const packets: string[][] = [];
      let current: string[] | null = null;
      for (const line of brokerLog().split('\n')) {
        if (line.includes(`Received SUBSCRIBE from ${id}`)) packets.push((current = []));
        else if (line.includes(`Sending SUBACK to ${id}`)) current = null;
        else if (current && /^\d+: \t/.test(line)) current.push(line.replace(/^\d+: \t/, '').replace(/ \(QoS \d\)$/, ''));
      }
      expect(packets.map((p) => p.length)).toEqual([8, 8, 8, 8, 8, 8, 2]);
      expect(packets.flat()).toEqual(subs.filters);
      expect(productStock(state, 'prod_3')).toMatchObject({ available: 9, live: true });
    } finally {
      conn.stop();
    }
  });

  it.skipIf(!DYNSEC)('a filter the broker refuses (SUBACK 0x80) leaves the other products live', { timeout: 20_000 }, async () => {
    const store = 'store_acl';
    const level = (p: string, available: number, version: number) => ({
      product_id: p,
      store_id: store,
      available,
      sold_out: available === 0,
      version,
      updated_at: null,
    });
    await publish(`stockbridge/${store}/products/prod_ok/stock`, level('prod_ok', 3, 5));
    await publish(DENIED, level('prod_denied', 2, 5));
    const subs = stockSubscriptions('stockbridge', store, ['prod_ok', 'prod_denied']);
    let state: StoreState = initialState(store, [
      { product_id: 'prod_ok', available: 3, version: 5 },
      { product_id: 'prod_denied', available: 2, version: 5 },
    ]);
    const refused: string[] = [];
    let refusedAll = 0;
    const conn = new StockConnection({
      connect: (url, opts) => mqtt.connect(url, opts),
      url: async () => `ws://${HOST}:${wsPort}`,
      topicFilters: subs.filters,
      onState: (s) => {
        state = setConnection(state, s);
      },
      onMessage: (t, p) => {
        state = applyMessage(state, p, t).state;
      },
      onRefused: () => refusedAll++,
      onFiltersRefused: (filters) => {
        refused.push(...filters);
        state = markNotLive(state, filters.flatMap((f) => subs.productsByFilter.get(f) ?? []));
      },
      log: () => undefined,
    });
    conn.start();
    try {
      await until('the refusal', () => refused.length > 0 && productStock(state, 'prod_ok').live);
      await new Promise((r) => setTimeout(r, 200));
      expect(refused).toEqual([DENIED]);
      expect(refusedAll).toBe(0);
      expect(conn.connectionState).toBe('connected');
      expect(productStock(state, 'prod_ok')).toMatchObject({ available: 3, live: true });
      expect(productStock(state, 'prod_denied')).toMatchObject({ available: 2, live: false });
    } finally {
      conn.stop();
    }
  });
});
