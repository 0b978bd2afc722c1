/**
 * Issue 4's fault test for the Redis denylist: a TCP proxy between an Auth and Redis is cut,
 * partitioned and restored. While Redis is away the last known list keeps being enforced, and
 * what cannot be recorded (a revocation, a refresh) fails with 503 instead of pretending; an Auth
 * that never reached Redis fails closed with 503. Once the line is back everything recovers
 * without a restart, including revocations another instance made in the meantime.
 */
import type { Express } from 'express';
import request from 'supertest';
import { Redis } from 'ioredis';
import * as core from '../../lib/index';
import {
  deleteKeys,
  denylistApp,
  me,
  REDIS_URL,
  redisPrefix,
  refresh,
  REVOKED,
  synced,
  UNAVAILABLE,
  within,
  type Outcome,
} from '../auth/redis-support';
import { SECRET, settings } from '../auth/support';
import { EXPRESS } from '../support/express';
import { captureLogger, type CapturedLogger } from '../support/logs';
import { requireService } from '../support/services';
import { TcpProxy } from './proxy';

const OK: Outcome = { status: 200, code: undefined };
/** A request or call that Redis cannot serve answers within this (command timeout 1 s + slack). */
const FAST_MS = 2000;
/** Reconnection after the line is back (the client's back-off is capped at 3 s). */
const RECOVERY_MS = 6000;

const prefix = redisPrefix('faults');
// No listener for unhandled rejections here: jest 30 fails the running test on one by itself (a
// listener on the sandbox's `process` would never hear of it), so every test also proves there was none.

let admin: Redis;
let proxy: TcpProxy;
/** Connected to Redis through the proxy. */
let a: core.Auth;
let logA: CapturedLogger;
/** "Another instance", connected to Redis directly. */
let direct: core.Auth;
let appsA: Express[];
let appDirect: Express;

function auth(redis: string, logger: core.Logger): core.Auth {
  return core.createAuth({ settings, secret: SECRET, keyPrefix: prefix, redis, logger });
}

/** `redis unavailable` warnings per connection (`auth`, `auth:sub`). */
function unavailableWarnings(log: CapturedLogger, since = 0): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of log.lines().slice(since)) {
    if (line.message === 'redis unavailable')
      counts[String(line.redis)] = (counts[String(line.redis)] ?? 0) + 1;
  }
  return counts;
}

/** Resolves true once `call` resolves, false when it rejected: for polling until Redis is back. */
const succeeds = (call: () => Promise<unknown>) => () =>
  call().then(
    () => true,
    () => false,
  );

async function logoutOn(app: Express, token: string): Promise<{ outcome: Outcome; body: unknown }> {
  const res = await request(app).post('/logout').set('Authorization', `Bearer ${token}`);
  return {
    outcome: { status: res.status, code: (res.body as { error_code?: string }).error_code },
    body: res.body,
  };
}

async function timedRejection(promise: Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const start = Date.now();
  try {
    await promise;
  } catch (error) {
    return { error, ms: Date.now() - start };
  }
  throw new Error('expected a rejection, the call succeeded');
}

function expectUnavailable({ error, ms }: { error: unknown; ms: number }): void {
  expect(error).toBeInstanceOf(core.ServiceUnavailableError);
  expect(error).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE', details: { dependency: 'redis' } });
  expect(ms).toBeLessThan(FAST_MS);
}

beforeAll(async () => {
  await requireService('Redis', '127.0.0.1', 6379);
  admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  proxy = new TcpProxy(6379);
  const port = await proxy.start();
  logA = captureLogger('auth');
  a = auth(`redis://127.0.0.1:${port}`, logA.logger);
  direct = auth(REDIS_URL, captureLogger('auth').logger);
  appsA = EXPRESS.map((variant) => denylistApp(variant, a));
  appDirect = denylistApp(EXPRESS[1] as (typeof EXPRESS)[number], direct);
  await Promise.all([synced(a), synced(direct)]);
});

afterAll(async () => {
  // The proxy goes first: resetting sockets that a QUIT is already closing leaks their handles
  // (TcpProxy.cut calls resetAndDestroy on half-closed sockets), and jest would never exit.
  await proxy.close();
  await Promise.all([a.close(), direct.close()]);
  await deleteKeys(admin, prefix);
  await admin.quit();
});

describe('the Redis denylist when Redis goes away', () => {
  it('keeps enforcing the last known list through a cut, refuses what it cannot record with 503, and catches up after', async () => {
    const revokedBefore = a.createTokens({ userId: 'user-1' });
    await a.revokeToken(revokedBefore.access_token);
    const valid = a.createTokens({ userId: 'user-2', roles: ['patient'] });
    const refreshable = a.createTokens({ userId: 'user-3' });
    const revokedDuring = a.createTokens({ userId: 'user-4' });
    const toRevokeAfter = a.createTokens({ userId: 'user-5' });
    for (const app of appsA) expect(await me(app, valid.access_token)).toEqual(OK);
    const warningsBefore = logA.lines().length;

    await proxy.cut();
    const warned = await within(
      FAST_MS,
      () => unavailableWarnings(logA, warningsBefore),
      (w) => Object.keys(w).length === 2,
    );
    expect(warned.value).toEqual({ auth: 1, 'auth:sub': 1 });

    // Authentication goes on from memory, for every request, on Express 4 and 5.
    for (const app of appsA) {
      for (let i = 0; i < 10; i++) expect(await me(app, valid.access_token)).toEqual(OK);
      expect(await me(app, revokedBefore.access_token)).toEqual(REVOKED);
    }
    // What would have to be written to Redis fails, fast, with 503.
    expectUnavailable(await timedRejection(a.revokeToken(toRevokeAfter.access_token)));
    expectUnavailable(await timedRejection(a.revokeToken('some-jti', { expiresAt: Date.now() + 60_000 })));
    expectUnavailable(await timedRejection(a.refreshTokens(refreshable.refresh_token)));
    for (const app of appsA) {
      const logout = await logoutOn(app, a.createTokens({ userId: 'user-2' }).access_token);
      expect(logout.outcome).toEqual(UNAVAILABLE);
      expect(logout.body).toMatchObject({ details: { dependency: 'redis' } });
      expect(await refresh(app, refreshable.refresh_token)).toEqual(UNAVAILABLE);
    }

    // Another instance, still connected, revokes a token: A cannot hear of it while the line is down…
    await direct.revokeToken(revokedDuring.access_token);
    expect(await me(appDirect, revokedDuring.access_token)).toEqual(REVOKED);
    expect(await me(appsA[0] as Express, revokedDuring.access_token)).toEqual(OK);

    // Still one warning per connection for the whole outage, not one per request or call.
    expect(unavailableWarnings(logA, warningsBefore)).toEqual({ auth: 1, 'auth:sub': 1 });

    await proxy.restore();

    // …and picks it up when it reconnects (the list is reloaded on resubscribe).
    for (const app of appsA) {
      const caughtUp = await within(
        RECOVERY_MS,
        () => me(app, revokedDuring.access_token),
        (o) => o.status === 401,
        50,
      );
      expect(caughtUp.value).toEqual(REVOKED);
    }
    // Revocations work again, and reach the other instance.
    const revoked = await within(
      RECOVERY_MS,
      succeeds(() => a.revokeToken(toRevokeAfter.access_token)),
      Boolean,
      50,
    );
    expect(revoked.value).toBe(true);
    const onDirect = await within(
      1000,
      () => me(appDirect, toRevokeAfter.access_token),
      (o) => o.status === 401,
    );
    expect(onDirect.value).toEqual(REVOKED);
    // The refresh refused during the outage was not recorded as used: it works now, once.
    const rotated = await refresh(appsA[1] as Express, refreshable.refresh_token);
    expect(rotated.status).toBe(200);
    expect(await refresh(appDirect, refreshable.refresh_token)).toEqual(REVOKED);
    for (const app of appsA) expect(await me(app, valid.access_token)).toEqual(OK);

    expect(unavailableWarnings(logA, warningsBefore)).toEqual({ auth: 1, 'auth:sub': 1 });
    const reconnected = logA
      .lines()
      .slice(warningsBefore)
      .filter((l) => l.message === 'redis reconnected');
    expect(reconnected.map((l) => l.redis).sort()).toEqual(['auth', 'auth:sub']);
  });

  it('fails revocations and refreshes fast with 503 during a silent partition, and recovers after it', async () => {
    const valid = a.createTokens({ userId: 'user-6' });
    const refreshable = a.createTokens({ userId: 'user-7' });
    await proxy.freeze();

    for (const app of appsA) expect(await me(app, valid.access_token)).toEqual(OK);
    expectUnavailable(await timedRejection(a.revokeToken(valid.access_token)));
    expectUnavailable(await timedRejection(a.refreshTokens(refreshable.refresh_token)));

    await proxy.cut();
    await proxy.restore();
    const back = await within(
      RECOVERY_MS,
      succeeds(() => a.revokeToken(valid.access_token)),
      Boolean,
      50,
    );
    expect(back.value).toBe(true);
    const onDirect = await within(
      1000,
      () => me(appDirect, valid.access_token),
      (o) => o.status === 401,
    );
    expect(onDirect.value).toEqual(REVOKED);
  });

  it('lets a logout refused with 503 during an outage be retried after it, and then holds on every instance', async () => {
    const session = a.createTokens({ userId: 'user-11' });
    const app = appsA[0] as Express;
    await proxy.cut();
    expect((await logoutOn(app, session.access_token)).outcome).toEqual(UNAVAILABLE);
    await proxy.restore();
    await within(
      RECOVERY_MS,
      succeeds(() => a.revokeToken('probe-after-restore', { expiresAt: Date.now() + 5000 })),
      Boolean,
      50,
    );

    // The client was told the logout did not happen, so it retries it, now that Redis is back.
    const retry = await logoutOn(app, session.access_token);
    expect([204, 401]).toContain(retry.outcome.status);
    // Whatever this instance answers, the other one must now refuse the token.
    const onDirect = await within(
      1000,
      () => me(appDirect, session.access_token),
      (o) => o.status === 401,
    );
    expect(onDirect.value).toEqual(REVOKED);
  });
});

describe('an Auth started while Redis is unreachable', () => {
  /** An Auth whose Redis line is down from the start; `line.restore()` brings Redis. */
  async function unreachable(): Promise<{ line: TcpProxy; c: core.Auth; log: CapturedLogger }> {
    const line = new TcpProxy(6379);
    const port = await line.start();
    await line.cut();
    const log = captureLogger('auth');
    const c = auth(`redis://127.0.0.1:${port}`, log.logger);
    // Its first connection attempts have failed (and said so, once per connection).
    const warned = await within(
      FAST_MS,
      () => unavailableWarnings(log),
      (w) => Object.keys(w).length === 2,
    );
    expect(warned.value).toEqual({ auth: 1, 'auth:sub': 1 });
    return { line, c, log };
  }

  it('fails closed with 503 (never 500, never accepting) until its first sync, then recovers', async () => {
    const { line, c, log } = await unreachable();
    try {
      const apps = EXPRESS.map((variant) => denylistApp(variant, c));
      const valid = direct.createTokens({ userId: 'user-8' });
      const revoked = direct.createTokens({ userId: 'user-9' });
      await direct.revokeToken(revoked.access_token);

      // It cannot know whether a token was revoked: it must neither accept it nor crash on it.
      const verify = c.verifyToken(valid.access_token);
      verify.catch(() => undefined);
      const answers = await Promise.all(
        apps.flatMap((app) => [
          me(app, valid.access_token),
          me(app, valid.access_token),
          me(app, revoked.access_token),
          refresh(app, valid.refresh_token),
        ]),
      );
      expect(answers).toEqual(answers.map(() => UNAVAILABLE));
      await expect(verify).rejects.toBeInstanceOf(core.ServiceUnavailableError);
      await expect(verify).rejects.toMatchObject({ status: 503, details: { dependency: 'redis' } });
      // A token that fails verification is still a 401: Redis is asked only about valid ones.
      for (const app of apps)
        expect(await me(app, 'not.a.token')).toEqual({ status: 401, code: 'TOKEN_INVALID' });
      expect(unavailableWarnings(log)).toEqual({ auth: 1, 'auth:sub': 1 });

      await line.restore();
      await synced(c, RECOVERY_MS);
      for (const app of apps) {
        expect(await me(app, valid.access_token)).toEqual(OK);
        expect(await me(app, revoked.access_token)).toEqual(REVOKED);
      }
      expect(unavailableWarnings(log)).toEqual({ auth: 1, 'auth:sub': 1 });
    } finally {
      await line.close();
      await c.close();
    }
  });

  it('answers 503 at once, not after the connect timeout, once its connection attempts have failed', async () => {
    const { line, c } = await unreachable();
    try {
      const app = denylistApp(EXPRESS[1] as (typeof EXPRESS)[number], c);
      const valid = direct.createTokens({ userId: 'user-10' });
      // A burst of requests, as a server that just started behind a load balancer gets.
      const start = Date.now();
      const answers = await Promise.all(Array.from({ length: 12 }, () => me(app, valid.access_token)));
      const ms = Date.now() - start;
      expect(answers).toEqual(answers.map(() => UNAVAILABLE));
      // Redis is known to be down: holding each request for the connect timeout (2 s) only piles them up.
      expect(ms).toBeLessThan(500);
    } finally {
      await line.close();
      await c.close();
    }
  });

  it('closes promptly while Redis is still unreachable', async () => {
    const { line, c } = await unreachable();
    try {
      const start = Date.now();
      await c.close();
      expect(Date.now() - start).toBeLessThan(1000);
    } finally {
      await line.close();
    }
  });
});
