// @vitest-environment happy-dom
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { parseCatalog, parseCheckoutSettings } from '../config';
import { CheckoutPage, type PageDeps } from './page';

const T0 = Date.parse('2026-11-23T10:00:00.000Z');
const product = parseCatalog(
  {
    products: [
      {
        product_id: 'prod_mug',
        name: 'Mug',
        images: ['https://cdn.example/mug.png'],
        price: { amount: 1200, currency: 'usd' },
        available: 5,
        version: 1,
      },
    ],
  },
  'https://shop.example/',
).products[0];

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

const held = (over: Record<string, unknown> = {}) =>
  json(200, { client_secret: 'pi_1_secret_s', hold_id: 'hold_1', expires_at: new Date(T0 + 15 * 60_000).toISOString(), amount: 2400, currency: 'usd', ...over });

interface Harness {
  page: CheckoutPage;
  fetch: ReturnType<typeof vi.fn<typeof fetch>>;
  clock: { t: number };
  tick: (ms: number) => void;
  checkoutCalls: () => { key: string; body: unknown }[];
}

function setup(responses: (url: string, init?: RequestInit) => Promise<Response> | Response, config: Record<string, unknown> = {}, deps: PageDeps = {}): Harness {
  document.body.innerHTML = '<div id="app"></div>';
  delete document.body.dataset.step;
  const clock = { t: T0 };
  let interval: (() => void) | null = null;
  let n = 0;
  const f = vi.fn<typeof fetch>(async (input, init) => responses(String(input), init));
  const settings = parseCheckoutSettings(
    { checkoutUrl: 'http://127.0.0.1:8001', stripePublishableKey: 'pk_test_local', stripeApiBase: 'http://127.0.0.1:8002', ...config },
    'http://127.0.0.1:8000/config.json',
  );
  const page = new CheckoutPage(
    document.getElementById('app')!,
    { storeId: 'store_demo', product, settings, shopHref: './' },
    {
      fetch: f,
      now: () => clock.t,
      newKey: () => `key-${++n}`,
      retry: { sleep: async () => {} },
      poll: { sleep: async (ms) => void (clock.t += ms) },
      setInterval: (fn) => {
        interval = fn;
        return 1;
      },
      clearInterval: () => {
        interval = null;
      },
      locale: 'en-US',
      ...deps,
    },
  );
  return {
    page,
    fetch: f,
    clock,
    tick: (ms) => {
      clock.t += ms;
      interval?.();
    },
    checkoutCalls: () =>
      f.mock.calls
        .filter((c) => String(c[0]).endsWith('/checkout'))
        .map((c) => ({ key: (c[1]!.headers as Record<string, string>)['Idempotency-Key'], body: JSON.parse(c[1]!.body as string) })),
  };
}

const q = (id: string) => document.querySelector<HTMLElement>(`[data-testid="${id}"]`)!;

describe('checkout page', () => {
  beforeEach(() => {
    document.body.innerHTML = '';
  });

  it('renders the product, an accessible form and the estimate', () => {
    const h = setup(() => held());
    expect(q('product-name').textContent).toBe('Mug');
    expect(q('price').textContent).toBe('$12.00 each');
    const select = q('quantity') as HTMLSelectElement;
    expect([...select.options].map((o) => o.value)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10']);
    expect(document.querySelector('label[for="quantity"]')).not.toBeNull();
    expect(document.querySelector('label[for="email"]')?.textContent).toMatch(/optional/);
    expect(q('checkout-status').getAttribute('aria-live')).toBe('polite');
    expect(q('checkout-alert').getAttribute('role')).toBe('alert');
    select.value = '3';
    select.dispatchEvent(new Event('change'));
    expect(q('estimate').textContent).toBe('Total: $36.00');
    expect(document.body.dataset.step).toBe('form');
    expect(h.page.step).toBe('form');
  });

  it('409: says how many are left, lets the buyer lower the quantity, and the new attempt has a new key', async () => {
    let call = 0;
    const h = setup((url) => {
      if (!url.endsWith('/checkout')) return json(200, { status: 'requires_capture' });
      return ++call === 1 ? json(409, { error: 'insufficient_stock', message: 'x', available: [{ product_id: 'prod_mug', requested: 4, available: 2 }] }) : held();
    });
    const select = q('quantity') as HTMLSelectElement;
    select.value = '4';
    select.dispatchEvent(new Event('change'));
    await h.page.submit();
    expect(q('checkout-alert').textContent).toMatch(/^Only 2 left\. Nothing was reserved/);
    expect(q('quantity-error').textContent).toBe('Only 2 left');
    expect(select.getAttribute('aria-invalid')).toBe('true');
    expect([...select.options].map((o) => o.value)).toEqual(['1', '2']);
    expect(select.value).toBe('2');
    expect(document.activeElement).toBe(select);
    await h.page.submit();
    expect(h.checkoutCalls()).toEqual([
      { key: 'key-1', body: { store_id: 'store_demo', items: [{ product_id: 'prod_mug', quantity: 4 }] } },
      { key: 'key-2', body: { store_id: 'store_demo', items: [{ product_id: 'prod_mug', quantity: 2 }] } },
    ]);
    expect(h.page.step).toBe('held');
  });

  it('409 with nothing left: sold out, nothing to submit', async () => {
    const h = setup(() => json(409, { available: [{ product_id: 'prod_mug', requested: 1, available: 0 }] }));
    await h.page.submit();
    expect(q('checkout-alert').textContent).toBe('Sold out: nothing was reserved.');
    expect((q('hold-button') as HTMLButtonElement).disabled).toBe(true);
  });

  it('400: shows the message with the field and marks the e-mail input', async () => {
    const h = setup(() => json(400, { error: 'invalid_request', field: 'customer_email', message: 'not an e-mail address' }));
    (q('email') as HTMLInputElement).value = 'nope';
    await h.page.submit();
    expect(h.checkoutCalls()[0].body).toEqual({ store_id: 'store_demo', items: [{ product_id: 'prod_mug', quantity: 1 }], customer_email: 'nope' });
    expect(q('checkout-alert').textContent).toBe('E-mail: not an e-mail address');
    expect(q('email').getAttribute('aria-invalid')).toBe('true');
    expect(q('email-error').textContent).toBe('not an e-mail address');
    expect(h.page.step).toBe('form');
  });

  it('503 and network errors are retried with the same key; giving up keeps the key for the next press', async () => {
    let call = 0;
    const h = setup(() => {
      call++;
      if (call <= 5) return call % 2 ? Promise.reject(new TypeError('Failed to fetch')) : json(503, { message: 'busy' });
      return held();
    });
    await h.page.submit();
    expect(h.page.step).toBe('form');
    expect(q('checkout-alert').textContent).toMatch(/Try again/);
    await h.page.submit();
    const keys = h.checkoutCalls().map((c) => c.key);
    expect(keys).toEqual(['key-1', 'key-1', 'key-1', 'key-1', 'key-1', 'key-1']);
    expect(h.page.step).toBe('held');
  });

  it('held: amount, countdown, pay with the test card → Paid', async () => {
    const statuses = ['requires_capture', 'succeeded'];
    const h = setup((url, init) => {
      if (url.endsWith('/checkout')) return held();
      if (url.endsWith('/confirm')) {
        expect(init?.body).toBe('payment_method=pm_card_visa&client_secret=pi_1_secret_s');
        return json(200, { id: 'pi_1', status: 'requires_capture' });
      }
      return json(200, { id: 'pi_1', status: statuses.shift() ?? 'succeeded' });
    });
    const select = q('quantity') as HTMLSelectElement;
    select.value = '2';
    select.dispatchEvent(new Event('change'));
    await h.page.submit();
    expect(document.body.dataset.step).toBe('held');
    expect(q('amount').textContent).toBe('2 × Mug: $24.00');
    expect(q('hold-countdown').textContent).toBe('Your items are held for 15:00');
    expect(q('hold-countdown').getAttribute('role')).toBe('timer');
    h.tick(1000);
    expect(q('hold-countdown').textContent).toBe('Your items are held for 14:59');
    await clickAndSettle(h, 'pay-test-card');
    expect(q('payment-result').textContent).toBe('Paid — your order is confirmed');
    expect(q('payment-result').dataset.outcome).toBe('succeeded');
    expect(q('checkout-status').textContent).toBe('Paid — your order is confirmed');
    expect(document.body.dataset.step).toBe('done');
    const gets = h.fetch.mock.calls.filter((c) => String(c[0]).includes('/v1/payment_intents/pi_1?client_secret='));
    expect(gets.length).toBe(2);
    for (const c of gets) expect((c[1]!.headers as Record<string, string>).Authorization).toBe('Bearer pk_test_local');
  });

  it('decline → "Card declined — your items were released" and Start again', async () => {
    const h = setup((url) => {
      if (url.endsWith('/checkout')) return held();
      if (url.endsWith('/confirm')) {
        return json(402, { error: { type: 'card_error', code: 'card_declined', payment_intent: { id: 'pi_1', status: 'requires_payment_method' } } });
      }
      return json(200, { id: 'pi_1', status: 'requires_payment_method' });
    });
    await h.page.submit();
    await clickAndSettle(h, 'decline-test-card');
    expect(q('payment-result').textContent).toBe('Card declined — your items were released');
    expect(q('start-again').hidden).toBe(false);
  });

  it('canceled (hold expired, sold out) is said as such', async () => {
    const h = setup((url) => {
      if (url.endsWith('/checkout')) return held();
      if (url.endsWith('/confirm')) return json(200, { id: 'pi_1', status: 'requires_capture' });
      return json(200, { id: 'pi_1', status: 'canceled' });
    });
    await h.page.submit();
    await clickAndSettle(h, 'pay-test-card');
    expect(q('payment-result').textContent).toBe('This hold expired and the items sold out: your card was not charged');
  });

  it('the hold expires before payment: says so, disables paying, offers to start again with a new key', async () => {
    const h = setup(() => held());
    await h.page.submit();
    h.tick(14 * 60_000);
    expect(q('checkout-status').textContent).toBe('Your items are held for 1 more minute.');
    h.tick(30_000);
    expect(q('checkout-status').textContent).toBe('Your items are held for 30 more seconds.');
    h.tick(30_000);
    expect(h.page.step).toBe('expired');
    expect(q('hold-countdown').textContent).toBe('Your hold has expired: the items were released');
    expect((q('pay-test-card') as HTMLButtonElement).disabled).toBe(true);
    const again = q('start-again') as HTMLButtonElement;
    expect(again.hidden).toBe(false);
    again.click();
    expect(h.page.step).toBe('form');
    expect(q('checkout-form').hidden).toBe(false);
    await h.page.submit();
    expect(h.checkoutCalls().map((c) => c.key)).toEqual(['key-1', 'key-2']);
  });

  it('Stripe.js mode: mounts the Payment Element lazily and confirms through it', async () => {
    const mount = vi.fn(async () => ({
      confirm: vi.fn(async (returnUrl: string) => {
        expect(returnUrl).toBe('https://shop.example/checkout.html?product=prod_mug');
        return { status: 'requires_capture', declined: false, error: null };
      }),
      retrieve: vi.fn(async () => ({ status: 'succeeded' })),
      destroy: vi.fn(),
    }));
    const h = setup(() => held(), { stripeApiBase: null, stripePublishableKey: 'pk_test_123' }, {
      mountPaymentElement: mount,
      returnUrl: () => 'https://shop.example/checkout.html?product=prod_mug',
    });
    await h.page.submit();
    await vi.waitFor(() => expect((q('pay-button') as HTMLButtonElement).disabled).toBe(false));
    expect(mount).toHaveBeenCalledWith('pk_test_123', 'pi_1_secret_s', q('payment-element'));
    q('pay-button').click();
    await vi.waitFor(() => expect(h.page.step).toBe('done'));
    expect(q('payment-result').textContent).toBe('Paid — your order is confirmed');
  });

  it('without a publishable key the payment step says it is not configured', async () => {
    const h = setup(() => held(), { stripeApiBase: null, stripePublishableKey: null });
    await h.page.submit();
    expect(q('checkout-alert').textContent).toMatch(/Payment is not configured/);
  });
});

async function clickAndSettle(h: Harness, testid: string): Promise<void> {
  void h;
  q(testid).click();
  await vi.waitFor(() => expect(document.body.dataset.step).toBe('done'));
}
