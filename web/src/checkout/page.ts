/**
 * The checkout page's DOM and flow for one product: quantity (1..10) and optional e-mail → hold
 * (checkout API) → countdown + payment step → outcome. Stable hooks for tests:
 *
 * - `<body data-step="…">`: `form` | `holding` | `held` | `paying` | `done` | `expired`
 * - `[data-testid="checkout-form"]`, `quantity` (a `<select>`), `email`, `hold-button`, `estimate`
 * - `[data-testid="checkout-status"]`: the polite live region (retries, hold, payment progress)
 * - `[data-testid="checkout-alert"]`: the assertive one (409, 400, errors)
 * - `[data-testid="hold"]`: after a hold: `amount`, `hold-countdown` (role=timer, not live),
 *   `payment` (local mode: `pay-test-card`, `decline-test-card`; Stripe mode: `payment-element`,
 *   `pay-button`), `payment-result` (`data-outcome`), `start-again`
 */
import type { CatalogProduct, CheckoutSettings } from '../config';
import { formatMoney } from '../stock';
import {
  IdempotencyKeys,
  MAX_QUANTITY,
  buildCheckoutRequest,
  checkoutBody,
  fieldLabel,
  requestSignature,
  sendCheckout,
  shortfallMessage,
  type CheckoutResult,
  type RetryOptions,
} from './api';
import { countdownAnnouncement, holdText } from './countdown';
import {
  FakeStripeApi,
  PAYMENT_MESSAGES,
  TEST_CARD,
  TEST_CARD_DECLINED,
  pollOutcome,
  runPayment,
  type ConfirmResult,
  type PaymentOutcome,
  type PaymentPhase,
  type PollOptions,
} from './payment';
import type { MountedPaymentElement } from './stripe-element';

export type Step = 'form' | 'holding' | 'held' | 'paying' | 'done' | 'expired';

export interface PageDeps {
  fetch?: typeof fetch;
  now?: () => number;
  newKey?: () => string;
  /** Retry and backoff of the checkout call (tests pass a fast `sleep`). */
  retry?: Omit<RetryOptions, 'fetch' | 'onRetry'>;
  /** Payment polling (tests pass a fast `sleep`). */
  poll?: Omit<PollOptions, 'now'>;
  setInterval?: (fn: () => void, ms: number) => unknown;
  clearInterval?: (handle: unknown) => void;
  /** Stripe.js mode: mounts the Payment Element (default: `./stripe-element`, imported lazily). */
  mountPaymentElement?: (publishableKey: string, clientSecret: string, container: HTMLElement) => Promise<MountedPaymentElement>;
  /** Where Stripe returns after a redirect-based payment method. */
  returnUrl?: () => string;
  locale?: string | string[];
}

export interface PageContext {
  storeId: string;
  product: CatalogProduct;
  settings: CheckoutSettings;
  /** The storefront's URL (the "Back to the shop" link). */
  shopHref: string;
}

function el<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  attrs: Record<string, string> = {},
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = doc.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

type Held = Extract<CheckoutResult, { kind: 'held' }>;

export class CheckoutPage {
  readonly keys: IdempotencyKeys;
  step: Step = 'form';
  private readonly doc: Document;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  private readonly setInterval: (fn: () => void, ms: number) => unknown;
  private readonly clearInterval: (handle: unknown) => void;
  private maxQuantity = MAX_QUANTITY;
  private hold: Held | null = null;
  private timer: unknown = null;
  private lastRemaining = 0;
  private element: MountedPaymentElement | null = null;
  private paymentBusy = false;
  /** Bumped on "Start again": late answers of an abandoned attempt are ignored. */
  private generation = 0;

  // DOM
  readonly form: HTMLFormElement;
  readonly quantity: HTMLSelectElement;
  readonly email: HTMLInputElement;
  readonly emailError: HTMLElement;
  readonly quantityError: HTMLElement;
  readonly holdButton: HTMLButtonElement;
  readonly estimate: HTMLElement;
  readonly status: HTMLElement;
  readonly alert: HTMLElement;
  readonly holdSection: HTMLElement;
  readonly amount: HTMLElement;
  readonly countdown: HTMLElement;
  readonly payment: HTMLElement;
  readonly result: HTMLElement;
  readonly startAgain: HTMLButtonElement;

  constructor(
    readonly root: HTMLElement,
    readonly ctx: PageContext,
    private readonly deps: PageDeps = {},
  ) {
    this.doc = root.ownerDocument;
    const view = this.doc.defaultView;
    this.fetch = deps.fetch ?? ((...a) => fetch(...a));
    this.now = deps.now ?? (() => Date.now());
    this.keys = new IdempotencyKeys(deps.newKey);
    this.setInterval = deps.setInterval ?? ((fn, ms) => (view ?? globalThis).setInterval(fn, ms));
    this.clearInterval = deps.clearInterval ?? ((h) => (view ?? globalThis).clearInterval(h as number));

    const d = this.doc;
    const p = ctx.product;
    d.title = `Checkout: ${p.name}`;
    root.replaceChildren();

    const header = el(d, 'header', { class: 'site-header' });
    header.append(el(d, 'h1', { class: 'site-title' }, 'Checkout'), el(d, 'a', { href: ctx.shopHref, class: 'back-link' }, 'Back to the shop'));

    const main = el(d, 'main', { id: 'main', class: 'site-main checkout', tabindex: '-1' });

    const summary = el(d, 'section', { class: 'checkout-product', 'aria-labelledby': 'product-name' });
    if (p.images.length > 0) {
      summary.append(el(d, 'img', { src: p.images[0], alt: '', width: '160', height: '160', decoding: 'async' }));
    }
    const info = el(d, 'div', { class: 'checkout-product-info' });
    info.append(el(d, 'h2', { id: 'product-name', class: 'card-name', 'data-testid': 'product-name' }, p.name));
    if (p.description) info.append(el(d, 'p', { class: 'card-description' }, p.description));
    info.append(
      el(d, 'p', { class: 'card-price', 'data-testid': 'price' }, p.price ? `${this.money(p.price.amount, p.price.currency)} each` : 'Price shown after the items are held'),
    );
    summary.append(info);

    // The form.
    this.form = el(d, 'form', { class: 'checkout-form', 'data-testid': 'checkout-form', novalidate: '' });
    const qLabel = el(d, 'label', { for: 'quantity' }, 'Quantity');
    this.quantity = el(d, 'select', { id: 'quantity', name: 'quantity', 'data-testid': 'quantity', 'aria-describedby': 'quantity-error' });
    this.quantityError = el(d, 'p', { id: 'quantity-error', class: 'field-error', 'data-testid': 'quantity-error' });
    this.quantityError.hidden = true;
    this.renderQuantityOptions(1);
    const eLabel = el(d, 'label', { for: 'email' }, 'E-mail for the receipt ');
    eLabel.append(el(d, 'span', { class: 'optional' }, '(optional)'));
    this.email = el(d, 'input', {
      id: 'email',
      name: 'email',
      type: 'email',
      autocomplete: 'email',
      inputmode: 'email',
      'data-testid': 'email',
      'aria-describedby': 'email-error',
    });
    this.emailError = el(d, 'p', { id: 'email-error', class: 'field-error', 'data-testid': 'email-error' });
    this.emailError.hidden = true;
    this.estimate = el(d, 'p', { class: 'estimate', 'data-testid': 'estimate' });
    this.holdButton = el(d, 'button', { type: 'submit', class: 'button primary', 'data-testid': 'hold-button' }, 'Reserve and continue to payment');
    const qField = el(d, 'div', { class: 'field' });
    qField.append(qLabel, this.quantity, this.quantityError);
    const eField = el(d, 'div', { class: 'field' });
    eField.append(eLabel, this.email, this.emailError);
    this.form.append(qField, eField, this.estimate, this.holdButton);

    // Live regions: in the page from the start so that screen readers watch them.
    this.status = el(d, 'p', { class: 'checkout-status', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true', 'data-testid': 'checkout-status' });
    this.alert = el(d, 'p', { class: 'checkout-alert', role: 'alert', 'aria-atomic': 'true', 'data-testid': 'checkout-alert' });

    // After the hold.
    this.holdSection = el(d, 'section', { class: 'checkout-hold', 'data-testid': 'hold', 'aria-labelledby': 'hold-title' });
    this.holdSection.hidden = true;
    this.amount = el(d, 'p', { class: 'amount', 'data-testid': 'amount' });
    // role=timer: not announced every second; milestones go through the status region.
    this.countdown = el(d, 'p', { class: 'countdown', role: 'timer', 'aria-live': 'off', 'data-testid': 'hold-countdown' });
    this.payment = el(d, 'div', { class: 'payment', 'data-testid': 'payment' });
    this.result = el(d, 'p', { class: 'payment-result', 'data-testid': 'payment-result' });
    this.result.hidden = true;
    this.startAgain = el(d, 'button', { type: 'button', class: 'button', 'data-testid': 'start-again' }, 'Start again');
    this.startAgain.hidden = true;
    this.holdSection.append(el(d, 'h2', { id: 'hold-title' }, 'Your reservation'), this.amount, this.countdown, this.payment, this.result, this.startAgain);

    main.append(summary, this.form, this.status, this.alert, this.holdSection);
    root.append(header, main);

    this.quantity.addEventListener('change', () => this.onQuantityChange());
    this.email.addEventListener('input', () => this.clearFieldError(this.email, this.emailError));
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.submit();
    });
    this.startAgain.addEventListener('click', () => this.restart());
    this.updateEstimate();
    this.setStep('form');
    this.doc.body.dataset.ready = 'true';
  }

  private money(amount: number, currency: string): string {
    return formatMoney(amount, currency, this.deps.locale);
  }

  private setStep(step: Step): void {
    this.step = step;
    this.doc.body.dataset.step = step;
  }

  private say(text: string): void {
    this.status.textContent = text;
  }

  private warn(text: string): void {
    this.alert.textContent = text;
  }

  private renderQuantityOptions(selected: number): void {
    const d = this.doc;
    this.quantity.replaceChildren();
    for (let q = 1; q <= this.maxQuantity; q++) {
      const o = el(d, 'option', { value: String(q) }, String(q));
      if (q === selected) o.selected = true;
      this.quantity.append(o);
    }
    this.quantity.value = String(Math.min(selected, this.maxQuantity));
  }

  get selectedQuantity(): number {
    const q = Number.parseInt(this.quantity.value, 10);
    return Number.isSafeInteger(q) && q >= 1 ? Math.min(q, MAX_QUANTITY) : 1;
  }

  private updateEstimate(): void {
    const p = this.ctx.product.price;
    this.estimate.textContent = p ? `Total: ${this.money(p.amount * this.selectedQuantity, p.currency)}` : '';
    this.estimate.hidden = !p;
  }

  private onQuantityChange(): void {
    this.updateEstimate();
    this.clearFieldError(this.quantity, this.quantityError);
  }

  private fieldError(input: HTMLElement, box: HTMLElement, text: string): void {
    input.setAttribute('aria-invalid', 'true');
    box.textContent = text;
    box.hidden = false;
  }

  private clearFieldError(input: HTMLElement, box: HTMLElement): void {
    input.removeAttribute('aria-invalid');
    box.textContent = '';
    box.hidden = true;
  }

  /** The form's submit: one checkout attempt (retried with the same key when unavailable). */
  async submit(): Promise<CheckoutResult | null> {
    if (this.step !== 'form') return null;
    const checkoutUrl = this.ctx.settings.checkoutUrl;
    if (!checkoutUrl) return null;
    const generation = this.generation;
    const body = checkoutBody({
      storeId: this.ctx.storeId,
      lines: [{ product_id: this.ctx.product.product_id, quantity: this.selectedQuantity }],
      email: this.email.value,
    });
    const key = this.keys.keyFor(requestSignature(body));
    const { url, init } = buildCheckoutRequest(checkoutUrl, body, key);
    this.setStep('holding');
    this.warn('');
    this.clearFieldError(this.quantity, this.quantityError);
    this.clearFieldError(this.email, this.emailError);
    this.holdButton.disabled = true;
    this.form.setAttribute('aria-busy', 'true');
    this.say('Reserving your items…');
    const result = await sendCheckout(url, init, {
      ...this.deps.retry,
      fetch: this.fetch,
      onRetry: (attempt) => {
        if (generation === this.generation) this.say(`The checkout service is busy; trying again (attempt ${attempt + 1})…`);
      },
    });
    if (generation !== this.generation) return result;
    this.holdButton.disabled = false;
    this.form.removeAttribute('aria-busy');
    this.apply(result);
    return result;
  }

  private apply(result: CheckoutResult): void {
    switch (result.kind) {
      case 'held':
        this.keys.settle();
        this.showHold(result);
        return;
      case 'short': {
        this.keys.settle();
        this.setStep('form');
        const mine = result.shortfalls.find((s) => s.product_id === this.ctx.product.product_id) ?? result.shortfalls[0];
        this.say('');
        if (!mine) {
          this.warn(result.message);
          return;
        }
        const text = shortfallMessage(mine);
        if (mine.available === 0) {
          this.warn(`${text}: nothing was reserved.`);
          this.fieldError(this.quantity, this.quantityError, text);
          this.holdButton.disabled = true;
          this.quantity.disabled = true;
          return;
        }
        // Let the buyer lower the quantity: only what is left can be chosen, the most preselected.
        this.maxQuantity = Math.min(MAX_QUANTITY, mine.available);
        this.renderQuantityOptions(this.maxQuantity);
        this.updateEstimate();
        this.warn(`${text}. Nothing was reserved: choose ${mine.available === 1 ? '1' : `up to ${mine.available}`} and try again.`);
        this.fieldError(this.quantity, this.quantityError, text);
        this.quantity.focus();
        return;
      }
      case 'invalid': {
        this.keys.settle();
        this.setStep('form');
        this.say('');
        const label = fieldLabel(result.field);
        this.warn(label ? `${label}: ${result.message}` : result.message);
        if (result.field === 'customer_email') {
          this.fieldError(this.email, this.emailError, result.message);
          this.email.focus();
        } else if (result.field !== null && /^items\[\d+\]\.quantity$/.test(result.field)) {
          this.fieldError(this.quantity, this.quantityError, result.message);
          this.quantity.focus();
        }
        return;
      }
      case 'unavailable':
        // Not settled: pressing the button again re-sends the same request with the same key.
        this.setStep('form');
        this.say('');
        this.warn(`${result.message} Nothing was charged. Try again in a moment.`);
        return;
      case 'error':
        this.keys.settle();
        this.setStep('form');
        this.say('');
        this.warn(result.message);
        return;
    }
  }

  private showHold(h: Held): void {
    this.hold = h;
    this.setStep('held');
    this.form.hidden = true;
    this.holdSection.hidden = false;
    this.result.hidden = true;
    this.result.textContent = '';
    delete this.result.dataset.outcome;
    this.startAgain.hidden = true;
    const qty = this.selectedQuantity;
    this.amount.textContent = `${qty} × ${this.ctx.product.name}: ${this.money(h.amount, h.currency)}`;
    this.lastRemaining = h.expiresAt - this.now();
    this.countdown.textContent = holdText(this.lastRemaining);
    this.say(`Reserved. ${holdText(this.lastRemaining)} while you pay.`);
    this.timer = this.setInterval(() => this.tick(), 1000);
    void this.renderPayment(h);
  }

  /** One countdown second. */
  tick(): void {
    if (!this.hold) return;
    const remaining = this.hold.expiresAt - this.now();
    const announce = countdownAnnouncement(this.lastRemaining, remaining);
    this.lastRemaining = remaining;
    if (this.step === 'done') return;
    this.countdown.textContent = holdText(remaining);
    if (remaining <= 0) {
      this.stopTimer();
      if (this.paymentBusy) return; // the payment's outcome decides (stockbridge captures or cancels)
      this.expire();
      return;
    }
    if (announce && !this.paymentBusy) this.say(announce);
  }

  private expire(): void {
    this.setStep('expired');
    this.countdown.textContent = holdText(0);
    for (const b of this.payment.querySelectorAll('button')) b.disabled = true;
    this.say('Your hold has expired and the items were released. You can start again.');
    this.startAgain.hidden = false;
  }

  private stopTimer(): void {
    if (this.timer !== null) this.clearInterval(this.timer);
    this.timer = null;
  }

  private async renderPayment(h: Held): Promise<void> {
    const d = this.doc;
    const s = this.ctx.settings;
    this.payment.replaceChildren();
    if (s.stripeApiBase && s.stripePublishableKey) {
      let api: FakeStripeApi;
      try {
        api = new FakeStripeApi(s.stripeApiBase, s.stripePublishableKey, h.clientSecret, this.fetch);
      } catch {
        this.warn('The checkout service sent an unusable payment reference.');
        return;
      }
      this.payment.append(el(d, 'p', { class: 'payment-note' }, 'Local test mode: pay with one of Stripe’s test cards.'));
      const row = el(d, 'div', { class: 'payment-buttons' });
      const pay = el(d, 'button', { type: 'button', class: 'button primary', 'data-testid': 'pay-test-card' }, 'Pay (test card)');
      const decline = el(d, 'button', { type: 'button', class: 'button', 'data-testid': 'decline-test-card' }, 'Decline (test card)');
      pay.addEventListener('click', () => void this.pay(() => api.confirm(TEST_CARD), () => api.retrieve()));
      decline.addEventListener('click', () => void this.pay(() => api.confirm(TEST_CARD_DECLINED), () => api.retrieve()));
      row.append(pay, decline);
      this.payment.append(row);
      return;
    }
    if (s.stripePublishableKey) {
      const container = el(d, 'div', { class: 'payment-element', 'data-testid': 'payment-element' });
      const pay = el(d, 'button', { type: 'button', class: 'button primary', 'data-testid': 'pay-button', disabled: '' }, 'Pay');
      this.payment.append(container, pay);
      this.say('Loading the payment form…');
      const generation = this.generation;
      try {
        const mount = this.deps.mountPaymentElement ?? (await import('./stripe-element')).mountPaymentElement;
        const element = await mount(s.stripePublishableKey, h.clientSecret, container);
        if (generation !== this.generation) {
          element.destroy();
          return;
        }
        this.element = element;
        pay.disabled = this.step !== 'held';
        this.say(`Reserved. ${holdText(h.expiresAt - this.now())} while you pay.`);
        const returnUrl = this.deps.returnUrl ?? (() => this.doc.location?.href ?? '');
        pay.addEventListener('click', () => void this.pay(() => element.confirm(returnUrl()), () => element.retrieve()));
      } catch (e) {
        console.error('[stockbridge] Stripe.js', e);
        if (generation === this.generation) this.warn('The payment form could not be loaded. Check your connection and start again.');
      }
      return;
    }
    this.warn('Payment is not configured for this shop (no Stripe publishable key).');
  }

  /** Confirms and waits for the outcome. */
  async pay(confirm: () => Promise<ConfirmResult>, retrieve: () => Promise<{ status: string }>): Promise<PaymentOutcome | null> {
    if (this.step !== 'held' || this.paymentBusy) return null;
    const generation = this.generation;
    this.paymentBusy = true;
    this.setStep('paying');
    this.warn('');
    const buttons = [...this.payment.querySelectorAll('button')];
    for (const b of buttons) b.disabled = true;
    this.payment.setAttribute('aria-busy', 'true');
    const { outcome, detail } = await runPayment(confirm, retrieve, {
      ...this.deps.poll,
      now: this.now,
      onPhase: (phase) => {
        if (generation === this.generation && (phase === 'confirming' || phase === 'processing')) this.say(PAYMENT_MESSAGES[phase]);
      },
    });
    if (generation !== this.generation) return outcome;
    this.paymentBusy = false;
    this.payment.removeAttribute('aria-busy');
    this.finish(outcome, detail, buttons);
    return outcome;
  }

  private finish(outcome: PaymentOutcome, detail: string | undefined, buttons: HTMLButtonElement[]): void {
    if (outcome === 'error') {
      // Nothing happened to the PaymentIntent: the buyer may try again while the hold lasts.
      this.say('');
      this.warn(`${PAYMENT_MESSAGES.error}${detail ? ` ${detail}` : ''}`);
      if (this.hold && this.hold.expiresAt > this.now()) {
        this.setStep('held');
        for (const b of buttons) b.disabled = false;
        if (this.timer === null) this.timer = this.setInterval(() => this.tick(), 1000);
      } else {
        this.expire();
      }
      return;
    }
    this.showResult(outcome);
  }

  private showResult(outcome: Exclude<PaymentPhase, 'ready' | 'confirming' | 'processing'>): void {
    this.stopTimer();
    this.setStep('done');
    this.payment.hidden = true;
    this.result.hidden = false;
    this.result.dataset.outcome = outcome;
    this.result.textContent = PAYMENT_MESSAGES[outcome];
    this.countdown.hidden = true;
    this.say(PAYMENT_MESSAGES[outcome]);
    this.startAgain.hidden = outcome === 'succeeded' || outcome === 'timeout';
  }

  /** After a redirect-based payment method: Stripe came back to this page; wait for the outcome. */
  async resume(retrieve: () => Promise<{ status: string }>): Promise<PaymentOutcome> {
    this.form.hidden = true;
    this.holdSection.hidden = false;
    this.countdown.hidden = true;
    this.setStep('paying');
    this.say(PAYMENT_MESSAGES.processing);
    const outcome = await pollOutcome(retrieve, true, { ...this.deps.poll, now: this.now });
    this.showResult(outcome === 'error' ? 'timeout' : outcome);
    return outcome;
  }

  /** "Start again": back to the form; the next submit is a new attempt with a new key. */
  restart(): void {
    this.generation++;
    this.stopTimer();
    this.element?.destroy();
    this.element = null;
    this.hold = null;
    this.paymentBusy = false;
    this.keys.settle();
    this.maxQuantity = MAX_QUANTITY;
    this.renderQuantityOptions(1);
    this.quantity.disabled = false;
    this.holdButton.disabled = false;
    this.form.removeAttribute('aria-busy');
    this.clearFieldError(this.quantity, this.quantityError);
    this.clearFieldError(this.email, this.emailError);
    this.updateEstimate();
    this.holdSection.hidden = true;
    this.payment.hidden = false;
    this.payment.removeAttribute('aria-busy');
    this.payment.replaceChildren();
    this.countdown.hidden = false;
    this.form.hidden = false;
    this.warn('');
    this.say('');
    this.setStep('form');
    this.quantity.focus();
  }
}
