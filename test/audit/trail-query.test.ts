/**
 * trail.query(filters) on PostgreSQL, SQLite and MariaDB: by patient (including searches whose page
 * held the patient), actor, action, time range, and paging with the cursor, newest first. Expected
 * results are computed from the stored rows, never written down by hand.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import * as core from '../../lib/index';
import { DIALECTS, useDialect } from '../support/dialects';
import {
  type Observation,
  type Patient,
  type StoredEvent,
  createClinicalTables,
  makeTrail,
  observationRepository,
  patientRepository,
  seedPatients,
  storedEvents,
} from './trail-support';

type Filters = Parameters<core.AuditTrail['query']>[0];
type QueryEvent = Awaited<ReturnType<core.AuditTrail['query']>>['events'][number];

/** The id by which a query result is matched with a stored row. */
const idOf = (e: QueryEvent): string => e.id;

describe.each(DIALECTS)('trail.query() on %s', (dialect) => {
  const fixture = useDialect(dialect, 'aquery');

  describe('over a recorded history', () => {
    let db: core.Database;
    let trail: core.AuditTrail;
    let patients: core.BaseRepository<Patient>;
    let observations: core.BaseRepository<Observation>;
    let ids: number[];
    let stored: StoredEvent[];
    /** A time strictly between the first and the second group of events. */
    let between: Date;

    async function as(userId: string, fn: () => Promise<unknown>): Promise<void> {
      await core.runWithContext(core.createContext({}), async () => {
        core.setUser(userId, ['clinician']);
        await fn();
      });
    }

    beforeAll(async () => {
      db = fixture().db;
      await createClinicalTables(db);
      trail = makeTrail(db);
      await trail.migrate();
      patients = patientRepository(db, { trail });
      observations = observationRepository(db, { trail });
      ids = (await patientRepository(db).createMany(seedPatients(4, dialect))).map((p) => p.id);
      const [p1, p2, p3, p4] = ids as [number, number, number, number];
      const obs = await observationRepository(db).createMany([
        { patient_id: p1, code: 'x', value: 'v' },
        { patient_id: p2, code: 'x', value: 'v' },
      ]);

      // Group 1.
      await as('dr-a', async () => {
        await patients.findById(p1);
        await patients.findById(p2);
        // A search whose page holds p1 and p3 only.
        await patients.list({ filters: { id: { in: [p1, p3] } } });
        await observations.update(obs[1]!.id, { value: 'w' });
      });
      await trail.flush();
      const firstGroup = await storedEvents(db);
      const lastOfFirst = Math.max(...firstGroup.map((e) => Date.parse(e.recorded_at)));
      // The only wait: the clock must move on so that a time separates the two groups.
      while (Date.now() < lastOfFirst + 3) await sleep(2);

      // Group 2.
      await as('dr-b', async () => {
        await patients.findById(p3);
        await observations.delete(obs[0]!.id);
        await patients.findById(p4 + 1000);
      });
      trail.record({
        action: 'export',
        resourceType: 'Patient',
        resourceId: String(p1),
        patientId: String(p1),
      });
      await trail.flush();
      stored = await storedEvents(db);
      const firstOfSecond = Math.min(
        ...stored.filter((e) => e.seq > firstGroup.length).map((e) => Date.parse(e.recorded_at)),
      );
      expect(firstOfSecond - lastOfFirst).toBeGreaterThanOrEqual(2);
      between = new Date(Math.floor((lastOfFirst + firstOfSecond) / 2));
      expect(between.getTime()).toBeGreaterThan(lastOfFirst);
      expect(between.getTime()).toBeLessThan(firstOfSecond);
    });

    afterAll(async () => {
      await trail.close();
    });

    /** Event ids, newest first, of the stored rows `keep` selects. */
    const expected = (keep: (e: StoredEvent) => boolean): string[] =>
      stored
        .filter(keep)
        .sort((a, b) => b.seq - a.seq)
        .map((e) => e.event_id);

    async function idsFor(filters: Filters): Promise<string[]> {
      const { events, nextCursor } = await trail.query(filters);
      expect(nextCursor).toBeNull();
      return events.map(idOf);
    }

    it('no filter: every event, newest first', async () => {
      // One event per repository call: 4 in the first group, 3 in the second, and the export.
      expect(stored).toHaveLength(8);
      expect(await idsFor({})).toEqual(expected(() => true));
    });

    it('by patientId: their reads, writes, exports and the search whose page held them', async () => {
      const p1 = String(ids[0]);
      const want = expected(
        (e) =>
          e.patient_id === p1 ||
          (Array.isArray(e.patient_ids) && (e.patient_ids as unknown[]).map(String).includes(p1)),
      );
      const got = await idsFor({ patientId: p1 });
      expect(got).toEqual(want);
      const actions = stored.filter((e) => got.includes(e.event_id)).map((e) => e.action);
      expect(actions).toEqual(expect.arrayContaining(['read', 'search', 'delete', 'export']));
      // p2 was not on the search's page: the search is not among p2's events.
      const p2 = await idsFor({ patientId: String(ids[1]) });
      expect(
        stored
          .filter((e) => p2.includes(e.event_id))
          .map((e) => e.action)
          .sort(),
      ).toEqual(['read', 'update']);
    });

    it('by actorId and by action', async () => {
      expect(await idsFor({ actorId: 'dr-b' })).toEqual(expected((e) => e.actor_id === 'dr-b'));
      expect(await idsFor({ actorId: 'dr-a' })).toEqual(expected((e) => e.actor_id === 'dr-a'));
      expect(await idsFor({ actorId: 'nobody' })).toEqual([]);
      expect(await idsFor({ action: 'read' })).toEqual(expected((e) => e.action === 'read'));
      expect(await idsFor({ action: 'read', outcome: 'error' })).toEqual(
        expected((e) => e.action === 'read' && e.outcome === 'error'),
      );
      expect(await idsFor({ resourceType: 'Observation' })).toEqual(
        expected((e) => e.resource_type === 'Observation'),
      );
    });

    it('by time range: from and to split the two groups', async () => {
      const t = between.getTime();
      const after = expected((e) => Date.parse(e.recorded_at) > t);
      const before = expected((e) => Date.parse(e.recorded_at) < t);
      expect(after.length).toBeGreaterThan(0);
      expect(before.length).toBeGreaterThan(0);
      expect(await idsFor({ from: between })).toEqual(after);
      expect(await idsFor({ to: between })).toEqual(before);
      expect(await idsFor({ from: between, actorId: 'dr-a' })).toEqual([]);
    });

    it('paging: limit and cursor walk every event once, newest first', async () => {
      const seen: string[] = [];
      let cursor: string | null | undefined;
      let pages = 0;
      do {
        const page = await trail.query({ limit: 3, ...(cursor == null ? {} : { cursor }) });
        expect(page.events.length).toBeLessThanOrEqual(3);
        seen.push(...page.events.map(idOf));
        cursor = page.nextCursor;
        pages += 1;
        expect(pages).toBeLessThan(10);
      } while (cursor !== null);
      expect(seen).toEqual(expected(() => true));
      expect(pages).toBe(Math.ceil(stored.length / 3));
    });

    it('paging with a filter keeps the filter across pages', async () => {
      const first = await trail.query({ action: 'read', limit: 2 });
      expect(first.nextCursor).not.toBeNull();
      const second = await trail.query({ action: 'read', limit: 2, cursor: first.nextCursor! });
      expect([...first.events, ...second.events].map(idOf)).toEqual(
        expected((e) => e.action === 'read').slice(0, 4),
      );
    });

    it('a tampered cursor is a client error, and a limit over 1000 never returns more than 1000', async () => {
      const page = await trail.query({ limit: 2 });
      const bad = `${page.nextCursor!.slice(0, -2)}!!`;
      const err = await trail.query({ limit: 2, cursor: bad }).catch((e: unknown) => e as core.AppError);
      expect(core.isAppError(err) && err.status >= 400 && err.status < 500).toBe(true);
      const tooMany = await trail.query({ limit: 5000 }).then(
        (r) => ({ count: r.events.length }),
        (err: unknown) => ({ status: (err as core.AppError).status }),
      );
      // Either refused as bad input or capped at the documented maximum: never more than 1000.
      if ('status' in tooMany) expect(tooMany.status).toBeGreaterThanOrEqual(400);
      else expect(tooMany.count).toBeLessThanOrEqual(1000);
    });
  });
});
