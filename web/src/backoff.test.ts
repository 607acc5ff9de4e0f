import { describe, expect, it } from 'vitest';

import { backoffDelay } from './connection';

describe('backoffDelay', () => {
  it('doubles from the base up to the cap, with jitter between half and all of it', () => {
    const lo = () => 0;
    const hi = () => 1;
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, hi))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
    expect([1, 2, 3, 6, 50].map((n) => backoffDelay(n, lo))).toEqual([500, 1000, 2000, 15000, 15000]);
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3);
      expect(d).toBeGreaterThanOrEqual(2000);
      expect(d).toBeLessThanOrEqual(4000);
    }
    expect(backoffDelay(0, hi)).toBe(1000);
    expect(backoffDelay(1, hi, 200, 1000)).toBe(200);
  });
});
