/**
 * The built-in checks against real services: PostgreSQL and SQLite up, a database on a closed port,
 * a stopped pool, a saturated pool; Redis up (URL and client), unreachable, and a client stays the
 * application's. Express 4 and 5.
 */
import { Redis } from 'ioredis';
import request from 'supertest';
import * as core from '../../lib/index';
import { TEST_SETTINGS, dialectDatabase, type DialectName } from '../support/dialects';
import { eachExpress } from '../support/express';
import { pgSchema } from '../support/isolated';
import { appWith, closedPort, entry, ISO_TIME, makeHealth, reportOf, silent } from './support';

const REDIS_URL = 'redis://127.0.0.1:6379';

function openDatabase(url: string, options: Partial<core.DatabaseOptions> = {}): core.Database {
  return core.createDatabase({ url, settings: TEST_SETTINGS, logger: silent, metrics: false, ...options });
}

describe.each(eachExpress)('%s', (_label, variant) => {
  describe.each<DialectName>(['postgres', 'sqlite'])('database on %s', (dialect) => {
    it('up: pass, with pool use and response time', async () => {
      const fixture = await dialectDatabase(dialect, 'health');
      try {
        const app = appWith(variant, makeHealth({ database: fixture.db }));
        const res = await request(app).get('/health');
        expect(res.status).toBe(200);
        const report = reportOf(res);
        expect(report.status).toBe('pass');
        expect(entry(report, 'database:connections')).toEqual({
          componentType: 'datastore',
          observedValue: 0,
          observedUnit: 'connections',
          status: 'pass',
          time: expect.stringMatching(ISO_TIME),
        });
        expect(entry(report, 'database:responseTime')).toEqual({
          componentType: 'datastore',
          observedValue: expect.any(Number),
          observedUnit: 'ms',
          status: 'pass',
          time: expect.stringMatching(ISO_TIME),
        });
        expect((await request(app).get('/health/ready')).status).toBe(200);
      } finally {
        await fixture.close();
      }
    });

    it('a stopped pool: fail, 503, readiness 503', async () => {
      const fixture = await dialectDatabase(dialect, 'health');
      await fixture.close();
      const app = appWith(variant, makeHealth({ database: fixture.db }));
      const res = await request(app).get('/health');
      expect(res.status).toBe(503);
      expect(entry(reportOf(res), 'database:responseTime')).toMatchObject({
        status: 'fail',
        output: expect.stringMatching(/^[\w.:-]+$/),
      });
      expect((await request(app).get('/health/ready')).status).toBe(503);
      expect((await request(app).get('/health/live')).status).toBe(200);
    });
  });

  it('PostgreSQL on a closed port: fail with the error code only, never the URL or password', async () => {
    const port = await closedPort();
    const db = openDatabase(`postgres://health:s3cret-pw@127.0.0.1:${port}/patients`, {
      connectTimeoutMs: 1000,
      acquireTimeoutMs: 1000,
    });
    try {
      const app = appWith(variant, makeHealth({ database: db }));
      const res = await request(app).get('/health');
      expect(res.status).toBe(503);
      const report = reportOf(res);
      expect(report.status).toBe('fail');
      expect(entry(report, 'database:responseTime')).toMatchObject({
        status: 'fail',
        output: 'ECONNREFUSED',
      });
      expect(entry(report, 'database:connections').status).toBe('pass');
      expect(res.text).not.toMatch(/s3cret|postgres:|patients|health:/);
      const ready = await request(app).get('/health/ready');
      expect({ status: ready.status, body: JSON.parse(ready.text) }).toEqual({
        status: 503,
        body: { status: 'fail', output: 'failing: database:responseTime' },
      });
    } finally {
      await db.close();
    }
  });

  it('a saturated PostgreSQL pool (callers waiting): database:connections warns, the service stays ready', async () => {
    const schema = await pgSchema('health_pool');
    const db = openDatabase(schema.url, { pool: { min: 0, max: 2 } });
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    try {
      // Two transactions hold both connections; a third query waits for one.
      const holders = [0, 1].map(() => db.transaction(() => held));
      await new Promise((r) => setTimeout(r, 100));
      const waiting = Promise.resolve(db.knex.raw('select 1'));
      await new Promise((r) => setTimeout(r, 50));
      expect(db.poolStats()).toMatchObject({ used: 2, pending: 1 });
      const app = appWith(variant, makeHealth({ database: db }));
      const probe = request(app).get('/health');
      setTimeout(release, 200);
      const res = await probe;
      await Promise.all([...holders, waiting]);
      expect(res.status).toBe(200);
      const report = reportOf(res);
      expect(report.status).toBe('warn');
      expect(entry(report, 'database:connections')).toMatchObject({
        observedValue: 2,
        status: 'warn',
        output: 'pool saturated: 2 of 2 in use, 1 waiting',
      });
      expect(entry(report, 'database:responseTime').status).toBe('pass');
    } finally {
      release();
      await db.close();
      await schema.drop();
    }
  });

  describe('redis', () => {
    it('a URL: PING passes with the response time; close() quits the connection it opened', async () => {
      const router = makeHealth({ redis: REDIS_URL });
      const app = appWith(variant, router);
      const res = await request(app).get('/health');
      expect(res.status).toBe(200);
      expect(entry(reportOf(res), 'redis:responseTime')).toEqual({
        componentType: 'datastore',
        observedValue: expect.any(Number),
        observedUnit: 'ms',
        status: 'pass',
        time: expect.stringMatching(ISO_TIME),
      });
      await router.close();
    });

    it('unreachable: fail at once (no queued PING), readiness 503, the URL never shown', async () => {
      const port = await closedPort();
      const app = appWith(variant, makeHealth({ redis: `redis://:hunter2@127.0.0.1:${port}` }));
      const start = performance.now();
      const res = await request(app).get('/health');
      expect(performance.now() - start).toBeLessThan(2500);
      expect(res.status).toBe(503);
      expect(entry(reportOf(res), 'redis:responseTime')).toMatchObject({
        status: 'fail',
        output: expect.stringMatching(/^not connected \(\w+\)$/),
      });
      expect(res.text).not.toMatch(/hunter2|redis:\/\//);
      expect((await request(app).get('/health/ready')).status).toBe(503);
    });

    it("an application's client is used and left open by close()", async () => {
      const client = new Redis(REDIS_URL, { lazyConnect: true });
      try {
        const router = makeHealth({ redis: client });
        const res = await request(appWith(variant, router)).get('/health');
        expect(entry(reportOf(res), 'redis:responseTime').status).toBe('pass');
        await router.close();
        expect(client.status).toBe('ready');
        expect(await client.ping()).toBe('PONG');
      } finally {
        client.disconnect();
      }
    });
  });
});
