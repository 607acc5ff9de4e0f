/**
 * The back-in-stock form ("Notify me") of a sold-out card, when the shop has a checkout API
 * (config `checkoutUrl`). `POST {checkoutUrl}/waitlist` with `{store_id, product_id, email}`:
 *
 * - 202 `{"status":"confirmation_requested"}`: the merchant e-mails a confirmation link (double
 *   opt-in). The same answer whether or not the address was already on the list, so the page
 *   says the same thing every time: "check your inbox".
 * - 400 `{"error":"invalid_request","field","message"}`: with `field: "email"` the buyer can fix
 *   it (the server's message is shown and the input marked invalid); any other field is not the
 *   buyer's to fix and gets the generic message.
 * - 429 `{"retry_after": N}` (and `Retry-After`, which a cross-origin page may not be allowed to
 *   read): "try again in N seconds".
 * - Anything else (403, 413, 415, 503, a network failure, an answer this page does not
 *   understand): a generic "try again" message, never the server's internals.
 *
 * The form validates locally first (`novalidate`, then the input's own `validity`), so the
 * message and `aria-invalid` are the page's, the same in every browser. The typed address is
 * never cleared. DOM hooks: `form[data-testid="notify-form"]` (`data-state`: `idle`, `sending`,
 * `requested`, `error`), `[data-testid="notify-email"]`, `[data-testid="notify-submit"]`,
 * `[data-testid="notify-status"]` (role=status, the form's own live region).
 */

export interface WaitlistOptions {
  /** The checkout API's base URL (absolute, from `parseCheckoutSettings`). */
  checkoutUrl: string;
  storeId: string;
  fetch?: typeof fetch;
}

export interface WaitlistBody {
  store_id: string;
  product_id: string;
  email: string;
}

export type WaitlistResult =
  | { kind: 'requested' }
  | { kind: 'invalid_email'; message: string }
  /** `retryAfter`: seconds, when the server said. */
  | { kind: 'throttled'; retryAfter: number | null }
  | { kind: 'failed' };

export const WAITLIST_MESSAGES = {
  label: 'E-mail me when it is back',
  button: 'Notify me',
  sending: 'Sending…',
  requested: 'Almost done: check your inbox to confirm.',
  missing: 'Enter your e-mail address.',
  malformed: 'Enter a valid e-mail address, like name@example.com.',
  badEmail: 'Check the e-mail address and try again.',
  failed: 'Sorry, that did not work. Please try again in a moment.',
} as const;

/** The longest server message shown as is (a longer one is not meant for the buyer). */
const MAX_SERVER_MESSAGE = 300;

export function waitlistEndpoint(checkoutUrl: string): string {
  return `${checkoutUrl.replace(/\/+$/, '')}/waitlist`;
}

export function buildWaitlistRequest(checkoutUrl: string, body: WaitlistBody): { url: string; init: RequestInit } {
  return {
    url: waitlistEndpoint(checkoutUrl),
    init: {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ store_id: body.store_id, product_id: body.product_id, email: body.email }),
      cache: 'no-store',
      credentials: 'omit',
    },
  };
}

function seconds(v: unknown): number | null {
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.ceil(v);
  if (typeof v === 'string' && /^\d+$/.test(v.trim())) return Number(v.trim());
  return null;
}

/** Interprets an answer: its status, its parsed JSON body (`null` if none) and `Retry-After`. */
export function interpretWaitlistResponse(status: number, body: unknown, retryAfter: string | null = null): WaitlistResult {
  const o = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  if (status >= 200 && status < 300) return { kind: 'requested' };
  if (status === 400 && o.field === 'email') {
    const m = typeof o.message === 'string' ? o.message.trim() : '';
    const ok = m !== '' && m.length <= MAX_SERVER_MESSAGE;
    return { kind: 'invalid_email', message: ok ? m : WAITLIST_MESSAGES.badEmail };
  }
  if (status === 429) return { kind: 'throttled', retryAfter: seconds(o.retry_after) ?? seconds(retryAfter) };
  return { kind: 'failed' };
}

/** Sends one request (no automatic retry: the buyer presses the button again). */
export async function sendWaitlist(url: string, init: RequestInit, fetchImpl: typeof fetch): Promise<WaitlistResult> {
  let res: Response;
  try {
    res = await fetchImpl(url, init);
  } catch (e) {
    if (init.signal?.aborted) throw e;
    return { kind: 'failed' };
  }
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  return interpretWaitlistResponse(res.status, body, res.headers.get('Retry-After'));
}

/** What the status line says for an answer. */
export function waitlistMessage(r: WaitlistResult): string {
  switch (r.kind) {
    case 'requested':
      return WAITLIST_MESSAGES.requested;
    case 'invalid_email':
      return r.message;
    case 'throttled':
      if (r.retryAfter === null || r.retryAfter <= 0) return 'Too many requests. Please try again in a moment.';
      return `Too many requests. Please try again in ${r.retryAfter} second${r.retryAfter === 1 ? '' : 's'}.`;
    case 'failed':
      return WAITLIST_MESSAGES.failed;
  }
}

function el<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, attrs: Record<string, string>, text?: string): HTMLElementTagNameMap[K] {
  const e = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

export type WaitlistState = 'idle' | 'sending' | 'requested' | 'error';

/**
 * One card's form. `idBase` must be unique in the page (the label and the status are tied to
 * the input by id). Created when the product sells out, `destroy()`ed when it is back: it is
 * never rebuilt in between, so what the buyer typed survives every other re-render.
 */
export class WaitlistForm {
  readonly root: HTMLFormElement;
  readonly input: HTMLInputElement;
  readonly button: HTMLButtonElement;
  readonly status: HTMLElement;
  private inFlight: AbortController | null = null;
  private readonly fetch: typeof fetch;

  constructor(
    private readonly doc: Document,
    private readonly product: { product_id: string; name: string },
    idBase: string,
    private readonly opts: WaitlistOptions,
  ) {
    this.fetch = opts.fetch ?? ((input, init) => fetch(input, init));
    const inputId = `${idBase}-email`;
    const statusId = `${idBase}-status`;
    this.root = el(doc, 'form', { class: 'notify', 'data-testid': 'notify-form', 'data-state': 'idle', novalidate: '' });
    // Visible "E-mail me when it is back"; the product's name for assistive technology, so the
    // fields of several sold-out cards are told apart.
    const label = el(doc, 'label', { class: 'notify-label', for: inputId }, WAITLIST_MESSAGES.label);
    label.append(el(doc, 'span', { class: 'visually-hidden' }, ` (${product.name})`));
    this.input = el(doc, 'input', {
      id: inputId,
      class: 'notify-email',
      type: 'email',
      name: 'email',
      required: '',
      autocomplete: 'email',
      maxlength: '254',
      'data-testid': 'notify-email',
    });
    this.button = el(doc, 'button', { type: 'submit', class: 'notify-submit', 'data-testid': 'notify-submit' }, WAITLIST_MESSAGES.button);
    this.button.append(el(doc, 'span', { class: 'visually-hidden' }, ` about ${product.name}`));
    this.status = el(doc, 'p', {
      id: statusId,
      class: 'notify-status',
      role: 'status',
      'aria-live': 'polite',
      'aria-atomic': 'true',
      'data-testid': 'notify-status',
    });
    this.root.append(label, this.input, this.button, this.status);
    this.root.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit();
    });
  }

  get state(): WaitlistState {
    return (this.root.dataset.state as WaitlistState | undefined) ?? 'idle';
  }

  /** Validates, sends, and shows the answer. Resolves when the answer is shown. */
  async submit(): Promise<void> {
    if (this.inFlight) return;
    const v = this.input.validity;
    if (!v.valid) {
      this.showInvalid(v.valueMissing ? WAITLIST_MESSAGES.missing : WAITLIST_MESSAGES.malformed);
      return;
    }
    this.clearInvalid();
    const { url, init } = buildWaitlistRequest(this.opts.checkoutUrl, {
      store_id: this.opts.storeId,
      product_id: this.product.product_id,
      email: this.input.value.trim(),
    });
    const abort = new AbortController();
    this.inFlight = abort;
    const buttonHadFocus = this.doc.activeElement === this.button;
    this.button.disabled = true;
    this.show('sending', WAITLIST_MESSAGES.sending);
    let result: WaitlistResult;
    try {
      result = await sendWaitlist(url, { ...init, signal: abort.signal }, this.fetch);
    } catch {
      return; // destroyed (the product is back): nobody is looking at this form any more
    } finally {
      this.inFlight = null;
      this.button.disabled = false;
    }
    if (result.kind === 'invalid_email') {
      this.showInvalid(result.message);
      return;
    }
    this.show(result.kind === 'requested' ? 'requested' : 'error', waitlistMessage(result));
    // A disabled button may lose focus: give it back rather than leave the buyer on <body>.
    if (buttonHadFocus && this.doc.activeElement !== this.button) this.button.focus();
  }

  /** Removes the form (the product is back in stock) and drops a request in flight. */
  destroy(): void {
    this.inFlight?.abort();
    this.inFlight = null;
    this.root.remove();
  }

  private show(state: WaitlistState, message: string): void {
    this.root.dataset.state = state;
    this.status.textContent = message;
  }

  /** The message in the status, the input marked and described by it, focus on the input. */
  private showInvalid(message: string): void {
    this.input.setAttribute('aria-invalid', 'true');
    this.input.setAttribute('aria-describedby', this.status.id);
    this.show('error', message);
    this.input.focus();
  }

  private clearInvalid(): void {
    this.input.removeAttribute('aria-invalid');
    this.input.removeAttribute('aria-describedby');
  }
}
