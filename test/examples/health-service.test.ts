/**
 * Acceptance test of examples/health-service: the patient resource, driven over HTTP through its
 * exported app on Express 4 and 5, on SQLite (in memory), PostgreSQL (a schema per worker) and
 * MariaDB (a database per worker), reseeded before each test. Requests are made as the
 * administrator, who reaches every patient; login, tokens and each role's reach are in
 * health-service-auth.test.ts, `npm run demo` as a child process in health-service-demo.test.ts.
 */
import type { Express } from 'express';
import request from 'supertest';
import type { Response } from 'supertest';
import type { Auth, Database } from '../../lib/index';
import { createDatabase, loadSettings } from '../../lib/index';
import { createApp } from '../../examples/health-service/app';
import { serviceAuth } from '../../examples/health-service/auth';
import type { LabClient } from '../../examples/health-service/labs';
import { DEMO_ADMIN, SEED_PATIENTS } from '../../examples/health-service/seed';
import type { SeedPatient } from '../../examples/health-service/seed';
import { EXPRESS } from '../support/express';
import type { CapturedLogs, ExampleDialect, LogLine } from './support';
import { bearer, captureLogs, TEST_PASSWORD_HASH, useServiceDatabase, waitFor } from './support';

const settings = loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'debug' });
const API = settings.apiPrefix;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const NEW_PATIENT = {
  mrn: 'MRN-5001',
  given_name: 'Rosalind',
  family_name: 'Quintero',
  birth_date: '1988-09-21',
  sex: 'female',
};
const NEW_SSN = '901-23-4567';
const FIRST = SEED_PATIENTS[0]!;
const SEED_SSNS = SEED_PATIENTS.map((p) => p.ssn);
const MISSING_ID = '00000000-0000-4000-8000-000000000000';

const DIALECTS: readonly { name: string; dialect: ExampleDialect }[] = [
  { name: 'SQLite', dialect: 'sqlite' },
  { name: 'PostgreSQL', dialect: 'postgres' },
  { name: 'MariaDB', dialect: 'mysql' },
];

interface ApiPatient {
  id: string;
  mrn: string;
  family_name: string;
  given_name: string;
  birth_date: string;
  sex: string;
  status: string;
  version: number;
  created_at: string;
  updated_at: string;
  deleted_at: string | null;
}

const dataOf = (res: Response): ApiPatient[] => res.body.data as ApiPatient[];
const idsOf = (res: Response): string[] => dataOf(res).map((p) => p.id);
/** Byte order, as PostgreSQL's C collation, SQLite and MariaDB's utf8mb4_general_ci agree on for these ASCII names. */
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const seedIds = (list: readonly SeedPatient[]): string[] => list.map((p) => p.id);

/** Seed patients in the default order of the API: family name, given name, id. */
const BY_NAME = [...SEED_PATIENTS].sort(
  (a, b) => cmp(a.family_name, b.family_name) || cmp(a.given_name, b.given_name) || cmp(a.id, b.id),
);

describe.each(EXPRESS)('examples/health-service on $name', ({ express, major }) => {
  describe.each(DIALECTS)('with $name', ({ dialect }) => {
    const database = useServiceDatabase(dialect, `ex_hs${major}`, settings);
    let logs: CapturedLogs;
    let auth: Auth;
    let app: Express;
    /** Requests as the administrator, who sees every patient (the roles have their own suite). */
    let admin: ReturnType<typeof request.agent>;
    const asAdmin = (target: Express) => request.agent(target).set('Authorization', bearer(auth, DEMO_ADMIN));
    /** The app on the test's database with the test's logs and Auth; `more` adds options. */
    const build = (more: Partial<Parameters<typeof createApp>[0]> = {}) =>
      createApp({
        express,
        settings,
        db: database.db(),
        createLogger: logs.createLogger,
        auth,
        passwordHash: TEST_PASSWORD_HASH,
        ...more,
      });

    beforeEach(() => {
      logs = captureLogs(settings);
      auth = serviceAuth({ db: database.db(), settings, logger: logs.createLogger('auth') });
      app = build();
      admin = asAdmin(app);
    });
    afterEach(async () => {
      await auth.close();
    });

    const accessLine = (requestId: string): Promise<LogLine> =>
      waitFor(() => logs.lines.find((l) => l.logger === 'http' && l.request_id === requestId));
    const list = (query: string) => admin.get(`${API}/patients${query}`);

    test('GET /health answers 200 in application/health+json with the database, breaker and flag checks, and is left out of the access log', async () => {
      const res = await admin.get('/health').expect(200);
      expect(res.headers['content-type']).toMatch(/^application\/health\+json/);
      expect(res.body).toMatchObject({
        status: 'pass',
        version: settings.appVersion,
        serviceId: settings.appName,
      });
      const checks = res.body.checks as Record<string, { status: string; observedValue: unknown }[]>;
      expect(checks['database:responseTime']?.[0]).toMatchObject({ status: 'pass' });
      expect(typeof checks['database:responseTime']?.[0]?.observedValue).toBe('number');
      expect(checks['circuitBreaker:labs']?.[0]).toMatchObject({ status: 'pass', observedValue: 'closed' });
      expect(checks['featureFlags:store']?.[0]).toMatchObject({ status: 'pass' });
      await admin.get('/health/live').expect(200);
      await admin.get('/health/ready').expect(200);
      await list('').expect(200);
      await waitFor(() => logs.lines.find((l) => l.logger === 'http'));
      expect(logs.lines.filter((l) => l.logger === 'http').map((l) => l.route)).toEqual([`${API}/patients`]);
    });

    describe('list', () => {
      test('first offset page: 20 patients by name, the total, no hidden column', async () => {
        const res = await list('').expect(200);
        expect(res.body.meta).toEqual({ page: 1, size: 20, total: 50, pages: 3 });
        expect(idsOf(res)).toEqual(seedIds(BY_NAME.slice(0, 20)));
        const first = dataOf(res)[0]!;
        const seed = BY_NAME[0]!;
        expect(first).toEqual({
          id: seed.id,
          mrn: seed.mrn,
          family_name: seed.family_name,
          given_name: seed.given_name,
          birth_date: seed.birth_date,
          sex: seed.sex,
          status: seed.status,
          provider_id: seed.provider_id,
          version: 1,
          created_at: seed.created_at.toISOString(),
          updated_at: seed.created_at.toISOString(),
          deleted_at: null,
        });
        expect(Object.keys(first)).not.toContain('ssn');
      });

      test('offset pages cover every patient once', async () => {
        const seen: string[] = [];
        for (let page = 1; page <= 8; page++) {
          const res = await list(`?page=${page}&size=7&sort=-birth_date`).expect(200);
          expect(res.body.meta).toEqual({ page, size: 7, total: 50, pages: 8 });
          seen.push(...idsOf(res));
        }
        expect(new Set(seen).size).toBe(50);
        const beyond = await list('?page=9&size=7').expect(200);
        expect(beyond.body.data).toEqual([]);
      });

      test('filters: equality, in, ilike, date ranges, combined', async () => {
        const active = await list('?status=active&size=100').expect(200);
        const activeSeeds = SEED_PATIENTS.filter((p) => p.status === 'active');
        expect(active.body.meta.total).toBe(activeSeeds.length);
        expect(new Set(idsOf(active))).toEqual(new Set(seedIds(activeSeeds)));

        const notActive = await list('?status[in]=inactive,deceased&size=100').expect(200);
        expect(notActive.body.meta.total).toBe(50 - activeSeeds.length);
        expect(notActive.body.meta.total).toBeGreaterThan(0);

        // Case-insensitive substring on every dialect.
        const ok = await list('?family_name[ilike]=OKA').expect(200);
        const okafor = SEED_PATIENTS.filter((p) => p.family_name === 'Okafor');
        expect(new Set(idsOf(ok))).toEqual(new Set(seedIds(okafor)));

        const eighties = await list('?birth_date[gte]=1980-01-01&birth_date[lt]=1990-01-01&size=100').expect(
          200,
        );
        const eightiesSeeds = SEED_PATIENTS.filter(
          (p) => p.birth_date >= '1980-01-01' && p.birth_date < '1990-01-01',
        );
        expect(new Set(idsOf(eighties))).toEqual(new Set(seedIds(eightiesSeeds)));

        const between = await list('?birth_date[between]=1950-01-01,1969-12-31&sex=female&size=100').expect(
          200,
        );
        const betweenSeeds = SEED_PATIENTS.filter(
          (p) => p.birth_date >= '1950-01-01' && p.birth_date <= '1969-12-31' && p.sex === 'female',
        );
        expect(new Set(idsOf(between))).toEqual(new Set(seedIds(betweenSeeds)));

        const byMrn = await list(`?mrn=${FIRST.mrn}`).expect(200);
        expect(idsOf(byMrn)).toEqual([FIRST.id]);
      });

      test('user text is data, never SQL or a wildcard; SQL probes never reach the route', async () => {
        for (const query of [
          '?family_name[ilike]=%25',
          '?family_name[like]=_',
          `?family_name=${encodeURIComponent("O'Okafor")}`,
          `?given_name=${encodeURIComponent('Ådå 💉')}`,
        ]) {
          const res = await list(query).expect(200);
          expect(res.body.meta.total).toBe(0);
        }
        // security() answers injection probes before the repository sees them.
        for (const query of [
          `?family_name=${encodeURIComponent("Okafor' OR '1'='1")}`,
          `?family_name[ilike]=${encodeURIComponent("'; DROP TABLE patients; --")}`,
          `?${encodeURIComponent('status;DROP TABLE patients')}=1`,
        ]) {
          const res = await list(query).expect(403);
          expect(res.body).toMatchObject({ success: false, error_code: 'THREAT_DETECTED' });
        }
        await list('').expect(200);
        expect((await list('').expect(200)).body.meta.total).toBe(50);
      });

      test('multi-column sort with the id as tiebreaker', async () => {
        const res = await list('?sort=-birth_date,family_name&size=100').expect(200);
        const expected = [...SEED_PATIENTS].sort(
          (a, b) => cmp(b.birth_date, a.birth_date) || cmp(a.family_name, b.family_name) || cmp(a.id, b.id),
        );
        expect(idsOf(res)).toEqual(seedIds(expected));
        const byStatus = await list('?sort=status,-created_at&size=100').expect(200);
        const statuses = dataOf(byStatus).map((p) => p.status);
        expect(statuses).toEqual([...statuses].sort(cmp));
      });

      /** Follow `next_cursor` to the end; every page but the last is full. */
      async function walk(query: string): Promise<string[]> {
        const ids: string[] = [];
        let cursor: string | null = null;
        for (let pages = 0; pages < 20; pages++) {
          const res = await list(`${query}${cursor === null ? '' : `&cursor=${cursor}`}`).expect(200);
          ids.push(...idsOf(res));
          expect(Object.keys(res.body.meta).sort()).toEqual(['limit', 'next_cursor']);
          cursor = res.body.meta.next_cursor as string | null;
          if (cursor === null) return ids;
          expect(res.body.data).toHaveLength(res.body.meta.limit);
        }
        throw new Error('keyset pages did not end');
      }

      test('keyset pages walk every patient once, in order, across ties', async () => {
        const newest = await walk('?limit=7&sort=-created_at');
        const byCreated = [...SEED_PATIENTS].sort(
          (a, b) => b.created_at.getTime() - a.created_at.getTime() || cmp(b.id, a.id),
        );
        expect(newest).toEqual(seedIds(byCreated));
        // family_name has many ties: the id tiebreaker keeps pages from skipping or repeating.
        expect(await walk('?limit=6&sort=family_name')).toEqual(
          seedIds([...SEED_PATIENTS].sort((a, b) => cmp(a.family_name, b.family_name) || cmp(a.id, b.id))),
        );
        const filtered = await walk('?limit=5&status=active&sort=birth_date');
        expect(filtered).toHaveLength(SEED_PATIENTS.filter((p) => p.status === 'active').length);
      });

      test('a cursor only works with the sort it was made for', async () => {
        const first = await list('?limit=5&sort=-created_at').expect(200);
        const cursor = first.body.meta.next_cursor as string;
        const other = await list(`?limit=5&sort=family_name&cursor=${cursor}`).expect(400);
        expect(other.body.details.field_errors).toHaveProperty('cursor');
        const forged = await list('?limit=5&cursor=not-a-cursor').expect(400);
        expect(forged.body.details.field_errors).toHaveProperty('cursor');
      });

      test.each([
        ['an undeclared column (the hidden ssn)', `?ssn=${FIRST.ssn}`, 'ssn'],
        ['sorting by a hidden column', '?sort=-ssn', 'sort'],
        ['an unknown operator', '?status[regex]=a', 'status'],
        ['a page size over the limit', '?size=1000', 'size'],
        ['page 0', '?page=0', 'page'],
        ['a negative limit', '?limit=-1', 'limit'],
        ['page with cursor', '?page=2&cursor=abc', 'page'],
        ['a repeated scalar', '?family_name=a&family_name=b', 'family_name[eq]'],
        ['a text operator on a date', '?birth_date[ilike]=19', 'birth_date[ilike]'],
        ['a date that is not one', '?birth_date[gte]=yesterday', 'birth_date[gte]'],
        ['a timestamp that is not one', '?created_at[gt]=soon', 'created_at[gt]'],
        ['an unknown field', `?${encodeURIComponent('status;select')}=1`, 'status;select'],
      ])('bad query: %s is a 400 VALIDATION_ERROR naming the field', async (_label, query, field) => {
        const res = await list(query).expect(400);
        expect(res.body).toMatchObject({ success: false, error_code: 'VALIDATION_ERROR' });
        expect(Object.keys(res.body.details.field_errors)).toEqual([field]);
        expect(res.text).not.toContain(FIRST.ssn);
      });
    });

    describe('one patient', () => {
      test('gets a patient by id, with its version as ETag', async () => {
        const res = await admin.get(`${API}/patients/${FIRST.id}`).expect(200);
        expect(res.body).toMatchObject({ success: true, data: { id: FIRST.id, mrn: FIRST.mrn, version: 1 } });
        expect(res.headers.etag).toBe('"1"');
        expect(res.body.data).not.toHaveProperty('ssn');
      });

      test('an unknown id is a 404 envelope from NotFoundError', async () => {
        const res = await admin.get(`${API}/patients/${MISSING_ID}`).expect(404);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        expect(res.body).toEqual({
          success: false,
          error: 'Patient not found',
          error_code: 'NOT_FOUND',
          details: {
            request_id: res.headers['x-request-id'],
            resource_type: 'Patient',
            resource_id: MISSING_ID,
          },
        });
      });
    });

    describe('create', () => {
      test('201 with Location and ETag, version 1, then readable and listed', async () => {
        const res = await admin
          .post(`${API}/patients`)
          .send({ ...NEW_PATIENT, ssn: NEW_SSN })
          .expect(201);
        const created = res.body.data as ApiPatient;
        expect(created).toMatchObject({ ...NEW_PATIENT, status: 'active', version: 1, deleted_at: null });
        expect(created.id).toMatch(UUID);
        expect(created).not.toHaveProperty('ssn');
        expect(res.headers.location).toBe(`${API}/patients/${created.id}`);
        expect(res.headers.etag).toBe('"1"');
        const read = await admin.get(res.headers.location!).expect(200);
        expect(read.body.data).toEqual(created);
        const listed = await list(`?mrn=${NEW_PATIENT.mrn}`).expect(200);
        expect(idsOf(listed)).toEqual([created.id]);
        expect((await list('').expect(200)).body.meta.total).toBe(51);

        const logged = await waitFor(() => logs.lines.find((l) => l.message === 'patient created'));
        expect(logged).toMatchObject({
          logger: 'patients',
          patient_id: created.id,
          request_id: res.headers['x-request-id'],
        });
        // The repository's access event reaches the audit log line with the actor context.
        const audit = logs.lines.find((l) => l.message === 'patient access' && l.action === 'create');
        expect(audit).toMatchObject({ patient_ids: [created.id], outcome: 'success' });
      });

      test('invalid input is a 422 with an error for every bad field, echoing no value', async () => {
        const res = await admin
          .post(`${API}/patients`)
          .send({
            mrn: 'bad mrn',
            family_name: '  ',
            birth_date: '1990-02-31',
            sex: 'x',
            ssn: '123456789',
            notes: 'x',
          })
          .expect(422);
        expect(res.body).toMatchObject({
          success: false,
          error: 'Invalid Patient',
          error_code: 'VALIDATION_ERROR',
        });
        expect(res.body.details.field_errors).toEqual({
          mrn: 'must be 4-20 upper-case letters, digits or dashes',
          given_name: 'is required',
          family_name: 'must be a non-empty string',
          birth_date: 'must be a date as YYYY-MM-DD',
          sex: 'must be one of female, male, other, unknown',
          ssn: 'must be NNN-NN-NNNN',
          notes: 'is not a known field',
        });
        expect(res.text).not.toContain('123456789');
        expect(res.text).not.toContain('bad mrn');
        expect((await list('').expect(200)).body.meta.total).toBe(50);
      });

      test('a birth date in the future and a body that is not an object are 422s too', async () => {
        const future = await admin
          .post(`${API}/patients`)
          .send({ ...NEW_PATIENT, birth_date: '2999-01-01' })
          .expect(422);
        expect(future.body.details.field_errors).toEqual({ birth_date: 'must not be in the future' });
        const array = await admin.post(`${API}/patients`).send([NEW_PATIENT]).expect(422);
        expect(array.body.details.field_errors).toEqual({ _: 'must be a JSON object' });
        // No body at all: Express 5 leaves req.body undefined, Express 4 sets {}; a 422 either way.
        const none = await admin.post(`${API}/patients`).expect(422);
        expect(none.body.error_code).toBe('VALIDATION_ERROR');
      });

      test('a duplicate MRN is a 409 DUPLICATE that does not echo the MRN; nothing is written', async () => {
        const res = await admin
          .post(`${API}/patients`)
          .send({ ...NEW_PATIENT, mrn: FIRST.mrn })
          .expect(409);
        expect(res.body).toEqual({
          success: false,
          error: 'Patient with this mrn already exists',
          error_code: 'DUPLICATE',
          details: { request_id: res.headers['x-request-id'], resource_type: 'Patient', field: 'mrn' },
        });
        expect(res.text).not.toContain(FIRST.mrn);
        expect((await list('').expect(200)).body.meta.total).toBe(50);
      });
    });

    describe('update', () => {
      const patch = (id: string) => admin.patch(`${API}/patients/${id}`);

      test('If-Match with the current version updates and bumps it; a stale one is a 409', async () => {
        const res = await patch(FIRST.id).set('If-Match', '"1"').send({ status: 'inactive' }).expect(200);
        expect(res.body.data).toMatchObject({ id: FIRST.id, status: 'inactive', version: 2, mrn: FIRST.mrn });
        expect(res.headers.etag).toBe('"2"');
        expect(new Date(res.body.data.updated_at).getTime()).toBeGreaterThan(FIRST.created_at.getTime());
        expect(res.body.data.created_at).toBe(FIRST.created_at.toISOString());

        const stale = await patch(FIRST.id).set('If-Match', '1').send({ status: 'active' }).expect(409);
        expect(stale.body).toMatchObject({
          success: false,
          error_code: 'CONFLICT',
          details: { resource_type: 'Patient', resource_id: FIRST.id },
        });
        const now = await admin.get(`${API}/patients/${FIRST.id}`).expect(200);
        expect(now.body.data).toMatchObject({ status: 'inactive', version: 2 });
      });

      test('the version can travel in the body instead', async () => {
        const res = await patch(FIRST.id).send({ version: 1, given_name: 'Nadia' }).expect(200);
        expect(res.body.data).toMatchObject({ given_name: 'Nadia', version: 2 });
        await patch(FIRST.id).send({ version: 1, given_name: 'Other' }).expect(409);
      });

      test('two concurrent updates of the same version: one wins, the other is a 409', async () => {
        const [a, b] = await Promise.all([
          patch(FIRST.id).set('If-Match', '1').send({ status: 'inactive' }),
          patch(FIRST.id).set('If-Match', '1').send({ status: 'deceased' }),
        ]);
        expect([a.status, b.status].sort()).toEqual([200, 409]);
        const now = await admin.get(`${API}/patients/${FIRST.id}`).expect(200);
        expect(now.body.data.version).toBe(2);
        expect(now.body.data.status).toBe((a.status === 200 ? a : b).body.data.status);
      });

      test('without a version it is a 428; a malformed or contradictory one is a 400', async () => {
        const none = await patch(FIRST.id).send({ status: 'inactive' }).expect(428);
        expect(none.body).toMatchObject({ error_code: 'PRECONDITION_REQUIRED' });
        expect(none.body.details.field_errors).toHaveProperty('version');
        const bad = await patch(FIRST.id)
          .set('If-Match', 'yesterday')
          .send({ status: 'inactive' })
          .expect(400);
        expect(bad.body.details.field_errors).toHaveProperty('If-Match');
        const both = await patch(FIRST.id)
          .set('If-Match', '1')
          .send({ version: 2, status: 'inactive' })
          .expect(400);
        expect(both.body.details.field_errors).toHaveProperty('version');
        const notInt = await patch(FIRST.id).send({ version: '1', status: 'inactive' }).expect(400);
        expect(notInt.body.details.field_errors).toHaveProperty('version');
        expect((await admin.get(`${API}/patients/${FIRST.id}`)).body.data.version).toBe(1);
      });

      test('invalid, empty and unknown-field patches are 422s; an unknown id is a 404', async () => {
        const invalid = await patch(FIRST.id)
          .set('If-Match', '1')
          .send({ birth_date: 'soon', id: 'x' })
          .expect(422);
        expect(invalid.body.details.field_errors).toEqual({
          birth_date: 'must be a date as YYYY-MM-DD',
          id: 'is not a known field',
        });
        const empty = await patch(FIRST.id).set('If-Match', '1').send({}).expect(422);
        expect(empty.body.details.field_errors).toEqual({ _: 'must change at least one field' });
        await patch(MISSING_ID).set('If-Match', '1').send({ status: 'inactive' }).expect(404);
      });

      test('changing the MRN to a taken one is a 409 DUPLICATE and changes nothing', async () => {
        const other = SEED_PATIENTS[1]!;
        const res = await patch(FIRST.id)
          .set('If-Match', '1')
          .send({ mrn: other.mrn, status: 'inactive' })
          .expect(409);
        expect(res.body).toMatchObject({ error_code: 'DUPLICATE', details: { field: 'mrn' } });
        expect(res.text).not.toContain(other.mrn);
        const now = await admin.get(`${API}/patients/${FIRST.id}`).expect(200);
        expect(now.body.data).toMatchObject({ mrn: FIRST.mrn, status: FIRST.status, version: 1 });
      });
    });

    describe('delete', () => {
      test('a soft delete: 204, then 404 everywhere, out of lists, row kept with deleted_at', async () => {
        await admin.delete(`${API}/patients/${FIRST.id}`).expect(204);
        await admin.get(`${API}/patients/${FIRST.id}`).expect(404);
        await admin
          .patch(`${API}/patients/${FIRST.id}`)
          .set('If-Match', '1')
          .send({ status: 'active' })
          .expect(404);
        await admin.delete(`${API}/patients/${FIRST.id}`).expect(404);
        const rest = await list('?size=100').expect(200);
        expect(rest.body.meta.total).toBe(49);
        expect(idsOf(rest)).not.toContain(FIRST.id);
        const row = (await database.db().knex('patients').where({ id: FIRST.id }).first()) as Record<
          string,
          unknown
        >;
        expect(row.deleted_at).not.toBeNull();
        // The MRN of a soft-deleted patient stays taken (the unique index covers every row).
        await admin
          .post(`${API}/patients`)
          .send({ ...NEW_PATIENT, mrn: FIRST.mrn })
          .expect(409);
      });
    });

    test('no SSN in any response or log line, whatever the route or outcome', async () => {
      const responses: Response[] = [];
      const created = await admin
        .post(`${API}/patients`)
        .send({ ...NEW_PATIENT, ssn: NEW_SSN })
        .expect(201);
      const id = created.body.data.id as string;
      responses.push(created);
      responses.push(await admin.get(`${API}/patients/${id}`).expect(200));
      responses.push(await list('?size=100').expect(200));
      responses.push(await list('?limit=100&sort=-created_at').expect(200));
      responses.push(
        await admin
          .patch(`${API}/patients/${id}`)
          .set('If-Match', '1')
          .send({ ssn: '902-11-2222' })
          .expect(200),
      );
      responses.push(
        await admin
          .patch(`${API}/patients/${id}`)
          .set('If-Match', '1')
          .send({ ssn: '903-11-2222' })
          .expect(409),
      );
      responses.push(
        await admin
          .post(`${API}/patients`)
          .send({ ...NEW_PATIENT, ssn: NEW_SSN })
          .expect(409),
      );
      responses.push(await list(`?ssn=${NEW_SSN}`).expect(400));
      responses.push(await list(`?ssn[eq]=${NEW_SSN}`).expect(400));
      await waitFor(() =>
        logs.lines.filter((l) => l.logger === 'http').length === responses.length ? true : undefined,
      );
      // The SSN is stored (hidden, not dropped).
      const row = (await database.db().knex('patients').where({ id }).first()) as Record<string, unknown>;
      expect(row.ssn).toBe('902-11-2222');

      const texts = responses.map((r) => r.text + JSON.stringify(r.headers));
      const everything = [...texts, logs.text(), database.logs.text()].join('\n');
      for (const ssn of [NEW_SSN, '902-11-2222', '903-11-2222', ...SEED_SSNS])
        expect(everything).not.toContain(ssn);
      // No patient carries even the key: the column is hidden, not blanked. (A 400 names the field
      // it refuses, and the slow-query log's SQL text names the column: neither holds a value.)
      for (const r of responses.filter((x) => x.status < 300)) expect(r.text).not.toMatch(/"ssn"/);
    });

    describe('request id', () => {
      test('a safe incoming X-Request-Id is echoed, in the error body and in the log lines', async () => {
        const res = await admin
          .get(`${API}/patients/${MISSING_ID}`)
          .set('X-Request-Id', 'client-req.42:a_b')
          .expect(404);
        expect(res.headers['x-request-id']).toBe('client-req.42:a_b');
        expect(res.body.details.request_id).toBe('client-req.42:a_b');
        const line = await accessLine('client-req.42:a_b');
        expect(line).toMatchObject({ method: 'GET', status: 404 });
        expect(logs.lines.find((l) => l.logger === 'errors')?.request_id).toBe('client-req.42:a_b');
      });

      test.each([
        ['too long', 'a'.repeat(129)],
        ['with markup', '<script>alert(1)</script>'],
        ['with spaces and quotes', 'id "x" y'],
        ['a path', '../../etc/passwd'],
      ])('a hostile id (%s) is replaced by a generated one', async (_label, hostile) => {
        const res = await list('').set('X-Request-Id', hostile).expect(200);
        expect(res.headers['x-request-id']).toMatch(UUID);
        expect(logs.text()).not.toContain(hostile);
      });

      test('without one, each request gets its own UUID', async () => {
        const [a, b] = await Promise.all([admin.get('/health'), admin.get('/health')]);
        expect(a.headers['x-request-id']).toMatch(UUID);
        expect(b.headers['x-request-id']).toMatch(UUID);
        expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
      });
    });

    describe('failures', () => {
      test('an error thrown after an await is a generic 500: no stack, no internal message', async () => {
        const res = await admin.get(`${API}/patients/${FIRST.id}/lab-results`).expect(500);
        expect(res.body).toEqual({
          success: false,
          error: 'Internal server error',
          error_code: 'INTERNAL_ERROR',
          details: { request_id: res.headers['x-request-id'] },
        });
        expect(res.text).not.toMatch(/LIS|lis\.internal|refused|stack|labs\.ts|at /);
      });

      test('the 500 is logged once, at error, with its cause and stack', async () => {
        const res = await admin.get(`${API}/patients/${FIRST.id}/lab-results`).expect(500);
        await accessLine(res.headers['x-request-id']!);
        const errorLines = logs.lines.filter((l) => l.logger === 'errors');
        expect(errorLines).toHaveLength(1);
        const [line] = errorLines as [LogLine];
        expect(line).toMatchObject({ level: 'error', status: 500, error_code: 'INTERNAL_ERROR' });
        const error = line.error as { message: string; stack: string };
        expect(error.message).toContain('lis.internal.example:7443 refused');
        expect(error.stack).toContain('labs.ts');
      });

      test('with a working lab client the same route answers 200', async () => {
        const labs: LabClient = {
          resultsFor: async (id) => {
            await new Promise((r) => setTimeout(r, 1));
            return [
              {
                code: '2345-7',
                display: `Glucose ${id}`,
                value: 5.4,
                unit: 'mmol/L',
                observed_at: '2026-01-01',
              },
            ];
          },
        };
        const withLabs = asAdmin(build({ labs }));
        const res = await withLabs.get(`${API}/patients/${FIRST.id}/lab-results`).expect(200);
        expect(res.body.data[0]).toMatchObject({ code: '2345-7', display: `Glucose ${FIRST.id}` });
        await withLabs.get(`${API}/patients/${MISSING_ID}/lab-results`).expect(404);
      });

      test('malformed JSON is a 400 INVALID_JSON', async () => {
        const res = await admin
          .post(`${API}/patients`)
          .set('Content-Type', 'application/json')
          .send('{"mrn": "MRN-7000",')
          .expect(400);
        expect(res.body).toMatchObject({ success: false, error_code: 'INVALID_JSON' });
        expect(res.body.details.request_id).toBe(res.headers['x-request-id']);
        expect(res.text).not.toMatch(/Unexpected|position|SyntaxError/);
      });

      test('a body over the limit is a 413 PAYLOAD_TOO_LARGE', async () => {
        const res = await admin
          .post(`${API}/patients`)
          .send({ ...NEW_PATIENT, notes: 'x'.repeat(150 * 1024) })
          .expect(413);
        expect(res.body).toMatchObject({ success: false, error_code: 'PAYLOAD_TOO_LARGE' });
      });

      test('the body limit is an option', async () => {
        const small = asAdmin(build({ bodyLimit: 64 }));
        await small.post(`${API}/patients`).send(NEW_PATIENT).expect(413);
      });

      test('an unmatched route is a 404 envelope', async () => {
        const res = await admin.delete(`${API}/patients`).expect(404);
        expect(res.body).toEqual({
          success: false,
          error: 'Route not found',
          error_code: 'NOT_FOUND',
          details: { request_id: res.headers['x-request-id'], method: 'DELETE' },
        });
      });
    });

    describe('error formats', () => {
      test('Accept: application/problem+json gives RFC 9457 problem details', async () => {
        const res = await admin
          .get(`${API}/patients/${MISSING_ID}`)
          .set('Accept', 'application/problem+json')
          .expect(404);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(JSON.parse(res.text)).toMatchObject({
          type: 'about:blank',
          title: 'Not Found',
          status: 404,
          detail: 'Patient not found',
          code: 'NOT_FOUND',
          request_id: res.headers['x-request-id'],
        });
      });

      test('Accept: application/fhir+json gives an OperationOutcome with one issue per bad field', async () => {
        const res = await admin
          .post(`${API}/patients`)
          .set('Accept', 'application/fhir+json')
          .send({ ...NEW_PATIENT, birth_date: 'yesterday' })
          .expect(422);
        expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
        const outcome = JSON.parse(res.text);
        expect(outcome.resourceType).toBe('OperationOutcome');
        expect(outcome.issue).toHaveLength(2);
        expect(outcome.issue[1]).toMatchObject({
          severity: 'error',
          code: 'invalid',
          expression: ['birth_date'],
        });
      });
    });

    describe('logs', () => {
      test('one access line per request with the route template, status, duration and request id', async () => {
        const res = await admin
          .get(`${API}/patients/${FIRST.id}?secret=abc`)
          .set('User-Agent', 'acceptance')
          .expect(200);
        const line = await accessLine(res.headers['x-request-id']!);
        expect(line).toMatchObject({
          level: 'info',
          message: 'request completed',
          method: 'GET',
          route: `${API}/patients/:id`,
          status: 200,
          user_agent: 'acceptance',
        });
        expect(typeof line.duration_ms).toBe('number');
        expect(typeof line.bytes).toBe('number');
        const http = logs.lines.filter((l) => l.logger === 'http');
        expect(http).toHaveLength(1);
        // The template, not the URL: neither the id nor the query string is in the access line.
        expect(JSON.stringify(http)).not.toMatch(new RegExp(`${FIRST.id}|secret=abc`));
      });

      // Express resets req.baseUrl once the error leaves the router; the template is recorded at match time.
      test('an error answered by errors() keeps the full route template in the access log', async () => {
        const res = await admin.get(`${API}/patients/${MISSING_ID}`).expect(404);
        const line = await accessLine(res.headers['x-request-id']!);
        expect(line.route).toBe(`${API}/patients/:id`);
      });

      test('reads and searches reach the audit hook with ids and field names, never values', async () => {
        const res = await list('?family_name[ilike]=oka&status=active').expect(200);
        const line = await waitFor(() =>
          logs.lines.find((l) => l.message === 'patient access' && l.action === 'search'),
        );
        expect(line).toMatchObject({
          outcome: 'success',
          request_id: res.headers['x-request-id'],
          patient_ids: idsOf(res),
        });
        expect((line.filter_fields as string[]).sort()).toEqual(['family_name', 'status']);
        expect(JSON.stringify(line)).not.toMatch(/oka|"active"/);
      });

      test('posted PHI appears in no log line, whatever the outcome', async () => {
        await admin.post(`${API}/patients`).send(NEW_PATIENT).expect(201);
        await admin.post(`${API}/patients`).send(NEW_PATIENT).expect(409);
        await admin
          .post(`${API}/patients`)
          .send({ ...NEW_PATIENT, mrn: 'MRN-5002', birth_date: 'x' })
          .expect(422);
        await waitFor(() => (logs.lines.filter((l) => l.logger === 'http').length === 3 ? true : undefined));
        const text = `${logs.text()}\n${database.logs.text()}`;
        for (const value of [
          NEW_PATIENT.mrn,
          'MRN-5002',
          NEW_PATIENT.given_name,
          NEW_PATIENT.family_name,
          NEW_PATIENT.birth_date,
        ]) {
          expect(text).not.toContain(value);
        }
      });
    });
  });

  describe('when the database is down', () => {
    const downs: Database[] = [];
    const auths: Auth[] = [];
    afterAll(async () => {
      await Promise.all(auths.map((a) => a.close()));
      await Promise.all(downs.map((d) => d.close()));
    });

    /** The app on `db`, and an administrator's agent: tokens are verified without the database. */
    function downApp(db: Database, logs: CapturedLogs) {
      const auth = serviceAuth({ db, settings, logger: logs.createLogger('auth') });
      auths.push(auth);
      const app = createApp({ express, settings, db, createLogger: logs.createLogger, auth });
      return { app, admin: request.agent(app).set('Authorization', bearer(auth, DEMO_ADMIN)) };
    }

    test('PostgreSQL refusing connections: /health is a 503 naming the database, API calls fail fast with 503', async () => {
      const logs = captureLogs(settings);
      const db = createDatabase({
        url: 'postgres://postgres@127.0.0.1:1/test',
        settings,
        logger: logs.createLogger('database'),
        healthCheckTimeoutMs: 1000,
      });
      downs.push(db);
      const down = downApp(db, logs);
      const started = Date.now();
      const res = await request(down.app).get('/health').expect(503);
      expect(res.body).toMatchObject({ status: 'fail', serviceId: settings.appName });
      expect(res.body.checks['database:responseTime'][0]).toMatchObject({ status: 'fail' });
      expect(JSON.stringify(res.body)).not.toContain('postgres@');
      await request(down.app).get('/health/ready').expect(503);
      await request(down.app).get('/health/live').expect(200);
      const api = await down.admin.get(`${API}/patients`).expect(503);
      expect(api.body).toMatchObject({ success: false, error_code: 'SERVICE_UNAVAILABLE' });
      const write = await down.admin.post(`${API}/patients`).send(NEW_PATIENT).expect(503);
      expect(write.body.error_code).toBe('SERVICE_UNAVAILABLE');
      // A login cannot check the password: a 503, never a 401 that would blame the user.
      const login = await request(down.app)
        .post(`${API}/auth/login`)
        .send({ email: DEMO_ADMIN.email, password: DEMO_ADMIN.password })
        .expect(503);
      expect(login.body.error_code).toBe('SERVICE_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(5000);
    });

    test('a closed database: /health is a 503; API calls get a generic 5xx, no driver message', async () => {
      const logs = captureLogs(settings);
      const db = createDatabase({ url: 'sqlite::memory:', settings, logger: logs.createLogger('database') });
      await db.close();
      const down = downApp(db, logs);
      const res = await request(down.app).get('/health').expect(503);
      expect(res.body).toMatchObject({ status: 'fail' });
      expect(res.body.checks['database:responseTime'][0]).toMatchObject({ status: 'fail' });
      const api = await down.admin.get(`${API}/patients`);
      // Knex reports a destroyed pool with a plain Error, which lib/errors maps to 500 (not 503).
      expect([500, 503]).toContain(api.status);
      expect(api.text).not.toMatch(/acquire|knex|pool/i);
    });
  });
});
