/**
 * The runtime configuration (`config.json`) and the catalog document. Both are fetched when the
 * page loads, never built into the bundle, so the same `dist/` serves any store and a server may
 * generate `config.json` on the fly.
 */

export type MqttConfig =
  | { auth: 'none'; url: string }
  | { auth: 'cognito'; endpoint: string; region: string; identity_pool_id: string };

export interface Config {
  store_id: string;
  /** `null` when the config does not name one (the catalog's, then `stockbridge`, is used). */
  topic_prefix: string | null;
  /** Absolute URL, resolved against the config file's URL. */
  catalog_url: string;
  mqtt: MqttConfig;
  /** Optional page heading. */
  title: string | null;
  /** MQTT client id prefix; a random suffix is added. */
  client_id_prefix: string;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export const DEFAULT_TOPIC_PREFIX = 'stockbridge';
export const DEFAULT_CLIENT_ID_PREFIX = 'stockbridge-web-';

/**
 * The config file's URL: `config.json` beside the page, or `?config=<url>` if that URL is on the
 * page's own origin (a relative path, or an absolute URL with the page's scheme, host and port).
 *
 * The config decides which catalog (products, prices, payment links, QR codes) the page shows, so
 * a cross-origin `?config=` would let anyone craft a link that makes the shop's own domain show
 * their products and payment links. Such a URL (or one that does not parse, or any override on a
 * page that is not served over http(s)) is ignored with a console warning, and `config.json` is
 * used.
 */
export function configUrl(pageUrl: string, warn: (message: string) => void = console.warn): string {
  const page = new URL(pageUrl);
  const fallback = new URL('config.json', page).href;
  const raw = page.searchParams.get('config');
  if (raw === null || raw.trim() === '') return fallback;
  const override = raw.trim();
  let url: URL | null;
  try {
    url = new URL(override, page);
  } catch {
    url = null;
  }
  // The scheme is compared too: `blob:https://shop…` reports the shop's origin, and on a page
  // without a real origin (`file:`) every `data:`/`file:` URL would share its opaque "null".
  const web = page.protocol === 'https:' || page.protocol === 'http:';
  if (url && web && url.protocol === page.protocol && url.origin === page.origin) return url.href;
  warn(
    `[stockbridge] ignoring ?config=${JSON.stringify(override)}: only a URL on this page's origin ` +
      `(${page.origin}) is accepted; using config.json`,
  );
  return fallback;
}

function str(obj: Record<string, unknown>, key: string, where: string): string {
  const v = obj[key];
  if (typeof v !== 'string' || v.trim() === '') {
    throw new ConfigError(`${where}${key}: a non-empty string is required`);
  }
  return v.trim();
}

function optStr(obj: Record<string, unknown>, key: string, where: string): string | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string' || v.trim() === '') throw new ConfigError(`${where}${key}: must be a non-empty string`);
  return v.trim();
}

/** A topic level: no MQTT wildcards, no `/` (store ids). */
function topicLevel(v: string, what: string): string {
  if (/[+#/\u0000]/.test(v)) throw new ConfigError(`${what}: must not contain '+', '#', '/' or NUL`);
  return v;
}

/** Turns `http(s)` into `ws(s)`; relative URLs resolve against `base`. */
export function websocketUrl(url: string, base: string): string {
  const u = new URL(url, base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new ConfigError(`mqtt.url: must be a ws:// or wss:// URL, got ${u.protocol}`);
  }
  return u.href;
}

/** An IoT endpoint host name; tolerates a pasted `https://host/`. */
export function iotEndpointHost(endpoint: string): string {
  const e = endpoint.trim();
  const host = /^[a-z]+:\/\//i.test(e) ? new URL(e).host : e.replace(/\/.*$/, '');
  if (!/^[A-Za-z0-9.-]+(:\d+)?$/.test(host)) throw new ConfigError('mqtt.endpoint: must be a host name');
  return host;
}

/** Validates a parsed `config.json`. `base` is the URL it was fetched from. */
export function parseConfig(raw: unknown, base: string): Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError('config: a JSON object is required');
  }
  const c = raw as Record<string, unknown>;
  const store_id = topicLevel(str(c, 'store_id', ''), 'store_id');
  const prefix = optStr(c, 'topic_prefix', '');
  if (prefix !== null && /[+#\u0000]/.test(prefix)) {
    throw new ConfigError("topic_prefix: must not contain '+', '#' or NUL");
  }
  const catalog_url = new URL(str(c, 'catalog_url', ''), base).href;
  const m = c.mqtt;
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new ConfigError('mqtt: an object is required');
  const mq = m as Record<string, unknown>;
  const auth = mq.auth ?? 'none';
  let mqtt: MqttConfig;
  if (auth === 'none') {
    mqtt = { auth: 'none', url: websocketUrl(str(mq, 'url', 'mqtt.'), base) };
  } else if (auth === 'cognito') {
    const region = str(mq, 'region', 'mqtt.');
    if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) throw new ConfigError('mqtt.region: not an AWS region');
    mqtt = {
      auth: 'cognito',
      endpoint: iotEndpointHost(str(mq, 'endpoint', 'mqtt.')),
      region,
      identity_pool_id: str(mq, 'identity_pool_id', 'mqtt.'),
    };
  } else {
    throw new ConfigError(`mqtt.auth: "none" or "cognito", got ${JSON.stringify(auth)}`);
  }
  return {
    store_id,
    topic_prefix: prefix,
    catalog_url,
    mqtt,
    title: optStr(c, 'title', ''),
    client_id_prefix: optStr(mq, 'client_id_prefix', 'mqtt.') ?? DEFAULT_CLIENT_ID_PREFIX,
  };
}

// ---------------------------------------------------------------------------------------------
// Catalog

export interface CatalogProduct {
  product_id: string;
  name: string;
  description: string;
  images: string[];
  price: { amount: number; currency: string } | null;
  payment_link: { id: string | null; url: string; active: boolean } | null;
  available: number | null;
  version: number | null;
}

export interface Catalog {
  store_id: string | null;
  generated_at: string | null;
  topic_prefix: string | null;
  products: CatalogProduct[];
  /** Entries that were skipped, with why (for the console). */
  skipped: string[];
}

function safeUrl(v: unknown, base: string): string | null {
  if (typeof v !== 'string' || v.trim() === '') return null;
  try {
    const u = new URL(v.trim(), base);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
  } catch {
    return null;
  }
}

function count(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

/**
 * Reads the catalog document tolerantly: unknown fields are ignored, a product without an id or a
 * name is skipped, a bad price/link/image is dropped (the product then cannot be bought here).
 * Only `http(s)` URLs are kept. Throws only if the document is not an object with `products`.
 */
export function parseCatalog(raw: unknown, base: string): Catalog {
  if (typeof raw !== 'object' || raw === null || !Array.isArray((raw as { products?: unknown }).products)) {
    throw new ConfigError('catalog: an object with a "products" array is required');
  }
  const c = raw as Record<string, unknown>;
  const products: CatalogProduct[] = [];
  const skipped: string[] = [];
  const seen = new Set<string>();
  (c.products as unknown[]).forEach((p, i) => {
    if (typeof p !== 'object' || p === null) {
      skipped.push(`products[${i}]: not an object`);
      return;
    }
    const o = p as Record<string, unknown>;
    if (typeof o.product_id !== 'string' || o.product_id === '' || typeof o.name !== 'string') {
      skipped.push(`products[${i}]: product_id and name are required`);
      return;
    }
    if (seen.has(o.product_id)) {
      skipped.push(`products[${i}]: duplicate ${o.product_id}`);
      return;
    }
    seen.add(o.product_id);
    let price: CatalogProduct['price'] = null;
    const pr = o.price as Record<string, unknown> | null | undefined;
    if (pr && typeof pr === 'object' && Number.isSafeInteger(pr.amount) && typeof pr.currency === 'string' && /^[A-Za-z]{3}$/.test(pr.currency)) {
      price = { amount: pr.amount as number, currency: pr.currency.toLowerCase() };
    }
    let payment_link: CatalogProduct['payment_link'] = null;
    const pl = o.payment_link as Record<string, unknown> | null | undefined;
    if (pl && typeof pl === 'object') {
      const url = safeUrl(pl.url, base);
      if (url) {
        payment_link = { id: typeof pl.id === 'string' ? pl.id : null, url, active: pl.active !== false };
      }
    }
    const images = Array.isArray(o.images) ? o.images.map((u) => safeUrl(u, base)).filter((u): u is string => u !== null) : [];
    products.push({
      product_id: o.product_id,
      name: o.name,
      description: typeof o.description === 'string' ? o.description : '',
      images,
      price,
      payment_link,
      available: count(o.available),
      version: count(o.version),
    });
  });
  return {
    store_id: typeof c.store_id === 'string' ? c.store_id : null,
    generated_at: typeof c.generated_at === 'string' ? c.generated_at : null,
    topic_prefix: typeof c.topic_prefix === 'string' && c.topic_prefix !== '' ? c.topic_prefix : null,
    products,
    skipped,
  };
}

/** Fetches JSON without letting the browser or a CDN serve a stale copy. */
export async function fetchJson(url: string, fetchImpl: typeof fetch = fetch): Promise<unknown> {
  const res = await fetchImpl(url, { cache: 'no-store', headers: { Accept: 'application/json' } });
  if (!res.ok) throw new ConfigError(`${url}: HTTP ${res.status}`);
  try {
    return await res.json();
  } catch {
    throw new ConfigError(`${url}: not JSON`);
  }
}

// ---------------------------------------------------------------------------------------------
// Checkout (optional config fields)

/**
 * The optional checkout fields of `config.json`:
 *
 * - `checkoutUrl`: base URL of the checkout API (`POST {checkoutUrl}/checkout`); relative URLs
 *   resolve against the config file's URL. Without it there is no checkout page.
 * - `stripePublishableKey`: `pk_…`, for Stripe.js (or the local fake Stripe).
 * - `stripeApiBase`: local development only: the fake Stripe's base URL. With it the checkout
 *   page confirms with Stripe's test cards directly against that API and never loads Stripe.js.
 *
 * A field that is present but unusable is dropped (and reported in `problems`), never fatal:
 * the product list must work whatever the checkout settings say.
 */
export interface CheckoutSettings {
  checkoutUrl: string | null;
  stripePublishableKey: string | null;
  stripeApiBase: string | null;
  problems: string[];
}

function httpUrl(v: unknown, base: string): string | null {
  if (typeof v !== 'string' || v.trim() === '') return null;
  try {
    const u = new URL(v.trim(), base);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : null;
  } catch {
    return null;
  }
}

export function parseCheckoutSettings(raw: unknown, base: string): CheckoutSettings {
  const out: CheckoutSettings = { checkoutUrl: null, stripePublishableKey: null, stripeApiBase: null, problems: [] };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return out;
  const c = raw as Record<string, unknown>;
  const url = (key: 'checkoutUrl' | 'stripeApiBase') => {
    if (c[key] === undefined || c[key] === null) return null;
    const u = httpUrl(c[key], base);
    if (u === null) out.problems.push(`${key}: must be an http(s) URL; ignored`);
    return u;
  };
  out.checkoutUrl = url('checkoutUrl');
  out.stripeApiBase = url('stripeApiBase');
  const pk = c.stripePublishableKey;
  if (pk !== undefined && pk !== null) {
    if (typeof pk === 'string' && /^pk_(test|live)_[A-Za-z0-9_]+$/.test(pk.trim())) out.stripePublishableKey = pk.trim();
    else out.problems.push('stripePublishableKey: must be a publishable key (pk_test_… or pk_live_…); ignored');
  }
  return out;
}

/** The page URL of the checkout for one product (relative to the storefront page). */
export function checkoutPageHref(pageUrl: string, storeId: string, productId: string): string {
  const page = new URL(pageUrl);
  const q = new URLSearchParams({ store: storeId, product: productId });
  // Carry a (same-origin, validated again there) config override over to the checkout page.
  const cfg = page.searchParams.get('config');
  if (cfg !== null && cfg.trim() !== '') q.set('config', cfg);
  return `checkout.html?${q.toString()}`;
}
