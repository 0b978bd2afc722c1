import type { Families } from './types.js';

const INTEGER = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const DECIMAL = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
/** Most rows a table shows (labels are bounded, but a page should stay readable). */
export const MAX_ROWS = 200;

export const count = (n: number): string => INTEGER.format(n);

export function duration(seconds: number | undefined): string {
  if (seconds === undefined) return '—';
  const ms = seconds * 1000;
  if (ms >= 1000) return `${DECIMAL.format(seconds)} s`;
  return `${ms < 10 ? DECIMAL.format(ms) : INTEGER.format(ms)} ms`;
}

export function percent(ratio: number | undefined): string {
  if (ratio === undefined) return '—';
  return `${ratio === 0 ? '0' : DECIMAL.format(ratio * 100)} %`;
}

export function perSecond(rate: number | undefined): string {
  return rate === undefined ? '—' : `${DECIMAL.format(rate)}/s`;
}

export const label = (labels: Record<string, string | number>, name: string): string =>
  String(labels[name] ?? '');

/** Samples of a family (of one sample name for histograms), grouped by `key` and summed. */
export function sum(
  families: Families,
  name: string,
  key: (l: Record<string, string | number>) => string,
  sample = name,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const v of families.get(name)?.values ?? []) {
    if ((v.metricName ?? name) !== sample) continue;
    const k = key(v.labels);
    out.set(k, (out.get(k) ?? 0) + v.value);
  }
  return out;
}
