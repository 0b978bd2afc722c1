/**
 * `core.auditEventsRouter({ trail })`: the trail as FHIR R4 AuditEvents, for auditors only, on
 * Express 4 and 5 (SQLite) and PostgreSQL. Events come from real requests through audited
 * repositories, `requireRoles()` denials and the router's own reads.
 */
import type { ErrorRequestHandler, Express } from 'express';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import request from 'supertest';
import * as core from '../../lib/index';
import { dialectDatabase, type DialectFixture, type DialectName } from '../support/dialects';
import { EXPRESS, eachExpress, type ExpressVariant } from '../support/express';
import { captureLogger } from '../support/logs';

const SETTINGS = core.loadSettings({ NODE_ENV: 'test', APP_NAME: 'caduceus-test', LOG_LEVEL: 'ERROR' });
const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const OBSERVER = 'audit-router-test';

type Trail = core.AuditTrail;
type Json = Record<string, unknown>;

/** Every element an R4 AuditEvent may have (R5 renamed and added several: they must not appear). */
const R4_AUDIT_EVENT_ELEMENTS = new Set([
  'resourceType',
  'id',
  'meta',
  'implicitRules',
  'language',
  'text',
  'contained',
  'extension',
  'modifierExtension',
  'type',
  'subtype',
  'action',
  'period',
  'recorded',
  'outcome',
  'outcomeDesc',
  'purposeOfEvent',
  'agent',
  'source',
  'entity',
]);
const ACTION_CODES: Record<string, string> = {
  read: 'R',
  create: 'C',
  update: 'U',
  delete: 'D',
  search: 'E',
};
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

interface Patient {
  id: number;
  name: string;
}

class PatientRepository extends core.BaseRepository<Patient> {
  constructor(db: core.Database, trail: Trail) {
    super(db, {
      table: 'patients',
      resource: 'Patient',
      timestamps: false,
      types: { id: 'integer' },
      audit: { trail, resourceType: 'Patient', patientIdColumn: 'id' },
    });
  }
}

interface World {
  fixture: DialectFixture;
  db: core.Database;
  trail: Trail;
  auth: core.Auth;
  /** The application whose requests fill the trail. */
  api: Express;
  /** `/audit` → the router. */
  app: Express;
  tokens: { drA: string; drB: string; auditor: string; admin: string };
  /** Between the two phases of seeded events. */
  split: string;
  phase1: number;
  phase2: number;
  close(): Promise<void>;
}

async function world(dialect: DialectName, variant: ExpressVariant, prefix: string): Promise<World> {
  const { express } = variant;
  const fixture = await dialectDatabase(dialect, prefix);
  const db = fixture.db;
  await db.knex.schema.createTable('patients', (t) => {
    t.increments('id');
    t.string('name', 64).notNullable();
  });
  await db.knex('patients').insert([{ name: 'one' }, { name: 'two' }, { name: 'three' }]);
  const trail = core.audit({
    db,
    source: OBSERVER,
    flushIntervalMs: 10,
    logger: captureLogger('audit').logger,
    metrics: false,
    settings: SETTINGS,
  });
  await trail.migrate();
  const auth = core.createAuth({ settings: SETTINGS, secret: SECRET, redis: false, metrics: false });
  const patients = new PatientRepository(db, trail);
  const errors = (): ErrorRequestHandler =>
    core.errors({ settings: SETTINGS, logger: captureLogger('errors').logger });

  const api = express();
  api.use(express.json(), core.requestContext());
  api.use('/api', core.authenticate({ auth }), trail.middleware());
  api.get(
    '/api/patients',
    core.asyncHandler(async (_req, res) => {
      res.json(await patients.list({ withTotal: false }));
    }),
  );
  api.get(
    '/api/patients/:id',
    core.asyncHandler(async (req, res) => {
      res.json(await patients.getById(Number(req.params.id)));
    }),
  );
  api.post(
    '/api/patients',
    core.asyncHandler(async (req, res) => {
      res.status(201).json(await patients.create(req.body as Partial<Patient>));
    }),
  );
  api.patch(
    '/api/patients/:id',
    core.asyncHandler(async (req, res) => {
      res.json(await patients.update(Number(req.params.id), req.body as Partial<Patient>));
    }),
  );
  api.delete(
    '/api/patients/:id',
    core.asyncHandler(async (req, res) => {
      await patients.delete(Number(req.params.id));
      res.status(204).end();
    }),
  );
  api.get('/api/admin', core.requireRoles('admin'), (_req, res) => {
    res.json({ ok: true });
  });
  api.use(core.notFound(), errors());

  const app = express();
  app.use(core.requestContext());
  app.use('/audit', core.authenticate({ auth }), core.auditEventsRouter({ trail }));
  app.use(core.notFound(), errors());

  const tokens = {
    drA: auth.createTokens({ userId: 'dr-a', roles: ['clinician'] }).access_token,
    drB: auth.createTokens({ userId: 'dr-b', roles: ['clinician'] }).access_token,
    auditor: auth.createTokens({ userId: 'auditor-1', roles: ['auditor'] }).access_token,
    admin: auth.createTokens({ userId: 'admin-1', roles: ['admin'] }).access_token,
  };
  const as =
    (token: string): ((r: request.Test) => request.Test) =>
    (r) =>
      r.set('Authorization', `Bearer ${token}`);
  const a = as(tokens.drA);
  const b = as(tokens.drB);
  // Phase 1: dr-a reads patients 1 and 2 and searches; dr-b creates one and is refused the admin page.
  expect((await a(request(api).get('/api/patients/1'))).status).toBe(200);
  expect((await a(request(api).get('/api/patients/2'))).status).toBe(200);
  expect((await a(request(api).get('/api/patients'))).status).toBe(200);
  expect((await b(request(api).post('/api/patients').send({ name: 'four' }))).status).toBe(201);
  expect((await b(request(api).get('/api/admin'))).status).toBe(403);
  await trail.flush();
  const phase1 = 5;
  await sleep(20);
  const split = new Date().toISOString();
  await sleep(20);
  // Phase 2: dr-b updates patient 1 and deletes patient 3; dr-a reads a patient that does not exist.
  expect((await b(request(api).patch('/api/patients/1').send({ name: 'uno' }))).status).toBe(200);
  expect((await b(request(api).delete('/api/patients/3'))).status).toBe(204);
  expect((await a(request(api).get('/api/patients/999'))).status).toBe(404);
  await trail.flush();
  const phase2 = 3;

  return {
    fixture,
    db,
    trail,
    auth,
    api,
    app,
    tokens,
    split,
    phase1,
    phase2,
    async close() {
      await trail.close();
      await auth.close();
      await fixture.close();
    },
  };
}

/** GET as the auditor, as someone else, or (`null`) with no token at all. */
function get(w: World, path: string, token: string | null = w.tokens.auditor): request.Test {
  const r = request(w.app).get(path);
  return token === null ? r : r.set('Authorization', `Bearer ${token}`);
}

function resources(body: Json): Json[] {
  expect(body).toMatchObject({ resourceType: 'Bundle', type: 'searchset' });
  return ((body.entry ?? []) as { resource: Json }[]).map((e) => e.resource);
}

function nextQuery(body: Json): string | undefined {
  const next = ((body.link ?? []) as { relation: string; url: string }[]).find((l) => l.relation === 'next');
  if (next === undefined) return undefined;
  return new URL(next.url, 'http://localhost').search;
}

/** Every resource of the searchset, following `next` links. */
async function everything(w: World, query: string): Promise<{ events: Json[]; pages: number }> {
  const events: Json[] = [];
  let search: string | undefined = query;
  let pages = 0;
  while (search !== undefined) {
    const res = await get(w, `/audit${search}`);
    expect(res.status).toBe(200);
    events.push(...resources(res.body as Json));
    search = nextQuery(res.body as Json);
    pages += 1;
    if (pages > 50) throw new Error('the next links never end');
  }
  return { events, pages };
}

const mentions = (value: unknown, text: string): boolean => JSON.stringify(value).includes(text);

function entityReferences(event: Json): string[] {
  return ((event.entity ?? []) as { what?: { reference?: string } }[])
    .map((e) => e.what?.reference)
    .filter((r): r is string => r !== undefined);
}

/** A FHIR R4 AuditEvent as IHE BALP shapes one. */
function expectAuditEvent(event: Json): void {
  expect(Object.keys(event).filter((k) => !R4_AUDIT_EVENT_ELEMENTS.has(k))).toEqual([]);
  expect(event).toMatchObject({
    resourceType: 'AuditEvent',
    id: expect.any(String) as unknown,
    type: { system: expect.any(String) as unknown, code: expect.any(String) as unknown },
    recorded: expect.stringMatching(ISO_MS) as unknown,
  });
  expect(['C', 'R', 'U', 'D', 'E']).toContain(event.action);
  expect(['0', '4', '8', '12']).toContain(event.outcome);
  const agents = event.agent as Json[];
  expect(Array.isArray(agents) && agents.length >= 1).toBe(true);
  for (const agent of agents) {
    expect(agent.who).toBeDefined();
    expect(typeof agent.requestor).toBe('boolean');
  }
  expect(mentions((event.source as Json).observer, OBSERVER)).toBe(true);
}

/** Read the audit table directly: what the trail wrote, independent of the router. */
async function rows(w: World, where: Record<string, string>): Promise<Json[]> {
  return (await w.db.knex('audit_events').where(where).select('*')) as Json[];
}

describe.each(eachExpress)('auditEventsRouter on %s (SQLite)', (_name, variant) => {
  let w: World;
  beforeAll(async () => {
    w = await world('sqlite', variant, 'aurouter');
  });
  afterAll(async () => {
    await w.close();
  });

  it('401 without a token, 401 with a bad one', async () => {
    const none = await get(w, '/audit', null);
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ success: false, error_code: expect.any(String) as unknown });
    expect((await get(w, '/audit', 'not.a.token')).status).toBe(401);
  });

  it('403 without the auditor or admin role, and the denial is itself audited', async () => {
    const res = await get(w, '/audit', w.tokens.drA);
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ success: false, error_code: 'FORBIDDEN' });
    await w.trail.flush();
    const denied = await rows(w, { request_id: String(res.headers['x-request-id']) });
    expect(denied).toEqual([
      expect.objectContaining({ action: 'access-denied', outcome: 'denied', actor_id: 'dr-a' }),
    ]);
    // The admin role may read.
    expect((await get(w, '/audit?_count=1', w.tokens.admin)).status).toBe(200);
  });

  it('a Bundle of FHIR R4 AuditEvents shaped after BALP, as application/fhir+json', async () => {
    const res = await get(w, '/audit?entity-type=Patient&_count=100');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    const events = resources(res.body as Json);
    expect(events.length).toBe(w.phase1 + w.phase2 - 1); // the 403 on /api/admin touched no Patient
    events.forEach(expectAuditEvent);
    // Newest first.
    const recorded = events.map((e) => String(e.recorded));
    expect([...recorded].sort().reverse()).toEqual(recorded);

    const readOf1 = events.find((e) => e.action === 'R' && entityReferences(e).includes('Patient/1'));
    expect(readOf1).toBeDefined();
    expect(readOf1).toMatchObject({
      outcome: '0',
      type: { code: 'rest' },
      subtype: [expect.objectContaining({ code: 'read' })],
    });
    expect(mentions(readOf1?.agent, 'dr-a')).toBe(true);
    const patientEntity = (readOf1?.entity as Json[]).find((e) => mentions(e.what, 'Patient/1'));
    expect(patientEntity).toMatchObject({ role: { code: expect.any(String) as unknown } });

    for (const [action, code] of Object.entries(ACTION_CODES)) {
      const found = events.filter((e) => e.action === code && mentions(e.subtype, action));
      expect([action, found.length > 0]).toEqual([action, true]);
    }
    // The read of a row that does not exist: a failure, not a success.
    const missing = events.find((e) => mentions(e.entity, 'Patient/999') || mentions(e.entity, '"999"'));
    expect(missing).toBeDefined();
    expect(missing?.outcome).not.toBe('0');
  });

  it('filters: patient (with or without Patient/), agent, action, entity-type', async () => {
    const byRef = (await everything(w, '?patient=Patient/1&entity-type=Patient&_count=100')).events;
    const byId = (await everything(w, '?patient=1&entity-type=Patient&_count=100')).events;
    expect(byId.map((e) => e.id)).toEqual(byRef.map((e) => e.id));
    // Read and update of patient 1, and dr-a's search whose page returned patient 1.
    expect(byRef.map((e) => e.action).sort()).toEqual(['E', 'R', 'U']);
    for (const e of byRef) expect(mentions(e.entity, 'Patient/1')).toBe(true);

    const drB = (await everything(w, '?agent=dr-b&entity-type=Patient&_count=100')).events;
    expect(drB.map((e) => e.action).sort()).toEqual(['C', 'D', 'U']);
    for (const e of drB) expect(mentions(e.agent, 'dr-b')).toBe(true);

    const reads = (await everything(w, '?action=read&entity-type=Patient&_count=100')).events;
    expect(reads.length).toBe(3);
    for (const e of reads) expect(e.action).toBe('R');

    const denials = (await everything(w, '?action=access-denied&agent=dr-b')).events;
    expect(denials.length).toBe(1);
    expect(denials[0]?.outcome).not.toBe('0');
  });

  it('date ge/lt split the trail; _count pages through _cursor without loss or repeat', async () => {
    const after = (await everything(w, `?entity-type=Patient&date=ge${w.split}`)).events;
    const before = (await everything(w, `?entity-type=Patient&date=lt${w.split}`)).events;
    expect([after.length, before.length]).toEqual([w.phase2, w.phase1 - 1]);
    for (const e of after) expect(String(e.recorded) >= w.split).toBe(true);
    for (const e of before) expect(String(e.recorded) < w.split).toBe(true);
    const day = (offset: number): string =>
      new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
    expect(
      (await everything(w, `?entity-type=Patient&date=ge${day(-1)}&date=lt${day(1)}`)).events.length,
    ).toBe(w.phase1 + w.phase2 - 1);
    expect((await everything(w, `?entity-type=Patient&date=ge${day(1)}`)).events).toEqual([]);

    const all = (await everything(w, '?entity-type=Patient&_count=100')).events.map((e) => e.id);
    const paged = await everything(w, '?entity-type=Patient&_count=2');
    expect(paged.pages).toBe(Math.ceil(all.length / 2));
    expect(paged.events.map((e) => e.id)).toEqual(all);
  });

  it.each([
    ['date=garbage'],
    ['date=ge2026-13-45'],
    ['date=xx2026-01-01'],
    ['date=ge2026-02-30'],
    ['date=ge2026-01-01&date=lt2026-02-01&date=gt2026-01-02'],
    ['_count=-1'],
    ['_count=0'],
    ['_count=abc'],
    ['_count=100000'],
    ['action=frobnicate'],
    ['outcome=maybe'],
    ['_cursor=not-a-cursor'],
  ])('?%s → 400 in our envelope (OperationOutcome when asked for FHIR), never 500', async (query) => {
    const res = await get(w, `/audit?${query}`);
    expect(res.status).toBe(400);
    // The envelope names the parameter at fault.
    const param = query.split('=')[0] ?? '';
    expect(res.body).toMatchObject({
      success: false,
      error_code: 'VALIDATION_ERROR',
      details: { field_errors: { [param]: expect.any(String) as unknown } },
    });
    const fhir = await get(w, `/audit?${query}`).set('Accept', 'application/fhir+json');
    expect(fhir.status).toBe(400);
    expect(fhir.body).toMatchObject({ resourceType: 'OperationOutcome' });
    expect((fhir.body as { issue: unknown }).issue).toEqual(
      expect.arrayContaining([expect.objectContaining({ severity: 'error', expression: [param] })]),
    );
  });

  // A hostile value is the client's error, whatever it is: a 4xx in our envelope, never a 5xx.
  it('hostile query values (property): 200 or a 4xx in our envelope, never 5xx', async () => {
    const keys = ['patient', 'agent', 'action', 'outcome', 'entity-type', 'date', '_count', '_cursor'];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...keys),
        fc.oneof(
          fc.string(),
          fc.integer().map(String),
          fc.constantFrom('ge', 'lt2026', 'Patient/', '%00', '[]'),
        ),
        async (key, value) => {
          const res = await get(w, `/audit?${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
          if (res.status !== 200) {
            expect({ key, value, status: res.status >= 400 && res.status < 500 }).toEqual({
              key,
              value,
              status: true,
            });
            expect(res.body).toMatchObject({ success: false, error_code: expect.any(String) as unknown });
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reading the trail is itself recorded: search and read on AuditEvent', async () => {
    const search = await get(w, '/audit?patient=2');
    expect(search.status).toBe(200);
    const one = resources(search.body as Json)[0];
    expect(one).toBeDefined();
    const id = String(one?.id);
    const read = await get(w, `/audit/${id}`);
    expect(read.status).toBe(200);
    expect(read.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(read.body).toEqual(one);
    await w.trail.flush();
    expect(await rows(w, { request_id: String(search.headers['x-request-id']) })).toEqual([
      expect.objectContaining({
        action: 'search',
        resource_type: 'AuditEvent',
        actor_id: 'auditor-1',
        outcome: 'success',
      }),
    ]);
    expect(await rows(w, { request_id: String(read.headers['x-request-id']) })).toEqual([
      expect.objectContaining({
        action: 'read',
        resource_type: 'AuditEvent',
        resource_id: id,
        actor_id: 'auditor-1',
        outcome: 'success',
      }),
    ]);
  });

  it('GET /:id of an unknown event → 404; a malformed id → 404 or 400, never 500', async () => {
    const unknown = await get(w, '/audit/3f1c6a4e-9d0b-4b1e-8c55-2a7d1f0e9b77');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ success: false, error_code: 'NOT_FOUND' });
    for (const id of ['not-an-id', '1%27%20OR%201%3D1', 'x'.repeat(300)]) {
      expect([400, 404]).toContain((await get(w, `/audit/${id}`)).status);
    }
  });
});

describe('auditEventsRouter on PostgreSQL (Express 5)', () => {
  let w: World;
  beforeAll(async () => {
    w = await world('postgres', EXPRESS[1] as ExpressVariant, 'aurouterpg');
  });
  afterAll(async () => {
    await w.close();
  });

  it('the Bundle, patient and date filters and _cursor paging', async () => {
    const all = await everything(w, '?entity-type=Patient&_count=100');
    expect(all.events.length).toBe(w.phase1 + w.phase2 - 1);
    all.events.forEach(expectAuditEvent);
    const paged = await everything(w, '?entity-type=Patient&_count=3');
    expect(paged.events.map((e) => e.id)).toEqual(all.events.map((e) => e.id));
    expect(paged.pages).toBe(Math.ceil(all.events.length / 3));
    const patient1 = (await everything(w, '?patient=Patient/1&entity-type=Patient')).events;
    expect(patient1.map((e) => e.action).sort()).toEqual(['E', 'R', 'U']);
    const after = (await everything(w, `?entity-type=Patient&date=ge${w.split}`)).events;
    expect(after.length).toBe(w.phase2);
    expect((await get(w, '/audit?date=garbage')).status).toBe(400);
  });
});
