/**
 * The process's default metrics (the only suite that uses them): made once, with Node.js process
 * metrics; used by metrics() and metricsEndpoint() without a `metrics` option; and ENABLE_METRICS=false
 * turning both into pass-throughs.
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';
import { parseExposition, samplesOf, settings } from './support';

const disabled = core.loadSettings({ NODE_ENV: 'test', ENABLE_METRICS: 'false' });

describe('getMetrics()', () => {
  it('returns the same object every time', () => {
    const metrics = core.getMetrics();
    expect(core.getMetrics()).toBe(metrics);
    expect(metrics).toBeInstanceOf(core.Metrics);
    expect(metrics.enabled).toBe(true);
  });
});

describe.each(eachExpress)('the default metrics on %s', (_name, variant) => {
  it('collects Node.js process metrics and the traffic of metrics() without options', async () => {
    const app = variant.express();
    app.use(core.requestContext(), core.metrics());
    app.get('/metrics', core.metricsEndpoint({ settings }));
    app.get(`/default-${variant.major}/:id`, (_req, res) => {
      res.json({ ok: true });
    });
    await request(app).get(`/default-${variant.major}/1`).expect(200);
    const exp = parseExposition((await request(app).get('/metrics').expect(200)).text);
    expect(exp.types.get('nodejs_eventloop_lag_seconds')).toBe('gauge');
    expect(samplesOf(exp, 'nodejs_eventloop_lag_seconds')).toHaveLength(1);
    expect(samplesOf(exp, 'process_cpu_user_seconds_total')).toHaveLength(1);
    expect(samplesOf(exp, 'http_requests_total', { route: `/default-${variant.major}/:id` })).toHaveLength(1);
    const app_ = core.getMetrics().app;
    expect(exp.samples.filter((s) => s.labels.app !== app_).map((s) => s.line)).toEqual([]);
  });
});

describe.each(eachExpress)('ENABLE_METRICS=false on %s', (_name, variant) => {
  it('makes metrics() a pass-through and metricsEndpoint() fall through to the 404', async () => {
    const metrics = core.createMetrics({ app: 'off', settings: disabled });
    expect(metrics.enabled).toBe(false);
    const app = variant.express();
    app.use(core.requestContext(), core.metrics({ metrics }));
    app.get('/metrics', core.metricsEndpoint({ metrics, settings }));
    app.get('/work', (_req, res) => {
      res.json({ ok: true });
    });
    app.use(
      core.notFound(),
      core.errors({ settings, metrics: false, logger: captureLogger('errors').logger }),
    );
    await request(app).get('/work').expect(200);
    const res = await request(app).get('/metrics').expect(404);
    expect(res.body).toMatchObject({ success: false, error_code: 'NOT_FOUND' });
    // Nothing was registered: no HTTP families, no process metrics.
    expect(await metrics.registry.getMetricsAsJSON()).toEqual([]);
  });

  it('keeps metrics() from reporting into the default registry when given the settings', async () => {
    const app = variant.express();
    app.use(core.requestContext(), core.metrics({ settings: disabled }));
    app.get(`/not-counted-${variant.major}`, (_req, res) => {
      res.json({ ok: true });
    });
    await request(app).get(`/not-counted-${variant.major}`).expect(200);
    const exp = parseExposition(await core.getMetrics().render());
    expect(samplesOf(exp, 'http_requests_total', { route: `/not-counted-${variant.major}` })).toEqual([]);
  });
});
