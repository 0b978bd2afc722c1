import type { NextFunction, Request, RequestHandler, Response } from 'express';
import knexFactory from 'knex';
import type { Knex } from 'knex';
import { AsyncLocalStorage } from 'node:async_hooks';
import { performance } from 'node:perf_hooks';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, isError, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/create-logger.js';
import { createLogger } from '../logging/create-logger.js';
import type { Metrics } from '../metrics/index.js';
import { metricsFor } from '../metrics/index.js';
import type { QueryObserver } from './monitor.js';
import { poolOf, watchLeaks, watchQueries } from './monitor.js';
import type { Dialect } from './url.js';
import { connectionFor, dialectOf } from './url.js';

export type { Dialect } from './url.js';

export interface DatabaseOptions {
  /** Database URL; the scheme picks the driver (postgres, postgresql, mysql, mariadb, sqlite). Default `DATABASE_URL`. */
  url?: string;
  /** Pool bounds. Default: min 0, max `DATABASE_POOL_SIZE` + `DATABASE_MAX_OVERFLOW` (10 + 20); SQLite always 1. */
  pool?: { min?: number; max?: number };
  /** Time to open a connection. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** Time to wait for a free connection before failing with 503. Default 10000 ms. */
  acquireTimeoutMs?: number;
  /** Server-side statement timeout (PostgreSQL `statement_timeout`, MariaDB `max_statement_time`). Default 30000 ms; 0 disables. */
  statementTimeoutMs?: number;
  /** Idle connections above `min` are closed after this. Default 30000 ms. */
  idleTimeoutMs?: number;
  /** Queries at least this slow are logged at warn (SQL text, no values). Default 500 ms; 0 disables. */
  slowQueryMs?: number;
  /** A connection held this long is reported once as a possible leak. Default 30000 ms; 0 disables. */
  leakWarningMs?: number;
  /** `healthCheck()` answers unhealthy after this. Default 2000 ms. */
  healthCheckTimeoutMs?: number;
  /** Read replicas: reads outside transactions go to these in turn; writes and transactions to the primary. */
  replicas?: readonly string[];
  /**
   * Where pool gauges (`db_pool_connections{pool,state}`, `db_pool_max_connections{pool}`) and
   * query durations (`db_query_duration_seconds{pool,operation,status}`) go; `false`: nowhere.
   * Default: `getMetrics()`.
   */
  metrics?: Metrics | false;
  /** The `pool` label: this name for the primary, `<name>_replica_<n>` for replicas. Default `'primary'`. */
  name?: string;
  /** Logger for slow queries and leaks. Default `createLogger('database')`. */
  logger?: Logger;
  /** Settings for defaults. Default `loadSettings(process.env)`. */
  settings?: Settings;
  /** Extra Knex configuration merged last (migrations directory, custom type parsers, …). */
  knex?: Partial<Knex.Config>;
}

export interface PoolStats {
  /** Configured persistent size (the seed's pool_size). */
  size: number;
  /** Configured overflow above it (the seed's max_overflow). */
  maxOverflow: number;
  /** Upper bound of open connections. */
  max: number;
  /** Connections checked out now. */
  used: number;
  /** Open, idle connections. */
  free: number;
  /** Callers waiting for a connection. */
  pending: number;
  /** Connections being opened. */
  pendingCreates: number;
}

export interface HealthStatus {
  status: 'healthy' | 'unhealthy';
  dialect: Dialect;
  latencyMs: number;
  version?: string;
  /** Error code or class when unhealthy; never a message that could carry a password. */
  error?: string;
  replicas?: HealthStatus[];
}

export interface Database {
  /** The primary's Knex instance. */
  readonly knex: Knex;
  /** Where reads go: the active transaction, else the next replica, else the primary. */
  readonly reader: Knex;
  readonly dialect: Dialect;
  /** The active transaction of this async context (see `transaction`), else the primary. */
  current(): Knex;
  /** Run `fn` in a transaction: commit when it resolves, roll back when it throws. Nested calls use savepoints. */
  transaction<T>(fn: (trx: Knex.Transaction) => Promise<T>): Promise<T>;
  /** Middleware: the rest of the request runs in one transaction, committed before the response is sent (rolled back on 4xx/5xx). */
  withRequestTransaction(): RequestHandler;
  healthCheck(): Promise<HealthStatus>;
  poolStats(): PoolStats;
  /** Drains and closes every pool. Idempotent. */
  close(): Promise<void>;
}

const KNOWN = [
  'url',
  'pool',
  'connectTimeoutMs',
  'acquireTimeoutMs',
  'statementTimeoutMs',
  'idleTimeoutMs',
  'slowQueryMs',
  'leakWarningMs',
  'healthCheckTimeoutMs',
  'replicas',
  'metrics',
  'name',
  'logger',
  'settings',
  'knex',
] as const;

function isSettings(value: unknown): value is Settings {
  return (
    typeof value === 'object' &&
    value !== null &&
    'database' in value &&
    'auth' in value &&
    'monitoring' in value
  );
}

function nonNegativeInt(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0)
    throw ConfigError.option('createDatabase', name, 'a non-negative integer (milliseconds)', value);
  return value;
}

const QUERY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const VERSION_SQL: Record<Dialect, string> = {
  postgres: 'select version() as v',
  mysql: 'select version() as v',
  sqlite: 'select sqlite_version() as v',
};

function errorCode(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const { code, name } = err as { code?: unknown; name?: unknown };
    if (typeof code === 'string') return code;
    if (typeof name === 'string') return name;
  }
  return 'Error';
}

function firstRow(result: unknown, dialect: Dialect): Record<string, unknown> | undefined {
  if (dialect === 'postgres') return (result as { rows: Record<string, unknown>[] }).rows[0];
  if (dialect === 'mysql') return (result as Record<string, unknown>[][])[0]?.[0];
  return (result as Record<string, unknown>[])[0];
}

/**
 * A Knex pool with the defaults production needs: timeouts, error handling that survives a
 * database restart, slow-query and leak warnings, health and pool statistics, transactions that
 * nest, optional read replicas.
 *
 * @example
 * const db = core.createDatabase();                       // DATABASE_URL, pool from the seed settings
 * const db2 = core.createDatabase({ url: 'sqlite::memory:' });
 * await db.transaction(async (trx) => { await trx('patients').insert(row); });
 */
export function createDatabase(input: Readonly<DatabaseOptions> | Settings = {}): Database {
  // `createDatabase(settings)` is shorthand for `createDatabase({ settings })`, as in the seed.
  const given = isSettings(input) ? { settings: input } : input;
  const options = readOptions<DatabaseOptions>('createDatabase', given, KNOWN);
  const settings = options.settings ?? loadSettings(process.env);
  const url = options.url ?? settings.database.url;
  if (url === undefined)
    throw ConfigError.option('createDatabase', 'url', 'a database URL (or DATABASE_URL)', url);
  const dialect = dialectOf(url);
  const timeouts = {
    connectTimeoutMs: nonNegativeInt('connectTimeoutMs', options.connectTimeoutMs, 5000),
    statementTimeoutMs: nonNegativeInt('statementTimeoutMs', options.statementTimeoutMs, 30_000),
  };
  const acquireTimeoutMs = nonNegativeInt('acquireTimeoutMs', options.acquireTimeoutMs, 10_000);
  const idleTimeoutMs = nonNegativeInt('idleTimeoutMs', options.idleTimeoutMs, 30_000);
  const slowQueryMs = nonNegativeInt('slowQueryMs', options.slowQueryMs, 500);
  const leakWarningMs = nonNegativeInt('leakWarningMs', options.leakWarningMs, 30_000);
  const healthTimeoutMs = nonNegativeInt('healthCheckTimeoutMs', options.healthCheckTimeoutMs, 2000);
  const size = settings.database.poolSize;
  const maxOverflow = settings.database.maxOverflow;
  const sqlite = dialect === 'sqlite';
  const max = sqlite ? 1 : (options.pool?.max ?? size + maxOverflow);
  const min = sqlite ? 1 : (options.pool?.min ?? 0);
  if (!Number.isInteger(max) || max < 1)
    throw ConfigError.option('createDatabase', 'pool.max', 'a positive integer', max);
  if (!Number.isInteger(min) || min < 0 || min > max)
    throw ConfigError.option('createDatabase', 'pool.min', `an integer from 0 to pool.max (${max})`, min);
  const replicas = options.replicas ?? [];
  if (!Array.isArray(replicas) || replicas.some((r) => typeof r !== 'string'))
    throw ConfigError.option('createDatabase', 'replicas', 'an array of URLs', replicas);
  const logger = options.logger ?? createLogger('database', { settings });
  const name = options.name ?? 'primary';
  if (typeof name !== 'string' || !/^[\w.-]{1,64}$/.test(name))
    throw ConfigError.option('createDatabase', 'name', 'a name of letters, digits, _ . - (1–64)', name);
  const poolName = (index: number): string =>
    index === 0 ? name : name === 'primary' ? `replica_${index}` : `${name}_replica_${index}`;
  const target = metricsFor('createDatabase', options.metrics, settings);
  const queryHistogram = target?.histogram(
    'db_query_duration_seconds',
    'Database query durations, by pool, operation and outcome.',
    ['pool', 'operation', 'status'],
    QUERY_BUCKETS,
  );
  const observerFor = (index: number): QueryObserver | undefined => {
    if (queryHistogram === undefined) return undefined;
    const pool = poolName(index);
    return (seconds, operation, failed) => {
      queryHistogram.observe({ pool, operation, status: failed ? 'error' : 'ok' }, seconds);
    };
  };

  const build = (address: string, index: number): Knex => {
    const { client, connection } = connectionFor(address, timeouts);
    const afterCreate = (conn: unknown, done: (err: Error | null, conn: unknown) => void): void => {
      if (sqlite) {
        const db = conn as { pragma(sql: string): unknown };
        db.pragma('foreign_keys = ON');
        db.pragma(`busy_timeout = ${timeouts.connectTimeoutMs}`);
        done(null, conn);
        return;
      }
      if (dialect === 'mysql' && timeouts.statementTimeoutMs > 0) {
        // MariaDB: max_statement_time (seconds); MySQL: max_execution_time (ms, SELECT only).
        const c = conn as { query(sql: string, cb: (err: Error | null) => void): void };
        c.query(`SET SESSION max_statement_time = ${timeouts.statementTimeoutMs / 1000}`, (err) => {
          if (err === null) {
            done(null, conn);
            return;
          }
          c.query(`SET SESSION max_execution_time = ${timeouts.statementTimeoutMs}`, () => {
            done(null, conn);
          });
        });
        return;
      }
      done(null, conn);
    };
    const config: Knex.Config = {
      client,
      connection,
      // Knex's own warnings go through our logger (JSON, redacted, with the request id), not console.
      log: {
        warn: (message: unknown) => logger.warn(String(message), { source: 'knex' }),
        error: (message: unknown) => logger.error(String(message), { source: 'knex' }),
        deprecate: (method: unknown, alternative: unknown) =>
          logger.warn(`knex: ${String(method)} is deprecated, use ${String(alternative)}`, {
            source: 'knex',
          }),
        debug: (message: unknown) =>
          logger.debug(typeof message === 'string' ? message : JSON.stringify(message), { source: 'knex' }),
      },
      useNullAsDefault: sqlite,
      acquireConnectionTimeout: acquireTimeoutMs,
      pool: {
        min,
        max,
        acquireTimeoutMillis: acquireTimeoutMs,
        createTimeoutMillis: timeouts.connectTimeoutMs,
        idleTimeoutMillis: idleTimeoutMs,
        reapIntervalMillis: 1000,
        // A failed connect fails the waiting query at once (fast 503) instead of after acquireTimeoutMs.
        propagateCreateError: true,
        afterCreate,
      },
      ...options.knex,
    };
    const k = knexFactory(config);
    watchQueries(k, logger, slowQueryMs, observerFor(index));
    // DATABASE_ECHO: every statement at debug level — the SQL text only; Knex's own debug mode would
    // print the bound values, which are patient data.
    if (settings.database.echo) {
      k.on('query', (q: { sql?: string }) => {
        logger.debug('query', { sql: q.sql });
      });
    }
    return k;
  };

  const primary = build(url, 0);
  const replicaKnex = replicas.map((r: string, i) => build(r, i + 1));
  const unregister =
    target === undefined
      ? []
      : [
          target.pull(
            {
              name: 'db_pool_connections',
              help: 'Database pool connections by state: used, free, pending (waiting callers), pending_creates.',
              type: 'gauge',
              labelNames: ['pool', 'state'],
            },
            (emit) => {
              [primary, ...replicaKnex].forEach((k, i) => {
                const pool = poolOf(k);
                if (pool === undefined) return;
                const label = poolName(i);
                emit([label, 'used'], pool.numUsed());
                emit([label, 'free'], pool.numFree());
                emit([label, 'pending'], pool.numPendingAcquires());
                emit([label, 'pending_creates'], pool.numPendingCreates());
              });
            },
          ),
          target.pull(
            {
              name: 'db_pool_max_connections',
              help: 'Upper bound of open connections of each database pool.',
              type: 'gauge',
              labelNames: ['pool'],
            },
            (emit) => {
              for (let i = 0; i <= replicaKnex.length; i++) emit([poolName(i)], max);
            },
          ),
        ];
  const stopLeaks =
    leakWarningMs > 0 ? [primary, ...replicaKnex].map((k) => watchLeaks(k, logger, leakWarningMs)) : [];
  const txStore = new AsyncLocalStorage<Knex.Transaction>();
  let nextReplica = 0;
  let version: string | undefined;
  let closing: Promise<void> | undefined;

  const check = async (k: Knex): Promise<HealthStatus> => {
    const start = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const query = k.raw(VERSION_SQL[dialect]).then((r: unknown) => firstRow(r, dialect));
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(Object.assign(new Error('health check timed out'), { code: 'HEALTH_CHECK_TIMEOUT' }));
        }, healthTimeoutMs);
      });
      const row = await Promise.race([query, timeout]);
      const v = row?.v;
      if (typeof v === 'string' && k === primary) version = v;
      return {
        status: 'healthy',
        dialect,
        latencyMs: Math.round((performance.now() - start) * 100) / 100,
        version: typeof v === 'string' ? v : version,
      };
    } catch (err) {
      return {
        status: 'unhealthy',
        dialect,
        latencyMs: Math.round((performance.now() - start) * 100) / 100,
        error: errorCode(err),
      };
    } finally {
      clearTimeout(timer);
    }
  };

  const db: Database = {
    knex: primary,
    dialect,
    get reader(): Knex {
      const trx = txStore.getStore();
      if (trx !== undefined) return trx;
      if (replicaKnex.length === 0) return primary;
      nextReplica = (nextReplica + 1) % replicaKnex.length;
      return replicaKnex[nextReplica] as Knex;
    },
    current: () => txStore.getStore() ?? primary,
    transaction<T>(fn: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
      if (typeof fn !== 'function') throw ConfigError.option('transaction', 'fn', 'a function', fn);
      const outer = txStore.getStore();
      const run = (trx: Knex.Transaction): Promise<T> => txStore.run(trx, () => fn(trx));
      // Inside another transaction, Knex opens a savepoint.
      return outer === undefined ? primary.transaction(run) : outer.transaction(run);
    },
    withRequestTransaction: () => requestTransaction(db, txStore),
    async healthCheck(): Promise<HealthStatus> {
      const [main, ...others] = await Promise.all([check(primary), ...replicaKnex.map(check)]);
      const result = main;
      if (others.length > 0) {
        result.replicas = others;
      }
      return result;
    },
    poolStats(): PoolStats {
      const pool = poolOf(primary);
      return {
        // An explicit pool.max replaces the seed's pool_size + max_overflow split.
        size: sqlite ? 1 : options.pool?.max === undefined ? size : max,
        maxOverflow: sqlite || options.pool?.max !== undefined ? 0 : maxOverflow,
        max,
        used: pool?.numUsed() ?? 0,
        free: pool?.numFree() ?? 0,
        pending: pool?.numPendingAcquires() ?? 0,
        pendingCreates: pool?.numPendingCreates() ?? 0,
      };
    },
    close(): Promise<void> {
      closing ??= (async () => {
        for (const stop of stopLeaks) stop();
        for (const remove of unregister) remove();
        await Promise.all([primary.destroy(), ...replicaKnex.map((k) => k.destroy())]);
      })();
      return closing;
    },
  };
  return db;
}

/** Rejection that tells Knex to roll the request's transaction back (not a failure). */
const ROLLBACK = new Error('caduceus: request transaction rolled back');

/**
 * The rest of the request runs inside one transaction. The response is held at `res.end` until
 * the transaction is committed (2xx/3xx) or rolled back (4xx/5xx); a failed commit becomes an error
 * response instead of a false success. A client that goes away rolls the transaction back.
 */
function requestTransaction(db: Database, txStore: AsyncLocalStorage<Knex.Transaction>): RequestHandler {
  return function requestTransactionMiddleware(req: Request, res: Response, next: NextFunction): void {
    const originalEnd = res.end.bind(res) as (...args: unknown[]) => Response;
    let finish: ((commit: boolean) => void) | undefined;
    let endArgs: unknown[] | undefined;
    let rollingBack = false;
    // Listen before a connection is even acquired: a client gone while waiting must not be committed.
    let gone = false;
    res.once('close', () => {
      gone = true;
      finish?.(false);
    });
    db.knex
      .transaction(
        (trx) =>
          new Promise<void>((resolve, reject) => {
            finish = (commit) => {
              finish = undefined;
              if (commit) resolve();
              else {
                rollingBack = true;
                reject(ROLLBACK);
              }
            };
            if (gone || res.destroyed) {
              finish(false);
              return;
            }
            res.end = function heldEnd(this: Response, ...args: unknown[]): Response {
              endArgs = args;
              finish?.(res.statusCode < 400 && !gone);
              return res;
            } as Response['end'];
            txStore.run(trx, next);
          }),
      )
      .then(
        () => {
          res.end = originalEnd as Response['end'];
          if (endArgs !== undefined) originalEnd(...endArgs);
        },
        (err: unknown) => {
          res.end = originalEnd as Response['end'];
          // A rollback asked for — even one whose ROLLBACK failed because the connection died, which
          // discards the transaction all the same — sends the response the handler already made.
          if (err === ROLLBACK || rollingBack) {
            if (endArgs !== undefined && !res.destroyed) originalEnd(...endArgs);
            return;
          }
          // The commit (or BEGIN) failed: nothing was sent yet, so report it properly. Only the
          // handler's content headers go; the request id, CORS and security headers stay.
          if (res.destroyed) return;
          if (res.headersSent) {
            // The handler streamed part of a success that was then rolled back: end the connection
            // so the client sees a failure, not a truncated 200.
            res.destroy(isError(err) ? err : undefined);
            return;
          }
          for (const name of CONTENT_HEADERS) res.removeHeader(name);
          next(err);
        },
      );
  };
}

const CONTENT_HEADERS = [
  'content-type',
  'content-length',
  'content-encoding',
  'etag',
  'last-modified',
  'location',
];

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by `core.database(db)`. */
    db?: Database;
  }
}

/** Middleware that puts `db` on `req.db` (the seed's `Depends(get_db)`). */
export function database(db: Database): RequestHandler {
  if (typeof db !== 'object' || typeof (db as Partial<Database>).transaction !== 'function') {
    throw ConfigError.option('database', 'db', 'a Database from createDatabase()', db);
  }
  return function databaseMiddleware(req: Request, _res: Response, next: NextFunction): void {
    req.db = db;
    next();
  };
}
