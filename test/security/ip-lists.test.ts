/**
 * security() IP lists: the deny list refuses addresses and CIDR ranges (IPv4, IPv6, IPv4-mapped
 * IPv6) with 403 CLIENT_BLOCKED in either mode; the allow list is checked and logged but never
 * blocked or banned; a bad entry is a ConfigError naming it. Clients are named with
 * X-Forwarded-For behind `trust proxy`, as behind a load balancer.
 */
import type { Express } from 'express';
import request from 'supertest';
import type * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { BENIGN_PATH, configError, expectRefusal, PROBE_PATH, secure, secureApp, type Echo } from './support';

const DENY = ['203.0.113.0/24', '198.51.100.7', '2001:db8:bad::/48', '2001:db8:f00d::1'];

function app(variant: ExpressVariant, threats: core.ThreatOptions, trustProxy = true): Express {
  return secureApp(variant, secure({ threats: { redis: false, ...threats } }), { trustProxy });
}

const from = (target: Express, ip: string, path = BENIGN_PATH) =>
  request(target).get(path).set('X-Forwarded-For', ip);

describe.each(eachExpress)('%s: deny list', (_name, variant) => {
  describe.each(['block', 'monitor'] as const)('in %s mode', (mode) => {
    const target = app(variant, { mode, denyList: DENY });

    it.each([
      ['an address in an IPv4 /24', '203.0.113.77'],
      ['the first address of the /24', '203.0.113.0'],
      ['the last address of the /24', '203.0.113.255'],
      ['a single IPv4 address', '198.51.100.7'],
      ['an address in an IPv6 /48', '2001:db8:bad:1234::5'],
      ['the same IPv6 address written in full', '2001:0db8:0bad:0000:0000:0000:0000:0001'],
      ['a single IPv6 address', '2001:db8:f00d::1'],
      ['an IPv4-mapped IPv6 address in the IPv4 /24', '::ffff:203.0.113.5'],
      ['an IPv4-mapped single address', '::ffff:198.51.100.7'],
    ])('refuses %s (%s) with 403 CLIENT_BLOCKED', async (_what, ip) => {
      const res = await from(target, ip);
      expectRefusal(res, 403, 'CLIENT_BLOCKED');
      expect(res.body.error).toBe('Access denied');
      expect(res.headers['retry-after']).toBeUndefined();
    });

    it.each([
      ['the next IPv4 /24', '203.0.114.1'],
      ['the address beside a single one', '198.51.100.8'],
      ['the next IPv6 /48', '2001:db8:bae::1'],
      ['the address beside a single IPv6 one', '2001:db8:f00d::2'],
      ['an IPv4-mapped address outside the lists', '::ffff:192.0.2.1'],
    ])('serves %s (%s)', async (_what, ip) => {
      const res = await from(target, ip);
      expect(res.status).toBe(200);
      expect((res.body as Echo).ip).toBe(ip);
    });

    it('refuses a deny-listed client whatever it sends, before its body is read', async () => {
      const res = await request(target)
        .post('/api/v1/patients')
        .set('X-Forwarded-For', '203.0.113.9')
        .set('Content-Type', 'application/json')
        .send('{not json');
      expectRefusal(res, 403, 'CLIENT_BLOCKED');
    });
  });

  it('uses the address Express trusts: X-Forwarded-For from an untrusted peer is ignored', async () => {
    const untrusting = app(variant, { denyList: DENY }, false);
    const res = await from(untrusting, '203.0.113.77');
    expect(res.status).toBe(200);
    expect((res.body as Echo).ip).toBe('127.0.0.1');
    const denyLoopback = app(variant, { denyList: ['127.0.0.0/8'] }, false);
    expectRefusal(await from(denyLoopback, '192.0.2.1'), 403, 'CLIENT_BLOCKED');
  });

  it('refuses deny-listed clients with signatures off too', async () => {
    const target = app(variant, { denyList: DENY, signatures: false });
    expectRefusal(await from(target, '203.0.113.1'), 403, 'CLIENT_BLOCKED');
    expect((await from(target, '192.0.2.1', PROBE_PATH)).status).toBe(200);
  });
});

describe.each(eachExpress)('%s: allow list', (_name, variant) => {
  it('logs what an allow-listed client sends but never blocks or bans it', async () => {
    const events: core.SecurityEvent[] = [];
    const security = secure({
      threats: {
        redis: false,
        allowList: ['10.20.0.0/16', 'fd00:1::/32'],
        ban: { threshold: 2, windowMs: 60_000, durationMs: 60_000 },
      },
      onEvent: (e) => events.push(e),
    });
    const target = secureApp(variant, security, { trustProxy: true });
    for (const ip of ['10.20.3.4', 'fd00:1:2::3']) {
      for (let i = 0; i < 5; i++) {
        const res = await from(target, ip, PROBE_PATH);
        expect(res.status).toBe(200);
        expect((res.body as Echo).ok).toBe(true);
      }
      expect((await from(target, ip)).status).toBe(200);
    }
    expect(security.stats()).toEqual({ 'sql_injection:logged': 10 });
    expect(events.map((e) => [e.reason, e.action, e.ip])).toEqual([
      ...Array.from({ length: 5 }, () => ['sql_injection', 'logged', '10.20.3.4']),
      ...Array.from({ length: 5 }, () => ['sql_injection', 'logged', 'fd00:1:2::3']),
    ]);
    // The same probes from any other client are blocked, and ban it at the threshold.
    expectRefusal(await from(target, '192.0.2.50', PROBE_PATH), 403, 'THREAT_DETECTED');
    expectRefusal(await from(target, '192.0.2.50', PROBE_PATH), 403, 'THREAT_DETECTED');
    expectRefusal(await from(target, '192.0.2.50'), 403, 'CLIENT_BLOCKED');
  });

  it('still refuses an allow-listed client’s polluting names (400), without counting them towards a ban', async () => {
    const security = secure({
      threats: {
        redis: false,
        allowList: ['10.20.0.0/16'],
        ban: { threshold: 2, windowMs: 60_000, durationMs: 60_000 },
      },
    });
    const target = secureApp(variant, security, { trustProxy: true });
    for (let i = 0; i < 4; i++)
      expectRefusal(await from(target, '10.20.3.4', '/x?__proto__[a]=1'), 400, 'INVALID_INPUT');
    expect((await from(target, '10.20.3.4')).status).toBe(200);
    expect(security.stats()).toEqual({ 'invalid_input:rejected': 4 });
  });
});

describe('IP list entries are checked when the middleware is made', () => {
  it.each([
    ['denyList', ['10.0.0.0/8', '10.0.0.0/33'], 1],
    ['denyList', ['not-an-ip'], 0],
    ['denyList', ['192.0.2.1', '2001:db8::/129'], 1],
    ['denyList', ['10.0.0.0/8/1'], 0],
    ['denyList', ['10.0.0.0/-1'], 0],
    ['denyList', ['300.1.1.1'], 0],
    ['denyList', [''], 0],
    ['denyList', ['10.0.0.0/x'], 0],
    ['allowList', ['192.0.2.0/24', 'localhost'], 1],
    ['allowList', [42], 0],
  ] as const)('threats.%s %j is a ConfigError naming entry %i', (list, entries, index) => {
    const error = configError(() =>
      secure({ threats: { redis: false, [list]: entries as unknown as string[] } }),
    );
    expect(error.message).toContain(
      `security: threats.${list}[${index}] must be an IP address or CIDR range`,
    );
    expect(error.issues).toEqual([expect.objectContaining({ name: `threats.${list}[${index}]` })]);
  });

  it('a list that is not an array is a ConfigError naming it', () => {
    const error = configError(() => secure({ threats: { denyList: '10.0.0.0/8' as unknown as string[] } }));
    expect(error.message).toContain(
      'security: threats.denyList must be an array of IP addresses or CIDR ranges',
    );
  });
});
