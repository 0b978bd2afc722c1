/**
 * Tamper evidence on PostgreSQL, SQLite and MariaDB: the append-only guard refuses UPDATE and
 * DELETE through the application's own connection; with the guard dropped, an edited row, a
 * deleted middle row and deleted newest rows are each found by verifyAuditChain(). Two trails on
 * one table (two Databases, as two processes would have) keep one gapless chain.
 */
import * as core from '../../lib/index';
import { DIALECTS, type DialectName, TEST_SETTINGS, useDialect } from '../support/dialects';
import { mariaDatabase, pgSchema } from '../support/isolated';
import { dropGuard, failure, makeTrail, silentLogger, storedEvents } from './trail-support';

const RECORDED = 5;

/** Record `count` system events (no request) and wait for them to be written. */
async function recordSome(trail: core.AuditTrail, count: number, tag: string): Promise<void> {
  for (let i = 0; i < count; i += 1) {
    trail.record({
      action: 'read',
      resourceType: 'Patient',
      resourceId: `${tag}-${i}`,
      patientId: `${tag}-${i}`,
      details: { i },
    });
  }
  await trail.flush();
}

describe.each(DIALECTS)('audit chain on %s', (dialect) => {
  const fixture = useDialect(dialect, 'achain');

  describe('trails', () => {
    const trails: core.AuditTrail[] = [];
    let db: core.Database;

    beforeAll(() => {
      db = fixture().db;
    });
    afterAll(async () => {
      for (const t of trails) await t.close();
    });

    async function freshTrail(table?: string): Promise<core.AuditTrail> {
      const trail = makeTrail(db, table === undefined ? {} : { table });
      trails.push(trail);
      await trail.migrate();
      return trail;
    }

    it('a custom table name: migrate() twice, events land in it and its head, not in audit_events', async () => {
      const table = 'phi_access_log';
      const trail = makeTrail(db, { table });
      trails.push(trail);
      await trail.migrate();
      await trail.migrate();
      await recordSome(trail, 3, 'custom');
      const rows = await storedEvents(db, table);
      expect(rows.map((r) => [r.seq, r.resource_id, r.actor_type])).toEqual([
        [1, 'custom-0', 'system'],
        [2, 'custom-1', 'system'],
        [3, 'custom-2', 'system'],
      ]);
      expect(await db.knex.schema.hasTable(`${table}_head`)).toBe(true);
      expect(await db.knex.schema.hasTable('audit_events')).toBe(false);
      // migrate() again with rows present keeps them and the chain.
      await trail.migrate();
      expect(await storedEvents(db, table)).toHaveLength(3);
      expect(await core.verifyAuditChain(db, { table })).toMatchObject({
        ok: true,
        checked: 3,
        brokenAt: null,
      });
      expect(await trail.verify()).toMatchObject({ ok: true, checked: 3, brokenAt: null });
    });

    it('the longest table name audit() accepts (40 characters): migrate() twice, record, verify', async () => {
      const table = `t${'x'.repeat(39)}`;
      expect(table).toHaveLength(40);
      expect(() => makeTrail(db, { table: `${table}x` })).toThrow(core.ConfigError);
      const trail = makeTrail(db, { table });
      trails.push(trail);
      await trail.migrate();
      await trail.migrate();
      await recordSome(trail, 2, 'long');
      expect(await trail.verify()).toMatchObject({ ok: true, checked: 2, brokenAt: null });
      expect(
        core.isError(await failure(() => db.knex(table).where({ seq: 1 }).update({ outcome: 'error' }))),
      ).toBe(true);
    });

    it('a table name one character over the limit is a ConfigError at creation, not a failed migrate()', () => {
      expect(() => makeTrail(db, { table: `t${'x'.repeat(40)}` })).toThrow(/table/);
    });

    it('an empty table verifies with checked 0', async () => {
      const trail = await freshTrail('empty_log');
      expect(await trail.verify()).toMatchObject({ ok: true, checked: 0, brokenAt: null });
    });

    describe.each(['audit_events', 'guarded_log'])('the append-only guard on %s', (table) => {
      it('refuses UPDATE and DELETE through db.knex; the rows and the chain are unchanged', async () => {
        const trail = await freshTrail(table === 'audit_events' ? undefined : table);
        await recordSome(trail, RECORDED, table);
        const before = await storedEvents(db, table);
        expect(before).toHaveLength(RECORDED);

        const attempts: [string, () => Promise<unknown>][] = [
          ['update one', () => db.knex(table).where({ seq: 2 }).update({ resource_id: 'rewritten' })],
          ['update all', () => db.knex(table).update({ outcome: 'error' })],
          ['delete one', () => db.knex(table).where({ seq: 3 }).del()],
          ['delete all', () => db.knex(table).del()],
          ['raw delete', () => db.knex.raw(`DELETE FROM ${table} WHERE seq = 1`)],
        ];
        if (dialect === 'postgres') attempts.push(['truncate', () => db.knex.raw(`TRUNCATE ${table}`)]);
        for (const [what, attempt] of attempts) {
          const err = await failure(attempt);
          // core.isError, not instanceof: better-sqlite3's errors come from another realm under jest.
          expect({ what, isError: core.isError(err) }).toEqual({ what, isError: true });
        }
        // Also inside a transaction of the Database (the path repositories use).
        const inTransaction = await failure(() =>
          db.transaction((trx) => trx(table).where({ seq: 1 }).update({ action: 'login' })),
        );
        expect(core.isError(inTransaction)).toBe(true);

        const after = await storedEvents(db, table);
        expect(after.map((r) => [r.seq, r.hash, r.resource_id, r.outcome])).toEqual(
          before.map((r) => [r.seq, r.hash, r.resource_id, r.outcome]),
        );
        expect(await trail.verify()).toMatchObject({ ok: true, checked: RECORDED, brokenAt: null });
        // The guard does not stop the trail itself from appending.
        await recordSome(trail, 1, `${table}-more`);
        expect(await trail.verify()).toMatchObject({ ok: true, checked: RECORDED + 1, brokenAt: null });
      });
    });

    it('an edited row: ok false, brokenAt that row, reason hash', async () => {
      const table = 'tamper_edit';
      await recordSome(await freshTrail(table), RECORDED, 'edit');
      expect(await core.verifyAuditChain(db, { table })).toMatchObject({ ok: true, checked: RECORDED });
      await dropGuard(db, table);
      const victim = 3;
      await db.knex(table).where({ seq: victim }).update({ patient_id: 'someone-else' });
      expect(await core.verifyAuditChain(db, { table })).toMatchObject({
        ok: false,
        checked: victim - 1,
        brokenAt: victim,
        reason: 'hash',
      });
    });

    it('changing only the outcome of the newest row is found too', async () => {
      const table = 'tamper_outcome';
      await recordSome(await freshTrail(table), RECORDED, 'outcome');
      await dropGuard(db, table);
      await db.knex(table).where({ seq: RECORDED }).update({ outcome: 'denied' });
      expect(await core.verifyAuditChain(db, { table })).toMatchObject({
        ok: false,
        brokenAt: RECORDED,
        reason: 'hash',
      });
    });

    it('a deleted middle row: brokenAt names the next row, reason link', async () => {
      const table = 'tamper_gap';
      const trail = await freshTrail(table);
      await recordSome(trail, RECORDED, 'gap');
      await dropGuard(db, table);
      await db.knex(table).where({ seq: 3 }).del();
      expect(await core.verifyAuditChain(db, { table })).toMatchObject({
        ok: false,
        checked: 2,
        brokenAt: 4,
        reason: 'link',
      });
      expect(await trail.verify()).toMatchObject({ ok: false, brokenAt: 4, reason: 'link' });
    });

    it('deleted newest rows: reason head', async () => {
      const table = 'tamper_head';
      await recordSome(await freshTrail(table), RECORDED, 'head');
      await dropGuard(db, table);
      await db
        .knex(table)
        .where('seq', '>', RECORDED - 2)
        .del();
      expect(await core.verifyAuditChain(db, { table })).toMatchObject({
        ok: false,
        checked: RECORDED - 2,
        brokenAt: RECORDED - 1,
        reason: 'head',
      });
    });
  });
});

const SHARED: readonly DialectName[] = DIALECTS.filter((d) => d !== 'sqlite');

describe.each(SHARED)('two writers on one table on %s', (dialect) => {
  const PER_WRITER = 120;
  let target: { url: string; drop(): Promise<void> };
  let dbs: core.Database[] = [];
  let writers: core.AuditTrail[] = [];

  beforeAll(async () => {
    target = dialect === 'postgres' ? await pgSchema('aconc') : await mariaDatabase('aconc');
    dbs = [0, 1].map((i) =>
      core.createDatabase({
        url: target.url,
        name: `writer${i}`,
        settings: TEST_SETTINGS,
        logger: silentLogger('database'),
        metrics: false,
      }),
    );
    writers = dbs.map((db) => makeTrail(db, { batchSize: 7, flushIntervalMs: 1 }));
    for (const w of writers) await w.migrate();
  });

  afterAll(async () => {
    for (const w of writers) await w.close();
    for (const db of dbs) await db.close();
    await target.drop();
  });

  it('two instances migrating a new table at the same moment both succeed, and share one chain', async () => {
    const table = 'race_log';
    const racers = dbs.map((db) => makeTrail(db, { table }));
    try {
      const results = await Promise.allSettled(racers.map((t) => t.migrate()));
      expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual(['ok', 'ok']);
      racers.forEach((t, i) => {
        t.record({ action: 'read', resourceType: 'Patient', resourceId: `racer-${i}` });
      });
      await Promise.all(racers.map((t) => t.flush()));
      expect(await core.verifyAuditChain(dbs[0]!, { table })).toMatchObject({ ok: true, checked: 2 });
    } finally {
      for (const t of racers) await t.close().catch(() => undefined);
    }
  });

  it('interleaved batches: one chain, seq 1..n with no gap and no duplicate, every event kept', async () => {
    const [a, b] = writers as [core.AuditTrail, core.AuditTrail];
    const recordAll = async (trail: core.AuditTrail, writer: string): Promise<void> => {
      for (let i = 0; i < PER_WRITER; i += 1) {
        trail.record({ action: 'read', resourceType: 'Patient', resourceId: `${writer}-${i}` });
        // Let the other writer's batches in between.
        if (i % 10 === 9) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      await trail.flush();
    };
    await Promise.all([recordAll(a, 'a'), recordAll(b, 'b')]);

    const rows = await storedEvents(dbs[0]!);
    expect(rows).toHaveLength(2 * PER_WRITER);
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_, i) => i + 1));
    expect(new Set(rows.map((r) => r.event_id)).size).toBe(rows.length);
    for (const writer of ['a', 'b']) {
      const mine = rows.filter((r) => r.resource_id?.startsWith(`${writer}-`)).map((r) => r.resource_id);
      expect(new Set(mine)).toEqual(new Set(Array.from({ length: PER_WRITER }, (_, i) => `${writer}-${i}`)));
    }
    // The writers really did interleave: the chain switches writer more than once.
    const switches = rows.filter(
      (r, i) => i > 0 && r.resource_id![0] !== rows[i - 1]!.resource_id![0],
    ).length;
    expect(switches).toBeGreaterThan(1);
    for (const db of dbs) {
      expect(await core.verifyAuditChain(db, { table: 'audit_events' })).toMatchObject({
        ok: true,
        checked: 2 * PER_WRITER,
        brokenAt: null,
      });
    }
  });
});
