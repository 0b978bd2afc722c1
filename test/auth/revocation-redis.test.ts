/**
 * The Redis denylist shared by several instances, against the real Redis (no mock): revocations
 * propagate by pub/sub, a new instance loads the list, refresh-token reuse is caught across
 * instances and under concurrency, entries expire with their tokens, and a client passed in stays
 * the application's. Instance A connects from a URL, B through the application's ioredis client,
 * so every propagation test covers both forms.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { requireService } from '../support/services';
import {
  claimsOf,
  CountingForwarder,
  deleteKeys,
  denylistApp,
  me,
  REDIS_URL,
  redisPrefix,
  refresh,
  REVOKED,
  synced,
  within,
} from './redis-support';
import { accessClaims, forge, headerOf, SECRET, settings } from './support';

/** Pub/sub propagation deadline between instances. */
const PROPAGATION_MS = 1000;
const OK = { status: 200, code: undefined };
/** Tokens stay acceptable this long after exp (settings: JWT_CLOCK_TOLERANCE_SECONDS), so do their entries. */
const GRACE_MS = settings.auth.clockToleranceSeconds * 1000;

/** A PTTL read right after the write is the expected one, give or take the round trips (on a busy machine). */
function expectNear(pttl: number, expected: number): void {
  expect(pttl).toBeGreaterThan(0);
  expect(Math.abs(pttl - expected)).toBeLessThan(1000);
}

let admin: Redis;
const prefixes: string[] = [];

beforeAll(async () => {
  await requireService('Redis', '127.0.0.1', 6379);
  admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  for (const prefix of prefixes) await deleteKeys(admin, prefix);
  await admin.quit();
});

/** A fresh prefix, remembered for clean-up. */
function newPrefix(tag: string): string {
  const prefix = redisPrefix(tag);
  prefixes.push(prefix);
  return prefix;
}

describe.each(eachExpress)('Redis denylist shared by instances on %s', (_name, variant) => {
  const prefix = newPrefix('revocation');
  const captured = captureLogger('auth');
  const base = { settings, secret: SECRET, keyPrefix: prefix, logger: captured.logger };
  /** Instances and clients a test made; closed after the suite. */
  const extra: core.Auth[] = [];
  const clients: Redis[] = [];
  let appClient: Redis;
  let a: core.Auth;
  let b: core.Auth;
  let appA: ReturnType<typeof denylistApp>;
  let appB: ReturnType<typeof denylistApp>;

  /** Another instance, not yet synchronised (see `ready`). */
  const instance = (options: Partial<core.AuthOptions> = {}): core.Auth => {
    const auth = core.createAuth({ ...base, redis: REDIS_URL, ...options });
    extra.push(auth);
    return auth;
  };
  /** Another instance, once it has loaded the list and subscribed. */
  const ready = async (options: Partial<core.AuthOptions> = {}): Promise<core.Auth> => {
    const auth = instance(options);
    await synced(auth);
    return auth;
  };
  const client = (options: RedisOptions = {}): Redis => {
    const c = new Redis(REDIS_URL, options);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    appClient = client();
    a = core.createAuth({ ...base, redis: REDIS_URL });
    b = core.createAuth({ ...base, redis: appClient });
    appA = denylistApp(variant, a);
    appB = denylistApp(variant, b);
    await Promise.all([synced(a), synced(b)]);
  });

  afterAll(async () => {
    await Promise.all([a, b, ...extra].map((auth) => auth.close()));
    await Promise.all(clients.map((c) => c.quit()));
    // A healthy Redis all along: nothing to warn about.
    expect(captured.lines().filter((l) => l.level === 'warn' && l.category !== 'security')).toEqual([]);
  });

  it('rejects a token revoked on A at once on A and within a second on B (pub/sub)', async () => {
    const pair = a.createTokens({ userId: 'user-1', roles: ['patient'] });
    // Both have verified (and cached) it: the cache must not bypass the denylist.
    expect(await me(appA, pair.access_token)).toEqual(OK);
    expect(await me(appB, pair.access_token)).toEqual(OK);
    await a.revokeToken(pair.access_token);
    expect(await me(appA, pair.access_token)).toEqual(REVOKED);
    const onB = await within(
      PROPAGATION_MS,
      () => me(appB, pair.access_token),
      (o) => o.status === 401,
    );
    expect(onB.value).toEqual(REVOKED);
    expect(onB.ms).toBeLessThan(PROPAGATION_MS);
  });

  it('rejects a token revoked on B (the application client) on A within a second', async () => {
    const pair = b.createTokens({ userId: 'user-2' });
    expect(await me(appA, pair.access_token)).toEqual(OK);
    await b.revokeToken(pair.access_token);
    expect(await me(appB, pair.access_token)).toEqual(REVOKED);
    const onA = await within(
      PROPAGATION_MS,
      () => me(appA, pair.access_token),
      (o) => o.status === 401,
    );
    expect(onA.value).toEqual(REVOKED);
  });

  it.each([
    ['a URL', () => REDIS_URL],
    ['an ioredis client', () => client()],
  ])('loads the list when an instance created from %s starts after the revocation', async (_form, target) => {
    const pair = a.createTokens({ userId: 'user-3' });
    const login = a.createTokens({ userId: 'user-4' });
    const rotated = (await refresh(appA, login.refresh_token)).pair as core.TokenPair;
    await a.revokeToken(pair.access_token);
    await a.revokeToken(login.access_token, { family: true });

    const c = await ready({ redis: target() });
    const appC = denylistApp(variant, c);
    // C answers from the list it loaded: the jti, and the family (an id with a colon in it).
    expect(await me(appC, pair.access_token)).toEqual(REVOKED);
    expect(await me(appC, rotated.access_token)).toEqual(REVOKED);
    expect(await refresh(appC, rotated.refresh_token)).toEqual(REVOKED);
    expect(await me(appC, a.createTokens({ userId: 'user-3' }).access_token)).toEqual(OK);
  });

  it.each([
    ['a URL', () => REDIS_URL],
    ['an ioredis client', () => client()],
  ])(
    'serves the first requests of an instance created from %s, before its first sync, from Redis',
    async (_form, target) => {
      const pair = a.createTokens({ userId: 'user-3' });
      await a.revokeToken(pair.access_token);
      // Redis is up: a request that arrives while the new instance is still connecting is answered
      // (by asking Redis), not refused with 503.
      const c = instance({ redis: target() });
      const appC = denylistApp(variant, c);
      expect(await me(appC, pair.access_token)).toEqual(REVOKED);
      expect(await me(appC, a.createTokens({ userId: 'user-3' }).access_token)).toEqual(OK);
    },
  );

  it.each([
    ['a URL', () => REDIS_URL],
    ['an ioredis client', () => client()],
  ])(
    'revokes right after createAuth from %s (a one-shot script: create, revoke, close)',
    async (_form, target) => {
      const pair = a.createTokens({ userId: 'user-3' });
      const script = instance({ redis: target() });
      await script.revokeToken(pair.access_token);
      const onA = await within(
        PROPAGATION_MS,
        () => me(appA, pair.access_token),
        (o) => o.status === 401,
      );
      expect(onA.value).toEqual(REVOKED);
    },
  );

  it('ends the family on both instances when a refresh token rotated on A is replayed on B', async () => {
    const login = a.createTokens({ userId: 'user-5', roles: ['patient'] });
    const first = await refresh(appA, login.refresh_token);
    expect(first.status).toBe(200);
    const rotated = first.pair as core.TokenPair;
    expect(await me(appB, rotated.access_token)).toEqual(OK);

    // The stolen copy of the original refresh token, replayed against the other server.
    const reuses = b.counters().refreshReuse;
    expect(await refresh(appB, login.refresh_token)).toEqual(REVOKED);
    expect(b.counters().refreshReuse).toBe(reuses + 1);

    // Neither the thief nor the client holds a working token of that login, on either server.
    expect(await me(appB, rotated.access_token)).toEqual(REVOKED);
    const onA = await within(
      PROPAGATION_MS,
      () => me(appA, rotated.access_token),
      (o) => o.status === 401,
    );
    expect(onA.value).toEqual(REVOKED);
    for (const app of [appA, appB]) {
      expect(await me(app, login.access_token)).toEqual(REVOKED);
      expect(await refresh(app, rotated.refresh_token)).toEqual(REVOKED);
    }
  });

  it('lets exactly one of ten concurrent refreshes of one token (five on A, five on B) succeed', async () => {
    const login = a.createTokens({ userId: 'user-6' });
    const results = await Promise.all(
      [appA, appB, appA, appB, appA, appB, appA, appB, appA, appB].map((app) =>
        refresh(app, login.refresh_token),
      ),
    );
    const won = results.filter((r) => r.status === 200);
    expect(won).toHaveLength(1);
    expect(results.filter((r) => r.status !== 200)).toEqual(Array.from({ length: 9 }, () => REVOKED));
    // The losers were replays of a used refresh token: the family, the winner's pair included, is over.
    const winner = won[0]?.pair as core.TokenPair;
    for (const app of [appA, appB]) {
      const after = await within(
        PROPAGATION_MS,
        () => me(app, winner.access_token),
        (o) => o.status === 401,
      );
      expect(after.value).toEqual(REVOKED);
    }
    expect(await admin.exists(`${prefix}used:${String(claimsOf(login.refresh_token).jti)}`)).toBe(1);
  });

  it('gives each Redis entry a TTL of what is left of the token it denies, plus the clock tolerance', async () => {
    const pair = a.createTokens({ userId: 'user-7' });
    const access = claimsOf(pair.access_token) as { jti: string; exp: number };
    const refreshClaims = claimsOf(pair.refresh_token) as { jti: string; exp: number; fam: string };
    await a.revokeToken(pair.access_token);
    // The verifier accepts a token until exp + tolerance, so its entry lives as long, and no longer.
    const key = `${prefix}revoked:${access.jti}`;
    const [pttl, value] = await Promise.all([admin.pttl(key), admin.get(key)]);
    expectNear(pttl, access.exp * 1000 + GRACE_MS - Date.now());
    expect(value).toBe(String(access.exp * 1000 + GRACE_MS));

    // A used refresh token is remembered as long as it could be replayed…
    const rotated = (await refresh(appA, pair.refresh_token)).pair as core.TokenPair;
    const used = await admin.pttl(`${prefix}used:${refreshClaims.jti}`);
    expectNear(used, refreshClaims.exp * 1000 + GRACE_MS - Date.now());
    // …and a revoked family as long as any refresh token of it can be accepted.
    await a.revokeToken(rotated.access_token, { family: true });
    const family = await admin.pttl(`${prefix}revoked:fam:${refreshClaims.fam}`);
    expectNear(family, pair.refresh_expires_in * 1000 + GRACE_MS);
  });

  it('lets entries of short-lived tokens disappear from Redis when the token expires', async () => {
    const short = await ready({ accessTokenTtlSeconds: 2, clockToleranceSeconds: 0 });
    const appShort = denylistApp(variant, short);
    const pair = short.createTokens({ userId: 'user-8' });
    const { jti, exp } = claimsOf(pair.access_token) as { jti: string; exp: number };
    await short.revokeToken(pair.access_token);
    const key = `${prefix}revoked:${jti}`;
    const pttl = await admin.pttl(key);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(2000);
    expect(await me(appShort, pair.access_token)).toEqual(REVOKED);
    const gone = await within(
      exp * 1000 - Date.now() + 500,
      () => admin.exists(key),
      (n) => n === 0,
      50,
    );
    expect(gone.value).toBe(0);
    expect(await me(appShort, pair.access_token)).toEqual({ status: 401, code: 'TOKEN_EXPIRED' });
  });

  it('keeps a revoked token rejected through the clock tolerance after exp (the denylist must outlive it)', async () => {
    const tolerant = await ready({ accessTokenTtlSeconds: 1, clockToleranceSeconds: 5 });
    const appTolerant = denylistApp(variant, tolerant);
    const pair = tolerant.createTokens({ userId: 'user-9' });
    const { jti, exp } = claimsOf(pair.access_token) as { jti: string; exp: number };
    await tolerant.revokeToken(pair.access_token);
    const pttl = await admin.pttl(`${prefix}revoked:${jti}`);
    const needed = exp * 1000 + 5000 - Date.now();
    // Past exp, inside the tolerance: the verifier still accepts the token, so the denylist must too.
    await sleep(Math.max(0, exp * 1000 + 300 - Date.now()));
    expect(await me(appTolerant, pair.access_token)).toEqual(REVOKED);
    expect(pttl).toBeGreaterThanOrEqual(needed - 1000);
  });

  it('detects the replay of a used refresh token after its exp but within the clock tolerance', async () => {
    const tolerant = await ready({ refreshTokenTtlSeconds: 1, clockToleranceSeconds: 5 });
    const appTolerant = denylistApp(variant, tolerant);
    const login = tolerant.createTokens({ userId: 'user-10' });
    const { exp } = claimsOf(login.refresh_token) as { exp: number };
    expect((await refresh(appTolerant, login.refresh_token)).status).toBe(200);
    await sleep(Math.max(0, exp * 1000 + 300 - Date.now()));
    // Still inside the tolerance, so the verifier accepts it: the ledger must still know it was used.
    expect(await refresh(appTolerant, login.refresh_token)).toEqual(REVOKED);
  });

  it('revokes req.user (logout) and a bare jti, and both reach the other instance', async () => {
    const pair = a.createTokens({ userId: 'user-11' });
    await request(appA).post('/logout').set('Authorization', `Bearer ${pair.access_token}`).expect(204);
    expect(await me(appA, pair.access_token)).toEqual(REVOKED);
    const onB = await within(
      PROPAGATION_MS,
      () => me(appB, pair.access_token),
      (o) => o.status === 401,
    );
    expect(onB.value).toEqual(REVOKED);
    const logoutKey = `${prefix}revoked:${String(claimsOf(pair.access_token).jti)}`;
    expect(await admin.exists(logoutKey)).toBe(1);

    // A jti with its expiry (what an application keeps in its session table)…
    const other = a.createTokens({ userId: 'user-12' });
    const { jti, exp } = claimsOf(other.access_token) as { jti: string; exp: number };
    await b.revokeToken(jti, { expiresAt: exp * 1000 });
    expect(await me(appB, other.access_token)).toEqual(REVOKED);
    const onA = await within(
      PROPAGATION_MS,
      () => me(appA, other.access_token),
      (o) => o.status === 401,
    );
    expect(onA.value).toEqual(REVOKED);
    expectNear(await admin.pttl(`${prefix}revoked:${jti}`), exp * 1000 + GRACE_MS - Date.now());

    // …and one without: denied for the longest lifetime a token of ours can have.
    const bare = randomUUID();
    await a.revokeToken(bare);
    const longest = Math.max(pair.expires_in, pair.refresh_expires_in) * 1000;
    expectNear(await admin.pttl(`${prefix}revoked:${bare}`), longest + GRACE_MS);
  });

  it('treats revocation of an already-expired token (token, req.user or jti) as a no-op', async () => {
    const now = Math.floor(Date.now() / 1000);
    const kid = headerOf(a.createTokens({ userId: 'user-13' }).access_token).kid;
    const claims = accessClaims({ sub: 'user-13', iat: now - 7200, exp: now - 3600, fam: randomUUID() });
    const expired = forge({ alg: 'HS256', typ: 'at+jwt', kid }, claims, SECRET);
    expect(await me(appA, expired)).toEqual({ status: 401, code: 'TOKEN_EXPIRED' });
    const user: core.AuthUser = {
      id: 'user-13',
      email: undefined,
      roles: [],
      scopes: [],
      claims,
      via: 'token',
    };
    const jti = claims.jti as string;

    await a.revokeToken(expired);
    await a.revokeToken(user);
    // (Expired beyond the clock tolerance: inside it the token would still be accepted, so still revocable.)
    await b.revokeToken(jti, { expiresAt: (now - 3600) * 1000 });
    expect(await admin.exists(`${prefix}revoked:${jti}`)).toBe(0);
    expect(a.revocation.isRevoked(jti)).toBe(false);
    expect(b.revocation.isRevoked(jti)).toBe(false);
  });

  it('loads revocations when the application client has an ioredis keyPrefix of its own', async () => {
    const own = `${prefix}app:`;
    const writer = await ready({ redis: client({ keyPrefix: own }), keyPrefix: `${prefix}k:` });
    const pair = writer.createTokens({ userId: 'user-14' });
    await writer.revokeToken(pair.access_token);
    expect(await admin.exists(`${own}${prefix}k:revoked:${String(claimsOf(pair.access_token).jti)}`)).toBe(1);

    // Started after the revocation, with the same kind of client: its initial load must find it.
    const late = await ready({ redis: client({ keyPrefix: own }), keyPrefix: `${prefix}k:` });
    expect(await me(denylistApp(variant, late), pair.access_token)).toEqual(REVOKED);
  });
});

describe('Redis connections of the denylist', () => {
  const captured = captureLogger('auth');
  const base = { settings, secret: SECRET, logger: captured.logger };

  it('leaves a client passed in open (and usable) after close()', async () => {
    const prefix = newPrefix('owned');
    const appClient = new Redis(REDIS_URL);
    try {
      const auth = core.createAuth({ ...base, keyPrefix: prefix, redis: appClient });
      await synced(auth);
      await auth.close();
      expect(appClient.status).toBe('ready');
      expect(await appClient.ping()).toBe('PONG');
      await appClient.set(`${prefix}still-mine`, '1', 'PX', 5000);
      expect(await appClient.get(`${prefix}still-mine`)).toBe('1');
    } finally {
      await appClient.quit();
    }
  });

  it('leaves no listeners of its own on a client passed in once closed', async () => {
    const appClient = new Redis(REDIS_URL);
    try {
      const before = { error: appClient.listenerCount('error'), ready: appClient.listenerCount('ready') };
      const auth = core.createAuth({ ...base, keyPrefix: newPrefix('listeners'), redis: appClient });
      await synced(auth);
      await auth.close();
      expect({ error: appClient.listenerCount('error'), ready: appClient.listenerCount('ready') }).toEqual(
        before,
      );
    } finally {
      await appClient.quit();
    }
  });

  it('closes the connections it opened from a URL', async () => {
    const forwarder = new CountingForwarder();
    const url = await forwarder.listen();
    try {
      const auth = core.createAuth({ ...base, keyPrefix: newPrefix('url'), redis: url });
      await synced(auth);
      expect(forwarder.open).toBe(2); // commands + subscriber
      await auth.close();
      const closed = await within(
        1000,
        () => forwarder.open,
        (n) => n === 0,
      );
      expect(closed.value).toBe(0);
    } finally {
      await forwarder.close();
    }
  });
});
