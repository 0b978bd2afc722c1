/**
 * parseListQuery through the public API: both query parsers' shapes, bounds, declared fields and
 * operators, type coercion — and property-based tests with hostile input, whose parsed options are
 * then run on real SQLite and PostgreSQL.
 */
import fc from 'fast-check';
import * as core from '../../lib/index';
import { useDialect, type DialectName } from '../support/dialects';
import {
  PATIENT_OPTIONS,
  createPatientsTable,
  rejection,
  thrown,
  type Patient,
  type PatientCreate,
  type PatientUpdate,
} from './patients';

type Repo = core.BaseRepository<Patient, PatientCreate, PatientUpdate>;

const NAMES = [
  "o'brien",
  'price 50%',
  'price 500',
  'under_score',
  'underxscore',
  'Ünïcödé 😀',
  'semi;colon',
  'dash--dash',
  'back\\slash',
  'Mixed Case',
  'DROP TABLE patients',
  'zed',
];
const SEED: PatientCreate[] = NAMES.map((family_name, i) => ({
  mrn: `Q${String(i).padStart(2, '0')}`,
  family_name,
  given_name: i % 3 === 0 ? null : `g${i}`,
  status: (['active', 'inactive', 'pending'] as const)[i % 3],
  age: 10 + i * 7,
  active: i % 2 === 0,
  ssn: '111-22-3333',
}));

function expectBadQuery(err: unknown, field?: string): void {
  expect(core.isAppError(err)).toBe(true);
  const e = err as core.AppError;
  expect(e.status).toBe(400);
  expect(e.code).toBe('VALIDATION_ERROR');
  const fieldErrors = e.details.field_errors as Record<string, unknown>;
  expect(typeof fieldErrors).toBe('object');
  const keys = Object.keys(fieldErrors);
  expect(keys).toHaveLength(1);
  if (field !== undefined) expect(keys).toEqual([field]);
}

const fixtures: Record<'postgres' | 'sqlite', () => { db: core.Database }> = {
  sqlite: useDialect('sqlite', 'lq'),
  postgres: useDialect('postgres', 'lq'),
};
const repos: { dialect: DialectName; repo: Repo }[] = [];
let repo: Repo;

beforeAll(async () => {
  for (const dialect of ['sqlite', 'postgres'] as const) {
    const { db } = fixtures[dialect]();
    await createPatientsTable(db);
    const r = new core.BaseRepository<Patient, PatientCreate, PatientUpdate>(db, PATIENT_OPTIONS);
    await r.createMany(SEED);
    repos.push({ dialect, repo: r });
  }
  repo = repos[0]!.repo;
});

const parse = (query: unknown): core.ListOptions => core.parseListQuery(query, repo);
/** What Express 5's simple parser (node:querystring) produces: an object without a prototype. */
const simple = (flat: Record<string, string | string[]>): Record<string, unknown> =>
  Object.assign(Object.create(null) as Record<string, unknown>, flat);

describe('parseListQuery: shapes of both parsers', () => {
  it.each<[string, Record<string, unknown>, Record<string, unknown>, core.FieldFilter]>([
    [
      'gte on an integer',
      { 'age[gte]': '18' },
      { age: { gte: '18' } },
      { field: 'age', op: 'gte', value: 18 },
    ],
    [
      'in as a comma list',
      { 'status[in]': 'active,pending' },
      { status: { in: 'active,pending' } },
      { field: 'status', op: 'in', value: ['active', 'pending'] },
    ],
    [
      'in as a repeated key',
      { 'status[in]': ['active', 'pending'] },
      { status: { in: ['active', 'pending'] } },
      { field: 'status', op: 'in', value: ['active', 'pending'] },
    ],
    [
      'between on integers',
      { 'age[between]': '18,65' },
      { age: { between: '18,65' } },
      { field: 'age', op: 'between', value: [18, 65] },
    ],
    [
      'is_null',
      { 'given_name[is_null]': 'true' },
      { given_name: { is_null: 'true' } },
      { field: 'given_name', op: 'is_null', value: true },
    ],
    [
      'like keeps the text as it is',
      { 'family_name[like]': '50%_x' },
      { family_name: { like: '50%_x' } },
      { field: 'family_name', op: 'like', value: '50%_x' },
    ],
    [
      'eq on a boolean',
      { 'active[eq]': 'false' },
      { active: { eq: 'false' } },
      { field: 'active', op: 'eq', value: false },
    ],
  ])(
    '%s: flat keys (Express 5) and nested objects (qs) give the same filter',
    (_name, flat, nested, filter) => {
      expect(parse(simple(flat as Record<string, string>))).toEqual({ filters: [filter], size: 20 });
      expect(parse(flat)).toEqual({ filters: [filter], size: 20 });
      expect(parse(nested)).toEqual({ filters: [filter], size: 20 });
    },
  );

  it('a bare key is eq, coerced to the declared type', () => {
    expect(parse({ status: 'active', age: '40', active: '1' })).toEqual({
      filters: [
        { field: 'status', op: 'eq', value: 'active' },
        { field: 'age', op: 'eq', value: 40 },
        { field: 'active', op: 'eq', value: true },
      ],
      size: 20,
    });
  });

  it('dates become Date objects', () => {
    const options = parse({ 'created_at[gte]': '2024-03-01T10:00:00Z' });
    const value = (options.filters as core.FieldFilter[])[0]!.value;
    expect(value).toBeInstanceOf(Date);
    expect((value as Date).toISOString()).toBe('2024-03-01T10:00:00.000Z');
  });

  it('no query, or an empty one, is the first page of the default size', () => {
    expect(parse(undefined)).toEqual({});
    expect(parse({})).toEqual({ size: 20 });
    expect(parse(simple({}))).toEqual({ size: 20 });
  });
});

describe('parseListQuery: sort', () => {
  it('parses -field, +field and field, in order', () => {
    expect(parse({ sort: '-created_at,family_name,+age' }).sort).toEqual([
      { field: 'created_at', direction: 'desc' },
      { field: 'family_name', direction: 'asc' },
      { field: 'age', direction: 'asc' },
    ]);
  });

  it.each<[string, unknown]>([
    ['an undeclared column', 'ssn'],
    ['a hidden column, descending', '-ssn'],
    ['a column twice', 'age,-age'],
    ['more than five columns', 'age,status,family_name,given_name,created_at,id'],
    ['an empty string', ''],
    ['an empty entry', 'age,,status'],
    ['SQL', 'age; DROP TABLE patients'],
    ['a direction suffix', 'age desc'],
    ['an array', ['age', 'status']],
    ['an object', { age: 'desc' }],
  ])('%s is 400 naming sort', (_name, sort) => {
    expectBadQuery(
      thrown(() => parse({ sort })),
      'sort',
    );
  });
});

describe('parseListQuery: page, size, cursor and limit', () => {
  it('accepts bounded integers; size defaults to 20 and goes up to 100', () => {
    expect(parse({ page: '3', size: '50' })).toEqual({ page: 3, size: 50 });
    expect(parse({ size: '100' })).toEqual({ size: 100 });
    expect(parse({ size: '1' })).toEqual({ size: 1 });
  });

  it.each<[string, unknown]>([
    ['zero', '0'],
    ['negative', '-1'],
    ['over the maximum', '101'],
    ['huge', '99999999999999999999999'],
    ['a fraction', '1.5'],
    ['an exponent', '1e2'],
    ['hex', '0x10'],
    ['padded', ' 5'],
    ['empty', ''],
    ['text', 'ten'],
    ['an array', ['1', '2']],
    ['an object', { gte: '1' }],
  ])('size %s is 400 naming size', (_name, size) => {
    expectBadQuery(
      thrown(() => parse({ size })),
      'size',
    );
    expectBadQuery(
      thrown(() => parse({ limit: size })),
      'limit',
    );
  });

  it.each<[string, unknown]>([
    ['zero', '0'],
    ['negative', '-3'],
    ['beyond a million', '1000001'],
    ['text', 'last'],
    ['an array', ['2']],
    ['an object', { eq: '2' }],
  ])('page %s is 400 naming page', (_name, page) => {
    expectBadQuery(
      thrown(() => parse({ page })),
      'page',
    );
  });

  it('cursor/limit select keyset pages', () => {
    expect(parse({ limit: '10' })).toEqual({ limit: 10, cursor: null });
    expect(parse({ cursor: 'abc' })).toEqual({ limit: 20, cursor: 'abc' });
    expect(parse({ cursor: 'abc', limit: '5', sort: '-age' })).toEqual({
      limit: 5,
      cursor: 'abc',
      sort: [{ field: 'age', direction: 'desc' }],
    });
  });

  it('keyset and offset options cannot be mixed; a cursor must be one string', () => {
    expectBadQuery(thrown(() => parse({ cursor: 'abc', page: '2' })));
    expectBadQuery(thrown(() => parse({ limit: '5', size: '5' })));
    expectBadQuery(
      thrown(() => parse({ cursor: ['a', 'b'] })),
      'cursor',
    );
    expectBadQuery(
      thrown(() => parse({ cursor: { a: 'b' } })),
      'cursor',
    );
  });
});

describe('parseListQuery: only declared fields, operators and types', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['an undeclared column', { ssn: '123-45-6789' }, 'ssn'],
    ['an undeclared column with an operator', { 'ssn[eq]': '123-45-6789' }, 'ssn'],
    ['an undeclared column, qs form', { ssn: { eq: '123-45-6789' } }, 'ssn'],
    ['an unknown operator', { 'age[regex]': '.*' }, 'age'],
    ['an unknown operator, qs form', { age: { regex: '.*' } }, 'age'],
    ['an upper-case operator', { age: { GTE: '1' } }, 'age'],
    ['a prototype key', JSON.parse('{"__proto__":"x"}') as Record<string, unknown>, '__proto__'],
    ['constructor', { constructor: 'x' }, 'constructor'],
    ['constructor[prototype]', { 'constructor[prototype]': 'x' }, 'constructor'],
    [
      'an operator named __proto__',
      JSON.parse('{"age":{"__proto__":"1"}}') as Record<string, unknown>,
      'age',
    ],
    ['a key with brackets nested twice', { 'age[gte][x]': '1' }, 'age[gte][x]'],
    ['an integer that is not one', { 'age[gte]': '18.5' }, 'age[gte]'],
    ['an integer that is text', { age: 'eighteen' }, 'age[eq]'],
    ['a boolean that is not one', { active: 'yes' }, 'active[eq]'],
    ['a date that is not one', { 'created_at[gte]': 'yesterday' }, 'created_at[gte]'],
    ['an impossible date', { 'created_at[lt]': '2024-13-45' }, 'created_at[lt]'],
    ['like on an integer', { 'age[like]': '1' }, 'age[like]'],
    ['an empty like', { 'family_name[like]': '' }, 'family_name[like]'],
    ['between with one value', { 'age[between]': '18' }, 'age[between]'],
    ['between with three values', { 'age[between]': '1,2,3' }, 'age[between]'],
    ['is_null with text', { 'given_name[is_null]': 'maybe' }, 'given_name[is_null]'],
    ['in with a non-integer', { 'age[in]': '1,x' }, 'age[in]'],
    [
      'in with too many values',
      { 'age[in]': Array.from({ length: 101 }, (_, i) => String(i)).join(',') },
      'age[in]',
    ],
    ['an array where one value is expected', { status: ['active', 'pending'] }, 'status[eq]'],
    ['an object two levels deep', { age: { gte: { x: '1' } } }, 'age'],
    ['a very long value', { family_name: 'x'.repeat(5000) }, 'family_name[eq]'],
  ])('%s is 400 VALIDATION_ERROR naming the field', (_name, query, field) => {
    const err = thrown(() => parse(query));
    expectBadQuery(err, field);
    expect(`${err.message} ${JSON.stringify(err.details)}`).not.toContain('123-45-6789');
  });

  it('a query with too many parameters is 400', () => {
    const query = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, 'v']));
    expectBadQuery(
      thrown(() => parse(query)),
      'query',
    );
  });

  it('a query that is not an object is 400', () => {
    expectBadQuery(
      thrown(() => parse('status=active')),
      'query',
    );
    expectBadQuery(
      thrown(() => parse(['status'])),
      'query',
    );
  });

  it('parses only: the options it returns run on the database', async () => {
    const page = await repo.list(parse({ 'age[between]': '10,40', sort: '-age', size: '2' }));
    expect(page).toMatchObject({ total: 5, page: 1, size: 2, pages: 3 });
    expect(page.items.map((p) => p.age)).toEqual([38, 31]);
  });
});

// ---------------------------------------------------------------------------------------------
// Property-based tests: hostile input.

const FIELDS = ['mrn', 'family_name', 'given_name', 'status', 'age', 'active', 'created_at', 'id'];
const RESERVED = ['page', 'size', 'sort', 'cursor', 'limit'];
const PROTO = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  '__defineGetter__',
];
const SQL = [
  'age; DROP TABLE patients; --',
  "' OR '1'='1",
  '1=1--',
  'age) OR (1=1',
  '"age"',
  '`age`',
  'age/**/',
  'family_name COLLATE "C"',
  'ssn',
  'deleted_at',
  '*',
  'patients.age',
  'id\u0000',
];
const OPS = [...core.FILTER_OPS, 'regex', 'raw', '$where', 'EQ', 'eq ', "gte' OR 1=1", '', ...PROTO];
const TEXT = [
  ...SQL,
  ...NAMES,
  '',
  ' ',
  '%',
  '_',
  '%_%',
  '\\',
  '\\%',
  '!',
  '!%',
  "'",
  "''",
  '"',
  '\u0000',
  'a\u0000b',
  '\uD800',
  '😀',
  'Ünïcödé',
  '\u202Eevil',
  'NaN',
  'Infinity',
  '-0',
  '1e309',
  '0x10',
  '2024-01-01',
  '2024-13-45',
  '0000-01-01',
  'true',
  'null',
  '18',
  '-18',
  '1,2',
  '999999999999999',
  '9007199254740993',
];

const hostileText = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...TEXT) },
  { weight: 2, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.stringMatching(/^-?[0-9,.e]{1,10}$/) },
);
const hostileKey = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...FIELDS, ...RESERVED, ...PROTO, ...SQL) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(...FIELDS, ...PROTO, ...SQL), fc.constantFrom(...OPS))
      .map(([f, o]) => `${f}[${o}]`),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
);
/** Own properties only, `__proto__` included (Object.fromEntries defines, it does not set). */
const toObject = (entries: readonly (readonly [string, unknown])[]): Record<string, unknown> =>
  Object.fromEntries(entries);
const hostileValue = fc.letrec<{ node: unknown; object: Record<string, unknown> }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 4, depthSize: 'small' },
    { weight: 4, arbitrary: hostileText },
    { weight: 1, arbitrary: fc.array(hostileText, { maxLength: 4 }) },
    { weight: 1, arbitrary: tie('object') },
  ),
  object: fc
    .array(fc.tuple(fc.oneof(fc.constantFrom(...OPS), hostileKey), tie('node')), { maxLength: 3 })
    .map(toObject),
})).node;
/** Queries that look like what the parsers make: mostly declared fields and operators, hostile values. */
const plausibleEntry = fc.oneof(
  fc
    .tuple(fc.constantFrom(...FIELDS), fc.constantFrom(...core.FILTER_OPS), hostileText)
    .map(([f, o, v]) => [`${f}[${o}]`, v] as const),
  fc
    .tuple(fc.constantFrom(...FIELDS), fc.constantFrom(...core.FILTER_OPS), hostileText)
    .map(([f, o, v]) => [f, { [o]: v }] as const),
  fc.tuple(fc.constantFrom(...FIELDS, ...RESERVED), hostileText),
);
const hostileQuery = fc
  .tuple(
    fc.array(fc.oneof(plausibleEntry, fc.tuple(hostileKey, hostileValue)), { maxLength: 6 }),
    fc.boolean(),
  )
  .map(([entries, nullPrototype]) => {
    const q = toObject(entries);
    return nullPrototype ? Object.assign(Object.create(null) as Record<string, unknown>, q) : q;
  });

const TYPES: Record<string, 'integer' | 'boolean' | 'date' | 'string'> = {
  id: 'integer',
  age: 'integer',
  active: 'boolean',
  created_at: 'date',
};
const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');
const asciiLower = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

function compare(a: unknown, b: unknown): number {
  if (a instanceof Date || b instanceof Date)
    return new Date(a as Date).getTime() - new Date(b as Date).getTime();
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  // Byte order of UTF-8 = code point order: SQLite's BINARY and PostgreSQL's C collation.
  return Buffer.compare(utf8(String(a)), utf8(String(b)));
}

/** Whether a returned row satisfies one parsed filter, or undefined when the check would guess. */
function satisfies(
  row: Record<string, unknown>,
  f: core.FieldFilter,
  dialect: DialectName,
): boolean | undefined {
  const x = row[f.field];
  const v = f.value;
  switch (f.op) {
    case 'eq':
      return x !== null && compare(x, v) === 0;
    case 'ne':
      return x === null || compare(x, v) !== 0;
    case 'gt':
      return x !== null && compare(x, v) > 0;
    case 'gte':
      return x !== null && compare(x, v) >= 0;
    case 'lt':
      return x !== null && compare(x, v) < 0;
    case 'lte':
      return x !== null && compare(x, v) <= 0;
    case 'in':
      return x !== null && (v as unknown[]).some((y) => compare(x, y) === 0);
    case 'nin':
      return x !== null && (v as unknown[]).every((y) => compare(x, y) !== 0);
    case 'between': {
      const [lo, hi] = v as [unknown, unknown];
      return x !== null && compare(x, lo) >= 0 && compare(x, hi) <= 0;
    }
    case 'is_null':
      return v === true ? x === null : x !== null;
    case 'like':
    case 'ilike': {
      if (typeof x !== 'string' || typeof v !== 'string') return false;
      if (f.op === 'like' && dialect === 'postgres') return x.includes(v);
      // SQLite folds ASCII only; PostgreSQL's ILIKE folds more, so only ASCII text is checked there.
      if (dialect === 'postgres' && !/^[\x20-\x7e]*$/.test(v + x)) return undefined;
      return asciiLower(x).includes(asciiLower(v));
    }
  }
}

/** `list(options)` on both databases: resolves with rows that satisfy every filter, or rejects with a 4xx AppError. */
async function runOnDatabases(options: core.ListOptions): Promise<void> {
  for (const { dialect, repo: r } of repos) {
    let items: Patient[];
    try {
      items = (await r.list(options)).items;
    } catch (err) {
      if (!core.isAppError(err) || err.status >= 500) {
        throw new Error(
          `${dialect}: list(${JSON.stringify(options)}) threw ${core.isAppError(err) ? `${err.status} ${err.code}` : String(err)}`,
        );
      }
      expect(err.status).toBe(400);
      continue;
    }
    for (const item of items) {
      expect(Object.keys(item)).not.toContain('ssn');
      for (const f of (options.filters ?? []) as core.FieldFilter[]) {
        const ok = satisfies(item as unknown as Record<string, unknown>, f, dialect);
        if (ok === false) {
          throw new Error(`${dialect}: row ${JSON.stringify(item)} violates ${JSON.stringify(f)}`);
        }
      }
    }
  }
}

describe('parseListQuery: property-based, hostile input', () => {
  it('either returns options or throws 400 VALIDATION_ERROR; the options run safely on SQLite and PostgreSQL', async () => {
    await fc.assert(
      fc.asyncProperty(hostileQuery, async (query) => {
        let options: core.ListOptions;
        try {
          options = core.parseListQuery(query, repo);
        } catch (err) {
          expectBadQuery(err);
          return;
        }
        await runOnDatabases(options);
      }),
      { numRuns: 400 },
    );
  });

  it('deep nesting is refused, never walked', () => {
    fc.assert(
      fc.property(fc.constantFrom(...FIELDS), fc.integer({ min: 2, max: 200 }), (field, depth) => {
        let value: unknown = '1';
        for (let i = 0; i < depth; i++) value = { gte: value };
        expectBadQuery(thrown(() => parse({ [field]: value })));
      }),
      { numRuns: 50 },
    );
  });

  it('a hostile value in an eq filter matches exactly the rows holding that value, and nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(hostileText, fc.constantFrom(...NAMES)),
        fc.boolean(),
        async (value, qsForm) => {
          // NUL is refused by parseListQuery with a 400 (PostgreSQL cannot store it); tested on its own.
          fc.pre(!value.includes('\u0000'));
          const query = qsForm ? { family_name: { eq: value } } : simple({ family_name: value });
          const options = core.parseListQuery(query, repo);
          const expected = SEED.filter((s) => s.family_name === value)
            .map((s) => s.mrn)
            .sort();
          for (const { dialect, repo: r } of repos) {
            let page: core.OffsetPage<Patient> | core.KeysetPage<Patient>;
            try {
              page = await r.list(options);
            } catch (err) {
              throw new Error(
                `${dialect}: family_name=${JSON.stringify(value)} threw ${core.isAppError(err) ? `${err.status} ${err.code}` : String(err)}`,
              );
            }
            expect({ dialect, value, mrns: page.items.map((p) => p.mrn).sort() }).toEqual({
              dialect,
              value,
              mrns: expected,
            });
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a hostile like pattern matches the rows containing it literally (% _ ! \\ are not wildcards)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(hostileText, fc.constantFrom('%', '_', '50%', '0%', 'r_s', '!', '\\', "'", ';')),
        async (value) => {
          fc.pre(value.length > 0 && value.length <= 200 && !value.includes('\u0000'));
          const options = parse({ 'family_name[like]': value });
          for (const { dialect, repo: r } of repos) {
            const fold = dialect === 'sqlite' ? asciiLower : (s: string): string => s;
            const expected = SEED.filter((s) => fold(s.family_name).includes(fold(value)))
              .map((s) => s.mrn)
              .sort();
            let page: core.OffsetPage<Patient> | core.KeysetPage<Patient>;
            try {
              page = await r.list(options);
            } catch (err) {
              throw new Error(
                `${dialect}: family_name[like]=${JSON.stringify(value)} threw ${core.isAppError(err) ? `${err.status} ${err.code}` : String(err)}`,
              );
            }
            expect({ dialect, value, mrns: page.items.map((p) => p.mrn).sort() }).toEqual({
              dialect,
              value,
              mrns: expected,
            });
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('hostile values on typed columns are refused (400) or compared as bound values', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('age', 'active', 'created_at', 'id'),
        fc.constantFrom(...core.FILTER_OPS),
        hostileText,
        async (field, op, value) => {
          let options: core.ListOptions;
          try {
            options = parse({ [`${field}[${op}]`]: value });
          } catch (err) {
            expectBadQuery(err);
            return;
          }
          const filter = (options.filters as core.FieldFilter[])[0]!;
          if (TYPES[field] === 'integer' && filter.op !== 'is_null') {
            const values = Array.isArray(filter.value) ? filter.value : [filter.value];
            for (const v of values) expect(Number.isSafeInteger(v)).toBe(true);
          }
          await runOnDatabases(options);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('the parsed options reach SQL only as bound values', () => {
  it('an injection attempt in a value finds nothing and changes nothing', async () => {
    for (const { repo: r } of repos) {
      const page = await r.list(parse({ family_name: "x' OR '1'='1" }));
      expect(page.items).toEqual([]);
      const err = await rejection(r.list(parse({ sort: '-age', cursor: 'JyBPUiAxPTEgLS0' })));
      expectBadQuery(err, 'cursor');
    }
  });

  it.each(['\u0000', 'a\u0000b'])(
    'a NUL byte in a value (%j, `%%00` in a URL) is refused or finds nothing: never a driver error',
    async (value) => {
      for (const query of [
        { family_name: value },
        { 'family_name[like]': value },
        { 'mrn[in]': `Q01,${value}` },
      ]) {
        let options: core.ListOptions;
        try {
          options = parse(query);
        } catch (err) {
          expectBadQuery(err);
          continue;
        }
        await runOnDatabases(options);
      }
    },
  );
});

describe('after all the hostile input', () => {
  it('every row is still there, on both databases', async () => {
    for (const r of repos) expect(await r.repo.withDeleted().count()).toBe(SEED.length);
  });
});
