/**
 * Shared by the security() suites: quiet settings (no REDIS_URL or SECURITY_CORS_* from the
 * environment), an app with the request context first and the error envelope last, the corpus
 * sender, ConfigError capture and the Redis helpers (key prefixes unique per worker and run,
 * clean-up of the ban keys).
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { Express, NextFunction, Request, RequestHandler, Response } from 'express';
import type { Redis } from 'ioredis';
import request from 'supertest';
import * as core from '../../lib/index';
import { deleteKeys, within } from '../auth/redis-support';
import type { ExpressVariant } from '../support/express';
import { workerSchema } from '../support/services';
import type { CorpusRequest } from './corpus';

export { REDIS_HOST, REDIS_PORT, REDIS_URL, within } from '../auth/redis-support';

/** Settings that state everything: no Redis, CORS origins from the test, errors-only logs. */
export const settings = core.loadSettings({
  NODE_ENV: 'test',
  APP_NAME: 'caduceus-test',
  LOG_LEVEL: 'ERROR',
  SECURITY_CORS_ORIGINS: 'https://app.example.com',
  SECURITY_CORS_ALLOW_CREDENTIALS: 'false',
});

export const silent = core.createLogger('test', { settings, console: false });

/** `core.security()` with the quiet settings and logger and no CORS, unless `options` say otherwise. */
export function secure(options: core.SecurityOptions = {}): core.SecurityMiddleware {
  return core.security({ settings, logger: silent, cors: false, ...options });
}

export interface AppSetup {
  /** `app.set('trust proxy', true)`: the test names the client with X-Forwarded-For. */
  trustProxy?: boolean;
  /** `app.set('query parser', …)`. */
  queryParser?: 'simple' | 'extended';
  /** Middleware mounted before security() (after the request context). */
  before?: (app: Express) => void;
  /** Routes mounted after security(), before the catch-all. */
  routes?: (app: Express) => void;
  /**
   * The handler every unmatched request reaches: `'route'` an `app.all` catch-all (Express 4 `*`,
   * Express 5 `/{*rest}`), `'use'` a terminal `app.use` (no path parameter to decode), `false`
   * none (unmatched requests get notFound()'s 404). Default `'route'`.
   */
  catchAll?: 'route' | 'use' | false;
}

/** What the catch-all answers: what the route saw after security(). */
export interface Echo {
  ok: boolean;
  method: string;
  path: string;
  query: unknown;
  query_again: unknown;
  polluted: unknown;
  body: unknown;
  ip: string | null;
  /** How many request headers arrived. */
  headers: number;
}

function echo(req: Request, res: Response): void {
  const first: unknown = req.query;
  const again: unknown = req.query;
  const body: Echo = {
    ok: true,
    method: req.method,
    path: req.path,
    query: first,
    query_again: again,
    polluted: (req as Request & { queryPolluted?: unknown }).queryPolluted ?? null,
    body: (req.body as unknown) ?? null,
    ip: req.ip ?? null,
    headers: req.rawHeaders.length / 2,
  };
  res.json(body);
}

/** The catch-all path of an Express major (Express 5's path-to-regexp has no bare `*`). */
export function catchAllPath(variant: ExpressVariant): string {
  return variant.major === 5 ? '/{*rest}' : '*';
}

/** An app: requestContext(), `before`, security, `routes`, the catch-all, notFound(), errors(). */
export function secureApp(
  variant: ExpressVariant,
  middleware: RequestHandler,
  setup: AppSetup = {},
): Express {
  const app = variant.express();
  if (setup.trustProxy === true) app.set('trust proxy', true);
  if (setup.queryParser !== undefined) app.set('query parser', setup.queryParser);
  app.use(core.requestContext());
  setup.before?.(app);
  app.use(middleware);
  setup.routes?.(app);
  const catchAll = setup.catchAll ?? 'route';
  if (catchAll === 'route') app.all(catchAllPath(variant), echo);
  else if (catchAll === 'use')
    app.use((req: Request, res: Response, _next: NextFunction) => {
      echo(req, res);
    });
  app.use(core.notFound(), core.errors({ settings, logger: silent, format: 'envelope' }));
  return app;
}

/** A listening server for many requests (supertest would open one per request otherwise). */
export async function listen(app: Express): Promise<Server> {
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => {
      resolve(server);
    });
  });
}

export async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
}

type Target = Express | Server;

/** Sends one corpus request as its `method`, `path` (unchanged on the wire), headers and JSON body. */
export function send(
  target: Target,
  probe: CorpusRequest,
  headers: Record<string, string> = {},
): request.Test {
  const agent = request(target);
  const verb = probe.method.toLowerCase() as 'get' | 'post' | 'put' | 'patch' | 'delete';
  let test = agent[verb](probe.path);
  for (const [name, value] of Object.entries({ ...probe.headers, ...headers })) test = test.set(name, value);
  if (probe.body !== undefined) test = test.send(probe.body as object);
  return test;
}

/** The envelope of a refusal. */
export interface Envelope {
  success: false;
  error: string;
  error_code: string;
  details: { request_id: string } & Record<string, unknown>;
}

/** The envelope `status`/`code` must carry, with the response's own request id. */
export function expectRefusal(res: request.Response, status: number, code: string): void {
  expect({ status: res.status, code: (res.body as Partial<Envelope>).error_code }).toEqual({ status, code });
  const body = res.body as Envelope;
  expect(body.success).toBe(false);
  expect(typeof body.error).toBe('string');
  expect(body.details.request_id).toBe(res.headers['x-request-id']);
}

/** The ConfigError `make` throws (fails the test when it throws nothing or something else). */
export function configError(make: () => unknown): core.ConfigError {
  let made: unknown;
  try {
    made = make();
  } catch (error) {
    expect(error).toBeInstanceOf(core.ConfigError);
    return error as core.ConfigError;
  }
  void (made as { close?: () => Promise<void> } | undefined)?.close?.();
  throw new Error('expected a ConfigError, nothing was thrown');
}

/** A SQL-injection probe in the query string (the corpus has it too): blocked in block mode. */
export const PROBE_PATH = `/api/v1/patients?name=${encodeURIComponent("x' OR '1'='1")}`;
/** An ordinary request. */
export const BENIGN_PATH = '/api/v1/patients?family=Smith';

/** Threat-ban keys and channel of one test: unique per worker, process and call; ≤ 64 characters. */
export function banPrefix(tag: string): string {
  return `sec:${workerSchema()}:${tag}:${randomBytes(4).toString('hex')}`;
}

/** The sorted set of bans under `prefix` (member: client key, score: end of the ban in epoch ms). */
export function banListKey(prefix: string): string {
  return `{${prefix}:bans}:list`;
}

/** The pub/sub channel bans and unbans go through. */
export function banChannel(prefix: string): string {
  return `${prefix}:bans`;
}

/** Delete every key of `prefix`'s bans (all share the `{prefix:bans}` hash tag). */
export async function deleteBanKeys(admin: Redis, prefix: string): Promise<number> {
  return deleteKeys(admin, `{${prefix}:bans}`);
}

/**
 * Puts `key` on the ban list in Redis directly (as an instance that banned it would), for
 * `ms`. A new instance loads the list when it connects: an instance that refuses this client
 * has connected and loaded it.
 */
export async function seedBan(admin: Redis, prefix: string, key: string, ms = 60_000): Promise<void> {
  await admin.zadd(banListKey(prefix), Date.now() + ms, key);
}

/**
 * The end of `key`'s ban in Redis, waiting up to `ms` for it: the violation that bans runs its
 * script in the background, after the response has gone. Null when it never appears.
 */
export async function bannedInRedis(
  admin: Redis,
  prefix: string,
  key: string,
  ms = 1_000,
): Promise<number | null> {
  const { value } = await within(
    ms,
    () => admin.zscore(banListKey(prefix), key),
    (score) => score !== null,
  );
  return value === null ? null : Number(value);
}

/** Waits (up to `ms`) until `app` refuses `ip`; the last status is returned for assertions. */
export async function refusedWithin(
  app: Target,
  ip: string,
  ms: number,
): Promise<{ value: number; ms: number }> {
  return within(
    ms,
    async () => (await request(app).get(BENIGN_PATH).set('X-Forwarded-For', ip)).status,
    (status) => status === 403,
  );
}

/**
 * Asserts that `app` refuses `ip` as banned, waiting up to `ms` for it: with Redis, an instance
 * bans when the script answers, in the background — a request right after the violation that
 * crossed the threshold may still pass (no request waits on Redis).
 */
export async function expectBanned(app: Target, ip: string, ms = 1_000): Promise<void> {
  expect((await refusedWithin(app, ip, ms)).value).toBe(403);
  expectRefusal(await request(app).get(BENIGN_PATH).set('X-Forwarded-For', ip), 403, 'CLIENT_BLOCKED');
}

/** Waits (up to `ms`) until `app` lets `ip` through again. */
export async function allowedWithin(
  app: Target,
  ip: string,
  ms: number,
): Promise<{ value: number; ms: number }> {
  return within(
    ms,
    async () => (await request(app).get(BENIGN_PATH).set('X-Forwarded-For', ip)).status,
    (status) => status === 200,
  );
}

/** Security log lines (`security event: …`) of one request id. */
export function eventLines(lines: Record<string, unknown>[], requestId?: string): Record<string, unknown>[] {
  return lines.filter(
    (l) =>
      typeof l.message === 'string' &&
      l.message.startsWith('security event: ') &&
      (requestId === undefined || l.request_id === requestId),
  );
}

/** `counters` with one more of each of `names` (the expected `stats()` after a decision). */
export function plus(counters: core.SecurityCounters, ...names: string[]): Record<string, number> {
  const out: Record<string, number> = { ...counters };
  for (const name of names) out[name] = (out[name] ?? 0) + 1;
  return out;
}
