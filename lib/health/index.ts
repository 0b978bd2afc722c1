import { Router } from 'express';
import type { Request, Response } from 'express';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, positiveInteger, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger } from '../logging/index.js';
import type { Cluster, Redis, RedisClient, RedisConnection } from '../redis/index.js';
import { connectRedis } from '../redis/index.js';
import type { HealthBreaker, HealthCheck, HealthDatabase, HealthFlags, Probe } from './checks.js';
import { breakerProbe, customProbe, databaseProbe, flagsProbe, poolProbe, redisProbe } from './checks.js';
import type { HealthReport } from './report.js';
import { HealthRunner } from './runner.js';

export type { FlagStoreStatus, HealthBreaker, HealthCheck, HealthDatabase, HealthFlags } from './checks.js';
export type { CheckDetails, HealthCheckResult, HealthCheckStatus, HealthReport } from './report.js';
export type { Closable, GracefulShutdown, GracefulShutdownOptions, ShutdownServer } from './shutdown.js';
export { gracefulShutdown } from './shutdown.js';

/** Everything `health()` accepts. No check runs unless configured here. */
export interface HealthOptions {
  /** `database:connections` (pool use; `warn` while callers wait) and `database:responseTime`. Default none. */
  database?: HealthDatabase;
  /**
   * `redis:responseTime` (PING): a URL (the router opens and closes its own connection) or an
   * ioredis client (standalone or Cluster; it stays yours). Default none — `REDIS_URL` is not read.
   */
  redis?: string | Redis | Cluster;
  /** Circuit breakers (`{ name, state }`), one `circuitBreaker:<name>` entry each. Read once, here. Default none. */
  breakers?: Iterable<HealthBreaker>;
  /** The feature-flag service (`status()`): `featureFlags:store`. Default none. */
  flags?: HealthFlags;
  /**
   * Your checks, by name: resolve (optionally with {@link CheckDetails}) when healthy, throw when
   * not. Each gets an AbortSignal that aborts when its time is up. Default none.
   */
  checks?: Readonly<Record<string, HealthCheck>>;
  /**
   * Checks whose failure fails readiness (and the report): `'database'`, `'redis'`, `'flags'`,
   * `'circuitBreaker:<name>'`, custom names. A failure of any other check is reported as `warn`.
   * Default: every configured check except the circuit breakers.
   */
  critical?: readonly string[];
  /** Time each check gets; a check still running is `fail` with output `timed out`. Default 2000 ms. */
  timeoutMs?: number;
  /** Results are reused this long (concurrent probes always share one run). Default 1000 ms; 0: no reuse. */
  cacheMs?: number;
  /** Where the routes go: `<path>`, `<path>/live`, `<path>/ready`. Default `'/health'`. */
  path?: string;
  /** Where check failures and recoveries are logged (once per change). Default `createLogger('health')`. */
  logger?: Logger;
  /** `APP_NAME` (serviceId) and `APP_VERSION` (version). Default `loadSettings(process.env)`. */
  settings?: Settings;
}

/** The router `health()` returns, with the readiness switch `gracefulShutdown()` pulls. */
export interface HealthRouter extends Router {
  /**
   * Run the checks (or reuse a fresh result) and return the report `GET <path>` serves. (Not
   * `report()`: Express routers have a method of that name, for the HTTP REPORT verb.)
   */
  check(): Promise<HealthReport>;
  /** Readiness fails from now on (`gracefulShutdown()` calls this when a signal arrives). */
  markShuttingDown(): void;
  readonly shuttingDown: boolean;
  /** Abort running checks and close the Redis connection the router opened (a client passed in stays open). */
  close(): Promise<void>;
}

const KNOWN = [
  'database',
  'redis',
  'breakers',
  'flags',
  'checks',
  'critical',
  'timeoutMs',
  'cacheMs',
  'path',
  'logger',
  'settings',
] as const satisfies readonly (keyof HealthOptions)[];

const CONTENT_TYPE = 'application/health+json; charset=utf-8';
const LIVE_BODY = JSON.stringify({ status: 'pass' });
const SHUTTING_DOWN = 'shutting down';
const SHUTTING_DOWN_BODY = JSON.stringify({ status: 'fail', output: SHUTTING_DOWN });
const CHECK_NAME = /^[A-Za-z0-9_.:/-]{1,64}$/;
const PATH = /^(\/[A-Za-z0-9._~-]+)+$/;

/**
 * Health endpoints in `application/health+json` (draft-inadarei-api-health-check):
 * `GET /health/live` (the process answers; touches nothing), `GET /health/ready` (every critical
 * check passes and the service is not shutting down) and `GET /health` (the full report). 200 for
 * `pass` and `warn`, 503 for `fail`.
 *
 * @example
 * const health = core.health({ database: db, redis: process.env.REDIS_URL, breakers: [labs], flags });
 * app.use(health);                                   // before rateLimit() and authenticate()
 * core.gracefulShutdown(app.listen(3000), { health, resources: [flags, db] });
 */
export function health(input: Readonly<HealthOptions> = {}): HealthRouter {
  const options = readOptions<HealthOptions>('health', input, KNOWN);
  const settings = options.settings ?? loadSettings(process.env);
  const logger = options.logger ?? createLogger('health', { settings });
  const timeoutMs = positiveInteger('health', 'timeoutMs', options.timeoutMs ?? 2000);
  const cacheMs = options.cacheMs ?? 1000;
  if (!Number.isInteger(cacheMs) || cacheMs < 0)
    throw ConfigError.option('health', 'cacheMs', 'a non-negative integer (milliseconds)', cacheMs);
  const base = readPath(options.path ?? '/health');

  const connection: RedisConnection<RedisClient> | undefined =
    options.redis === undefined ? undefined : connectRedis(options.redis, 'health', logger);
  let probes: Probe[];
  let critical: Set<string>;
  try {
    probes = readProbes(options, connection);
    critical = readCritical(options.critical, probes);
  } catch (err) {
    void connection?.close();
    throw err;
  }
  const runner = new HealthRunner({
    probes,
    critical,
    timeoutMs,
    cacheMs,
    meta: {
      version: settings.appVersion,
      serviceId: settings.appName,
      description: `health of ${settings.appName}`,
    },
    logger,
  });
  let shuttingDown = false;

  const router = Router() as unknown as HealthRouter;
  router.get(`${base}/live`, function healthLive(_req: Request, res: Response) {
    send(res, 200, LIVE_BODY);
  });
  router.get(`${base}/ready`, function healthReady(_req: Request, res: Response) {
    if (shuttingDown) {
      send(res, 503, SHUTTING_DOWN_BODY);
      return;
    }
    void runner.snapshot().then((s) => {
      if (shuttingDown) send(res, 503, SHUTTING_DOWN_BODY);
      else send(res, s.ready ? 200 : 503, s.readyBody);
    });
  });
  router.get(base === '' ? '/' : base, function healthReport(_req: Request, res: Response) {
    void runner.snapshot().then((s) => {
      if (shuttingDown)
        send(res, 503, JSON.stringify({ ...s.report, status: 'fail', output: SHUTTING_DOWN }));
      else send(res, s.report.status === 'fail' ? 503 : 200, s.body);
    });
  });
  router.check = async () => {
    const { report } = await runner.snapshot();
    return shuttingDown ? { ...report, status: 'fail', output: SHUTTING_DOWN } : report;
  };
  router.markShuttingDown = () => {
    if (!shuttingDown) logger.info('readiness: failing from now on (shutting down)');
    shuttingDown = true;
  };
  Object.defineProperty(router, 'shuttingDown', { get: () => shuttingDown, enumerable: true });
  router.close = async () => {
    runner.abort();
    await connection?.close();
  };
  return router;
}

/** Health answers are never cached by a proxy or browser. */
function send(res: Response, status: number, body: string): void {
  if (res.headersSent) return;
  res.statusCode = status;
  res.setHeader('Content-Type', CONTENT_TYPE);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

function readPath(value: unknown): string {
  if (value === '/') return '';
  if (typeof value !== 'string' || !PATH.test(value))
    throw ConfigError.option(
      'health',
      'path',
      "a path such as '/health' (segments of A–Z a–z 0–9 . _ ~ -, no trailing slash)",
      value,
    );
  return value;
}

function readProbes(
  options: Partial<HealthOptions>,
  redis: RedisConnection<RedisClient> | undefined,
): Probe[] {
  const probes: Probe[] = [];
  const { database, flags, checks } = options;
  if (database !== undefined) {
    if (
      typeof database !== 'object' ||
      typeof (database as Partial<HealthDatabase>).healthCheck !== 'function' ||
      typeof (database as Partial<HealthDatabase>).poolStats !== 'function'
    )
      throw ConfigError.option('health', 'database', 'a Database from createDatabase()', database);
    probes.push(poolProbe(database), databaseProbe(database));
  }
  if (redis !== undefined) probes.push(redisProbe(redis));
  if (options.breakers !== undefined) probes.push(...readBreakers(options.breakers));
  if (flags !== undefined) {
    if (typeof flags !== 'object' || typeof (flags as Partial<HealthFlags>).status !== 'function')
      throw ConfigError.option('health', 'flags', 'a feature-flag service with status()', flags);
    probes.push(flagsProbe(flags));
  }
  if (checks !== undefined) {
    if (typeof checks !== 'object' || Array.isArray(checks) || (checks as unknown) === null)
      throw ConfigError.option('health', 'checks', 'an object of name → async check function', checks);
    const taken = new Set(probes.flatMap((p) => [p.id, p.key]));
    for (const [name, check] of Object.entries(checks)) {
      if (!CHECK_NAME.test(name))
        throw ConfigError.option(
          'health',
          'checks',
          'names of 1–64 characters of A–Z a–z 0–9 _ . : / -',
          name,
        );
      if (taken.has(name))
        throw ConfigError.option('health', `checks.${name}`, 'a name no built-in check uses', name);
      if (typeof check !== 'function')
        throw ConfigError.option('health', `checks.${name}`, 'a function (signal) => Promise', check);
      probes.push(customProbe(name, check));
    }
  }
  return probes;
}

function readBreakers(value: unknown): Probe[] {
  if (typeof value !== 'object' || value === null || !(Symbol.iterator in value))
    throw ConfigError.option(
      'health',
      'breakers',
      'an iterable of circuit breakers ({ name, state })',
      value,
    );
  const probes: Probe[] = [];
  const names = new Set<string>();
  let index = 0;
  for (const breaker of value as Iterable<unknown>) {
    const name = (breaker as Partial<HealthBreaker> | null)?.name;
    if (typeof name !== 'string' || !CHECK_NAME.test(name) || !('state' in (breaker as object)))
      throw ConfigError.option(
        'health',
        `breakers[${index}]`,
        'a circuit breaker ({ name, state }; for a Map, pass map.values())',
        breaker,
      );
    if (names.has(name))
      throw ConfigError.option('health', `breakers[${index}]`, 'a breaker with a name of its own', name);
    names.add(name);
    probes.push(breakerProbe(breaker as HealthBreaker));
    index++;
  }
  return probes;
}

/** The ids of the critical probes; `critical` may name a probe by id or by its report key. */
function readCritical(value: unknown, probes: readonly Probe[]): Set<string> {
  if (value === undefined) return new Set(probes.filter((p) => p.criticalByDefault).map((p) => p.id));
  const ids = new Map<string, string>();
  for (const p of probes) ids.set(p.id, p.id).set(p.key, p.id);
  const known = [...new Set(probes.map((p) => p.id))];
  if (!Array.isArray(value))
    throw ConfigError.option('health', 'critical', `an array of check names (${known.join(', ')})`, value);
  return new Set(
    value.map((name: unknown, i) => {
      const id = typeof name === 'string' ? ids.get(name) : undefined;
      if (id !== undefined) return id;
      const expected = `the name of a configured check (${known.join(', ') || 'none configured'})`;
      // Check names are not secrets: show the one that matched nothing.
      if (typeof name !== 'string' || !CHECK_NAME.test(name))
        throw ConfigError.option('health', `critical[${i}]`, expected, name);
      throw new ConfigError(`health: critical[${i}] must be ${expected}, got "${name}"`, [
        { name: `critical[${i}]`, expected, received: `"${name}"` },
      ]);
    }),
  );
}
