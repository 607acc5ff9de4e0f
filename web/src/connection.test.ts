import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import mqtt, { type IClientOptions, type ISubscriptionGrant } from 'mqtt';
import {
  KEEPALIVE_S,
  MAX_FILTERS_PER_SUBSCRIBE,
  StockConnection,
  grantedFilters,
  subscribePackets,
  type Environment,
  type MqttClientLike,
  type SubackLike,
} from './connection';
import {
  applyMessage,
  initialState,
  markNotLive,
  productStock,
  setConnection,
  stockSubscriptions,
  type ConnectionState,
  type StoreState,
} from './stock';

/**
 * Behaves like mqtt.js (one SUBSCRIBE packet per `subscribe` call; a SUBACK with a failure code is
 * reported as an error carrying the packet) in front of a broker that behaves like AWS IoT Core: a
 * retained message is sent on SUBSCRIBE only to a filter equal to its topic, never to a wildcard.
 */
class FakeClient extends EventEmitter implements MqttClientLike {
  /** Every SUBSCRIBE packet sent, in order. */
  packets: { topics: string[]; qos: number }[] = [];
  ended = false;
  /** The SUBACK return code for a filter (default: the QoS asked for). */
  suback: (topic: string, qos: number) => number = (_t, qos) => qos;
  constructor(
    readonly url: string,
    readonly opts: IClientOptions,
    readonly retained: ReadonlyMap<string, string> = new Map(),
  ) {
    super();
  }
  get subscriptions(): { topic: string; qos: number }[] {
    return this.packets.flatMap((p) => p.topics.map((topic) => ({ topic, qos: p.qos })));
  }
  subscribe(
    topics: string[],
    opts: { qos: 0 | 1 | 2 },
    cb: (err: Error | null | undefined, granted?: ISubscriptionGrant[], packet?: SubackLike) => void,
  ) {
    this.packets.push({ topics: [...topics], qos: opts.qos });
    const codes = topics.map((t) => this.suback(t, opts.qos));
    queueMicrotask(() => {
      if (this.ended) return;
      if (codes.some((c) => c & 0x80)) {
        cb(Object.assign(new Error('Subscribe error: Unspecified error'), { code: 128 }), topics.map((topic) => ({ topic, qos: opts.qos })), {
          granted: codes,
        });
      } else {
        cb(null, topics.map((topic, i) => ({ topic, qos: codes[i] as ISubscriptionGrant['qos'] })), { granted: codes });
      }
      // AWS IoT: retained messages only for granted filters that are exactly their topic.
      topics.forEach((t, i) => {
        const payload = this.retained.get(t);
        if (!(codes[i] & 0x80) && payload !== undefined) this.emit('message', t, new TextEncoder().encode(payload));
      });
    });
    return this;
  }
  end() {
    if (!this.ended) {
      this.ended = true;
      queueMicrotask(() => this.emit('close'));
    }
    return this;
  }
  /** The broker drops us. */
  drop() {
    this.emit('close');
  }
}

function fakeEnv() {
  let online = true;
  let handlers: Parameters<Environment['listen']>[0] | null = null;
  const env: Environment = {
    isOnline: () => online,
    listen: (h) => {
      handlers = h;
      return () => {
        handlers = null;
      };
    },
  };
  return {
    env,
    goOffline() {
      online = false;
      handlers?.offline();
    },
    goOnline() {
      online = true;
      handlers?.online();
    },
    visible() {
      handlers?.visible();
    },
  };
}

const STORE = 'store_demo';
const topicOf = (id: string) => `stockbridge/${STORE}/products/${id}/stock`;
const WILDCARD = `stockbridge/${STORE}/products/+/stock`;
const productIds = (n: number) => Array.from({ length: n }, (_, i) => `prod_${String(i + 1).padStart(2, '0')}`);
const level = (id: string, available: number, version: number) =>
  JSON.stringify({ product_id: id, store_id: STORE, available, sold_out: available === 0, version, updated_at: 'x' });

describe('subscribePackets / grantedFilters', () => {
  it('splits filters into packets of at most 8, never more even if asked', () => {
    const f = productIds(20).map(topicOf);
    expect(subscribePackets(f).map((p) => p.length)).toEqual([8, 8, 4]);
    expect(subscribePackets(f, 3).map((p) => p.length)).toEqual([3, 3, 3, 3, 3, 3, 2]);
    expect(subscribePackets(f, 100).every((p) => p.length <= MAX_FILTERS_PER_SUBSCRIBE)).toBe(true);
    expect(subscribePackets(f).flat()).toEqual(f);
    expect(subscribePackets([])).toEqual([]);
  });

  it('reads per-filter SUBACK codes, also from the error mqtt.js reports for a partial refusal', () => {
    const f = ['a', 'b', 'c'];
    expect(grantedFilters(f, null, [{ topic: 'a', qos: 1 }, { topic: 'b', qos: 0 }, { topic: 'c', qos: 1 }], { granted: [1, 0, 1] })).toEqual([
      true,
      true,
      true,
    ]);
    const err = Object.assign(new Error('Subscribe error'), { code: 128 });
    // mqtt.js: the callback's `granted` then still holds the QoS asked for; the packet has the truth.
    expect(grantedFilters(f, err, f.map((topic) => ({ topic, qos: 1 })), { granted: [1, 128, 1] })).toEqual([true, false, true]);
    // No SUBACK at all (invalid filter, client closing): nothing granted.
    expect(grantedFilters(f, new Error('client disconnecting'), undefined, undefined)).toEqual([false, false, false]);
    // A broker answering with the wrong number of codes is not trusted.
    expect(grantedFilters(f, null, undefined, { granted: [1] })).toEqual([false, false, false]);
  });
});

describe('StockConnection', () => {
  let clients: FakeClient[];
  let states: ConnectionState[];
  let messages: [string, string][];
  let urls: number;
  /** The broker's retained messages (topic → payload) and SUBACK codes for the next clients. */
  let retained: Map<string, string>;
  let suback: (topic: string, qos: number) => number;

  beforeEach(() => {
    vi.useFakeTimers();
    clients = [];
    states = [];
    messages = [];
    urls = 0;
    retained = new Map();
    suback = (_t, qos) => qos;
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function make(extra: Partial<ConstructorParameters<typeof StockConnection>[0]> = {}) {
    const e = fakeEnv();
    const conn = new StockConnection({
      connect: (url, opts) => {
        const c = new FakeClient(url, opts, retained);
        c.suback = (t, q) => suback(t, q);
        clients.push(c);
        return c;
      },
      url: async () => `ws://127.0.0.1:9001/?n=${++urls}`,
      topicFilters: stockSubscriptions('stockbridge', STORE, ['prod_1', 'prod_2', 'prod_3']).filters,
      onState: (s) => states.push(s),
      onMessage: (t, p) => messages.push([t, new TextDecoder().decode(p)]),
      random: () => 1,
      env: e.env,
      log: () => undefined,
      ...extra,
    });
    return { conn, ...e };
  }

  /** A connection wired to the stock state the way main.ts does it. */
  function makeStore(ids: string[], extra: Partial<ConstructorParameters<typeof StockConnection>[0]> = {}) {
    const subs = stockSubscriptions('stockbridge', STORE, ids);
    const box: { state: StoreState } = {
      state: initialState(
        STORE,
        ids.map((product_id) => ({ product_id, available: 5, version: 1 })),
      ),
    };
    const refused: string[] = [];
    const made = make({
      topicFilters: subs.filters,
      onState: (s) => {
        states.push(s);
        box.state = setConnection(box.state, s);
      },
      onMessage: (t, p) => {
        box.state = applyMessage(box.state, p, t).state;
      },
      onFiltersRefused: (filters) => {
        refused.push(...filters);
        box.state = markNotLive(box.state, filters.flatMap((f) => subs.productsByFilter.get(f) ?? []));
      },
      ...extra,
    });
    return { ...made, box, subs, refused };
  }

  it('connects, subscribes with QoS 1 and passes messages on; never auto-reconnects inside mqtt.js', async () => {
    const { conn } = make();
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(states).toEqual(['connecting']);
    expect(clients).toHaveLength(1);
    const c = clients[0];
    expect(c.opts).toMatchObject({ reconnectPeriod: 0, clean: true, protocolVersion: 4, keepalive: 10 });
    expect(String(c.opts.clientId)).toMatch(/^stockbridge-web-[0-9a-f]{16}$/);
    c.emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(states).toEqual(['connecting', 'connected']);
    expect(c.subscriptions.every((s) => s.qos === 1)).toBe(true);
    c.emit('message', topicOf('prod_1'), new TextEncoder().encode('{"x":1}'));
    expect(messages).toEqual([[topicOf('prod_1'), '{"x":1}']]);
    conn.stop();
    expect(c.ended).toBe(true);
  });

  it('3 products: subscribes to exactly their 3 stock topics (no wildcard), in one packet', async () => {
    const { conn } = make();
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    const filters = clients[0].subscriptions.map((s) => s.topic);
    expect(new Set(filters)).toEqual(new Set([topicOf('prod_1'), topicOf('prod_2'), topicOf('prod_3')]));
    expect(filters).toHaveLength(3);
    expect(filters).not.toContain(WILDCARD);
    expect(clients[0].packets).toEqual([{ topics: [topicOf('prod_1'), topicOf('prod_2'), topicOf('prod_3')], qos: 1 }]);
    conn.stop();
  });

  it('60 products: the first 49 exact topics plus the wildcard, in packets of at most 8', async () => {
    const ids = productIds(60);
    const { conn } = makeStore(ids);
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    const c = clients[0];
    const filters = c.subscriptions.map((s) => s.topic);
    expect(filters).toHaveLength(50);
    expect(new Set(filters)).toEqual(new Set([...ids.slice(0, 49).map(topicOf), WILDCARD]));
    expect(c.packets.length).toBe(Math.ceil(50 / 8));
    for (const p of c.packets) {
      expect(p.topics.length).toBeGreaterThan(0);
      expect(p.topics.length).toBeLessThanOrEqual(8);
      expect(p.qos).toBe(1);
    }
    expect(conn.connectionState).toBe('connected');
    conn.stop();
  });

  it('a retained message on an exact topic makes that product live (the wildcard gets none, as on AWS)', async () => {
    const ids = productIds(60);
    retained.set(topicOf('prod_02'), level('prod_02', 3, 2)); // exact subscription
    retained.set(topicOf('prod_55'), level('prod_55', 7, 2)); // covered by the wildcard only
    const { conn, box } = makeStore(ids);
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(productStock(box.state, 'prod_02')).toMatchObject({ available: 3, version: 2, live: true });
    // No retained message through the wildcard: the catalog's level stays "last known"…
    expect(productStock(box.state, 'prod_55')).toMatchObject({ available: 5, version: 1, live: false });
    expect(productStock(box.state, 'prod_01').live).toBe(false);
    // …until its stock changes.
    clients[0].emit('message', topicOf('prod_55'), new TextEncoder().encode(level('prod_55', 6, 3)));
    expect(productStock(box.state, 'prod_55')).toMatchObject({ available: 6, version: 3, live: true });
    conn.stop();
  });

  it('a refused filter marks only its product not live; the connection and the others stay up', async () => {
    const ids = ['prod_1', 'prod_2', 'prod_3'];
    for (const id of ids) retained.set(topicOf(id), level(id, 4, 2));
    suback = (t, qos) => (t === topicOf('prod_2') ? 0x80 : qos);
    const onRefused = vi.fn();
    const { conn, box, refused } = makeStore(ids, { onRefused, offlineAfter: 100 });
    conn.start();
    // A first attempt fails, so the next delay would be 2 s unless a grant resets the backoff.
    await vi.advanceTimersByTimeAsync(0);
    clients[0].drop();
    await vi.advanceTimersByTimeAsync(1000);
    const c = clients[1];
    c.emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(onRefused).not.toHaveBeenCalled();
    expect(refused).toEqual([topicOf('prod_2')]);
    expect(c.ended).toBe(false);
    expect(conn.connectionState).toBe('connected');
    expect(productStock(box.state, 'prod_1').live).toBe(true);
    expect(productStock(box.state, 'prod_2')).toMatchObject({ available: 5, version: 1, live: false });
    expect(productStock(box.state, 'prod_3').live).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(clients).toHaveLength(2);
    // The partly granted subscription counts as a good connection: the backoff was reset.
    c.drop();
    await vi.advanceTimersByTimeAsync(999);
    expect(clients).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(clients).toHaveLength(3);
    conn.stop();
  });

  it('with 60 products, a refused exact topic or wildcard leaves the other packets granted', async () => {
    const ids = productIds(60);
    for (const id of ids) retained.set(topicOf(id), level(id, 4, 2));
    suback = (t, qos) => (t === WILDCARD || t === topicOf('prod_10') ? 0x80 : qos);
    const { conn, box, refused } = makeStore(ids);
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].emit('connect');
    // A level that arrived before the SUBACK refusing its filter does not stay live.
    box.state = applyMessage(box.state, level('prod_10', 4, 2), topicOf('prod_10')).state;
    expect(productStock(box.state, 'prod_10').live).toBe(true);
    await vi.advanceTimersByTimeAsync(0);
    expect([...refused].sort()).toEqual([topicOf('prod_10'), WILDCARD].sort());
    expect(productStock(box.state, 'prod_10').live).toBe(false);
    expect(ids.slice(0, 49).filter((id) => !productStock(box.state, id).live)).toEqual(['prod_10']);
    expect(ids.slice(49).every((id) => !productStock(box.state, id).live)).toBe(true);
    expect(conn.connectionState).toBe('connected');
    expect(clients[0].ended).toBe(false);
    conn.stop();
  });

  it('calls onFiltersRefused with exactly the refused filters', async () => {
    suback = (t, qos) => (t === topicOf('prod_3') ? 0x80 : qos);
    const onFiltersRefused = vi.fn();
    const onRefused = vi.fn();
    const { conn } = make({ onFiltersRefused, onRefused });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(onFiltersRefused).toHaveBeenCalledTimes(1);
    expect(onFiltersRefused).toHaveBeenCalledWith([topicOf('prod_3')]);
    expect(onRefused).not.toHaveBeenCalled();
    conn.stop();
  });

  it('asks for a 10 s MQTT keepalive on every connection (overridable)', async () => {
    expect(KEEPALIVE_S).toBe(10);
    const { conn } = make({ offlineAfter: 100 });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    clients[0].drop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(clients).toHaveLength(2);
    expect(clients.map((c) => c.opts.keepalive)).toEqual([10, 10]);
    conn.stop();
    const other = make({ keepaliveS: 45 });
    other.conn.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(clients[2].opts.keepalive).toBe(45);
    other.conn.stop();
  });

  it('uses the client id prefix the URL provider gives (Cognito: the identity id)', async () => {
    const { conn } = make({
      url: async () => ({ url: 'wss://example/mqtt', clientIdPrefix: 'us-east-1:0000-aaaa-' }),
      clientIdPrefix: 'ignored-',
    });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(clients[0].url).toBe('wss://example/mqtt');
    expect(String(clients[0].opts.clientId)).toMatch(/^us-east-1:0000-aaaa-[0-9a-f]{16}$/);
    conn.stop();
  });

  it('reconnects after a drop with growing delays and a fresh URL each time', async () => {
    const { conn } = make({ offlineAfter: 100 });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    clients[0].drop();
    expect(states.at(-1)).toBe('reconnecting');

    // Attempt 1 after 1 s (random() = 1), then 2 s, then 4 s.
    await vi.advanceTimersByTimeAsync(999);
    expect(clients).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(clients).toHaveLength(2);
    expect(clients[1].url).toBe('ws://127.0.0.1:9001/?n=2');
    clients[1].emit('error', Object.assign(new Error('ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    await vi.advanceTimersByTimeAsync(1999);
    expect(clients).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(clients).toHaveLength(3);
    clients[2].drop();
    await vi.advanceTimersByTimeAsync(3999);
    expect(clients).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(clients).toHaveLength(4);

    // A granted subscription resets the backoff.
    clients[3].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(states.at(-1)).toBe('connected');
    clients[3].drop();
    await vi.advanceTimersByTimeAsync(1000);
    expect(clients).toHaveLength(5);
    conn.stop();
  });

  it('shows offline after repeated failures, and keeps trying', async () => {
    const { conn } = make({ offlineAfter: 3 });
    conn.start();
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(0);
      clients[i].drop();
      expect(states.at(-1)).toBe(i < 2 ? 'reconnecting' : 'offline');
      await vi.advanceTimersByTimeAsync(30_000);
    }
    expect(clients.length).toBe(4);
    conn.stop();
  });

  it('is offline when the browser is, and retries at once when it is back', async () => {
    const { conn, goOffline, goOnline } = make();
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    goOffline();
    expect(states.at(-1)).toBe('offline');
    expect(clients[0].ended).toBe(true);
    goOnline();
    await vi.advanceTimersByTimeAsync(0);
    expect(clients).toHaveLength(2);
    conn.stop();
  });

  it('treats every subscription refused as a failure and tells the credential provider', async () => {
    suback = () => 0x80;
    const onRefused = vi.fn();
    const onFiltersRefused = vi.fn();
    const { conn } = makeStore(productIds(20), { onRefused, onFiltersRefused, offlineAfter: 100 });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(clients[0].packets).toHaveLength(3);
    expect(onRefused).toHaveBeenCalledTimes(1);
    expect(clients[0].ended).toBe(true);
    expect(states.at(-1)).toBe('reconnecting');
    // The backoff was not reset: the next attempts wait 1 s, then 2 s.
    await vi.advanceTimersByTimeAsync(1000);
    expect(clients).toHaveLength(2);
    clients[1].emit('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(onRefused).toHaveBeenCalledTimes(2);
    await vi.advanceTimersByTimeAsync(1999);
    expect(clients).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(clients).toHaveLength(3);
    conn.stop();
  });

  it('retries when preparing the URL fails (e.g. Cognito unreachable)', async () => {
    let fail = true;
    const { conn } = make({
      url: async () => {
        if (fail) throw new Error('network');
        return 'ws://127.0.0.1:9001/';
      },
    });
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(clients).toHaveLength(0);
    expect(states.at(-1)).toBe('reconnecting');
    fail = false;
    await vi.advanceTimersByTimeAsync(1000);
    expect(clients).toHaveLength(1);
    conn.stop();
  });

  it('does nothing after stop', async () => {
    const { conn, visible } = make();
    conn.start();
    await vi.advanceTimersByTimeAsync(0);
    clients[0].drop();
    conn.stop();
    visible();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(clients).toHaveLength(1);
  });
});

/**
 * The real mqtt.js against a broker that accepts the connection and then goes silent, the way a
 * dead network looks from the browser (the socket stays open, nothing comes back). Only the
 * keepalive can notice; with the default 10 s it must within 15 s. The keepalive timer (mqtt.js's
 * `setInterval`) is faked so the test does not wait; sockets and every other timer are real.
 */
describe('StockConnection with mqtt.js and a silent broker', () => {
  let server: Server;
  let port: number;
  const sockets = new Set<Socket>();
  let pings = 0;

  beforeEach(async () => {
    pings = 0;
    server = createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.on('error', () => undefined);
      let connected = false;
      sock.on('data', (data: Buffer) => {
        if (!connected && data[0] >> 4 === 1) {
          // CONNECT -> CONNACK (accepted, no session); everything after it goes unanswered.
          connected = true;
          sock.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
        } else if (data.includes(0xc0)) {
          pings++; // PINGREQ: no PINGRESP, ever.
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  afterEach(async () => {
    vi.useRealTimers();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('notices a dead connection within 15 s (keepalive 10 s) and marks it reconnecting', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const states: ConnectionState[] = [];
    const opts: IClientOptions[] = [];
    const conn = new StockConnection({
      connect: (url, o) => {
        opts.push(o);
        return mqtt.connect(url, o) as unknown as MqttClientLike;
      },
      url: async () => `mqtt://127.0.0.1:${port}`,
      topicFilters: [],
      onState: (s) => states.push(s),
      onMessage: () => undefined,
      // No retry during the test.
      baseMs: 600_000,
      maxMs: 600_000,
      random: () => 1,
      env: { isOnline: () => true, listen: () => () => undefined },
      log: () => undefined,
    });
    try {
      conn.start();
      await until('connected', () => states.includes('connected'));
      expect(opts[0].keepalive).toBe(10);

      // Quiet for 10 s: mqtt.js pings.
      vi.advanceTimersByTime(10_000);
      await until('a PINGREQ', () => pings > 0);
      // No answer: still "connected" just before 15 s ...
      vi.advanceTimersByTime(4_999);
      await new Promise((r) => setTimeout(r, 20));
      expect(states.at(-1)).toBe('connected');
      // ... and dropped at 15 s: the counts are no longer shown as live.
      vi.advanceTimersByTime(1);
      await until('reconnecting', () => states.at(-1) === 'reconnecting');
      expect(states).toEqual(['connecting', 'connected', 'reconnecting']);
    } finally {
      conn.stop();
    }
  });
});
