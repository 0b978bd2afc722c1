import { Cluster, Redis } from 'ioredis';
import { ConfigError } from '../errors/index.js';
import type { Logger } from '../logging/index.js';

export type { Cluster, Redis } from 'ioredis';

/** A standalone client or a Redis Cluster client. */
export type RedisClient = Redis | Cluster;

/** A Redis connection as caduceus uses it: the client, and whether closing it is ours to do. */
export interface RedisConnection<C extends RedisClient = Redis> {
  readonly client: C;
  /**
   * Resolves when the client can take commands. Until its first connection succeeds (start-up)
   * this waits up to the connect timeout; after that it resolves or rejects at once, so an outage
   * fails fast instead of queueing.
   */
  ready(): Promise<void>;
  /** A second connection for SUBSCRIBE (a subscribed connection can run no other command). */
  subscriber(): C;
  /** Close what we opened; a client passed in by the application is left open. */
  close(): Promise<void>;
}

/** Connect timeout: an unreachable Redis is reported in this time, not the OS's TCP timeout. */
const CONNECT_TIMEOUT_MS = 2_000;
/** A command without an answer in this time rejects (a silent partition fails fast). */
const COMMAND_TIMEOUT_MS = 1_000;

/**
 * The one place caduceus opens Redis. Connections fail fast while Redis is down (no offline
 * queue, one retry per command, command timeout) and reconnect forever with a capped back-off, so
 * an outage makes callers fall back or answer 503 instead of hanging, and recovery is automatic.
 * Errors are logged once per outage and the recovery once; the process never crashes on them.
 */
export function connectRedis(target: string | Redis, name: string, logger: Logger): RedisConnection;
export function connectRedis(
  target: string | RedisClient,
  name: string,
  logger: Logger,
): RedisConnection<RedisClient>;
export function connectRedis(
  target: string | RedisClient,
  name: string,
  logger: Logger,
): RedisConnection<RedisClient> {
  const owned = typeof target === 'string';
  if (!owned && !(target instanceof Redis) && !(target instanceof Cluster)) {
    throw ConfigError.option(name, 'redis', 'a redis:// URL or an ioredis client (Redis or Cluster)', target);
  }
  const client: RedisClient = owned ? new Redis(target, clientOptions(name)) : target;
  const opened: RedisClient[] = owned ? [client] : [];
  // Listeners we add to a client passed in are removed again on close(): it is not ours.
  const unwatch = [watch(client, name, logger)];
  // Start-up: the first ready() calls wait (together, on one listener) for the first connection;
  // once an attempt has failed, or after the first success, they answer at once.
  let settled = client.status === 'ready';
  const onFirstOutcome = () => {
    settled = true;
  };
  if (!settled) {
    client.once('ready', onFirstOutcome);
    client.once('error', onFirstOutcome);
  }
  // An application's `lazyConnect` client would otherwise wait for a first command we never send
  // (nothing is sent while the client is not ready).
  if (!owned && client.status === 'wait') client.connect().catch(() => undefined);
  let pending: Promise<void> | undefined;
  return {
    client,
    ready() {
      if (client.status === 'ready') return Promise.resolve();
      if (settled || client.status === 'end') {
        return Promise.reject(new Error(`redis ${name}: ${client.status}`));
      }
      pending ??= new Promise<void>((resolve, reject) => {
        const finish = (err?: Error) => {
          clearTimeout(timer);
          client.off('ready', onReady);
          client.off('error', onError);
          pending = undefined;
          if (err === undefined) resolve();
          else reject(err);
        };
        const onReady = () => {
          finish();
        };
        const onError = (err: Error) => {
          finish(err);
        };
        const timer = setTimeout(() => {
          // Start-up is over: later calls answer at once instead of each waiting again.
          settled = true;
          finish(new Error(`redis ${name}: not connected within ${CONNECT_TIMEOUT_MS} ms`));
        }, CONNECT_TIMEOUT_MS);
        timer.unref();
        client.once('ready', onReady);
        client.once('error', onError);
      });
      return pending;
    },
    subscriber() {
      const sub =
        client instanceof Cluster ? client.duplicate() : client.duplicate(clientOptions(`${name}:sub`));
      opened.push(sub);
      unwatch.push(watch(sub, `${name}:sub`, logger));
      return sub;
    },
    async close() {
      client.off('ready', onFirstOutcome);
      client.off('error', onFirstOutcome);
      for (const off of unwatch.splice(0)) off();
      await Promise.all(
        opened.splice(0).map(async (c) => {
          if (c.status === 'end') return;
          try {
            await c.quit();
          } catch {
            c.disconnect();
          }
        }),
      );
    },
  };
}

function clientOptions(name: string) {
  return {
    connectionName: name,
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    // A command that timed out was answered (fallback, 503) already: replaying it after a
    // reconnect would count it twice.
    autoResendUnfulfilledCommands: false,
    // Closing a client that is still reconnecting to an unreachable Redis would otherwise leave
    // ioredis' 2 s disconnect timer running, and keep a process (or jest) alive after close().
    disconnectTimeout: 200,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 3_000),
  } as const;
}

/** Log an outage once and the recovery once; returns what removes the listeners. */
function watch(client: RedisClient, name: string, logger: Logger): () => void {
  let down = false;
  const onError = (err: unknown) => {
    if (down) return;
    down = true;
    const code = (err as { code?: unknown }).code;
    logger.warn('redis unavailable', { redis: name, error_code: typeof code === 'string' ? code : 'ERROR' });
  };
  const onReady = () => {
    if (!down) return;
    down = false;
    logger.info('redis reconnected', { redis: name });
  };
  client.on('error', onError);
  client.on('ready', onReady);
  return () => {
    client.off('error', onError);
    client.off('ready', onReady);
  };
}
