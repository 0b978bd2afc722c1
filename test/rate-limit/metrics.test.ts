/** Limiters report 429s, and the requests a Redis outage sent to memory (fail-open) or refused (fail-closed). */
import request from 'supertest';
import * as core from '../../lib/index';
import { closedPort } from '../database/helpers';
import { eachExpress } from '../support/express';
import { samples, testMetrics, valueOf } from '../support/metrics';
import { limitedApp, settings, uniqueName } from './support';

const logger = core.createLogger('rate-limit', { console: false, settings });

describe.each(eachExpress)('rateLimit() metrics (%s)', (_name, variant) => {
  test('rate_limit_hits_total counts 429s per limiter; close() removes the series', async () => {
    const metrics = testMetrics();
    const name = uniqueName('hits');
    const limiter = core.rateLimit({
      name,
      limit: 2,
      windowMs: 60_000,
      redis: false,
      settings,
      logger,
      metrics,
    });
    try {
      const app = limitedApp(variant, limiter);
      for (let i = 0; i < 5; i++) await request(app).get('/');
      expect(await valueOf(metrics, 'rate_limit_hits_total', { limiter: name })).toBe(3);
      expect(await valueOf(metrics, 'rate_limit_fallback_total', { limiter: name })).toBe(0);
      expect(await valueOf(metrics, 'rate_limit_refused_total', { limiter: name })).toBe(0);
      expect(limiter.stats().limited).toBe(3);
    } finally {
      await limiter.close();
    }
    expect(await samples(metrics, 'rate_limit_hits_total')).toEqual([]);
  });

  test('Redis unreachable: fail-open requests counted as fallback, fail-closed ones as refused', async () => {
    const metrics = testMetrics();
    const redis = `redis://127.0.0.1:${await closedPort()}`;
    const open = core.rateLimit({
      name: uniqueName('open'),
      limit: 100,
      redis,
      failMode: 'open',
      settings,
      logger,
      metrics,
    });
    const closed = core.rateLimit({
      name: uniqueName('closed'),
      limit: 100,
      redis,
      failMode: 'closed',
      settings,
      logger,
      metrics,
    });
    try {
      const openApp = limitedApp(variant, open);
      const closedApp = limitedApp(variant, closed);
      for (let i = 0; i < 3; i++) {
        await request(openApp).get('/').expect(200);
        await request(closedApp).get('/').expect(503);
      }
      expect(await valueOf(metrics, 'rate_limit_fallback_total', { limiter: open.limiterName })).toBe(3);
      expect(await valueOf(metrics, 'rate_limit_refused_total', { limiter: closed.limiterName })).toBe(3);
      expect(await valueOf(metrics, 'rate_limit_hits_total')).toBe(0);
    } finally {
      await Promise.all([open.close(), closed.close()]);
    }
  });
});
