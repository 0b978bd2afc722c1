/**
 * Shared by the metrics suites: a strict parser of the Prometheus text format (0.0.4) and of
 * OpenMetrics 1.0 (exemplars included), so tests assert on samples rather than on substrings; apps
 * with the caduceus pipeline around the routes under test; servers that are closed after each test.
 */
import express, { type Express, type Router } from 'express';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import * as core from '../../lib/index';
import type { ExpressVariant } from '../support/express';
import { captureLogger } from '../support/logs';

export const settings = core.loadSettings({ NODE_ENV: 'test' });

/** A registry of the test's own (never the process default), without Node.js process metrics. */
export function newMetrics(app = 'test'): core.Metrics {
  return core.createMetrics({ app, nodeMetrics: false });
}

export interface Exemplar {
  labels: Record<string, string>;
  value: number;
  timestamp: number | undefined;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  exemplar: Exemplar | undefined;
  /** The line as exposed. */
  line: string;
}

export interface Exposition {
  text: string;
  lines: string[];
  samples: Sample[];
  /** Family name → declared type. */
  types: Map<string, string>;
  /** Family name → help text (unescaped). */
  help: Map<string, string>;
  /** True when the exposition ended with `# EOF` (OpenMetrics). */
  eof: boolean;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** A sample value; NaN and Inf in any case, as Prometheus reads them (prom-client writes `Nan`). */
function parseNumber(token: string, line: string): number {
  const special = token.toLowerCase();
  if (special === 'nan') return NaN;
  if (special === '+inf' || special === 'inf') return Infinity;
  if (special === '-inf') return -Infinity;
  const value = Number(token);
  if (token === '' || Number.isNaN(value)) throw new Error(`bad number "${token}" in: ${line}`);
  return value;
}

/** Parses `{a="x",b="y"}` at `text[start]`; returns the labels and the index after `}`. */
function parseLabels(text: string, start: number, line: string): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = start + 1;
  if (text[i] === '}') return [labels, i + 1];
  for (;;) {
    const name = LABEL.exec(text.slice(i))?.[0];
    if (name === undefined) throw new Error(`bad label name at ${i} in: ${line}`);
    i += name.length;
    if (text.slice(i, i + 2) !== '="') throw new Error(`expected =" after ${name} in: ${line}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = text[i];
      if (c === undefined) throw new Error(`unterminated label value in: ${line}`);
      if (c === '"') break;
      if (c === '\\') {
        const next = text[i + 1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else throw new Error(`bad escape \\${String(next)} in: ${line}`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    i++;
    if (Object.hasOwn(labels, name)) throw new Error(`label ${name} twice in: ${line}`);
    labels[name] = value;
    if (text[i] === ',') {
      i++;
      continue;
    }
    if (text[i] === '}') return [labels, i + 1];
    throw new Error(`expected , or } at ${i} in: ${line}`);
  }
}

function parseSample(line: string): Sample {
  const name = NAME.exec(line)?.[0];
  if (name === undefined) throw new Error(`bad metric name in: ${line}`);
  let i = name.length;
  let labels: Record<string, string> = {};
  if (line[i] === '{') [labels, i] = parseLabels(line, i, line);
  if (line[i] !== ' ') throw new Error(`expected a space before the value in: ${line}`);
  const [body, exemplarText] = splitExemplar(line.slice(i + 1));
  const tokens = body.split(' ');
  if (tokens.length > 2) throw new Error(`trailing text in: ${line}`);
  const value = parseNumber(tokens[0] ?? '', line);
  let exemplar: Exemplar | undefined;
  if (exemplarText !== undefined) {
    if (exemplarText[0] !== '{') throw new Error(`bad exemplar in: ${line}`);
    const [exLabels, end] = parseLabels(exemplarText, 0, line);
    const rest = exemplarText.slice(end).split(' ');
    if (rest[0] !== '' || rest.length < 2 || rest.length > 3) throw new Error(`bad exemplar in: ${line}`);
    exemplar = {
      labels: exLabels,
      value: parseNumber(rest[1] ?? '', line),
      timestamp: rest[2] === undefined ? undefined : parseNumber(rest[2], line),
    };
  }
  return { name, labels, value, exemplar, line };
}

/** Splits `value [ts] # {exemplar} v [ts]` at the exemplar marker (outside label values: there are none here). */
function splitExemplar(rest: string): [string, string | undefined] {
  const at = rest.indexOf(' # ');
  return at === -1 ? [rest, undefined] : [rest.slice(0, at), rest.slice(at + 3)];
}

function unescapeHelp(text: string, line: string): string {
  return text.replace(/\\(.)/g, (_all, c: string) => {
    if (c === 'n') return '\n';
    if (c === '\\' || c === '"') return c;
    throw new Error(`bad escape in HELP: ${line}`);
  });
}

/** Parses an exposition strictly: any line that is not HELP, TYPE, EOF, a comment or a sample throws. */
export function parseExposition(text: string): Exposition {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const out: Exposition = { text, lines, samples: [], types: new Map(), help: new Map(), eof: false };
  for (const line of lines) {
    if (out.eof) throw new Error(`a line after # EOF: ${line}`);
    if (line === '') continue;
    if (line === '# EOF') {
      out.eof = true;
      continue;
    }
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line);
    if (meta !== null) {
      const [, kind, name = '', rest = ''] = meta;
      if (kind === 'TYPE') out.types.set(name, rest);
      else out.help.set(name, unescapeHelp(rest, line));
      continue;
    }
    if (line.startsWith('#')) continue;
    out.samples.push(parseSample(line));
  }
  return out;
}

/** Samples named `name` whose labels include every label of `match`. */
export function samplesOf(exp: Exposition, name: string, match: Record<string, string> = {}): Sample[] {
  return exp.samples.filter(
    (s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v),
  );
}

/** The value of the one sample named `name` matching `match`; throws when there is none or several. */
export function valueOf(exp: Exposition, name: string, match: Record<string, string> = {}): number {
  const found = samplesOf(exp, name, match);
  if (found.length !== 1)
    throw new Error(
      `expected one ${name} sample matching ${JSON.stringify(match)}, found ${found.length}:\n` +
        exp.samples
          .filter((s) => s.name === name)
          .map((s) => s.line)
          .join('\n'),
    );
  return (found[0] as Sample).value;
}

export interface Scraped extends Exposition {
  status: number;
  contentType: string;
}

/**
 * Scrapes `metrics` through `metricsEndpoint()` on an app of its own (no `metrics()` in front, so
 * the scrape itself is neither traffic nor in flight).
 */
export async function scrape(
  metrics: core.Metrics,
  options: { accept?: string; endpoint?: Omit<core.MetricsEndpointOptions, 'metrics'> } = {},
): Promise<Scraped> {
  const app = express();
  app.get('/metrics', core.metricsEndpoint({ metrics, settings, ...options.endpoint }));
  let req = request(app).get('/metrics');
  if (options.accept !== undefined) req = req.set('Accept', options.accept);
  const res = await req;
  if (res.status !== 200) throw new Error(`scrape answered ${res.status}: ${res.text}`);
  return {
    ...parseExposition(res.text),
    status: res.status,
    contentType: String(res.headers['content-type']),
  };
}

/** What Prometheus sends. */
export const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

/**
 * An app: `requestContext()`, `metrics()` into `metrics`, then `setup`, then `notFound()` and
 * `errors()` (logging into a captured logger) last.
 */
export function instrumentedApp(
  variant: ExpressVariant,
  metrics: core.Metrics,
  setup: (app: Express) => void,
  options: Omit<core.MetricsMiddlewareOptions, 'metrics'> = {},
): Express {
  const app = variant.express();
  app.use(core.requestContext(), core.metrics({ metrics, ...options }));
  setup(app);
  app.use(core.notFound(), core.errors({ settings, metrics, logger: captureLogger('errors').logger }));
  return app;
}

/** `express.Router({ mergeParams: true })` (test/support/express.ts types Router without options). */
export function mergingRouter(variant: ExpressVariant): Router {
  const make = variant.express.Router as (options: { mergeParams: boolean }) => Router;
  return make({ mergeParams: true });
}

/** Servers started by a suite, closed (with their connections) by `closeAll()` in afterEach. */
export class Servers {
  readonly #open = new Set<Server>();

  async listen(app: Express | Router, host = '127.0.0.1'): Promise<{ server: Server; url: string }> {
    const server = createServer(app as Express);
    this.#open.add(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, resolve);
    });
    const { port } = server.address() as AddressInfo;
    return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}` };
  }

  async closeAll(): Promise<void> {
    const closing = [...this.#open].map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => {
            resolve();
          });
        }),
    );
    this.#open.clear();
    await Promise.all(closing);
  }
}

/** Runs `count` calls of `send(i)`, `concurrency` at a time. */
export async function inBatches(
  count: number,
  concurrency: number,
  send: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await send(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

/** A promise with its resolve function, for handlers the test lets go of. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
