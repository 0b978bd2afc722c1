/**
 * The jest side of stack-server.ts: start the full stack in a child process, talk to it over IPC,
 * stop it (and prove it exits by itself), and drive it with a steady, paced load of authenticated
 * reads and writes over keep-alive loopback connections, each answer recorded.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StackRequest } from './stack-server';

export interface StackInfo {
  port: number;
  apiPrefix: string;
  bearer: { admin: string; provider: string; patient: string; auditor: string };
  providerPatientId: string;
  login: { email: string; password: string };
}

export interface StackProcess {
  info: StackInfo;
  /** What the child wrote to stdout (its log lines with STACK_LOG_LEVEL set). */
  stdout(): string;
  call<T>(type: Exclude<StackRequest['type'], 'stop'>): Promise<T>;
  /** Close the stack; resolves once the child exited (killed after 15 s: a leaked handle). */
  stop(): Promise<{ uncaught: string[]; code: number | null; signal: string | null; stderr: string }>;
}

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export async function startStackProcess(env: {
  databaseUrl: string;
  redisUrl: string;
  redisPrefix: string;
}): Promise<StackProcess> {
  const root = resolve(__dirname, '../..');
  const child: ChildProcess = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', 'test/faults/stack-server.ts'],
    {
      cwd: root,
      env: {
        ...process.env,
        NODE_ENV: 'test',
        STACK_DATABASE_URL: env.databaseUrl,
        STACK_REDIS_URL: env.redisUrl,
        STACK_REDIS_PREFIX: env.redisPrefix,
      },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    },
  );
  let stderr = '';
  let stdout = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  // Log lines when STACK_LOG_LEVEL is set (diagnosis): the last 1 MB.
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout = (stdout + c).slice(-1_000_000)));
  const exited = new Promise<{ code: number | null; signal: string | null }>((done) =>
    child.once('exit', (code, signal) => {
      done({ code, signal });
    }),
  );
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.on('message', (msg: Reply) => {
    const waiter = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.ok) waiter?.resolve(msg.value);
    else waiter?.reject(new Error(msg.error));
  });
  void exited.then(() => {
    for (const w of pending.values()) w.reject(new Error(`stack server exited: ${stderr}`));
    pending.clear();
  });
  let next = 1;
  const ask = (type: StackRequest['type']): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      child.send({ id, type } satisfies StackRequest);
    });
  let startTimer: NodeJS.Timeout | undefined;
  const info = (await new Promise((resolve, reject) => {
    pending.set(0, { resolve, reject });
    startTimer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stack server did not start in 30 s: ${stderr}`));
    }, 30_000);
  }).finally(() => {
    clearTimeout(startTimer);
  })) as StackInfo;
  return {
    info,
    stdout: () => stdout,
    call: async <T>(type: Exclude<StackRequest['type'], 'stop'>) => (await ask(type)) as T,
    async stop() {
      if (!child.connected) throw new Error('stack server already stopped');
      const stopped = (await ask('stop')) as { uncaught: string[] };
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const exit = await exited;
      clearTimeout(killer);
      return { uncaught: stopped.uncaught, ...exit, stderr };
    },
  };
}

export type Kind = 'list' | 'read' | 'create' | 'login';

export interface Answer {
  kind: Kind;
  /** When it was sent, ms since the load started. */
  at: number;
  ms: number;
  /** 0: no HTTP answer (connection error or client timeout). */
  status: number;
  requestId: string;
  /** `error_code` of an error envelope, `success` of a success one. */
  code: string | undefined;
  success: unknown;
  retryAfter: string | undefined;
  /** `details.dependency` of an error envelope (`database`, `redis`). */
  dependency: unknown;
  error?: string;
}

/** The request mix: searches and reads as a provider, creates as a provider, a few logins. */
function requestFor(
  n: number,
  info: StackInfo,
  run: string,
): { kind: Kind; method: string; path: string; auth?: string; body?: unknown } {
  const api = info.apiPrefix;
  if (n % 20 === 19) return { kind: 'login', method: 'POST', path: `${api}/auth/login`, body: info.login };
  switch (n % 4) {
    case 0:
      return {
        kind: 'list',
        method: 'GET',
        path: `${api}/patients?status=active&sort=-birth_date&size=5`,
        auth: info.bearer.provider,
      };
    case 1:
    case 3:
      return {
        kind: 'read',
        method: 'GET',
        path: `${api}/patients/${info.providerPatientId}`,
        auth: info.bearer.provider,
      };
    default:
      return {
        kind: 'create',
        method: 'POST',
        path: `${api}/patients`,
        auth: info.bearer.provider,
        body: { mrn: `L-${run}-${n}`, given_name: 'Load', family_name: 'Test', birth_date: '1980-01-02' },
      };
  }
}

/**
 * A paced load: `concurrency` loops, together starting at most `rate` requests a second, until
 * `stop()`. Every answer is kept in `answers`.
 */
export class LoadClient {
  readonly answers: Answer[] = [];
  readonly #agent: Agent;
  readonly #run = Math.random().toString(36).slice(2, 8).toUpperCase();
  #n = 0;
  #stopped = false;
  #loops: Promise<void>[] = [];
  #start = 0;

  constructor(
    private readonly info: StackInfo,
    private readonly options: { rate: number; concurrency: number; timeoutMs?: number },
  ) {
    this.#agent = new Agent({ keepAlive: true, maxSockets: options.concurrency });
  }

  /** Answers from `fromMs` (relative to the start) on. */
  since(fromMs: number): Answer[] {
    return this.answers.filter((a) => a.at >= fromMs);
  }

  /** ms since the load started. */
  now(): number {
    return Date.now() - this.#start;
  }

  start(): void {
    this.#start = Date.now();
    const interval = 1000 / this.options.rate;
    for (let i = 0; i < this.options.concurrency; i++) {
      this.#loops.push(
        (async () => {
          while (!this.#stopped) {
            const n = this.#n++;
            const due = this.#start + n * interval;
            const wait = due - Date.now();
            if (wait > 0) await sleep(wait);
            // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() may have run during the sleep
            if (this.#stopped) break;
            this.answers.push(await this.#send(n));
          }
        })(),
      );
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
    this.#agent.destroy();
  }

  #send(n: number, retry = true): Promise<Answer> {
    const spec = requestFor(n, this.info, this.#run);
    const at = this.now();
    const sent = Date.now();
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    return new Promise((done) => {
      let responded = false;
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: this.info.port,
          method: spec.method,
          path: spec.path,
          agent: this.#agent,
          headers: {
            // The same id on a resent request: were both attempts served, the trail would hold
            // the id twice and the audit check would fail.
            'x-request-id': `load-${String(this.#start)}-${String(n)}`,
            ...(spec.auth === undefined ? {} : { authorization: spec.auth }),
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          timeout: this.options.timeoutMs ?? 10_000,
        },
        (res) => {
          responded = true;
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            let parsed: { error_code?: string; success?: unknown; details?: { dependency?: unknown } } = {};
            try {
              parsed = JSON.parse(text) as typeof parsed;
            } catch {
              // not JSON: code stays undefined, which the suites treat as a failure
            }
            done({
              kind: spec.kind,
              at,
              ms: Date.now() - sent,
              status: res.statusCode ?? 0,
              requestId: String(res.headers['x-request-id']),
              code: parsed.error_code,
              success: parsed.success,
              retryAfter: res.headers['retry-after'],
              dependency: parsed.details?.dependency,
            });
          });
        },
      );
      const fail = (err: Error): void => {
        // Node's documented keep-alive race: a reused socket the server closed between two requests
        // resets at once, before any of the response — the server never read the request. Like
        // browsers, send it once more on a new socket, whatever the method. Safe for the audit check:
        // both attempts carry one request id, so one the server did serve would be in the trail twice.
        if (retry && req.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET' && !responded) {
          void this.#send(n, false).then(done);
          return;
        }
        done({
          kind: spec.kind,
          at,
          ms: Date.now() - sent,
          status: 0,
          requestId: '',
          code: undefined,
          success: undefined,
          retryAfter: undefined,
          dependency: undefined,
          error: err.message,
        });
      };
      req.on('timeout', () => req.destroy(new Error('client timeout')));
      req.on('error', fail);
      req.end(body);
    });
  }
}
