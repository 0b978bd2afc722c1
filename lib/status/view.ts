/**
 * What the status page shows, built from one reading of a metrics registry: the shape that
 * `status.json` serves and both the server (first paint) and the page's script (refreshes) render.
 * Every value is already formatted; labels are the registry's bounded label values (route
 * templates, error codes, pool / breaker / limiter / flag names), never a raw URL.
 */
import { count, duration, label, MAX_ROWS, percent, perSecond, sum } from './format.js';
import { addBucket, quantile, toBuckets } from './quantile.js';
import type { RateWindow } from './rates.js';
import {
  breakersSection,
  errorsSection,
  flagsSection,
  limitsSection,
  poolsSection,
  securitySection,
} from './sections.js';
import type { Families, FamilyJson, Row, Section, StatusView } from './types.js';

interface RouteStats {
  method: string;
  route: string;
  requests: number;
  clientErrors: number;
  serverErrors: number;
  buckets: Map<number, number>;
}

function routeStats(families: Families): Map<string, RouteStats> {
  const routes = new Map<string, RouteStats>();
  const of = (labels: Record<string, string | number>): RouteStats => {
    const method = label(labels, 'method');
    const route = label(labels, 'route');
    const key = `${method} ${route}`;
    let stats = routes.get(key);
    if (stats === undefined) {
      stats = { method, route, requests: 0, clientErrors: 0, serverErrors: 0, buckets: new Map() };
      routes.set(key, stats);
    }
    return stats;
  };
  for (const v of families.get('http_requests_total')?.values ?? []) {
    const stats = of(v.labels);
    const status = Number(label(v.labels, 'status_code'));
    stats.requests += v.value;
    if (status >= 500) stats.serverErrors += v.value;
    else if (status >= 400) stats.clientErrors += v.value;
  }
  for (const v of families.get('http_request_duration_seconds')?.values ?? [])
    if (v.metricName === 'http_request_duration_seconds_bucket')
      addBucket(of(v.labels).buckets, v.labels.le, v.value);
  return routes;
}

function routesSection(routes: Map<string, RouteStats>, rates: Map<string, number | undefined>): Section {
  const rows = [...routes.entries()]
    .filter(([, s]) => s.requests > 0)
    .sort((a, b) => b[1].requests - a[1].requests || a[0].localeCompare(b[0]))
    .slice(0, MAX_ROWS)
    .map(([key, s]): Row => {
      const buckets = toBuckets(s.buckets);
      const ratio = s.serverErrors / s.requests;
      return {
        cells: [
          s.route,
          s.method,
          count(s.requests),
          perSecond(rates.get(key)),
          count(s.clientErrors),
          count(s.serverErrors),
          percent(ratio),
          duration(quantile(0.5, buckets)),
          duration(quantile(0.99, buckets)),
        ],
        tone: ratio >= 0.05 ? 'bad' : ratio > 0 ? 'warn' : 'ok',
      };
    });
  return {
    id: 'routes',
    title: 'Requests by route (RED)',
    columns: ['Route', 'Method', 'Requests', 'Rate', '4xx', '5xx', 'Error ratio (5xx)', 'p50', 'p99'],
    rows,
    empty: 'No requests measured yet. Is core.metrics() in the pipeline with this registry?',
  };
}

/** The whole page from one reading of the registry; `rates` keeps the readings rates are taken over. */
export function buildView(
  list: readonly FamilyJson[],
  rates: RateWindow,
  title: string,
  refreshSeconds: number,
  now = Date.now(),
): StatusView {
  const families = new Map(list.map((f) => [f.name, f]));
  const routes = routeStats(families);
  const totals = new Map([...routes].map(([key, s]) => [key, s.requests]));
  let requests = 0;
  let serverErrors = 0;
  for (const s of routes.values()) {
    requests += s.requests;
    serverErrors += s.serverErrors;
  }
  totals.set('', requests);
  const rate = rates.observe(now, totals);
  const inFlight = sum(families, 'http_requests_in_flight', () => '').get('') ?? 0;
  const breakers = breakersSection(families);
  const open = breakers.rows.filter((r) => r.tone === 'bad').length;
  const ratio = requests === 0 ? undefined : serverErrors / requests;
  return {
    title,
    generatedAt: new Date(now).toISOString(),
    refreshSeconds,
    tiles: [
      { label: 'Requests', value: count(requests), tone: 'idle' },
      { label: 'Rate', value: perSecond(rate.get('')), tone: 'idle' },
      {
        label: 'Error ratio (5xx)',
        value: percent(ratio),
        tone: ratio === undefined ? 'idle' : ratio >= 0.05 ? 'bad' : ratio > 0 ? 'warn' : 'ok',
      },
      { label: 'In flight', value: count(inFlight), tone: 'idle' },
      { label: 'Open breakers', value: count(open), tone: open > 0 ? 'bad' : 'ok' },
    ],
    sections: [
      routesSection(routes, rate),
      errorsSection(families),
      poolsSection(families),
      breakers,
      limitsSection(families),
      flagsSection(families),
      securitySection(families),
    ],
  };
}
