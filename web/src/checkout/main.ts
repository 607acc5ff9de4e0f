/**
 * The checkout page (`checkout.html?store=<store>&product=<product>`): config.json → catalog →
 * the form for that product (see `./page`). Never loads the MQTT client; Stripe.js only in the
 * Stripe mode and only after a hold.
 */
import '../style.css';
import './checkout.css';
import { ConfigError, configUrl, fetchJson, parseCatalog, parseCheckoutSettings, type CheckoutSettings } from '../config';
import { CheckoutPage } from './page';

export interface PageParams {
  storeId: string;
  productId: string;
  catalogUrl: string;
  settings: CheckoutSettings;
  title: string | null;
}

/**
 * What the page needs from its URL and the config (`base`: the config's URL). Throws a
 * `ConfigError` with the message to show.
 */
export function pageParams(pageUrl: string, rawConfig: unknown, base: string): PageParams {
  const page = new URL(pageUrl);
  const productId = page.searchParams.get('product')?.trim() ?? '';
  if (productId === '') throw new ConfigError('no product was chosen (?product=…)');
  if (typeof rawConfig !== 'object' || rawConfig === null || Array.isArray(rawConfig)) {
    throw new ConfigError('config: a JSON object is required');
  }
  const c = rawConfig as Record<string, unknown>;
  if (typeof c.store_id !== 'string' || c.store_id.trim() === '') throw new ConfigError('config: store_id is required');
  if (typeof c.catalog_url !== 'string' || c.catalog_url.trim() === '') throw new ConfigError('config: catalog_url is required');
  const storeId = c.store_id.trim();
  const asked = page.searchParams.get('store')?.trim();
  if (asked && asked !== storeId) throw new ConfigError(`this shop sells for store ${storeId}, not ${asked}`);
  const settings = parseCheckoutSettings(rawConfig, base);
  return {
    storeId,
    productId,
    catalogUrl: new URL(c.catalog_url.trim(), base).href,
    settings,
    title: typeof c.title === 'string' && c.title.trim() !== '' ? c.title.trim() : null,
  };
}

/** The storefront's URL, keeping a `?config=` override. */
export function shopHref(pageUrl: string): string {
  const page = new URL(pageUrl);
  const cfg = page.searchParams.get('config');
  return cfg ? `./?${new URLSearchParams({ config: cfg }).toString()}` : './';
}

function message(root: HTMLElement, title: string, text: string, testid: string, href: string, alert = true): void {
  const d = root.ownerDocument;
  const main = d.createElement('main');
  main.id = 'main';
  main.className = 'site-main checkout';
  const box = d.createElement('div');
  box.className = 'error';
  if (alert) box.setAttribute('role', 'alert');
  box.dataset.testid = testid;
  const h = d.createElement('h1');
  h.textContent = title;
  const p = d.createElement('p');
  p.textContent = text;
  const a = d.createElement('a');
  a.href = href;
  a.textContent = 'Back to the shop';
  box.append(h, p, a);
  main.append(box);
  root.replaceChildren(main);
}

async function boot(): Promise<void> {
  const root = document.getElementById('app');
  if (!root) return;
  const back = shopHref(location.href);
  let params: PageParams;
  try {
    const cfgUrl = configUrl(location.href);
    params = pageParams(location.href, await fetchJson(cfgUrl), cfgUrl);
    for (const p of params.settings.problems) console.warn(`[stockbridge] config: ${p}`);
    if (!params.settings.checkoutUrl) {
      message(root, 'Checkout is not configured', 'This shop has no checkout service configured (checkoutUrl). Use the Buy link on the product instead.', 'not-configured', back, false);
      document.body.dataset.ready = 'true';
      document.body.dataset.step = 'not-configured';
      return;
    }
    const catalog = parseCatalog(await fetchJson(params.catalogUrl), params.catalogUrl);
    const product = catalog.products.find((p) => p.product_id === params.productId);
    if (!product) throw new ConfigError(`product ${params.productId} is not in the catalog`);
    const page = new CheckoutPage(root, { storeId: params.storeId, product, settings: params.settings, shopHref: back });
    (window as unknown as { stockbridge?: unknown }).stockbridge = { checkout: page };
    // Back from a redirect-based payment method (Stripe.js mode): show how it ended.
    const u = new URL(location.href);
    const secret = u.searchParams.get('payment_intent_client_secret');
    if (secret && params.settings.stripePublishableKey && !params.settings.stripeApiBase) {
      const { retrieverFor } = await import('./stripe-element');
      await page.resume(await retrieverFor(params.settings.stripePublishableKey, secret));
    }
  } catch (e) {
    console.error('[stockbridge]', e);
    message(
      root,
      'The checkout could not be loaded',
      e instanceof ConfigError ? `The shop's configuration or catalog could not be used (${e.message}).` : 'The shop could not be reached. Check your connection and reload the page.',
      'error',
      back,
    );
    document.body.dataset.error = 'true';
  }
}

if (typeof document !== 'undefined' && document.getElementById('app')) void boot();
