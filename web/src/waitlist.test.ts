// @vitest-environment happy-dom
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { parseCatalog, type Catalog } from './config';
import { applyMessage, initialState, setConnection, type StoreState } from './stock';
import { StorefrontUi } from './ui';
import {
  WAITLIST_MESSAGES,
  buildWaitlistRequest,
  interpretWaitlistResponse,
  waitlistEndpoint,
  waitlistMessage,
  type WaitlistOptions,
} from './waitlist';

const STORE = 'store_demo';
const CHECKOUT_URL = 'http://127.0.0.1:9000/';

function catalog(): Catalog {
  const product = (product_id: string, name: string, available: number) => ({
    product_id,
    name,
    price: { amount: 1200, currency: 'usd' },
    payment_link: { id: `plink_${product_id}`, url: `https://buy.stripe.com/${product_id}`, active: available > 0 },
    available,
    version: 3,
  });
  return parseCatalog(
    {
      store_id: STORE,
      products: [product('prod_mug', 'Mug', 5), product('prod_pin', 'Pin', 0), product('prod poster/1', 'Poster', 0)],
    },
    'http://127.0.0.1/catalog.json',
  );
}

function msg(product_id: string, available: number, version: number) {
  return JSON.stringify({ product_id, store_id: STORE, available, sold_out: available === 0, version, updated_at: 'x' });
}

function answer(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

describe('the waitlist request and its answers', () => {
  it('posts the JSON body to {checkoutUrl}/waitlist', () => {
    expect(waitlistEndpoint('https://x.lambda-url.on.aws/')).toBe('https://x.lambda-url.on.aws/waitlist');
    expect(waitlistEndpoint('https://api.example/shop//')).toBe('https://api.example/shop/waitlist');
    const { url, init } = buildWaitlistRequest('https://api.example/shop', { store_id: 's', product_id: 'p', email: 'a@b.example' });
    expect(url).toBe('https://api.example/shop/waitlist');
    expect(init.method).toBe('POST');
    expect(init.headers).toEqual({ 'Content-Type': 'application/json', Accept: 'application/json' });
    expect(JSON.parse(init.body as string)).toEqual({ store_id: 's', product_id: 'p', email: 'a@b.example' });
    expect(init.credentials).toBe('omit');
  });

  it('reads each answer', () => {
    expect(interpretWaitlistResponse(202, { status: 'confirmation_requested', message: 'x' })).toEqual({ kind: 'requested' });
    expect(interpretWaitlistResponse(400, { error: 'invalid_request', field: 'email', message: 'email: not an address' })).toEqual({
      kind: 'invalid_email',
      message: 'email: not an address',
    });
    expect(interpretWaitlistResponse(400, { field: 'email' })).toEqual({ kind: 'invalid_email', message: WAITLIST_MESSAGES.badEmail });
    expect(interpretWaitlistResponse(400, { field: 'email', message: 'x'.repeat(301) })).toEqual({
      kind: 'invalid_email',
      message: WAITLIST_MESSAGES.badEmail,
    });
    // Not the buyer's to fix.
    for (const field of ['store_id', 'product_id', 'body']) {
      expect(interpretWaitlistResponse(400, { error: 'invalid_request', field, message: 'm' })).toEqual({ kind: 'failed' });
    }
    expect(interpretWaitlistResponse(429, { error: 'too_many_requests', retry_after: 30 }, '30')).toEqual({ kind: 'throttled', retryAfter: 30 });
    expect(interpretWaitlistResponse(429, null, '12')).toEqual({ kind: 'throttled', retryAfter: 12 });
    expect(interpretWaitlistResponse(429, {}, null)).toEqual({ kind: 'throttled', retryAfter: null });
    for (const status of [403, 404, 413, 415, 500, 502, 503]) {
      expect(interpretWaitlistResponse(status, { error: 'unavailable', request_id: 'req-1', message: 'internal' })).toEqual({ kind: 'failed' });
    }
  });

  it('words each answer', () => {
    expect(waitlistMessage({ kind: 'requested' })).toBe('Almost done: check your inbox to confirm.');
    expect(waitlistMessage({ kind: 'throttled', retryAfter: 30 })).toBe('Too many requests. Please try again in 30 seconds.');
    expect(waitlistMessage({ kind: 'throttled', retryAfter: 1 })).toBe('Too many requests. Please try again in 1 second.');
    expect(waitlistMessage({ kind: 'throttled', retryAfter: null })).toBe('Too many requests. Please try again in a moment.');
    expect(waitlistMessage({ kind: 'failed' })).toBe(WAITLIST_MESSAGES.failed);
  });
});

describe('the "Notify me" form on sold-out cards', () => {
  let ui: StorefrontUi;
  let state: StoreState;
  let fetchMock: ReturnType<typeof vi.fn<typeof fetch>>;
  const card = (id: string) => document.querySelector<HTMLElement>(`[data-product-id="${id}"]`)!;
  const form = (id: string) => card(id).querySelector<HTMLFormElement>('[data-testid="notify-form"]');
  const parts = (id: string) => {
    const f = form(id)!;
    const q = <T extends HTMLElement>(t: string) => f.querySelector<T>(`[data-testid="${t}"]`)!;
    return { form: f, input: q<HTMLInputElement>('notify-email'), button: q<HTMLButtonElement>('notify-submit'), status: q('notify-status') };
  };
  const apply = (id: string, available: number, version: number) => {
    state = applyMessage(state, msg(id, available, version), `stockbridge/${STORE}/products/${id}/stock`).state;
    ui.update(state, [id]);
  };
  /** Types an address and submits, then waits until the answer is shown. */
  async function submit(id: string, email: string): Promise<ReturnType<typeof parts>> {
    const p = parts(id);
    p.input.value = email;
    p.form.requestSubmit();
    await vi.waitFor(() => expect(p.form.dataset.state).not.toBe('sending'));
    return p;
  }

  function render(waitlist: WaitlistOptions | undefined): void {
    document.body.innerHTML = '<div id="app"></div>';
    ui = new StorefrontUi(document.getElementById('app')!, { title: 'Shop', qr: async () => '<svg></svg>', waitlist });
    state = setConnection(initialState(STORE, catalog().products), 'connected');
    ui.renderCatalog(catalog(), state);
  }

  beforeEach(() => {
    fetchMock = vi.fn<typeof fetch>();
    render({ checkoutUrl: CHECKOUT_URL, storeId: STORE, fetch: fetchMock });
  });

  it('is absent without a checkout API', () => {
    render(undefined);
    expect(card('prod_pin').dataset.soldOut).toBe('true');
    expect(document.querySelector('[data-testid="notify-form"]')).toBeNull();
  });

  it('appears only on sold-out cards, with a label, unique ids and its own live region', () => {
    expect(form('prod_mug')).toBeNull();
    expect(form('prod_pin')).not.toBeNull();
    expect(form('prod poster/1')).not.toBeNull();
    const { form: f, input, button, status } = parts('prod_pin');
    expect(f.noValidate).toBe(true);
    expect(input.type).toBe('email');
    expect(input.required).toBe(true);
    expect(input.getAttribute('autocomplete')).toBe('email');
    expect(input.name).toBe('email');
    const label = f.querySelector('label')!;
    expect(label.htmlFor).toBe(input.id);
    expect(label.textContent).toBe('E-mail me when it is back (Pin)');
    expect(button.type).toBe('submit');
    expect(button.textContent).toBe('Notify me about Pin');
    expect(status.getAttribute('role')).toBe('status');
    expect(status.getAttribute('aria-live')).toBe('polite');
    expect(status.textContent).toBe('');
    expect(f.dataset.state).toBe('idle');
    // The sold-out look is unchanged: badge, no href, QR hidden.
    expect(card('prod_pin').querySelector('[data-testid="buy-link"]')!.getAttribute('aria-disabled')).toBe('true');
    expect(card('prod_pin').querySelector<HTMLElement>('[data-testid="qr"]')!.hidden).toBe(true);
    const ids = [...document.querySelectorAll('[id]')].map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(parts('prod poster/1').input.id).not.toBe(input.id);
  });

  it('checks the address locally first: nothing is sent, the input is marked and described', async () => {
    let p = await submit('prod_pin', '');
    expect(fetchMock).not.toHaveBeenCalled();
    expect(p.status.textContent).toBe(WAITLIST_MESSAGES.missing);
    expect(p.input.getAttribute('aria-invalid')).toBe('true');
    expect(p.input.getAttribute('aria-describedby')).toBe(p.status.id);
    expect(document.activeElement).toBe(p.input);
    p = await submit('prod_pin', 'not-an-address');
    expect(fetchMock).not.toHaveBeenCalled();
    expect(p.status.textContent).toBe(WAITLIST_MESSAGES.malformed);
    expect(p.input.value).toBe('not-an-address');
    expect(p.form.dataset.state).toBe('error');
  });

  it('posts the address, disables the button while sending, then says to check the inbox', async () => {
    let resolve!: (r: Response) => void;
    fetchMock.mockReturnValueOnce(new Promise<Response>((r) => (resolve = r)));
    const p = parts('prod poster/1');
    p.input.value = 'nope';
    p.form.requestSubmit();
    p.input.value = ' buyer@example.com ';
    p.button.focus();
    p.form.requestSubmit();
    expect(p.button.disabled).toBe(true);
    expect(p.form.dataset.state).toBe('sending');
    p.form.requestSubmit(); // a second submit while sending is ignored
    expect(fetchMock).toHaveBeenCalledTimes(1);
    const [url, init] = fetchMock.mock.calls[0];
    expect(url).toBe('http://127.0.0.1:9000/waitlist');
    expect(init?.method).toBe('POST');
    expect(init?.headers).toEqual({ 'Content-Type': 'application/json', Accept: 'application/json' });
    expect(JSON.parse(init?.body as string)).toEqual({ store_id: STORE, product_id: 'prod poster/1', email: 'buyer@example.com' });
    resolve(answer(202, { status: 'confirmation_requested', message: 'Check your inbox' }));
    await vi.waitFor(() => expect(p.form.dataset.state).toBe('requested'));
    expect(p.status.textContent).toBe('Almost done: check your inbox to confirm.');
    expect(p.button.disabled).toBe(false);
    expect(document.activeElement).toBe(p.button);
    expect(p.input.hasAttribute('aria-invalid')).toBe(false);
    expect(p.input.hasAttribute('aria-describedby')).toBe(false);
    expect(p.input.value).toBe('buyer@example.com');
  });

  it("a 400 on the e-mail shows the server's message on the input, and keeps what was typed", async () => {
    fetchMock.mockResolvedValueOnce(answer(400, { error: 'invalid_request', field: 'email', message: 'That address cannot receive mail.' }));
    const p = await submit('prod_pin', 'buyer@localhost');
    expect(p.status.textContent).toBe('That address cannot receive mail.');
    expect(p.input.getAttribute('aria-invalid')).toBe('true');
    expect(p.input.getAttribute('aria-describedby')).toBe(p.status.id);
    expect(p.input.value).toBe('buyer@localhost');
    expect(document.activeElement).toBe(p.input);
    expect(p.button.disabled).toBe(false);
  });

  it('429 says when to try again; other failures say to retry, without internals', async () => {
    fetchMock.mockResolvedValueOnce(answer(429, { error: 'too_many_requests', message: 'slow down', retry_after: 30 }, { 'Retry-After': '30' }));
    let p = await submit('prod_pin', 'buyer@example.com');
    expect(p.status.textContent).toBe('Too many requests. Please try again in 30 seconds.');
    expect(p.input.hasAttribute('aria-invalid')).toBe(false);

    const failures: Array<() => Promise<Response>> = [
      async () => answer(503, { error: 'unavailable', request_id: 'req-123', message: 'DynamoDB throttled' }),
      async () => answer(400, { error: 'invalid_request', field: 'store_id', message: 'unknown store' }),
      async () => answer(403, { error: 'forbidden', message: 'origin not allowed' }),
      async () => answer(413, { error: 'too_large', message: 'too large' }),
      async () => new Response('<html>bad gateway</html>', { status: 502 }),
      async () => {
        throw new TypeError('Failed to fetch');
      },
    ];
    for (const f of failures) {
      fetchMock.mockImplementationOnce(f);
      p = await submit('prod_pin', 'buyer@example.com');
      expect(p.status.textContent).toBe(WAITLIST_MESSAGES.failed);
      expect(p.form.dataset.state).toBe('error');
      expect(p.input.value).toBe('buyer@example.com');
      expect(p.input.hasAttribute('aria-invalid')).toBe(false);
      expect(p.button.disabled).toBe(false);
    }
    expect(fetchMock).toHaveBeenCalledTimes(1 + failures.length);
  });

  it('goes away when the product is back in stock (Buy returns) and comes back when it sells out again', () => {
    parts('prod_pin').input.value = 'buyer@example.com';
    parts('prod_pin').input.focus();
    apply('prod_pin', 2, 10);
    expect(form('prod_pin')).toBeNull();
    const buy = card('prod_pin').querySelector<HTMLAnchorElement>('[data-testid="buy-link"]')!;
    expect(buy.getAttribute('href')).toBe('https://buy.stripe.com/prod_pin');
    expect(buy.hasAttribute('aria-disabled')).toBe(false);
    // Focus was in the form: it moves to the Buy link, not to <body>.
    expect(document.activeElement).toBe(buy);
    apply('prod_pin', 0, 11);
    expect(parts('prod_pin').input.value).toBe('');
    expect(card('prod_pin').querySelectorAll('[data-testid="notify-form"]')).toHaveLength(1);
    apply('prod_mug', 0, 4);
    expect(form('prod_mug')).not.toBeNull();
  });

  it("keeps what the buyer is typing through other cards' updates and the connection's", () => {
    const p = parts('prod poster/1');
    p.input.value = 'buyer@exa';
    p.input.focus();
    apply('prod_mug', 4, 4);
    apply('prod_pin', 0, 5); // the other sold-out card, a newer version
    apply('prod poster/1', 0, 6); // this one, still sold out
    state = setConnection(state, 'reconnecting');
    ui.setConnection('reconnecting');
    ui.update(state);
    state = setConnection(state, 'connected');
    ui.update(state);
    expect(form('prod poster/1')).toBe(p.form);
    expect(p.input.value).toBe('buyer@exa');
    expect(document.activeElement).toBe(p.input);
  });

  it('a product back in stock while sending drops the request quietly', async () => {
    fetchMock.mockImplementationOnce(
      (_url, init) =>
        new Promise<Response>((_resolve, reject) => {
          init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        }),
    );
    const p = parts('prod_pin');
    p.input.value = 'buyer@example.com';
    p.form.requestSubmit();
    expect(p.form.dataset.state).toBe('sending');
    apply('prod_pin', 1, 10);
    expect(form('prod_pin')).toBeNull();
    await vi.waitFor(() => expect(p.button.disabled).toBe(false));
    expect(p.status.textContent).toBe(WAITLIST_MESSAGES.sending);
  });
});
