/**
 * BaseRepository through the public API: one suite, run on PostgreSQL, SQLite and MariaDB, each in
 * a schema/database of this jest worker's own.
 */
import type { Knex } from 'knex';
import { setTimeout as sleep } from 'node:timers/promises';
import * as core from '../../lib/index';
import { DIALECTS, useDialect } from '../support/dialects';
import {
  PATIENT_OPTIONS,
  createPatientsTable,
  rejection,
  type Patient,
  type PatientCreate,
  type PatientUpdate,
} from './patients';

class PatientRepository extends core.BaseRepository<Patient, PatientCreate, PatientUpdate> {
  /** An injected collaborator, TypeScript-private. */
  private readonly clinic: string;

  constructor(db: core.Database, clinic = 'north') {
    super(db, PATIENT_OPTIONS);
    this.clinic = clinic;
  }

  findByMrn(mrn: string): Promise<Patient | undefined> {
    return this.findOne({ mrn });
  }

  clinicName(): string {
    return this.clinic;
  }
}

/** A subclass holding its collaborator in an ECMAScript private field. */
/** Narrows every row access to one status, the way a multi-tenant or per-user view would. */
class ActiveOnlyRepository extends core.BaseRepository<Patient, PatientCreate, PatientUpdate> {
  constructor(db: core.Database) {
    super(db, PATIENT_OPTIONS);
  }

  protected override baseQuery(k: Knex): Knex.QueryBuilder {
    return super.baseQuery(k).where('status', 'active');
  }
}

class AuditedPatientRepository extends core.BaseRepository<Patient, PatientCreate, PatientUpdate> {
  readonly #lookups: string[] = [];

  constructor(db: core.Database) {
    super(db, PATIENT_OPTIONS);
  }

  async findByMrn(mrn: string): Promise<Patient | undefined> {
    this.#lookups.push(mrn);
    return this.findOne({ mrn });
  }

  lookups(): readonly string[] {
    return this.#lookups;
  }
}

const HIDDEN_SSN = '987-65-4321';

function input(mrn: string, extra: Partial<PatientCreate> = {}): PatientCreate {
  return {
    mrn,
    family_name: 'doe',
    given_name: 'jane',
    status: 'active',
    age: 40,
    active: true,
    ssn: HIDDEN_SSN,
    ...extra,
  };
}

function expectNoHidden(...rows: readonly object[]): void {
  for (const row of rows) {
    expect(Object.keys(row)).not.toContain('ssn');
    expect(JSON.stringify(row)).not.toContain(HIDDEN_SSN);
  }
}

const ids = (rows: readonly Patient[]): number[] => rows.map((r) => r.id);
const mrns = (rows: readonly Patient[]): string[] => rows.map((r) => r.mrn).sort();

describe.each(DIALECTS)('BaseRepository on %s', (dialect) => {
  const fixture = useDialect(dialect, 'repo');
  let db: core.Database;
  let repo: PatientRepository;

  beforeAll(async () => {
    db = fixture().db;
    await createPatientsTable(db);
    repo = new PatientRepository(db);
  });

  const truncate = async (): Promise<void> => {
    await db.knex('patients').del();
  };

  describe('create', () => {
    beforeEach(truncate);

    it('sets the timestamps and version 1, stores hidden columns and never returns them', async () => {
      const before = Date.now();
      const p = await repo.create(input('C1'));
      const after = Date.now();
      expect(typeof p.id).toBe('number');
      expect(p).toMatchObject({
        mrn: 'C1',
        family_name: 'doe',
        age: 40,
        active: true,
        version: 1,
        deleted_at: null,
      });
      expect(p.created_at).toBeInstanceOf(Date);
      expect(p.updated_at).toBeInstanceOf(Date);
      expect(p.created_at.getTime()).toBeGreaterThanOrEqual(before - 5);
      expect(p.created_at.getTime()).toBeLessThanOrEqual(after + 5);
      expect(p.updated_at.getTime()).toBe(p.created_at.getTime());
      expectNoHidden(p);
      // The column is written, just never read back out.
      const raw = await db.knex<{ id: number; ssn: string }>('patients').where('id', p.id).first('ssn');
      expect(raw?.ssn).toBe(HIDDEN_SSN);
      expectNoHidden(
        await repo.getById(p.id),
        (await repo.findOne({ mrn: 'C1' }))!,
        ...(await repo.list()).items,
      );
    });

    it('ignores timestamps, version and deleted_at supplied by the caller', async () => {
      const forged = {
        ...input('C2'),
        created_at: new Date('2000-01-01T00:00:00Z'),
        version: 99,
        deleted_at: new Date('2000-01-01T00:00:00Z'),
      } as PatientCreate;
      const p = await repo.withDeleted().create(forged);
      expect(p.version).toBe(1);
      expect(p.created_at.getUTCFullYear()).toBeGreaterThan(2000);
      expect(p.deleted_at).toBeNull();
    });

    it('validates with the zod createSchema: 422 VALIDATION_ERROR with field_errors, nothing written', async () => {
      const err = await rejection(repo.create({ ...input('C3'), family_name: '', age: -4 }));
      expect(err).toBeInstanceOf(core.ValidationError);
      expect(err.status).toBe(422);
      expect(err.code).toBe('VALIDATION_ERROR');
      const fieldErrors = err.details.field_errors as Record<string, string>;
      expect(Object.keys(fieldErrors).sort()).toEqual(['age', 'family_name']);
      expect(await repo.count()).toBe(0);
    });
  });

  describe('createMany', () => {
    beforeEach(truncate);

    it('inserts every row and returns them all', async () => {
      const rows = await repo.createMany([input('M1'), input('M2'), input('M3')]);
      expect(mrns(rows)).toEqual(['M1', 'M2', 'M3']);
      expect(new Set(ids(rows)).size).toBe(3);
      for (const r of rows) expect(r.version).toBe(1);
      expectNoHidden(...rows);
      expect(await repo.count()).toBe(3);
    });

    it('is all-or-nothing: a duplicate in the middle rolls back the rows before it', async () => {
      await repo.create(input('EXISTING'));
      const err = await rejection(repo.createMany([input('M4'), input('EXISTING'), input('M5')]));
      expect(err).toBeInstanceOf(core.DuplicateError);
      expect(await repo.count()).toBe(1);
      expect(await repo.exists({ mrn: 'M4' })).toBe(false);
    });

    it('names the item and the field of an invalid item, and writes nothing', async () => {
      const err = await rejection(repo.createMany([input('M6'), { ...input('M7'), age: 1.5 }]));
      expect(err.status).toBe(422);
      expect(Object.keys(err.details.field_errors as object)).toEqual(['1.age']);
      expect(await repo.count()).toBe(0);
    });
  });

  describe('reads by id and by filters', () => {
    let a: Patient;
    let b: Patient;

    beforeAll(async () => {
      await truncate();
      a = await repo.create(input('R1', { status: 'active', age: 30 }));
      b = await repo.create(input('R2', { status: 'inactive', age: 50 }));
    });

    it('getById returns the row; a missing id is NotFoundError (404 NOT_FOUND)', async () => {
      expect((await repo.getById(a.id)).mrn).toBe('R1');
      const err = await rejection(repo.getById(b.id + 1000));
      expect(err).toBeInstanceOf(core.NotFoundError);
      expect(err.status).toBe(404);
      expect(err.code).toBe('NOT_FOUND');
      expect(err.details).toMatchObject({ resource_type: 'Patient', resource_id: String(b.id + 1000) });
    });

    it('findById returns undefined for a missing id', async () => {
      expect((await repo.findById(b.id))?.mrn).toBe('R2');
      expect(await repo.findById(b.id + 1000)).toBeUndefined();
    });

    it('an empty or absurd id is a 400, not a database error', async () => {
      expect((await rejection(repo.findById(''))).status).toBe(400);
      expect((await rejection(repo.getById('x'.repeat(300)))).status).toBe(400);
    });

    it('findOne, count and exists take filters', async () => {
      expect((await repo.findOne({ status: 'inactive' }))?.id).toBe(b.id);
      expect(await repo.findOne({ status: 'pending' })).toBeUndefined();
      expect(await repo.count()).toBe(2);
      expect(await repo.count({ age: { gte: 40 } })).toBe(1);
      expect(await repo.exists(a.id)).toBe(true);
      expect(await repo.exists(b.id + 1000)).toBe(false);
      expect(await repo.exists({ mrn: 'R2' })).toBe(true);
      expect(await repo.exists({ mrn: 'R3' })).toBe(false);
    });
  });

  describe('pages', () => {
    const N = 30;
    const NAMES = ['adams', 'baker', 'clark'];
    const GIVEN = ['ann', 'bob', 'cy'];
    let all: Patient[];

    beforeAll(async () => {
      await truncate();
      const items: PatientCreate[] = [];
      for (let i = 0; i < N; i++) {
        items.push(
          input(`P${String(i).padStart(2, '0')}`, {
            family_name: NAMES[i % 3]!,
            given_name: i % 4 === 0 ? null : GIVEN[i % 3]!,
            age: 20 + ((i * 7) % 5) * 10,
            status: i % 2 === 0 ? 'active' : 'inactive',
            active: i % 3 === 0,
          }),
        );
      }
      // Two batches a few ms apart: created_at has duplicates inside each batch.
      all = await repo.createMany(items.slice(0, 15));
      await sleep(5);
      all.push(...(await repo.createMany(items.slice(15))));
    });

    /** Every row, through offset pages of `size`. */
    async function offsetWalk(options: core.ListOptions, size: number): Promise<Patient[]> {
      const out: Patient[] = [];
      for (let page = 1; page < 100; page++) {
        const res = await repo.list({ ...options, page, size, cursor: undefined, limit: undefined });
        out.push(...res.items);
        if (page >= (res.pages ?? 0)) break;
      }
      return out;
    }

    /** Every row, through keyset pages of `limit`. */
    async function keysetWalk(options: core.ListOptions, limit: number): Promise<Patient[]> {
      const out: Patient[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 100; i++) {
        const res: core.KeysetPage<Patient> = await repo.list({ ...options, cursor, limit });
        expect(res.items.length).toBeLessThanOrEqual(limit);
        out.push(...res.items);
        cursor = res.next_cursor;
        if (cursor === null) break;
      }
      return out;
    }

    it('offset pages carry {items, total, page, size, pages}', async () => {
      const first = await repo.list({ page: 1, size: 7 });
      expect(Object.keys(first).sort()).toEqual(['items', 'page', 'pages', 'size', 'total']);
      expect(first).toMatchObject({ total: N, page: 1, size: 7, pages: 5 });
      expect(first.items).toHaveLength(7);
      const last = await repo.list({ page: 5, size: 7 });
      expect(last.items).toHaveLength(2);
      const beyond = await repo.list({ page: 6, size: 7 });
      expect(beyond).toMatchObject({ items: [], total: N, page: 6 });
      expectNoHidden(...first.items);
    });

    it('defaults to page 1 of 20 in id order; withTotal: false skips the count', async () => {
      const res = await repo.list();
      expect(res).toMatchObject({ page: 1, size: 20, total: N, pages: 2 });
      expect(ids(res.items)).toEqual(
        ids(all)
          .sort((x, y) => x - y)
          .slice(0, 20),
      );
      const noTotal = await repo.list({ size: 5, withTotal: false });
      expect(noTotal.total).toBeUndefined();
      expect(noTotal.pages).toBeUndefined();
      expect(noTotal.items).toHaveLength(5);
    });

    it('multi-column sort with duplicate values: no row repeated or skipped across pages', async () => {
      const sort: core.SortSpec[] = [
        { field: 'family_name', direction: 'asc' },
        { field: 'age', direction: 'desc' },
      ];
      for (const size of [1, 4, 7, 11]) {
        const walked = await offsetWalk({ sort }, size);
        expect(walked).toHaveLength(N);
        expect(new Set(ids(walked)).size).toBe(N);
        for (let i = 1; i < walked.length; i++) {
          const [p, q] = [walked[i - 1]!, walked[i]!];
          const inOrder =
            p.family_name < q.family_name || (p.family_name === q.family_name && p.age >= q.age);
          expect(inOrder).toBe(true);
        }
      }
    });

    it('offset pages of an order with ties are stable: the same page twice gives the same rows', async () => {
      const sort: core.SortSpec[] = [{ field: 'status', direction: 'asc' }];
      const one = await repo.list({ sort, page: 2, size: 6 });
      const two = await repo.list({ sort, page: 2, size: 6 });
      expect(ids(two.items)).toEqual(ids(one.items));
    });

    it.each<[string, core.SortSpec[], number]>([
      ['the default order', [], 6],
      [
        'family_name, -age',
        [
          { field: 'family_name', direction: 'asc' },
          { field: 'age', direction: 'desc' },
        ],
        4,
      ],
      [
        '-status, age',
        [
          { field: 'status', direction: 'desc' },
          { field: 'age', direction: 'asc' },
        ],
        7,
      ],
      [
        'active, -age (a boolean)',
        [
          { field: 'active', direction: 'asc' },
          { field: 'age', direction: 'desc' },
        ],
        5,
      ],
      ['-created_at (dates with duplicates)', [{ field: 'created_at', direction: 'desc' }], 4],
      ['created_at', [{ field: 'created_at', direction: 'asc' }], 9],
    ])('keyset pages by %s walk the whole table in the offset order', async (_name, sort, limit) => {
      const expected = ids((await repo.list({ sort, size: 100 })).items);
      expect(expected).toHaveLength(N);
      const walked = await keysetWalk({ sort }, limit);
      expect(ids(walked)).toEqual(expected);
    });

    it.each(['asc', 'desc'] as const)(
      'keyset pages over a nullable sort column (given_name %s, NULLs included) walk the whole table in the offset order',
      async (direction) => {
        const sort: core.SortSpec[] = [{ field: 'given_name', direction }];
        const expected = ids((await repo.list({ sort, size: 100 })).items);
        expect(expected).toHaveLength(N);
        const walked = await keysetWalk({ sort }, 4);
        expect(walked.length).toBe(N);
        expect(ids(walked)).toEqual(expected);
      },
    );

    it('keyset pages with filters equal the filtered offset order', async () => {
      const filters = { status: 'active', age: { gte: 30 } };
      const sort: core.SortSpec[] = [{ field: 'age', direction: 'asc' }];
      const expected = ids((await repo.list({ filters, sort, size: 100 })).items);
      expect(expected.length).toBeGreaterThan(3);
      expect(ids(await keysetWalk({ filters, sort }, 3))).toEqual(expected);
    });

    it('a keyset page is {items, next_cursor}; the last page has next_cursor null', async () => {
      const page = await repo.list({ limit: N });
      expect(Object.keys(page).sort()).toEqual(['items', 'next_cursor']);
      expect(page.next_cursor).toBeNull();
      expect(page.items).toHaveLength(N);
      const first = await repo.list({ limit: 10 });
      expect(typeof first.next_cursor).toBe('string');
      expectNoHidden(...first.items);
    });

    describe('cursor tampering', () => {
      let good: string;
      const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

      beforeAll(async () => {
        const page = await repo.list({ limit: 5 });
        good = page.next_cursor!;
      });

      it.each<[string, () => string]>([
        ['truncated', () => good.slice(0, -4)],
        ['with characters outside base64url', () => `${good.slice(0, 4)}$%'${good.slice(4)}`],
        ['not JSON', () => Buffer.from('not json at all').toString('base64url')],
        ['a JSON object', () => encode({ sort: 'id', values: [5] })],
        ['made for another sort', () => encode(['-age,-id', [30, 5]])],
        ['with too many values', () => encode(['id', [5, 6]])],
        ['with an object value', () => encode(['id', [{ $gt: 1 }]])],
        ['enormous', () => 'A'.repeat(10_000)],
      ])('a cursor %s is 400 VALIDATION_ERROR', async (_name, make) => {
        const err = await rejection(repo.list({ cursor: make(), limit: 5 }));
        expect(err.status).toBe(400);
        expect(err.code).toBe('VALIDATION_ERROR');
        expect(Object.keys(err.details.field_errors as object)).toEqual(['cursor']);
      });

      it('a well-formed cursor with SQL in its value is only ever a bound value', async () => {
        const forged = encode(['id', ['0 OR 1=1; DROP TABLE patients; --']]);
        try {
          await repo.list({ cursor: forged, limit: 5 });
        } catch (err) {
          expect(core.isAppError(err)).toBe(true);
          expect((err as core.AppError).status).toBe(400);
        }
        expect(await repo.withDeleted().count()).toBe(N);
      });

      it('page, size and limit out of bounds are 400 naming the option', async () => {
        for (const [options, field] of [
          [{ page: 0 }, 'page'],
          [{ page: 1.5 }, 'page'],
          [{ size: 0 }, 'size'],
          [{ size: 101 }, 'size'],
          [{ limit: 0 }, 'limit'],
          [{ limit: 1000 }, 'limit'],
        ] as const) {
          const err = await rejection(repo.list(options));
          expect(err.status).toBe(400);
          expect(Object.keys(err.details.field_errors as object)).toEqual([field]);
        }
        const err = await rejection(repo.list({ sort: [{ field: 'ssn', direction: 'asc' }] }));
        expect(Object.keys(err.details.field_errors as object)).toEqual(['sort']);
      });
    });
  });

  describe('filters', () => {
    const ROWS: PatientCreate[] = [
      { mrn: 'F01', family_name: 'price 50%', given_name: 'ann', status: 'active', age: 10, active: true },
      { mrn: 'F02', family_name: 'price 500', given_name: null, status: 'active', age: 20, active: false },
      {
        mrn: 'F03',
        family_name: 'under_score',
        given_name: 'bob',
        status: 'inactive',
        age: 30,
        active: true,
      },
      { mrn: 'F04', family_name: 'underxscore', given_name: null, status: 'pending', age: 40, active: false },
      { mrn: 'F05', family_name: 'bang!x', given_name: 'cy', status: 'inactive', age: 50, active: true },
      { mrn: 'F06', family_name: 'back\\slash', given_name: 'dee', status: 'active', age: 60, active: false },
      { mrn: 'F07', family_name: 'backxslash', given_name: 'eve', status: 'pending', age: 70, active: true },
      { mrn: 'F08', family_name: 'Mixed Case', given_name: 'fay', status: 'active', age: 80, active: false },
    ];
    let middle: Date;

    beforeAll(async () => {
      await truncate();
      for (const row of ROWS.slice(0, 4)) await repo.create(row);
      await sleep(15);
      middle = new Date();
      await sleep(15);
      for (const row of ROWS.slice(4)) await repo.create(row);
    });

    async function expectRows(filters: core.Filters, expected: readonly string[]): Promise<void> {
      const page = await repo.list({ filters, size: 100 });
      expect(mrns(page.items)).toEqual([...expected].sort());
      expect(page.total).toBe(expected.length);
      expect(await repo.count(filters)).toBe(expected.length);
    }

    const f = (field: string, op: core.FilterOp, value: core.FieldFilter['value']): core.FieldFilter => ({
      field,
      op,
      value,
    });

    it('eq and ne, on text, integers and booleans', async () => {
      await expectRows([f('family_name', 'eq', 'price 500')], ['F02']);
      await expectRows([f('age', 'eq', 30)], ['F03']);
      await expectRows([f('active', 'eq', true)], ['F01', 'F03', 'F05', 'F07']);
      await expectRows([f('active', 'eq', false)], ['F02', 'F04', 'F06', 'F08']);
      await expectRows([f('status', 'ne', 'active')], ['F03', 'F04', 'F05', 'F07']);
    });

    it('gt, gte, lt, lte', async () => {
      await expectRows([f('age', 'gt', 60)], ['F07', 'F08']);
      await expectRows([f('age', 'gte', 60)], ['F06', 'F07', 'F08']);
      await expectRows([f('age', 'lt', 30)], ['F01', 'F02']);
      await expectRows([f('age', 'lte', 30)], ['F01', 'F02', 'F03']);
      await expectRows([f('age', 'gt', 20), f('age', 'lt', 50)], ['F03', 'F04']);
    });

    it('in and nin', async () => {
      await expectRows([f('status', 'in', ['pending', 'inactive'])], ['F03', 'F04', 'F05', 'F07']);
      await expectRows([f('status', 'nin', ['active', 'pending'])], ['F03', 'F05']);
      await expectRows([f('age', 'in', [10, 80, 999])], ['F01', 'F08']);
    });

    it("like and ilike: the user's % and _ are literal", async () => {
      await expectRows([f('family_name', 'like', '50%')], ['F01']);
      await expectRows([f('family_name', 'like', '%')], ['F01']);
      await expectRows([f('family_name', 'like', 'price 50')], ['F01', 'F02']);
      await expectRows([f('family_name', 'like', 'r_s')], ['F03']);
      await expectRows([f('family_name', 'like', '_')], ['F03']);
      await expectRows([f('family_name', 'ilike', 'PRICE 50%')], ['F01']);
      await expectRows([f('family_name', 'ilike', 'mixed')], ['F08']);
    });

    it('like: the escape character and backslashes are literal too', async () => {
      await expectRows([f('family_name', 'like', 'g!x')], ['F05']);
      await expectRows([f('family_name', 'like', '!')], ['F05']);
      await expectRows([f('family_name', 'like', 'k\\s')], ['F06']);
    });

    it('is_null', async () => {
      await expectRows([f('given_name', 'is_null', true)], ['F02', 'F04']);
      await expectRows([f('given_name', 'is_null', false)], ['F01', 'F03', 'F05', 'F06', 'F07', 'F08']);
    });

    it('between is inclusive, on integers and on dates', async () => {
      await expectRows([f('age', 'between', [20, 40])], ['F02', 'F03', 'F04']);
      await expectRows(
        [f('created_at', 'between', [middle, new Date(Date.now() + 60_000)])],
        ['F05', 'F06', 'F07', 'F08'],
      );
      await expectRows([f('created_at', 'lt', middle)], ['F01', 'F02', 'F03', 'F04']);
    });

    it('or groups: any group matches, conditions inside a group all match', async () => {
      const or: core.OrFilter = {
        or: [[f('status', 'eq', 'pending')], [f('age', 'lte', 20), f('active', 'eq', true)]],
      };
      await expectRows([or], ['F01', 'F04', 'F07']);
      // AND-ed with a condition outside the group.
      await expectRows([f('age', 'gte', 40), or], ['F04', 'F07']);
      // Nested.
      await expectRows(
        [{ or: [[f('mrn', 'eq', 'F02')], [{ or: [[f('mrn', 'eq', 'F03')], [f('mrn', 'eq', 'F05')]] }]] }],
        ['F02', 'F03', 'F05'],
      );
    });

    it('object form: a value is eq, null is is_null, an object holds operators', async () => {
      await expectRows({ status: 'active', age: { gte: 20, lt: 70 } }, ['F02', 'F06']);
      await expectRows({ given_name: null }, ['F02', 'F04']);
      expect((await repo.findOne({ family_name: { like: '500' } }))?.mrn).toBe('F02');
      expect(await repo.exists({ family_name: { like: '5000' } })).toBe(false);
    });

    it.each<[string, core.Filters, string]>([
      ['an undeclared (hidden) column', { ssn: HIDDEN_SSN }, 'ssn'],
      ['an unknown operator', [{ field: 'age', op: 'regex' as core.FilterOp, value: 'x' }], 'age'],
      ['an empty in list', [f('status', 'in', [])], 'status'],
      ['between with one value', [f('age', 'between', [1])], 'age'],
      ['like with a number', [f('family_name', 'like', 5)], 'family_name'],
      ['gt with a list', [f('age', 'gt', [1, 2])], 'age'],
      ['a field that is SQL', [f('age; DROP TABLE patients', 'eq', 1)], 'age; DROP TABLE patients'],
    ])('%s is 400 VALIDATION_ERROR naming the field', async (_name, filters, field) => {
      const err = await rejection(repo.list({ filters }));
      expect(err.status).toBe(400);
      expect(err.code).toBe('VALIDATION_ERROR');
      expect(Object.keys(err.details.field_errors as object)).toEqual([field]);
      expect(JSON.stringify(err.details)).not.toContain(HIDDEN_SSN);
    });
  });

  describe('update', () => {
    beforeEach(truncate);

    it('with the expected version: applies the patch, bumps the version and updated_at only', async () => {
      const p = await repo.create(input('U1'));
      await sleep(5);
      const u = await repo.update(p.id, { family_name: 'smith' }, { expectedVersion: 1 });
      expect(u).toMatchObject({ id: p.id, mrn: 'U1', family_name: 'smith', version: 2 });
      expect(u.created_at.getTime()).toBe(p.created_at.getTime());
      expect(u.updated_at.getTime()).toBeGreaterThan(p.updated_at.getTime());
      expectNoHidden(u);
      // Without expectedVersion the version still moves.
      expect((await repo.update(p.id, { age: 41 })).version).toBe(3);
    });

    it('a stale version is 409 CONFLICT and changes nothing', async () => {
      const p = await repo.create(input('U2'));
      await repo.update(p.id, { age: 50 }, { expectedVersion: 1 });
      const err = await rejection(repo.update(p.id, { age: 60 }, { expectedVersion: 1 }));
      expect(err.status).toBe(409);
      expect(err.code).toBe('CONFLICT');
      expect(await repo.getById(p.id)).toMatchObject({ age: 50, version: 2 });
    });

    it('a missing row is 404, with or without a version', async () => {
      const p = await repo.create(input('U3'));
      for (const options of [{}, { expectedVersion: 1 }]) {
        const err = await rejection(repo.update(p.id + 1000, { age: 1 }, options));
        expect(err).toBeInstanceOf(core.NotFoundError);
        expect(err.status).toBe(404);
      }
    });

    it('cannot rewrite the id, timestamps or version; validates with updateSchema (422)', async () => {
      const p = await repo.create(input('U4'));
      const patch = { id: 999_999, version: 50, created_at: new Date(0), age: 44 } as PatientUpdate;
      const u = await repo.update(p.id, patch);
      expect(u).toMatchObject({ id: p.id, version: 2, age: 44 });
      expect(u.created_at.getTime()).toBe(p.created_at.getTime());
      const err = await rejection(repo.update(p.id, { age: -1 }));
      expect(err.status).toBe(422);
      expect(Object.keys(err.details.field_errors as object)).toEqual(['age']);
    });
  });

  describe('delete, restore, withDeleted', () => {
    beforeEach(truncate);

    it('soft delete hides the row from every read; withDeleted sees it; restore brings it back', async () => {
      const p = await repo.create(input('D1'));
      const keep = await repo.create(input('D2'));
      await repo.delete(p.id);
      expect(await repo.findById(p.id)).toBeUndefined();
      expect((await rejection(repo.getById(p.id))).status).toBe(404);
      expect(await repo.count()).toBe(1);
      expect(await repo.exists(p.id)).toBe(false);
      expect(ids((await repo.list()).items)).toEqual([keep.id]);
      expect(await repo.findOne({ mrn: 'D1' })).toBeUndefined();
      // Still in the table.
      const deleted = await repo.withDeleted().getById(p.id);
      expect(deleted.deleted_at).toBeInstanceOf(Date);
      expectNoHidden(deleted);
      expect(await repo.withDeleted().count()).toBe(2);
      // A second delete finds nothing; an update cannot touch a deleted row.
      expect((await rejection(repo.delete(p.id))).status).toBe(404);
      expect((await rejection(repo.update(p.id, { age: 1 }))).status).toBe(404);

      const restored = await repo.restore(p.id);
      expect(restored).toMatchObject({ id: p.id, deleted_at: null });
      expectNoHidden(restored);
      expect(await repo.count()).toBe(2);
      // Restoring a row that is not deleted, or missing, is 404.
      expect((await rejection(repo.restore(p.id))).status).toBe(404);
      expect((await rejection(repo.restore(p.id + 1000))).status).toBe(404);
    });

    it('hard delete (softDelete: false) removes the row', async () => {
      const hard = new core.BaseRepository<Patient>(db, { table: 'patients', hidden: ['ssn'] });
      const p = await repo.create(input('D3'));
      await hard.delete(p.id);
      expect(await db.knex('patients').where('id', p.id).first()).toBeUndefined();
      expect((await rejection(hard.delete(p.id))).status).toBe(404);
    });
  });

  describe('upsert', () => {
    beforeEach(truncate);

    it('inserts, then updates the row with the same conflict column', async () => {
      const first = await repo.upsert(input('UP1', { family_name: 'before' }), ['mrn']);
      expect(first).toMatchObject({ mrn: 'UP1', family_name: 'before', version: 1 });
      expectNoHidden(first);
      await sleep(5);
      const second = await repo.upsert(input('UP1', { family_name: 'after' }), ['mrn']);
      expect(second).toMatchObject({ id: first.id, mrn: 'UP1', family_name: 'after' });
      expect(second.created_at.getTime()).toBe(first.created_at.getTime());
      expect(second.updated_at.getTime()).toBeGreaterThan(first.updated_at.getTime());
      expectNoHidden(second);
      expect(await repo.count()).toBe(1);
    });

    it('an upsert that updates moves the version forward (optimistic locking stays sound)', async () => {
      const first = await repo.upsert(input('UP2'), ['mrn']);
      await repo.update(first.id, { age: 41 }, { expectedVersion: 1 });
      const again = await repo.upsert(input('UP2', { age: 42 }), ['mrn']);
      expect(again.version).toBe(3);
      // A client still holding version 1 must not be able to write.
      expect((await rejection(repo.update(first.id, { age: 43 }, { expectedVersion: 1 }))).status).toBe(409);
    });
  });

  describe('transactions', () => {
    beforeEach(truncate);

    it('withTransaction(trx): writes are visible inside and gone after a rollback', async () => {
      await expect(
        db.knex.transaction(async (trx: Knex.Transaction) => {
          const bound = repo.withTransaction(trx);
          const p = await bound.create(input('T1'));
          await bound.update(p.id, { age: 12 });
          await bound.createMany([input('T2'), input('T3')]);
          expect(await bound.count()).toBe(3);
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      expect(await repo.count()).toBe(0);
      expect(Number(((await db.knex('patients').count({ n: '*' }).first()) as { n: unknown }).n)).toBe(0);
    });

    it('withTransaction(trx): a committed transaction keeps its writes', async () => {
      await db.knex.transaction(async (trx: Knex.Transaction) => {
        await repo.withTransaction(trx).create(input('T4'));
      });
      expect(await repo.exists({ mrn: 'T4' })).toBe(true);
    });

    it('db.transaction nests: an inner failure rolls back only its savepoint', async () => {
      await db.transaction(async () => {
        await repo.create(input('N1'));
        await expect(
          db.transaction(async () => {
            await repo.create(input('N2'));
            throw new Error('inner');
          }),
        ).rejects.toThrow('inner');
        // A constraint failure inside a savepoint leaves the outer transaction usable (PostgreSQL too).
        const dup = await rejection(
          db.transaction(async () => {
            await repo.create(input('N3'));
            await repo.create(input('N1'));
          }),
        );
        expect(dup.code).toBe('DUPLICATE');
        await repo.create(input('N4'));
      });
      expect((await repo.list()).items.map((p) => p.mrn).sort()).toEqual(['N1', 'N4']);
    });

    it('db.transaction rolls back everything when the outer function throws', async () => {
      await expect(
        db.transaction(async () => {
          await repo.create(input('N5'));
          await db.transaction(async () => {
            await repo.create(input('N6'));
          });
          throw new Error('outer');
        }),
      ).rejects.toThrow('outer');
      expect(await repo.count()).toBe(0);
    });
  });

  describe('unique violations', () => {
    const CANARY = 'MRN-CANARY-77';
    beforeEach(truncate);

    it('create with a taken value is DuplicateError (409 DUPLICATE) naming the field, not the value', async () => {
      await repo.create(input(CANARY));
      const err = await rejection(repo.create(input(CANARY)));
      expect(err).toBeInstanceOf(core.DuplicateError);
      expect(err.status).toBe(409);
      expect(err.code).toBe('DUPLICATE');
      expect((err as core.DuplicateError).field).toBe('mrn');
      expect(err.details).toMatchObject({ resource_type: 'Patient', field: 'mrn' });
      expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain(CANARY);
      expect(await repo.count()).toBe(1);
    });

    it('update to a taken value is the same DuplicateError', async () => {
      await repo.create(input(CANARY));
      const other = await repo.create(input('OTHER'));
      const err = await rejection(repo.update(other.id, { mrn: CANARY }));
      expect(err).toBeInstanceOf(core.DuplicateError);
      expect((err as core.DuplicateError).field).toBe('mrn');
      expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain(CANARY);
    });
  });

  describe('access events', () => {
    beforeEach(truncate);

    function record(target: core.BaseRepository<Patient, PatientCreate, PatientUpdate>): {
      events: core.RepositoryEvent[];
      stop: () => void;
    } {
      const events: core.RepositoryEvent[] = [];
      const listener = (e: core.RepositoryEvent): void => {
        events.push(e);
      };
      target.events.on('access', listener);
      return { events, stop: () => target.events.off('access', listener) };
    }

    it('every read and write emits resource, action, ids, filter names and the actor of the context', async () => {
      const { events, stop } = record(repo);
      let id = 0;
      try {
        const ctx = core.createContext({ requestId: 'req-abc-123', userId: 'user-42' });
        await core.runWithContext(ctx, async () => {
          const p = await repo.create(input('EV-SECRET-MRN'));
          id = p.id;
          await repo.getById(p.id);
          await repo.list({ filters: { family_name: { like: 'SECRET-NAME' }, age: { gte: 40 } } });
          await repo.findOne({ mrn: 'EV-SECRET-MRN' });
          await repo.list({
            filters: [
              {
                or: [
                  [{ field: 'status', op: 'eq', value: 'SECRET-STATUS' }],
                  [{ field: 'given_name', op: 'is_null', value: true }],
                ],
              },
            ],
          });
          await repo.update(p.id, { given_name: 'x' });
          await repo.delete(p.id);
          await repo.restore(p.id);
          await repo.findById(p.id + 1000);
        });
      } finally {
        stop();
      }
      const byAction = (action: core.RepositoryAction): core.RepositoryEvent[] =>
        events.filter((e) => e.action === action);
      for (const e of events) {
        expect(e).toMatchObject({ resource: 'Patient', actor: 'user-42', requestId: 'req-abc-123' });
      }
      expect(byAction('create')).toEqual([
        expect.objectContaining({ ids: [String(id)], outcome: 'success' }),
      ]);
      expect(byAction('update')).toEqual([
        expect.objectContaining({ ids: [String(id)], outcome: 'success' }),
      ]);
      expect(byAction('delete')).toEqual([
        expect.objectContaining({ ids: [String(id)], outcome: 'success' }),
      ]);
      expect(byAction('restore')).toEqual([
        expect.objectContaining({ ids: [String(id)], outcome: 'success' }),
      ]);
      expect(byAction('read')).toContainEqual(
        expect.objectContaining({ ids: [String(id)], outcome: 'success' }),
      );
      expect(byAction('read')).toContainEqual(
        expect.objectContaining({ ids: [String(id + 1000)], outcome: 'not_found' }),
      );
      const searches = byAction('search');
      expect(searches).toHaveLength(3);
      expect([...(searches[0]!.filterFields ?? [])].sort()).toEqual(['age', 'family_name']);
      expect(searches[1]).toMatchObject({ ids: [String(id)], filterFields: ['mrn'] });
      // Fields inside `or` groups are named too.
      expect([...(searches[2]!.filterFields ?? [])].sort()).toEqual(['given_name', 'status']);
      // Names only, never values.
      const text = JSON.stringify(events);
      expect(text).not.toContain('SECRET');
      expect(text).not.toContain(HIDDEN_SSN);
    });

    it('a search event lists the ids of the page it returned', async () => {
      const rows = await repo.createMany([input('E1'), input('E2'), input('E3')]);
      const { events, stop } = record(repo);
      try {
        await repo.list({ size: 2 });
        await repo.list({ limit: 2 });
      } finally {
        stop();
      }
      const first2 = ids(rows)
        .sort((x, y) => x - y)
        .slice(0, 2)
        .map(String);
      expect(events.map((e) => [e.action, e.ids])).toEqual([
        ['search', first2],
        ['search', first2],
      ]);
    });

    it('count and exists are reads too: they emit events with filter names', async () => {
      const p = await repo.create(input('E4'));
      const { events, stop } = record(repo);
      try {
        await repo.count({ status: 'active' });
        await repo.exists({ mrn: 'E4' });
        await repo.exists(p.id);
      } finally {
        stop();
      }
      expect(events).toHaveLength(3);
      expect(events[0]!.filterFields).toEqual(['status']);
      expect(events[1]!.filterFields).toEqual(['mrn']);
      expect(events[2]!.ids).toEqual([String(p.id)]);
      expect(JSON.stringify(events)).not.toContain('E4');
    });

    it('outside a request context the actor and request id are undefined', async () => {
      const { events, stop } = record(repo);
      try {
        await repo.create(input('E5'));
      } finally {
        stop();
      }
      expect(events).toHaveLength(1);
      expect(events[0]!.actor).toBeUndefined();
      expect(events[0]!.requestId).toBeUndefined();
    });

    it('derived repositories (withTransaction, withDeleted) emit on the same emitter', async () => {
      const { events, stop } = record(repo);
      try {
        await db.knex.transaction(async (trx: Knex.Transaction) => {
          await repo.withTransaction(trx).create(input('E6'));
        });
        await repo.withDeleted().findOne({ mrn: 'E6' });
      } finally {
        stop();
      }
      expect(events.map((e) => e.action)).toEqual(['create', 'search']);
    });
  });

  describe('a subclass', () => {
    beforeEach(truncate);

    it('withTransaction() and withDeleted() return the subclass, with its methods and fields', async () => {
      const named = new PatientRepository(db, 'south');
      const p = await named.create(input('S1'));
      await db.knex.transaction(async (trx: Knex.Transaction) => {
        const bound = named.withTransaction(trx);
        expect(bound).toBeInstanceOf(PatientRepository);
        expect(bound.clinicName()).toBe('south');
        expect((await bound.findByMrn('S1'))?.id).toBe(p.id);
        await bound.update(p.id, { age: 77 });
        expect((await bound.findByMrn('S1'))?.age).toBe(77);
      });
      await named.delete(p.id);
      expect(await named.findByMrn('S1')).toBeUndefined();
      const all = named.withDeleted();
      expect(all).toBeInstanceOf(PatientRepository);
      expect(all.clinicName()).toBe('south');
      expect((await all.findByMrn('S1'))?.deleted_at).toBeInstanceOf(Date);
      // Deriving does not change the original.
      expect(await named.findByMrn('S1')).toBeUndefined();
    });

    it('a narrowed baseQuery() narrows delete() and restore() too, not only reads and updates', async () => {
      const narrowed = new ActiveOnlyRepository(db);
      const hidden = await repo.create(input('N1', { status: 'inactive' }));
      const visible = await repo.create(input('N2'));
      await expect(narrowed.getById(hidden.id)).rejects.toBeInstanceOf(core.NotFoundError);
      await expect(narrowed.delete(hidden.id)).rejects.toBeInstanceOf(core.NotFoundError);
      expect((await repo.getById(hidden.id)).deleted_at).toBeNull();
      await repo.delete(hidden.id);
      await expect(narrowed.restore(hidden.id)).rejects.toBeInstanceOf(core.NotFoundError);
      expect((await repo.withDeleted().getById(hidden.id)).deleted_at).toBeInstanceOf(Date);
      await narrowed.delete(visible.id);
      expect((await narrowed.restore(visible.id)).id).toBe(visible.id);
    });

    it('a subclass keeping a collaborator in an ECMAScript #private field still works when derived', async () => {
      const audited = new AuditedPatientRepository(db);
      await audited.create(input('S2'));
      const all = audited.withDeleted();
      expect(all).toBeInstanceOf(AuditedPatientRepository);
      expect((await all.findByMrn('S2'))?.mrn).toBe('S2');
      await db.knex.transaction(async (trx: Knex.Transaction) => {
        expect((await audited.withTransaction(trx).findByMrn('S2'))?.mrn).toBe('S2');
      });
      expect(all.lookups().length).toBeGreaterThan(0);
    });
  });
});
