/**
 * Temporary bans, in memory (one instance): `threshold` violations within `windowMs` refuse the
 * client — every request, benign ones too — with 403 CLIENT_BLOCKED and Retry-After for
 * `durationMs`; other clients are not affected; `unban()` lifts a ban; IPv6 clients are banned by
 * network (/56 unless `ipv6Subnet` says otherwise). Windows and bans here are short (≤ 1 s).
 */
import type { Express } from 'express';
import request from 'supertest';
import type * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { allowedWithin, BENIGN_PATH, expectRefusal, PROBE_PATH, secure, secureApp } from './support';

function banning(
  variant: ExpressVariant,
  ban: { threshold: number; windowMs: number; durationMs: number } | false,
  threats: core.ThreatOptions = {},
): { app: Express; security: core.SecurityMiddleware } {
  const security = secure({ threats: { redis: false, ban, ...threats } });
  return { app: secureApp(variant, security, { trustProxy: true }), security };
}

const probe = (app: Express, ip: string, path = PROBE_PATH) =>
  request(app).get(path).set('X-Forwarded-For', ip);
const benign = (app: Express, ip: string) => request(app).get(BENIGN_PATH).set('X-Forwarded-For', ip);

async function violate(app: Express, ip: string, times: number, path = PROBE_PATH): Promise<void> {
  for (let i = 0; i < times; i++) {
    const res = await probe(app, ip, path);
    expect(res.status).toBe(path === PROBE_PATH ? 403 : 400);
  }
}

describe.each(eachExpress)('%s: bans in memory', (_name, variant) => {
  it('bans at the threshold: benign requests refused with Retry-After, other clients served, lifted after durationMs', async () => {
    const { app } = banning(variant, { threshold: 3, windowMs: 5_000, durationMs: 1_000 });
    const ip = '192.0.2.10';
    await violate(app, ip, 2);
    expect((await benign(app, ip)).status).toBe(200);
    const third = await probe(app, ip);
    expectRefusal(third, 403, 'THREAT_DETECTED');
    const bannedAt = Date.now();

    const refused = await benign(app, ip);
    expectRefusal(refused, 403, 'CLIENT_BLOCKED');
    expect(refused.body.error).toBe('Access temporarily denied');
    expect(refused.headers['retry-after']).toBe('1');
    expect((await benign(app, '192.0.2.11')).status).toBe(200);
    expect((await benign(app, '2001:db8::11')).status).toBe(200);

    const lifted = await allowedWithin(app, ip, 2_000);
    expect(lifted.value).toBe(200);
    const after = Date.now() - bannedAt;
    expect(after).toBeGreaterThanOrEqual(950);
    expect(after).toBeLessThan(1_600);
    // The violations that made the ban were spent on it: one more is not a new ban.
    await violate(app, ip, 1);
    expect((await benign(app, ip)).status).toBe(200);
  });

  it('Retry-After is the rest of the ban in whole seconds', async () => {
    const { app } = banning(variant, { threshold: 1, windowMs: 5_000, durationMs: 5_000 });
    await violate(app, '192.0.2.20', 1);
    expect((await benign(app, '192.0.2.20')).headers['retry-after']).toBe('5');
  });

  it('only violations within windowMs count', async () => {
    const { app } = banning(variant, { threshold: 3, windowMs: 300, durationMs: 5_000 });
    const ip = '192.0.2.30';
    await violate(app, ip, 2);
    await new Promise((resolve) => setTimeout(resolve, 350));
    await violate(app, ip, 1);
    expect((await benign(app, ip)).status).toBe(200);
    await violate(app, ip, 2);
    expectRefusal(await benign(app, ip), 403, 'CLIENT_BLOCKED');
  });

  it('unban(ip) lifts a ban at once and forgets the violations', async () => {
    const { app, security } = banning(variant, { threshold: 3, windowMs: 60_000, durationMs: 60_000 });
    const ip = '192.0.2.40';
    await violate(app, ip, 3);
    expectRefusal(await benign(app, ip), 403, 'CLIENT_BLOCKED');
    await security.unban(ip);
    expect((await benign(app, ip)).status).toBe(200);
    await violate(app, ip, 2);
    expect((await benign(app, ip)).status).toBe(200);
    await security.unban('192.0.2.99'); // not banned: nothing happens
    expect((await benign(app, ip)).status).toBe(200);
  });

  it('bans IPv6 clients by /56: the whole network shares violations and the ban', async () => {
    const { app, security } = banning(variant, { threshold: 3, windowMs: 60_000, durationMs: 60_000 });
    // Three addresses of 2001:db8:aa:bb00::/56 together reach the threshold.
    await violate(app, '2001:db8:aa:bb00::1', 1);
    await violate(app, '2001:db8:aa:bb42::2', 1);
    await violate(app, '2001:db8:aa:bbff:ffff:ffff:ffff:ffff', 1);
    for (const ip of ['2001:db8:aa:bb00::1', '2001:db8:aa:bb7f::9', '2001:db8:aa:bbff::1'])
      expectRefusal(await benign(app, ip), 403, 'CLIENT_BLOCKED');
    for (const ip of ['2001:db8:aa:bc00::1', '2001:db8:aa:ba00::1', '2001:db8:ab:bb00::1'])
      expect((await benign(app, ip)).status).toBe(200);
    // Any address of the network lifts it.
    await security.unban('2001:db8:aa:bb12::7');
    expect((await benign(app, '2001:db8:aa:bb00::1')).status).toBe(200);
  });

  it('ipv6Subnet: 64 bans the /64 only', async () => {
    const { app } = banning(
      variant,
      { threshold: 2, windowMs: 60_000, durationMs: 60_000 },
      { ipv6Subnet: 64 },
    );
    await violate(app, '2001:db8:aa:bb00::1', 1);
    await violate(app, '2001:db8:aa:bb00:ffff::2', 1);
    expectRefusal(await benign(app, '2001:db8:aa:bb00:1::3'), 403, 'CLIENT_BLOCKED');
    expect((await benign(app, '2001:db8:aa:bb01::1')).status).toBe(200);
  });

  it('bans an IPv4-mapped IPv6 client as its IPv4 address', async () => {
    const { app } = banning(variant, { threshold: 2, windowMs: 60_000, durationMs: 60_000 });
    await violate(app, '::ffff:192.0.2.50', 1);
    await violate(app, '192.0.2.50', 1);
    expectRefusal(await benign(app, '192.0.2.50'), 403, 'CLIENT_BLOCKED');
    expectRefusal(await benign(app, '::ffff:192.0.2.50'), 403, 'CLIENT_BLOCKED');
    // …and not every other IPv4-mapped client.
    expect((await benign(app, '::ffff:192.0.2.51')).status).toBe(200);
  });

  it('counts polluting names and too-deep bodies as violations', async () => {
    const { app } = banning(variant, { threshold: 3, windowMs: 60_000, durationMs: 60_000 });
    await violate(app, '192.0.2.60', 2, '/x?__proto__[admin]=1');
    const deep = await request(app)
      .post('/x')
      .set('X-Forwarded-For', '192.0.2.60')
      .send({ a: { b: { c: {} } } });
    expect(deep.status).toBe(200); // 4 levels is within the default depth (32)
    const tooDeep = await request(app)
      .post('/x')
      .set('X-Forwarded-For', '192.0.2.60')
      .set('Content-Type', 'application/json')
      .send('['.repeat(40) + ']'.repeat(40));
    expectRefusal(tooDeep, 400, 'INVALID_INPUT');
    expectRefusal(await benign(app, '192.0.2.60'), 403, 'CLIENT_BLOCKED');
  });

  it('does not count limits, repeated parameters or bad JSON as violations', async () => {
    const security = secure({
      threats: { redis: false, ban: { threshold: 2, windowMs: 60_000, durationMs: 60_000 } },
      parameterPollution: 'reject',
      limits: { urlLength: 64 },
    });
    const app = secureApp(variant, security, { trustProxy: true });
    const ip = '192.0.2.70';
    for (let i = 0; i < 3; i++) {
      expectRefusal(
        await request(app)
          .get(`/x?a=${'a'.repeat(64)}`)
          .set('X-Forwarded-For', ip),
        414,
        'URI_TOO_LONG',
      );
      expectRefusal(await request(app).get('/x?a=1&a=2').set('X-Forwarded-For', ip), 400, 'INVALID_INPUT');
      const bad = await request(app)
        .post('/x')
        .set('X-Forwarded-For', ip)
        .set('Content-Type', 'application/json')
        .send('{');
      expectRefusal(bad, 400, 'INVALID_JSON');
    }
    expect((await benign(app, ip)).status).toBe(200);
    expect(security.stats()['banned:banned']).toBeUndefined();
  });

  it('ban: false never bans; monitor mode never bans', async () => {
    const off = banning(variant, false);
    await violate(off.app, '192.0.2.80', 12);
    expect((await benign(off.app, '192.0.2.80')).status).toBe(200);

    const monitor = banning(
      variant,
      { threshold: 2, windowMs: 60_000, durationMs: 60_000 },
      { mode: 'monitor' },
    );
    for (let i = 0; i < 5; i++) expect((await probe(monitor.app, '192.0.2.81')).status).toBe(200);
    expect((await benign(monitor.app, '192.0.2.81')).status).toBe(200);
    expect(monitor.security.stats()).toEqual({ 'sql_injection:logged': 5 });
  });
});
