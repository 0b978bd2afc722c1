/**
 * Whom a limiter counts: the client address before `authenticate()` (IPv6 by /56), the verified user
 * after it, `keyBy` to choose, tiers by role; and `trust proxy` decides whether X-Forwarded-For is
 * believed — a spoofed header must not buy a fresh budget.
 */
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { appWith, expectLimited, limitedApp, limiterScope, settings, uniqueName } from './support';

const scope = limiterScope('keys');
const auth = core.createAuth({
  secret: 'x'.repeat(32),
  redis: false,
  settings,
  logger: core.createLogger('auth', { settings, console: false }),
});
const tokens = {
  alice: auth.createTokens({ userId: 'alice', roles: ['patient'] }).access_token,
  bob: auth.createTokens({ userId: 'bob', roles: ['patient'] }).access_token,
  admin: auth.createTokens({ userId: 'root', roles: ['patient', 'admin'] }).access_token,
  provider: auth.createTokens({ userId: 'dr-who', roles: ['provider'] }).access_token,
};
type Who = keyof typeof tokens | 'anonymous';

afterAll(async () => {
  await auth.close();
});

/** Statuses of `n` requests in sequence as `who`, and the limiter key of the first. */
async function send(
  app: Express,
  who: Who,
  n: number,
  xff?: string,
): Promise<{ statuses: number[]; key: unknown }> {
  const statuses: number[] = [];
  let key: unknown;
  for (let i = 0; i < n; i++) {
    let req = request(app).get('/');
    if (who !== 'anonymous') req = req.set('Authorization', `Bearer ${tokens[who]}`);
    if (xff !== undefined) req = req.set('X-Forwarded-For', xff);
    const res = await req;
    if (res.status === 429) expectLimited(res, 60);
    statuses.push(res.status);
    if (i === 0) key = (res.body as { key?: unknown }).key;
  }
  return { statuses, key };
}

const ok = (n: number) => Array.from({ length: n }, () => 200);
const limitedAfter = (passed: number, total: number) => [
  ...ok(passed),
  ...Array.from({ length: total - passed }, () => 429),
];

/** An app with `authenticate({optional: true})` before or after the limiter. */
function authApp(
  variant: ExpressVariant,
  limiter: core.RateLimiter,
  order: 'limiter-first' | 'auth-first',
): Express {
  return appWith(variant, (app) => {
    if (order === 'limiter-first') app.use(limiter, auth.authenticate({ optional: true }));
    else app.use(auth.authenticate({ optional: true }), limiter);
  });
}

describe.each(eachExpress)('%s', (_label, variant) => {
  describe('by default (keyBy auto)', () => {
    it('counts by client address before authenticate(): two users from one address share a budget', async () => {
      const app = authApp(variant, scope.limiter({ name: uniqueName('auto-ip'), limit: 3 }), 'limiter-first');
      const alice = await send(app, 'alice', 2);
      expect(alice).toEqual({ statuses: ok(2), key: 'ip:127.0.0.1' });
      expect((await send(app, 'bob', 2)).statuses).toEqual([200, 429]);
      expect((await send(app, 'anonymous', 1)).statuses).toEqual([429]);
    });

    it('counts by verified user after authenticate(): two users from one address have their own budgets', async () => {
      const name = uniqueName('auto-user');
      const app = authApp(variant, scope.limiter({ name, limit: 3 }), 'auth-first');
      const alice = await send(app, 'alice', 4);
      expect(alice).toEqual({ statuses: limitedAfter(3, 4), key: 'user:alice' });
      const bob = await send(app, 'bob', 4);
      expect(bob).toEqual({ statuses: limitedAfter(3, 4), key: 'user:bob' });
      // Anonymous requests on the same route count against the address, apart from both users.
      const anonymous = await send(app, 'anonymous', 4);
      expect(anonymous).toEqual({ statuses: limitedAfter(3, 4), key: 'ip:127.0.0.1' });
      expect(await scope.keys(name)).toEqual(
        ['ip:127.0.0.1', 'user:alice', 'user:bob'].map((k) => scope.redisKey(name, k)).sort(),
      );
    });
  });

  it("keyBy: 'user' gives each user a budget, and anonymous requests count against their address", async () => {
    const app = authApp(
      variant,
      scope.limiter({ name: uniqueName('user'), limit: 2, keyBy: 'user' }),
      'auth-first',
    );
    expect(await send(app, 'alice', 3)).toEqual({ statuses: limitedAfter(2, 3), key: 'user:alice' });
    expect(await send(app, 'bob', 3)).toEqual({ statuses: limitedAfter(2, 3), key: 'user:bob' });
    expect(await send(app, 'anonymous', 3)).toEqual({ statuses: limitedAfter(2, 3), key: 'ip:127.0.0.1' });
  });

  it("keyBy: 'ip' ignores the user even after authenticate()", async () => {
    const app = authApp(
      variant,
      scope.limiter({ name: uniqueName('ip'), limit: 3, keyBy: 'ip' }),
      'auth-first',
    );
    expect(await send(app, 'alice', 2)).toEqual({ statuses: ok(2), key: 'ip:127.0.0.1' });
    expect((await send(app, 'bob', 2)).statuses).toEqual([200, 429]);
  });

  it('tiers give a role its own, higher limit; the highest tier of a user’s roles wins', async () => {
    const app = authApp(
      variant,
      scope.limiter({ name: uniqueName('tiers'), limit: 2, tiers: { admin: 5, provider: 3, patient: 1 } }),
      'auth-first',
    );
    // root has patient (1) and admin (5): 5.
    expect((await send(app, 'admin', 6)).statuses).toEqual(limitedAfter(5, 6));
    expect((await send(app, 'provider', 4)).statuses).toEqual(limitedAfter(3, 4));
    expect((await send(app, 'alice', 2)).statuses).toEqual(limitedAfter(1, 2));
    // No role listed (anonymous): the base limit.
    expect((await send(app, 'anonymous', 3)).statuses).toEqual(limitedAfter(2, 3));
    const res = await request(app).get('/').set('Authorization', `Bearer ${tokens.provider}`);
    expect(res.headers['ratelimit-policy']).toMatch(/; q=3; w=60; /);
  });

  it('a keyBy function names the client; no key falls back to the address', async () => {
    const name = uniqueName('fn');
    const app = limitedApp(variant, scope.limiter({ name, limit: 2, keyBy: (req) => req.get('x-tenant') }));
    const tenant = async (value: string | undefined, n: number) => {
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) {
        const res = await (value === undefined
          ? request(app).get('/')
          : request(app).get('/').set('x-tenant', value));
        out.push(res.status === 200 ? (res.body as { key: unknown }).key : res.status);
      }
      return out;
    };
    expect(await tenant('acme', 3)).toEqual(['key:acme', 'key:acme', 429]);
    expect(await tenant('globex', 1)).toEqual(['key:globex']);
    expect(await tenant(undefined, 3)).toEqual(['ip:127.0.0.1', 'ip:127.0.0.1', 429]);
    expect(await tenant('', 1)).toEqual([429]);
  });

  it('a keyBy function cannot choose the cost of its requests through the key', async () => {
    const name = uniqueName('inject');
    // The separator the limiter uses between key and cost, with a cost of 100, or of 0 (free).
    const app = limitedApp(
      variant,
      scope.limiter({ name, limit: 3, keyBy: (req) => `k\u0000${req.get('x-units') ?? ''}` }),
    );
    const statuses: number[] = [];
    for (const units of ['0', '0', '0', '0'])
      statuses.push((await request(app).get('/').set('x-units', units)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(await scope.keys(name)).toEqual([scope.redisKey(name, 'key:k0')]);
    expect(await scope.admin().get(scope.redisKey(name, 'key:k0'))).toBe('4');
    expect((await request(app).get('/').set('x-units', '100')).status).toBe(200);
    expect(await scope.admin().get(scope.redisKey(name, 'key:k100'))).toBe('1');
  });

  describe('client addresses behind a proxy', () => {
    it('counts IPv6 clients by /56: hosts in one /56 share a budget, another /56 has its own', async () => {
      const name = uniqueName('v6');
      const app = limitedApp(variant, scope.limiter({ name, limit: 3 }), true);
      const a1 = await send(app, 'anonymous', 2, '2001:db8:abcd:1200::1');
      expect(a1).toEqual({ statuses: ok(2), key: 'ip:2001:db8:abcd:1200::/56' });
      // Another host of the same /56 (2001:db8:abcd:12xx::/56): one left, then refused.
      expect((await send(app, 'anonymous', 2, '2001:db8:abcd:12ff:ffff:1:2:3')).statuses).toEqual([200, 429]);
      // The neighbouring /56 is another client.
      const b = await send(app, 'anonymous', 4, '2001:db8:abcd:1300::1');
      expect(b).toEqual({ statuses: limitedAfter(3, 4), key: 'ip:2001:db8:abcd:1300::/56' });
      expect(await scope.keys(name)).toEqual([
        scope.redisKey(name, 'ip:2001:db8:abcd:1200::/56'),
        scope.redisKey(name, 'ip:2001:db8:abcd:1300::/56'),
      ]);
    });

    it('counts IPv6 by another prefix with ipv6Subnet, and IPv4 and IPv4-mapped addresses as one', async () => {
      const app = limitedApp(
        variant,
        scope.limiter({ name: uniqueName('v6-64'), limit: 2, ipv6Subnet: 64 }),
        true,
      );
      expect(await send(app, 'anonymous', 2, '2001:db8:0:1::1')).toEqual({
        statuses: ok(2),
        key: 'ip:2001:db8:0:1::/64',
      });
      // Same /56, different /64: its own budget now.
      expect(await send(app, 'anonymous', 2, '2001:db8:0:2::1')).toEqual({
        statuses: ok(2),
        key: 'ip:2001:db8:0:2::/64',
      });
      expect(await send(app, 'anonymous', 1, '198.51.100.7')).toEqual({
        statuses: [200],
        key: 'ip:198.51.100.7',
      });
      // ::ffff:198.51.100.7 is the same IPv4 client, not the IPv6 network ::/64 all mapped addresses share.
      expect((await send(app, 'anonymous', 2, '::ffff:198.51.100.7')).statuses).toEqual([200, 429]);
      expect((await send(app, 'anonymous', 1, '::ffff:198.51.100.8')).statuses).toEqual([200]);
    });

    it('with trust proxy off, a spoofed X-Forwarded-For does not give a fresh budget', async () => {
      const name = uniqueName('spoof');
      const app = limitedApp(variant, scope.limiter({ name, limit: 3 }));
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await request(app)
          .get('/')
          .set('X-Forwarded-For', `203.0.113.${i + 1}`);
        statuses.push(res.status);
      }
      expect(statuses).toEqual(limitedAfter(3, 5));
      expect(await scope.keys(name)).toEqual([scope.redisKey(name, 'ip:127.0.0.1')]);
    });

    it("with trust proxy 'loopback', believes X-Forwarded-For from the local proxy — its last hop only", async () => {
      const name = uniqueName('loopback');
      const app = limitedApp(variant, scope.limiter({ name, limit: 2 }), 'loopback');
      expect(await send(app, 'anonymous', 3, '203.0.113.1')).toEqual({
        statuses: limitedAfter(2, 3),
        key: 'ip:203.0.113.1',
      });
      expect(await send(app, 'anonymous', 3, '203.0.113.2')).toEqual({
        statuses: limitedAfter(2, 3),
        key: 'ip:203.0.113.2',
      });
      // What the client itself wrote in front of the address the proxy saw changes nothing.
      const spoofed: number[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await request(app).get('/').set('X-Forwarded-For', `10.9.9.${i}, 203.0.113.3`);
        spoofed.push(res.status);
      }
      expect(spoofed).toEqual(limitedAfter(2, 3));
      expect(await scope.keys(name)).toEqual(
        ['ip:203.0.113.1', 'ip:203.0.113.2', 'ip:203.0.113.3'].map((k) => scope.redisKey(name, k)),
      );
    });

    it('with trust proxy naming another proxy, ignores X-Forwarded-For from this peer', async () => {
      const name = uniqueName('other-proxy');
      const app = limitedApp(variant, scope.limiter({ name, limit: 2 }), '10.0.0.1');
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await request(app)
          .get('/')
          .set('X-Forwarded-For', `203.0.113.${i + 10}`);
        statuses.push(res.status);
      }
      expect(statuses).toEqual(limitedAfter(2, 3));
      expect(await scope.keys(name)).toEqual([scope.redisKey(name, 'ip:127.0.0.1')]);
    });
  });
});
