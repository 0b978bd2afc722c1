/** One histogram: cumulative bucket counts by upper bound (`Infinity` for `+Inf`). */
export interface Buckets {
  readonly bounds: number[];
  readonly cumulative: number[];
}

/**
 * The `q` quantile of a histogram, estimated as Prometheus' `histogram_quantile()` does: find the
 * bucket holding rank `q × count` and interpolate linearly inside it (from 0 for the first). A rank
 * in the `+Inf` bucket answers the highest finite bound; no observations answer `undefined`.
 */
export function quantile(q: number, buckets: Buckets): number | undefined {
  const { bounds, cumulative } = buckets;
  const count = cumulative[cumulative.length - 1] ?? 0;
  if (count <= 0) return undefined;
  const rank = q * count;
  let i = 0;
  while (i < cumulative.length - 1 && (cumulative[i] ?? 0) < rank) i++;
  const upper = bounds[i] ?? Infinity;
  const lowerBound = i === 0 ? 0 : (bounds[i - 1] ?? 0);
  if (upper === Infinity) return lowerBound;
  const below = i === 0 ? 0 : (cumulative[i - 1] ?? 0);
  const inBucket = (cumulative[i] ?? 0) - below;
  if (inBucket <= 0) return upper;
  return lowerBound + (upper - lowerBound) * ((rank - below) / inBucket);
}

/** Adds one cumulative bucket sample (`le` label and value) to `target`, kept in bound order. */
export function addBucket(target: Map<number, number>, le: string | number | undefined, value: number): void {
  const bound = le === '+Inf' ? Infinity : Number(le);
  if (Number.isNaN(bound)) return;
  target.set(bound, (target.get(bound) ?? 0) + value);
}

/** The buckets collected by {@link addBucket}, sorted by bound. */
export function toBuckets(collected: Map<number, number>): Buckets {
  const bounds = [...collected.keys()].sort((a, b) => a - b);
  return { bounds, cumulative: bounds.map((b) => collected.get(b) ?? 0) };
}
