/** security() decisions reach the registry by reason and action — never the matched text or the address. */
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { samples, testMetrics, valueOf } from '../support/metrics';
import { secure, secureApp } from './support';

describe.each(eachExpress)('security() metrics (%s)', (_name, variant) => {
  test('blocked probes and denied clients are counted by reason and action, read from stats() at scrape time', async () => {
    const metrics = testMetrics();
    const guard = secure({ metrics, threats: { denyList: ['203.0.113.0/24'], ban: false } });
    try {
      const app = secureApp(variant, guard, { trustProxy: true });
      await request(app).get("/search?q=' OR 1=1 --").expect(403);
      await request(app).get('/search?q=<script>alert(1)</script>').expect(403);
      await request(app).get('/ok').set('X-Forwarded-For', '203.0.113.9').expect(403);
      await request(app).get('/ok').expect(200);

      const stats = guard.stats();
      const family = await samples(metrics, 'security_events_total');
      expect(family.length).toBe(Object.keys(stats).length);
      for (const [key, count] of Object.entries(stats)) {
        const at = key.lastIndexOf(':');
        expect(
          await valueOf(metrics, 'security_events_total', {
            reason: key.slice(0, at),
            action: key.slice(at + 1),
          }),
        ).toBe(count);
      }
      expect(await valueOf(metrics, 'security_events_total', { action: 'blocked' })).toBeGreaterThanOrEqual(
        2,
      );
      const text = await metrics.render();
      expect(text).not.toContain('203.0.113');
      expect(text).not.toContain('<script>');
      expect(text).not.toContain('alert');
      expect(text).not.toContain('1=1');
    } finally {
      await guard.close();
    }
    expect(await samples(metrics, 'security_events_total')).toEqual([]);
  });

  test('metrics: false reports nothing; a bad metrics option is a ConfigError', () => {
    const metrics = testMetrics();
    const guard = secure({ metrics: false });
    expect(() => secure({ metrics: 'yes' as unknown as core.Metrics })).toThrow(core.ConfigError);
    return guard.close().then(async () => {
      expect(await samples(metrics, 'security_events_total')).toEqual([]);
    });
  });
});
