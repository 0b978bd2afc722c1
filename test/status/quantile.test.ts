/**
 * The status page's arithmetic: quantiles from cumulative buckets as Prometheus'
 * histogram_quantile() estimates them, and rates over a window of readings.
 */
import { addBucket, quantile, toBuckets } from '../../lib/status/quantile';
import { RateWindow } from '../../lib/status/rates';

function buckets(pairs: [string, number][]): ReturnType<typeof toBuckets> {
  const collected = new Map<number, number>();
  for (const [le, value] of pairs) addBucket(collected, le, value);
  return toBuckets(collected);
}

describe('quantile', () => {
  it('interpolates linearly inside the bucket holding the rank', () => {
    // 10 observations: 4 ≤ 0.1, 8 ≤ 0.2, 10 ≤ 0.4.
    const h = buckets([
      ['0.4', 10],
      ['+Inf', 10],
      ['0.1', 4],
      ['0.2', 8],
    ]);
    expect(quantile(0.2, h)).toBeCloseTo(0.05); // rank 2 of 4 in [0, 0.1]
    expect(quantile(0.5, h)).toBeCloseTo(0.125); // rank 5: 1 of 4 into (0.1, 0.2]
    expect(quantile(0.99, h)).toBeCloseTo(0.39); // rank 9.9: 1.9 of 2 into (0.2, 0.4]
  });

  it('answers the highest finite bound for a rank in +Inf, undefined without observations', () => {
    expect(
      quantile(
        0.99,
        buckets([
          ['0.1', 1],
          ['+Inf', 10],
        ]),
      ),
    ).toBe(0.1);
    expect(
      quantile(
        0.5,
        buckets([
          ['0.1', 0],
          ['+Inf', 0],
        ]),
      ),
    ).toBeUndefined();
    expect(quantile(0.5, buckets([]))).toBeUndefined();
  });

  it('sums buckets of the same bound (several status codes of one route) and ignores bad bounds', () => {
    const h = buckets([
      ['0.1', 1],
      ['0.1', 2],
      ['+Inf', 1],
      ['+Inf', 2],
      ['x', 5],
    ]);
    expect(h).toEqual({ bounds: [0.1, Infinity], cumulative: [3, 3] });
  });
});

describe('RateWindow', () => {
  it('has no rate until a reading a second old exists, then rates over the window', () => {
    const rates = new RateWindow(60_000);
    expect(rates.observe(0, new Map([['a', 10]])).get('a')).toBeUndefined();
    expect(rates.observe(500, new Map([['a', 20]])).get('a')).toBeUndefined();
    expect(rates.observe(2_000, new Map([['a', 30]])).get('a')).toBe(10);
    // A series that appeared since the oldest reading counts from zero.
    expect(rates.observe(4_000, new Map([['b', 8]])).get('b')).toBe(2);
  });

  it('forgets readings older than the window and gives no rate for a counter that went down', () => {
    const rates = new RateWindow(10_000);
    rates.observe(0, new Map([['a', 0]]));
    rates.observe(5_000, new Map([['a', 50]]));
    expect(rates.observe(12_000, new Map([['a', 120]])).get('a')).toBe(10); // since 5 s: 70 / 7
    expect(rates.observe(13_000, new Map([['a', 1]])).get('a')).toBeUndefined();
  });
});
