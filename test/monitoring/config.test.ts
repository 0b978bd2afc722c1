/**
 * monitoring/ as files: promtool accepts the Prometheus configuration and the alert rules, and the
 * rules' unit tests pass; every alert has `for:`, a severity, annotations that name only
 * PHI-free labels, and a firing and a quiet case in alerts.test.yml; the Grafana dashboard reads
 * the provisioned data source and scopes every query to the selected app; the compose file mounts
 * files that exist. The metric names all of this queries are checked against the example service's
 * live /metrics in metrics-contract.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dashboardQueries, metricNames, ruleExpressions, selectors } from './promql';
import { MONITORING, promtoolOk, ROOT } from './promtool';

const read = (path: string): string => readFileSync(join(MONITORING, path), 'utf8');
const ALERTS = 'prometheus/alerts.yml';
const ALERT_TESTS = 'prometheus/alerts.test.yml';

/** Labels an annotation may print: none of them ever carries PHI (job/instance: a target's address). */
const ANNOTATION_LABELS = new Set([
  'app',
  'route',
  'service_name',
  'limiter',
  'pool',
  'reason',
  'job',
  'instance',
]);

/** Each `- alert:` entry of alerts.yml, as text up to the next one. */
function alertBlocks(): { name: string; text: string }[] {
  return read(ALERTS)
    .split(/^\s*- alert:/m)
    .slice(1)
    .map((text) => ({ name: /^\s*(\S+)/.exec(text)![1]!, text }));
}

describe('Prometheus configuration (promtool)', () => {
  it('prometheus.yml is valid and loads alerts.yml (rule_files relative to the config file)', async () => {
    const out = await promtoolOk(['check', 'config', 'monitoring/prometheus/prometheus.yml']);
    expect(out).toContain('SUCCESS: 1 rule files found');
  });

  it('prometheus.yml scrapes health-service:3000/metrics every 15 s', () => {
    const config = read('prometheus/prometheus.yml');
    expect(config).toMatch(/- job_name: health-service\n\s+metrics_path: \/metrics\n\s+scrape_interval: 15s/);
    expect(config).toContain("- targets: ['health-service:3000']");
  });

  it('alerts.yml is valid, and every rule expression is found by ruleExpressions()', async () => {
    const out = await promtoolOk(['check', 'rules', `monitoring/${ALERTS}`]);
    const count = Number(/SUCCESS: (\d+) rules found/.exec(out)?.[1]);
    // The metric-name check in metrics-contract.test.ts reads the expressions with
    // ruleExpressions(): it sees all of them, or this fails.
    expect(ruleExpressions(read(ALERTS))).toHaveLength(count);
    expect(alertBlocks()).toHaveLength(count);
  });

  it('the unit tests of the alerts pass (promtool test rules)', async () => {
    const out = await promtoolOk(['test', 'rules', `monitoring/${ALERT_TESTS}`]);
    expect(out).toContain('SUCCESS');
  });

  it('every alert has a for:, a severity, a summary and a description', () => {
    for (const { name, text } of alertBlocks()) {
      expect({ name, for: /\n\s+for: \d+[smh]\n/.test(text) }).toEqual({ name, for: true });
      expect({ name, severity: /\n\s+severity: (critical|warning)\n/.test(text) }).toEqual({
        name,
        severity: true,
      });
      expect({
        name,
        summary: text.includes('summary:'),
        description: text.includes('description:'),
      }).toEqual({
        name,
        summary: true,
        description: true,
      });
    }
  });

  it('annotations print only labels that never hold PHI', () => {
    const uses = [...read(ALERTS).matchAll(/\$labels(\.\w+)?/g)].map((m) => m[1]?.slice(1) ?? '$labels');
    expect(uses.length).toBeGreaterThan(0);
    expect(uses.filter((label) => !ANNOTATION_LABELS.has(label))).toEqual([]);
  });

  it('alerts.test.yml has, for every alert, a case where it fires and one where it does not', () => {
    const cases = [...read(ALERT_TESTS).matchAll(/alertname: (\S+)\n\s+exp_alerts:(.*)/g)].map((m) => ({
      name: m[1]!,
      fires: m[2]!.trim() !== '[]',
    }));
    // "Does not" is an `exp_alerts: []` (before `for:` elapses or on quiet series); a firing case
    // also lists only the series that should fire, so the others in its input must not.
    for (const { name } of alertBlocks()) {
      expect({ name, fires: cases.some((c) => c.name === name && c.fires) }).toEqual({ name, fires: true });
      expect({ name, quiet: cases.some((c) => c.name === name && !c.fires) }).toEqual({ name, quiet: true });
    }
  });
});

describe('Grafana provisioning and dashboard', () => {
  const dashboard = JSON.parse(read('grafana/dashboards/health-service.json')) as {
    uid: string;
    schemaVersion: number;
    panels: Panel[];
    templating: { list: { name: string; type: string; definition?: string }[] };
  };
  interface Panel {
    id: number;
    type: string;
    title: string;
    datasource?: { uid?: string };
    gridPos: { x: number; y: number; w: number; h: number };
    targets?: { expr?: string; datasource?: { uid?: string } }[];
  }

  it('the data source is Prometheus at http://prometheus:9090 with uid "prometheus"', () => {
    const source = read('grafana/provisioning/datasources/prometheus.yml');
    expect(source).toMatch(/\n\s+uid: prometheus\n/);
    expect(source).toMatch(/\n\s+type: prometheus\n/);
    expect(source).toMatch(/\n\s+url: http:\/\/prometheus:9090\n/);
  });

  it('the dashboard provider loads /var/lib/grafana/dashboards', () => {
    expect(read('grafana/provisioning/dashboards/dashboards.yml')).toMatch(
      /\n\s+path: \/var\/lib\/grafana\/dashboards\n/,
    );
  });

  it('has a uid, a current schema and an `app` variable from http_requests_total', () => {
    expect(dashboard.uid).toBe('caduceus-health-service');
    expect(dashboard.schemaVersion).toBe(39);
    expect(dashboard.templating.list.find((v) => v.name === 'app')).toMatchObject({
      type: 'query',
      definition: 'label_values(http_requests_total, app)',
    });
  });

  it('every panel and query reads the provisioned data source; ids are unique; panels do not overlap', () => {
    const panels = dashboard.panels;
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    const graphs = panels.filter((p) => p.type !== 'row');
    expect(graphs.length).toBeGreaterThan(20);
    for (const panel of graphs) {
      expect({ panel: panel.title, uid: panel.datasource?.uid }).toEqual({
        panel: panel.title,
        uid: 'prometheus',
      });
      expect(panel.targets?.length).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect({ panel: panel.title, uid: target.datasource?.uid }).toEqual({
          panel: panel.title,
          uid: 'prometheus',
        });
      }
    }
    const cells = new Map<string, string>();
    for (const { title, gridPos: g } of panels) {
      expect(g.x + g.w).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          const other = cells.get(`${x},${y}`);
          expect({ title, overlaps: other }).toEqual({ title, overlaps: undefined });
          cells.set(`${x},${y}`, title);
        }
      }
    }
  });

  it('every panel query selects its metrics for the chosen app and instances', () => {
    const queries = dashboardQueries(dashboard).filter((q) => q.where.startsWith('panel'));
    expect(queries.length).toBeGreaterThan(30);
    for (const { where, expr } of queries) {
      const scoped = selectors(expr)
        .filter((s) => s.matchers.includes('app="$app"') && s.matchers.includes('instance=~"$instance"'))
        .map((s) => s.name);
      // Every name the query reads appears as a scoped selector (no bare `http_requests_total`).
      expect({ where, unscoped: metricNames(expr).filter((name) => !scoped.includes(name)) }).toEqual({
        where,
        unscoped: [],
      });
    }
  });
});

describe('docker compose stack', () => {
  const compose = read('docker-compose.yml');

  it('mounts files and builds from a Dockerfile that exist', () => {
    const mounts = [...compose.matchAll(/^\s+- (\.\/[^:]+):/gm)].map((m) => m[1]!);
    expect(mounts).toEqual(
      expect.arrayContaining([
        './prometheus/prometheus.yml',
        './prometheus/alerts.yml',
        './grafana/provisioning',
      ]),
    );
    for (const mount of mounts)
      expect({ mount, exists: existsSync(join(MONITORING, mount)) }).toEqual({ mount, exists: true });
    expect(compose).toMatch(/context: \.\.\n\s+dockerfile: monitoring\/Dockerfile\n/);
    expect(existsSync(join(MONITORING, 'Dockerfile'))).toBe(true);
  });

  it('the service image runs `npm ci` then `npm run demo`, a script of package.json', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toMatch(/^FROM node:20-slim$/m);
    expect(dockerfile.indexOf('RUN npm ci')).toBeGreaterThan(0);
    expect(dockerfile.indexOf('RUN npm ci')).toBeLessThan(dockerfile.indexOf('CMD ["npm", "run", "demo"]'));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.demo).toBeDefined();
  });

  it('hosts and ports agree between compose, prometheus.yml and the data source', () => {
    const services = [...compose.matchAll(/^ {2}([\w-]+):$/gm)].map((m) => m[1]!);
    expect(services).toEqual(
      expect.arrayContaining(['health-service', 'prometheus', 'grafana', 'redis', 'postgres']),
    );
    expect(compose).toContain("- '9090:9090'");
    expect(compose).toContain("- '3002:3000'");
    expect(compose).toContain('PORT: ' + "'3000'");
    expect(compose).toContain('DATABASE_URL: postgresql://postgres:postgres@postgres:5432/health');
    expect(compose).toContain('REDIS_URL: redis://redis:6379');
    expect(compose).toContain('- ./grafana/dashboards:/var/lib/grafana/dashboards:ro');
  });
});

describe('metricNames()', () => {
  it.each([
    ['http_requests_total', ['http_requests_total']],
    ['sum by (app) (rate(http_requests_total{status_code=~"5.."}[5m]))', ['http_requests_total']],
    [
      'histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_seconds_bucket{app="$app"}[$__rate_interval])))',
      ['http_request_duration_seconds_bucket'],
    ],
    ['max by (pool) (a{state="used"} / ignoring (state) b) >= 0.9', ['a', 'b']],
    ['x and on (app) y or vector(0) unless z offset 5m', ['x', 'y', 'z']],
    ['sum(rate(c[1m])) by (le) * 1e3 + Inf - NaN', ['c']],
    ['label_replace(up, "dst", "$1", "src", "(rate)") > bool 0', ['up']],
    ['max by (service_name) (circuit_breaker_state) == 2', ['circuit_breaker_state']],
    ['rate(d[5m:1m]) * on (a) group_left (b) e', ['d', 'e']],
  ])('%s', (expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });
});

describe('ruleExpressions()', () => {
  it('reads plain, quoted and block expressions', () => {
    const yaml = [
      'groups:',
      '  - name: g',
      '    rules:',
      '      - alert: A',
      '        expr: up == 0',
      '        for: 1m',
      '      - expr: \'a{x="y"} > 1\'',
      '        alert: B',
      '      - alert: C',
      '        expr: |',
      '          sum(b)',
      '',
      '            > 2',
      '        for: 5m',
    ].join('\n');
    expect(ruleExpressions(yaml)).toEqual(['up == 0', 'a{x="y"} > 1', 'sum(b)\n\n> 2']);
  });
});
