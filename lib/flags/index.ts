import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger } from '../logging/index.js';
import type { Metrics } from '../metrics/index.js';
import { metricsFor } from '../metrics/index.js';
import type { Cluster, Redis, RedisClient, RedisConnection } from '../redis/index.js';
import { connectRedis } from '../redis/index.js';
import { EvaluationCounts } from './counts.js';
import type { FlagDefinition } from './definition.js';
import { readSeed } from './definition.js';
import { Flags } from './flags.js';
import { RedisFlagStore } from './redis-store.js';
import type { FlagStore } from './store.js';
import { MemoryFlagStore } from './store.js';
import type { FeatureFlags, FlagContextInput } from './types.js';

export type { FlagDefinition, FlagVariant, JsonValue, StoredFlagDefinition } from './definition.js';
export type { FlagContext, FlagEvaluation, FlagReason } from './evaluate.js';
export type { FlagsStatus } from './store.js';
export type {
  AdminRouterOptions,
  FeatureFlags,
  FlagContextInput,
  FlagResolution,
  FlagsProvider,
  OpenFeatureContext,
  RequestFlags,
} from './types.js';

/** Everything `featureFlags()` accepts. Each default is stated; settings come from the environment. */
export interface FeatureFlagsOptions {
  /**
   * Where flags live: `'redis'` (shared by every instance, changes reach all of them within a
   * second) or `'memory'` (this instance only). Default `'redis'` when `redis` is given or
   * `REDIS_URL` is set, else `'memory'`.
   */
  store?: 'memory' | 'redis';
  /**
   * Redis: a URL or an ioredis client (standalone or Cluster; it stays yours, `close()` leaves it
   * open); `false` for none. Default `REDIS_URL`.
   */
  redis?: string | Redis | Cluster | false;
  /** Prefix of the Redis key (`<prefix>definitions`) and channel (`<prefix>changes`). Default `'caduceus:flags:'`. */
  prefix?: string;
  /**
   * Initial definitions by name, written into the store when it is empty (a Redis store that
   * already holds flags keeps its own). Default none.
   */
  flags?: Readonly<Record<string, FlagDefinition>>;
  /** The environment flags' `environments` are matched against. Default `NODE_ENV` (settings). */
  environment?: string;
  /**
   * Where `feature_flag_evaluations_total{flag,result}` is reported (read at scrape time);
   * `false`: nowhere. Default: `getMetrics()`.
   */
  metrics?: Metrics | false;
  /** Where the store line at start-up, outages, recoveries and admin changes go. Default `createLogger('flags')`. */
  logger?: Logger;
  /** Settings to read defaults from. Default `loadSettings(process.env)`. */
  settings?: Settings;
}

const KNOWN = [
  'store',
  'redis',
  'prefix',
  'flags',
  'environment',
  'metrics',
  'logger',
  'settings',
] as const satisfies readonly (keyof FeatureFlagsOptions)[];

function readStore(value: unknown): 'memory' | 'redis' | undefined {
  if (value !== undefined && value !== 'memory' && value !== 'redis')
    throw ConfigError.option('featureFlags', 'store', "'memory' or 'redis'", value);
  return value;
}

function readText(option: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max)
    throw ConfigError.option('featureFlags', option, `a string of 1 to ${max} characters`, value);
  return value;
}

function openStore(
  options: Partial<FeatureFlagsOptions>,
  settings: Settings,
  logger: Logger,
  seed: ReturnType<typeof readSeed>,
): FlagStore {
  const target = options.redis === false ? undefined : (options.redis ?? settings.externalServices.redisUrl);
  const kind = readStore(options.store) ?? (target === undefined ? 'memory' : 'redis');
  const prefix = readText('prefix', options.prefix ?? 'caduceus:flags:', 128);
  if (kind === 'memory') {
    if (options.redis !== undefined && options.redis !== false)
      throw new ConfigError(
        "featureFlags: redis is given but store is 'memory'; drop one (store: 'redis' shares flags through it)",
        [{ name: 'store', expected: "'redis' when redis is given", received: "'memory'" }],
      );
    const line =
      'feature flags: memory store, this instance only (set REDIS_URL to share flags between instances)';
    if (settings.environment === 'production') logger.warn(line);
    else logger.info(line);
    return new MemoryFlagStore(seed);
  }
  if (target === undefined)
    throw ConfigError.option(
      'featureFlags',
      'redis',
      "a redis:// URL or an ioredis client with store 'redis' (or set REDIS_URL)",
      options.redis,
    );
  let connection: RedisConnection<RedisClient>;
  try {
    connection = connectRedis(target, 'flags', logger);
  } catch (err) {
    if (err instanceof ConfigError)
      throw ConfigError.option(
        'featureFlags',
        'redis',
        'a redis:// URL or an ioredis client (Redis or Cluster)',
        target,
      );
    throw err;
  }
  logger.info('feature flags: redis store, shared by every instance', { prefix });
  return new RedisFlagStore(connection, prefix, seed, logger);
}

/**
 * Feature flags with rules (on/off, users, roles, sticky percentage rollout, environments, start
 * and end, weighted variants), evaluated from memory on every request and shared through Redis
 * when `REDIS_URL` is set. See docs/flags.md.
 *
 * @example
 * const flags = core.featureFlags({ flags: { 'new-dashboard': { enabled: true, percentage: 10 } } });
 * app.use(core.authenticate(), flags.middleware());
 * app.get('/dashboard', (req, res) => res.json(req.flags?.isEnabled('new-dashboard') ? v2() : v1()));
 * app.use('/admin/flags', core.authenticate(), flags.adminRouter());
 */
export function featureFlags(input: Readonly<FeatureFlagsOptions> = {}): FeatureFlags {
  const options = readOptions<FeatureFlagsOptions>('featureFlags', input, KNOWN);
  const settings = options.settings ?? loadSettings(process.env);
  const environment = readText('environment', options.environment ?? settings.environment, 64);
  const seed = readSeed('featureFlags', options.flags);
  const target = metricsFor('featureFlags', options.metrics, settings);
  const logger = options.logger ?? createLogger('flags', { settings });
  const store = openStore(options, settings, logger, seed);
  const counts = target === undefined ? undefined : new EvaluationCounts();
  const stop =
    target === undefined || counts === undefined
      ? () => undefined
      : target.pull(
          {
            name: 'feature_flag_evaluations_total',
            help: 'Feature flag evaluations by flag and result (on, off or the variant).',
            type: 'counter',
            labelNames: ['flag', 'result'],
          },
          counts.read,
        );
  return new Flags(store, environment, logger, counts, stop);
}

// The process default behind `isFeatureEnabled()`, as `configureAuth()` keeps the shared Auth.
let shared: FeatureFlags | undefined;
let sharedIsOurs = false;

function isFeatureFlags(value: unknown): value is FeatureFlags {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as FeatureFlags).isEnabled === 'function' &&
    typeof (value as FeatureFlags).status === 'function'
  );
}

/**
 * Set (or replace) the flags `core.isFeatureEnabled()` uses: options for a new `featureFlags()`,
 * or one you made. A previous default that this function created is closed. Returns the new one.
 */
export function configureFlags(options: Readonly<FeatureFlagsOptions> | FeatureFlags = {}): FeatureFlags {
  const mine = !isFeatureFlags(options);
  const next = mine ? featureFlags(options) : options;
  const previous = shared;
  if (previous !== undefined && previous !== next && sharedIsOurs) previous.close().catch(() => undefined);
  shared = next;
  sharedIsOurs = mine;
  return next;
}

/** The flags `core.isFeatureEnabled()` uses: what `configureFlags()` set, else a memory store made on first use. */
export function getFeatureFlags(): FeatureFlags {
  if (shared === undefined) configureFlags({ store: 'memory' });
  return shared as FeatureFlags;
}

/**
 * Whether a flag is on — the seed's `is_feature_enabled(name, user)` — on the default flags
 * ({@link configureFlags}). `ctx`: a context or a user (`req.user`); default the request's user.
 */
export function isFeatureEnabled(name: string, ctx?: FlagContextInput): boolean {
  return getFeatureFlags().isEnabled(name, ctx);
}
