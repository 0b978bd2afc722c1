import type { ClientRateLimitInfo, IncrementResponse, Options, Store } from 'express-rate-limit';
import { MemoryStore } from 'express-rate-limit';
import { RedisStore } from 'rate-limit-redis';
import { ServiceUnavailableError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { Cluster, RedisClient, RedisConnection } from '../redis/index.js';

/** What a limiter does while its Redis store is unreachable. */
export type FailMode = 'open' | 'closed';

/**
 * Separates a request's cost from its key: express-rate-limit hands the store only the key, so
 * the key generator appends `\0<cost>` when a request costs more than one unit.
 */
export const COST_SEPARATOR = '\u0000';

/** Counts a limiter's store reports (the metrics endpoint reads them). */
export interface StoreCounters {
  /** Requests counted in the in-memory fallback because Redis was unreachable. */
  fallback: number;
  /** Requests refused with 503 because Redis was unreachable and the limiter fails closed. */
  refused: number;
}

/** Longest a Redis command may take before the limiter treats Redis as down for this request. */
const COMMAND_TIMEOUT_MS = 1_000;
/** While Redis fails, one request a second tries it; the others go straight to the fallback. */
const PROBE_INTERVAL_MS = 1_000;

/**
 * The store behind every caduceus limiter: rate-limit-redis's `RedisStore` when Redis is
 * configured, express-rate-limit's `MemoryStore` otherwise — and the same `MemoryStore` as the
 * fallback while Redis is unreachable (fail-open), or a 503 (fail-closed).
 *
 * No request waits on a reconnect: while the client is not `ready` the store does not send at
 * all, and a command that takes longer than a second counts as an outage. The Lua scripts are
 * loaded again on every reconnect (a restarted Redis has an empty script cache, and a load that
 * failed at start-up would otherwise stay failed). The outage is logged once, the recovery once.
 */
export class LimiterStore implements Store {
  readonly localKeys: boolean;
  readonly prefix: string | undefined;
  readonly counters: StoreCounters = { fallback: 0, refused: 0 };
  readonly #memory = new MemoryStore();
  readonly #redis: RedisStore | undefined;
  readonly #connection: RedisConnection<RedisClient> | undefined;
  readonly #name: string;
  readonly #failMode: FailMode;
  readonly #logger: Logger;
  readonly #timeout: boolean;
  #options: Options | undefined;
  #down = false;
  /** After a failed command, Redis is tried again only from this time on (a silent partition must not cost every request a timeout). */
  #probeAt = 0;
  readonly #onReady = () => {
    this.#loadScripts();
  };

  constructor(
    name: string,
    connection: RedisConnection<RedisClient> | undefined,
    prefix: string,
    failMode: FailMode,
    logger: Logger,
  ) {
    this.#name = name;
    this.#connection = connection;
    this.#failMode = failMode;
    this.#logger = logger;
    this.localKeys = connection === undefined;
    this.prefix = connection === undefined ? undefined : prefix;
    if (connection !== undefined) {
      const client = connection.client;
      this.#redis = new RedisStore(
        isCluster(client)
          ? { prefix, sendCommandCluster: clusterSender(client) }
          : {
              prefix,
              sendCommand: (command: string, ...args: string[]) =>
                client.call(command, ...args) as Promise<never>,
            },
      );
      // Our own clients time out commands; an application's client may not.
      const options = isCluster(client) ? client.options.redisOptions : client.options;
      this.#timeout = options?.commandTimeout === undefined;
      client.on('ready', this.#onReady);
    } else {
      this.#timeout = false;
    }
  }

  init(options: Options): void {
    this.#options = options;
    this.#memory.init(options);
    if (this.#connection?.client.status === 'ready') this.#loadScripts();
  }

  increment(key: string): Promise<IncrementResponse> {
    const sep = key.indexOf(COST_SEPARATOR);
    const id = sep === -1 ? key : key.slice(0, sep);
    const cost = sep === -1 ? 1 : Number(key.slice(sep + 1));
    // Memory: the store's own promise, no wrapper of ours around it.
    if (this.#redis === undefined)
      return cost === 1 ? this.#memory.increment(id) : incrementBy(this.#memory, id, cost);
    return this.#incrementShared(id, cost);
  }

  async #incrementShared(id: string, cost: number): Promise<IncrementResponse> {
    const redis =
      this.#down && Date.now() < this.#probeAt
        ? undefined
        : this.#connection?.client.status === 'ready'
          ? this.#redis
          : await this.#whenConnected();
    if (redis !== undefined) {
      try {
        const result = await this.#guard(cost === 1 ? redis.increment(id) : incrementBy(redis, id, cost));
        if (this.#down) this.#recovered();
        return result;
      } catch (err) {
        this.#outage(err);
      }
    }
    return this.#fallback(id, cost);
  }

  async decrement(key: string): Promise<void> {
    const [id, cost] = splitCost(key);
    const redis = await this.#whenConnected();
    for (let i = 0; i < cost; i++) {
      if (redis === undefined) await this.#memory.decrement(id);
      else await this.#guard(redis.decrement(id));
    }
  }

  async resetKey(key: string): Promise<void> {
    const [id] = splitCost(key);
    await this.#memory.resetKey(id);
    const redis = await this.#whenConnected();
    if (redis !== undefined) await this.#guard(redis.resetKey(id));
  }

  async get(key: string): Promise<ClientRateLimitInfo | undefined> {
    const [id] = splitCost(key);
    const redis = await this.#whenConnected();
    return redis === undefined ? this.#memory.get(id) : this.#guard(redis.get(id));
  }

  shutdown(): void {
    this.#memory.shutdown();
    this.#connection?.client.off('ready', this.#onReady);
  }

  /**
   * The Redis store once connected; undefined (use memory) when Redis is not configured or is
   * down. Waits only for the very first connection at start-up (bounded by the connect timeout):
   * after that `ready()` answers at once, so no request waits on a reconnect.
   */
  async #whenConnected(): Promise<RedisStore | undefined> {
    const connection = this.#connection;
    if (this.#redis === undefined || connection === undefined) return undefined;
    try {
      await connection.ready();
      return this.#redis;
    } catch (err) {
      this.#outage(err);
      return undefined;
    }
  }

  #fallback(id: string, cost: number): Promise<IncrementResponse> {
    if (this.#failMode === 'closed') {
      this.counters.refused++;
      throw new ServiceUnavailableError('Rate limiting is unavailable', 5, {
        details: { dependency: 'redis' },
      });
    }
    this.counters.fallback++;
    return cost === 1 ? this.#memory.increment(id) : incrementBy(this.#memory, id, cost);
  }

  #outage(err: unknown): void {
    this.#probeAt = Date.now() + PROBE_INTERVAL_MS;
    if (this.#down) return;
    this.#down = true;
    const code = (err as { code?: unknown } | undefined)?.code;
    this.#logger.warn(
      this.#failMode === 'open'
        ? 'rate limiter: redis unavailable, counting in memory on this instance until it returns'
        : 'rate limiter: redis unavailable, refusing requests with 503 until it returns',
      {
        limiter: this.#name,
        error_code: typeof code === 'string' ? code : err instanceof Error ? err.name : 'NOT_CONNECTED',
      },
    );
  }

  #recovered(): void {
    this.#down = false;
    this.#logger.info('rate limiter: redis is back, counting in redis again', { limiter: this.#name });
  }

  #loadScripts(): void {
    const options = this.#options;
    if (this.#redis === undefined || options === undefined) return;
    // A failure here is an outage like any other: increments fall back until the next `ready`.
    this.#redis.init(options).catch((err: unknown) => {
      this.#outage(err);
    });
  }

  #guard<T>(promise: Promise<T>): Promise<T> {
    if (!this.#timeout) return promise;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`redis did not answer within ${COMMAND_TIMEOUT_MS} ms`));
      }, COMMAND_TIMEOUT_MS);
    });
    return Promise.race([promise, timeout]).finally(() => {
      clearTimeout(timer);
    });
  }
}

/** A key and the cost appended to it (`req.rateLimit.key` of a costed request carries it); 1 when none. */
function splitCost(key: string): [id: string, cost: number] {
  const sep = key.indexOf(COST_SEPARATOR);
  return sep === -1 ? [key, 1] : [key.slice(0, sep), Number(key.slice(sep + 1))];
}

/** A request that costs `cost` units: `cost` increments, the highest count is the answer. */
async function incrementBy(store: Store, key: string, cost: number): Promise<IncrementResponse> {
  const results = await Promise.all(
    Array.from({ length: cost }, () => Promise.resolve(store.increment(key))),
  );
  let best = results[0] as IncrementResponse;
  for (const r of results) if (r.totalHits > best.totalHits) best = r;
  return { totalHits: best.totalHits, resetTime: best.resetTime };
}

function isCluster(client: RedisClient): client is Cluster {
  return 'nodes' in client && typeof client.nodes === 'function';
}

/**
 * Cluster routing for rate-limit-redis: ioredis routes EVALSHA/DECR/DEL by their key; SCRIPT LOAD
 * has no key, so it goes to every master (a NOSCRIPT after a failover reloads everywhere).
 */
function clusterSender(cluster: Cluster) {
  return async ({ command }: { command: string[] }) => {
    const [name = '', ...args] = command;
    if (name.toUpperCase() === 'SCRIPT') {
      const shas = await Promise.all(cluster.nodes('master').map((node) => node.call(name, ...args)));
      return shas[0] as string;
    }
    return cluster.call(name, ...args) as Promise<never>;
  };
}
