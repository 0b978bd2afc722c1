import type { Redis } from 'ioredis';
import { ServiceUnavailableError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import type { RedisConnection } from '../redis/index.js';

/**
 * The denylist of revoked token ids (`jti`) and token families, and the ledger of used refresh
 * tokens. Entries live until the tokens they deny would have expired anyway.
 */
export interface RevocationStore {
  readonly kind: 'memory' | 'redis';
  /** Deny `id` until `expiresAt` (epoch ms). */
  revoke(id: string, expiresAt: number): Promise<void>;
  /**
   * Is `id` denied? Answered from memory (synchronously) once the store has synchronised; a Redis
   * store asks Redis until its first synchronisation, and rejects with 503 if Redis cannot answer.
   */
  isRevoked(id: string): boolean | Promise<boolean>;
  /** Mark a refresh token used; resolves false when it already was (a reuse). */
  consume(id: string, expiresAt: number): Promise<boolean>;
  close(): Promise<void>;
}

const SWEEP_MS = 60_000;

const unavailable = (cause: unknown) =>
  new ServiceUnavailableError('Token revocation list is unavailable', 5, {
    details: { dependency: 'redis' },
    cause,
  });

/** Map of id → expiry (epoch ms) that forgets expired entries on read and once a minute. */
class ExpiringSet {
  readonly #entries = new Map<string, number>();
  readonly #timer: NodeJS.Timeout;
  #closed = false;

  constructor() {
    this.#timer = setInterval(() => {
      const now = Date.now();
      for (const [id, exp] of this.#entries) if (exp <= now) this.#entries.delete(id);
    }, SWEEP_MS);
    this.#timer.unref();
  }

  add(id: string, expiresAt: number): void {
    if (this.#closed) return;
    if (expiresAt > (this.#entries.get(id) ?? 0)) this.#entries.set(id, expiresAt);
  }

  has(id: string): boolean {
    // A closed list knows nothing any more: answering "not revoked" would let revoked tokens back in.
    if (this.#closed) throw unavailable(new Error('revocation list closed'));
    const exp = this.#entries.get(id);
    if (exp === undefined) return false;
    if (exp > Date.now()) return true;
    this.#entries.delete(id);
    return false;
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#entries.clear();
  }
}

/** One process only: what `revokeToken()` denies here is not seen by other instances. */
export function memoryRevocationStore(): RevocationStore {
  const revoked = new ExpiringSet();
  const used = new ExpiringSet();
  return {
    kind: 'memory',
    revoke(id, expiresAt) {
      revoked.add(id, expiresAt);
      return Promise.resolve();
    },
    isRevoked: (id) => revoked.has(id),
    consume(id, expiresAt) {
      if (used.has(id)) return Promise.resolve(false);
      used.add(id, expiresAt);
      return Promise.resolve(true);
    },
    close() {
      revoked.close();
      used.close();
      return Promise.resolve();
    },
  };
}

/**
 * Shared by every instance through Redis. Each instance keeps a mirror of the denylist in memory,
 * loaded at start and kept current by pub/sub (and reloaded after every reconnect), so checking a
 * token costs no round trip. While Redis is down the last known list keeps being enforced;
 * revocations and refreshes fail with 503 rather than pretend to succeed.
 */
export function redisRevocationStore(
  connection: RedisConnection,
  prefix: string,
  logger: Logger,
): RevocationStore {
  const redis = connection.client;
  // An application's client may prefix keys itself: SCAN patterns and replies are not prefixed by ioredis.
  const clientPrefix = redis.options.keyPrefix ?? '';
  const channel = `${prefix}revocations`;
  const revokedKey = (id: string) => `${prefix}revoked:${id}`;
  const mirror = new ExpiringSet();
  let synced = false;
  let closed = false;

  const load = async (): Promise<void> => {
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(
        cursor,
        'MATCH',
        `${clientPrefix}${prefix}revoked:*`,
        'COUNT',
        500,
      );
      cursor = next;
      const keys = found.map((key) => key.slice(clientPrefix.length));
      if (keys.length > 0) {
        const values = await redis.mget(...keys);
        keys.forEach((key, i) => {
          const exp = Number(values[i]);
          if (Number.isFinite(exp)) mirror.add(key.slice(prefix.length + 8), exp);
        });
      }
    } while (cursor !== '0');
    synced = true;
  };
  const sub: Redis = connection.subscriber();
  let subscribed = false;
  const warn = (what: string) => (err: unknown) => {
    if (!closed) logger.warn(`revocation list: ${what} failed`, { error_code: codeOf(err) });
  };
  // Every (re)connection reloads: what was published while we were away is in Redis, not in flight.
  // A reload that fails is retried (1 s, 2 s, … 30 s) until one succeeds: until then revocations
  // published while we were away would stay unknown.
  let retry: NodeJS.Timeout | undefined;
  let attempt = 0;
  const resync = () => {
    if (closed || !subscribed || redis.status !== 'ready') return;
    clearTimeout(retry);
    load().then(
      () => {
        attempt = 0;
      },
      (err: unknown) => {
        warn('load')(err);
        if (closed) return;
        retry = setTimeout(resync, Math.min(1000 * 2 ** attempt++, 30_000));
        retry.unref();
      },
    );
  };
  sub.on('message', (_channel: string, message: string) => {
    const space = message.indexOf(' ');
    const exp = Number(message.slice(0, space));
    if (space > 0 && Number.isFinite(exp)) mirror.add(message.slice(space + 1), exp);
  });
  sub.on('close', () => {
    subscribed = false;
  });
  sub.on('ready', () => {
    sub.subscribe(channel).then(() => {
      subscribed = true;
      resync();
    }, warn('subscribe'));
  });
  redis.on('ready', resync);

  return {
    kind: 'redis',
    async revoke(id, expiresAt) {
      try {
        await connection.ready();
        const until = Math.ceil(expiresAt);
        const ttl = Math.max(1, until - Date.now());
        const results = await redis
          .multi()
          .set(revokedKey(id), String(until), 'PX', ttl)
          .publish(channel, `${until} ${id}`)
          .exec();
        const failed = results?.find(([err]) => err !== null);
        if (results === null || failed !== undefined) throw failed?.[0] ?? new Error('transaction aborted');
        // Only once Redis has it: a revocation refused with 503 must not hold on this instance alone.
        mirror.add(id, until);
      } catch (err) {
        throw unavailable(err);
      }
    },
    isRevoked(id) {
      if (synced) return mirror.has(id);
      return connection
        .ready()
        .then(() => redis.exists(revokedKey(id)))
        .then(
          (n) => n > 0 || mirror.has(id),
          (err: unknown) => {
            throw unavailable(err);
          },
        );
    },
    async consume(id, expiresAt) {
      try {
        await connection.ready();
        const ttl = Math.max(1, Math.ceil(expiresAt) - Date.now());
        return (await redis.set(`${prefix}used:${id}`, '1', 'PX', ttl, 'NX')) === 'OK';
      } catch (err) {
        throw unavailable(err);
      }
    },
    async close() {
      closed = true;
      clearTimeout(retry);
      redis.off('ready', resync);
      mirror.close();
      await connection.close();
    },
  };
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'ERROR';
}
