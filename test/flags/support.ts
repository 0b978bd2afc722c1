/**
 * Shared by the feature-flag suites: settings, a Redis key prefix per jest worker and run, clean-up
 * of its keys, polling with a deadline, and a registry of the instances a test opened (closed
 * after each test, so no connection outlives it).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import * as core from '../../lib/index';
import { captureLogger, type CapturedLogger } from '../support/logs';
import { requireService, workerSchema } from '../support/services';

export const REDIS_HOST = '127.0.0.1';
export const REDIS_PORT = 6379;
export const REDIS_URL = `redis://${REDIS_HOST}:${REDIS_PORT}`;

export const settings = core.loadSettings({ NODE_ENV: 'test' });

/** Keys and channel of one test's flags: unique per worker, process and run. */
export function flagPrefix(tag: string): string {
  return `caduceus:test:${workerSchema()}:flags:${tag}:${randomBytes(4).toString('hex')}:`;
}

/** Probe until a condition holds, with a deadline: the auth suites' helper. */
export { within } from '../auth/redis-support';

/** How many lines of `log` have `message`. */
export function count(log: CapturedLogger, message: string): number {
  return log.lines().filter((l) => l.message === message).length;
}

/**
 * A Redis scope for one suite: `requireService` first (a clear message when Redis is down), an
 * admin connection, flags made through `open()` closed after each test, keys deleted after all.
 */
export function redisScope(tag: string) {
  let admin: Redis | undefined;
  const prefixes: string[] = [];
  const opened: core.FeatureFlags[] = [];

  beforeAll(async () => {
    await requireService('Redis', REDIS_HOST, REDIS_PORT);
    admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1, lazyConnect: false });
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((f) => f.close()));
  });
  afterAll(async () => {
    const client = admin;
    if (client === undefined) return;
    for (const prefix of prefixes) {
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await client.unlink(...keys);
      } while (cursor !== '0');
    }
    await client.quit();
  });

  return {
    /** A fresh prefix, cleaned up after the suite. */
    prefix(): string {
      const prefix = flagPrefix(tag);
      prefixes.push(prefix);
      return prefix;
    },
    admin(): Redis {
      if (admin === undefined) throw new Error('redisScope: admin used before beforeAll');
      return admin;
    },
    /** `featureFlags()` on Redis with a quiet logger (or `log`), closed after the test. */
    open(options: core.FeatureFlagsOptions & { log?: CapturedLogger } = {}): core.FeatureFlags {
      const { log, ...rest } = options;
      const flags = core.featureFlags({
        store: 'redis',
        redis: REDIS_URL,
        metrics: false,
        settings,
        logger: (log ?? captureLogger('flags')).logger,
        ...rest,
      });
      opened.push(flags);
      return flags;
    },
  };
}

/** Flags in memory with a quiet logger and no metrics: for rule tests. */
export function memoryFlags(options: core.FeatureFlagsOptions = {}): core.FeatureFlags {
  return core.featureFlags({
    store: 'memory',
    metrics: false,
    settings,
    logger: captureLogger('flags').logger,
    ...options,
  });
}
