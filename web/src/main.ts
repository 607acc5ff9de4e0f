/**
 * Boot: config.json → catalog → cards (body[data-ready=true]) → MQTT subscription.
 * The MQTT client (and, for AWS, the signer) are separate chunks loaded after the cards are up.
 */
import './style.css';
import {
  ConfigError,
  DEFAULT_TOPIC_PREFIX,
  checkoutPageHref,
  configUrl,
  fetchJson,
  parseCatalog,
  parseCheckoutSettings,
  parseConfig,
  type Config,
} from './config';
import {
  applyMessage,
  initialState,
  markNotLive,
  setConnection,
  stockSubscriptions,
  type StockSubscriptions,
  type StoreState,
} from './stock';
import { StorefrontUi } from './ui';

async function urlProvider(
  config: Config,
): Promise<{ url: () => Promise<string | { url: string; clientIdPrefix?: string }>; invalidate?: () => void }> {
  const m = config.mqtt;
  if (m.auth === 'none') return { url: async () => m.url };
  const { cognitoUrlProvider } = await import('./aws');
  let store: Storage | null = null;
  try {
    store = window.localStorage;
  } catch {
    store = null;
  }
  return cognitoUrlProvider(m, { store });
}

async function boot(): Promise<void> {
  const root = document.getElementById('app');
  if (!root) return;
  let ui = new StorefrontUi(root, { title: 'Shop' });
  let config: Config;
  let state: StoreState;
  let subscriptions: StockSubscriptions;
  try {
    const cfgUrl = configUrl(window.location.href);
    const rawConfig = await fetchJson(cfgUrl);
    config = parseConfig(rawConfig, cfgUrl);
    const checkout = parseCheckoutSettings(rawConfig, cfgUrl);
    for (const p of checkout.problems) console.warn(`[stockbridge] config: ${p}`);
    const storeId = config.store_id;
    ui = new StorefrontUi(root, {
      title: config.title ?? 'Shop',
      checkoutHref: checkout.checkoutUrl
        ? (productId) => checkoutPageHref(window.location.href, storeId, productId)
        : undefined,
      waitlist: checkout.checkoutUrl ? { checkoutUrl: checkout.checkoutUrl, storeId } : undefined,
    });
    const catalog = parseCatalog(await fetchJson(config.catalog_url), config.catalog_url);
    for (const why of catalog.skipped) console.warn(`[stockbridge] catalog: ${why}`);
    if (catalog.store_id && catalog.store_id !== config.store_id) {
      console.warn(`[stockbridge] the catalog is for ${catalog.store_id}, the config for ${config.store_id}`);
    }
    state = initialState(config.store_id, catalog.products);
    ui.renderCatalog(catalog, state);
    config.topic_prefix ??= catalog.topic_prefix ?? DEFAULT_TOPIC_PREFIX;
    subscriptions = stockSubscriptions(
      config.topic_prefix,
      config.store_id,
      catalog.products.map((p) => p.product_id),
    );
    for (const id of subscriptions.skipped) {
      console.warn(`[stockbridge] catalog: product id ${JSON.stringify(id)} cannot be part of a topic; no live stock for it`);
    }
  } catch (e) {
    console.error('[stockbridge]', e);
    ui.showError(
      e instanceof ConfigError
        ? `The shop's configuration or catalog could not be read (${e.message}).`
        : 'The shop could not be reached. Check your connection and reload the page.',
    );
    return;
  }

  try {
    const [{ default: mqtt }, { StockConnection }, provider] = await Promise.all([
      import('mqtt'),
      import('./connection'),
      urlProvider(config),
    ]);
    const pending = new Set<string>();
    let frame = 0;
    const flush = () => {
      frame = 0;
      ui.update(state, pending);
      pending.clear();
    };
    const conn = new StockConnection({
      connect: (url, opts) => mqtt.connect(url, opts),
      url: provider.url,
      onRefused: provider.invalidate,
      topicFilters: subscriptions.filters,
      // auth "none" only: in cognito mode the provider sets `<identity id>-` (the IoT policy's rule).
      clientIdPrefix: config.client_id_prefix,
      onFiltersRefused: (filters) => {
        const ids = filters.flatMap((f) => subscriptions.productsByFilter.get(f) ?? []);
        const next = markNotLive(state, ids);
        if (next === state) return;
        state = next;
        ui.update(state, ids);
      },
      onState: (s) => {
        state = setConnection(state, s);
        ui.setConnection(s);
        ui.update(state);
      },
      onMessage: (topic, payload) => {
        const r = applyMessage(state, payload, topic);
        if (r.outcome === 'malformed' || r.outcome === 'foreign') {
          console.warn(`[stockbridge] ignored a ${r.outcome} message on ${topic}`);
        }
        if (r.state === state || r.product_id === null) return;
        state = r.state;
        // Retained messages arrive in a burst at connect: paint once per frame.
        pending.add(r.product_id);
        if (!frame) frame = requestAnimationFrame(flush);
      },
    });
    conn.start();
    (window as unknown as { stockbridge?: unknown }).stockbridge = { connection: conn, state: () => state };
  } catch (e) {
    console.error('[stockbridge]', e);
    state = setConnection(state, 'offline');
    ui.setConnection('offline');
    ui.update(state);
  }
}

void boot();
