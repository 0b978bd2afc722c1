/**
 * Acceptance test of the example service's audit trail, over HTTP on Express 4 and 5 and on
 * SQLite, PostgreSQL and MariaDB: a provider's reads, searches and writes of a patient come back to
 * the auditor from `GET /audit?patient=Patient/<id>` as exactly those FHIR AuditEvents; refused
 * requests are access-denied events; only auditors and admins read the trail; no name, birth date
 * or MRN is ever stored or served; the hash chain verifies. On SQLite: the lab-results event the
 * route records itself, a patient's login in their trail, and `start()`/`stop()` writing what the
 * trail still buffers before the database closes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Express } from 'express';
import request from 'supertest';
import type { Response } from 'supertest';
import type { AuditTrail, Auth, Metrics } from '../../lib/index';
import {
  audit,
  createDatabase,
  createLogger,
  createMetrics,
  loadSettings,
  verifyAuditChain,
} from '../../lib/index';
import type { ExpressFactory } from '../../examples/health-service/app';
import { createApp } from '../../examples/health-service/app';
import { serviceAuth } from '../../examples/health-service/auth';
import type { LabClient } from '../../examples/health-service/labs';
import type { DemoUser } from '../../examples/health-service/seed';
import {
  DEMO_ADMIN,
  DEMO_AUDITOR,
  DEMO_PATIENTS,
  DEMO_PROVIDERS,
  SEED_PATIENTS,
} from '../../examples/health-service/seed';
import type { Started } from '../../examples/health-service/server';
import { start } from '../../examples/health-service/server';
import { EXPRESS } from '../support/express';
import type { CapturedLogs, ExampleDialect, ServiceDatabase } from './support';
import { captureLogs, TEST_PASSWORD_HASH, useServiceDatabase } from './support';

const settings = loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'debug' });
const API = settings.apiPrefix;

const [LEE, SHAH] = DEMO_PROVIDERS as [DemoUser, DemoUser];
const [ARJUN] = DEMO_PATIENTS as [DemoUser];
const LEES_PATIENT = SEED_PATIENTS.find((p) => p.provider_id === LEE.id)!;

/** A patient whose every identifying value is unique to this file: none of it may reach the trail. */
const PHI = {
  mrn: 'MRN-AUD7731',
  given_name: 'Zephyrine',
  family_name: 'Quillfeather',
  birth_date: '1987-03-14',
};
const NEW_GIVEN_NAME = 'Zephyra';
const PHI_VALUES = [...Object.values(PHI), NEW_GIVEN_NAME, '19870314', '14/03/1987'];

const DIALECTS: readonly { name: string; dialect: ExampleDialect }[] = [
  { name: 'SQLite', dialect: 'sqlite' },
  { name: 'PostgreSQL', dialect: 'postgres' },
  { name: 'MariaDB', dialect: 'mysql' },
];

const workingLabs: LabClient = {
  resultsFor: () =>
    Promise.resolve([
      { code: '2345-7', display: 'Glucose', value: 5.4, unit: 'mmol/L', observed_at: '2026-01-01' },
      { code: '718-7', display: 'Hemoglobin', value: 13.9, unit: 'g/dL', observed_at: '2026-01-01' },
    ]),
};

interface Coding {
  system?: string;
  code?: string;
  display?: string;
}
/** The parts of a FHIR AuditEvent these tests read. */
interface AuditEventResource {
  resourceType: string;
  id: string;
  type: Coding;
  subtype: Coding[];
  action: string;
  recorded: string;
  outcome: string;
  outcomeDesc?: string;
  agent: {
    who: { identifier?: { value: string }; display: string };
    role?: { text: string }[];
    requestor: boolean;
  }[];
  source: { observer: { display: string } };
  entity: {
    what?: { reference?: string; type?: string; identifier?: { value: string } };
    role?: Coding;
    detail?: { type: string; valueString: string }[];
  }[];
}

const resourcesOf = (res: Response): AuditEventResource[] =>
  (res.body as { entry?: { resource: AuditEventResource }[] }).entry?.map((e) => e.resource) ?? [];

const agentOf = (e: AuditEventResource): string | undefined => e.agent[0]?.who.identifier?.value;

/** The references of an event's entities (`Patient/…`, `User/…`), in order. */
const referencesOf = (e: AuditEventResource): string[] =>
  e.entity.flatMap((x) => (x.what?.reference === undefined ? [] : [x.what.reference]));

/** One row per event, the columns an auditor reads first. */
const summary = (e: AuditEventResource) => ({
  action: e.action,
  interaction: e.subtype[0]?.code,
  outcome: e.outcome,
  agent: agentOf(e),
});

/**
 * The app of a describe block, built before each test the way `server.ts` builds it: an Auth and
 * an audit trail on the test's database, both passed to `createApp()`, both closed after the test
 * (the trail writes what it still buffers). Metrics go to a registry of the test's own.
 */
function useAuditedApp(express: ExpressFactory, database: ServiceDatabase) {
  const ctx = {
    app: undefined as unknown as Express,
    trail: undefined as unknown as AuditTrail,
    auth: undefined as unknown as Auth,
    logs: undefined as unknown as CapturedLogs,
    metrics: undefined as unknown as Metrics,
    /** When the test began: the lower bound of its `date=ge…` searches. */
    since: '',
    /** Every /audit body the test received, for the "no PHI" checks. */
    served: [] as string[],
    /** An agent sending a token of `user`'s, from a login over HTTP (recorded as `login`). */
    as: async (user: DemoUser) => {
      const res = await request(ctx.app)
        .post(`${API}/auth/login`)
        .send({ email: user.email, password: user.password })
        .expect(200);
      const token = (res.body as { data: { access_token: string } }).data.access_token;
      return request.agent(ctx.app).set('Authorization', `Bearer ${token}`);
    },
    /** `GET /audit?<query>` as the auditor, once everything recorded so far is written. */
    auditor: async (query: string, expected = 200): Promise<Response> => {
      await ctx.trail.flush();
      const agent = await ctx.as(DEMO_AUDITOR);
      const res = await agent.get(`${API}/audit?${query}`).expect(expected);
      ctx.served.push(res.text);
      return res;
    },
  };
  beforeEach(() => {
    const db = database.db();
    ctx.since = new Date().toISOString();
    ctx.served = [];
    ctx.logs = captureLogs(settings);
    ctx.metrics = createMetrics({ settings });
    ctx.auth = serviceAuth({
      db,
      settings,
      logger: ctx.logs.createLogger('auth'),
      metrics: ctx.metrics,
    });
    ctx.trail = audit({
      db,
      auth: ctx.auth,
      settings,
      logger: ctx.logs.createLogger('audit'),
      metrics: ctx.metrics,
    });
    ctx.app = createApp({
      express,
      settings,
      db,
      auth: ctx.auth,
      audit: ctx.trail,
      metrics: ctx.metrics,
      createLogger: ctx.logs.createLogger,
      passwordHash: TEST_PASSWORD_HASH,
      labs: workingLabs,
    });
  });
  afterEach(async () => {
    await ctx.trail.close();
    await ctx.auth.close();
  });
  return ctx;
}

describe.each(EXPRESS)('examples/health-service audit trail on $name', ({ express, major }) => {
  describe.each(DIALECTS)('with $name', ({ dialect }) => {
    const database = useServiceDatabase(dialect, `ex_audit${major}`, settings);
    const ctx = useAuditedApp(express, database);

    test("a provider's create, read, filtered list and update of a patient, and another provider's probe, are that patient's trail as FHIR AuditEvents", async () => {
      const lee = await ctx.as(LEE);
      const created = await lee.post(`${API}/patients`).send(PHI).expect(201);
      const id = (created.body as { data: { id: string } }).data.id;
      await lee.get(`${API}/patients/${id}`).expect(200);
      const listed = await lee
        .get(`${API}/patients`)
        .query({ family_name: PHI.family_name, 'birth_date[gte]': '1980-01-01' })
        .expect(200);
      expect((listed.body as { data: { id: string }[] }).data.map((p) => p.id)).toEqual([id]);
      await lee
        .patch(`${API}/patients/${id}`)
        .set('If-Match', '1')
        .send({ given_name: NEW_GIVEN_NAME, status: 'inactive' })
        .expect(200);
      // Dr. Shah is not this patient's provider: a 404, and a read that failed, on the record's trail.
      await (await ctx.as(SHAH)).get(`${API}/patients/${id}`).expect(404);

      const res = await ctx.auditor(`patient=Patient/${id}`);
      expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
      expect(res.body).toMatchObject({ resourceType: 'Bundle', type: 'searchset' });
      const events = resourcesOf(res);
      // Exactly those accesses, newest first: nothing else touched this patient.
      expect(events.map(summary)).toEqual([
        { action: 'R', interaction: 'read', outcome: '8', agent: SHAH.id },
        { action: 'U', interaction: 'update', outcome: '0', agent: LEE.id },
        { action: 'E', interaction: 'search-type', outcome: '0', agent: LEE.id },
        { action: 'R', interaction: 'read', outcome: '0', agent: LEE.id },
        { action: 'C', interaction: 'create', outcome: '0', agent: LEE.id },
      ]);
      for (const event of events) {
        expect(event.resourceType).toBe('AuditEvent');
        expect(referencesOf(event)).toEqual([`Patient/${id}`]);
        expect(event.entity[0]?.role).toMatchObject({ code: '1', display: 'Patient' });
        expect(event.agent[0]).toMatchObject({ requestor: true });
        expect(Date.parse(event.recorded)).toBeGreaterThanOrEqual(Date.parse(ctx.since));
        expect(event.source.observer.display).toBe(settings.appName);
      }
      const [probe, update, search, read, create] = events as [
        AuditEventResource,
        AuditEventResource,
        AuditEventResource,
        AuditEventResource,
        AuditEventResource,
      ];
      expect(probe.outcomeDesc).toBe('reason=not_found');
      expect(probe.agent[0]?.role).toEqual([{ text: 'provider' }]);
      expect(create.agent[0]?.role).toEqual([{ text: 'provider' }]);
      // The search names the fields it filtered on and how many rows it returned — never the values.
      const query = search.entity.find((x) => x.role?.code === '24');
      expect(query?.what).toEqual({ type: 'Patient' });
      expect(query?.detail).toEqual([
        { type: 'filter_fields', valueString: 'family_name,birth_date' },
        { type: 'count', valueString: '1' },
      ]);
      expect([read, update, create].map((e) => e.outcomeDesc)).toEqual([undefined, undefined, undefined]);

      // One event by id, the same resource; reading the trail is itself recorded.
      const one = await (await ctx.as(DEMO_AUDITOR)).get(`${API}/audit/${read.id}`).expect(200);
      ctx.served.push(one.text);
      expect(one.body).toEqual(read);
      const reads = resourcesOf(
        await ctx.auditor(`entity-type=AuditEvent&agent=${DEMO_AUDITOR.id}&date=ge${ctx.since}`),
      );
      expect(reads.map((e) => e.subtype[0]?.code)).toEqual(['read', 'search-type']);
      // The provider's login is on record too (with no patient).
      const logins = resourcesOf(await ctx.auditor(`agent=${LEE.id}&action=login&date=ge${ctx.since}`));
      expect(logins.map((e) => [e.type.code, e.subtype[0]?.code, e.outcome])).toEqual([
        ['110114', '110122', '0'],
      ]);
    });

    test('refused requests are access-denied events; only auditors and admins read the trail', async () => {
      const arjun = await ctx.as(ARJUN);
      await arjun.post(`${API}/patients`).send({}).expect(403); // patients may not create patients
      await arjun.get(`${API}/audit`).expect(403);
      const lee = await ctx.as(LEE);
      await lee
        .get(`${API}/audit`)
        .query({ patient: `Patient/${LEES_PATIENT.id}` })
        .expect(403);
      const auditor = await ctx.as(DEMO_AUDITOR);
      // Separation of duties: the auditor reads the trail, never a record.
      await auditor.get(`${API}/patients/${LEES_PATIENT.id}`).expect(403);
      await request(ctx.app).get(`${API}/audit`).expect(401);
      // The administrator may read the trail.
      const admin = await ctx.as(DEMO_ADMIN);
      const adminView = await admin.get(`${API}/audit`).query({ action: 'access-denied' }).expect(200);
      ctx.served.push(adminView.text);

      const res = await ctx.auditor(`action=access-denied&date=ge${ctx.since}`);
      const denied = resourcesOf(res);
      expect(
        denied.map((e) => ({
          agent: agentOf(e) ?? e.agent[0]?.who.display,
          status: /status=(\d+)/.exec(e.outcomeDesc ?? '')?.[1],
          method: /method=(\w+)/.exec(e.outcomeDesc ?? '')?.[1],
        })),
      ).toEqual([
        { agent: 'anonymous', status: '401', method: 'GET' },
        { agent: DEMO_AUDITOR.id, status: '403', method: 'GET' },
        { agent: LEE.id, status: '403', method: 'GET' },
        { agent: ARJUN.id, status: '403', method: 'GET' },
        { agent: ARJUN.id, status: '403', method: 'POST' },
      ]);
      for (const e of denied) {
        expect(e.type).toMatchObject({ code: '110113', display: 'Security Alert' });
        expect(e.action).toBe('E');
        expect(e.outcome).toBe('4');
      }
      expect(denied[4]?.outcomeDesc).toBe(`reason=forbidden; status=403; method=POST; route=${API}/patients`);
      expect(denied[1]?.outcomeDesc).toContain('reason=forbidden');
      // Refused by authenticate(): recorded from the Auth's event, with its precise reason.
      expect(denied[0]?.outcomeDesc).toContain('reason=missing');
      // Nobody refused reached a record: no read, search or write of Dr. Lee's patient.
      expect(
        resourcesOf(await ctx.auditor(`patient=Patient/${LEES_PATIENT.id}&date=ge${ctx.since}`)),
      ).toEqual([]);
    });

    test('no name, birth date or MRN in any stored audit row or /audit answer; the chain verifies', async () => {
      const lee = await ctx.as(LEE);
      const created = await lee.post(`${API}/patients`).send(PHI).expect(201);
      const id = (created.body as { data: { id: string } }).data.id;
      await lee
        .get(`${API}/patients`)
        .query({ 'given_name[ilike]': PHI.given_name.slice(0, 6) })
        .expect(200);
      await lee.get(`${API}/patients`).query({ mrn: PHI.mrn, birth_date: PHI.birth_date }).expect(200);
      await lee.get(`${API}/patients/${id}`).expect(200);
      await lee
        .patch(`${API}/patients/${id}`)
        .set('If-Match', '1')
        .send({ given_name: NEW_GIVEN_NAME })
        .expect(200);
      // A rejected body that carries the values is refused, and recorded without them.
      await lee
        .post(`${API}/patients`)
        .send({ ...PHI, birth_date: '2999-01-01' })
        .expect(422);
      // A patient probing the record: a 404, recorded with the id only.
      const { mrn: _mrn, ...names } = PHI;
      await (await ctx.as(ARJUN)).patch(`${API}/patients/${id}`).set('If-Match', '2').send(names).expect(404);

      await ctx.auditor(`patient=Patient/${id}`);
      await ctx.auditor(`agent=${LEE.id}&_count=1000`);
      await ctx.auditor('_count=1000');
      await ctx.trail.flush();

      const db = database.db();
      const rows = (await db.knex('audit_events').select('*')) as Record<string, unknown>[];
      expect(rows.length).toBeGreaterThan(0);
      const stored = JSON.stringify(rows);
      const served = ctx.served.join('\n');
      for (const value of PHI_VALUES) {
        expect({ value, stored: stored.includes(value) }).toEqual({ value, stored: false });
        expect({ value, served: served.includes(value) }).toEqual({ value, served: false });
      }
      // The trail's own operational log has nothing to say, and nothing identifying either.
      expect(ctx.logs.lines.filter((l) => l.logger === 'audit')).toEqual([]);

      const verified = await verifyAuditChain(db);
      expect(verified).toEqual({ ok: true, checked: rows.length, brokenAt: null });
      expect(await ctx.trail.verify()).toEqual(verified);
      expect(ctx.trail.stats()).toMatchObject({ dropped: 0, rejected: 0, failing: false, buffered: 0 });
    });
  });

  describe('on SQLite only', () => {
    const database = useServiceDatabase('sqlite', `ex_audit_sqlite${major}`, settings);
    const ctx = useAuditedApp(express, database);

    test("lab results are recorded by the route as a search of the patient's Observations", async () => {
      const admin = await ctx.as(DEMO_ADMIN);
      const res = await admin.get(`${API}/patients/${LEES_PATIENT.id}/lab-results`).expect(200);
      expect((res.body as { data: unknown[] }).data).toHaveLength(2);
      const events = resourcesOf(await ctx.auditor(`patient=Patient/${LEES_PATIENT.id}&date=ge${ctx.since}`));
      expect(events.map(summary)).toEqual([
        { action: 'E', interaction: 'search-type', outcome: '0', agent: DEMO_ADMIN.id },
        { action: 'R', interaction: 'read', outcome: '0', agent: DEMO_ADMIN.id },
      ]);
      const [labs] = events as [AuditEventResource];
      expect(labs.entity.find((x) => x.role?.code === '24')).toMatchObject({
        what: { type: 'Observation' },
        detail: [{ type: 'count', valueString: '2' }],
      });
      expect(labs.outcomeDesc).toBe('source=labs');
    });

    test("reading or creating a patient's login is in that patient's trail", async () => {
      const admin = await ctx.as(DEMO_ADMIN);
      await admin.get(`${API}/users/${ARJUN.id}`).expect(200);
      // An unassigned patient without a login yet.
      const record = SEED_PATIENTS.find(
        (p) => p.provider_id === null && !DEMO_PATIENTS.some((u) => u.patient_id === p.id),
      )!;
      const created = await admin
        .post(`${API}/users`)
        .send({
          email: 'audited.login@clinic.example',
          password: 'a-long-enough-password',
          name: 'Audited Login',
          roles: ['patient'],
          patient_id: record.id,
        })
        .expect(201);
      const userId = (created.body as { data: { id: string } }).data.id;

      const arjuns = resourcesOf(
        await ctx.auditor(`patient=Patient/${ARJUN.patient_id}&date=ge${ctx.since}`),
      );
      expect(arjuns.map((e) => [e.action, agentOf(e), referencesOf(e)])).toEqual([
        ['R', DEMO_ADMIN.id, [`Patient/${ARJUN.patient_id}`, `User/${ARJUN.id}`]],
      ]);
      const theirs = resourcesOf(await ctx.auditor(`patient=Patient/${record.id}&date=ge${ctx.since}`));
      expect(theirs.map((e) => [e.action, agentOf(e), referencesOf(e)])).toEqual([
        ['C', DEMO_ADMIN.id, [`Patient/${record.id}`, `User/${userId}`]],
      ]);
    });
  });
});

describe('start() and stop()', () => {
  let dir: string;
  let started: Started | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'caduceus-audit-'));
  });
  afterEach(async () => {
    await started?.stop();
    started = undefined;
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('the trail is migrated at start, and what it still buffers is written before the database closes', async () => {
    const url = `sqlite:${join(dir, 'audit.db')}`;
    started = await start({ NODE_ENV: 'test', LOG_LEVEL: 'error', PORT: '0', DATABASE_URL: url });
    const login = await request(started.server)
      .post(`${API}/auth/login`)
      .send({ email: LEE.email, password: LEE.password })
      .expect(200);
    const token = (login.body as { data: { access_token: string } }).data.access_token;
    await request(started.server)
      .get(`${API}/patients/${LEES_PATIENT.id}`)
      .set('Authorization', `Bearer ${token}`)
      .expect(200);
    // Stopped at once: the read is still in the trail's buffer (written every 100 ms).
    await started.stop();
    started = undefined;

    const db = createDatabase({
      url,
      settings,
      logger: createLogger('database', { settings, console: false }),
    });
    try {
      const rows: unknown[] = await db
        .knex('audit_events')
        .where({ patient_id: LEES_PATIENT.id })
        .select('action', 'outcome', 'actor_id', 'resource_type');
      expect(rows).toEqual([
        { action: 'read', outcome: 'success', actor_id: LEE.id, resource_type: 'Patient' },
      ]);
      expect(await verifyAuditChain(db)).toMatchObject({ ok: true, brokenAt: null });
    } finally {
      await db.close();
    }
  });
});
