/**
 * core.defaults(): the chain requestContext → metrics → logging → security → rateLimit in one
 * app.use(), on Express 4 and 5 — its order shown by what each part sees of the others' refusals,
 * each part switched off with `false`, and bad options refused at start-up.
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, EXPRESS } from '../support/express';
import { captureLogger } from '../support/logs';
import { testMetrics, valueOf } from '../support/metrics';
import { appWith, closeChains, quietSettings, track } from './support';

afterEach(closeChains);

describe.each(eachExpress)('%s', (_name, variant) => {
  it('puts the parts in pipeline order', () => {
    const chain = track(
      core.defaults({ settings: quietSettings(), registry: testMetrics(), rateLimit: { redis: false } }),
    );
    expect(chain.handlers.map((h) => h.name)).toEqual([
      'requestContextMiddleware',
      'metricsMiddleware',
      'loggingMiddleware',
      'securityMiddleware',
      'rateLimitMiddleware',
    ]);
    expect(chain.security).toBe(chain.handlers[3]);
    expect(chain.rateLimit).toBe(chain.handlers[4]);
  });

  it('counts and logs a 429 with its request id; the refusal carries the security headers', async () => {
    const registry = testMetrics();
    const log = captureLogger('http');
    const app = appWith(
      variant,
      track(
        core.defaults({
          settings: quietSettings(),
          registry,
          logging: { logger: log.logger },
          security: { threats: { redis: false } },
          rateLimit: { limit: 2, redis: false },
        }),
      ),
    );
    for (const id of ['ok-1', 'ok-2']) {
      const res = await request(app).get('/patients/p1').set('x-request-id', id);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ id: 'p1', request_id: id });
    }
    const limited = await request(app).get('/patients/p1').set('x-request-id', 'limited-3');
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({
      success: false,
      error_code: 'RATE_LIMITED',
      details: { request_id: 'limited-3' },
    });
    // requestContext() ran before the limiter, security() before it too.
    expect(limited.headers['x-request-id']).toBe('limited-3');
    expect(limited.headers['cache-control']).toBe('no-store');
    expect(limited.headers['content-security-policy']).toBeDefined();
    expect(limited.headers['retry-after']).toBeDefined();

    // metrics() ran before the limiter: the 429 is counted (route: no route matched it).
    expect(await valueOf(registry, 'http_requests_total', { status_code: 429 })).toBe(1);
    expect(await valueOf(registry, 'http_requests_total', { status_code: 200, route: '/patients/:id' })).toBe(
      2,
    );
    expect(await valueOf(registry, 'rate_limit_hits_total', { limiter: 'api' })).toBe(1);

    // logging() ran before the limiter: the 429 has its access line, with the request id.
    const lines = log.lines().filter((l) => l.message === 'request completed');
    expect(lines.map((l) => [l.status, l.request_id])).toEqual([
      [200, 'ok-1'],
      [200, 'ok-2'],
      [429, 'limited-3'],
    ]);
  });

  it('answers a request security() refuses with the request id, counts and logs it, and spends no rate budget', async () => {
    const registry = testMetrics();
    const log = captureLogger('http');
    const chain = track(
      core.defaults({
        settings: quietSettings(),
        registry,
        logging: { logger: log.logger },
        security: { threats: { redis: false, ban: false } },
        rateLimit: { limit: 1, redis: false },
      }),
    );
    const app = appWith(variant, chain);
    const blocked = await request(app)
      .get('/patients/p1?file=../../../../etc/passwd')
      .set('x-request-id', 'probe-1');
    expect(blocked.status).toBe(403);
    expect(blocked.headers['x-request-id']).toBe('probe-1');
    expect(blocked.body).toMatchObject({ error_code: 'THREAT_DETECTED', details: { request_id: 'probe-1' } });
    expect(await valueOf(registry, 'http_requests_total', { status_code: 403 })).toBe(1);
    expect(log.lines().find((l) => l.status === 403)).toMatchObject({ request_id: 'probe-1' });
    expect(chain.security?.stats()).toEqual({ 'path_traversal:blocked': 1 });

    // The limiter comes after security(): the refused probe did not use the one request allowed.
    const first = await request(app).get('/patients/p1');
    expect(first.status).toBe(200);
    expect(first.headers.ratelimit).toBeDefined();
    expect((await request(app).get('/patients/p1')).status).toBe(429);
  });

  it('leaves a part out when it is false', async () => {
    const registry = testMetrics();
    const log = captureLogger('http');
    const chain = track(
      core.defaults({
        settings: quietSettings(),
        registry,
        logging: { logger: log.logger },
        security: false,
        rateLimit: false,
      }),
    );
    expect(chain.handlers.map((h) => h.name)).toEqual([
      'requestContextMiddleware',
      'metricsMiddleware',
      'loggingMiddleware',
    ]);
    expect(chain.security).toBeUndefined();
    expect(chain.rateLimit).toBeUndefined();
    const res = await request(
      variant
        .express()
        .use(chain, (_req: unknown, res: import('express').Response) => res.json({ ok: true })),
    ).get('/');
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBeDefined();
    expect(res.headers['content-security-policy']).toBeUndefined();
    expect(res.headers.ratelimit).toBeUndefined();
    expect(await valueOf(registry, 'http_requests_total')).toBe(1);
    expect(log.lines()).toHaveLength(1);

    const bare = track(
      core.defaults({ context: false, metrics: false, logging: false, security: false, rateLimit: false }),
    );
    const plain = await request(
      variant.express().use(bare, (_req: unknown, res: import('express').Response) => res.json({ ok: true })),
    ).get('/');
    expect(plain.status).toBe(200);
    expect(plain.headers['x-request-id']).toBeUndefined();
  });

  it('passes each part its options, the shared settings and registry under its own', async () => {
    const own = testMetrics();
    const shared = testMetrics();
    const chain = track(
      core.defaults({
        settings: quietSettings({ RATE_LIMIT_REQUESTS: '7' }),
        registry: shared,
        context: { header: 'x-correlation-id' },
        metrics: { metrics: own },
        logging: false,
        security: { cors: false, threats: { redis: false } },
        rateLimit: { name: 'edge', redis: false },
      }),
    );
    const res = await request(appWith(variant, chain)).get('/patients/p2').set('x-correlation-id', 'corr-1');
    expect(res.body).toEqual({ id: 'p2', request_id: 'corr-1' });
    expect(res.headers.ratelimit).toBe('"edge"; r=6; t=60');
    expect(await valueOf(own, 'http_requests_total')).toBe(1);
    expect(await valueOf(shared, 'http_requests_total')).toBeUndefined();
    expect(await valueOf(shared, 'rate_limit_hits_total', { limiter: 'edge' })).toBe(0);
  });
});

describe('options', () => {
  const settings = quietSettings();

  it('refuses an unknown part with a hint', () => {
    expect(() => core.defaults({ ratelimit: {} } as never)).toThrow(
      /^defaults: unknown option "ratelimit"\. Did you mean "rateLimit"\?/,
    );
  });

  it.each([
    ['security', 'on'],
    ['rateLimit', 100],
    ['logging', null],
    ['context', ['x-request-id']],
  ])('refuses %s: %p, naming the part', (part, value) => {
    let thrown: unknown;
    try {
      core.defaults({ settings, [part]: value });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(core.ConfigError);
    expect((thrown as core.ConfigError).code).toBe('CONFIG_INVALID');
    expect((thrown as Error).message).toMatch(
      new RegExp(`^defaults: ${part} must be ${part}\\(\\) options, true or false`),
    );
    expect((thrown as core.ConfigError).issues[0]?.name).toBe(part);
  });

  it("passes a part's own ConfigError through, naming the option", () => {
    expect(() => core.defaults({ settings, rateLimit: { windowMs: -5, redis: false } })).toThrow(
      /^rateLimit: windowMs must be a positive integer, got -5/,
    );
    expect(() => core.defaults({ settings, logging: { slowMs: 0 } })).toThrow(/^logging: slowMs must be/);
    expect(() => core.defaults({ settings, security: { cros: false } as never })).toThrow(
      /^security: unknown option "cros"\. Did you mean "cors"\?/,
    );
  });

  it('refuses a registry that is not a Metrics and settings that are not Settings', () => {
    expect(() => core.defaults({ registry: {} as never })).toThrow(/^defaults: registry must be a Metrics/);
    expect(() => core.defaults({ settings: 'production' as never })).toThrow(
      /^defaults: settings must be Settings/,
    );
  });

  it('catches app.use(core.defaults) without the call', async () => {
    for (const variant of EXPRESS) {
      const app = variant.express();
      app.use(core.defaults as never);
      app.use((err: Error, _req: unknown, res: import('express').Response, _next: unknown) => {
        res.status(500).json({ message: err.message });
      });
      const res = await request(app).get('/');
      expect(res.body.message).toMatch(/call it to get the middleware — app\.use\(core\.defaults\(\)\)/);
    }
  });

  it('accepts true for a part with its defaults, and never modifies the options object', () => {
    const input = Object.freeze({
      settings,
      rateLimit: Object.freeze({ redis: false as const, limit: 5 }),
      security: true,
      metrics: undefined,
      registry: testMetrics(),
    });
    const chain = track(core.defaults(input));
    expect(chain.handlers).toHaveLength(5);
    expect(chain.rateLimit?.stats().store).toBe('memory');
  });
});
