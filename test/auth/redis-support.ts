/**
 * Shared by the Redis denylist suites (test/auth/revocation-redis, test/faults/redis-auth): a key
 * prefix per jest worker and run, clean-up of its keys, polling with a deadline, and an app with
 * the routes a client of the denylist uses (a protected route, refresh, logout).
 */
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Express } from 'express';
import type { Redis } from 'ioredis';
import request from 'supertest';
import * as core from '../../lib/index';
import type { ExpressVariant } from '../support/express';
import { workerSchema } from '../support/services';
import { authApp } from './support';

export const REDIS_HOST = '127.0.0.1';
export const REDIS_PORT = 6379;
export const REDIS_URL = `redis://${REDIS_HOST}:${REDIS_PORT}`;

/** Keys and channel of one suite's Auth instances: unique per worker, process and run. */
export function redisPrefix(tag: string): string {
  return `caduceus:test:${workerSchema()}:${tag}:${randomBytes(4).toString('hex')}:`;
}

/** Delete every key under `prefix` (SCAN, never KEYS). Returns how many there were. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

/**
 * Probe until `done(value)` or `ms` have passed; returns the last value (assert on it) and how
 * long it took, so a test states its deadline instead of sleeping.
 */
export async function within<T>(
  ms: number,
  probe: () => Promise<T> | T,
  done: (value: T) => boolean,
  everyMs = 20,
): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  for (;;) {
    const value = await probe();
    const elapsed = Date.now() - start;
    if (done(value) || elapsed >= ms) return { value, ms: elapsed };
    await sleep(everyMs);
  }
}

/**
 * Has this Auth's denylist synchronised with Redis? The store answers `isRevoked()` from memory
 * (synchronously) only once it has, and asks Redis (a promise) before.
 */
export function isSynced(auth: core.Auth): boolean {
  const answer = auth.revocation.isRevoked('caduceus-test-sync-probe');
  if (answer instanceof Promise) {
    answer.catch(() => undefined);
    return false;
  }
  return true;
}

/** Wait until `auth` has loaded the list and subscribed (throws after `ms`). */
export async function synced(auth: core.Auth, ms = 3000): Promise<void> {
  const { value } = await within(ms, () => isSynced(auth), Boolean);
  if (!value) throw new Error(`the denylist did not synchronise with Redis within ${ms} ms`);
}

/** The claims of one of our tokens (no verification: the test made it). */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as Record<
    string,
    unknown
  >;
}

/** `GET /me`, `POST /refresh` (`{refresh_token}` → a new pair) and `POST /logout` (revokes `req.user`'s token). */
export function denylistApp(variant: ExpressVariant, auth: core.Auth): Express {
  return authApp(variant, auth, (app) => {
    app.post(
      '/refresh',
      variant.express.json(),
      core.asyncHandler(async (req, res) => {
        const body = req.body as { refresh_token?: unknown };
        res.json(await auth.refreshTokens(body.refresh_token as string));
      }),
    );
    app.post(
      '/logout',
      auth.authenticate(),
      core.asyncHandler(async (req, res) => {
        await auth.revokeToken(req.user as core.AuthUser);
        res.status(204).end();
      }),
    );
  });
}

export interface Outcome {
  status: number;
  code: string | undefined;
}

function outcome(res: request.Response): Outcome {
  return { status: res.status, code: (res.body as { error_code?: string }).error_code };
}

/** `GET /me` with `token` as the bearer token. */
export async function me(app: Express, token: string): Promise<Outcome> {
  return outcome(await request(app).get('/me').set('Authorization', `Bearer ${token}`));
}

/** `POST /refresh` with `refreshToken`; `pair` is set on success. */
export async function refresh(
  app: Express,
  refreshToken: string,
): Promise<Outcome & { pair?: core.TokenPair }> {
  const res = await request(app).post('/refresh').send({ refresh_token: refreshToken });
  return res.status === 200 ? { ...outcome(res), pair: res.body as core.TokenPair } : outcome(res);
}

export const REVOKED: Outcome = { status: 401, code: 'TOKEN_REVOKED' };
export const UNAVAILABLE: Outcome = { status: 503, code: 'SERVICE_UNAVAILABLE' };

/** A forwarder to Redis that counts the connections open through it (who opened and who closed them). */
export class CountingForwarder {
  readonly #server: Server;
  readonly #open = new Set<Socket>();

  constructor() {
    this.#server = createServer((client) => {
      const upstream = connect(REDIS_PORT, REDIS_HOST);
      this.#open.add(client);
      client.on('close', () => {
        this.#open.delete(client);
        upstream.destroy();
      });
      upstream.on('close', () => client.destroy());
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
  }

  get open(): number {
    return this.#open.size;
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, REDIS_HOST, resolve));
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('forwarder has no port');
    return `redis://${REDIS_HOST}:${address.port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.#open) socket.destroy();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }
}
