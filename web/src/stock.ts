/**
 * The storefront's stock state: pure functions, no DOM, no network, never throws.
 *
 * The contract (README "The stock topic"): topic `{prefix}/{store_id}/products/{product_id}/stock`,
 * QoS 1, retained, payload `{"product_id","store_id","available","sold_out","version","updated_at","held"}`
 * (`held`: units pending checkouts hold; optional, older publishers omit it).
 * `version` strictly increases per item; a message whose version is not newer than the one shown
 * is dropped. A count is *live* only if it was received (or re-confirmed by a retained message of
 * the same version) during the current connection; every other count is "last known".
 */

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'offline';

export const CONNECTION_STATES: readonly ConnectionState[] = [
  'connecting',
  'connected',
  'reconnecting',
  'offline',
];

/** A decoded, validated stock message. */
export interface StockMessage {
  product_id: string;
  store_id: string;
  available: number;
  sold_out: boolean;
  version: number;
  updated_at: string | null;
}

/** What the page shows for one product. */
export interface ProductStock {
  /** Units available; `null` when nothing is known yet. */
  readonly available: number | null;
  /** The version shown; `-1` when nothing is known yet (any message is newer). */
  readonly version: number;
  readonly sold_out: boolean;
  /** Received or re-confirmed during the current connection. */
  readonly live: boolean;
  readonly updated_at: string | null;
}

export interface StoreState {
  readonly store_id: string;
  readonly connection: ConnectionState;
  readonly products: ReadonlyMap<string, ProductStock>;
}

/** A snapshot level, e.g. from the catalog document. */
export interface SnapshotLevel {
  product_id: string;
  available?: number | null;
  version?: number | null;
}

export type ApplyOutcome =
  /** A newer version: the level changed (or was learnt) and is live. */
  | 'applied'
  /** The same version and level as shown: now live again (e.g. a retained message after reconnect). */
  | 'confirmed'
  /** Older than shown, or the same version already live: nothing changed. */
  | 'stale'
  /** The same version as shown but a different level: dropped and not confirmed. */
  | 'conflict'
  /** Another store, or the topic names another product. */
  | 'foreign'
  /** Not JSON, or a field missing or of the wrong type. */
  | 'malformed';

export interface ApplyResult {
  readonly state: StoreState;
  readonly outcome: ApplyOutcome;
  /** The product the message was about, when it could be read. */
  readonly product_id: string | null;
}

const UNKNOWN: ProductStock = {
  available: null,
  version: -1,
  sold_out: false,
  live: false,
  updated_at: null,
};

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** The state before any connection: every snapshot level is "last known" (not live). */
export function initialState(storeId: string, snapshot: readonly SnapshotLevel[] = []): StoreState {
  const products = new Map<string, ProductStock>();
  for (const s of snapshot) {
    if (typeof s.product_id !== 'string' || s.product_id === '') continue;
    const available = isCount(s.available) ? s.available : null;
    products.set(s.product_id, {
      available,
      version: available !== null && isCount(s.version) ? s.version : -1,
      sold_out: available === 0,
      live: false,
      updated_at: null,
    });
  }
  return { store_id: storeId, connection: 'connecting', products };
}

function decodeText(payload: unknown): string | null {
  if (typeof payload === 'string') return payload;
  if (payload instanceof Uint8Array) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(payload);
    } catch {
      return null;
    }
  }
  if (payload instanceof ArrayBuffer) return decodeText(new Uint8Array(payload));
  return null;
}

/**
 * Decodes and validates a payload (string, bytes or an already parsed object). Returns `null` for
 * anything that is not a well-formed stock message. Does not check the store.
 */
export function parseStockMessage(payload: unknown): StockMessage | null {
  let value: unknown = payload;
  if (typeof payload === 'string' || payload instanceof Uint8Array || payload instanceof ArrayBuffer) {
    const text = decodeText(payload);
    if (text === null) return null;
    try {
      value = JSON.parse(text);
    } catch {
      return null;
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.product_id !== 'string' || v.product_id === '') return null;
  if (typeof v.store_id !== 'string' || v.store_id === '') return null;
  if (!isCount(v.available) || !isCount(v.version)) return null;
  if (typeof v.sold_out !== 'boolean') return null;
  if (v.updated_at !== undefined && v.updated_at !== null && typeof v.updated_at !== 'string') return null;
  return {
    product_id: v.product_id,
    store_id: v.store_id,
    available: v.available,
    // `sold_out` is `available == 0`; if the two ever disagree, err on the side of not selling.
    sold_out: v.sold_out || v.available === 0,
    version: v.version,
    updated_at: typeof v.updated_at === 'string' ? v.updated_at : null,
  };
}

/** The product id a stock topic names, or `null` if the topic is not a stock topic. */
export function productIdFromTopic(topic: string): string | null {
  const parts = topic.split('/');
  if (parts.length < 4) return null;
  if (parts[parts.length - 1] !== 'stock' || parts[parts.length - 3] !== 'products') return null;
  const id = parts[parts.length - 2];
  return id ? id : null;
}

/** The store-wide wildcard filter: `{prefix}/{store_id}/products/+/stock`. */
export function storeTopicFilter(prefix: string, storeId: string): string {
  return `${prefix}/${storeId}/products/+/stock`;
}

/** One product's stock topic (also an exact topic filter): `{prefix}/{store_id}/products/{product_id}/stock`. */
export function productTopic(prefix: string, storeId: string, productId: string): string {
  return `${prefix}/${storeId}/products/${productId}/stock`;
}

/** Whether an id can be one topic level: non-empty, no `/`, no MQTT wildcard, no NUL. */
export function isTopicLevel(id: string): boolean {
  return id !== '' && !/[+#/\u0000]/.test(id);
}

/** AWS IoT Core's default quota of subscriptions per connection. */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 50;

/** What a storefront subscribes to, and which products depend on each filter. */
export interface StockSubscriptions {
  /** Every topic filter, exact product topics first (catalog order), then the wildcard if any. */
  readonly filters: readonly string[];
  /** The store-wide wildcard, when the exact topics do not cover every product; else `null`. */
  readonly wildcard: string | null;
  /**
   * For each filter, the products whose level arrives through it: one product for an exact topic;
   * for the wildcard, the products without an exact subscription.
   */
  readonly productsByFilter: ReadonlyMap<string, readonly string[]>;
  /** Catalog ids that cannot be part of a topic (`/`, `+`, `#`, NUL): never subscribed. */
  readonly skipped: readonly string[];
}

/**
 * The subscriptions for a catalog. AWS IoT Core sends a retained message on SUBSCRIBE only to a
 * filter that matches its topic exactly (never to a wildcard), so every product gets its exact
 * topic, and its retained (current) level arrives at connect. The default quota is 50
 * subscriptions per connection: with more than 49 products, the first 49 get exact topics and the
 * store-wide wildcard `{prefix}/{store_id}/products/+/stock` brings changes for the rest (they keep
 * the catalog's "last known" level until their stock changes). A catalog with no product gets the
 * wildcard alone.
 */
export function stockSubscriptions(
  prefix: string,
  storeId: string,
  productIds: Iterable<string>,
  maxSubscriptions: number = MAX_SUBSCRIPTIONS_PER_CONNECTION,
): StockSubscriptions {
  const ids: string[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  for (const id of productIds) {
    if (seen.has(id)) continue;
    seen.add(id);
    if (isTopicLevel(id)) ids.push(id);
    else skipped.push(id);
  }
  const max = Math.max(1, Math.floor(maxSubscriptions));
  const exactCount = ids.length === 0 ? 0 : ids.length <= max - 1 ? ids.length : max - 1;
  const productsByFilter = new Map<string, readonly string[]>();
  const filters: string[] = [];
  for (const id of ids.slice(0, exactCount)) {
    const topic = productTopic(prefix, storeId, id);
    filters.push(topic);
    productsByFilter.set(topic, [id]);
  }
  let wildcard: string | null = null;
  if (exactCount < ids.length || ids.length === 0) {
    wildcard = storeTopicFilter(prefix, storeId);
    filters.push(wildcard);
    productsByFilter.set(wildcard, ids.slice(exactCount));
  }
  return { filters, wildcard, productsByFilter, skipped };
}

/**
 * Applies one message. Never throws; anything unusable leaves the state as it was (the same object).
 * `topic`, when given, must name the same product as the payload.
 */
export function applyMessage(state: StoreState, payload: unknown, topic?: string): ApplyResult {
  const msg = parseStockMessage(payload);
  if (msg === null) return { state, outcome: 'malformed', product_id: null };
  if (msg.store_id !== state.store_id) return { state, outcome: 'foreign', product_id: msg.product_id };
  if (topic !== undefined && productIdFromTopic(topic) !== msg.product_id) {
    return { state, outcome: 'foreign', product_id: msg.product_id };
  }
  const live = state.connection === 'connected';
  const shown = state.products.get(msg.product_id) ?? UNKNOWN;
  if (msg.version < shown.version) return { state, outcome: 'stale', product_id: msg.product_id };
  if (msg.version === shown.version) {
    if (shown.available !== msg.available || shown.sold_out !== msg.sold_out) {
      return { state, outcome: 'conflict', product_id: msg.product_id };
    }
    if (shown.live || !live) return { state, outcome: 'stale', product_id: msg.product_id };
    const products = new Map(state.products);
    products.set(msg.product_id, { ...shown, live: true, updated_at: msg.updated_at ?? shown.updated_at });
    return { state: { ...state, products }, outcome: 'confirmed', product_id: msg.product_id };
  }
  const products = new Map(state.products);
  products.set(msg.product_id, {
    available: msg.available,
    version: msg.version,
    sold_out: msg.sold_out,
    live,
    updated_at: msg.updated_at,
  });
  return { state: { ...state, products }, outcome: 'applied', product_id: msg.product_id };
}

/**
 * Records a connection state. Every transition makes every count not live: while disconnected
 * nothing is live, and a new connection must re-confirm each count (retained messages do that).
 * Setting the state it already has is a no-op, except `connected`, which always means a new
 * connection (a new CONNACK).
 */
export function setConnection(state: StoreState, next: ConnectionState): StoreState {
  if (next === state.connection && next !== 'connected') return state;
  let anyLive = false;
  for (const p of state.products.values()) {
    if (p.live) {
      anyLive = true;
      break;
    }
  }
  if (!anyLive) return { ...state, connection: next };
  const products = new Map<string, ProductStock>();
  for (const [id, p] of state.products) products.set(id, p.live ? { ...p, live: false } : p);
  return { ...state, connection: next, products };
}

/**
 * Marks products not live (e.g. the broker refused their subscription, so their level cannot be
 * confirmed on this connection). Returns the same object when nothing changes.
 */
export function markNotLive(state: StoreState, productIds: Iterable<string>): StoreState {
  let products: Map<string, ProductStock> | null = null;
  for (const id of productIds) {
    const p = (products ?? state.products).get(id);
    if (!p || !p.live) continue;
    products ??= new Map(state.products);
    products.set(id, { ...p, live: false });
  }
  return products ? { ...state, products } : state;
}

/** The level shown for a product (unknown if never seen). */
export function productStock(state: StoreState, productId: string): ProductStock {
  return state.products.get(productId) ?? UNKNOWN;
}

// ---------------------------------------------------------------------------------------------
// Money

/** Stripe's zero-decimal currencies (amounts are whole units). */
const ZERO_DECIMAL = new Set([
  'bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf',
  'xof', 'xpf',
]);
/** Stripe's three-decimal currencies. */
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

/**
 * How many decimal places Stripe's minor units have for a currency. This is Stripe's table, not
 * ISO 4217's: e.g. ISK is sent with two decimals (always `00`) although it is shown without.
 */
export function minorUnitDigits(currency: string): number {
  const c = currency.toLowerCase();
  if (ZERO_DECIMAL.has(c)) return 0;
  if (THREE_DECIMAL.has(c)) return 3;
  return 2;
}

/** Formats a Stripe amount in minor units, e.g. `(1200, "usd")` → `$12.00`, `(1200, "jpy")` → `¥1,200`. */
export function formatMoney(amount: number, currency: string, locale?: string | string[]): string {
  const digits = minorUnitDigits(currency);
  const value = amount / 10 ** digits;
  try {
    return new Intl.NumberFormat(locale, { style: 'currency', currency: currency.toUpperCase() }).format(value);
  } catch {
    // An unknown currency code or locale: still show something sensible.
    try {
      return `${new Intl.NumberFormat(locale, { minimumFractionDigits: digits }).format(value)} ${currency.toUpperCase()}`;
    } catch {
      return `${value.toFixed(digits)} ${currency.toUpperCase()}`;
    }
  }
}
