/**
 * Findings of the independent review, each a test: route labels when the middleware runs below a
 * mount, router exits with stale params, values inside segments, requests without a context,
 * clients gone before metrics() ran, two copies of the library, bucket and scrape checks.
 */
import type { Express, Router } from 'express';
import { request as httpRequest } from 'node:http';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { mergingRouter, newMetrics, samplesOf, scrape, Servers, settings } from './support';

const quiet = core.createLogger('errors', { console: false, settings });

async function routes(metrics: core.Metrics): Promise<string[]> {
  return samplesOf(await scrape(metrics), 'http_requests_total')
    .map((s) => `${s.labels.route ?? ''} ${s.labels.status_code ?? ''} ${String(s.value)}`)
    .sort();
}

function router(variant: ExpressVariant): Router {
  return variant.express.Router();
}

describe.each(eachExpress)('route labels the review asked about (%s)', (_name, variant) => {
  const servers = new Servers();
  afterEach(() => servers.closeAll());

  test('requestContext() and metrics() inside a sub-app mounted with params: its mount path as a template', async () => {
    const metrics = newMetrics();
    const sub = variant.express();
    sub.use(core.requestContext(), core.metrics({ metrics }));
    sub.get('/patients/:id', (_req, res) => {
      res.json({ ok: true });
    });
    const app: Express = variant.express();
    app.use('/orgs/:org', sub);
    for (const org of ['acme', 'globex', 'initech'])
      await request(app).get(`/orgs/${org}/patients/7`).expect(200);
    expect(await routes(metrics)).toEqual(['/orgs/:org/patients/:id 200 3']);
  });

  test('inside a router mounted with params: the mount becomes /{mount}, never its values', async () => {
    const metrics = newMetrics();
    const inner = router(variant);
    inner.use(core.requestContext(), core.metrics({ metrics }));
    inner.get('/patients/:id', (_req, res) => {
      res.json({ ok: true });
    });
    const app: Express = variant.express();
    app.use('/orgs/:org', inner);
    for (const org of ['acme', 'globex']) await request(app).get(`/orgs/${org}/patients/7`).expect(200);
    const labels = await routes(metrics);
    expect(labels).toEqual(['/{mount}/patients/:id 200 2']);
  });

  test('a router left with stale params does not corrupt the next mount (api.use(path, mw) then api.get(path))', async () => {
    const metrics = newMetrics();
    const app: Express = variant.express();
    app.use(core.requestContext(), core.metrics({ metrics }));
    const api = router(variant);
    api.use('/patients/:id', (_req, _res, next) => {
      next();
    });
    api.get('/patients/:id', (_req, res) => {
      res.json({ ok: true });
    });
    app.use('/api/v1', api);
    for (const id of ['1', 'v1', 'api', 'patients'])
      await request(app).get(`/api/v1/patients/${id}`).expect(200);
    expect(await routes(metrics)).toEqual(['/api/v1/patients/:id 200 4']);
  });

  test('params inside a segment (/files/:name.:ext, /v:version): no value reaches a label', async () => {
    const metrics = newMetrics();
    const app: Express = variant.express();
    app.use(core.requestContext(), core.metrics({ metrics }));
    const meta = mergingRouter(variant);
    meta.get('/meta', (_req, res) => {
      res.json({ ok: true });
    });
    const ping = router(variant);
    ping.get('/ping', (_req, res) => {
      res.json({ ok: true });
    });
    app.use('/files/:name.:ext', meta);
    app.use('/v:version', ping);
    await request(app).get('/files/alice-labs.pdf/meta').expect(200);
    await request(app).get('/v17/ping').expect(200);
    const text = (await routes(metrics)).join('\n');
    expect(text).not.toContain('alice');
    expect(text).not.toContain('17');
    if (variant.major === 5) expect(text).toContain('/files/:name.:ext/meta');
  });

  test('without requestContext(): an error from a route inside a router keeps the route template', async () => {
    const metrics = newMetrics();
    const app: Express = variant.express();
    app.use(core.metrics({ metrics }));
    const api = router(variant);
    api.get('/p/:id', (_req, _res, next) => {
      next(new core.NotFoundError('Patient', 'x'));
    });
    app.use('/api', api);
    app.use(core.errors({ settings, logger: quiet, metrics: false }));
    await request(app).get('/api/p/1').expect(404);
    await request(app).get('/api/p/2').expect(404);
    expect(await routes(metrics)).toEqual(['/api/p/:id 404 2']);
  });

  test('a client gone before metrics() ran leaves no request in flight', async () => {
    const metrics = newMetrics();
    const app: Express = variant.express();
    app.use((_req, _res, next) => {
      setTimeout(next, 100);
    });
    app.use(core.metrics({ metrics }));
    app.get('/slow', (_req, res) => {
      res.json({ ok: true });
    });
    const { url } = await servers.listen(app);
    const port = Number(new URL(url).port);
    await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<void>((resolve) => {
            const req = httpRequest({ host: '127.0.0.1', port, path: '/slow' });
            req.on('error', () => {
              resolve();
            });
            req.end();
            setTimeout(() => {
              req.destroy();
              resolve();
            }, 20);
          }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 250));
    const inFlight = samplesOf(await scrape(metrics), 'http_requests_in_flight')[0]?.value;
    expect(inFlight).toBe(0);
  });
});

describe('endpoint and registry checks the review asked about', () => {
  test('refused scrapes count as traffic; a wrong token is invalid_token in WWW-Authenticate', async () => {
    const metrics = newMetrics();
    const app = require('express')() as Express;
    app.use(core.requestContext(), core.metrics({ metrics }));
    app.get('/metrics', core.metricsEndpoint({ metrics, token: 'a-long-enough-scrape-token' }));
    app.use(core.errors({ settings, logger: quiet, metrics: false }));
    await request(app).get('/metrics').expect(401);
    const wrong = await request(app).get('/metrics').set('Authorization', 'Bearer nope').expect(401);
    expect(wrong.headers['www-authenticate']).toBe('Bearer realm="metrics", error="invalid_token"');
    const ok = await request(app)
      .get('/metrics')
      .set('Authorization', 'Bearer a-long-enough-scrape-token')
      .expect(200);
    expect(ok.text).toContain('http_requests_total{method="GET",route="/metrics",status_code="401"');
    expect(ok.text).not.toContain('status_code="200"');
  });

  test('histogram buckets, label names and help of your own instruments are checked', () => {
    const metrics = newMetrics();
    expect(() => metrics.histogram('a_seconds', 'h', [], [2, 1, 1])).toThrow(core.ConfigError);
    expect(() => metrics.histogram('b_seconds', 'h', [], [])).toThrow(core.ConfigError);
    expect(() => metrics.counter('c_total', 'h', 'label' as unknown as string[])).toThrow(core.ConfigError);
    expect(() => metrics.counter('d_total', '')).toThrow(core.ConfigError);
    expect(() => metrics.histogram('e_seconds', 'h', [], [0.1, 1])).not.toThrow();
  });

  test('an exception message spanning lines never reaches the span stack', async () => {
    const recorded: { message?: string; stack?: string }[] = [];
    const span = {
      spanContext: () => ({
        traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
        spanId: '00f067aa0ba902b7',
        traceFlags: 1,
      }),
      isRecording: () => true,
      recordException: (e: { message?: string; stack?: string }) => recorded.push(e),
      setStatus: () => undefined,
      setAttribute: () => undefined,
      updateName: () => undefined,
    };
    const key = Symbol.for('opentelemetry.js.api.1');
    const holder = globalThis as unknown as Record<symbol, unknown>;
    holder[key] = { context: { active: () => ({ getValue: () => span }) } };
    try {
      const app = require('express')() as Express;
      app.get('/boom', () => {
        throw new Error('lookup failed\nJane Doe, MRN 88812, jane.doe@example.com, SSN 123-45-6789');
      });
      app.use(core.errors({ settings, logger: quiet, metrics: false }));
      await request(app).get('/boom').expect(500);
    } finally {
      holder[key] = undefined;
    }
    expect(recorded).toHaveLength(1);
    const text = JSON.stringify(recorded);
    for (const raw of ['Jane Doe', '88812', 'jane.doe@example.com', '123-45-6789'])
      expect(text).not.toContain(raw);
    expect(recorded[0]?.stack).toMatch(/^\s+at /);
  });

  test('two copies of the library share the default registry and its HTTP series', async () => {
    let other: typeof core | undefined;
    jest.isolateModules(() => {
      other = jest.requireActual<typeof core>('../../lib/index');
    });
    if (other === undefined) throw new Error('no copy');
    const shared = core.getMetrics();
    expect(other.getMetrics()).toBe(shared);
    const app = require('express')() as Express;
    app.use(core.requestContext(), core.metrics(), other.metrics());
    app.get('/metrics', other.metricsEndpoint({ metrics: shared }));
    app.get('/x', (_req, res) => {
      res.json({ ok: true });
    });
    app.use(other.errors({ settings, logger: quiet, metrics: shared }));
    await request(app).get('/x').expect(200);
    const text = (await request(app).get('/metrics').expect(200)).text;
    // Both middlewares count into the one series: two per request, never a second family.
    expect(text).toContain('http_requests_total{method="GET",route="/x",status_code="200",app=');
    expect(text.match(/# TYPE http_requests_total counter/g)).toHaveLength(1);
  });
});
