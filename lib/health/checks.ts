/**
 * The checks `health()` runs: one probe per entry of the report (`database:connections`,
 * `redis:responseTime`, `circuitBreaker:<name>`, …). A probe reads its component and says what it
 * saw; timeouts, errors, criticality and the time stamp are the runner's business.
 */
import { performance } from 'node:perf_hooks';
import type { Database } from '../database/index.js';
import type { RedisClient, RedisConnection } from '../redis/index.js';
import type { CheckDetails, HealthCheckResult } from './report.js';
import { isStatus, roundMs } from './report.js';

/** What a probe reports; the runner adds `time`, the default `componentType`, and applies criticality. */
export type Reading = Omit<HealthCheckResult, 'time'>;

export interface Probe {
  /** The name `critical` takes: `database`, `redis`, `flags`, `circuitBreaker:<name>`, a custom check's name. */
  readonly id: string;
  /** Its key in `checks`. */
  readonly key: string;
  readonly componentType: string;
  /** Whether it makes readiness fail when `critical` is not given. */
  readonly criticalByDefault: boolean;
  run(signal: AbortSignal): Promise<Reading> | Reading;
}

/** What the database checks need: a caduceus `Database` (or anything shaped like one). */
export type HealthDatabase = Pick<Database, 'healthCheck' | 'poolStats'>;

/** A circuit breaker, as `lib/resilience` exposes it. */
export interface HealthBreaker {
  readonly name: string;
  readonly state: 'closed' | 'open' | 'half_open';
}

/** What `featureFlags().status()` answers. */
export interface FlagStoreStatus {
  store: 'memory' | 'redis';
  healthy: boolean;
  flags: number;
  /** Epoch milliseconds of the last successful sync with the store. */
  lastSyncAt?: number;
}

/** A feature-flag service, as `lib/flags` exposes it. */
export interface HealthFlags {
  status(): FlagStoreStatus | Promise<FlagStoreStatus>;
}

/** A custom check: resolve (with details, or nothing) when healthy, throw when not. */
// `void` is the contract: `async (signal) => { await ping(signal); }` is a check as it stands.
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type
export type HealthCheck = (signal: AbortSignal) => Promise<CheckDetails | void> | CheckDetails | void;

/**
 * `database:connections`: connections in use; `warn` while callers wait for one (the pool is
 * saturated). Read before the query of `database:responseTime` is sent, so that query's own
 * connection is not counted.
 */
export function poolProbe(db: HealthDatabase): Probe {
  return {
    id: 'database',
    key: 'database:connections',
    componentType: 'datastore',
    criticalByDefault: true,
    run() {
      const pool = db.poolStats();
      const reading: Reading = { observedValue: pool.used, observedUnit: 'connections', status: 'pass' };
      if (pool.pending > 0) {
        reading.status = 'warn';
        reading.output = `pool saturated: ${pool.used} of ${pool.max} in use, ${pool.pending} waiting`;
      }
      return reading;
    },
  };
}

/** `database:responseTime`: `db.healthCheck()` (a version query, bounded by its own timeout). */
export function databaseProbe(db: HealthDatabase): Probe {
  return {
    id: 'database',
    key: 'database:responseTime',
    componentType: 'datastore',
    criticalByDefault: true,
    async run() {
      const health = await db.healthCheck();
      const reading: Reading = {
        observedValue: health.latencyMs,
        observedUnit: 'ms',
        status: health.status === 'healthy' ? 'pass' : 'fail',
      };
      // HealthStatus.error is already a code or class, never a message.
      if (reading.status === 'fail') reading.output = health.error ?? 'unhealthy';
      return reading;
    },
  };
}

/** `redis:responseTime`: PING. While the client is not connected, `fail` at once (no queued PING). */
export function redisProbe(connection: RedisConnection<RedisClient>): Probe {
  return {
    id: 'redis',
    key: 'redis:responseTime',
    componentType: 'datastore',
    criticalByDefault: true,
    async run() {
      const start = performance.now();
      try {
        await connection.ready();
      } catch {
        return { status: 'fail', output: `not connected (${connection.client.status})` };
      }
      await connection.client.ping();
      return { observedValue: roundMs(performance.now() - start), observedUnit: 'ms', status: 'pass' };
    },
  };
}

/** `circuitBreaker:<name>`: closed `pass`, half-open `warn`, open `fail` (a `warn` unless critical). */
export function breakerProbe(breaker: HealthBreaker): Probe {
  const id = `circuitBreaker:${breaker.name}`;
  return {
    id,
    key: id,
    componentType: 'component',
    criticalByDefault: false,
    run() {
      const state: unknown = breaker.state;
      if (state === 'closed') return { observedValue: state, status: 'pass' };
      if (state === 'half_open') return { observedValue: state, status: 'warn', output: 'circuit half-open' };
      if (state === 'open') return { observedValue: state, status: 'fail', output: 'circuit open' };
      return { status: 'warn', output: 'unknown circuit state' };
    },
  };
}

/**
 * `featureFlags:store`: the number of flags known; `warn` while the store is unreachable (the last
 * known flags keep being served), `fail` when `status()` itself fails.
 */
export function flagsProbe(flags: HealthFlags): Probe {
  return {
    id: 'flags',
    key: 'featureFlags:store',
    componentType: 'component',
    criticalByDefault: true,
    async run() {
      const status = (await flags.status()) as Partial<FlagStoreStatus> | undefined;
      if (
        typeof status !== 'object' ||
        (status.store !== 'memory' && status.store !== 'redis') ||
        typeof status.healthy !== 'boolean'
      )
        return { status: 'fail', output: 'invalid status' };
      const reading: Reading = {
        componentId: status.store,
        observedValue: status.flags,
        observedUnit: 'flags',
        status: status.healthy ? 'pass' : 'warn',
      };
      if (!status.healthy) {
        const since =
          typeof status.lastSyncAt === 'number' && Number.isFinite(status.lastSyncAt)
            ? ` (last synced ${new Date(status.lastSyncAt).toISOString()})`
            : '';
        reading.output = `${status.store} store unreachable: serving the last known flags${since}`;
      }
      return reading;
    },
  };
}

/** A custom check: its details as returned; `pass` when it returns nothing. */
export function customProbe(name: string, check: HealthCheck): Probe {
  return {
    id: name,
    key: name,
    componentType: 'component',
    criticalByDefault: true,
    async run(signal) {
      return readDetails(await check(signal));
    },
  };
}

function readDetails(value: unknown): Reading {
  if (value === undefined || value === null) return { status: 'pass' };
  if (typeof value !== 'object') return { observedValue: value, status: 'pass' };
  const details = value as Record<string, unknown>;
  if (details.status !== undefined && !isStatus(details.status))
    return { status: 'fail', output: 'invalid check result: status must be pass, warn or fail' };
  const reading: Reading = { status: details.status ?? 'pass' };
  for (const field of ['componentId', 'componentType', 'observedUnit', 'output'] as const) {
    const v = details[field];
    if (typeof v === 'string') reading[field] = v;
  }
  if (details.observedValue !== undefined) reading.observedValue = details.observedValue;
  return reading;
}
