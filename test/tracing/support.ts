/**
 * For the tracing suites: an OTLP/HTTP receiver (a plain node server collecting the JSON the
 * exporter POSTs to /v1/traces), the traced fixture app in a child process, and small readers of
 * the OTLP JSON encoding.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';

const TSX_CJS = require.resolve('tsx/cjs');
const FIXTURE = require.resolve('./fixtures/traced-app.ts');

/** OTLP `Span.kind`. */
export const SPAN_KIND = { server: 2, client: 3 } as const;

interface AnyValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
}

interface KeyValue {
  key: string;
  value: AnyValue;
}

/** One span as the OTLP/HTTP JSON exporter encodes it (ids in hex). */
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: KeyValue[];
  status?: { code?: number; message?: string };
  events?: { name: string; attributes?: KeyValue[] }[];
}

interface OtlpExport {
  resourceSpans?: { scopeSpans?: { spans?: OtlpSpan[] }[] }[];
}

/** The value of attribute `key`, or undefined. */
export function attribute(
  attributes: readonly KeyValue[] | undefined,
  key: string,
): string | number | boolean | undefined {
  const value = attributes?.find((a) => a.key === key)?.value;
  if (value === undefined) return undefined;
  return (
    value.stringValue ??
    (value.intValue === undefined ? undefined : Number(value.intValue)) ??
    value.boolValue ??
    value.doubleValue
  );
}

export interface Receiver {
  endpoint: string;
  /** Every request body received, as sent. */
  bodies(): readonly string[];
  spans(): OtlpSpan[];
  /** Resolves with the first span matching `predicate`, waiting for exports up to `timeoutMs`. */
  waitForSpan(predicate: (span: OtlpSpan) => boolean, timeoutMs?: number): Promise<OtlpSpan>;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      resolve(body);
    });
    req.on('error', reject);
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
}

export async function startReceiver(): Promise<Receiver> {
  const bodies: string[] = [];
  const spans: OtlpSpan[] = [];
  const waiters = new Set<() => void>();
  const server = createServer((req, res) => {
    void readBody(req).then((body) => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      bodies.push(body);
      const parsed = JSON.parse(body) as OtlpExport;
      for (const resource of parsed.resourceSpans ?? [])
        for (const scope of resource.scopeSpans ?? []) spans.push(...(scope.spans ?? []));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      for (const wake of waiters) wake();
    });
  });
  const base = await listen(server);
  return {
    endpoint: `${base}/v1/traces`,
    bodies: () => bodies,
    spans: () => spans,
    waitForSpan(predicate, timeoutMs = 5_000) {
      const found = spans.find(predicate);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching span exported within ${timeoutMs} ms (${spans.length} received)`));
        }, timeoutMs);
        function check(): void {
          const span = spans.find(predicate);
          if (span === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(span);
        }
        waiters.add(check);
      });
    },
    close: () => close(server),
  };
}

/** A server that answers every request with the `traceparent` header it received. */
export async function startDownstream(): Promise<{
  url: string;
  received: string[];
  close(): Promise<void>;
}> {
  const received: string[] = [];
  const server = createServer((req, res) => {
    const traceparent = req.headers.traceparent;
    if (typeof traceparent === 'string') received.push(traceparent);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ traceparent }));
  });
  const url = `${await listen(server)}/lab-results`;
  return { url, received, close: () => close(server) };
}

export interface TracedApp {
  url: string;
  child: ChildProcess;
  /** JSON lines the app logged on stdout. */
  logs(): Record<string, unknown>[];
  /** SIGTERM and wait for the exit (SIGKILL after 10 s); resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts test/tracing/fixtures/traced-app.ts with `node --require tsx/cjs` and waits for its port. */
export async function startTracedApp(env: Readonly<Record<string, string>>): Promise<TracedApp> {
  const child = fork(FIXTURE, [], {
    execArgv: ['--require', TSX_CJS],
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      OTEL_BSP_SCHEDULE_DELAY: '50',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const logs: Record<string, unknown>[] = [];
  let output = '';
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
    else output = `${output}${line}\n`.slice(-4000);
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    output = (output + chunk).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`traced app did not start within 15 s\n${output}`));
    }, 15_000);
    child.once('message', (message: { port: number }) => {
      clearTimeout(timer);
      resolve(message.port);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`traced app exited (code ${String(code)}) before listening\n${output}`));
    });
  });
  let stopping: Promise<number | null> | undefined;
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    logs: () => logs,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
        const code = await exited;
        clearTimeout(kill);
        return code;
      })();
      return stopping;
    },
  };
}

/** A fresh W3C trace id and parent span id, so each request's spans are found by trace id. */
export function newTrace(): { traceId: string; parentId: string; traceparent: (flags?: string) => string } {
  const traceId = randomBytes(16).toString('hex');
  const parentId = randomBytes(8).toString('hex');
  return { traceId, parentId, traceparent: (flags = '01') => `00-${traceId}-${parentId}-${flags}` };
}
