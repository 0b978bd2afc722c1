/**
 * A real Prometheus (2.42, Debian's) scrapes the example service: it negotiates OpenMetrics, so a
 * scrape that counts every request we sent proves our OpenMetrics output parses; it loads the real
 * alerts.yml, and every rule evaluates against the service's series without an error (a
 * many-to-many match or a bad function argument would only show here) and, without its thresholds,
 * selects series that carry the labels its annotations print; and every dashboard query runs.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_ADMIN, SEED_PATIENTS } from '../../examples/health-service/seed';
import { dashboardQueries, metricNames, PENDING } from './promql';
import { MONITORING, prometheus } from './promtool';
import { SERVICE_SETTINGS, startService } from './service';

const REQUESTS = 25;
const API = SERVICE_SETTINGS.apiPrefix;
const TIMEOUT_MS = 15_000;

/** A port that was free a moment ago (the OS picked it). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface Running {
  child: ChildProcess;
  url: string;
  log: () => string;
}

/** Prometheus scraping `target` every second, with the repository's alerts.yml, on a fresh TSDB. */
async function startPrometheus(dir: string, target: string): Promise<Running> {
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${JSON.stringify(join(MONITORING, 'prometheus/alerts.yml'))}`,
      'scrape_configs:',
      '  - job_name: health-service',
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: [${JSON.stringify(target)}]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const child = spawn(
    prometheus(),
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--enable-feature=exemplar-storage',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
  return { child, url: `http://127.0.0.1:${port}`, log: () => log };
}

async function stopPrometheus(running: Running | undefined): Promise<void> {
  const child = running?.child;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * `probe()` until it returns a value, every 250 ms; on timeout the error has the last state and
 * Prometheus' log.
 */
async function poll<T>(what: string, running: Running, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + TIMEOUT_MS;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline || running.child.exitCode !== null)
      throw new Error(
        `${what}: nothing after ${TIMEOUT_MS} ms (${String(last)})\nprometheus log:\n${running.log()}`,
      );
    await sleep(250);
  }
}

async function api<T>(running: Running, path: string): Promise<T> {
  const res = await fetch(`${running.url}${path}`);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${path}: ${body.error ?? res.status}`);
  return body.data;
}

interface VectorSample {
  metric: Record<string, string>;
  value: [number, string];
}

interface RuleInfo {
  name: string;
  query: string;
  health: string;
  lastError?: string;
  lastEvaluation: string;
  annotations: Record<string, string>;
}

/**
 * The rule without its `<comparison> <number>` filters: the series it compares, whatever their
 * values (a ratio of two rates of 0 is NaN, which `>= 0` would drop too).
 */
const withoutThresholds = (query: string): string =>
  query.replace(/(?:[<>]=?|[=!]=)\s*-?\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi, '');

describe('a real Prometheus scraping the example service', () => {
  const service = startService();
  let dir: string;
  let running: Running | undefined;
  let server: Server;
  let base: string;
  /** Content type of each answer to a Prometheus scrape. */
  const scrapes: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'caduceus-prometheus-'));
    server = await service.listen();
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/metrics' && req.headers['user-agent']?.startsWith('Prometheus/') === true)
        res.once('finish', () => scrapes.push(String(res.getHeader('content-type'))));
    });
    const { port } = server.address() as AddressInfo;
    base = `http://127.0.0.1:${port}`;
    running = await startPrometheus(dir, `127.0.0.1:${port}`);
    await poll('Prometheus ready', running, async () =>
      (await fetch(`${running!.url}/-/ready`)).ok ? true : undefined,
    );
  });

  afterAll(async () => {
    await stopPrometheus(running);
    rmSync(dir, { recursive: true, force: true });
  });

  it(`counts the ${REQUESTS} requests it was sent, from scrapes answered in OpenMetrics`, async () => {
    for (let i = 0; i < REQUESTS; i++) {
      const res = await fetch(`${base}/health`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const query = encodeURIComponent(
      `sum(http_requests_total{route="/health",app="${SERVICE_SETTINGS.appName}"})`,
    );
    const value = await poll('sum(http_requests_total{route="/health"})', running!, async () => {
      const data = await api<{ result: VectorSample[] }>(running!, `/api/v1/query?query=${query}`);
      const v = data.result[0]?.value[1];
      return v === String(REQUESTS) ? v : undefined;
    });
    expect(value).toBe(String(REQUESTS));

    // Prometheus asked for OpenMetrics and got it, and every scrape parsed (else lastError).
    expect(scrapes.length).toBeGreaterThan(0);
    expect(new Set(scrapes.map((type) => type.split(';')[0]))).toEqual(
      new Set(['application/openmetrics-text']),
    );
    const targets = await api<{ activeTargets: { health: string; lastError: string; scrapeUrl: string }[] }>(
      running!,
      '/api/v1/targets?state=active',
    );
    expect(targets.activeTargets).toEqual([
      expect.objectContaining({ health: 'up', lastError: '', scrapeUrl: `${base}/metrics` }),
    ]);
  });

  it('evaluates every alert without an error; without its thresholds each selects series carrying the labels its annotations print', async () => {
    // A 5xx for the error ratio: the lab system is not connected in the example.
    const login = await fetch(`${base}${API}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: DEMO_ADMIN.email, password: DEMO_ADMIN.password }),
    });
    const token = ((await login.json()) as { data: { access_token: string } }).data.access_token;
    const labs = await fetch(`${base}${API}/patients/${SEED_PATIENTS[0]!.id}/lab-results`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(labs.status).toBe(500);
    await labs.arrayBuffer();

    const rules = await poll('every rule evaluated', running!, async () => {
      const data = await api<{ groups: { rules: RuleInfo[] }[] }>(running!, '/api/v1/rules?type=alert');
      const all = data.groups.flatMap((g) => g.rules);
      return all.length > 0 && all.every((r) => !r.lastEvaluation.startsWith('0001-')) ? all : undefined;
    });
    expect(rules.map((r) => r.name).sort()).toEqual(
      [...readFileSync(join(MONITORING, 'prometheus/alerts.yml'), 'utf8').matchAll(/- alert: (\w+)/g)]
        .map((m) => m[1])
        .sort(),
    );
    expect(rules.map((r) => ({ name: r.name, health: r.health, lastError: r.lastError ?? '' }))).toEqual(
      rules.map((r) => ({ name: r.name, health: 'ok', lastError: '' })),
    );

    for (const rule of rules) {
      if (metricNames(rule.query).some((name) => PENDING.includes(name))) continue;
      const printed = new Set(
        Object.values(rule.annotations).flatMap((text) =>
          [...text.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1]!),
        ),
      );
      const query = encodeURIComponent(withoutThresholds(rule.query));
      const series = await poll(`${rule.name} without thresholds`, running!, async () => {
        const data = await api<{ result: VectorSample[] }>(running!, `/api/v1/query?query=${query}`);
        return data.result.length > 0 ? data.result : undefined;
      });
      for (const { metric } of series) {
        expect({
          alert: rule.name,
          missing: [...printed].filter((label) => metric[label] === undefined),
        }).toEqual({
          alert: rule.name,
          missing: [],
        });
      }
    }
  });

  it('runs every dashboard query, its variables filled in, without an error', async () => {
    const dashboard = JSON.parse(
      readFileSync(join(MONITORING, 'grafana/dashboards/health-service.json'), 'utf8'),
    );
    const fill = (expr: string): string =>
      expr
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$__range', '5m')
        .replaceAll('$app', SERVICE_SETTINGS.appName)
        .replaceAll('$instance', '.+');
    const failures: string[] = [];
    for (const { where, expr } of dashboardQueries(dashboard)) {
      try {
        await api(running!, `/api/v1/query?query=${encodeURIComponent(fill(expr))}`);
      } catch (err) {
        failures.push(`${where}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    expect(failures).toEqual([]);
  });
});
