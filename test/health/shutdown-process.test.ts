/**
 * The shutdown proof, in a child process (real signals, a real exit): 50 slow requests in flight on
 * keep-alive connections when SIGTERM arrives all complete with 200 and `Connection: close`; during
 * `delayMs` a new connection is still accepted and readiness answers 503; after it new connections
 * are refused (ECONNREFUSED); a second SIGTERM changes nothing; the database pool is closed after the
 * last request and the child exits 0. The timeout path: a request that never finishes is cut after
 * `timeoutMs`, new connections are refused at once (no delay), the pool is still closed, exit code 1.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXPRESS } from '../support/express';

const TSX_CJS = require.resolve('tsx/cjs');
const FIXTURE = require.resolve('./fixtures/shutdown-app.ts');

interface Child {
  port: number;
  child: ChildProcess;
  /** JSON log lines so far. */
  logs(): Record<string, unknown>[];
  /** Resolves with the first line (plain or JSON message) matching, waiting up to `ms`. */
  waitFor(match: (line: string) => boolean, ms?: number): Promise<string>;
  exited: Promise<number | null>;
  kill(): void;
}

async function startChild(env: Readonly<Record<string, string>>): Promise<Child> {
  const child = fork(FIXTURE, [], {
    execArgv: ['--require', TSX_CJS],
    env: { PATH: process.env.PATH, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const wake of waiters) wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the shutdown app did not start within 15 s\n${stderr}`));
    }, 15_000);
    child.once('message', (message: { port: number }) => {
      clearTimeout(timer);
      resolve(message.port);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the shutdown app exited (code ${String(code)}) before listening\n${stderr}`));
    });
  });
  return {
    port,
    child,
    exited,
    logs: () => lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>),
    waitFor(match, ms = 5000) {
      const seen = lines.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching line within ${ms} ms; output:\n${lines.join('\n')}\n${stderr}`));
        }, ms);
        function check(): void {
          const line = lines.find(match);
          if (line === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(line);
        }
        waiters.add(check);
      });
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

const message = (text: string) => (line: string) =>
  line.startsWith('{') && (JSON.parse(line) as { message?: unknown }).message === text;

interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
  at: number;
}

/** A GET; rejects with the socket error (ECONNREFUSED, ECONNRESET, …). */
function get(port: number, path: string, agent: http.Agent | false = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({
          status: res.statusCode ?? 0,
          connection: res.headers.connection,
          body,
          at: performance.now(),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function exitLine(line: string): { code: number; poolClosed: boolean; pool: { used: number } } {
  return JSON.parse(line.slice('EXIT '.length)) as {
    code: number;
    poolClosed: boolean;
    pool: { used: number };
  };
}

let dir: string;
let running: Child | undefined;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'caduceus-shutdown-'));
});
afterEach(() => {
  running?.kill();
  running = undefined;
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.each(EXPRESS)('graceful shutdown in a child process on $name', ({ major, name }) => {
  it('SIGTERM with 50 slow requests in flight: all 200, readiness 503 then ECONNREFUSED, pool closed, exit 0', async () => {
    const app = await startChild({
      EXPRESS_MAJOR: String(major),
      DB_FILE: join(dir, `drain-${major}.db`),
      SLOW_MS: '1500',
      DELAY_MS: '500',
    });
    running = app;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    try {
      // Readiness before: pass (and this connection is idle in no pool: agent false).
      expect((await get(app.port, '/health/ready')).status).toBe(200);
      const slow = Array.from({ length: 50 }, () => get(app.port, '/slow', agent));
      await app.waitFor((l) => l === 'INFLIGHT 50');
      const sigterm = performance.now();
      app.child.kill('SIGTERM');
      const start = JSON.parse(await app.waitFor(message('shutting down'))) as Record<string, unknown>;
      expect(start).toMatchObject({ reason: 'signal SIGTERM', in_flight: 50 });

      // During delayMs: accepted, readiness fails, liveness passes; each answer closes its connection.
      const ready = await get(app.port, '/health/ready');
      expect(ready).toMatchObject({ status: 503, connection: 'close' });
      expect(JSON.parse(ready.body)).toEqual({ status: 'fail', output: 'shutting down' });
      expect((await get(app.port, '/health/live')).status).toBe(200);

      // A second signal does not start it again.
      app.child.kill('SIGTERM');
      await app.waitFor(message('shutdown already in progress'));

      // Then the listener closes: every new connection is refused.
      // A connection the kernel accepted into the backlog just as the listener closed is reset
      // (ECONNRESET) rather than refused: that race is allowed once, then it must be ECONNREFUSED.
      const before: number[] = [];
      let resets = 0;
      let refused: { code: string; at: number } | undefined;
      while (refused === undefined && performance.now() - sigterm < 5000) {
        try {
          before.push((await get(app.port, '/health/ready')).status);
          await sleep(20);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? String(err);
          if (code === 'ECONNRESET' && resets++ === 0) continue;
          refused = { code, at: performance.now() };
        }
      }
      expect(refused?.code).toBe('ECONNREFUSED');
      expect(new Set(before)).toEqual(new Set([503]));
      expect(refused!.at - sigterm).toBeGreaterThanOrEqual(450);

      // Every in-flight request completes, after the listener closed, and closes its connection.
      const answers = await Promise.all(slow);
      expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 50 }, () => 200));
      expect(answers.every((a) => a.connection === 'close')).toBe(true);
      expect(answers.every((a) => a.at > refused!.at)).toBe(true);
      expect(new Set(answers.map((a) => (JSON.parse(a.body) as { visits: number }).visits)).size).toBe(50);

      const exit = exitLine(await app.waitFor((l) => l.startsWith('EXIT ')));
      expect(exit).toEqual({ code: 0, poolClosed: true, pool: expect.objectContaining({ used: 0 }) });
      expect(await app.exited).toBe(0);
      expect(performance.now() - sigterm).toBeLessThan(5000);

      // In order: server stopped, then the resources, then done; one shutdown only.
      const order = app
        .logs()
        .filter((l) => l.logger === 'shutdown')
        .map((l) => `${String(l.message)}${typeof l.resource === 'string' ? ` ${l.resource}` : ''}`);
      expect(order).toEqual([
        'shutting down',
        'shutdown already in progress',
        'server stopped: every request answered',
        'resource closed resources[0]',
        'resource closed database',
        'shutdown complete',
      ]);
      expect(Object.keys(agent.freeSockets)).toHaveLength(0);
    } finally {
      agent.destroy();
    }
  });

  if (major === 4)
    it(`${name}: a request that never finishes is cut after timeoutMs, exit 1, pool still closed`, async () => {
      const app = await startChild({
        EXPRESS_MAJOR: String(major),
        DB_FILE: join(dir, `timeout-${major}.db`),
        TIMEOUT_MS: '800',
      });
      running = app;
      const hanging = get(app.port, '/hang').then(
        () => 'answered',
        (err: unknown) => (err as NodeJS.ErrnoException).code ?? String(err),
      );
      await app.waitFor((l) => l === 'HANGING');
      const sigterm = performance.now();
      app.child.kill('SIGTERM');
      await app.waitFor(message('shutting down'));
      // No delay: the listener is closed already.
      await expect(get(app.port, '/health/live')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect(await hanging).toBe('ECONNRESET');
      const cut = performance.now() - sigterm;
      expect(cut).toBeGreaterThanOrEqual(750);
      expect(cut).toBeLessThan(3000);
      const exit = exitLine(await app.waitFor((l) => l.startsWith('EXIT ')));
      expect(exit).toMatchObject({ code: 1, poolClosed: true });
      expect(await app.exited).toBe(1);
      const messages = app
        .logs()
        .filter((l) => l.logger === 'shutdown')
        .map((l) => l.message);
      expect(messages).toEqual([
        'shutting down',
        'shutdown timed out: destroying the remaining connections',
        'server stopped (forced)',
        'resource closed',
        'resource closed',
        'shutdown complete',
      ]);
    });
});
