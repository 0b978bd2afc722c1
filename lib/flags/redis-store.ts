import { ServiceUnavailableError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { RedisClient, RedisConnection } from '../redis/index.js';
import type { StoredFlagDefinition } from './definition.js';
import { isFlagName, parseDefinition } from './definition.js';
import type { CompiledFlag } from './evaluate.js';
import { compile } from './evaluate.js';
import type { FlagStore, FlagsStatus } from './store.js';
import { compileAll } from './store.js';

export const OUTAGE_MESSAGE =
  'feature flags: redis unavailable, serving the last known flags until it returns';
export const RECOVERY_MESSAGE = 'feature flags: redis is back, flags reloaded';

/** Marks a store that was seeded (a hash field no flag name can take), so deleting every flag does not re-seed it. */
const SEEDED_FIELD = '#seeded';

// Each script touches one key, so all of them run on Redis Cluster too.
/** KEYS[1] the definitions hash; ARGV name, JSON, channel. Returns 1 when the flag is new. */
const SET_SCRIPT = `
local created = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return created
`;
/** KEYS[1] the definitions hash; ARGV name, channel. Returns 1 when there was such a flag. */
const DELETE_SCRIPT = `
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
if removed == 1 then redis.call('PUBLISH', ARGV[2], ARGV[1]) end
return removed
`;
/** KEYS[1] the definitions hash; ARGV channel, then name, JSON pairs. Writes only into an empty store. */
const SEED_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], '${SEEDED_FIELD}', '1')
redis.call('PUBLISH', ARGV[1], '*')
return 1
`;

const CONNECTION_CLOSED = { code: 'CONNECTION_CLOSED' };

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'ERROR';
}

function unavailable(cause: unknown): ServiceUnavailableError {
  return new ServiceUnavailableError('Feature flag store is unavailable', 5, {
    details: { dependency: 'redis' },
    cause,
  });
}

/**
 * Flags shared through Redis: one hash of JSON definitions and a pub/sub channel. Every
 * evaluation reads this instance's cache; a write publishes the flag's name and every instance
 * (the writer too) reloads the hash, and reloads it again on every (re)connect, so nothing
 * published during an outage is missed. While Redis is down the last known flags keep serving,
 * writes fail fast with 503, and the outage and the recovery are logged once each.
 */
export class RedisFlagStore implements FlagStore {
  readonly kind = 'redis';
  readonly #connection: RedisConnection<RedisClient>;
  readonly #subscriber: RedisClient;
  readonly #logger: Logger;
  readonly #key: string;
  readonly #channel: string;
  readonly #seed: ReadonlyMap<string, StoredFlagDefinition>;
  #seeded: boolean;
  #cache: Map<string, CompiledFlag>;
  #lastSyncAt: number | undefined;
  #down = false;
  #closed = false;
  /** Local writes so far: a load that overlapped one is not applied (it may predate it). */
  #writes = 0;
  #loadsStarted = 0;
  #loadApplied = 0;
  #loading: Promise<void> | undefined;
  #again = false;
  readonly #warned = new Set<string>();
  readonly #reload = (): void => {
    if (this.#loading !== undefined) {
      this.#again = true;
      return;
    }
    this.#loading = this.#load()
      .catch(() => undefined)
      .finally(() => {
        this.#loading = undefined;
        if (this.#again && !this.#closed) {
          this.#again = false;
          this.#reload();
        }
      });
  };
  readonly #onError = (err: unknown): void => {
    this.#outage(err);
  };
  /**
   * A connection the peer closes cleanly (a restart, a proxy hanging up) emits no 'error' until a
   * reconnect attempt fails, 200 ms or more later: the outage starts when the line drops.
   */
  readonly #onClose = (): void => {
    this.#outage(CONNECTION_CLOSED);
  };
  readonly #onMessage = (channel: string): void => {
    if (channel === this.#channel) this.#reload();
  };
  readonly #subscribe = (): void => {
    // SUBSCRIBE once the subscriber is connected (there is no offline queue), then reload: a
    // change published while it was away is in the hash.
    this.#subscriber.subscribe(this.#channel).then(this.#reload, (err: unknown) => {
      this.#outage(err);
    });
  };

  constructor(
    connection: RedisConnection<RedisClient>,
    prefix: string,
    seed: ReadonlyMap<string, StoredFlagDefinition>,
    logger: Logger,
  ) {
    this.#connection = connection;
    this.#logger = logger;
    this.#key = `${prefix}definitions`;
    this.#channel = `${prefix}changes`;
    this.#seed = seed;
    this.#seeded = seed.size === 0;
    // Until the first load, the seed is what this instance evaluates.
    this.#cache = compileAll(seed);
    this.#subscriber = connection.subscriber();
    this.#subscriber.on('message', this.#onMessage);
    this.#subscriber.on('ready', this.#subscribe);
    if (this.#subscriber.status === 'ready') this.#subscribe();
    const client = connection.client;
    client.on('error', this.#onError);
    client.on('close', this.#onClose);
    client.on('ready', this.#reload);
    if (client.status === 'ready') this.#reload();
  }

  get(name: string): CompiledFlag | undefined {
    return this.#cache.get(name);
  }

  all(): ReadonlyMap<string, CompiledFlag> {
    return this.#cache;
  }

  async set(name: string, definition: StoredFlagDefinition): Promise<boolean> {
    const created = await this.#write(SET_SCRIPT, name, JSON.stringify(definition), this.#channel);
    this.#cache.set(name, compile(name, definition));
    return created === 1;
  }

  async delete(name: string): Promise<boolean> {
    const removed = await this.#write(DELETE_SCRIPT, name, this.#channel);
    this.#cache.delete(name);
    return removed === 1;
  }

  async ready(): Promise<void> {
    if (this.#lastSyncAt !== undefined) return;
    try {
      await this.#connection.ready();
    } catch (err) {
      this.#outage(err);
      throw unavailable(err);
    }
    try {
      await this.#load();
    } catch (err) {
      throw unavailable(err);
    }
  }

  status(): FlagsStatus {
    const healthy =
      !this.#closed &&
      !this.#down &&
      this.#lastSyncAt !== undefined &&
      this.#connection.client.status === 'ready' &&
      this.#subscriber.status === 'ready';
    return {
      store: 'redis',
      healthy,
      flags: this.#cache.size,
      ...(this.#lastSyncAt === undefined ? {} : { lastSyncAt: this.#lastSyncAt }),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const client = this.#connection.client;
    client.off('ready', this.#reload);
    client.off('error', this.#onError);
    client.off('close', this.#onClose);
    this.#subscriber.off('ready', this.#subscribe);
    this.#subscriber.off('message', this.#onMessage);
    await this.#loading;
    await this.#connection.close();
  }

  /** Run a write script; 503 at once when Redis is not connected. */
  async #write(script: string, ...args: string[]): Promise<unknown> {
    const client = this.#connection.client;
    if (this.#closed || client.status !== 'ready') throw unavailable(new Error(`redis ${client.status}`));
    this.#writes++;
    try {
      return await client.eval(script, 1, this.#key, ...args);
    } catch (err) {
      this.#outage(err);
      throw unavailable(err);
    }
  }

  /** Seed an empty store (once), then read every definition and replace the cache. */
  async #load(): Promise<void> {
    const seq = ++this.#loadsStarted;
    const writes = this.#writes;
    const client = this.#connection.client;
    let raw: Record<string, string>;
    try {
      if (!this.#seeded) {
        const pairs = [...this.#seed].flatMap(([name, def]) => [name, JSON.stringify(def)]);
        await client.eval(SEED_SCRIPT, 1, this.#key, this.#channel, ...pairs);
        this.#seeded = true;
      }
      raw = await client.hgetall(this.#key);
    } catch (err) {
      this.#outage(err);
      throw err;
    }
    if (this.#closed || seq < this.#loadApplied) return;
    if (writes !== this.#writes) {
      // A local write overlapped this read: read again rather than undo it for a moment.
      this.#again = true;
      return;
    }
    this.#loadApplied = seq;
    this.#cache = this.#parse(raw);
    this.#lastSyncAt = Date.now();
    if (this.#down) {
      this.#down = false;
      this.#logger.info(RECOVERY_MESSAGE, { flags: this.#cache.size });
    }
  }

  #parse(raw: Readonly<Record<string, string>>): Map<string, CompiledFlag> {
    const out = new Map<string, CompiledFlag>();
    for (const [name, json] of Object.entries(raw)) {
      if (!isFlagName(name)) continue;
      let parsed: ReturnType<typeof parseDefinition> | undefined;
      try {
        parsed = parseDefinition(JSON.parse(json));
      } catch {
        parsed = undefined;
      }
      if (parsed?.ok === true) out.set(name, compile(name, parsed.definition));
      else if (!this.#warned.has(name)) {
        // Written by hand or by another version: the flag is off here until it is fixed.
        this.#warned.add(name);
        this.#logger.warn('feature flags: ignoring an invalid definition stored in redis', { flag: name });
      }
    }
    return out;
  }

  #outage(err: unknown): void {
    if (this.#down || this.#closed) return;
    this.#down = true;
    this.#logger.warn(OUTAGE_MESSAGE, { error_code: errorCode(err), flags: this.#cache.size });
  }
}
