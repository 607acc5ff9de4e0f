import { describe, expect, it, vi } from 'vitest';
import { ConfigError, configUrl, fetchJson, parseCatalog, parseConfig } from './config';

const BASE = 'http://127.0.0.1:8080/shop/config.json';

describe('configUrl', () => {
  it('is config.json beside the page, or ?config=', () => {
    expect(configUrl('http://127.0.0.1:8080/shop/')).toBe('http://127.0.0.1:8080/shop/config.json');
    expect(configUrl('http://127.0.0.1:8080/shop/index.html?x=1')).toBe('http://127.0.0.1:8080/shop/config.json');
    expect(configUrl('http://127.0.0.1:8080/shop/?config=/stores/a.json')).toBe('http://127.0.0.1:8080/stores/a.json');
    expect(configUrl('http://127.0.0.1:8080/shop/?config=stores/b.json')).toBe('http://127.0.0.1:8080/shop/stores/b.json');
    expect(configUrl('http://127.0.0.1:8080/shop/?config=')).toBe('http://127.0.0.1:8080/shop/config.json');
  });

  it('accepts an absolute ?config= on the page\'s own origin', () => {
    const warn = vi.fn();
    expect(
      configUrl('https://shop.example/chicago/?config=' + encodeURIComponent('https://shop.example/stores/c.json'), warn),
    ).toBe('https://shop.example/stores/c.json');
    expect(configUrl('http://127.0.0.1:8080/?config=' + encodeURIComponent('http://127.0.0.1:8080/c.json'), warn)).toBe(
      'http://127.0.0.1:8080/c.json',
    );
    expect(warn).not.toHaveBeenCalled();
  });

  it.each([
    ['another host', 'https://evil.example/c.json'],
    ['a protocol-relative URL', '//evil.example/c.json'],
    ['a backslash host', '\\\\evil.example/c.json'],
    ['another scheme on the same host', 'http://shop.example/c.json'],
    ['another port', 'https://shop.example:8443/c.json'],
    ['a subdomain', 'https://cdn.shop.example/c.json'],
    ['a data: URL', 'data:application/json,{}'],
    ['a javascript: URL', 'javascript:alert(1)'],
    ['a blob: URL', 'blob:https://shop.example/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0'],
    ['an unparsable URL', 'https://[nope/c.json'],
  ])('ignores a cross-origin ?config= (%s) with a warning and uses config.json', (_why, override) => {
    const warn = vi.fn();
    expect(configUrl('https://shop.example/chicago/?config=' + encodeURIComponent(override), warn)).toBe(
      'https://shop.example/chicago/config.json',
    );
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(/ignoring \?config=.*using config\.json/);
  });

  it('warns on the console by default', () => {
    const spy = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      expect(configUrl('http://127.0.0.1:8080/shop/?config=' + encodeURIComponent('https://cdn.example/c.json'))).toBe(
        'http://127.0.0.1:8080/shop/config.json',
      );
      expect(spy).toHaveBeenCalledTimes(1);
      expect(String(spy.mock.calls[0][0])).toContain('https://cdn.example/c.json');
    } finally {
      spy.mockRestore();
    }
  });

  it('accepts no ?config= override on a page without an http(s) origin', () => {
    const warn = vi.fn();
    expect(configUrl('file:///tmp/shop/index.html?config=' + encodeURIComponent('file:///tmp/evil.json'), warn)).toBe(
      'file:///tmp/shop/config.json',
    );
    expect(warn).toHaveBeenCalledTimes(1);
  });
});

describe('parseConfig', () => {
  it('reads the local form and resolves URLs against the config file', () => {
    const c = parseConfig(
      {
        store_id: 'store_demo',
        topic_prefix: 'stockbridge',
        catalog_url: 'catalog/store_demo.json',
        mqtt: { auth: 'none', url: 'ws://127.0.0.1:9001' },
      },
      BASE,
    );
    expect(c).toEqual({
      store_id: 'store_demo',
      topic_prefix: 'stockbridge',
      catalog_url: 'http://127.0.0.1:8080/shop/catalog/store_demo.json',
      mqtt: { auth: 'none', url: 'ws://127.0.0.1:9001/' },
      title: null,
      client_id_prefix: 'stockbridge-web-',
    });
  });

  it('turns an http(s) or relative broker URL into ws(s)', () => {
    const mk = (url: string) =>
      parseConfig({ store_id: 's', catalog_url: 'c.json', mqtt: { auth: 'none', url } }, BASE).mqtt;
    expect(mk('/mqtt')).toEqual({ auth: 'none', url: 'ws://127.0.0.1:8080/mqtt' });
    expect(mk('https://broker.example/mqtt')).toEqual({ auth: 'none', url: 'wss://broker.example/mqtt' });
    expect(() => mk('ftp://x')).toThrow(ConfigError);
  });

  it('reads the cognito form', () => {
    const c = parseConfig(
      {
        store_id: 'store_demo',
        catalog_url: 'https://cdn.example/catalog.json',
        mqtt: {
          auth: 'cognito',
          endpoint: 'https://abc123-ats.iot.us-east-1.amazonaws.com/',
          region: 'us-east-1',
          identity_pool_id: 'us-east-1:0000-1111',
        },
      },
      BASE,
    );
    expect(c.topic_prefix).toBeNull();
    expect(c.mqtt).toEqual({
      auth: 'cognito',
      endpoint: 'abc123-ats.iot.us-east-1.amazonaws.com',
      region: 'us-east-1',
      identity_pool_id: 'us-east-1:0000-1111',
    });
  });

  it.each([
    ['not an object', []],
    ['no store_id', { catalog_url: 'c', mqtt: { url: 'ws://x' } }],
    ['a wildcard store id', { store_id: 's/+', catalog_url: 'c', mqtt: { url: 'ws://x' } }],
    ['a wildcard prefix', { store_id: 's', topic_prefix: 'a/#', catalog_url: 'c', mqtt: { url: 'ws://x' } }],
    ['no mqtt', { store_id: 's', catalog_url: 'c' }],
    ['an unknown auth', { store_id: 's', catalog_url: 'c', mqtt: { auth: 'basic', url: 'ws://x' } }],
    ['cognito without pool', { store_id: 's', catalog_url: 'c', mqtt: { auth: 'cognito', endpoint: 'h', region: 'us-east-1' } }],
    ['a bad region', { store_id: 's', catalog_url: 'c', mqtt: { auth: 'cognito', endpoint: 'h', region: 'x', identity_pool_id: 'p' } }],
  ])('rejects %s', (_why, raw) => {
    expect(() => parseConfig(raw, BASE)).toThrow(ConfigError);
  });
});

describe('parseCatalog', () => {
  it('keeps good products, drops unsafe URLs and skips broken entries', () => {
    const c = parseCatalog(
      {
        store_id: 'store_demo',
        generated_at: '2026-11-23T10:00:00.000Z',
        topic_prefix: 'stockbridge',
        products: [
          {
            product_id: 'prod_1',
            name: 'Mug',
            description: 'A mug',
            images: ['img/mug.png', 'javascript:alert(1)'],
            price: { amount: 1200, currency: 'USD' },
            payment_link: { id: 'plink_1', url: 'https://buy.stripe.com/x', active: true },
            available: 5,
            version: 3,
            extra: 'ignored',
          },
          { product_id: 'prod_2', name: 'Pin', payment_link: { url: 'javascript:alert(1)', active: true } },
          { name: 'no id' },
          'junk',
          { product_id: 'prod_1', name: 'duplicate' },
        ],
      },
      'http://127.0.0.1:8080/catalog/store_demo.json',
    );
    expect(c.store_id).toBe('store_demo');
    expect(c.topic_prefix).toBe('stockbridge');
    expect(c.products).toEqual([
      {
        product_id: 'prod_1',
        name: 'Mug',
        description: 'A mug',
        images: ['http://127.0.0.1:8080/catalog/img/mug.png'],
        price: { amount: 1200, currency: 'usd' },
        payment_link: { id: 'plink_1', url: 'https://buy.stripe.com/x', active: true },
        available: 5,
        version: 3,
      },
      {
        product_id: 'prod_2',
        name: 'Pin',
        description: '',
        images: [],
        price: null,
        payment_link: null,
        available: null,
        version: null,
      },
    ]);
    expect(c.skipped).toHaveLength(3);
  });

  it('rejects a document without products', () => {
    expect(() => parseCatalog({}, BASE)).toThrow(ConfigError);
    expect(() => parseCatalog(null, BASE)).toThrow(ConfigError);
  });
});

describe('fetchJson', () => {
  it('asks for a fresh copy and reports HTTP errors', async () => {
    let init: RequestInit | undefined;
    const ok = (async (_u: RequestInfo | URL, i?: RequestInit) => {
      init = i;
      return new Response('{"a":1}', { status: 200 });
    }) as typeof fetch;
    expect(await fetchJson('http://127.0.0.1/c.json', ok)).toEqual({ a: 1 });
    expect(init?.cache).toBe('no-store');
    const missing = (async () => new Response('nope', { status: 404 })) as unknown as typeof fetch;
    await expect(fetchJson('http://127.0.0.1/c.json', missing)).rejects.toThrow(/HTTP 404/);
    const html = (async () => new Response('<html>', { status: 200 })) as unknown as typeof fetch;
    await expect(fetchJson('http://127.0.0.1/c.json', html)).rejects.toThrow(/not JSON/);
  });
});
