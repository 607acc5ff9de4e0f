import { describe, expect, it, vi } from 'vitest';
import { checkoutPageHref, parseCheckoutSettings } from '../config';
import { formatMoney } from '../stock';
import {
  IdempotencyKeys,
  buildCheckoutRequest,
  checkoutBody,
  checkoutEndpoint,
  fieldLabel,
  interpretResponse,
  requestSignature,
  retryDelay,
  sendCheckout,
  shortfallMessage,
} from './api';
import { countdownAnnouncement, formatRemaining, holdText } from './countdown';
import { pageParams, shopHref } from './main';
import { FakeStripeApi, outcomeOf, paymentIntentId, pollOutcome, runPayment, type PaymentPhase } from './payment';

const HELD = {
  client_secret: 'pi_123_secret_abc',
  hold_id: 'hold_1',
  expires_at: '2026-11-23T10:15:00.000Z',
  amount: 2400,
  currency: 'usd',
};

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

describe('config: checkout settings', () => {
  const base = 'https://shop.example/s/config.json';
  it('reads the optional fields, resolving URLs against the config', () => {
    expect(
      parseCheckoutSettings({ checkoutUrl: '/api', stripePublishableKey: 'pk_test_local', stripeApiBase: 'http://127.0.0.1:9/' }, base),
    ).toEqual({ checkoutUrl: 'https://shop.example/api', stripePublishableKey: 'pk_test_local', stripeApiBase: 'http://127.0.0.1:9/', problems: [] });
  });
  it('is empty without them, and drops unusable ones with a reason', () => {
    expect(parseCheckoutSettings({ store_id: 'x' }, base)).toEqual({ checkoutUrl: null, stripePublishableKey: null, stripeApiBase: null, problems: [] });
    const s = parseCheckoutSettings({ checkoutUrl: 'javascript:alert(1)', stripePublishableKey: 'sk_test_secret' }, base);
    expect(s.checkoutUrl).toBeNull();
    expect(s.stripePublishableKey).toBeNull();
    expect(s.problems).toHaveLength(2);
  });
  it('links a card to the checkout page with store, product and a config override', () => {
    expect(checkoutPageHref('https://shop.example/', 'store_demo', 'prod 1')).toBe('checkout.html?store=store_demo&product=prod+1');
    expect(checkoutPageHref('https://shop.example/?config=a.json', 's', 'p')).toBe('checkout.html?store=s&product=p&config=a.json');
  });
  it('page params: product required, store must match the config', () => {
    const cfg = { store_id: 'store_demo', catalog_url: 'catalog/store_demo.json', checkoutUrl: 'http://127.0.0.1:1' };
    const p = pageParams('http://127.0.0.1:5/checkout.html?store=store_demo&product=prod_1', cfg, 'http://127.0.0.1:5/config.json');
    expect(p).toMatchObject({ storeId: 'store_demo', productId: 'prod_1', catalogUrl: 'http://127.0.0.1:5/catalog/store_demo.json' });
    expect(p.settings.checkoutUrl).toBe('http://127.0.0.1:1/');
    expect(() => pageParams('http://h/checkout.html', cfg, 'http://h/config.json')).toThrow(/product/);
    expect(() => pageParams('http://h/checkout.html?store=other&product=p', cfg, 'http://h/config.json')).toThrow(/store_demo, not other/);
    expect(shopHref('http://h/checkout.html?product=p')).toBe('./');
    expect(shopHref('http://h/checkout.html?product=p&config=b.json')).toBe('./?config=b.json');
  });
});

describe('checkout request', () => {
  it('builds the body, trimming and omitting an empty e-mail', () => {
    expect(checkoutBody({ storeId: 's', lines: [{ product_id: 'p', quantity: 2 }], email: '  ' })).toEqual({
      store_id: 's',
      items: [{ product_id: 'p', quantity: 2 }],
    });
    expect(checkoutBody({ storeId: 's', lines: [{ product_id: 'p', quantity: 1 }], email: ' a@b.co ' }).customer_email).toBe('a@b.co');
  });
  it('POSTs JSON with the Idempotency-Key to {checkoutUrl}/checkout', () => {
    expect(checkoutEndpoint('http://127.0.0.1:9/')).toBe('http://127.0.0.1:9/checkout');
    const body = checkoutBody({ storeId: 's', lines: [{ product_id: 'p', quantity: 3 }] });
    const { url, init } = buildCheckoutRequest('http://127.0.0.1:9', body, 'key-1');
    expect(url).toBe('http://127.0.0.1:9/checkout');
    expect(init.method).toBe('POST');
    expect(init.headers).toMatchObject({ 'Content-Type': 'application/json', 'Idempotency-Key': 'key-1' });
    expect(JSON.parse(init.body as string)).toEqual({ store_id: 's', items: [{ product_id: 'p', quantity: 3 }] });
  });
  it('one key per attempt: same request → same key until settled; another request → new key', () => {
    let n = 0;
    const keys = new IdempotencyKeys(() => `k${++n}`);
    const a = requestSignature(checkoutBody({ storeId: 's', lines: [{ product_id: 'p', quantity: 2 }] }));
    const b = requestSignature(checkoutBody({ storeId: 's', lines: [{ product_id: 'p', quantity: 1 }] }));
    expect(keys.keyFor(a)).toBe('k1');
    expect(keys.keyFor(a)).toBe('k1');
    expect(keys.keyFor(b)).toBe('k2');
    keys.settle();
    expect(keys.keyFor(b)).toBe('k3');
  });
  it('uses crypto.randomUUID by default', () => {
    expect(new IdempotencyKeys().keyFor('x')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('checkout responses', () => {
  it('200 → held', () => {
    expect(interpretResponse(200, HELD)).toEqual({
      kind: 'held',
      clientSecret: 'pi_123_secret_abc',
      holdId: 'hold_1',
      expiresAt: Date.parse('2026-11-23T10:15:00.000Z'),
      amount: 2400,
      currency: 'usd',
    });
    expect(interpretResponse(200, { ...HELD, client_secret: 'nope' }).kind).toBe('error');
  });
  it('409 → the shortfalls from `available`', () => {
    const r = interpretResponse(409, {
      error: 'insufficient_stock',
      message: 'not enough stock for every line: nothing was held',
      available: [{ product_id: 'p', requested: 5, available: 2 }, { bogus: true }],
    });
    expect(r).toEqual({ kind: 'short', message: 'not enough stock for every line: nothing was held', shortfalls: [{ product_id: 'p', requested: 5, available: 2 }] });
    expect(shortfallMessage({ product_id: 'p', requested: 5, available: 2 })).toBe('Only 2 left');
    expect(shortfallMessage({ product_id: 'p', requested: 5, available: 0 })).toBe('Sold out');
  });
  it('400 → the field and the message', () => {
    expect(interpretResponse(400, { error: 'invalid_request', field: 'customer_email', message: 'not an e-mail address' })).toEqual({
      kind: 'invalid',
      field: 'customer_email',
      message: 'not an e-mail address',
    });
    expect(fieldLabel('items[0].quantity')).toBe('Quantity');
    expect(fieldLabel('customer_email')).toBe('E-mail');
  });
  it('503 is retryable, 500 is not', () => {
    expect(interpretResponse(503, { message: 'x; retry with the same Idempotency-Key' }).kind).toBe('unavailable');
    expect(interpretResponse(500, null)).toEqual({ kind: 'error', status: 500, message: 'The checkout service answered HTTP 500.' });
  });
  it('backoff doubles, is capped and honours Retry-After', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => retryDelay(n, null))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
    expect(retryDelay(0, '3')).toBe(3000);
    expect(retryDelay(0, 'soon')).toBe(500);
  });
});

describe('sendCheckout retries with the same key', () => {
  const { url, init } = buildCheckoutRequest('http://127.0.0.1:9', checkoutBody({ storeId: 's', lines: [{ product_id: 'p', quantity: 1 }] }), 'same-key');
  it('network error, then 503, then 200: three identical requests', async () => {
    const fetchMock = vi
      .fn<typeof fetch>()
      .mockRejectedValueOnce(new TypeError('Failed to fetch'))
      .mockResolvedValueOnce(json(503, { error: 'unavailable', message: 'busy' }, { 'Retry-After': '1' }))
      .mockResolvedValueOnce(json(200, HELD));
    const delays: number[] = [];
    const retries: number[] = [];
    const r = await sendCheckout(url, init, {
      fetch: fetchMock,
      sleep: async (ms) => void delays.push(ms),
      onRetry: (attempt) => retries.push(attempt),
    });
    expect(r.kind).toBe('held');
    expect(fetchMock).toHaveBeenCalledTimes(3);
    for (const call of fetchMock.mock.calls) {
      expect(call[0]).toBe(url);
      expect((call[1]!.headers as Record<string, string>)['Idempotency-Key']).toBe('same-key');
      expect(call[1]!.body).toBe(init.body);
    }
    expect(delays).toEqual([500, 1000]);
    expect(retries).toEqual([1, 2]);
  });
  it('gives up after the attempts as unavailable; does not retry a 409', async () => {
    const down = vi.fn<typeof fetch>().mockRejectedValue(new TypeError('Failed to fetch'));
    const r = await sendCheckout(url, init, { fetch: down, attempts: 3, sleep: async () => {} });
    expect(r.kind).toBe('unavailable');
    expect(down).toHaveBeenCalledTimes(3);
    const short = vi.fn<typeof fetch>().mockResolvedValue(json(409, { available: [{ product_id: 'p', requested: 1, available: 0 }] }));
    expect((await sendCheckout(url, init, { fetch: short, sleep: async () => {} })).kind).toBe('short');
    expect(short).toHaveBeenCalledTimes(1);
  });
});

describe('countdown and amounts', () => {
  it('formats the time left', () => {
    expect(formatRemaining(15 * 60_000 - 1)).toBe('14:59');
    expect(formatRemaining(900_000)).toBe('15:00');
    expect(formatRemaining(59_999)).toBe('0:59');
    expect(formatRemaining(3_600_000 + 61_000)).toBe('1:01:01');
    expect(formatRemaining(-5)).toBe('0:00');
    expect(holdText(899_500)).toBe('Your items are held for 14:59');
    expect(holdText(0)).toMatch(/expired/);
  });
  it('announces milestones and expiry only once', () => {
    expect(countdownAnnouncement(301_000, 300_000)).toBe('Your items are held for 5 more minutes.');
    expect(countdownAnnouncement(300_000, 299_000)).toBeNull();
    expect(countdownAnnouncement(61_000, 60_000)).toBe('Your items are held for 1 more minute.');
    expect(countdownAnnouncement(31_000, 30_000)).toBe('Your items are held for 30 more seconds.');
    expect(countdownAnnouncement(1000, 0)).toMatch(/expired/);
    expect(countdownAnnouncement(0, -1000)).toBeNull();
  });
  it('formats minor units with the currency', () => {
    expect(formatMoney(2400, 'usd', 'en-US')).toBe('$24.00');
    expect(formatMoney(1200, 'jpy', 'en-US')).toBe('¥1,200');
    expect(formatMoney(1500, 'eur', 'de-DE')).toMatch(/^15,00\s€$/);
  });
});

describe('payment step (fake Stripe)', () => {
  it('the PaymentIntent id is the client secret before _secret_', () => {
    expect(paymentIntentId('pi_3Abc_secret_xyz')).toBe('pi_3Abc');
    expect(() => paymentIntentId('seti_1_secret_x')).toThrow();
  });
  it('confirms with a form body and the publishable key', () => {
    const api = new FakeStripeApi('http://127.0.0.1:7/', 'pk_test_local', 'pi_1_secret_s');
    const { url, init } = api.confirmRequest('pm_card_visa');
    expect(url).toBe('http://127.0.0.1:7/v1/payment_intents/pi_1/confirm');
    expect(init.headers).toMatchObject({ Authorization: 'Bearer pk_test_local', 'Content-Type': 'application/x-www-form-urlencoded' });
    expect(init.body).toBe('payment_method=pm_card_visa&client_secret=pi_1_secret_s');
    expect(api.retrieveUrl()).toBe('http://127.0.0.1:7/v1/payment_intents/pi_1?client_secret=pi_1_secret_s');
  });
  it('maps statuses to outcomes', () => {
    expect(outcomeOf('succeeded', false)).toBe('succeeded');
    expect(outcomeOf('canceled', false)).toBe('canceled');
    expect(outcomeOf('requires_capture', false)).toBeNull();
    expect(outcomeOf('requires_payment_method', false)).toBeNull();
    expect(outcomeOf('requires_payment_method', true)).toBe('declined');
  });

  function fakeStripe(statuses: string[], confirm: Response | Error) {
    const calls: { url: string; init?: RequestInit }[] = [];
    let i = 0;
    const f = vi.fn<typeof fetch>(async (input, init) => {
      const url = String(input);
      calls.push({ url, init });
      if (url.endsWith('/confirm')) {
        if (confirm instanceof Error) throw confirm;
        return confirm;
      }
      const status = statuses[Math.min(i++, statuses.length - 1)];
      return json(200, { id: 'pi_1', status });
    });
    return { f, calls };
  }

  async function pay(statuses: string[], confirm: Response | Error, timeoutMs = 30_000) {
    const { f, calls } = fakeStripe(statuses, confirm);
    const api = new FakeStripeApi('http://127.0.0.1:7', 'pk_test_local', 'pi_1_secret_s', f);
    let t = 0;
    const phases: PaymentPhase[] = [];
    const r = await runPayment(
      () => api.confirm('pm_card_visa'),
      () => api.retrieve(),
      { now: () => t, sleep: async (ms) => void (t += ms), timeoutMs, onPhase: (p) => phases.push(p) },
    );
    return { r, phases, calls, elapsed: t };
  }

  it('authorised → polls every second until stockbridge captured it', async () => {
    const { r, phases, calls, elapsed } = await pay(['requires_capture', 'requires_capture', 'succeeded'], json(200, { id: 'pi_1', status: 'requires_capture' }));
    expect(r.outcome).toBe('succeeded');
    expect(phases).toEqual(['confirming', 'processing', 'succeeded']);
    expect(calls.filter((c) => !c.url.endsWith('/confirm'))).toHaveLength(3);
    expect(elapsed).toBe(2000);
    for (const c of calls) expect((c.init?.headers as Record<string, string>).Authorization).toBe('Bearer pk_test_local');
  });
  it('authorised too late and sold out → canceled', async () => {
    const { r } = await pay(['requires_capture', 'canceled'], json(200, { id: 'pi_1', status: 'requires_capture' }));
    expect(r.outcome).toBe('canceled');
  });
  it('declined (402 card_error) → requires_payment_method → declined', async () => {
    const { r, phases } = await pay(
      ['requires_payment_method'],
      json(402, { error: { type: 'card_error', code: 'card_declined', message: 'Your card was declined.', payment_intent: { id: 'pi_1', status: 'requires_payment_method' } } }),
    );
    expect(r.outcome).toBe('declined');
    expect(phases).toEqual(['confirming', 'declined']);
  });
  it('gives up after 30 s without a final status', async () => {
    const { r, elapsed } = await pay(['requires_capture'], json(200, { id: 'pi_1', status: 'requires_capture' }));
    expect(r.outcome).toBe('timeout');
    expect(elapsed).toBeLessThanOrEqual(30_000);
    expect(elapsed).toBeGreaterThanOrEqual(29_000);
  });
  it('a confirm that cannot reach Stripe is an error (nothing to poll)', async () => {
    const { r, calls } = await pay(['succeeded'], new TypeError('Failed to fetch'));
    expect(r.outcome).toBe('error');
    expect(calls).toHaveLength(1);
  });
  it('polling tolerates a failed request', async () => {
    let n = 0;
    let t = 0;
    const outcome = await pollOutcome(
      async () => {
        if (n++ === 0) throw new Error('HTTP 502');
        return { status: 'succeeded' };
      },
      false,
      { now: () => t, sleep: async (ms) => void (t += ms) },
    );
    expect(outcome).toBe('succeeded');
  });
});
