/**
 * Shared by the rate-limit suites (test/rate-limit/*, test/faults/redis-rate-limit): apps with the
 * error envelope last, limiters that are closed after each test, names and Redis key prefixes that
 * are unique per jest worker and test (suites run in parallel and repeat), and clean-up of the keys.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Express } from 'express';
import { Redis } from 'ioredis';
import type request from 'supertest';
import * as core from '../../lib/index';
import { deleteKeys, REDIS_HOST, REDIS_PORT, REDIS_URL, redisPrefix } from '../auth/redis-support';
import type { ExpressVariant } from '../support/express';
import { captureLogger, type CapturedLogger } from '../support/logs';
import { requireService, workerSchema } from '../support/services';

export { deleteKeys, REDIS_HOST, REDIS_PORT, REDIS_URL, redisPrefix, within } from '../auth/redis-support';

/** Settings without REDIS_URL or RATE_LIMIT_* from the environment: every test states what it uses. */
export const settings = core.loadSettings({
  NODE_ENV: 'test',
  APP_NAME: 'caduceus-test',
  LOG_LEVEL: 'ERROR',
});

const silent = core.createLogger('test', { settings, console: false });

/** A limiter name unique to this worker, process and call (the name is part of the Redis key). */
export function uniqueName(tag: string): string {
  return `${tag}-${workerSchema('w')}-${randomBytes(3).toString('hex')}`;
}

/**
 * An app: request context, `setup` (limiters and routes), then `notFound()` and `errors()` last,
 * so a 429 or 503 arrives in the envelope. `GET /` and `POST /` answer 200 `{ok:true, key}` unless
 * `setup` mounts something else there.
 */
export function appWith(
  { express }: ExpressVariant,
  setup: (app: Express) => void,
  trustProxy?: boolean | string | number,
): Express {
  const app = express();
  if (trustProxy !== undefined) app.set('trust proxy', trustProxy);
  app.use(core.requestContext());
  setup(app);
  const ok = (req: import('express').Request, res: import('express').Response) => {
    res.json({ ok: true, key: (req as { rateLimit?: { key?: string } }).rateLimit?.key ?? null });
  };
  app.get('/', ok);
  app.post('/', ok);
  app.use(core.notFound());
  app.use(core.errors({ settings, logger: silent, format: 'envelope' }));
  return app;
}

/** An app with one limiter in front of `GET /` and `POST /`. */
export function limitedApp(
  variant: ExpressVariant,
  limiter: core.RateLimiter,
  trustProxy?: boolean | string | number,
): Express {
  return appWith(variant, (app) => app.use(limiter), trustProxy);
}

/**
 * Limiters for one suite: each test's limiters are closed after it, the suite's Redis keys
 * (everything under `prefix`) deleted after the suite. `admin` is a direct client for assertions.
 */
export interface LimiterScope {
  readonly prefix: string;
  admin(): Redis;
  /** `core.rateLimit()` with the suite's prefix, quiet settings and Redis unless `options` say otherwise. */
  limiter(options?: core.RateLimitOptions): core.RateLimiter;
  /** `core.loginRateLimit()` likewise. */
  login(options?: core.RateLimitOptions): core.RateLimiter;
  /** A captured logger; its lines are the limiter's warnings and infos. */
  log(): CapturedLogger;
  /** Close a limiter at the end of the test (for ones made with `core.rateLimit()` directly). */
  track<T extends { close(): Promise<void> }>(closable: T): T;
  /** The Redis key of `key` (as in `req.rateLimit.key`) for the limiter `name`. */
  redisKey(name: string, key: string): string;
  /** Every key under the suite's prefix and `name` (SCAN). */
  keys(name?: string): Promise<string[]>;
}

export function limiterScope(tag: string): LimiterScope {
  const prefix = redisPrefix(`rl-${tag}`);
  let admin: Redis | undefined;
  const open: { close(): Promise<void> }[] = [];

  beforeAll(async () => {
    await requireService('Redis', REDIS_HOST, REDIS_PORT);
    admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((l) => l.close()));
  });
  afterAll(async () => {
    if (admin === undefined) return;
    await deleteKeys(admin, prefix);
    await admin.quit();
  });

  const track = <T extends { close(): Promise<void> }>(closable: T): T => {
    open.push(closable);
    return closable;
  };
  const base = (options: core.RateLimitOptions): core.RateLimitOptions => ({
    settings,
    logger: silent,
    prefix,
    redis: REDIS_URL,
    ...options,
  });
  return {
    prefix,
    admin() {
      if (admin === undefined) throw new Error('the suite has not connected to Redis yet');
      return admin;
    },
    limiter: (options = {}) => track(core.rateLimit(base(options))),
    login: (options = {}) => track(core.loginRateLimit(base(options))),
    log: () => captureLogger('rate-limit'),
    track,
    redisKey: (name, key) => `${prefix}${name}:${key}`,
    async keys(name) {
      const client = this.admin();
      const found: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}${name ?? ''}*`, 'COUNT', 500);
        cursor = next;
        found.push(...batch);
      } while (cursor !== '0');
      return found.sort();
    },
  };
}

/** An app served on a real loopback port, for several app instances and many parallel connections. */
export interface Listening {
  readonly url: string;
  close(): Promise<void>;
}

export async function listen(app: Express): Promise<Listening> {
  const server: Server = createServer(app);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** Status → how many responses had it. */
export function tally(responses: readonly { status: number }[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const { status } of responses) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
}

export interface Envelope {
  success: boolean;
  error: string;
  error_code: string;
  details: Record<string, unknown> & { request_id?: string };
}

/** Assert a 429 RATE_LIMITED in the envelope with a `Retry-After` of whole seconds in 1..`maxSeconds`. */
export function expectLimited(res: request.Response, maxSeconds: number): void {
  expect(res.status).toBe(429);
  const body = res.body as Envelope;
  expect(body).toMatchObject({ success: false, error_code: 'RATE_LIMITED' });
  expect(typeof body.error).toBe('string');
  expect(typeof body.details.request_id).toBe('string');
  // Which limiter refused (stacked limiters each have a name).
  expect(typeof body.details.limiter).toBe('string');
  const retryAfter = res.headers['retry-after'];
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  expect(Number(retryAfter)).toBeLessThanOrEqual(maxSeconds);
}

/** Assert a 503 SERVICE_UNAVAILABLE in the envelope naming Redis. */
export function expectUnavailable(res: request.Response): void {
  expect(res.status).toBe(503);
  expect(res.body).toMatchObject({
    success: false,
    error_code: 'SERVICE_UNAVAILABLE',
    details: { dependency: 'redis' },
  });
  expect(typeof (res.body as Envelope).details.request_id).toBe('string');
  expect(res.headers['retry-after']).toBe('5');
}

/** The draft-8 `RateLimit` header of limiter `name`: remaining and reset seconds. */
export function draft8(res: request.Response, name: string): { r: number; t: number } | undefined {
  const header = res.headers.ratelimit;
  if (header === undefined) return undefined;
  const match = new RegExp(`^"${name}"; r=(\\d+); t=(\\d+)$`).exec(header);
  if (match === null) throw new Error(`RateLimit header not in draft-8 form for "${name}": ${header}`);
  return { r: Number(match[1]), t: Number(match[2]) };
}
