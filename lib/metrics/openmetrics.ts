/**
 * OpenMetrics 1.0 text from prom-client's JSON view of a registry.
 *
 * prom-client renders OpenMetrics only from a registry whose content type is OpenMetrics, and it
 * renames counters in place when it does (`http_requests_total` becomes `http_requests` for good),
 * so one registry cannot answer both formats by `Accept`. The JSON view is format-neutral: the
 * registry stays in Prometheus text mode and this renders the other format, with exemplars.
 */

interface Exemplar {
  labelSet?: Partial<Record<string, string | number>>;
  value?: number;
  timestamp?: number;
}

interface Sample {
  labels?: Partial<Record<string, string | number>>;
  value: number;
  metricName?: string;
  exemplar?: Exemplar | null;
}

interface Family {
  name: string;
  help: string;
  /** prom-client's `MetricType` (a string enum). */
  type: unknown;
  values?: readonly Sample[];
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function number(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function labelText(labels: Partial<Record<string, string | number>> | undefined): string {
  if (labels === undefined) return '';
  let out = '';
  for (const name in labels) {
    const value = labels[name];
    if (value === undefined) continue;
    out += `${out === '' ? '' : ','}${name}="${escapeLabel(typeof value === 'number' ? number(value) : value)}"`;
  }
  return out === '' ? '' : `{${out}}`;
}

const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary']);

export function renderOpenMetrics(families: readonly Family[]): string {
  let out = '';
  for (const family of families) {
    const declared = String(family.type);
    const counter = declared === 'counter';
    const name = counter ? family.name.replace(/_total$/, '') : family.name;
    const type = TYPES.has(declared) ? declared : 'unknown';
    out += `# TYPE ${name} ${type}\n# HELP ${name} ${escapeHelp(family.help)}\n`;
    for (const sample of family.values ?? []) {
      const sampleName = counter ? `${name}_total` : (sample.metricName ?? name);
      out += `${sampleName}${labelText(sample.labels)} ${number(sample.value)}`;
      const exemplar = sample.exemplar;
      if (exemplar?.labelSet !== undefined && exemplar.value !== undefined)
        out += ` # ${labelText(exemplar.labelSet)} ${number(exemplar.value)} ${number(exemplar.timestamp ?? Date.now() / 1000)}`;
      out += '\n';
    }
  }
  return `${out}# EOF\n`;
}
