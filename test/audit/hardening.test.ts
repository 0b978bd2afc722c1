/**
 * What an independent review of the audit trail found, each fixed and pinned here on PostgreSQL,
 * SQLite and MariaDB: a value the store cannot hold is set apart instead of stopping the writer;
 * an over-long id cut inside an emoji still verifies; verification while the trail writes is not
 * a false alarm; the chain head cannot be rewound (TRUNCATE + reset is refused even where
 * TRUNCATE fires no trigger); an HMAC-keyed chain cannot be re-hashed without the key; a mixed-case
 * table name migrates twice; `close()` writes events recorded while it runs.
 */
import * as core from '../../lib/index';
import { captureLogger } from '../support/logs';
import { DIALECTS, useDialect } from '../support/dialects';
import { dropGuard, failure, makeTrail, storedEvents } from './trail-support';

const KEY = 'audit-chain-hmac-key-for-tests-0123456789';

describe.each(DIALECTS)('audit trail hardening on %s', (dialect) => {
  const fixture = useDialect(dialect, 'aharden');
  const trails: core.AuditTrail[] = [];
  const trail = (options: Partial<core.AuditOptions>): core.AuditTrail => {
    const t = makeTrail(fixture().db, options);
    trails.push(t);
    return t;
  };
  afterAll(async () => {
    for (const t of trails) await t.close().catch(() => undefined);
  });

  it('an over-long user id cut inside an emoji is stored and the chain verifies', async () => {
    const t = trail({ table: 'cut_log' });
    await t.migrate();
    const ctx = core.createContext({ traceId: 'not-a-w3c-trace-id-but-longer-than-32-characters' });
    ctx.userId = `${'a'.repeat(254)}😀`;
    core.runWithContext(ctx, () => {
      t.record({ action: 'export', resourceType: 'Patient', resourceId: 'p-1' });
    });
    await t.flush({ timeoutMs: 5000 });
    expect(t.stats()).toMatchObject({ written: 1, dropped: 0, failing: false });
    const [row] = await storedEvents(fixture().db, 'cut_log');
    expect(row?.actor_id).toHaveLength(255);
    expect(row?.trace_id).toHaveLength(32);
    expect(await t.verify()).toEqual({ ok: true, checked: 1, brokenAt: null });
  });

  it('verifying while the trail writes never reports tampering', async () => {
    const t = trail({ table: 'busy_log', batchSize: 20 });
    await t.migrate();
    const results: core.VerifyResult[] = [];
    for (let round = 0; round < 10; round += 1) {
      for (let i = 0; i < 40; i += 1) t.record({ action: 'read', resourceType: 'Patient', resourceId: i });
      results.push(await t.verify());
    }
    await t.flush();
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(await t.verify()).toEqual({ ok: true, checked: 400, brokenAt: null });
  });

  it('the head only moves forward: emptying the table and resetting the head is refused, and an emptied table shows', async () => {
    const t = trail({ table: 'rewind_log' });
    await t.migrate();
    for (let i = 0; i < 3; i += 1) t.record({ action: 'read', resourceType: 'Patient', resourceId: i });
    await t.flush();
    const db = fixture().db;
    const refused = (await failure(() =>
      db.knex('rewind_log_head').update({ seq: 0, hash: '0'.repeat(64), event_id: null }),
    )) as { message?: string };
    expect(refused.message).toMatch(/append-only/);
    await dropGuard(db, 'rewind_log');
    if (dialect === 'sqlite') await db.knex('rewind_log').delete();
    else await db.knex.raw('TRUNCATE TABLE ??', ['rewind_log']);
    expect(await t.verify()).toEqual({ ok: false, checked: 0, brokenAt: 1, reason: 'head' });
  });

  it('with an hmacKey the chain verifies only with that key, and a row re-hashed without it is found', async () => {
    const t = trail({ table: 'keyed_log', hmacKey: KEY });
    await t.migrate();
    for (let i = 0; i < 3; i += 1) t.record({ action: 'read', resourceType: 'Patient', resourceId: i });
    await t.flush();
    const db = fixture().db;
    expect(await t.verify()).toEqual({ ok: true, checked: 3, brokenAt: null });
    expect(await core.verifyAuditChain(db, { table: 'keyed_log', hmacKey: KEY })).toMatchObject({ ok: true });
    // Without the key (or with another) the first row already fails: plain SHA-256 cannot re-create it.
    expect(await core.verifyAuditChain(db, { table: 'keyed_log' })).toMatchObject({
      ok: false,
      brokenAt: 1,
      reason: 'hash',
    });
    expect(() => makeTrail(db, { hmacKey: 'short' })).toThrow(core.ConfigError);
  });

  if (dialect === 'postgres') {
    it('a value the store cannot hold is set apart (dropped, counted, logged); the events around it are written', async () => {
      const log = captureLogger('audit');
      const t = trail({ table: 'narrow_log', logger: log.logger });
      await t.migrate();
      const db = fixture().db;
      // A column narrowed by hand: the database now refuses what the trail validated.
      await db.knex.raw('ALTER TABLE ?? ALTER COLUMN resource_type TYPE varchar(8)', ['narrow_log']);
      t.record({ action: 'read', resourceType: 'Patient', resourceId: 1 });
      t.record({ action: 'read', resourceType: 'MedicationRequest', resourceId: 2 });
      t.record({ action: 'read', resourceType: 'Patient', resourceId: 3 });
      await t.flush({ timeoutMs: 5000 });
      expect(t.stats()).toMatchObject({ written: 2, dropped: 1, buffered: 0 });
      expect((await storedEvents(db, 'narrow_log')).map((r) => r.resource_id)).toEqual(['1', '3']);
      expect(await t.verify()).toEqual({ ok: true, checked: 2, brokenAt: null });
      expect(log.raw()).toMatch(/audit events dropped/);
      expect(log.raw()).toMatch(/unstorable/);
      // The trail keeps going.
      t.record({ action: 'read', resourceType: 'Patient', resourceId: 4 });
      await t.flush();
      expect(t.stats()).toMatchObject({ written: 3, failing: false });
    });

    it('a mixed-case table name migrates twice', async () => {
      const t = trail({ table: 'MixedCase_Log' });
      await t.migrate();
      await t.migrate();
      t.record({ action: 'read' });
      await t.flush();
      expect(await t.verify()).toMatchObject({ ok: true, checked: 1 });
    });
  }

  it('close() writes the events recorded while it runs', async () => {
    const t = makeTrail(fixture().db, { table: 'late_log', flushIntervalMs: 50 });
    await t.migrate();
    t.record({ action: 'read', resourceId: 1 });
    const closing = t.close();
    t.record({ action: 'read', resourceId: 2 });
    await closing;
    expect(t.stats()).toMatchObject({ written: 2, buffered: 0, dropped: 0 });
    expect(() => {
      t.admit();
    }).toThrow(core.ServiceUnavailableError);
  });
});
