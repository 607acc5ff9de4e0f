/**
 * The payment step after a hold: confirm the PaymentIntent, then wait for stockbridge to capture
 * it (paid) or cancel it (the hold expired and the stock is gone).
 *
 * Two confirmers share one poller:
 * - `FakeStripeApi`: local development against the fake Stripe (`stripeApiBase`): a form POST to
 *   `/v1/payment_intents/{pi}/confirm` with a test PaymentMethod and the publishable key, then
 *   `GET /v1/payment_intents/{pi}?client_secret=…`. Never loads Stripe.js.
 * - Stripe.js (`./stripe-element`, loaded lazily): the Payment Element.
 */

export type PaymentOutcome = 'succeeded' | 'canceled' | 'declined' | 'timeout' | 'error';

export type PaymentPhase = 'ready' | 'confirming' | 'processing' | PaymentOutcome;

export const PAYMENT_MESSAGES: Record<PaymentPhase, string> = {
  ready: '',
  confirming: 'Confirming your payment…',
  processing: 'Payment authorised; confirming your order…',
  succeeded: 'Paid — your order is confirmed',
  canceled: 'This hold expired and the items sold out: your card was not charged',
  declined: 'Card declined — your items were released',
  timeout: 'Your payment is still being processed. You will get an e-mail receipt once it is confirmed.',
  error: 'The payment could not be completed.',
};

/** The PaymentIntent id of a client secret (`pi_123_secret_abc` → `pi_123`). */
export function paymentIntentId(clientSecret: string): string {
  const i = clientSecret.indexOf('_secret_');
  const id = i > 0 ? clientSecret.slice(0, i) : '';
  if (!/^pi_[A-Za-z0-9]+$/.test(id)) throw new Error('not a PaymentIntent client secret');
  return id;
}

/**
 * What a PaymentIntent status means for the buyer. `declinedOnce`: a confirmation was declined
 * (then `requires_payment_method` is the end: stockbridge releases the hold on
 * `payment_intent.payment_failed`). `null`: not final yet, keep polling.
 */
export function outcomeOf(status: string, declinedOnce: boolean): PaymentOutcome | null {
  switch (status) {
    case 'succeeded':
      return 'succeeded';
    case 'canceled':
      return 'canceled';
    case 'requires_payment_method':
      return declinedOnce ? 'declined' : null;
    default:
      // requires_capture (authorised, stockbridge captures it), processing, requires_action…
      return null;
  }
}

export interface PollOptions {
  intervalMs?: number;
  timeoutMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Stop early (the page went away). */
  signal?: AbortSignal;
}

/**
 * Polls `retrieve()` every `intervalMs` (1 s) for up to `timeoutMs` (30 s) until the status is
 * final (`outcomeOf`). Errors while polling are tolerated until the time is up.
 */
export async function pollOutcome(
  retrieve: () => Promise<{ status: string }>,
  declinedOnce: boolean,
  opts: PollOptions = {},
): Promise<PaymentOutcome> {
  const interval = opts.intervalMs ?? 1000;
  const timeout = opts.timeoutMs ?? 30_000;
  const now = opts.now ?? (() => Date.now());
  const wait = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const end = now() + timeout;
  for (;;) {
    if (opts.signal?.aborted) return 'timeout';
    try {
      const pi = await retrieve();
      const outcome = outcomeOf(pi.status, declinedOnce);
      if (outcome) return outcome;
    } catch {
      // a failed poll is retried until the time is up
    }
    if (now() + interval > end) return 'timeout';
    await wait(interval);
  }
}

export interface ConfirmResult {
  /** The PaymentIntent's status after the confirmation, if known. */
  status: string | null;
  /** The card was declined (Stripe's `card_error`). */
  declined: boolean;
  /** Another error: the message to show (the PaymentIntent may be untouched). */
  error: string | null;
}

export const TEST_CARD = 'pm_card_visa';
export const TEST_CARD_DECLINED = 'pm_card_chargeDeclined';

/** The fake Stripe's browser-facing PaymentIntent calls, with the publishable key. */
export class FakeStripeApi {
  readonly paymentIntent: string;
  private readonly base: string;
  private readonly fetch: typeof fetch;

  constructor(
    apiBase: string,
    private readonly publishableKey: string,
    private readonly clientSecret: string,
    fetchImpl: typeof fetch = (...a) => fetch(...a),
  ) {
    this.base = apiBase.replace(/\/+$/, '');
    this.paymentIntent = paymentIntentId(clientSecret);
    this.fetch = fetchImpl;
  }

  private headers(): Record<string, string> {
    return { Authorization: `Bearer ${this.publishableKey}`, Accept: 'application/json' };
  }

  confirmRequest(paymentMethod: string): { url: string; init: RequestInit } {
    return {
      url: `${this.base}/v1/payment_intents/${encodeURIComponent(this.paymentIntent)}/confirm`,
      init: {
        method: 'POST',
        headers: { ...this.headers(), 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ payment_method: paymentMethod, client_secret: this.clientSecret }).toString(),
        cache: 'no-store',
        credentials: 'omit',
      },
    };
  }

  retrieveUrl(): string {
    const q = new URLSearchParams({ client_secret: this.clientSecret });
    return `${this.base}/v1/payment_intents/${encodeURIComponent(this.paymentIntent)}?${q.toString()}`;
  }

  async confirm(paymentMethod: string): Promise<ConfirmResult> {
    const { url, init } = this.confirmRequest(paymentMethod);
    let res: Response;
    try {
      res = await this.fetch(url, init);
    } catch (e) {
      return { status: null, declined: false, error: `Stripe could not be reached${e instanceof Error && e.message ? ` (${e.message})` : ''}.` };
    }
    const body = (await res.json().catch(() => null)) as Record<string, unknown> | null;
    if (res.ok) {
      return { status: typeof body?.status === 'string' ? body.status : null, declined: false, error: null };
    }
    const err = (body?.error ?? {}) as Record<string, unknown>;
    const pi = err.payment_intent as Record<string, unknown> | undefined;
    if (err.type === 'card_error') {
      return { status: typeof pi?.status === 'string' ? pi.status : null, declined: true, error: null };
    }
    return { status: null, declined: false, error: typeof err.message === 'string' ? err.message : `Stripe answered HTTP ${res.status}.` };
  }

  async retrieve(): Promise<{ status: string }> {
    const res = await this.fetch(this.retrieveUrl(), { headers: this.headers(), cache: 'no-store', credentials: 'omit' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as Record<string, unknown>;
    if (typeof body.status !== 'string') throw new Error('no status');
    return { status: body.status };
  }
}

export interface PaymentFlowOptions extends PollOptions {
  onPhase?: (phase: PaymentPhase, detail?: string) => void;
}

/**
 * One payment: confirm, then poll to the end. Reports `confirming` → `processing` → the
 * outcome through `onPhase`, and returns the outcome (with the error message for `error`).
 */
export async function runPayment(
  confirm: () => Promise<ConfirmResult>,
  retrieve: () => Promise<{ status: string }>,
  opts: PaymentFlowOptions = {},
): Promise<{ outcome: PaymentOutcome; detail?: string }> {
  const report = opts.onPhase ?? (() => {});
  report('confirming');
  const c = await confirm();
  if (c.error !== null) {
    report('error', c.error);
    return { outcome: 'error', detail: c.error };
  }
  const immediate = c.status === null ? null : outcomeOf(c.status, c.declined);
  if (immediate === 'succeeded' || immediate === 'canceled') {
    report(immediate);
    return { outcome: immediate };
  }
  if (!c.declined) report('processing');
  const outcome = await pollOutcome(retrieve, c.declined, opts);
  report(outcome);
  return { outcome };
}
