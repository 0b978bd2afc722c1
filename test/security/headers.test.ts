/**
 * security() headers: helmet's API preset plus Cache-Control and Permissions-Policy, the same on
 * every response the app sends — a success, a 404, a bad body, a threat, a rate limit, a crash —
 * and each override doing exactly what it says.
 */
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { PROBE_PATH, secure, secureApp, settings, silent } from './support';

const CSP = "default-src 'none';frame-ancestors 'none';base-uri 'none';form-action 'none'";

/** Every security header, exactly: helmet's API preset and ours. */
const EXPECTED: Readonly<Record<string, string>> = {
  'content-security-policy': CSP,
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
  'cross-origin-opener-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  'x-permitted-cross-domain-policies': 'none',
  'cache-control': 'no-store',
  'permissions-policy': core.DEFAULT_PERMISSIONS_POLICY,
};

/** What every response carries besides security headers (body framing, the request id, rate limits). */
const OTHER = new Set([
  'content-type',
  'content-length',
  'etag',
  'date',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'x-request-id',
  'ratelimit',
  'ratelimit-policy',
  'retry-after',
]);

/** The response's headers without the framing ones: exactly the security headers, nothing more. */
function securityHeaders(res: request.Response): Record<string, string> {
  return Object.fromEntries(
    Object.entries(res.headers as Record<string, string>).filter(([name]) => !OTHER.has(name)),
  );
}

const limiters: core.RateLimiter[] = [];
afterAll(async () => {
  await Promise.all(limiters.map((l) => l.close()));
});

function app(variant: ExpressVariant, options: core.SecurityOptions = {}, limit = false): Express {
  return secureApp(variant, secure({ threats: { ban: false }, ...options }), {
    catchAll: false,
    routes: (a) => {
      if (limit) {
        const limiter = core.rateLimit({
          settings,
          logger: silent,
          redis: false,
          limit: 1,
          windowMs: 60_000,
        });
        limiters.push(limiter);
        a.use(limiter);
      }
      a.get('/ok', (_req, res) => {
        res.json({ ok: true });
      });
      a.post('/echo', (req, res) => {
        res.json({ body: req.body as unknown });
      });
      a.get('/cached', (_req, res) => {
        res.setHeader('Cache-Control', 'public, max-age=60');
        res.json({ cached: true });
      });
      a.get('/boom', () => {
        throw new Error('route failed');
      });
    },
  });
}

describe.each(eachExpress)('%s: security headers', (_name, variant) => {
  const plain = app(variant);

  it('sends exactly the security header set on a 200, and no X-Powered-By', async () => {
    const res = await request(plain).get('/ok');
    expect(res.status).toBe(200);
    expect(securityHeaders(res)).toEqual(EXPECTED);
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('sends the same set on a 404, a 400 (bad JSON), a 403 (threat), a 429 and a 500', async () => {
    const limited = app(variant, {}, true);
    expect((await request(limited).get('/ok')).status).toBe(200);
    const cases: [number, string, Promise<request.Response>][] = [
      [404, 'NOT_FOUND', request(plain).get('/nowhere')],
      [
        400,
        'INVALID_JSON',
        request(plain).post('/echo').set('Content-Type', 'application/json').send('{"a":'),
      ],
      [403, 'THREAT_DETECTED', request(plain).get(PROBE_PATH)],
      [429, 'RATE_LIMITED', request(limited).get('/ok')],
      [500, 'INTERNAL_ERROR', request(plain).get('/boom')],
    ];
    for (const [status, code, pending] of cases) {
      const res = await pending;
      expect({ status: res.status, code: (res.body as { error_code?: string }).error_code }).toEqual({
        status,
        code,
      });
      expect(securityHeaders(res)).toEqual(EXPECTED);
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });

  it('leaves a route its own Cache-Control', async () => {
    const res = await request(plain).get('/cached');
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('public, max-age=60');
    expect(securityHeaders(res)).toEqual({ ...EXPECTED, 'cache-control': 'public, max-age=60' });
  });

  it('helmet: { strictTransportSecurity: false } drops HSTS and nothing else', async () => {
    const res = await request(app(variant, { helmet: { strictTransportSecurity: false } })).get('/ok');
    const { 'strict-transport-security': _hsts, ...rest } = EXPECTED;
    expect(securityHeaders(res)).toEqual(rest);
  });

  it('helmet: { xXssProtection: true, … } brings back the four legacy headers the preset leaves out', async () => {
    const res = await request(
      app(variant, {
        helmet: {
          xXssProtection: true,
          xDownloadOptions: true,
          xDnsPrefetchControl: true,
          originAgentCluster: true,
        },
      }),
    ).get('/ok');
    expect(securityHeaders(res)).toEqual({
      ...EXPECTED,
      'x-xss-protection': '0',
      'x-download-options': 'noopen',
      'x-dns-prefetch-control': 'off',
      'origin-agent-cluster': '?1',
    });
  });

  // The preset's `useDefaults: false` must survive an override that only gives directives:
  // otherwise helmet's web-page defaults come back (frame-ancestors 'self', style-src
  // 'unsafe-inline', upgrade-insecure-requests) under an API's CSP.
  it('helmet: { contentSecurityPolicy: { directives } } replaces the CSP with those directives', async () => {
    const res = await request(
      app(variant, {
        helmet: {
          contentSecurityPolicy: { directives: { defaultSrc: ["'self'"], imgSrc: ["'self'", 'data:'] } },
        },
      }),
    ).get('/ok');
    expect(securityHeaders(res)).toEqual({
      ...EXPECTED,
      'content-security-policy': "default-src 'self';img-src 'self' data:",
    });
  });

  it('helmet: { contentSecurityPolicy: { useDefaults: false, directives } } is exactly those directives', async () => {
    const res = await request(
      app(variant, {
        helmet: { contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'self'"] } } },
      }),
    ).get('/ok');
    expect(res.headers['content-security-policy']).toBe("default-src 'self'");
  });

  it('cacheControl: false leaves Cache-Control to the app', async () => {
    const res = await request(app(variant, { cacheControl: false })).get('/ok');
    const { 'cache-control': _cc, ...rest } = EXPECTED;
    expect(securityHeaders(res)).toEqual(rest);
  });

  it("cacheControl: 'private, no-cache' is sent as given", async () => {
    const res = await request(app(variant, { cacheControl: 'private, no-cache' })).get('/ok');
    expect(securityHeaders(res)).toEqual({ ...EXPECTED, 'cache-control': 'private, no-cache' });
  });

  it("permissionsPolicy: 'camera=()' replaces the default; false drops it", async () => {
    const camera = await request(app(variant, { permissionsPolicy: 'camera=()' })).get('/ok');
    expect(securityHeaders(camera)).toEqual({ ...EXPECTED, 'permissions-policy': 'camera=()' });
    const none = await request(app(variant, { permissionsPolicy: false })).get('/ok');
    const { 'permissions-policy': _pp, ...rest } = EXPECTED;
    expect(securityHeaders(none)).toEqual(rest);
  });

  it('helmet: false sends only Cache-Control and Permissions-Policy of ours', async () => {
    const res = await request(app(variant, { helmet: false })).get('/ok');
    const { 'x-powered-by': _express, ...ours } = securityHeaders(res);
    expect(ours).toEqual({
      'cache-control': 'no-store',
      'permissions-policy': core.DEFAULT_PERMISSIONS_POLICY,
    });
  });

  it('helmet: false, cacheControl: false, permissionsPolicy: false sends no security header', async () => {
    const res = await request(
      app(variant, { helmet: false, cacheControl: false, permissionsPolicy: false }),
    ).get('/ok');
    const { 'x-powered-by': _express, ...ours } = securityHeaders(res);
    expect(ours).toEqual({});
  });

  it('the exported preset is the one applied', () => {
    expect(core.API_HELMET_PRESET).toMatchObject({
      contentSecurityPolicy: { useDefaults: false },
      xFrameOptions: { action: 'deny' },
      referrerPolicy: { policy: 'no-referrer' },
      crossOriginResourcePolicy: { policy: 'same-origin' },
    });
  });
});
