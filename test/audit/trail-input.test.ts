/**
 * Bad input to the audit trail, on PostgreSQL, SQLite and MariaDB: misconfiguration is a
 * ConfigError at creation; an event that cannot be stored (unknown action, oversized or malformed
 * fields) is a clear error from record() and is never written; hostile request headers are
 * bounded or ignored. Afterwards the trail still writes and its chain still verifies.
 */
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { DIALECTS, TEST_SETTINGS, useDialect } from '../support/dialects';
import { eachExpress } from '../support/express';
import { failure, makeTrail, silentLogger, storedEvents } from './trail-support';

/** The AppError `fn` fails with; anything else (a TypeError, a driver error) fails the test. */
async function appError(fn: () => unknown): Promise<core.AppError> {
  const err = await failure(fn);
  if (!core.isAppError(err)) throw new Error(`expected an AppError, got ${String(err)}`);
  return err;
}

describe('core.audit() options', () => {
  const db = core.createDatabase({
    url: 'sqlite::memory:',
    settings: TEST_SETTINGS,
    logger: silentLogger('database'),
    metrics: false,
  });
  afterAll(async () => {
    await db.close();
  });

  it.each([
    ['no db', {}, 'db'],
    ['a db that is not a Database', { db: { query: () => undefined } }, 'db'],
    ['an unknown key', { db, tabel: 'x' }, 'tabel'],
    ['a table name that is not an identifier', { db, table: 'audit; DROP TABLE patients' }, 'table'],
    ['onOverflow not reject/drop', { db, onOverflow: 'explode' }, 'onOverflow'],
    ['maxBuffer 0', { db, maxBuffer: 0 }, 'maxBuffer'],
    ['batchSize -1', { db, batchSize: -1 }, 'batchSize'],
    ['flushIntervalMs 1.5', { db, flushIntervalMs: 1.5 }, 'flushIntervalMs'],
    ['purposeOfUseHeader with a space', { db, purposeOfUseHeader: 'x purpose' }, 'purposeOfUseHeader'],
    ['auth that is not an Auth', { db, auth: { secret: 'x' } }, 'auth'],
  ])('%s: ConfigError naming the option', (_what, options, option) => {
    let err: unknown;
    try {
      core.audit({ metrics: false, settings: TEST_SETTINGS, ...options } as unknown as core.AuditOptions);
    } catch (e) {
      err = e;
    }
    expect(core.isAppError(err)).toBe(true);
    expect(err).toMatchObject({ code: 'CONFIG_INVALID' });
    expect((err as Error).message).toContain(option);
  });

  it('verifyAuditChain() with a bad table name: ConfigError, no SQL run', async () => {
    const err = await appError(() => core.verifyAuditChain(db, { table: 'x; DROP TABLE y' }));
    expect(err.code).toBe('CONFIG_INVALID');
  });
});

describe.each(DIALECTS)('bad events on %s', (dialect) => {
  const fixture = useDialect(dialect, 'ainput');

  describe('a trail', () => {
    let db: core.Database;
    let trail: core.AuditTrail;

    beforeAll(async () => {
      db = fixture().db;
      trail = makeTrail(db);
      await trail.migrate();
    });
    afterAll(async () => {
      await trail.close();
    });

    const long = (n: number): string => 'x'.repeat(n);
    const manyKeys = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, i]));

    it.each([
      ['an unknown action', { action: 'frobnicate' }, 'action'],
      ['an action of the wrong type', { action: 42 }, 'action'],
      ['an unknown outcome', { action: 'read', outcome: 'maybe' }, 'outcome'],
      ['a 10 000-character resourceId', { action: 'read', resourceId: long(10_000) }, 'resourceId'],
      ['a 10 000-character patientId', { action: 'read', patientId: long(10_000) }, 'patientId'],
      ['a resourceType with spaces', { action: 'read', resourceType: 'Patient record' }, 'resourceType'],
      ['a 500-character resourceType', { action: 'read', resourceType: long(500) }, 'resourceType'],
      ['a 33-character purposeOfUse', { action: 'read', purposeOfUse: long(33) }, 'purposeOfUse'],
      ['200 details keys', { action: 'export', details: manyKeys }, 'details'],
      ['a 1 MB details value', { action: 'export', details: { note: long(1_000_000) } }, 'details'],
      ['a nested details object', { action: 'export', details: { nested: { a: 1 } } }, 'details'],
      ['an object resourceId', { action: 'read', resourceId: { $gt: '' } }, 'resourceId'],
    ])('%s: a Config/Validation error naming the field, nothing stored', async (_what, event, field) => {
      const before = (await storedEvents(db)).length;
      const err = await appError(() => {
        trail.record(event as unknown as core.AuditEventInput);
      });
      expect(['CONFIG_INVALID', 'VALIDATION_ERROR']).toContain(err.code);
      const named = JSON.stringify({ message: err.message, details: err.details });
      expect(named).toContain(field);
      // The error describes the value, never echoes it.
      expect(err.message).not.toContain(long(100));
      await trail.flush();
      expect(await storedEvents(db)).toHaveLength(before);
    });

    it('text a database cannot store (NUL, a lone surrogate) never breaks the writer', async () => {
      trail.record({ action: 'read', resourceType: 'Patient', resourceId: 'a\u0000b', patientId: '\ud800p' });
      trail.record({ action: 'export', details: { note: 'nul\u0000here', ['k\u0000']: true } });
      await trail.flush({ timeoutMs: 5000 });
      expect(trail.stats()).toMatchObject({ buffered: 0, failing: false });
      const rows = await storedEvents(db);
      for (const r of rows) expect(JSON.stringify(r.raw)).not.toContain('\\u0000');
      expect(await trail.verify()).toMatchObject({ ok: true, checked: rows.length, brokenAt: null });
    });

    it('a bad query filter: 400 VALIDATION_ERROR (as parseListQuery answers), never a driver error', async () => {
      for (const filters of [
        { from: 'not a date' },
        { to: '2026-13-01T00:00:00.000Z' },
        { to: new Date(Number.NaN) },
        { action: 'frobnicate' },
        { limit: 0 },
        { cursor: "1' OR '1'='1" },
        { patientId: { $ne: null } },
      ]) {
        const err = await appError(() => trail.query(filters as unknown as core.AuditQuery));
        expect({ filters, status: err.status, code: err.code }).toEqual({
          filters,
          status: 400,
          code: 'VALIDATION_ERROR',
        });
      }
    });

    it('an impossible calendar date in from/to is refused, not rolled over (2026-02-30 is not 2026-03-02)', async () => {
      for (const filters of [{ from: '2026-02-30' }, { to: '2026-04-31T00:00:00.000Z' }]) {
        const outcome = await trail.query(filters).then(
          () => 'accepted',
          (err: unknown) => (core.isAppError(err) ? `${err.status} ${err.code}` : String(err)),
        );
        expect({ filters, outcome }).toEqual({ filters, outcome: '400 VALIDATION_ERROR' });
      }
    });

    it('after all of that the trail still records, and the chain verifies', async () => {
      trail.record({ action: 'export', resourceType: 'Patient', resourceId: 'after', patientId: 'after' });
      await trail.flush();
      const rows = await storedEvents(db);
      expect(rows[rows.length - 1]).toMatchObject({ action: 'export', resource_id: 'after' });
      expect(await trail.verify()).toMatchObject({ ok: true, checked: rows.length, brokenAt: null });
    });

    describe.each(eachExpress)('hostile headers on %s', (_name, variant) => {
      let app: Express;
      beforeAll(() => {
        app = variant.express();
        app.use(core.requestContext());
        app.use('/api', trail.middleware());
        app.get('/api/export/:id', (req, res) => {
          req.audit({ action: 'export', resourceType: 'Patient', resourceId: req.params.id });
          res.json({ ok: true });
        });
        app.get('/api/bad', (req, res) => {
          req.audit({ action: 'steal' as core.AuditAction });
          res.json({ ok: true });
        });
        app.use(core.errors({ settings: TEST_SETTINGS, logger: silentLogger('errors') }));
      });

      async function only(requestId: string): Promise<import('./trail-support').StoredEvent[]> {
        await trail.flush();
        return storedEvents(db, 'audit_events', { request_id: requestId });
      }

      it('an X-Purpose-Of-Use outside 1–32 of A–Z a–z 0–9 _ . - is not stored', async () => {
        for (const [i, purpose] of ['TREAT; DROP TABLE x', long(40), 'TRÉAT', ' '].entries()) {
          const requestId = `purpose-${dialect}-${variant.major}-${i}`;
          const res = await request(app)
            .get(`/api/export/${i}`)
            .set('X-Request-Id', requestId)
            .set('X-Purpose-Of-Use', purpose);
          expect(res.status).toBe(200);
          const events = await only(requestId);
          expect(events).toHaveLength(1);
          expect(events[0]!.purpose_of_use).toBeNull();
        }
      });

      it('a 4 KB User-Agent is stored bounded, and the request is served', async () => {
        const requestId = `ua-${dialect}-${variant.major}`;
        const res = await request(app)
          .get('/api/export/ua')
          .set('X-Request-Id', requestId)
          .set('User-Agent', `Mozilla/5.0 ${long(4096)}`);
        expect(res.status).toBe(200);
        const [event] = await only(requestId);
        expect(event!.user_agent!.startsWith('Mozilla/5.0 ')).toBe(true);
        expect(event!.user_agent!.length).toBeLessThanOrEqual(512);
      });

      it('req.audit() with an unknown action in a route: an error response, the app keeps serving', async () => {
        const requestId = `bad-action-${dialect}-${variant.major}`;
        const res = await request(app).get('/api/bad').set('X-Request-Id', requestId);
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(await only(requestId)).toEqual([]);
        expect((await request(app).get('/api/export/still-up')).status).toBe(200);
      });
    });
  });
});
