/**
 * The contract between monitoring/ and the service: after some traffic (health, a login, a failed
 * login, patient reads, a 404, a 401), the example service's GET /metrics passes
 * `promtool check metrics`, exposes every metric an alert or a dashboard panel queries (the
 * families of a later release are listed as pending), labels routes by template and carries no
 * PHI, and answers Prometheus' Accept header in OpenMetrics.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import request from 'supertest';
import type { DemoUser } from '../../examples/health-service/seed';
import { DEMO_ADMIN, DEMO_USERS, SEED_PATIENTS } from '../../examples/health-service/seed';
import {
  dashboardQueries,
  families,
  isExposed,
  metricNames,
  PENDING,
  ruleExpressions,
  SYNTHETIC,
} from './promql';
import { EXPRESS } from '../support/express';
import { MONITORING, promtool, run } from './promtool';
import { SERVICE_SETTINGS, startService } from './service';

const API = SERVICE_SETTINGS.apiPrefix;
const [FIRST] = SEED_PATIENTS;
const MISSING_ID = '00000000-0000-4000-8000-000000000000';

/**
 * `promtool check metrics` findings we accept, with why. Every other finding fails the test.
 * - prom-client's default Node.js metrics name three gauges `…_total`; the names are the ones
 *   every Node.js dashboard queries, and renaming them is not ours to do.
 */
const ACCEPTED_LINT = [
  'nodejs_active_handles_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_requests_total non-counter metrics should not have "_total" suffix',
  'nodejs_active_resources_total non-counter metrics should not have "_total" suffix',
];

/** The header Prometheus 2.42 sends with every scrape. */
const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

/** The media type of a Content-Type header and its `version` parameter. */
function mediaType(header: string | undefined): { type: string; version: string | undefined } {
  const [type = '', ...params] = (header ?? '').split(';').map((part) => part.trim());
  const version = params.find((p) => p.startsWith('version='))?.slice('version='.length);
  return { type, version };
}

/** Every metric name alerts.yml and the dashboard query, with where each is queried. */
function queriedNames(): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (where: string, expr: string): void => {
    for (const name of metricNames(expr)) out.set(name, [...(out.get(name) ?? []), where]);
  };
  for (const expr of ruleExpressions(readFileSync(join(MONITORING, 'prometheus/alerts.yml'), 'utf8')))
    add('alerts.yml', expr);
  const dashboard = JSON.parse(
    readFileSync(join(MONITORING, 'grafana/dashboards/health-service.json'), 'utf8'),
  );
  for (const { where, expr } of dashboardQueries(dashboard)) add(`health-service.json ${where}`, expr);
  return out;
}

describe.each(EXPRESS)("the example service's /metrics on $name", ({ express }) => {
  const service = startService(express);
  let text: string;

  /** The traffic of the suite, then the scrape every test reads. */
  beforeAll(async () => {
    const agent = request(service.app());
    const login = (user: DemoUser, password: string) =>
      agent.post(`${API}/auth/login`).send({ email: user.email, password });
    await agent.get('/health').expect(200);
    const res = await login(DEMO_ADMIN, DEMO_ADMIN.password).expect(200);
    const bearer = `Bearer ${(res.body as { data: { access_token: string } }).data.access_token}`;
    await agent.get(`${API}/patients`).set('Authorization', bearer).expect(200);
    await agent.get(`${API}/patients/${FIRST!.id}`).set('Authorization', bearer).expect(200);
    await agent.get(`${API}/patients/${MISSING_ID}`).set('Authorization', bearer).expect(404);
    await agent.get('/no/such/page').expect(404);
    await agent.get(`${API}/patients`).expect(401);
    await login(DEMO_ADMIN, 'not-the-password').expect(401);
    const scraped = await agent.get('/metrics').expect(200);
    // The order of the parameters differs between Express 4 and 5; both are the 0.0.4 text format.
    expect(mediaType(scraped.headers['content-type'])).toEqual({ type: 'text/plain', version: '0.0.4' });
    text = scraped.text;
  });

  it('passes promtool check metrics (only the accepted findings)', async () => {
    const checked = await run(promtool(), ['check', 'metrics'], text);
    // 0: clean; 3: lint findings only (listed below); anything else (1): the text did not parse.
    expect({ code: checked.code === 0 || checked.code === 3, output: checked.stderr }).toEqual({
      code: true,
      output: checked.stderr,
    });
    const findings = (checked.stdout + checked.stderr)
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '');
    expect(findings.filter((f) => !ACCEPTED_LINT.includes(f))).toEqual([]);
  });

  it('exposes every metric an alert or a dashboard panel queries, except the pending ones', () => {
    const types = families(text);
    const queried = queriedNames();
    expect(queried.size).toBeGreaterThan(20);
    const missing = [...queried]
      .filter(([name]) => !PENDING.includes(name) && !SYNTHETIC.includes(name) && !isExposed(name, types))
      .map(([name, where]) => `${name} (${[...new Set(where)].join('; ')})`);
    expect(missing).toEqual([]);
  });

  it('lists as pending only names that are queried and not exposed yet', () => {
    const types = families(text);
    const queried = queriedNames();
    for (const name of PENDING) {
      expect({ name, queried: queried.has(name) }).toEqual({ name, queried: true });
      // Exposed now? Then its release has arrived: take it off PENDING.
      expect({ name, exposed: isExposed(name, types) }).toEqual({ name, exposed: false });
    }
  });

  it('counts the traffic by route template, with the app label, and carries no PHI', () => {
    const app = `app="${SERVICE_SETTINGS.appName}"`;
    const counted = (route: string, status: number): boolean =>
      text
        .split('\n')
        .some(
          (line) =>
            line.startsWith('http_requests_total{') &&
            line.includes(`route="${route}"`) &&
            line.includes(`status_code="${status}"`) &&
            line.includes(app),
        );
    expect(counted('/health', 200)).toBe(true);
    expect(counted(`${API}/patients/:id`, 200)).toBe(true);
    expect(counted(`${API}/patients/:id`, 404)).toBe(true);
    expect(counted('unmatched', 404)).toBe(true);
    // Every sample carries the app label.
    const samples = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    expect(samples.filter((line) => !line.includes(app))).toEqual([]);
    // No label value holds an id, an MRN, a name, an SSN, an email or a raw path.
    const values = new Set(
      samples.flatMap((line) => [...line.matchAll(/="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!)),
    );
    const phi = [
      FIRST!.id,
      MISSING_ID,
      '/no/such/page',
      ...SEED_PATIENTS.flatMap((p) => [p.id, p.mrn, p.ssn, p.family_name, p.given_name]),
      ...DEMO_USERS.map((u) => u.email),
    ];
    expect([...values].filter((value) => phi.some((p) => value.includes(p)))).toEqual([]);
    expect(values.size).toBeGreaterThan(10);
  });

  it("answers Prometheus' Accept header in OpenMetrics", async () => {
    const res = await request(service.app()).get('/metrics').set('Accept', PROMETHEUS_ACCEPT).expect(200);
    expect(mediaType(res.headers['content-type'])).toEqual({
      type: 'application/openmetrics-text',
      version: '1.0.0',
    });
    expect(res.text.endsWith('# EOF\n')).toBe(true);
    // OpenMetrics names a counter family without `_total`; its samples keep it.
    expect(res.text).toMatch(/^# TYPE http_requests counter$/m);
    expect(res.text).toMatch(/^http_requests_total\{/m);
  });
});
