import { describe, expect, it } from 'vitest';
import {
  applyMessage,
  formatMoney,
  initialState,
  isTopicLevel,
  markNotLive,
  minorUnitDigits,
  parseStockMessage,
  productIdFromTopic,
  productStock,
  productTopic,
  setConnection,
  stockSubscriptions,
  storeTopicFilter,
  type StoreState,
} from './stock';

const STORE = 'store_demo';
const topic = (id: string) => `stockbridge/${STORE}/products/${id}/stock`;

function msg(over: Partial<Record<string, unknown>> = {}): string {
  const available = (over.available as number | undefined) ?? 5;
  return JSON.stringify({
    product_id: 'prod_1',
    store_id: STORE,
    available,
    sold_out: available === 0,
    version: 1,
    updated_at: '2026-11-23T10:15:02.123Z',
    ...over,
  });
}

function connected(): StoreState {
  return setConnection(initialState(STORE, [{ product_id: 'prod_1', available: 5, version: 3 }]), 'connected');
}

describe('parseStockMessage', () => {
  it('reads the documented payload (string or bytes)', () => {
    const text = msg({ available: 3, version: 12 });
    const expected = {
      product_id: 'prod_1',
      store_id: STORE,
      available: 3,
      sold_out: false,
      version: 12,
      updated_at: '2026-11-23T10:15:02.123Z',
    };
    expect(parseStockMessage(text)).toEqual(expected);
    expect(parseStockMessage(new TextEncoder().encode(text))).toEqual(expected);
  });

  it.each([
    ['not JSON', '{"product_id":'],
    ['empty', ''],
    ['null', 'null'],
    ['an array', '[1,2]'],
    ['a number', '42'],
    ['no product_id', msg({ product_id: undefined })],
    ['empty product_id', msg({ product_id: '' })],
    ['no store_id', msg({ store_id: undefined })],
    ['available as string', msg({ available: '3' })],
    ['negative available', msg({ available: -1 })],
    ['fractional available', msg({ available: 1.5 })],
    ['no version', msg({ version: undefined })],
    ['version as string', msg({ version: '7' })],
    ['version beyond 2^53', '{"product_id":"prod_1","store_id":"store_demo","available":1,"sold_out":false,"version":9007199254740993}'],
    ['sold_out missing', msg({ sold_out: undefined })],
    ['sold_out as string', msg({ sold_out: 'false' })],
    ['updated_at as number', msg({ updated_at: 5 })],
  ])('rejects %s', (_why, payload) => {
    expect(parseStockMessage(payload)).toBeNull();
  });

  it('rejects invalid UTF-8 bytes and odd payload types without throwing', () => {
    expect(parseStockMessage(new Uint8Array([0xff, 0xfe, 0x7b]))).toBeNull();
    expect(parseStockMessage(undefined)).toBeNull();
    expect(parseStockMessage(12)).toBeNull();
  });

  it('treats available 0 as sold out even if the flag disagrees', () => {
    expect(parseStockMessage(msg({ available: 0, sold_out: false }))?.sold_out).toBe(true);
  });
});

describe('topics', () => {
  it('builds the store filter and reads product ids', () => {
    expect(storeTopicFilter('stockbridge', STORE)).toBe('stockbridge/store_demo/products/+/stock');
    expect(productIdFromTopic(topic('prod_9'))).toBe('prod_9');
    expect(productIdFromTopic('a/b/c/products/prod_9/stock')).toBe('prod_9');
    expect(productIdFromTopic('stockbridge/store_demo/other')).toBeNull();
    expect(productTopic('stockbridge', STORE, 'prod_9')).toBe(topic('prod_9'));
    expect(productIdFromTopic(productTopic('a/b', STORE, 'prod_9'))).toBe('prod_9');
    expect(['prod_1', 'a-b_c.d'].map(isTopicLevel)).toEqual([true, true]);
    expect(['', 'a/b', 'a+', '#', 'a\u0000'].map(isTopicLevel)).toEqual([false, false, false, false, false]);
  });
});

describe('stockSubscriptions', () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => `prod_${i + 1}`);

  it('3 products: exactly their 3 stock topics, no wildcard', () => {
    const s = stockSubscriptions('stockbridge', STORE, ['prod_1', 'prod_2', 'prod_3']);
    expect(s.filters).toEqual([topic('prod_1'), topic('prod_2'), topic('prod_3')]);
    expect(s.wildcard).toBeNull();
    expect(s.productsByFilter.get(topic('prod_2'))).toEqual(['prod_2']);
    expect(s.skipped).toEqual([]);
  });

  it('up to 49 products: all exact; 50 or more: the first 49 and the store wildcard (50 in all)', () => {
    expect(stockSubscriptions('stockbridge', STORE, ids(49)).filters).toEqual(ids(49).map(topic));
    for (const n of [50, 60, 500]) {
      const s = stockSubscriptions('stockbridge', STORE, ids(n));
      expect(s.filters).toHaveLength(50);
      expect(s.filters).toEqual([...ids(49).map(topic), storeTopicFilter('stockbridge', STORE)]);
      expect(s.wildcard).toBe('stockbridge/store_demo/products/+/stock');
      // The products whose changes only the wildcard brings (they stay "last known" until then).
      expect(s.productsByFilter.get(s.wildcard!)).toEqual(ids(n).slice(49));
    }
  });

  it('honours another subscription quota, skips ids that cannot be a topic level, and dedupes', () => {
    const s = stockSubscriptions('p', 's', ['a', 'b/c', 'a', 'x+', 'b', 'c', ''], 3);
    expect(s.filters).toEqual(['p/s/products/a/stock', 'p/s/products/b/stock', 'p/s/products/+/stock']);
    expect(s.productsByFilter.get('p/s/products/+/stock')).toEqual(['c']);
    expect(s.skipped).toEqual(['b/c', 'x+', '']);
  });

  it('an empty catalog gets the store wildcard alone', () => {
    const s = stockSubscriptions('stockbridge', STORE, []);
    expect(s.filters).toEqual(['stockbridge/store_demo/products/+/stock']);
    expect(s.productsByFilter.get(s.wildcard!)).toEqual([]);
  });
});

describe('initialState', () => {
  it('shows catalog levels as last known, never live', () => {
    const s = initialState(STORE, [
      { product_id: 'a', available: 5, version: 3 },
      { product_id: 'b', available: 0, version: 9 },
      { product_id: 'c', available: null, version: null },
    ]);
    expect(s.connection).toBe('connecting');
    expect(productStock(s, 'a')).toMatchObject({ available: 5, version: 3, sold_out: false, live: false });
    expect(productStock(s, 'b')).toMatchObject({ available: 0, sold_out: true, live: false });
    expect(productStock(s, 'c')).toMatchObject({ available: null, version: -1, live: false });
    expect(productStock(s, 'unknown')).toMatchObject({ available: null, version: -1, live: false });
  });
});

describe('version ordering', () => {
  it('applies a newer version and marks it live', () => {
    const r = applyMessage(connected(), msg({ available: 4, version: 4 }), topic('prod_1'));
    expect(r.outcome).toBe('applied');
    expect(r.product_id).toBe('prod_1');
    expect(productStock(r.state, 'prod_1')).toMatchObject({ available: 4, version: 4, sold_out: false, live: true });
  });

  it('drops an older version', () => {
    const s = applyMessage(connected(), msg({ available: 2, version: 10 })).state;
    const r = applyMessage(s, msg({ available: 7, version: 9 }));
    expect(r.outcome).toBe('stale');
    expect(r.state).toBe(s);
    expect(productStock(r.state, 'prod_1')).toMatchObject({ available: 2, version: 10 });
  });

  it('drops an equal version (a duplicate delivery)', () => {
    const s = applyMessage(connected(), msg({ available: 2, version: 10 })).state;
    const dup = applyMessage(s, msg({ available: 2, version: 10 }));
    expect(dup.outcome).toBe('stale');
    expect(dup.state).toBe(s);
    const other = applyMessage(s, msg({ available: 9, version: 10 }));
    expect(other.outcome).toBe('conflict');
    expect(productStock(other.state, 'prod_1').available).toBe(2);
  });

  it('drops versions older than the catalog snapshot', () => {
    const r = applyMessage(connected(), msg({ available: 50, version: 2 }));
    expect(r.outcome).toBe('stale');
    expect(productStock(r.state, 'prod_1')).toMatchObject({ available: 5, version: 3, live: false });
  });

  it('ends at the newest level whatever the arrival order', () => {
    let s = connected();
    for (const v of [7, 5, 9, 4, 8, 9, 6]) s = applyMessage(s, msg({ available: 100 - v, version: v })).state;
    expect(productStock(s, 'prod_1')).toMatchObject({ available: 91, version: 9, live: true });
  });

  it('learns products the catalog did not list', () => {
    const r = applyMessage(connected(), msg({ product_id: 'prod_new', available: 1, version: 1 }), topic('prod_new'));
    expect(r.outcome).toBe('applied');
    expect(productStock(r.state, 'prod_new')).toMatchObject({ available: 1, live: true });
  });
});

describe('sold out and restock', () => {
  it('goes sold out at 0 and back at restock', () => {
    let s = connected();
    s = applyMessage(s, msg({ available: 1, version: 4 })).state;
    expect(productStock(s, 'prod_1').sold_out).toBe(false);
    s = applyMessage(s, msg({ available: 0, sold_out: true, version: 5 })).state;
    expect(productStock(s, 'prod_1')).toMatchObject({ available: 0, sold_out: true, live: true });
    // A late, older "1 left" must not bring it back.
    s = applyMessage(s, msg({ available: 1, version: 4 })).state;
    expect(productStock(s, 'prod_1').sold_out).toBe(true);
    s = applyMessage(s, msg({ available: 20, sold_out: false, version: 6 })).state;
    expect(productStock(s, 'prod_1')).toMatchObject({ available: 20, sold_out: false, version: 6 });
  });
});

describe('ignored messages', () => {
  it('ignores another store', () => {
    const s = connected();
    const r = applyMessage(s, msg({ store_id: 'store_other', version: 99, available: 0 }));
    expect(r.outcome).toBe('foreign');
    expect(r.state).toBe(s);
  });

  it('ignores a payload whose product is not the topic’s', () => {
    const s = connected();
    const r = applyMessage(s, msg({ product_id: 'prod_1', version: 99 }), topic('prod_2'));
    expect(r.outcome).toBe('foreign');
    expect(r.state).toBe(s);
  });

  it('ignores malformed JSON and never throws', () => {
    const s = connected();
    for (const bad of ['{', 'nope', '{"product_id":"prod_1"}', new Uint8Array([0xc3, 0x28]), null, {}, []]) {
      const r = applyMessage(s, bad, topic('prod_1'));
      expect(r.outcome).toBe('malformed');
      expect(r.state).toBe(s);
    }
  });
});

describe('connection state and liveness', () => {
  it('markNotLive turns only the given products to "last known"', () => {
    let s = setConnection(
      initialState(STORE, [
        { product_id: 'prod_1', available: 5, version: 3 },
        { product_id: 'prod_2', available: 8, version: 1 },
      ]),
      'connected',
    );
    s = applyMessage(s, msg({ product_id: 'prod_1', available: 5, version: 3 }), topic('prod_1')).state;
    s = applyMessage(s, msg({ product_id: 'prod_2', available: 8, version: 1 }), topic('prod_2')).state;
    const after = markNotLive(s, ['prod_2', 'prod_unknown']);
    expect(productStock(after, 'prod_1').live).toBe(true);
    expect(productStock(after, 'prod_2')).toMatchObject({ available: 8, version: 1, live: false });
    expect(productStock(s, 'prod_2').live).toBe(true); // not mutated
    expect(markNotLive(after, ['prod_2', 'prod_unknown'])).toBe(after);
  });

  it('marks every count not live while disconnected, until re-confirmed on the new connection', () => {
    let s = initialState(STORE, [
      { product_id: 'prod_1', available: 5, version: 3 },
      { product_id: 'prod_2', available: 8, version: 1 },
    ]);
    s = setConnection(s, 'connected');
    s = applyMessage(s, msg({ product_id: 'prod_1', available: 5, version: 3 }), topic('prod_1')).state;
    s = applyMessage(s, msg({ product_id: 'prod_2', available: 7, version: 2 }), topic('prod_2')).state;
    expect(productStock(s, 'prod_1').live).toBe(true);
    expect(productStock(s, 'prod_2').live).toBe(true);

    s = setConnection(s, 'reconnecting');
    expect(s.connection).toBe('reconnecting');
    expect(productStock(s, 'prod_1')).toMatchObject({ available: 5, live: false });
    expect(productStock(s, 'prod_2')).toMatchObject({ available: 7, live: false });

    s = setConnection(s, 'offline');
    expect(productStock(s, 'prod_1').live).toBe(false);

    // Back: nothing is live until the retained messages arrive.
    s = setConnection(s, 'connected');
    expect(productStock(s, 'prod_1').live).toBe(false);
    const confirm = applyMessage(s, msg({ product_id: 'prod_1', available: 5, version: 3 }), topic('prod_1'));
    expect(confirm.outcome).toBe('confirmed');
    s = confirm.state;
    expect(productStock(s, 'prod_1')).toMatchObject({ available: 5, live: true });
    expect(productStock(s, 'prod_2').live).toBe(false);
    // A second copy is a duplicate.
    expect(applyMessage(s, msg({ product_id: 'prod_1', available: 5, version: 3 })).outcome).toBe('stale');
  });

  it('the catalog snapshot is confirmed by a retained message of the same version', () => {
    const r = applyMessage(connected(), msg({ available: 5, version: 3 }), topic('prod_1'));
    expect(r.outcome).toBe('confirmed');
    expect(productStock(r.state, 'prod_1')).toMatchObject({ available: 5, live: true });
  });

  it('an older retained message does not confirm a newer count', () => {
    let s = applyMessage(connected(), msg({ available: 2, version: 10 })).state;
    s = setConnection(setConnection(s, 'reconnecting'), 'connected');
    const r = applyMessage(s, msg({ available: 3, version: 9 }));
    expect(r.outcome).toBe('stale');
    expect(productStock(r.state, 'prod_1')).toMatchObject({ available: 2, live: false });
  });

  it('a new CONNACK while already connected also needs re-confirmation', () => {
    let s = applyMessage(connected(), msg({ available: 2, version: 10 })).state;
    expect(productStock(s, 'prod_1').live).toBe(true);
    s = setConnection(s, 'connected');
    expect(productStock(s, 'prod_1').live).toBe(false);
  });

  it('a message applied while not connected is not live', () => {
    const s = initialState(STORE, [{ product_id: 'prod_1', available: 5, version: 3 }]);
    const r = applyMessage(s, msg({ available: 4, version: 4 }));
    expect(productStock(r.state, 'prod_1')).toMatchObject({ available: 4, live: false });
  });

  it('setting the same disconnected state is a no-op', () => {
    const s = setConnection(initialState(STORE), 'offline');
    expect(setConnection(s, 'offline')).toBe(s);
  });
});

describe('formatMoney', () => {
  it('formats minor units per currency', () => {
    expect(formatMoney(1200, 'usd', 'en-US')).toBe('$12.00');
    expect(formatMoney(1999, 'USD', 'en-US')).toBe('$19.99');
    expect(formatMoney(0, 'usd', 'en-US')).toBe('$0.00');
    expect(formatMoney(1250, 'eur', 'de-DE')).toBe('12,50\u00a0€');
    expect(formatMoney(1250, 'eur', 'en-IE')).toBe('€12.50');
  });

  it('treats JPY (and Stripe’s other zero-decimal currencies) as whole units', () => {
    expect(formatMoney(1200, 'jpy', 'en-US')).toBe('¥1,200');
    expect(formatMoney(1200, 'jpy', 'ja-JP')).toBe('￥1,200');
    expect(formatMoney(5000, 'krw', 'en-US')).toBe('₩5,000');
    expect(minorUnitDigits('JPY')).toBe(0);
  });

  it('handles three-decimal currencies and Stripe’s ISK', () => {
    expect(minorUnitDigits('kwd')).toBe(3);
    expect(formatMoney(1500, 'kwd', 'en-US')).toBe('KWD\u00a01.500');
    expect(formatMoney(50000, 'isk', 'en-US')).toBe('ISK\u00a0500');
  });

  it('never throws on an unknown currency', () => {
    expect(formatMoney(1200, 'zz1', 'en-US')).toMatch(/12\.00 ZZ1/);
  });
});
