/**
 * The checkout API client: `POST {checkoutUrl}/checkout` with
 * `{store_id, items: [{product_id, quantity}], customer_email?}` and an `Idempotency-Key`.
 *
 * - One key per checkout *attempt* (`IdempotencyKeys`): a retry of the same request (network
 *   error, 503, the buyer pressing the button again after such a failure) re-sends the same key,
 *   so the server finds the hold it may already have made; a different request (the buyer
 *   changed the quantity or the e-mail) or a request after a definitive answer gets a new key.
 * - Network errors and 502/503/504 are retried with backoff (honouring `Retry-After`), same key.
 * - 200 → the hold; 409 → what is available; 400 → the field and the message.
 */

export const MAX_QUANTITY = 10;

export interface CheckoutLine {
  product_id: string;
  quantity: number;
}

export interface CheckoutInput {
  storeId: string;
  lines: CheckoutLine[];
  /** Optional; trimmed, omitted when empty. */
  email?: string | null;
}

export interface CheckoutBody {
  store_id: string;
  items: CheckoutLine[];
  customer_email?: string;
}

export function checkoutEndpoint(checkoutUrl: string): string {
  return `${checkoutUrl.replace(/\/+$/, '')}/checkout`;
}

export function checkoutBody(input: CheckoutInput): CheckoutBody {
  const body: CheckoutBody = {
    store_id: input.storeId,
    items: input.lines.map((l) => ({ product_id: l.product_id, quantity: l.quantity })),
  };
  const email = input.email?.trim();
  if (email) body.customer_email = email;
  return body;
}

/** What identifies an attempt: the same signature may reuse the same key. */
export function requestSignature(body: CheckoutBody): string {
  return JSON.stringify([body.store_id, body.items.map((l) => [l.product_id, l.quantity]), body.customer_email ?? null]);
}

export function buildCheckoutRequest(checkoutUrl: string, body: CheckoutBody, idempotencyKey: string): { url: string; init: RequestInit } {
  return {
    url: checkoutEndpoint(checkoutUrl),
    init: {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': idempotencyKey, Accept: 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    },
  };
}

/**
 * Hands out Idempotency-Keys: the same key for the same request until that attempt got a
 * definitive answer (`settle()`), a new one as soon as the request differs.
 */
export class IdempotencyKeys {
  private current: { signature: string; key: string } | null = null;

  constructor(private readonly newKey: () => string = () => crypto.randomUUID()) {}

  keyFor(signature: string): string {
    if (this.current?.signature !== signature) this.current = { signature, key: this.newKey() };
    return this.current.key;
  }

  /** The attempt is over (held, refused): the next request is a new attempt. */
  settle(): void {
    this.current = null;
  }

  /** The key of the attempt in progress, if any (tests, debugging). */
  get key(): string | null {
    return this.current?.key ?? null;
  }
}

export interface Shortfall {
  product_id: string;
  requested: number | null;
  available: number;
}

export type CheckoutResult =
  | {
      kind: 'held';
      clientSecret: string;
      holdId: string | null;
      /** Epoch milliseconds. */
      expiresAt: number;
      amount: number;
      currency: string;
    }
  | { kind: 'short'; message: string; shortfalls: Shortfall[] }
  | { kind: 'invalid'; field: string | null; message: string }
  /** Not definitive: the same request may be sent again with the same key. */
  | { kind: 'unavailable'; status: number | null; message: string }
  | { kind: 'error'; status: number; message: string };

function nonNegInt(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

/** Interprets a checkout API response (status and parsed JSON body, `null` when not JSON). */
export function interpretResponse(status: number, body: unknown): CheckoutResult {
  const o = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  const message = typeof o.message === 'string' && o.message !== '' ? o.message : null;
  if (status === 200 || status === 201) {
    const expires = typeof o.expires_at === 'string' ? Date.parse(o.expires_at) : NaN;
    const amount = nonNegInt(o.amount);
    if (
      typeof o.client_secret !== 'string' ||
      !o.client_secret.includes('_secret_') ||
      Number.isNaN(expires) ||
      amount === null ||
      typeof o.currency !== 'string' ||
      !/^[A-Za-z]{3}$/.test(o.currency)
    ) {
      return { kind: 'error', status, message: 'The checkout service sent an answer this page does not understand.' };
    }
    return {
      kind: 'held',
      clientSecret: o.client_secret,
      holdId: typeof o.hold_id === 'string' ? o.hold_id : null,
      expiresAt: expires,
      amount,
      currency: o.currency.toLowerCase(),
    };
  }
  if (status === 409) {
    const list = Array.isArray(o.available) ? o.available : [];
    const shortfalls: Shortfall[] = [];
    for (const s of list) {
      if (typeof s !== 'object' || s === null) continue;
      const r = s as Record<string, unknown>;
      const available = nonNegInt(r.available);
      if (typeof r.product_id !== 'string' || available === null) continue;
      shortfalls.push({ product_id: r.product_id, requested: nonNegInt(r.requested), available });
    }
    return { kind: 'short', message: message ?? 'Not enough stock.', shortfalls };
  }
  if (status === 400) {
    return {
      kind: 'invalid',
      field: typeof o.field === 'string' && o.field !== '' ? o.field : null,
      message: message ?? 'The request was not accepted.',
    };
  }
  if (status === 502 || status === 503 || status === 504) {
    return { kind: 'unavailable', status, message: message ?? `The checkout service is unavailable (HTTP ${status}).` };
  }
  return { kind: 'error', status, message: message ?? `The checkout service answered HTTP ${status}.` };
}

export interface RetryOptions {
  fetch?: typeof fetch;
  /** Attempts in all (default 5: the first and 4 retries). */
  attempts?: number;
  /** Backoff: `baseDelayMs * 2^n` (default 500 ms), capped at `maxDelayMs` (default 8 s). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Called before each retry (for a "Retrying…" message). */
  onRetry?: (attempt: number, delayMs: number, why: string) => void;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Delay before retry number `n` (0-based), from `Retry-After` when the server gave one. */
export function retryDelay(n: number, retryAfter: string | null, base = 500, max = 8000): number {
  const backoff = Math.min(max, base * 2 ** n);
  const s = retryAfter === null ? NaN : Number(retryAfter);
  return Number.isFinite(s) && s >= 0 ? Math.min(max, Math.max(backoff, s * 1000)) : backoff;
}

/**
 * Sends one checkout attempt: the same URL, body and Idempotency-Key on every try. Retries
 * network errors and 502/503/504; any other answer is returned as is. After the last try the
 * result is `unavailable` (the caller may let the buyer try again: same request, same key).
 */
export async function sendCheckout(url: string, init: RequestInit, opts: RetryOptions = {}): Promise<CheckoutResult> {
  const doFetch = opts.fetch ?? fetch;
  const attempts = Math.max(1, opts.attempts ?? 5);
  const wait = opts.sleep ?? sleep;
  let last: CheckoutResult = { kind: 'unavailable', status: null, message: 'The checkout service could not be reached.' };
  for (let n = 0; n < attempts; n++) {
    let retryAfter: string | null = null;
    try {
      const res = await doFetch(url, init);
      let body: unknown = null;
      try {
        body = await res.json();
      } catch {
        body = null;
      }
      last = interpretResponse(res.status, body);
      if (last.kind !== 'unavailable') return last;
      retryAfter = res.headers.get('Retry-After');
    } catch (e) {
      last = {
        kind: 'unavailable',
        status: null,
        message: `The checkout service could not be reached${e instanceof Error && e.message ? ` (${e.message})` : ''}.`,
      };
    }
    if (n + 1 < attempts) {
      const delay = retryDelay(n, retryAfter, opts.baseDelayMs, opts.maxDelayMs);
      opts.onRetry?.(n + 1, delay, last.message);
      await wait(delay);
    }
  }
  return last;
}

/** "Only 2 left", "Sold out" for a shortfall. */
export function shortfallMessage(s: Shortfall): string {
  return s.available === 0 ? 'Sold out' : `Only ${s.available} left`;
}

/** The quantity field is `items[0].quantity`; what the buyer sees for a field. */
export function fieldLabel(field: string | null): string | null {
  if (field === null) return null;
  if (/^items\[\d+\]\.quantity$/.test(field)) return 'Quantity';
  if (field === 'customer_email') return 'E-mail';
  return field;
}
