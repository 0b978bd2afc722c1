/**
 * Reading a caduceus `Metrics` registry in tests: the samples of one family, through prom-client's
 * JSON view (the same data both exposition formats are rendered from).
 */
import * as core from '../../lib/index';

export interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** A registry of its own for one test: no Node process metrics, `app="test"`. */
export function testMetrics(): core.Metrics {
  return core.createMetrics({ app: 'test', nodeMetrics: false });
}

/** Every sample of `family` (none when the family is not registered). */
export async function samples(metrics: core.Metrics, family: string): Promise<Sample[]> {
  const all = await metrics.registry.getMetricsAsJSON();
  const found = all.find((m) => m.name === family);
  return (found?.values ?? []) as Sample[];
}

/** The value of the sample of `family` whose labels include `labels` (summed when several match). */
export async function valueOf(
  metrics: core.Metrics,
  family: string,
  labels: Record<string, string | number> = {},
  metricName?: string,
): Promise<number | undefined> {
  const matching = (await samples(metrics, family)).filter(
    (s) =>
      (metricName === undefined || s.metricName === metricName) &&
      Object.entries(labels).every(([k, v]) => String(s.labels[k]) === String(v)),
  );
  return matching.length === 0 ? undefined : matching.reduce((sum, s) => sum + s.value, 0);
}
