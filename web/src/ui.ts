/**
 * The DOM: product cards, the connection indicator and errors. Stable hooks for tests:
 *
 * - card: `[data-product-id="<id>"]` (also `data-live`, `data-sold-out`, `data-buyable`)
 * - `[data-testid="stock-count"]`: the number only (empty while unknown)
 * - `[data-testid="sold-out"]`: present only when sold out
 * - `[data-testid="stock-freshness"]`: "Live" or "Last known"
 * - `[data-testid="buy-link"]`: `href` when buyable; no `href` and `aria-disabled="true"` otherwise
 * - `[data-testid="qr"]`: the QR code (`hidden` when not buyable)
 * - `[data-testid="notify-form"]`: the back-in-stock form, only while sold out and only with a
 *   checkout API (see `waitlist.ts` for its hooks)
 * - `[data-testid="connection"]`: role=status, `data-state` = the connection state
 * - `[data-testid="announcer"]`: the one page-level live region for stock changes (see `Announcer`)
 * - `<body data-ready="true">` once the catalog is rendered
 */
import type { Catalog, CatalogProduct } from './config';
import { formatMoney, productStock, type ConnectionState, type StoreState } from './stock';
import { WaitlistForm, type WaitlistOptions } from './waitlist';

export type QrRenderer = (url: string) => Promise<string>;

/** SVG markup for a URL, from the `qrcode` package (loaded on first use). */
export const svgQr: QrRenderer = async (url) => {
  const QRCode = await import('qrcode');
  return QRCode.toString(url, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
};

export const CONNECTION_LABELS: Record<ConnectionState, string> = {
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

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

/** What a screen reader is told about a product's stock. */
export interface AnnouncedLevel {
  available: number | null;
  sold_out: boolean;
}

/** The announcement for a change from `from` to `to`, or `null` when there is nothing to say. */
export function stockAnnouncement(name: string, from: AnnouncedLevel, to: AnnouncedLevel): string | null {
  if (to.available === null) return null;
  if (to.sold_out) return from.sold_out ? null : `${name}: sold out`;
  if (from.sold_out) return `${name}: back in stock`;
  if (to.available !== from.available) return `${name}: ${to.available} left`;
  return null;
}

export interface AnnouncerOptions {
  /** At most one announcement per product per this many ms (default 2000). */
  intervalMs?: number;
  /** More products than this due at once are summed up in one sentence (default 3). */
  maxPerAnnouncement?: number;
  now?: () => number;
}

interface AnnouncedProduct {
  name: string;
  /** What was last announced (at first: what the page showed when the catalog was rendered). */
  announced: AnnouncedLevel;
  /** The newest level not announced yet (throttled), if any. */
  pending: AnnouncedLevel | null;
  /** When this product was last announced. */
  at: number;
}

/**
 * The page's one live region for stock changes (`role="status"`, `aria-live="polite"`,
 * visually hidden). The cards themselves have none: 50 cards updating at once on reconnect, or a
 * product selling unit after unit, would flood a screen reader.
 *
 * - Each change is said with the product's name: "Mug: 2 left", "Mug: sold out", "Mug: back in
 *   stock". A re-confirmation (same level, now live) or a change of liveness alone says nothing.
 * - At most one announcement per product per `intervalMs` (2 s); changes in between are
 *   coalesced and the newest wins, worded against what was last said ("sold out", then 3 and 2
 *   within 2 s: "Mug: back in stock"; 2, then 1 and back to 2: nothing more).
 * - Changes due together go out as one update of the region; more than `maxPerAnnouncement`
 *   products at once (e.g. the retained levels at reconnect) become "Stock changed for N products".
 */
export class Announcer {
  private readonly products = new Map<string, AnnouncedProduct>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly intervalMs: number;
  private readonly maxPer: number;
  private readonly now: () => number;

  constructor(
    readonly region: HTMLElement,
    opts: AnnouncerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 2000;
    this.maxPer = Math.max(1, opts.maxPerAnnouncement ?? 3);
    this.now = opts.now ?? (() => Date.now());
  }

  /** Forgets every product and anything pending (a new catalog). */
  reset(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.products.clear();
  }

  /** Records what the page shows for a product without announcing it (the initial render). */
  track(productId: string, name: string, level: AnnouncedLevel): void {
    this.products.set(productId, { name, announced: { ...level }, pending: null, at: -Infinity });
  }

  /** A product's level changed; it is announced at the next `flush()` it is due at. */
  change(productId: string, level: AnnouncedLevel): void {
    const p = this.products.get(productId);
    if (p) p.pending = { ...level };
  }

  /** Writes the announcements that are due; schedules itself for the ones still throttled. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const now = this.now();
    const messages: string[] = [];
    let next = Infinity;
    for (const p of this.products.values()) {
      if (!p.pending) continue;
      const text = stockAnnouncement(p.name, p.announced, p.pending);
      if (text === null) {
        // Back to what was last said (or nothing worth saying): drop it.
        if (p.pending.available !== null) p.announced = p.pending;
        p.pending = null;
        continue;
      }
      const due = p.at + this.intervalMs;
      if (due > now) {
        next = Math.min(next, due);
        continue;
      }
      messages.push(text);
      p.announced = p.pending;
      p.pending = null;
      p.at = now;
    }
    if (messages.length > 0) {
      this.region.textContent =
        messages.length > this.maxPer ? `Stock changed for ${messages.length} products` : messages.join('. ');
    }
    if (next !== Infinity) this.timer = setTimeout(() => this.flush(), Math.max(0, next - now));
  }
}

/** A DOM id built from a product id (which may hold any characters). */
function domId(prefix: string, productId: string): string {
  return `${prefix}-${productId.replace(/[^A-Za-z0-9_-]/g, (c) => `_${c.charCodeAt(0).toString(16)}_`)}`;
}

interface Card {
  product: CatalogProduct;
  root: HTMLElement;
  count: HTMLElement;
  unit: HTMLElement;
  stockLine: HTMLElement;
  freshness: HTMLElement;
  qr: HTMLElement;
  link: HTMLAnchorElement;
  note: HTMLElement;
  buy: HTMLElement;
  /** The "Notify me" form, while sold out (with a checkout API). */
  waitlist: WaitlistForm | null;
  /** "Buy with reserved stock" (the checkout page), when the shop has a checkout API. */
  reserve: HTMLAnchorElement | null;
  reserveHref: string | null;
  qrFor: string | null;
  /** What the card shows now, to touch the DOM only on change. */
  shown: string;
  /** Whether the announcer knows this card's first level yet. */
  tracked: boolean;
}

export interface UiOptions {
  title: string;
  locale?: string | string[];
  qr?: QrRenderer;
  /** Throttling of the stock announcements (tests). */
  announcer?: AnnouncerOptions;
  /**
   * The checkout page's URL for a product (config `checkoutUrl` set), or `null`/absent: then the
   * cards have no "Buy with reserved stock" link.
   */
  checkoutHref?: (productId: string) => string | null;
  /** The checkout API (config `checkoutUrl` set): sold-out cards get a "Notify me" form. */
  waitlist?: WaitlistOptions;
}

export class StorefrontUi {
  private readonly doc: Document;
  private readonly cards = new Map<string, Card>();
  private readonly connection: HTMLElement;
  private readonly connectionLabel: HTMLElement;
  private readonly notice: HTMLElement;
  private readonly main: HTMLElement;
  private readonly qr: QrRenderer;
  private readonly announcer: Announcer;

  constructor(
    root: HTMLElement,
    private readonly opts: UiOptions,
  ) {
    this.doc = root.ownerDocument;
    this.qr = opts.qr ?? svgQr;
    this.doc.title = opts.title;
    root.replaceChildren();

    const header = el(this.doc, 'header', { class: 'site-header' });
    const h1 = el(this.doc, 'h1', { class: 'site-title' }, opts.title);
    this.connection = el(this.doc, 'p', {
      class: 'connection',
      role: 'status',
      'data-testid': 'connection',
      'data-state': 'connecting',
    });
    this.connection.append(el(this.doc, 'span', { class: 'connection-dot', 'aria-hidden': 'true' }));
    this.connectionLabel = el(this.doc, 'span', { class: 'connection-label' }, CONNECTION_LABELS.connecting);
    this.connection.append(this.connectionLabel);
    header.append(h1, this.connection);

    this.notice = el(this.doc, 'p', { class: 'notice', 'data-testid': 'stale-notice' });
    this.notice.hidden = true;

    this.main = el(this.doc, 'main', { id: 'main', class: 'site-main', tabindex: '-1' });
    // The one live region for stock changes; in the page from the start so that screen readers
    // already watch it when the first change is written.
    const region = el(this.doc, 'div', {
      class: 'visually-hidden',
      role: 'status',
      'aria-live': 'polite',
      'aria-atomic': 'true',
      'data-testid': 'announcer',
    });
    this.announcer = new Announcer(region, opts.announcer);
    root.append(header, this.notice, region, this.main);
  }

  /** Shows the connection state; counts not confirmed on this connection are marked "last known". */
  setConnection(state: ConnectionState): void {
    this.connection.dataset.state = state;
    this.connectionLabel.textContent = CONNECTION_LABELS[state];
    if (state === 'reconnecting' || state === 'offline') {
      this.notice.hidden = false;
      this.notice.textContent = 'Stock counts may be out of date until the connection is back.';
    } else {
      this.notice.hidden = true;
      this.notice.textContent = '';
    }
  }

  showError(message: string): void {
    const box = el(this.doc, 'div', { class: 'error', role: 'alert', 'data-testid': 'error' });
    box.append(el(this.doc, 'h2', {}, 'The shop could not be loaded'), el(this.doc, 'p', {}, message));
    this.main.replaceChildren(box);
    this.doc.body.dataset.error = 'true';
  }

  renderCatalog(catalog: Catalog, state: StoreState): void {
    this.cards.clear();
    this.announcer.reset();
    const list = el(this.doc, 'ul', { class: 'products', 'aria-label': 'Products' });
    if (catalog.products.length === 0) {
      this.main.replaceChildren(el(this.doc, 'p', { class: 'empty' }, 'No products yet.'));
    } else {
      for (const p of catalog.products) {
        const card = this.createCard(p);
        this.cards.set(p.product_id, card);
        list.append(card.root);
      }
      this.main.replaceChildren(list);
    }
    this.update(state);
    this.doc.body.dataset.ready = 'true';
  }

  /**
   * Brings the cards up to date (only those whose display changed are touched) and announces the
   * stock changes, throttled (see `Announcer`).
   */
  update(state: StoreState, only?: Iterable<string>): void {
    const ids = only ?? this.cards.keys();
    for (const id of ids) {
      const card = this.cards.get(id);
      if (card) this.updateCard(card, state);
    }
    this.announcer.flush();
  }

  private createCard(p: CatalogProduct): Card {
    const d = this.doc;
    const nameId = domId('name', p.product_id);
    const root = el(d, 'li', { class: 'card', 'data-product-id': p.product_id });
    const article = el(d, 'article', { 'aria-labelledby': nameId });

    const figure = el(d, 'div', { class: 'card-media' });
    if (p.images.length > 0) {
      // Decorative: the product's name is the heading right next to it.
      const img = el(d, 'img', {
        src: p.images[0],
        alt: '',
        width: '400',
        height: '400',
        loading: 'lazy',
        decoding: 'async',
      });
      figure.append(img);
    } else {
      figure.classList.add('card-media-empty');
      figure.setAttribute('aria-hidden', 'true');
    }

    const body = el(d, 'div', { class: 'card-body' });
    const name = el(d, 'h2', { class: 'card-name', id: nameId }, p.name);
    body.append(name);
    if (p.description) body.append(el(d, 'p', { class: 'card-description' }, p.description));
    const price = el(d, 'p', { class: 'card-price' });
    if (p.price) {
      price.append(el(d, 'span', { class: 'visually-hidden' }, 'Price: '));
      price.append(d.createTextNode(formatMoney(p.price.amount, p.price.currency, this.opts.locale)));
    } else {
      price.textContent = 'Price not available';
    }
    price.dataset.testid = 'price';
    body.append(price);

    // Not a live region: changes are announced, with the product's name, by the page's announcer.
    const stockLine = el(d, 'p', { class: 'stock' });
    const count = el(d, 'span', { class: 'stock-count', 'data-testid': 'stock-count' });
    const unit = el(d, 'span', { class: 'stock-unit' });
    stockLine.append(count, unit);
    const freshness = el(d, 'p', { class: 'freshness', 'data-testid': 'stock-freshness' });
    body.append(stockLine, freshness);

    const buy = el(d, 'div', { class: 'buy' });
    const qr = el(d, 'div', {
      class: 'qr',
      role: 'img',
      'data-testid': 'qr',
      'aria-label': `QR code: scan with your phone to buy ${p.name}`,
    });
    // "Buy" on screen; "Buy Mug" for assistive technology, so a list of links tells them apart.
    const link = el(d, 'a', { class: 'buy-link', 'data-testid': 'buy-link' }, 'Buy');
    link.append(el(d, 'span', { class: 'visually-hidden' }, ` ${p.name}`));
    const note = el(d, 'p', { class: 'buy-note' });
    buy.append(qr, link);
    const reserveHref = this.opts.checkoutHref?.(p.product_id) ?? null;
    let reserve: HTMLAnchorElement | null = null;
    if (reserveHref !== null) {
      reserve = el(d, 'a', { class: 'reserve-link', 'data-testid': 'reserve-link', href: reserveHref }, 'Buy with reserved stock');
      reserve.append(el(d, 'span', { class: 'visually-hidden' }, `: ${p.name}`));
      buy.append(reserve);
    }
    buy.append(note);
    body.append(buy);

    article.append(figure, body);
    root.append(article);
    return {
      product: p, root, count, unit, stockLine, freshness, qr, link, note, buy, waitlist: null,
      reserve, reserveHref, qrFor: null, shown: '', tracked: false,
    };
  }

  private updateCard(card: Card, state: StoreState): void {
    const s = productStock(state, card.product.product_id);
    const link = card.product.payment_link;
    // stockbridge switches a product's links off at 0 and back on at restock. A catalog written
    // while the product was sold out says "inactive"; a live restock newer than that snapshot
    // means the link is back on. A catalog without a level (`available` null or missing) is
    // treated the same way: it does not say the product was in stock with its link switched off.
    const snapshotNotInStock = card.product.available === null || card.product.available === 0;
    const restockedSince =
      s.available !== null && s.available > 0 && s.version > (card.product.version ?? -1);
    const linkActive = link !== null && (link.active || (snapshotNotInStock && restockedSince));
    const buyable = linkActive && !s.sold_out;
    const level = { available: s.available, sold_out: s.sold_out };
    if (!card.tracked) {
      card.tracked = true;
      this.announcer.track(card.product.product_id, card.product.name, level);
    }
    const key = JSON.stringify([s.available, s.sold_out, s.live, buyable]);
    if (key === card.shown) return;
    card.shown = key;
    this.announcer.change(card.product.product_id, level);

    const root = card.root;
    root.dataset.live = String(s.live);
    root.dataset.soldOut = String(s.sold_out);
    root.dataset.buyable = String(buyable);
    root.classList.toggle('is-sold-out', s.sold_out);
    root.classList.toggle('is-stale', !s.live);

    // Count and badge, only written when they change.
    const countText = s.available === null ? '' : String(s.available);
    if (card.count.textContent !== countText) card.count.textContent = countText;
    const unitText = s.available === null ? 'Stock not known yet' : ' in stock';
    if (card.unit.textContent !== unitText) card.unit.textContent = unitText;
    const badge = card.stockLine.querySelector<HTMLElement>('.badge-wrap');
    if (s.sold_out && !badge) {
      // The space keeps "5 in stock Sold out" apart for screen readers, inside the wrapper so
      // that removing the badge removes it too.
      const wrap = el(this.doc, 'span', { class: 'badge-wrap' });
      wrap.append(' ', el(this.doc, 'span', { class: 'badge badge-sold-out', 'data-testid': 'sold-out' }, 'Sold out'));
      card.stockLine.append(wrap);
    } else if (!s.sold_out && badge) {
      badge.remove();
    }

    card.freshness.textContent = s.live ? 'Live' : 'Last known';

    // The checkout API holds stock itself: only "sold out" switches this link off.
    if (card.reserve && card.reserveHref !== null) {
      if (s.sold_out) {
        card.reserve.removeAttribute('href');
        card.reserve.setAttribute('aria-disabled', 'true');
        card.reserve.setAttribute('role', 'link');
      } else {
        card.reserve.href = card.reserveHref;
        card.reserve.removeAttribute('aria-disabled');
        card.reserve.removeAttribute('role');
      }
    }
    card.freshness.classList.toggle('is-live', s.live);

    if (buyable && link) {
      card.link.href = link.url;
      card.link.removeAttribute('aria-disabled');
      card.link.removeAttribute('role');
      card.qr.hidden = false;
      card.note.textContent = '';
      card.note.hidden = true;
      if (card.qrFor !== link.url) {
        card.qrFor = link.url;
        const url = link.url;
        this.qr(url).then(
          (svg) => {
            if (card.qrFor !== url) return;
            card.qr.innerHTML = svg;
            const svgEl = card.qr.querySelector('svg');
            svgEl?.setAttribute('aria-hidden', 'true');
            svgEl?.setAttribute('focusable', 'false');
          },
          (e: unknown) => {
            console.warn('[stockbridge] QR code failed', e);
            card.qrFor = null;
          },
        );
      }
    } else {
      card.link.removeAttribute('href');
      card.link.setAttribute('aria-disabled', 'true');
      card.link.setAttribute('role', 'link');
      card.qr.hidden = true;
      // Sold out is said by the badge; otherwise say why there is nothing to buy.
      card.note.textContent = s.sold_out ? '' : 'Not available to buy right now';
      card.note.hidden = s.sold_out;
    }
    this.syncWaitlist(card, s.sold_out);
  }

  /**
   * The "Notify me" form exists exactly while the product is sold out. It is created once and
   * kept until the product is back (never rebuilt by other updates), so typing survives them.
   */
  private syncWaitlist(card: Card, soldOut: boolean): void {
    if (soldOut && !card.waitlist && this.opts.waitlist) {
      card.waitlist = new WaitlistForm(this.doc, card.product, domId('notify', card.product.product_id), this.opts.waitlist);
      card.buy.append(card.waitlist.root);
    } else if (!soldOut && card.waitlist) {
      const hadFocus = card.waitlist.root.contains(this.doc.activeElement);
      card.waitlist.destroy();
      card.waitlist = null;
      // Focus was in the form: move it to what replaces it, not to <body>.
      if (hadFocus) [card.link, card.reserve].find((a) => a?.hasAttribute('href'))?.focus();
    }
  }
}
