/**
 * A real app on Express 4 (qs: nested objects) and Express 5 (simple parser: flat `age[gte]` keys):
 * `GET /patients` lists through `parseListQuery` on PostgreSQL; the same URLs work on both.
 */
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { TEST_SETTINGS, useDialect } from '../support/dialects';
import { eachExpress, type ExpressVariant } from '../support/express';
import {
  PATIENT_OPTIONS,
  createPatientsTable,
  type Patient,
  type PatientCreate,
  type PatientUpdate,
} from './patients';

const SSN = '123-45-6789';
const FAMILY = ['adams', 'baker', 'clark', 'price 50%', 'price 500'];
const SEED: PatientCreate[] = Array.from({ length: 25 }, (_, i) => ({
  mrn: `H${String(i).padStart(2, '0')}`,
  family_name: FAMILY[i % FAMILY.length]!,
  given_name: i % 4 === 0 ? null : `g${i}`,
  status: (['active', 'inactive', 'pending'] as const)[i % 3],
  age: 5 + ((i * 11) % 60),
  active: i % 2 === 0,
  ssn: SSN,
}));

/** A patient as the JSON body carries it: the fields these tests read. */
type Item = Pick<Patient, 'id' | 'mrn' | 'family_name' | 'given_name' | 'status' | 'age' | 'active'>;

const fixture = useDialect('postgres', 'http');
let repo: core.BaseRepository<Patient, PatientCreate, PatientUpdate>;

beforeAll(async () => {
  const { db } = fixture();
  await createPatientsTable(db);
  repo = new core.BaseRepository<Patient, PatientCreate, PatientUpdate>(db, PATIENT_OPTIONS);
  await repo.createMany(SEED);
});

function makeApp(variant: ExpressVariant): Express {
  const app = variant.express();
  app.use(core.requestContext());
  app.get(
    '/patients',
    core.asyncHandler(async (req, res) => {
      res.json(await repo.list(core.parseListQuery(req.query, repo)));
    }),
  );
  app.use(
    core.errors({
      settings: TEST_SETTINGS,
      logger: core.createLogger('errors', { console: false, settings: TEST_SETTINGS }),
    }),
  );
  return app;
}

const mrnsWhere = (predicate: (p: PatientCreate) => boolean): string[] =>
  SEED.filter(predicate)
    .map((p) => p.mrn)
    .sort();

describe.each(eachExpress)('GET /patients on %s', (_name, variant) => {
  let app: Express;
  beforeAll(() => {
    app = makeApp(variant);
  });

  async function items(url: string): Promise<Item[]> {
    const res = await request(app).get(url);
    expect({ url, status: res.status }).toEqual({ url, status: 200 });
    return (res.body as { items: Item[] }).items;
  }

  it('no query string: the first page of 20 with the total, hidden columns absent', async () => {
    const res = await request(app).get('/patients');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ total: 25, page: 1, size: 20, pages: 2 });
    const body = res.body as { items: Item[] };
    expect(body.items).toHaveLength(20);
    expect(res.text).not.toContain(SSN);
    expect(Object.keys(body.items[0]!)).not.toContain('ssn');
  });

  it('page, size, multi-column sort, an eq filter and an operator filter together', async () => {
    const res = await request(app).get(
      '/patients?page=2&size=3&sort=-age,family_name&status=active&age[gte]=18',
    );
    expect(res.status).toBe(200);
    const expected = SEED.filter((p) => p.status === 'active' && p.age >= 18).sort(
      (a, b) => b.age - a.age || a.family_name.localeCompare(b.family_name),
    );
    expect(res.body).toMatchObject({ total: expected.length, page: 2, size: 3 });
    const body = res.body as { items: Item[] };
    expect(body.items.map((p) => p.age)).toEqual(expected.slice(3, 6).map((p) => p.age));
    for (const p of body.items) expect(p.status).toBe('active');
  });

  it('two operators on one field; brackets encoded or not', async () => {
    const expected = mrnsWhere((p) => p.age >= 20 && p.age <= 40);
    for (const url of [
      '/patients?age[gte]=20&age[lte]=40&size=100',
      '/patients?age%5Bgte%5D=20&age%5Blte%5D=40&size=100',
    ]) {
      expect((await items(url)).map((p) => p.mrn).sort()).toEqual(expected);
    }
  });

  it('in as a comma list and as a repeated key', async () => {
    const expected = mrnsWhere((p) => p.status === 'active' || p.status === 'pending');
    for (const url of [
      '/patients?status[in]=active,pending&size=100',
      '/patients?status[in]=active&status[in]=pending&size=100',
    ]) {
      expect((await items(url)).map((p) => p.mrn).sort()).toEqual(expected);
    }
  });

  it('like takes % literally; booleans, is_null and between are coerced', async () => {
    expect((await items('/patients?family_name[like]=50%25&size=100')).map((p) => p.mrn).sort()).toEqual(
      mrnsWhere((p) => p.family_name === 'price 50%'),
    );
    expect((await items('/patients?active=true&size=100')).map((p) => p.mrn).sort()).toEqual(
      mrnsWhere((p) => p.active === true),
    );
    expect((await items('/patients?given_name[is_null]=true&size=100')).map((p) => p.mrn).sort()).toEqual(
      mrnsWhere((p) => p.given_name === null),
    );
    expect((await items('/patients?age[between]=10,30&size=100')).map((p) => p.mrn).sort()).toEqual(
      mrnsWhere((p) => p.age >= 10 && p.age <= 30),
    );
  });

  it('keyset pages: following next_cursor walks the same order as one offset page', async () => {
    const expected = (await items('/patients?sort=family_name,-age&size=100')).map((p) => p.id);
    const walked: number[] = [];
    let url: string | undefined = '/patients?sort=family_name,-age&limit=4';
    for (let i = 0; url !== undefined && i < 20; i++) {
      const res = await request(app).get(url);
      expect(res.status).toBe(200);
      const body = res.body as { items: Item[]; next_cursor: string | null };
      expect(Object.keys(body).sort()).toEqual(['items', 'next_cursor']);
      walked.push(...body.items.map((p) => p.id));
      url =
        body.next_cursor === null
          ? undefined
          : `/patients?sort=family_name,-age&limit=4&cursor=${encodeURIComponent(body.next_cursor)}`;
    }
    expect(walked).toEqual(expected);
  });

  it.each<[string, string]>([
    ['/patients?size=1000', 'size'],
    ['/patients?size=-1', 'size'],
    ['/patients?size=0', 'size'],
    ['/patients?size=1&size=2', 'size'],
    ['/patients?size[gte]=1', 'size'],
    ['/patients?page=0', 'page'],
    ['/patients?page=abc', 'page'],
    ['/patients?limit=101', 'limit'],
    [`/patients?ssn=${SSN}`, 'ssn'],
    [`/patients?ssn[eq]=${SSN}`, 'ssn'],
    ['/patients?age[regex]=.*', 'age'],
    ['/patients?age[gte]=abc', 'age[gte]'],
    ['/patients?active=yes', 'active[eq]'],
    ['/patients?sort=ssn', 'sort'],
    ['/patients?sort=age;DROP%20TABLE%20patients', 'sort'],
    ['/patients?cursor=not*a*cursor&limit=5', 'cursor'],
    ['/patients?cursor=W10&limit=5', 'cursor'],
    ['/patients?cursor=abc&page=2', 'page'],
  ])('%s is 400 VALIDATION_ERROR naming %s', async (url, field) => {
    const res = await request(app).get(url);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      success: false,
      error_code: 'VALIDATION_ERROR',
      details: { field_errors: { [field]: expect.any(String) } },
    });
    const body = res.body as { details: { field_errors: object; request_id: string } };
    expect(Object.keys(body.details.field_errors)).toEqual([field]);
    expect(body.details.request_id).toBe(res.headers['x-request-id']);
    expect(res.text).not.toContain(SSN);
  });

  it('nesting deeper than field[op] is 400, whichever parser', async () => {
    for (const url of ['/patients?status[eq][x]=1', '/patients?age[gte][0][1]=1']) {
      const res = await request(app).get(url);
      expect({ url, status: res.status }).toEqual({ url, status: 400 });
      const fields = Object.keys((res.body as { details: { field_errors: object } }).details.field_errors);
      expect(fields).toHaveLength(1);
      expect(fields[0]).toMatch(/^(status|age)/);
    }
  });

  it('prototype keys are dropped by the parser (200, unfiltered) or refused (400): never a 500', async () => {
    for (const url of [
      '/patients?__proto__[eq]=x',
      '/patients?__proto__=x',
      '/patients?constructor[prototype]=x',
      '/patients?prototype=x',
      '/patients?hasOwnProperty=x',
    ]) {
      const res = await request(app).get(url);
      expect([200, 400]).toContain(res.status);
      if (res.status === 200) expect(res.body).toMatchObject({ total: 25 });
      else expect(res.body).toMatchObject({ error_code: 'VALIDATION_ERROR' });
    }
  });

  it('SQL in a value is a bound value: nothing found, nothing changed', async () => {
    expect(await items("/patients?family_name=x'%20OR%20'1'%3D'1")).toEqual([]);
    expect(await items('/patients?family_name[like]=%25%27%3B%20DROP%20TABLE%20patients%3B%20--')).toEqual(
      [],
    );
    // Only the literal values match: H01, and no row is called `H02) OR (1=1`.
    expect((await items('/patients?mrn[in]=H01,H02)%20OR%20(1%3D1&size=100')).map((p) => p.mrn)).toEqual([
      'H01',
    ]);
    expect(await repo.count()).toBe(25);
  });

  it('a NUL byte (%00) in a value is a 4xx, never a 500', async () => {
    for (const url of ['/patients?family_name=%00', '/patients?family_name[like]=a%00b']) {
      const res = await request(app).get(url);
      expect({ url, status: res.status < 500 ? 'client error or ok' : res.status }).toEqual({
        url,
        status: 'client error or ok',
      });
    }
  });
});
