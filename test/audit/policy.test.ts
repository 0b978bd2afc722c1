/**
 * Buffering and the overflow policy without an outage: the store is only slow (another connection
 * holds the lock on the chain head, so every batch waits). Requests must not wait with it; the
 * buffer fills; `reject` refuses with 503 and `drop` drops, counted and logged; once the lock is
 * released every buffered event is written. Real PostgreSQL.
 */
import express from 'express';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, type PoolClient } from 'pg';
import request from 'supertest';
import * as core from '../../lib/index';
import { pgSchema } from '../support/isolated';
import { captureLogger, type CapturedLogger } from '../support/logs';
import { testMetrics, valueOf } from '../support/metrics';

const SETTINGS = core.loadSettings({ NODE_ENV: 'test', APP_NAME: 'caduceus-test', LOG_LEVEL: 'ERROR' });
const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
/** A request that does no I/O of its own answers well within this, however slow the audit store. */
const FAST_MS = 250;

type Trail = core.AuditTrail;
type AuditOptions = core.AuditOptions;

let target: Awaited<ReturnType<typeof pgSchema>>;
let pool: Pool;
let db: core.Database;
const APP_NAME = `aupolicy_${process.pid}`;
const auth = core.createAuth({ settings: SETTINGS, secret: SECRET, redis: false, metrics: false });
const token = auth.createTokens({ userId: 'dr-p', roles: ['clinician'] }).access_token;

beforeAll(async () => {
  target = await pgSchema('aupolicy');
  pool = new Pool({ connectionString: target.url, max: 3 });
  db = core.createDatabase({
    url: `${target.url}&application_name=${APP_NAME}`,
    logger: core.createLogger('quiet', { console: false, settings: SETTINGS, transports: [] }),
    settings: SETTINGS,
    metrics: false,
  });
});
afterAll(async () => {
  await db.close();
  await pool.end();
  await target.drop();
  await auth.close();
});

function trailOf(
  table: string,
  extra: Partial<AuditOptions>,
  log: CapturedLogger,
  metrics: core.Metrics,
): Trail {
  return core.audit({
    db,
    table,
    flushIntervalMs: 10,
    retry: { initialMs: 20, maxMs: 100 },
    logger: log.logger,
    metrics,
    settings: SETTINGS,
    ...extra,
  });
}

/** Routes that record through `req.audit()` and do no I/O of their own. */
function app(trail: Trail): express.Express {
  const a = express();
  a.use(core.requestContext());
  a.use('/api', core.authenticate({ auth }), trail.middleware());
  a.get('/api/patients/:id', (req, res) => {
    req.audit({
      action: 'read',
      resourceType: 'Patient',
      resourceId: req.params.id,
      patientId: req.params.id,
    });
    res.json({ id: req.params.id });
  });
  a.get('/api/admin', core.requireRoles('admin'), (_req, res) => {
    res.json({ ok: true });
  });
  a.use(core.notFound(), core.errors({ settings: SETTINGS, logger: captureLogger('errors').logger }));
  return a;
}

async function timedGet(
  a: express.Express,
  path: string,
): Promise<{ status: number; ms: number; body: Record<string, unknown> }> {
  const start = performance.now();
  const res = await request(a).get(path).set('Authorization', `Bearer ${token}`);
  return { status: res.status, ms: performance.now() - start, body: res.body as Record<string, unknown> };
}

/** Holds `FOR UPDATE` on the chain head from another connection until `release()`. */
async function lockHead(table: string): Promise<{ release(): Promise<void> }> {
  const client: PoolClient = await pool.connect();
  await client.query('BEGIN');
  await client.query(`SELECT * FROM ${table}_head FOR UPDATE`);
  return {
    async release() {
      try {
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
    },
  };
}

async function writerWaitsOnLock(): Promise<void> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const { rows } = await pool.query(
      "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
      [APP_NAME],
    );
    if (rows.length > 0) return;
    if (Date.now() > deadline) throw new Error('the audit writer never waited on the head lock');
    await sleep(10);
  }
}

async function stored(table: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]?.n ?? 0;
}

describe('a slow audit store (the chain head is locked by another connection)', () => {
  it("'reject': requests stay fast while the batch waits; a full buffer → 503 and record() throws; all written after", async () => {
    const MAX = 5;
    const metrics = testMetrics();
    const trail = trailOf(
      'audit_slow_reject',
      { onOverflow: 'reject', maxBuffer: MAX },
      captureLogger('audit'),
      metrics,
    );
    await trail.migrate();
    const a = app(trail);
    expect(trail.stats()).toMatchObject({ buffered: 0, written: 0, dropped: 0, rejected: 0, failing: false });
    const lock = await lockHead('audit_slow_reject');
    try {
      const held = performance.now();
      const first = await timedGet(a, '/api/patients/1');
      await writerWaitsOnLock();
      const rest = [];
      for (let i = 2; i <= MAX; i++) rest.push(await timedGet(a, `/api/patients/${i}`));
      const accepted = [first, ...rest];
      expect(accepted.map((r) => r.status)).toEqual(Array(MAX).fill(200));
      for (const r of accepted) expect(r.ms).toBeLessThan(FAST_MS);

      const refused = await timedGet(a, '/api/patients/99');
      expect({
        status: refused.status,
        code: refused.body.error_code,
        success: refused.body.success,
      }).toEqual({
        status: 503,
        code: 'SERVICE_UNAVAILABLE',
        success: false,
      });
      expect(refused.ms).toBeLessThan(FAST_MS);
      expect(trail.stats()).toMatchObject({
        buffered: MAX,
        written: 0,
        dropped: 0,
        rejected: 1,
        failing: false,
      });
      expect(await valueOf(metrics, 'audit_events_rejected_total')).toBe(1);
      expect(await valueOf(metrics, 'audit_buffer_events')).toBe(MAX);

      let thrown: unknown;
      try {
        trail.record({ action: 'export', resourceType: 'Patient', resourceId: '1' });
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(core.ServiceUnavailableError);
      expect(thrown).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' });

      // Still waiting: nothing was written while the lock was held.
      await sleep(Math.max(0, 400 - (performance.now() - held)));
      expect(await stored('audit_slow_reject')).toBe(0);
    } finally {
      await lock.release();
    }
    await trail.flush();
    expect(await stored('audit_slow_reject')).toBe(MAX);
    expect(trail.stats()).toMatchObject({ buffered: 0, written: MAX, dropped: 0, failing: false });
    expect(await valueOf(metrics, 'audit_buffer_events')).toBe(0);
    expect(await valueOf(metrics, 'audit_events_written_total')).toBe(MAX);
    expect((await timedGet(a, '/api/patients/99')).status).toBe(200);
    await trail.close();
    expect(await trail.verify()).toMatchObject({ ok: true, checked: MAX + 1 });
  });

  it("'drop': record() never throws; the overflow is dropped, counted and logged at error; written + dropped = recorded", async () => {
    const MAX = 4;
    const log = captureLogger('audit');
    const metrics = testMetrics();
    const trail = trailOf('audit_slow_drop', { onOverflow: 'drop', maxBuffer: MAX }, log, metrics);
    await trail.migrate();
    const a = app(trail);
    const lock = await lockHead('audit_slow_drop');
    const RECORDED = 10;
    try {
      expect((await timedGet(a, '/api/patients/1')).status).toBe(200);
      await writerWaitsOnLock();
      for (let i = 2; i <= 6; i++) {
        const r = await timedGet(a, `/api/patients/${i}`);
        expect([r.status, r.ms < FAST_MS]).toEqual([200, true]);
      }
      for (let i = 0; i < RECORDED - 6; i++)
        expect(() => {
          trail.record({ action: 'export', resourceType: 'Patient', resourceId: String(i) });
        }).not.toThrow();
      expect(trail.stats()).toMatchObject({
        buffered: MAX,
        written: 0,
        dropped: RECORDED - MAX,
        rejected: 0,
        failing: false,
      });
      expect(await valueOf(metrics, 'audit_events_dropped_total')).toBe(RECORDED - MAX);
      const dropLines = log.lines().filter((l) => l.level === 'error' && /dropped/.test(String(l.message)));
      expect(dropLines.length).toBeGreaterThanOrEqual(1);
      // Never the event's content: no patient or resource id in the operational log.
      expect(JSON.stringify(dropLines)).not.toMatch(/"(patient_id|resource_id|patientId|resourceId)"/);
    } finally {
      await lock.release();
    }
    await trail.flush();
    const s = trail.stats();
    expect(s.written + s.dropped).toBe(RECORDED);
    expect(await stored('audit_slow_drop')).toBe(s.written);
    expect(await valueOf(metrics, 'audit_events_written_total')).toBe(s.written);
    await trail.close();
  });
});

describe("'reject' and events that cannot be refused", () => {
  it('a 403 on a full buffer is still a 403, and its denial is stored or counted as dropped: never silently lost', async () => {
    const MAX = 2;
    const log = captureLogger('audit');
    const trail = trailOf('audit_slow_denials', { onOverflow: 'reject', maxBuffer: MAX }, log, testMetrics());
    await trail.migrate();
    const a = app(trail);
    const lock = await lockHead('audit_slow_denials');
    const DENIALS = 6;
    try {
      expect((await timedGet(a, '/api/patients/1')).status).toBe(200);
      await writerWaitsOnLock();
      expect((await timedGet(a, '/api/patients/2')).status).toBe(200);
      expect((await timedGet(a, '/api/patients/3')).status).toBe(503);
      for (let i = 0; i < DENIALS; i++) {
        const r = await timedGet(a, '/api/admin');
        expect([r.status, r.body.error_code, r.ms < FAST_MS]).toEqual([403, 'FORBIDDEN', true]);
      }
      const s = trail.stats();
      expect(s.buffered + s.dropped).toBe(MAX + DENIALS);
      if (s.dropped > 0)
        expect(log.lines().some((l) => l.level === 'error' && /dropped/.test(String(l.message)))).toBe(true);
    } finally {
      await lock.release();
    }
    await trail.flush();
    const s = trail.stats();
    expect(s.written + s.dropped).toBe(MAX + DENIALS);
    expect(await stored('audit_slow_denials')).toBe(s.written);
    await trail.close();
  });
});

describe('metrics and stats', () => {
  it('audit_events_total{action,outcome} counts what was queued; audit_buffer_events what waits', async () => {
    const metrics = testMetrics();
    const trail = trailOf(
      'audit_metrics',
      { flushIntervalMs: 60_000, batchSize: 1000 },
      captureLogger('audit'),
      metrics,
    );
    await trail.migrate();
    const a = app(trail);
    for (const id of ['1', '2', '3']) expect((await timedGet(a, `/api/patients/${id}`)).status).toBe(200);
    expect((await timedGet(a, '/api/admin')).status).toBe(403);
    trail.record({ action: 'export', resourceType: 'Patient', resourceId: '1', patientId: '1' });
    trail.record({ action: 'read', resourceType: 'Patient', resourceId: '7', outcome: 'error' });

    expect(await valueOf(metrics, 'audit_events_total', { action: 'read', outcome: 'success' })).toBe(3);
    expect(await valueOf(metrics, 'audit_events_total', { action: 'read', outcome: 'error' })).toBe(1);
    expect(await valueOf(metrics, 'audit_events_total', { action: 'access-denied', outcome: 'denied' })).toBe(
      1,
    );
    expect(await valueOf(metrics, 'audit_events_total', { action: 'export', outcome: 'success' })).toBe(1);
    expect(await valueOf(metrics, 'audit_events_total')).toBe(6);
    // The interval is a minute: all six wait.
    expect(await valueOf(metrics, 'audit_buffer_events')).toBe(6);
    expect(trail.stats()).toMatchObject({ buffered: 6, written: 0, dropped: 0, rejected: 0, failing: false });

    await trail.flush();
    expect(await valueOf(metrics, 'audit_buffer_events')).toBe(0);
    expect(await valueOf(metrics, 'audit_events_written_total')).toBe(6);
    expect(await valueOf(metrics, 'audit_events_dropped_total')).toBe(0);
    expect(await valueOf(metrics, 'audit_events_rejected_total')).toBe(0);
    expect(await valueOf(metrics, 'audit_write_failures_total')).toBe(0);
    expect(trail.stats()).toMatchObject({ buffered: 0, written: 6, dropped: 0, rejected: 0, failing: false });
    await trail.close();
  });

  it('without flush(), an event is written within about flushIntervalMs', async () => {
    const trail = trailOf('audit_interval', { flushIntervalMs: 50 }, captureLogger('audit'), testMetrics());
    await trail.migrate();
    const start = performance.now();
    trail.record({ action: 'export', resourceType: 'Patient', resourceId: '1' });
    while ((await stored('audit_interval')) === 0) {
      if (performance.now() - start > 2000) throw new Error('not written within 2 s');
      await sleep(10);
    }
    expect(performance.now() - start).toBeLessThan(1000);
    await trail.close();
  });
});
