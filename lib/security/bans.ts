import type { Logger } from '../logging/index.js';
import type { RedisClient, RedisConnection } from '../redis/index.js';

/** How many violations in what window ban a client, and for how long. */
export interface BanPolicy {
  readonly threshold: number;
  readonly windowMs: number;
  readonly durationMs: number;
}

/** Most clients tracked at once per map: a flood of distinct addresses cannot grow memory without bound. */
const MAX_TRACKED = 100_000;

/**
 * Temporary bans. Whether a client is banned is always answered from memory (no request waits on
 * Redis); with Redis the violation counts are shared (one Lua script, so two instances cannot
 * both miss the threshold) and every instance learns of a ban through pub/sub and reloads the
 * list on every (re)connect. While Redis is down violations are counted in memory, the bans
 * already known keep being enforced, and the outage is logged once.
 */
export class Bans {
  readonly #policy: BanPolicy;
  readonly #banned = new Map<string, number>();
  readonly #violations = new Map<string, { count: number; resetAt: number }>();
  readonly #redis: RedisBans | undefined;

  constructor(
    policy: BanPolicy,
    logger: Logger,
    connection?: RedisConnection<RedisClient>,
    prefix = 'caduceus',
  ) {
    this.#policy = policy;
    this.#redis =
      connection === undefined
        ? undefined
        : new RedisBans(connection, prefix, logger, (key, until) => {
            this.#ban(key, until);
          });
  }

  /** Epoch ms the client's ban ends, or undefined when not banned. */
  bannedUntil(key: string): number | undefined {
    const until = this.#banned.get(key);
    if (until === undefined) return undefined;
    if (until > Date.now()) return until;
    this.#banned.delete(key);
    return undefined;
  }

  /** Counts a violation; resolves to the end of the ban when this one crossed the threshold. */
  async violation(key: string): Promise<number | undefined> {
    if (this.#redis?.usable() === true) {
      try {
        const until = await this.#redis.violation(key, this.#policy);
        if (until !== undefined) this.#ban(key, until);
        return until;
      } catch (err) {
        this.#redis.outage(err);
      }
    }
    return this.#local(key);
  }

  /** Lifts a ban (and forgets the violations) on this instance and, with Redis, everywhere. */
  async unban(key: string): Promise<void> {
    this.#banned.delete(key);
    this.#violations.delete(key);
    await this.#redis?.unban(key);
  }

  async close(): Promise<void> {
    await this.#redis?.close();
  }

  #local(key: string): number | undefined {
    const now = Date.now();
    let entry = this.#violations.get(key);
    if (entry === undefined || entry.resetAt <= now) {
      if (this.#violations.size >= MAX_TRACKED) this.#violations.clear();
      entry = { count: 0, resetAt: now + this.#policy.windowMs };
      this.#violations.set(key, entry);
    }
    entry.count++;
    if (entry.count < this.#policy.threshold) return undefined;
    this.#violations.delete(key);
    const until = now + this.#policy.durationMs;
    this.#ban(key, until);
    return until;
  }

  /** Records a ban; an end in the past (an unban published by another instance) lifts it. */
  #ban(key: string, until: number): void {
    if (until <= Date.now()) {
      this.#banned.delete(key);
      return;
    }
    if (this.#banned.size >= MAX_TRACKED && !this.#banned.has(key)) {
      // Drop expired bans first; if every slot is live, the oldest insertion goes.
      const now = Date.now();
      for (const [k, t] of this.#banned) if (t <= now) this.#banned.delete(k);
      if (this.#banned.size >= MAX_TRACKED) {
        const oldest = this.#banned.keys().next().value;
        if (oldest !== undefined) this.#banned.delete(oldest);
      }
    }
    this.#banned.set(key, Math.max(until, this.#banned.get(key) ?? 0));
  }
}

/**
 * Counts a violation and bans at the threshold, atomically. KEYS[1] the client's counter,
 * KEYS[2] the sorted set of bans (member client, score end of ban). Both keys share a hash tag,
 * so the script is slot-safe on Redis Cluster. Returns the end of the ban, or 0.
 */
const VIOLATION_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count < tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untilMs = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[2], untilMs, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[4] .. ' ' .. untilMs)
return untilMs
`;

class RedisBans {
  readonly #connection: RedisConnection<RedisClient>;
  readonly #logger: Logger;
  readonly #onBan: (key: string, until: number) => void;
  readonly #list: string;
  readonly #counter: string;
  readonly #channel: string;
  readonly #subscriber: RedisClient;
  #down = false;
  readonly #reload = () => {
    void this.#load();
  };

  constructor(
    connection: RedisConnection<RedisClient>,
    prefix: string,
    logger: Logger,
    onBan: (key: string, until: number) => void,
  ) {
    this.#connection = connection;
    this.#logger = logger;
    this.#onBan = onBan;
    // One hash tag for every key: the script's two keys must live in one Cluster slot.
    this.#list = `{${prefix}:bans}:list`;
    this.#counter = `{${prefix}:bans}:violations:`;
    this.#channel = `${prefix}:bans`;
    this.#subscriber = connection.subscriber();
    this.#subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.#channel) return;
      const space = message.lastIndexOf(' ');
      const until = Number(message.slice(space + 1));
      if (space > 0 && Number.isFinite(until)) this.#onBan(message.slice(0, space), until);
    });
    // SUBSCRIBE once the subscriber is connected (no offline queue: sent earlier, it is lost);
    // on every reconnect the list is reloaded too, so no ban published meanwhile is missed.
    const subscribe = () => {
      this.#subscriber.subscribe(this.#channel).then(this.#reload, (err: unknown) => {
        this.outage(err);
      });
    };
    this.#subscriber.on('ready', subscribe);
    if (this.#subscriber.status === 'ready') subscribe();
    connection.client.on('ready', this.#reload);
    if (connection.client.status === 'ready') this.#reload();
  }

  usable(): boolean {
    return this.#connection.client.status === 'ready';
  }

  async violation(key: string, policy: BanPolicy): Promise<number | undefined> {
    const until = (await this.#connection.client.eval(
      VIOLATION_SCRIPT,
      2,
      this.#counter + key,
      this.#list,
      String(policy.threshold),
      String(policy.windowMs),
      String(policy.durationMs),
      key,
      this.#channel,
    )) as number;
    if (this.#down) {
      this.#down = false;
      this.#logger.info('ban list: redis is back', { category: 'security' });
    }
    return until > 0 ? until : undefined;
  }

  async unban(key: string): Promise<void> {
    if (!this.usable()) return;
    const client = this.#connection.client;
    await client.zrem(this.#list, key);
    await client.del(this.#counter + key);
    await client.publish(this.#channel, `${key} 0`);
  }

  outage(err: unknown): void {
    if (this.#down) return;
    this.#down = true;
    const code = (err as { code?: unknown }).code;
    this.#logger.warn('ban list: redis unavailable, counting violations on this instance until it returns', {
      category: 'security',
      error_code: typeof code === 'string' ? code : 'ERROR',
    });
  }

  async close(): Promise<void> {
    this.#connection.client.off('ready', this.#reload);
    await this.#connection.close();
  }

  async #load(): Promise<void> {
    try {
      const entries = await this.#connection.client.zrangebyscore(
        this.#list,
        Date.now(),
        '+inf',
        'WITHSCORES',
        'LIMIT',
        0,
        MAX_TRACKED,
      );
      for (let i = 0; i + 1 < entries.length; i += 2)
        this.#onBan(entries[i] as string, Number(entries[i + 1]));
    } catch (err) {
      this.outage(err);
    }
  }
}
