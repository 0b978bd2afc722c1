/**
 * A real Node cluster in a child process (test/metrics/fixtures/cluster.ts): two workers report
 * into `createMetrics({ cluster: true })`, the primary serves `metricsEndpoint({ cluster: true })`,
 * and its scrape shows every worker's series summed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import request from 'supertest';
import type { ClusterReady } from './fixtures/cluster';
import { parseExposition, PROMETHEUS_ACCEPT, samplesOf, valueOf } from './support';

const FIXTURE = join(__dirname, 'fixtures', 'cluster.ts');
const TSX_CJS = require.resolve('tsx/cjs');

let child: ChildProcess | undefined;
let ready: ClusterReady | undefined;

function cluster(): ClusterReady {
  if (ready === undefined) throw new Error('the cluster did not start (see beforeAll)');
  return ready;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  const started = spawn(process.execPath, ['--require', TSX_CJS, FIXTURE], {
    cwd: join(__dirname, '..', '..'),
    env: { ...process.env, NODE_ENV: 'test' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child = started;
  let stderr = '';
  started.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  ready = await new Promise<ClusterReady>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`the cluster printed no READY line within 12 s\n${stderr}`));
    }, 12_000);
    started.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the cluster exited (${String(code)}) before READY\n${stderr}`));
    });
    createInterface({ input: started.stdout }).on('line', (line) => {
      if (!line.startsWith('READY ')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line.slice('READY '.length)) as ClusterReady);
    });
  });
}, 15_000);

afterAll(async () => {
  const running = child;
  if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => {
    running.once('exit', () => {
      resolve();
    });
  });
  running.kill('SIGTERM');
  const timer = setTimeout(() => running.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
  running.stdin?.destroy();
  running.stdout?.destroy();
  running.stderr?.destroy();
  // No worker is left behind.
  for (const worker of ready?.workers ?? []) {
    for (let i = 0; i < 50 && alive(worker.pid); i++) await new Promise((r) => setTimeout(r, 20));
    if (alive(worker.pid)) process.kill(worker.pid, 'SIGKILL');
  }
}, 10_000);

it('starts two workers, one on Express 4 and one on Express 5', () => {
  const { workers } = cluster();
  expect(workers.map((w) => w.express)).toEqual([4, 5]);
  expect(new Set(workers.map((w) => w.port)).size).toBe(2);
});

it('serves every worker’s series summed from the primary', async () => {
  const { workers, metricsPort } = cluster();
  const hits = [3, 5];
  for (const [i, worker] of workers.entries()) {
    for (let n = 0; n < (hits[i] ?? 0); n++) {
      const res = await request(`http://127.0.0.1:${worker.port}`).get(`/hit/${i}-${n}`).expect(200);
      expect(res.body).toEqual({ pid: worker.pid });
    }
  }
  const res = await request(`http://127.0.0.1:${metricsPort}`).get('/metrics').expect(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  const exp = parseExposition(res.text);
  const route = { method: 'GET', route: '/hit/:id', status_code: '200', app: 'c' };
  expect(samplesOf(exp, 'http_requests_total').map((s) => s.labels)).toEqual([route]);
  expect(valueOf(exp, 'http_requests_total', route)).toBe(8);
  expect(valueOf(exp, 'http_request_duration_seconds_count', route)).toBe(8);
  expect(valueOf(exp, 'http_request_duration_seconds_bucket', { ...route, le: '+Inf' })).toBe(8);
  expect(valueOf(exp, 'http_requests_in_flight', { app: 'c' })).toBe(0);
  // The workers' own counters are summed too (1 + 2).
  expect(valueOf(exp, 'jobs_total', { kind: 'import', app: 'c' })).toBe(3);
});

it('answers the text format from the primary even when OpenMetrics is preferred', async () => {
  const res = await request(`http://127.0.0.1:${cluster().metricsPort}`)
    .get('/metrics')
    .set('Accept', PROMETHEUS_ACCEPT)
    .expect(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  expect(parseExposition(res.text).eof).toBe(false);
});
