/**
 * `http_request_duration_seconds`: cumulative buckets, `_count` equal to the requests, `_sum` the
 * time spent; custom buckets; options checked when the middleware is made; one bucket layout per
 * registry.
 */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { instrumentedApp, newMetrics, samplesOf, scrape, valueOf, type Exposition } from './support';

/** The bucket samples of one series, as [le, cumulative count], in exposition order. */
function buckets(exp: Exposition, match: Record<string, string>): [string, number][] {
  return samplesOf(exp, 'http_request_duration_seconds_bucket', match).map((s) => [
    s.labels.le ?? '',
    s.value,
  ]);
}

function configError(fn: () => unknown): core.ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(core.ConfigError);
    return err as core.ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

describe.each(eachExpress)('the duration histogram on %s', (_name, variant) => {
  it('has cumulative buckets up to +Inf, a _count of the requests and a _sum of their time', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(variant, metrics, (a) => {
      a.get('/fast', (_req, res) => {
        res.json({ ok: true });
      });
      a.get('/slow', (_req, res) => {
        setTimeout(() => res.json({ ok: true }), 30);
      });
    });
    for (let i = 0; i < 5; i++) await request(app).get('/fast').expect(200);
    for (let i = 0; i < 3; i++) await request(app).get('/slow').expect(200);

    const exp = await scrape(metrics);
    expect(exp.types.get('http_request_duration_seconds')).toBe('histogram');
    for (const [route, n, min] of [
      ['/fast', 5, 0],
      ['/slow', 3, 0.03],
    ] as const) {
      const series = buckets(exp, { route });
      expect(series.map(([le]) => le)).toEqual([...core.DURATION_BUCKETS.map(String), '+Inf']);
      const counts = series.map(([, v]) => v);
      for (let i = 1; i < counts.length; i++) expect(counts[i]).toBeGreaterThanOrEqual(counts[i - 1] ?? 0);
      expect(counts[counts.length - 1]).toBe(n);
      expect(valueOf(exp, 'http_request_duration_seconds_count', { route })).toBe(n);
      expect(valueOf(exp, 'http_requests_total', { route })).toBe(n);
      const sum = valueOf(exp, 'http_request_duration_seconds_sum', { route });
      expect(sum).toBeGreaterThan(min * n * 0.9);
      expect(sum).toBeLessThan(n * 5);
    }
    // The slow requests (≥ 30 ms) are all above the 25 ms bound.
    const slow = new Map(buckets(exp, { route: '/slow' }));
    expect(slow.get('0.025')).toBe(0);
    expect(slow.get('10')).toBe(3);
  });

  it('uses custom buckets', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(
      variant,
      metrics,
      (a) => {
        a.get('/x', (_req, res) => {
          setTimeout(() => res.json({ ok: true }), 20);
        });
      },
      { buckets: [0.001, 0.015, 60] },
    );
    await request(app).get('/x').expect(200);
    await request(app).get('/x').expect(200);
    const exp = await scrape(metrics);
    expect(buckets(exp, { route: '/x' })).toEqual([
      ['0.001', 0],
      ['0.015', 0],
      ['60', 2],
      ['+Inf', 2],
    ]);
  });

  it('uses custom size buckets for the request and response size histograms', async () => {
    const metrics = newMetrics();
    const app = instrumentedApp(
      variant,
      metrics,
      (a) => {
        a.post('/x', (_req, res) => {
          res.json({ ok: true });
        });
      },
      { sizeBuckets: [10, 1e9] },
    );
    await request(app)
      .post('/x')
      .send({ a: 'b'.repeat(50) })
      .expect(200);
    const exp = await scrape(metrics);
    expect(
      samplesOf(exp, 'http_request_size_bytes_bucket', { route: '/x' }).map((s) => [s.labels.le, s.value]),
    ).toEqual([
      ['10', 0],
      ['1000000000', 1],
      ['+Inf', 1],
    ]);
    expect(
      samplesOf(exp, 'http_response_size_bytes_bucket', { route: '/x' }).map((s) => [s.labels.le, s.value]),
    ).toEqual([
      ['10', 0],
      ['1000000000', 1],
      ['+Inf', 1],
    ]);
  });

  it('shares the counts of two metrics() with the same buckets on one registry', async () => {
    const metrics = newMetrics();
    const route = (a: import('express').Express) => {
      a.get('/shared', (_req, res) => {
        res.json({ ok: true });
      });
    };
    const one = instrumentedApp(variant, metrics, route, { buckets: [0.5, 1] });
    const two = instrumentedApp(variant, metrics, route, { buckets: [0.5, 1] });
    await request(one).get('/shared').expect(200);
    await request(two).get('/shared').expect(200);
    await request(two).get('/shared').expect(200);
    const exp = await scrape(metrics);
    expect(valueOf(exp, 'http_requests_total', { route: '/shared' })).toBe(3);
    expect(valueOf(exp, 'http_request_duration_seconds_count', { route: '/shared' })).toBe(3);
  });
});

describe('metrics() options', () => {
  it.each([
    ['buckets', { buckets: [1, 0.5] }],
    ['buckets', { buckets: [0.5, 0.5] }],
    ['buckets', { buckets: [] }],
    ['buckets', { buckets: [0, 1] }],
    ['buckets', { buckets: [-1, 1] }],
    ['buckets', { buckets: [0.1, Infinity] }],
    ['buckets', { buckets: [0.1, NaN] }],
    ['buckets', { buckets: ['0.1'] }],
    ['buckets', { buckets: 0.5 }],
    ['sizeBuckets', { sizeBuckets: [100, 10] }],
    ['unmatchedRoute', { unmatchedRoute: '' }],
    ['unmatchedRoute', { unmatchedRoute: 404 }],
    ['exemplars', { exemplars: 'yes' }],
    ['exemplars', { exemplars: 1 }],
    ['skip', { skip: true }],
    ['metrics', { metrics: {} }],
    ['metrics', { metrics: core.getMetrics }],
    ['bucket', { bucket: [1, 2] }],
    ['registry', { registry: {} }],
  ])('throws a ConfigError naming %s for %j', (option, input) => {
    const err = configError(() => core.metrics({ metrics: newMetrics(), ...(input as object) }));
    expect(err.message).toMatch(/^metrics: /);
    expect(err.message).toContain(option);
    expect(err.code).toBe('CONFIG_INVALID');
  });

  it('suggests the known option for a misspelt one', () => {
    const err = configError(() => core.metrics({ metrics: newMetrics(), bucket: [1] } as never));
    expect(err.message).toContain('Did you mean "buckets"?');
  });

  it('throws when used without the call: app.use(core.metrics)', () => {
    const fake = { method: 'GET', headers: {} };
    const err = configError(() => core.metrics(fake as never));
    expect(err.message).toContain('app.use(core.metrics())');
  });

  it('throws when a registry already has HTTP metrics with other buckets', () => {
    const metrics = newMetrics();
    core.metrics({ metrics, buckets: [0.1, 1] });
    core.metrics({ metrics, buckets: [0.1, 1] });
    const err = configError(() => core.metrics({ metrics, buckets: [0.2, 1] }));
    expect(err.message).toContain('buckets');
    configError(() => core.metrics({ metrics, buckets: [0.1, 1], sizeBuckets: [5, 50] }));
    // The default layout is "other buckets" too.
    configError(() => core.metrics({ metrics }));
  });

  it('throws a ConfigError, not prom-client’s Error, when the registry already has an http_* family', () => {
    const metrics = newMetrics();
    metrics.counter('http_requests_total', 'Counted elsewhere.', ['path']);
    configError(() => core.metrics({ metrics }));
  });
});
