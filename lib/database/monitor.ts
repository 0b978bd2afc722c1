import type { Knex } from 'knex';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../logging/create-logger.js';

interface QueryData {
  __knexQueryUid?: string;
  sql?: string;
  method?: string;
}

/** The `operation` label of a query: a handful of values, whatever the SQL. */
export function operationOf(q: QueryData): string {
  switch (q.method) {
    case 'select':
    case 'first':
    case 'pluck':
      return 'select';
    case 'insert':
      return 'insert';
    case 'update':
    case 'counter':
      return 'update';
    case 'del':
      return 'delete';
    default: {
      const verb = /^\s*(\w+)/.exec(q.sql ?? '')?.[1]?.toLowerCase();
      if (verb === 'select' || verb === 'with') return 'select';
      if (verb === 'insert' || verb === 'update' || verb === 'delete') return verb;
      return 'other';
    }
  }
}

/** Called when a query finishes: its duration in seconds, operation label and whether it failed. */
export type QueryObserver = (seconds: number, operation: string, failed: boolean) => void;

/**
 * Times every query (from Knex's `query` to `query-response` / `query-error`): queries slower than
 * `slowMs` (0: none) are logged at warn with their SQL text (placeholders only, never the bound
 * values) and, through the logger, the request id of the request that ran them; `observe` (the
 * metrics histogram) gets every duration.
 */
export function watchQueries(
  knex: Knex,
  logger: Logger,
  slowMs: number,
  observe: QueryObserver | undefined,
): void {
  if (slowMs <= 0 && observe === undefined) return;
  const started = new Map<string, number>();
  knex.on('query', (q: QueryData) => {
    if (q.__knexQueryUid !== undefined) started.set(q.__knexQueryUid, performance.now());
  });
  const done = (q: QueryData, failed: boolean): void => {
    if (q.__knexQueryUid === undefined) return;
    const start = started.get(q.__knexQueryUid);
    started.delete(q.__knexQueryUid);
    if (start === undefined) return;
    const ms = performance.now() - start;
    observe?.(ms / 1000, operationOf(q), failed);
    if (slowMs > 0 && ms >= slowMs)
      logger.warn('slow query', {
        duration_ms: Math.round(ms * 1000) / 1000,
        sql: q.sql,
        failed: failed ? true : undefined,
      });
  };
  knex.on('query-response', (_response: unknown, q: QueryData) => {
    done(q, false);
  });
  knex.on('query-error', (_err: unknown, q: QueryData) => {
    done(q, true);
  });
}

interface TarnPool {
  on(event: 'acquireSuccess', fn: (eventId: number, resource: object) => void): void;
  on(event: 'release', fn: (resource: object) => void): void;
  numUsed(): number;
  numFree(): number;
  numPendingAcquires(): number;
  numPendingCreates(): number;
}

export function poolOf(knex: Knex): TarnPool | undefined {
  return (knex.client as { pool?: TarnPool }).pool;
}

/**
 * Leak warning: a connection held longer than `thresholdMs` is reported once, with how long it has
 * been out. Returns a stop function (the check timer is unref'd so it never keeps the process alive).
 */
export function watchLeaks(knex: Knex, logger: Logger, thresholdMs: number): () => void {
  const pool = poolOf(knex);
  if (pool === undefined) return () => undefined;
  const held = new Map<object, number>();
  const warned = new WeakSet<object>();
  pool.on('acquireSuccess', (_id, resource) => {
    held.set(resource, performance.now());
  });
  pool.on('release', (resource) => {
    held.delete(resource);
    // Back in the pool: the next holder that keeps it too long is reported afresh.
    warned.delete(resource);
  });
  const timer = setInterval(
    () => {
      const now = performance.now();
      for (const [resource, since] of held) {
        if (now - since >= thresholdMs && !warned.has(resource)) {
          warned.add(resource);
          logger.warn('database connection held longer than expected (possible leak)', {
            held_ms: Math.round(now - since),
            threshold_ms: thresholdMs,
          });
        }
      }
    },
    Math.max(50, Math.min(thresholdMs / 2, 5000)),
  );
  timer.unref();
  return () => {
    clearInterval(timer);
  };
}
