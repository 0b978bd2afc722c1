/**
 * health(): the three endpoints, the application/health+json report, custom checks (pass, details,
 * throw, hang), criticality, caching, circuit breakers, the flag store and the shutting-down switch,
 * on Express 4 and 5. Database and Redis checks against real services: dependencies.test.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import type * as core from '../../lib/index';
import { eachExpress } from '../support/express';
import { appWith, entry, ISO_TIME, makeHealth, reportOf } from './support';

const CONTENT_TYPE = 'application/health+json; charset=utf-8';

/** A breaker as lib/resilience exposes it; its state is set by the test. */
function breaker(name: string, state: core.HealthBreaker['state']): { name: string; state: typeof state } {
  return { name, state };
}

describe.each(eachExpress)('%s', (_label, variant) => {
  describe('endpoints', () => {
    it('serves live, ready and the report in application/health+json, never cached', async () => {
      const app = appWith(variant, makeHealth({ checks: { ok: () => undefined } }));
      for (const path of ['/health/live', '/health/ready', '/health']) {
        const res = await request(app).get(path);
        expect(res.status).toBe(200);
        expect(res.headers['content-type']).toBe(CONTENT_TYPE);
        expect(res.headers['cache-control']).toBe('no-store');
      }
      expect(JSON.parse((await request(app).get('/health/live')).text)).toEqual({ status: 'pass' });
      expect(JSON.parse((await request(app).get('/health/ready')).text)).toEqual({ status: 'pass' });
      const head = await request(app).head('/health');
      expect({ status: head.status, type: head.headers['content-type'] }).toEqual({
        status: 200,
        type: CONTENT_TYPE,
      });
    });

    it('the report: status, version and serviceId from settings, one reading per check', async () => {
      const app = appWith(
        variant,
        makeHealth({
          checks: {
            'labs:responseTime': () => ({
              observedValue: 12.5,
              observedUnit: 'ms',
              componentType: 'system',
            }),
          },
        }),
      );
      const report = reportOf(await request(app).get('/health'));
      expect(report).toEqual({
        status: 'pass',
        version: '2.3.4',
        serviceId: 'health-test',
        description: 'health of health-test',
        checks: {
          'labs:responseTime': [
            {
              componentType: 'system',
              observedValue: 12.5,
              observedUnit: 'ms',
              status: 'pass',
              time: expect.stringMatching(ISO_TIME),
            },
          ],
        },
      });
    });

    it('a path of its own; other paths fall through to the app', async () => {
      const app = appWith(variant, makeHealth({ path: '/internal/health' }));
      expect((await request(app).get('/internal/health/ready')).status).toBe(200);
      expect((await request(app).get('/internal/health')).status).toBe(200);
      expect((await request(app).get('/health')).status).toBe(404);
      expect((await request(app).post('/internal/health')).status).toBe(404);
    });

    it('without checks: pass', async () => {
      const res = await request(appWith(variant, makeHealth())).get('/health');
      expect({ status: res.status, body: reportOf(res).status, checks: reportOf(res).checks }).toEqual({
        status: 200,
        body: 'pass',
        checks: {},
      });
    });
  });

  describe('custom checks', () => {
    it('a throwing check fails the report and readiness with 503; the output is the class or code, never the message', async () => {
      const calls: string[] = [];
      const app = appWith(
        variant,
        makeHealth({
          checks: {
            labs: () => {
              calls.push('labs');
              throw Object.assign(
                new Error('connect to https://user:hunter2@labs.example failed for MRN-1001'),
                {
                  code: 'ECONNREFUSED',
                },
              );
            },
            typed: () => {
              throw new TypeError('patient Jane Doe has no record');
            },
          },
        }),
      );
      const res = await request(app).get('/health');
      expect(res.status).toBe(503);
      expect(res.headers['content-type']).toBe(CONTENT_TYPE);
      const report = reportOf(res);
      expect(report.status).toBe('fail');
      expect(entry(report, 'labs')).toMatchObject({ status: 'fail', output: 'ECONNREFUSED' });
      expect(entry(report, 'typed')).toMatchObject({ status: 'fail', output: 'TypeError' });
      expect(res.text).not.toMatch(/hunter2|labs\.example|MRN|Jane/);
      const ready = await request(app).get('/health/ready');
      expect({ status: ready.status, body: JSON.parse(ready.text) }).toEqual({
        status: 503,
        body: { status: 'fail', output: 'failing: labs, typed' },
      });
      expect((await request(app).get('/health/live')).status).toBe(200);
      // The probes above shared one run (cacheMs).
      expect(calls).toEqual(['labs']);
    });

    it('details set the status, observed value and output; an invalid status is a failure', async () => {
      const app = appWith(
        variant,
        makeHealth({
          checks: {
            queue: () => ({
              status: 'warn',
              observedValue: 950,
              observedUnit: 'jobs',
              output: 'backlog',
            }),
            count: () => 42 as unknown as core.CheckDetails,
            bad: () => ({ status: 'ok' }) as unknown as core.CheckDetails,
          },
        }),
      );
      const res = await request(app).get('/health');
      const report = reportOf(res);
      expect(entry(report, 'queue')).toMatchObject({
        status: 'warn',
        observedValue: 950,
        observedUnit: 'jobs',
        output: 'backlog',
      });
      expect(entry(report, 'count')).toMatchObject({ status: 'pass', observedValue: 42 });
      expect(entry(report, 'bad')).toMatchObject({
        status: 'fail',
        output: expect.stringMatching(/^invalid/),
      });
      expect(res.status).toBe(503);
    });

    it('a warning keeps the service ready: 200 with status warn', async () => {
      const app = appWith(variant, makeHealth({ checks: { disk: () => ({ status: 'warn' }) } }));
      const res = await request(app).get('/health');
      expect({ status: res.status, report: reportOf(res).status }).toEqual({ status: 200, report: 'warn' });
      const ready = await request(app).get('/health/ready');
      expect({ status: ready.status, body: JSON.parse(ready.text) }).toEqual({
        status: 200,
        body: { status: 'warn' },
      });
    });

    it('a hung check is a failure after timeoutMs, its signal aborted; the probe never hangs', async () => {
      let signal: AbortSignal | undefined;
      const app = appWith(
        variant,
        makeHealth({
          timeoutMs: 150,
          checks: {
            hung: (s) => {
              signal = s;
              return new Promise(() => undefined);
            },
            fine: () => undefined,
          },
        }),
      );
      const start = performance.now();
      const res = await request(app).get('/health');
      const elapsed = performance.now() - start;
      expect(res.status).toBe(503);
      const report = reportOf(res);
      expect(entry(report, 'hung')).toMatchObject({ status: 'fail', output: 'timed out' });
      expect(entry(report, 'fine').status).toBe('pass');
      expect(elapsed).toBeGreaterThanOrEqual(140);
      expect(elapsed).toBeLessThan(1500);
      expect(signal?.aborted).toBe(true);
    });

    it('a check still running is joined by the next run, not called again on top of it', async () => {
      let calls = 0;
      const app = appWith(
        variant,
        makeHealth({
          timeoutMs: 100,
          cacheMs: 0,
          checks: {
            slow: async () => {
              calls++;
              await sleep(350);
            },
          },
        }),
      );
      expect(entry(reportOf(await request(app).get('/health')), 'slow').output).toBe('timed out');
      expect(entry(reportOf(await request(app).get('/health')), 'slow').output).toBe('timed out');
      expect(calls).toBe(1);
      await sleep(250);
      expect(entry(reportOf(await request(app).get('/health')), 'slow').output).toBe('timed out');
      expect(calls).toBe(2);
    });

    it('critical decides: a non-critical failure is a warning, readiness stays 200', async () => {
      const app = appWith(
        variant,
        makeHealth({
          critical: ['core'],
          checks: {
            core: () => undefined,
            optional: () => {
              throw new RangeError('x');
            },
          },
        }),
      );
      const res = await request(app).get('/health');
      const report = reportOf(res);
      expect(res.status).toBe(200);
      expect(report.status).toBe('warn');
      expect(entry(report, 'optional')).toMatchObject({ status: 'warn', output: 'RangeError' });
      expect((await request(app).get('/health/ready')).status).toBe(200);
    });
  });

  describe('caching', () => {
    it('20 concurrent probes of every endpoint share one run of each check', async () => {
      let calls = 0;
      const router = makeHealth({
        checks: {
          counted: async () => {
            calls++;
            await sleep(50);
          },
        },
      });
      const app = appWith(variant, router);
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => request(app).get(i % 2 === 0 ? '/health' : '/health/ready')),
      );
      expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 20 }, () => 200));
      expect(calls).toBe(1);
      // Within cacheMs (1000): still the same result.
      const again = await request(app).get('/health');
      expect(calls).toBe(1);
      expect(reportOf(again).checks).toEqual(reportOf(answers[0]!).checks);
      // Liveness never runs checks.
      await request(app).get('/health/live');
      expect(calls).toBe(1);
    });

    it('a new run once cacheMs has passed; cacheMs 0 runs on every sequential probe', async () => {
      let cached = 0;
      let uncached = 0;
      const a = appWith(
        variant,
        makeHealth({
          cacheMs: 100,
          checks: {
            c: () => {
              cached++;
            },
          },
        }),
      );
      const b = appWith(
        variant,
        makeHealth({
          cacheMs: 0,
          checks: {
            c: () => {
              uncached++;
            },
          },
        }),
      );
      await request(a).get('/health');
      await request(a).get('/health');
      expect(cached).toBe(1);
      await sleep(150);
      await request(a).get('/health');
      expect(cached).toBe(2);
      for (let i = 0; i < 3; i++) await request(b).get('/health/ready');
      expect(uncached).toBe(3);
      await Promise.all([request(b).get('/health'), request(b).get('/health'), request(b).get('/health')]);
      expect(uncached).toBeLessThanOrEqual(6);
    });

    it('check() returns the same report the endpoint serves', async () => {
      const router = makeHealth({ checks: { x: () => ({ observedValue: 1 }) } });
      const report = await router.check();
      const served = reportOf(await request(appWith(variant, router)).get('/health'));
      expect(served).toEqual(report);
    });
  });

  describe('circuit breakers', () => {
    it('closed pass, half-open warn, open warn by default: readiness stays up', async () => {
      const app = appWith(
        variant,
        makeHealth({
          breakers: [breaker('labs', 'closed'), breaker('billing', 'half_open'), breaker('fax', 'open')],
        }),
      );
      const res = await request(app).get('/health');
      const report = reportOf(res);
      expect(res.status).toBe(200);
      expect(report.status).toBe('warn');
      expect(entry(report, 'circuitBreaker:labs')).toEqual({
        componentType: 'component',
        observedValue: 'closed',
        status: 'pass',
        time: expect.stringMatching(ISO_TIME),
      });
      expect(entry(report, 'circuitBreaker:billing')).toMatchObject({
        observedValue: 'half_open',
        status: 'warn',
      });
      expect(entry(report, 'circuitBreaker:fax')).toMatchObject({
        observedValue: 'open',
        status: 'warn',
        output: 'circuit open',
      });
      expect((await request(app).get('/health/ready')).status).toBe(200);
    });

    it('an open breaker listed in critical fails readiness; its state is read at each run', async () => {
      const labs = breaker('labs', 'closed');
      const app = appWith(
        variant,
        makeHealth({ cacheMs: 0, breakers: new Set([labs]), critical: ['circuitBreaker:labs'] }),
      );
      expect((await request(app).get('/health/ready')).status).toBe(200);
      labs.state = 'open';
      const ready = await request(app).get('/health/ready');
      expect({ status: ready.status, body: JSON.parse(ready.text) }).toEqual({
        status: 503,
        body: { status: 'fail', output: 'failing: circuitBreaker:labs' },
      });
      expect(entry(reportOf(await request(app).get('/health')), 'circuitBreaker:labs').status).toBe('fail');
    });
  });

  describe('feature flags', () => {
    it('healthy store pass (flags known), unreachable store warn, status() failing fail', async () => {
      let status: core.FlagStoreStatus | Error = {
        store: 'redis',
        healthy: true,
        flags: 7,
        lastSyncAt: Date.now(),
      };
      const flags: core.HealthFlags = {
        status: () => {
          if (status instanceof Error) throw status;
          return status;
        },
      };
      const app = appWith(variant, makeHealth({ cacheMs: 0, flags }));
      const pass = reportOf(await request(app).get('/health'));
      expect(entry(pass, 'featureFlags:store')).toEqual({
        componentId: 'redis',
        componentType: 'component',
        observedValue: 7,
        observedUnit: 'flags',
        status: 'pass',
        time: expect.stringMatching(ISO_TIME),
      });
      status = { store: 'redis', healthy: false, flags: 7, lastSyncAt: Date.parse('2026-01-02T03:04:05Z') };
      const warn = await request(app).get('/health');
      expect(warn.status).toBe(200);
      expect(entry(reportOf(warn), 'featureFlags:store')).toMatchObject({
        status: 'warn',
        output:
          'redis store unreachable: serving the last known flags (last synced 2026-01-02T03:04:05.000Z)',
      });
      expect((await request(app).get('/health/ready')).status).toBe(200);
      status = new Error('boom');
      const fail = await request(app).get('/health');
      expect(fail.status).toBe(503);
      expect(entry(reportOf(fail), 'featureFlags:store')).toMatchObject({ status: 'fail', output: 'Error' });
    });
  });

  describe('shutting down', () => {
    it('markShuttingDown(): readiness and the report fail at once, liveness still passes', async () => {
      const router = makeHealth({ checks: { ok: () => undefined } });
      const app = appWith(variant, router);
      expect((await request(app).get('/health/ready')).status).toBe(200);
      expect(router.shuttingDown).toBe(false);
      router.markShuttingDown();
      expect(router.shuttingDown).toBe(true);
      const ready = await request(app).get('/health/ready');
      expect({ status: ready.status, body: JSON.parse(ready.text) }).toEqual({
        status: 503,
        body: { status: 'fail', output: 'shutting down' },
      });
      const full = await request(app).get('/health');
      expect(full.status).toBe(503);
      expect(reportOf(full)).toMatchObject({ status: 'fail', output: 'shutting down' });
      expect(entry(reportOf(full), 'ok').status).toBe('pass');
      expect((await request(app).get('/health/live')).status).toBe(200);
      expect((await router.check()).status).toBe('fail');
    });
  });
});
