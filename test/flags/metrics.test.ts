/**
 * feature_flag_evaluations_total{flag,result}: on / off, the variant's name, names that match no
 * flag under flag="unknown", at most 1,000 flag labels, read from the instance at scrape time
 * and removed on close().
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { EXPRESS } from '../support/express';
import { samples, testMetrics, valueOf } from '../support/metrics';
import { memoryFlags, settings } from './support';

const FAMILY = 'feature_flag_evaluations_total';

it('counts on, off and variants per flag; unknown names under one label; close() removes the series', async () => {
  const metrics = testMetrics();
  const flags = memoryFlags({
    metrics,
    flags: {
      beta: { enabled: true, users: ['alice'] },
      layout: { enabled: true, variants: [{ name: 'grid', weight: 1 }] },
    },
  });
  flags.isEnabled('beta', { userId: 'alice' });
  flags.isEnabled('beta', { userId: 'bob' });
  flags.isEnabled('beta', { userId: 'carol' });
  flags.variant('layout', { userId: 'alice' });
  flags.isEnabled('layout', { userId: 'bob' });
  // Names from requests that match no flag: one series, whatever the names.
  for (let i = 0; i < 50; i++) flags.isEnabled(`probe-${i}`);

  expect(await valueOf(metrics, FAMILY, { flag: 'beta', result: 'on' })).toBe(1);
  expect(await valueOf(metrics, FAMILY, { flag: 'beta', result: 'off' })).toBe(2);
  expect(await valueOf(metrics, FAMILY, { flag: 'layout', result: 'grid' })).toBe(2);
  expect(await valueOf(metrics, FAMILY, { flag: 'unknown', result: 'off' })).toBe(50);
  expect((await samples(metrics, FAMILY)).length).toBe(4);
  expect(await metrics.render()).toContain('# TYPE feature_flag_evaluations_total counter');

  await flags.close();
  expect(await samples(metrics, FAMILY)).toEqual([]);
});

it('counts what req.flags and the OpenFeature provider evaluate too', async () => {
  const metrics = testMetrics();
  const flags = memoryFlags({ metrics, flags: { beta: { enabled: true } } });
  const app = EXPRESS[1]!.express();
  app.use(flags.middleware());
  app.get('/', (req, res) => {
    res.json({ on: req.flags?.isEnabled('beta') });
  });
  await request(app).get('/');
  await flags.openFeatureProvider().resolveBooleanEvaluation('beta', false, {});
  expect(await valueOf(metrics, FAMILY, { flag: 'beta', result: 'on' })).toBe(2);
  await flags.close();
});

it('keeps at most 1,000 flag labels; further flags count under flag="other"', async () => {
  const metrics = testMetrics();
  const definitions = Object.fromEntries(
    Array.from({ length: 1_005 }, (_, i) => [`f${i}`, { enabled: true }]),
  );
  const flags = memoryFlags({ metrics, flags: definitions });
  for (let i = 0; i < 1_005; i++) flags.isEnabled(`f${i}`);
  const all = await samples(metrics, FAMILY);
  expect(all.length).toBe(1_001);
  expect(await valueOf(metrics, FAMILY, { flag: 'other', result: 'on' })).toBe(5);
  await flags.close();
});

it('reports nothing with metrics: false or ENABLE_METRICS=false', async () => {
  const metrics = testMetrics();
  const off = core.featureFlags({
    store: 'memory',
    metrics: false,
    settings,
    logger: core.createLogger('flags', { console: false, settings }),
  });
  off.isEnabled('x');
  const disabled = core.loadSettings({ NODE_ENV: 'test', ENABLE_METRICS: 'false' });
  const quiet = core.featureFlags({
    store: 'memory',
    settings: disabled,
    logger: core.createLogger('flags', { console: false, settings }),
  });
  quiet.isEnabled('x');
  expect(await samples(metrics, FAMILY)).toEqual([]);
  expect(await samples(core.getMetrics(), FAMILY)).toEqual([]);
  await Promise.all([off.close(), quiet.close()]);
});
