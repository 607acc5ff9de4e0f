// @vitest-environment happy-dom
import { beforeEach, describe, expect, it } from 'vitest';
import { parseCatalog, type Catalog } from './config';
import { applyMessage, initialState, setConnection, type StoreState } from './stock';
import { StorefrontUi, svgQr } from './ui';

const STORE = 'store_demo';

function catalog(): Catalog {
  return parseCatalog(
    {
      store_id: STORE,
      products: [
        {
          product_id: 'prod_1',
          name: 'Mug',
          description: 'A mug',
          images: ['https://cdn.example/mug.png'],
          price: { amount: 1200, currency: 'usd' },
          payment_link: { id: 'plink_1', url: 'https://buy.stripe.com/mug', active: true },
          available: 5,
          version: 3,
        },
        {
          product_id: 'prod_2',
          name: 'Pin',
          images: [],
          price: { amount: 800, currency: 'jpy' },
          payment_link: { id: 'plink_2', url: 'https://buy.stripe.com/pin', active: false },
          available: 0,
          version: 9,
        },
        {
          product_id: 'prod_3',
          name: 'Poster',
          price: { amount: 1500, currency: 'eur' },
          payment_link: { id: 'plink_3', url: 'https://buy.stripe.com/poster', active: false },
          available: 4,
          version: 1,
        },
      ],
    },
    'http://127.0.0.1/catalog.json',
  );
}

function msg(product_id: string, available: number, version: number) {
  return JSON.stringify({ product_id, store_id: STORE, available, sold_out: available === 0, version, updated_at: 'x' });
}

const flush = () => new Promise((r) => setTimeout(r, 0));

describe('StorefrontUi', () => {
  let root: HTMLElement;
  let ui: StorefrontUi;
  let state: StoreState;
  const card = (id: string) => document.querySelector<HTMLElement>(`[data-product-id="${id}"]`)!;
  const hook = (id: string, testid: string) => card(id).querySelector<HTMLElement>(`[data-testid="${testid}"]`);

  beforeEach(() => {
    document.body.innerHTML = '<div id="app"></div>';
    delete document.body.dataset.ready;
    root = document.getElementById('app')!;
    ui = new StorefrontUi(root, { title: 'Demo shop', locale: 'en-US', qr: async (url) => `<svg data-url="${url}"></svg>` });
    state = initialState(STORE, catalog().products);
    ui.renderCatalog(catalog(), state);
  });

  it('renders the cards with the stable hooks and marks the body ready', async () => {
    expect(document.body.dataset.ready).toBe('true');
    expect(document.title).toBe('Demo shop');
    expect(document.querySelectorAll('[data-product-id]')).toHaveLength(3);
    const mug = card('prod_1');
    expect(mug.querySelector('img')?.getAttribute('alt')).toBe('Mug');
    expect(mug.querySelector('h2')?.textContent).toBe('Mug');
    expect(hook('prod_1', 'price')?.textContent).toBe('Price: $12.00');
    expect(hook('prod_2', 'price')?.textContent).toBe('Price: ¥800');
    expect(hook('prod_1', 'stock-count')?.textContent).toBe('5');
    expect(hook('prod_1', 'stock-count')?.closest('[aria-live="polite"]')).not.toBeNull();
    expect(hook('prod_1', 'sold-out')).toBeNull();
    expect(hook('prod_1', 'stock-freshness')?.textContent).toBe('Last known');
    expect(mug.dataset.live).toBe('false');
    const link = hook('prod_1', 'buy-link') as HTMLAnchorElement;
    expect(link.textContent).toBe('Buy');
    expect(link.getAttribute('href')).toBe('https://buy.stripe.com/mug');
    expect(link.getAttribute('target')).toBeNull();
    const qr = hook('prod_1', 'qr')!;
    expect(qr.hidden).toBe(false);
    expect(qr.getAttribute('role')).toBe('img');
    expect(qr.getAttribute('aria-label')).toContain('Mug');
    await flush();
    expect(qr.querySelector('svg')?.getAttribute('data-url')).toBe('https://buy.stripe.com/mug');
    expect(qr.querySelector('svg')?.getAttribute('aria-hidden')).toBe('true');

    const conn = document.querySelector<HTMLElement>('[data-testid="connection"]')!;
    expect(conn.getAttribute('role')).toBe('status');
    expect(conn.dataset.state).toBe('connecting');
  });

  it('disables buying when sold out or the link is inactive', () => {
    expect(hook('prod_2', 'stock-count')?.textContent).toBe('0');
    expect(hook('prod_2', 'sold-out')?.textContent).toBe('Sold out');
    const pin = hook('prod_2', 'buy-link')!;
    expect(pin.hasAttribute('href')).toBe(false);
    expect(pin.getAttribute('aria-disabled')).toBe('true');
    expect(hook('prod_2', 'qr')!.hidden).toBe(true);
    // In stock, but the link is off.
    const poster = hook('prod_3', 'buy-link')!;
    expect(poster.hasAttribute('href')).toBe(false);
    expect(poster.getAttribute('aria-disabled')).toBe('true');
    expect(hook('prod_3', 'qr')!.hidden).toBe(true);
    expect(hook('prod_3', 'sold-out')).toBeNull();
  });

  it('follows live messages: count, sold out, restock, liveness and the connection indicator', () => {
    const apply = (payload: string, id: string) => {
      state = applyMessage(state, payload, `stockbridge/${STORE}/products/${id}/stock`).state;
      ui.update(state, [id]);
    };
    state = setConnection(state, 'connected');
    ui.setConnection('connected');
    ui.update(state);
    const conn = document.querySelector<HTMLElement>('[data-testid="connection"]')!;
    expect(conn.dataset.state).toBe('connected');
    expect(conn.textContent).toBe('Live');

    apply(msg('prod_1', 5, 3), 'prod_1');
    expect(hook('prod_1', 'stock-freshness')?.textContent).toBe('Live');
    expect(card('prod_1').dataset.live).toBe('true');

    apply(msg('prod_1', 0, 4), 'prod_1');
    expect(hook('prod_1', 'stock-count')?.textContent).toBe('0');
    expect(hook('prod_1', 'sold-out')).not.toBeNull();
    expect(hook('prod_1', 'buy-link')!.hasAttribute('href')).toBe(false);
    expect(hook('prod_1', 'qr')!.hidden).toBe(true);

    apply(msg('prod_1', 3, 5), 'prod_1');
    expect(hook('prod_1', 'stock-count')?.textContent).toBe('3');
    expect(hook('prod_1', 'sold-out')).toBeNull();
    expect(hook('prod_1', 'buy-link')!.getAttribute('href')).toBe('https://buy.stripe.com/mug');
    expect(hook('prod_1', 'buy-link')!.hasAttribute('aria-disabled')).toBe(false);

    // A catalog written while sold out lists the link as off; a newer live restock means
    // stockbridge switched it back on.
    apply(msg('prod_2', 2, 10), 'prod_2');
    expect(hook('prod_2', 'buy-link')!.getAttribute('href')).toBe('https://buy.stripe.com/pin');
    // A link that was off while in stock stays off.
    apply(msg('prod_3', 3, 2), 'prod_3');
    expect(hook('prod_3', 'buy-link')!.hasAttribute('href')).toBe(false);

    state = setConnection(state, 'reconnecting');
    ui.setConnection('reconnecting');
    ui.update(state);
    expect(conn.dataset.state).toBe('reconnecting');
    expect(conn.textContent).toBe('Reconnecting…');
    expect(hook('prod_1', 'stock-freshness')?.textContent).toBe('Last known');
    expect(hook('prod_1', 'stock-count')?.textContent).toBe('3');
    expect(document.querySelector<HTMLElement>('[data-testid="stale-notice"]')!.hidden).toBe(false);

    ui.setConnection('offline');
    expect(conn.dataset.state).toBe('offline');
    expect(conn.textContent).toBe('Offline');
  });

  it('shows an error instead of products when loading fails', () => {
    ui.showError('catalog: HTTP 404');
    const alert = document.querySelector('[role="alert"]');
    expect(alert?.textContent).toContain('HTTP 404');
    expect(document.body.dataset.error).toBe('true');
  });
});

describe('svgQr', () => {
  it('renders an SVG QR code for a payment link', async () => {
    const svg = await svgQr('https://buy.stripe.com/test_123');
    expect(svg).toMatch(/^<svg[^>]*viewBox/);
    expect(svg).toContain('<path');
  });
});
