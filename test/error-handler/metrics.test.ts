import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { samples, testMetrics, valueOf } from '../support/metrics';

const settings = core.loadSettings({ NODE_ENV: 'test' });
const logger = core.createLogger('errors', { console: false, settings });

describe.each(eachExpress)('errors() reports http_errors_total (%s)', (_name, variant) => {
  function app(metrics: core.Metrics | false) {
    const a = variant.express();
    a.use(core.requestContext());
    a.get('/missing/:id', () => {
      throw new core.NotFoundError('Patient', 'p-1');
    });
    a.get('/boom', () => {
      throw new Error('patient 123-45-6789 broke it');
    });
    a.get('/denied', () => {
      throw new core.ForbiddenError();
    });
    a.use(core.notFound());
    a.use(core.errors({ settings, logger, metrics }));
    return a;
  }

  test('each error answered is counted by its stable code and status, never by message or id', async () => {
    const metrics = testMetrics();
    const a = app(metrics);
    await request(a).get('/missing/p-1').expect(404);
    await request(a).get('/missing/p-2').expect(404);
    await request(a).get('/boom').expect(500);
    await request(a).get('/denied').expect(403);
    await request(a).get('/no/such/route').expect(404);

    expect(await valueOf(metrics, 'http_errors_total', { error_code: 'NOT_FOUND', status_code: 404 })).toBe(
      3,
    );
    expect(
      await valueOf(metrics, 'http_errors_total', { error_code: 'INTERNAL_ERROR', status_code: 500 }),
    ).toBe(1);
    expect(await valueOf(metrics, 'http_errors_total', { error_code: 'FORBIDDEN', status_code: 403 })).toBe(
      1,
    );
    const text = await metrics.render();
    expect(text).not.toContain('123-45-6789');
    expect(text).not.toContain('p-1');
    for (const s of await samples(metrics, 'http_errors_total'))
      expect(Object.keys(s.labels).sort()).toEqual(['app', 'error_code', 'status_code']);
  });

  test('metrics: false counts nothing; a bad metrics option is a ConfigError at start-up', async () => {
    const metrics = testMetrics();
    await request(app(false)).get('/boom').expect(500);
    expect(await samples(metrics, 'http_errors_total')).toEqual([]);
    expect(() => core.errors({ settings, logger, metrics: {} as core.Metrics })).toThrow(core.ConfigError);
    expect(() => core.errors({ settings, logger, metrics: {} as core.Metrics })).toThrow(/metrics/);
  });

  test('ENABLE_METRICS=false in settings: the default registry is not used', async () => {
    const off = core.loadSettings({ NODE_ENV: 'test', ENABLE_METRICS: 'false' });
    const a = variant.express();
    a.get('/boom', () => {
      throw new Error('x');
    });
    a.use(core.errors({ settings: off, logger }));
    await request(a).get('/boom').expect(500);
    expect(await samples(core.getMetrics(), 'http_errors_total')).toEqual([]);
  });
});
