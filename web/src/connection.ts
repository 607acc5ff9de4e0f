/**
 * The MQTT subscription with our own reconnect policy: mqtt.js's `reconnectPeriod` is a fixed
 * delay and reuses the URL, so it is switched off; every attempt is a fresh client with a fresh
 * URL (a new SigV4 signature, refreshed credentials) after an exponential backoff with jitter.
 * Subscribes to a list of topic filters with QoS 1, in SUBSCRIBE packets of at most 8 filters
 * (AWS IoT Core's limit), and never publishes.
 */
import type { IClientOptions, ISubscriptionGrant } from 'mqtt';
import type { ConnectionState } from './stock';

/** The part of mqtt.js's `MqttClient` used here (so tests can pass a fake). */
export interface MqttClientLike {
  on(event: 'connect', cb: () => void): unknown;
  on(event: 'message', cb: (topic: string, payload: Uint8Array) => void): unknown;
  on(event: 'close' | 'offline' | 'end', cb: () => void): unknown;
  on(event: 'error', cb: (err: Error & { code?: number | string }) => void): unknown;
  /**
   * One call sends one SUBSCRIBE packet with all of `topics` (mqtt.js does so unless its
   * `subscribeBatchSize` option is set, which it is not here). mqtt.js reports a SUBACK with any
   * failure code as an error, with the SUBACK packet (its per-filter return codes) as `packet`.
   */
  subscribe(
    topics: string[],
    opts: { qos: 0 | 1 | 2 },
    cb: (err: Error | null | undefined, granted?: ISubscriptionGrant[], packet?: SubackLike) => void,
  ): unknown;
  end(force?: boolean): unknown;
}

/** The part of a SUBACK packet used here: one return code per filter, in order. */
export interface SubackLike {
  granted?: readonly unknown[];
}

export type MqttConnect = (url: string, opts: IClientOptions) => MqttClientLike;

/** Where to connect: the URL and, optionally, the client id before its random suffix. */
export interface ConnectTarget {
  url: string;
  /** Overrides `ConnectionOptions.clientIdPrefix` for this attempt (e.g. `<cognito identity id>-`). */
  clientIdPrefix?: string;
}

/**
 * MQTT keepalive, in seconds. A network that dies without closing the socket (Wi-Fi gone, a
 * laptop lid, a NAT dropping the mapping) is not seen by the WebSocket; only the keepalive notices
 * it. mqtt.js sends a PINGREQ every `keepalive` seconds and gives up (error "Keepalive timeout",
 * which we treat as a drop: every count becomes "Last known" and we reconnect) when no PINGRESP
 * came back 1.5 × `keepalive` after the last one. 10 s means a dead connection is noticed within
 * about 15 s, so the page never shows a count as live for long after it stopped being so. (AWS IoT
 * Core treats values below 30 s as 30 s for its own, server-side timeout; the client still pings
 * every 10 s and IoT answers each one.)
 */
export const KEEPALIVE_S = 10;

/** AWS IoT Core accepts at most 8 topic filters in one SUBSCRIBE packet. */
export const MAX_FILTERS_PER_SUBSCRIBE = 8;

/** Browser signals: online/offline, and the tab becoming visible (a good moment to retry now). */
export interface Environment {
  isOnline(): boolean;
  /** Returns an unsubscribe function. */
  listen(handlers: { online(): void; offline(): void; visible(): void }): () => void;
}

export function browserEnvironment(): Environment {
  if (typeof window === 'undefined' || typeof document === 'undefined') {
    return { isOnline: () => true, listen: () => () => undefined };
  }
  return {
    isOnline: () => navigator.onLine !== false,
    listen(h) {
      const vis = () => {
        if (document.visibilityState === 'visible') h.visible();
      };
      window.addEventListener('online', h.online);
      window.addEventListener('offline', h.offline);
      document.addEventListener('visibilitychange', vis);
      return () => {
        window.removeEventListener('online', h.online);
        window.removeEventListener('offline', h.offline);
        document.removeEventListener('visibilitychange', vis);
      };
    },
  };
}

export interface ConnectionOptions {
  connect: MqttConnect;
  /**
   * The WebSocket URL for the next attempt (may fetch credentials and sign), or a `ConnectTarget`
   * that also sets the client id prefix.
   */
  url: () => Promise<string | ConnectTarget>;
  /** The topic filters, subscribed on every connection (an empty list subscribes to nothing). */
  topicFilters: readonly string[];
  /** Filters per SUBSCRIBE packet (default and maximum `MAX_FILTERS_PER_SUBSCRIBE`). */
  filtersPerSubscribe?: number;
  onState: (state: ConnectionState) => void;
  onMessage: (topic: string, payload: Uint8Array) => void;
  /**
   * Called when the broker refused us: bad credentials, or every subscription refused (the
   * connection is then dropped and retried).
   */
  onRefused?: () => void;
  /**
   * Called on a connection that stays up when some (not all) filters were refused (SUBACK 0x80),
   * with those filters. May be called once per SUBSCRIBE packet.
   */
  onFiltersRefused?: (filters: string[]) => void;
  /** Default `stockbridge-web-`; a random 16-hex-digit suffix is added per connection. */
  clientIdPrefix?: string;
  /** Backoff: the first retry waits 0.5–1 × `baseMs`, doubling up to `maxMs`. */
  baseMs?: number;
  maxMs?: number;
  /** After this many failed attempts in a row the state is `offline` (retries go on). */
  offlineAfter?: number;
  connectTimeoutMs?: number;
  /** MQTT keepalive in seconds (default `KEEPALIVE_S`, 10). */
  keepaliveS?: number;
  random?: () => number;
  env?: Environment;
  log?: (message: string, detail?: unknown) => void;
}

/**
 * Delay before retry number `attempt` (1-based): exponential, capped, with "equal jitter" (half
 * fixed, half random) so that many storefronts dropped together do not come back together.
 */
export function backoffDelay(attempt: number, random: () => number = Math.random, baseMs = 1000, maxMs = 30_000): number {
  const n = Math.max(1, Math.floor(attempt));
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(n - 1, 30));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(ceiling / 2 + (r * ceiling) / 2);
}

/** 16 random hex digits. */
export function randomSuffix(): string {
  const bytes = new Uint8Array(8);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Splits filters into SUBSCRIBE packets of at most `size` filters each. */
export function subscribePackets(filters: readonly string[], size: number = MAX_FILTERS_PER_SUBSCRIBE): string[][] {
  const n = Math.max(1, Math.min(MAX_FILTERS_PER_SUBSCRIBE, Math.floor(size) || MAX_FILTERS_PER_SUBSCRIBE));
  const out: string[][] = [];
  for (let i = 0; i < filters.length; i += n) out.push(filters.slice(i, i + n));
  return out;
}

function isGrantedQos(code: unknown): boolean {
  return code === 0 || code === 1 || code === 2;
}

/**
 * Which filters of one SUBSCRIBE the broker granted. Without a usable SUBACK (the subscribe failed
 * before it: invalid filter, client closing) every filter counts as refused.
 */
export function grantedFilters(
  filters: readonly string[],
  err: Error | null | undefined,
  granted: readonly ISubscriptionGrant[] | undefined,
  packet: SubackLike | undefined,
): boolean[] {
  const codes = packet?.granted;
  if (Array.isArray(codes) && codes.length === filters.length) {
    // The SUBACK's return codes, in the order of the filters (0x80 = refused).
    return codes.map((c) => isGrantedQos(typeof c === 'object' && c !== null ? (c as { qos?: unknown }).qos : c));
  }
  if (!err && granted && granted.length === filters.length) return granted.map((g) => isGrantedQos(g.qos));
  return filters.map(() => false);
}

export class StockConnection {
  private started = false;
  private stopped = false;
  private generation = 0;
  private attempts = 0;
  private client: MqttClientLike | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private unlisten: (() => void) | null = null;
  private state: ConnectionState | null = null;
  private readonly env: Environment;
  private readonly log: (message: string, detail?: unknown) => void;

  constructor(private readonly o: ConnectionOptions) {
    this.env = o.env ?? browserEnvironment();
    this.log = o.log ?? ((m, d) => console.warn(`[stockbridge] ${m}`, d ?? ''));
  }

  get connectionState(): ConnectionState {
    return this.state ?? 'connecting';
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.setState('connecting');
    this.unlisten = this.env.listen({
      online: () => this.retryNow(),
      offline: () => {
        // The socket is most likely dead; do not wait for the keepalive to notice.
        if (this.client) this.log('browser went offline');
        this.dropCurrent();
        if (!this.client) this.setState('offline');
      },
      visible: () => this.retryNow(),
    });
    void this.attempt();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.unlisten?.();
    this.unlisten = null;
    const c = this.client;
    this.client = null;
    if (c) c.end(true);
  }

  /** If waiting for a retry, retry now (the browser came back online or the tab became visible). */
  retryNow(): void {
    if (this.stopped || !this.started || this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
    void this.attempt();
  }

  private setState(s: ConnectionState): void {
    if (s === this.state && s !== 'connected') return;
    this.state = s;
    this.o.onState(s);
  }

  private dropCurrent(): void {
    const c = this.client;
    if (!c) return;
    this.client = null;
    const gen = this.generation;
    c.end(true);
    this.failed(gen);
  }

  private async attempt(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    const gen = ++this.generation;
    let target: ConnectTarget;
    try {
      const t = await this.o.url();
      target = typeof t === 'string' ? { url: t } : t;
    } catch (e) {
      this.log('could not prepare the connection', e);
      this.failed(gen);
      return;
    }
    if (this.stopped || gen !== this.generation) return;
    let client: MqttClientLike;
    try {
      client = this.o.connect(target.url, {
        clientId: `${target.clientIdPrefix ?? this.o.clientIdPrefix ?? 'stockbridge-web-'}${randomSuffix()}`,
        clean: true,
        protocolVersion: 4,
        reconnectPeriod: 0,
        connectTimeout: this.o.connectTimeoutMs ?? 10_000,
        keepalive: this.o.keepaliveS ?? KEEPALIVE_S,
        resubscribe: false,
      });
    } catch (e) {
      this.log('could not connect', e);
      this.failed(gen);
      return;
    }
    this.client = client;
    let over = false;
    const fail = (why: string, detail?: unknown) => {
      if (over) return;
      over = true;
      if (detail !== undefined) this.log(why, detail);
      if (this.client === client) this.client = null;
      try {
        client.end(true);
      } catch {
        /* already closed */
      }
      this.failed(gen);
    };
    client.on('connect', () => {
      if (over || gen !== this.generation) return;
      this.setState('connected');
      const packets = subscribePackets(this.o.topicFilters, this.o.filtersPerSubscribe);
      if (packets.length === 0) {
        this.attempts = 0;
        return;
      }
      let pending = packets.length;
      let anyGranted = false;
      const refused: string[] = [];
      for (const filters of packets) {
        client.subscribe(filters, { qos: 1 }, (err, granted, packet) => {
          if (over) return;
          const ok = grantedFilters(filters, err, granted, packet);
          const denied = filters.filter((_, i) => !ok[i]);
          if (denied.length < filters.length && !anyGranted) {
            // Only a granted subscription counts as a good connection (a broker that accepts
            // the connection but refuses the topics must not be retried in a tight loop).
            anyGranted = true;
            this.attempts = 0;
          }
          refused.push(...denied);
          pending--;
          if (pending === 0 && !anyGranted) {
            this.o.onRefused?.();
            fail('subscription refused', err ?? refused);
            return;
          }
          if (denied.length > 0) {
            // One refused filter does not take the others down: only its products stay not live.
            this.log(`subscription refused for ${denied.length} of ${filters.length} topic filter(s)`, err ?? denied);
            this.o.onFiltersRefused?.(denied);
          }
        });
      }
    });
    client.on('message', (topic, payload) => {
      if (over) return;
      this.o.onMessage(topic, payload);
    });
    client.on('error', (err) => {
      // CONNACK 4/5 (MQTT 3.1.1) / 0x86, 0x87 (MQTT 5): bad credentials, not authorised.
      if (err && (err.code === 4 || err.code === 5 || err.code === 134 || err.code === 135)) this.o.onRefused?.();
      fail('connection error', err?.message ?? err);
    });
    client.on('close', () => fail('connection closed'));
    client.on('offline', () => fail('connection offline'));
  }

  private failed(gen: number): void {
    if (this.stopped || gen !== this.generation || this.timer !== null) return;
    this.attempts++;
    const offline = !this.env.isOnline() || this.attempts >= (this.o.offlineAfter ?? 6);
    this.setState(offline ? 'offline' : 'reconnecting');
    const delay = backoffDelay(this.attempts, this.o.random, this.o.baseMs ?? 1000, this.o.maxMs ?? 30_000);
    this.timer = setTimeout(() => void this.attempt(), delay);
  }
}
