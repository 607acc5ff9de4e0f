// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseCatalog, type Catalog } from './config';
import { applyMessage, initialState, setConnection, type StoreState } from './stock';
import { Announcer, StorefrontUi, stockAnnouncement, svgQr } from './ui';

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
    // Decorative: the name is the heading next to it.
    expect(mug.querySelector('img')?.getAttribute('alt')).toBe('');
    expect(mug.querySelector('h2')?.textContent).toBe('Mug');
    expect(hook('prod_1', 'price')?.textContent).toBe('Price: $12.00');
    expect(hook('prod_2', 'price')?.textContent).toBe('Price: ¥800');
    expect(hook('prod_1', 'stock-count')?.textContent).toBe('5');
    // No per-card live region: changes are announced by the page's one announcer.
    expect(hook('prod_1', 'stock-count')?.closest('[aria-live]')).toBeNull();
    expect(document.querySelectorAll('[aria-live]')).toHaveLength(1);
    expect(hook('prod_1', 'sold-out')).toBeNull();
    expect(hook('prod_1', 'stock-freshness')?.textContent).toBe('Last known');
    expect(mug.dataset.live).toBe('false');
    const link = hook('prod_1', 'buy-link') as HTMLAnchorElement;
    // Visible "Buy", accessible name "Buy Mug".
    expect(link.textContent).toBe('Buy Mug');
    expect(link.querySelector('.visually-hidden')?.textContent).toBe(' Mug');
    expect(link.firstChild?.textContent).toBe('Buy');
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

  it('gives every Buy link a distinct accessible name, also when not buyable', () => {
    const names = [...document.querySelectorAll<HTMLElement>('[data-testid="buy-link"]')].map((a) => a.textContent);
    expect(names).toEqual(['Buy Mug', 'Buy Pin', 'Buy Poster']);
    for (const a of document.querySelectorAll('[data-testid="buy-link"]')) {
      expect(a.hasAttribute('aria-describedby')).toBe(false);
      expect(a.querySelector('.visually-hidden')).not.toBeNull();
    }
  });

  it('has one visually hidden, page-level live region for announcements, empty at first', () => {
    const regions = document.querySelectorAll<HTMLElement>('[data-testid="announcer"]');
    expect(regions).toHaveLength(1);
    const a = regions[0];
    expect(a.getAttribute('role')).toBe('status');
    expect(a.getAttribute('aria-live')).toBe('polite');
    expect(a.classList.contains('visually-hidden')).toBe(true);
    expect(a.closest('[data-product-id]')).toBeNull();
    // The initial render announces nothing.
    expect(a.textContent).toBe('');
    // Re-rendering the page does not add a second one.
    ui.renderCatalog(catalog(), state);
    expect(document.querySelectorAll('[data-testid="announcer"]')).toHaveLength(1);
    expect(document.querySelectorAll('[aria-live]')).toHaveLength(1);
  });

  it('uses the same-as-sold-out rule for a catalog entry without a level: a newer live restock restores Buy', () => {
    const cat = parseCatalog(
      {
        store_id: STORE,
        products: [
          {
            product_id: 'prod_nolevel',
            name: 'Cap',
            price: { amount: 900, currency: 'usd' },
            payment_link: { id: 'plink_cap', url: 'https://buy.stripe.com/cap', active: false },
            version: 6,
          },
          {
            product_id: 'prod_nulllevel',
            name: 'Scarf',
            price: { amount: 900, currency: 'usd' },
            payment_link: { id: 'plink_scarf', url: 'https://buy.stripe.com/scarf', active: false },
            available: null,
          },
        ],
      },
      'http://127.0.0.1/catalog.json',
    );
    expect(cat.products.map((p) => p.available)).toEqual([null, null]);
    state = setConnection(initialState(STORE, cat.products), 'connected');
    ui.renderCatalog(cat, state);
    const buy = (id: string) => hook(id, 'buy-link')!;
    const apply = (payload: string, id: string) => {
      state = applyMessage(state, payload, `stockbridge/${STORE}/products/${id}/stock`).state;
      ui.update(state, [id]);
    };
    for (const id of ['prod_nolevel', 'prod_nulllevel']) {
      expect(buy(id).hasAttribute('href')).toBe(false);
      expect(buy(id).getAttribute('aria-disabled')).toBe('true');
    }

    // Not newer than the catalog's version: the catalog's "inactive" stands.
    apply(msg('prod_nolevel', 3, 6), 'prod_nolevel');
    expect(buy('prod_nolevel').hasAttribute('href')).toBe(false);
    // Newer and in stock: stockbridge switched the link back on.
    apply(msg('prod_nolevel', 3, 7), 'prod_nolevel');
    expect(buy('prod_nolevel').getAttribute('href')).toBe('https://buy.stripe.com/cap');
    expect(buy('prod_nolevel').hasAttribute('aria-disabled')).toBe(false);
    expect(hook('prod_nolevel', 'qr')!.hidden).toBe(false);
    expect(card('prod_nolevel').dataset.buyable).toBe('true');

    // No catalog version at all: a live level of 0 keeps it off, a restock turns it on.
    apply(msg('prod_nulllevel', 0, 1), 'prod_nulllevel');
    expect(buy('prod_nulllevel').hasAttribute('href')).toBe(false);
    apply(msg('prod_nulllevel', 2, 2), 'prod_nulllevel');
    expect(buy('prod_nulllevel').getAttribute('href')).toBe('https://buy.stripe.com/scarf');
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

describe('StorefrontUi announcements', () => {
  let ui: StorefrontUi;
  let state: StoreState;
  const announcer = () => document.querySelector<HTMLElement>('[data-testid="announcer"]')!.textContent;
  const apply = (id: string, available: number, version: number) => {
    state = applyMessage(state, msg(id, available, version), `stockbridge/${STORE}/products/${id}/stock`).state;
    ui.update(state, [id]);
  };

  beforeEach(() => {
    vi.useFakeTimers();
    document.body.innerHTML = '<div id="app"></div>';
    ui = new StorefrontUi(document.getElementById('app')!, { title: 'Demo shop', qr: async () => '<svg></svg>' });
    state = initialState(STORE, catalog().products);
    ui.renderCatalog(catalog(), state);
    state = setConnection(state, 'connected');
    ui.setConnection('connected');
    ui.update(state);
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says nothing for the initial render, a re-confirmation or a change of liveness alone', () => {
    expect(announcer()).toBe('');
    apply('prod_1', 5, 3); // the catalog's level, now live
    expect(hook('prod_1', 'stock-freshness')).toBe('Live');
    expect(announcer()).toBe('');
    state = setConnection(state, 'reconnecting');
    ui.setConnection('reconnecting');
    ui.update(state);
    expect(hook('prod_1', 'stock-freshness')).toBe('Last known');
    expect(announcer()).toBe('');
  });

  it('names the product: "N left", "sold out", "back in stock"', () => {
    apply('prod_1', 2, 4);
    expect(announcer()).toBe('Mug: 2 left');
    vi.advanceTimersByTime(2000);
    apply('prod_1', 0, 5);
    expect(announcer()).toBe('Mug: sold out');
    vi.advanceTimersByTime(2000);
    apply('prod_1', 4, 6);
    expect(announcer()).toBe('Mug: back in stock');
    vi.advanceTimersByTime(2000);
    apply('prod_2', 1, 10); // sold out in the catalog
    expect(announcer()).toBe('Pin: back in stock');
  });

  it('a rush: at most one announcement per product per 2 s, and the newest wins', () => {
    apply('prod_1', 4, 4);
    expect(announcer()).toBe('Mug: 4 left');
    vi.advanceTimersByTime(500);
    apply('prod_1', 3, 5);
    apply('prod_1', 2, 6);
    vi.advanceTimersByTime(1000);
    apply('prod_1', 1, 7);
    // Still within 2 s of "4 left": nothing new said yet.
    expect(announcer()).toBe('Mug: 4 left');
    vi.advanceTimersByTime(499);
    expect(announcer()).toBe('Mug: 4 left');
    vi.advanceTimersByTime(1);
    // 2 s after the first: only the newest level.
    expect(announcer()).toBe('Mug: 1 left');
    vi.advanceTimersByTime(10_000);
    expect(announcer()).toBe('Mug: 1 left');
  });

  it('coalesces against what was last said', () => {
    apply('prod_1', 0, 4);
    expect(announcer()).toBe('Mug: sold out');
    // Restocked and selling within 2 s: said as "back in stock", once.
    apply('prod_1', 3, 5);
    apply('prod_1', 2, 6);
    vi.advanceTimersByTime(2000);
    expect(announcer()).toBe('Mug: back in stock');
    vi.advanceTimersByTime(2000);
    apply('prod_1', 1, 7);
    expect(announcer()).toBe('Mug: 1 left');
    // Down and back up to what was last said within 2 s: nothing more to say.
    apply('prod_1', 0, 8);
    apply('prod_1', 1, 9);
    vi.advanceTimersByTime(5000);
    expect(announcer()).toBe('Mug: 1 left');
  });

  it('throttles per product: another product is announced at once', () => {
    apply('prod_1', 4, 4);
    expect(announcer()).toBe('Mug: 4 left');
    apply('prod_3', 3, 2);
    expect(announcer()).toBe('Poster: 3 left');
  });

  it('changes painted together are announced together', () => {
    state = applyMessage(state, msg('prod_1', 4, 4), `stockbridge/${STORE}/products/prod_1/stock`).state;
    state = applyMessage(state, msg('prod_2', 2, 10), `stockbridge/${STORE}/products/prod_2/stock`).state;
    ui.update(state, ['prod_1', 'prod_2']);
    expect(announcer()).toBe('Mug: 4 left. Pin: back in stock');
  });

  it('many products changing at once (a reconnect) are summed up, not read one by one', () => {
    const products = Array.from({ length: 12 }, (_, i) => ({
      product_id: `p${i}`,
      name: `Item ${i}`,
      payment_link: { url: `https://buy.stripe.com/${i}`, active: true },
      available: 5,
      version: 1,
    }));
    const cat = parseCatalog({ store_id: STORE, products }, 'http://127.0.0.1/catalog.json');
    state = setConnection(initialState(STORE, cat.products), 'connected');
    ui.renderCatalog(cat, state);
    for (const p of products) {
      state = applyMessage(state, msg(p.product_id, 4, 2), `stockbridge/${STORE}/products/${p.product_id}/stock`).state;
    }
    ui.update(state);
    expect(announcer()).toBe('Stock changed for 12 products');
  });

  it('a new catalog drops what was still pending', () => {
    apply('prod_1', 4, 4);
    apply('prod_1', 3, 5);
    ui.renderCatalog(catalog(), initialState(STORE, catalog().products));
    vi.advanceTimersByTime(10_000);
    expect(announcer()).toBe('Mug: 4 left');
  });

  function hook(id: string, testid: string): string | null | undefined {
    return document.querySelector(`[data-product-id="${id}"] [data-testid="${testid}"]`)?.textContent;
  }
});

describe('stockAnnouncement', () => {
  const lvl = (available: number | null, sold_out = available === 0) => ({ available, sold_out });
  it('words a change, or says nothing', () => {
    expect(stockAnnouncement('Mug', lvl(5), lvl(2))).toBe('Mug: 2 left');
    expect(stockAnnouncement('Mug', lvl(null), lvl(7))).toBe('Mug: 7 left');
    expect(stockAnnouncement('Mug', lvl(2), lvl(0))).toBe('Mug: sold out');
    expect(stockAnnouncement('Mug', lvl(null), lvl(0))).toBe('Mug: sold out');
    expect(stockAnnouncement('Mug', lvl(2), lvl(2, true))).toBe('Mug: sold out');
    expect(stockAnnouncement('Mug', lvl(0), lvl(3))).toBe('Mug: back in stock');
    expect(stockAnnouncement('Mug', lvl(2), lvl(2))).toBeNull();
    expect(stockAnnouncement('Mug', lvl(0), lvl(0))).toBeNull();
    expect(stockAnnouncement('Mug', lvl(2), lvl(null))).toBeNull();
  });
});

describe('Announcer', () => {
  it('uses an injected clock and interval', () => {
    vi.useFakeTimers();
    try {
      const region = document.createElement('div');
      let t = 0;
      const a = new Announcer(region, { intervalMs: 100, now: () => t });
      a.track('x', 'Mug', { available: 5, sold_out: false });
      a.change('x', { available: 4, sold_out: false });
      a.flush();
      expect(region.textContent).toBe('Mug: 4 left');
      t = 50;
      a.change('x', { available: 3, sold_out: false });
      a.flush();
      expect(region.textContent).toBe('Mug: 4 left');
      t = 100;
      vi.advanceTimersByTime(50);
      expect(region.textContent).toBe('Mug: 3 left');
      // Unknown products are ignored.
      a.change('nope', { available: 1, sold_out: false });
      a.flush();
      expect(region.textContent).toBe('Mug: 3 left');
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('StorefrontUi: "Buy with reserved stock"', () => {
  it('is absent without a checkout API', () => {
    document.body.innerHTML = '<div id="app"></div>';
    const ui = new StorefrontUi(document.getElementById('app')!, { title: 'Shop', qr: async () => '<svg></svg>' });
    ui.renderCatalog(catalog(), initialState(STORE, catalog().products));
    expect(document.querySelector('[data-testid="reserve-link"]')).toBeNull();
  });

  it('links each card to the checkout page, and is switched off while sold out', () => {
    document.body.innerHTML = '<div id="app"></div>';
    const ui = new StorefrontUi(document.getElementById('app')!, {
      title: 'Shop',
      qr: async () => '<svg></svg>',
      checkoutHref: (id) => `checkout.html?store=${STORE}&product=${id}`,
    });
    const state = initialState(STORE, catalog().products);
    ui.renderCatalog(catalog(), state);
    const mug = document.querySelector<HTMLAnchorElement>('[data-product-id="prod_1"] [data-testid="reserve-link"]')!;
    expect(mug.getAttribute('href')).toBe('checkout.html?store=store_demo&product=prod_1');
    expect(mug.textContent).toBe('Buy with reserved stock: Mug');
    const pin = document.querySelector<HTMLAnchorElement>('[data-product-id="prod_2"] [data-testid="reserve-link"]')!;
    expect(pin.hasAttribute('href')).toBe(false);
    expect(pin.getAttribute('aria-disabled')).toBe('true');
  });
});
