/**
 * The audit trail end to end, on PostgreSQL, SQLite and MariaDB, through real Express 4 and 5 apps:
 * requestContext() → trail.middleware() → authenticate() with a real createAuth() → routes over
 * audited repositories → errors(). Each request carries its own X-Request-Id, so "exactly one
 * event" is counted among the stored rows of that request only.
 */
import { randomBytes } from 'node:crypto';
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { DIALECTS, TEST_SETTINGS, useDialect } from '../support/dialects';
import { eachExpress, type ExpressVariant } from '../support/express';
import { testMetrics, valueOf } from '../support/metrics';
import {
  SECRET_DOB,
  SECRET_FAMILY,
  SECRET_MRN_PREFIX,
  SECRET_VALUE,
  type StoredEvent,
  createClinicalTables,
  makeTrail,
  observationRepository,
  patientRepository,
  seedPatients,
  silentLogger,
  storedEvents,
} from './trail-support';

const SECRET = 'an-audit-test-secret-that-is-long-enough-0123';
const CLIENT_IP = '203.0.113.9';
const USER_AGENT = 'caduceus-audit-test/1.0 (ward 7 terminal)';

interface Sent {
  requestId: string;
  traceId: string;
}

interface Call {
  method: 'get' | 'post' | 'patch' | 'delete';
  url: string;
  token?: string | undefined;
  purpose?: string | undefined;
  body?: object;
}

describe.each(DIALECTS)('audit trail on %s', (dialect) => {
  const fixture = useDialect(dialect, 'atrail');

  describe('with a real app', () => {
    let db: core.Database;
    let auth: core.Auth;
    let trail: core.AuditTrail;
    let metrics: core.Metrics;
    let patients: core.BaseRepository<import('./trail-support').Patient>;
    let observations: core.BaseRepository<import('./trail-support').Observation>;
    let seeded: { patientIds: number[]; observationIds: number[] };
    let sequence = 0;

    beforeAll(async () => {
      db = fixture().db;
      await createClinicalTables(db);
      auth = core.createAuth({
        secret: SECRET,
        settings: TEST_SETTINGS,
        redis: false,
        metrics: false,
        logger: silentLogger('auth'),
      });
      metrics = testMetrics();
      trail = makeTrail(db, { auth, metrics });
      await trail.migrate();
      patients = patientRepository(db, { trail });
      observations = observationRepository(db, { trail });
      // Seeded through repositories without the audit option: seeding records nothing.
      const plainPatients = await patientRepository(db).createMany(seedPatients(6, dialect));
      const plainObservations = await observationRepository(db).createMany(
        plainPatients.map((p) => ({ patient_id: p.id, code: '2345-7', value: SECRET_VALUE })),
      );
      seeded = {
        patientIds: plainPatients.map((p) => p.id),
        observationIds: plainObservations.map((o) => o.id),
      };
    });

    afterAll(async () => {
      await trail.close();
      await auth.close();
    });

    it('seeding through unaudited repositories recorded nothing', async () => {
      await trail.flush();
      expect(await storedEvents(db)).toEqual([]);
    });

    function token(userId: string, roles: readonly string[]): string {
      return auth.createTokens({ userId, roles }).access_token;
    }

    /**
     * `trail-first` mounts trail.middleware() before authenticate(), so 401s of authenticate() pass
     * it; `quick-start` is the order docs/audit.md shows: authenticate(), then trail.middleware().
     */
    function makeApp(variant: ExpressVariant, order: 'trail-first' | 'quick-start' = 'trail-first'): Express {
      const app = variant.express();
      app.set('trust proxy', 'loopback');
      app.use(core.requestContext());
      app.use(variant.express.json());

      // Logins and logouts: outside trail.middleware(), recorded through the `auth` option.
      app.post('/login', (req, res) => {
        const { userId, roles } = req.body as { userId: string; roles: string[] };
        res.json(auth.createTokens({ userId, roles }));
      });
      app.post('/login-failed', (_req, res) => {
        auth.recordLoginFailure();
        res.status(401).json({ error: 'invalid credentials' });
      });
      app.post(
        '/logout',
        auth.authenticate(),
        core.asyncHandler(async (req, res) => {
          await auth.revokeToken(req.user!);
          res.status(204).end();
        }),
      );

      const api = variant.express.Router();
      api.get(
        '/patients',
        core.asyncHandler(async (req, res) => {
          res.json(await patients.list(core.parseListQuery(req.query, patients)));
        }),
      );
      api.get(
        '/patients/:id',
        core.asyncHandler(async (req, res) => {
          res.json(await patients.getById(Number(req.params.id)));
        }),
      );
      api.post('/patients/:id/export', (req, res) => {
        const id = req.params.id;
        req.audit({ action: 'export', resourceType: 'Patient', resourceId: id, patientId: id });
        res.status(202).json({ exporting: id });
      });
      api.get(
        '/observations',
        core.asyncHandler(async (req, res) => {
          res.json(await observations.list(core.parseListQuery(req.query, observations)));
        }),
      );
      api.post(
        '/observations',
        core.asyncHandler(async (req, res) => {
          res
            .status(201)
            .json(await observations.create(req.body as import('./trail-support').ObservationCreate));
        }),
      );
      api.patch(
        '/observations/:id',
        core.asyncHandler(async (req, res) => {
          res.json(await observations.update(Number(req.params.id), req.body as { value: string }));
        }),
      );
      api.delete(
        '/observations/:id',
        core.asyncHandler(async (req, res) => {
          await observations.delete(Number(req.params.id));
          res.status(204).end();
        }),
      );
      api.get(
        '/unaudited/patients/:id',
        core.asyncHandler(async (req, res) => {
          res.json(await patientRepository(db).getById(Number(req.params.id)));
        }),
      );
      api.get('/admin', core.requireRoles('admin'), (_req, res) => {
        res.json({ ok: true });
      });
      api.get('/consent/:id', () => {
        throw new core.ForbiddenError('No consent on file');
      });

      if (order === 'trail-first') app.use('/api', trail.middleware(), auth.authenticate(), api);
      else app.use('/api', auth.authenticate(), trail.middleware(), api);
      app.use(core.notFound());
      app.use(core.errors({ settings: TEST_SETTINGS, logger: silentLogger('errors') }));
      return app;
    }

    describe.each(eachExpress)('on %s', (_name, variant) => {
      let app: Express;
      const clinician = { id: `dr-${dialect}-${variant.major}`, roles: ['clinician', 'nurse'] };
      let clinicianToken: string;

      beforeAll(() => {
        app = makeApp(variant);
        clinicianToken = token(clinician.id, clinician.roles);
      });

      /** Send one request with its own request id and trace, from a proxied client. */
      async function send(call: Call): Promise<{ res: request.Response; sent: Sent }> {
        sequence += 1;
        const sent = {
          requestId: `audit-${dialect}-${variant.major}-${sequence}`,
          traceId: randomBytes(16).toString('hex'),
        };
        let req = request(app)
          [call.method](call.url)
          .set('X-Request-Id', sent.requestId)
          .set('traceparent', `00-${sent.traceId}-${randomBytes(8).toString('hex')}-01`)
          .set('X-Forwarded-For', CLIENT_IP)
          .set('User-Agent', USER_AGENT);
        if (call.token !== undefined) req = req.set('Authorization', `Bearer ${call.token}`);
        if (call.purpose !== undefined) req = req.set('X-Purpose-Of-Use', call.purpose);
        const res = call.body === undefined ? await req : await req.send(call.body);
        return { res, sent };
      }

      /** The rows stored for one request, once everything queued so far is written. */
      async function eventsOf(sent: Sent): Promise<StoredEvent[]> {
        await trail.flush();
        return storedEvents(db, 'audit_events', { request_id: sent.requestId });
      }

      async function onlyEvent(sent: Sent): Promise<StoredEvent> {
        const events = await eventsOf(sent);
        expect(events.map((e) => `${e.action}/${e.outcome}`)).toHaveLength(1);
        return events[0]!;
      }

      /** The facts every event of an authenticated request carries. */
      function expectRequestFacts(event: StoredEvent, sent: Sent, purpose: string | null): void {
        expect(event).toMatchObject({
          request_id: sent.requestId,
          trace_id: sent.traceId,
          client_ip: CLIENT_IP,
          user_agent: USER_AGENT,
          purpose_of_use: purpose,
          actor_id: clinician.id,
          actor_type: 'user',
        });
        expect(event.actor_roles).toEqual(clinician.roles);
        expect(event.event_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        expect(event.recorded_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        expect(event.hash).toMatch(/^[0-9a-f]{64}$/);
      }

      it('a read by id: one read/success event naming the patient, the actor and the request', async () => {
        const id = seeded.patientIds[1]!;
        const before = Date.now();
        const { res, sent } = await send({
          method: 'get',
          url: `/api/patients/${id}`,
          token: clinicianToken,
          purpose: 'TREAT',
        });
        expect(res.status).toBe(200);
        const event = await onlyEvent(sent);
        expectRequestFacts(event, sent, 'TREAT');
        expect(event).toMatchObject({
          action: 'read',
          outcome: 'success',
          resource_type: 'Patient',
          resource_id: String(id),
          patient_id: String(id),
        });
        const at = Date.parse(event.recorded_at);
        expect(at).toBeGreaterThanOrEqual(before - 1);
        expect(at).toBeLessThanOrEqual(Date.now() + 1);
      });

      it('no X-Purpose-Of-Use header: purpose_of_use is null', async () => {
        const { res, sent } = await send({
          method: 'get',
          url: `/api/patients/${seeded.patientIds[0]!}`,
          token: clinicianToken,
        });
        expect(res.status).toBe(200);
        expect((await onlyEvent(sent)).purpose_of_use).toBeNull();
      });

      it('a read of a missing row: outcome error, details.reason not_found', async () => {
        const missing = Math.max(...seeded.patientIds) + 1000;
        const { res, sent } = await send({
          method: 'get',
          url: `/api/patients/${missing}`,
          token: clinicianToken,
          purpose: 'TREAT',
        });
        expect(res.status).toBe(404);
        const event = await onlyEvent(sent);
        expectRequestFacts(event, sent, 'TREAT');
        expect(event).toMatchObject({
          action: 'read',
          outcome: 'error',
          resource_type: 'Patient',
          resource_id: String(missing),
        });
        expect(event.details).toMatchObject({ reason: 'not_found' });
      });

      it('a search: filter field names (never values) and the patient ids of the page', async () => {
        const { res, sent } = await send({
          method: 'get',
          url: `/api/patients?family_name=${encodeURIComponent(SECRET_FAMILY)}`,
          token: clinicianToken,
          purpose: 'HPAYMT',
        });
        expect(res.status).toBe(200);
        const page = (res.body as { items: { id: number; family_name: string }[] }).items;
        expect(page.length).toBeGreaterThan(1);
        for (const p of page) expect(p.family_name).toBe(SECRET_FAMILY);

        const event = await onlyEvent(sent);
        expectRequestFacts(event, sent, 'HPAYMT');
        expect(event).toMatchObject({ action: 'search', outcome: 'success', resource_type: 'Patient' });
        expect(event.resource_id).toBeNull();
        expect(event.details?.filter_fields).toEqual(['family_name']);
        expect([...(event.patient_ids as string[])].sort()).toEqual(page.map((p) => String(p.id)).sort());
        const everything = JSON.stringify(event.raw);
        expect(everything).not.toContain(SECRET_FAMILY);
        expect(everything).not.toContain('Zebrowski');
      });

      it('a search of observations: the distinct patients of the page', async () => {
        const wanted = seeded.patientIds.slice(0, 3);
        const { res, sent } = await send({
          method: 'get',
          url: `/api/observations?patient_id[in]=${wanted.join(',')}&code=2345-7`,
          token: clinicianToken,
        });
        expect(res.status).toBe(200);
        const page = (res.body as { items: { patient_id: number }[] }).items;
        expect(page.length).toBeGreaterThanOrEqual(wanted.length);
        const event = await onlyEvent(sent);
        expect(event).toMatchObject({ action: 'search', outcome: 'success', resource_type: 'Observation' });
        expect([...(event.details?.filter_fields as string[])].sort()).toEqual(['code', 'patient_id']);
        const distinct = [...new Set(page.map((o) => String(o.patient_id)))].sort();
        expect([...(event.patient_ids as string[])].sort()).toEqual(distinct);
        expect(JSON.stringify(event.raw)).not.toContain(SECRET_VALUE);
      });

      it('create, update and delete of an observation: the patient id on every one, even the delete', async () => {
        const patientId = seeded.patientIds[2]!;
        const created = await send({
          method: 'post',
          url: '/api/observations',
          token: clinicianToken,
          purpose: 'TREAT',
          body: { patient_id: patientId, code: '718-7', value: SECRET_VALUE },
        });
        expect(created.res.status).toBe(201);
        const obsId = (created.res.body as { id: number }).id;
        const createEvent = await onlyEvent(created.sent);
        expectRequestFacts(createEvent, created.sent, 'TREAT');
        expect(createEvent).toMatchObject({
          action: 'create',
          outcome: 'success',
          resource_type: 'Observation',
          resource_id: String(obsId),
          patient_id: String(patientId),
        });

        const updated = await send({
          method: 'patch',
          url: `/api/observations/${obsId}`,
          token: clinicianToken,
          body: { value: `${SECRET_VALUE}-corrected` },
        });
        expect(updated.res.status).toBe(200);
        expect(await onlyEvent(updated.sent)).toMatchObject({
          action: 'update',
          outcome: 'success',
          resource_type: 'Observation',
          resource_id: String(obsId),
          patient_id: String(patientId),
        });

        const deleted = await send({
          method: 'delete',
          url: `/api/observations/${obsId}`,
          token: clinicianToken,
        });
        expect(deleted.res.status).toBe(204);
        // The row is gone: the patient id must have been read before the delete.
        expect(await db.knex('observations').where({ id: obsId }).first()).toBeUndefined();
        expect(await onlyEvent(deleted.sent)).toMatchObject({
          action: 'delete',
          outcome: 'success',
          resource_type: 'Observation',
          resource_id: String(obsId),
          patient_id: String(patientId),
        });
        for (const s of [created.sent, updated.sent, deleted.sent]) {
          expect(JSON.stringify((await eventsOf(s))[0]!.raw)).not.toContain(SECRET_VALUE);
        }
      });

      it('requireRoles() refusing: one access-denied/denied event with the actor', async () => {
        const { res, sent } = await send({
          method: 'get',
          url: '/api/admin',
          token: clinicianToken,
          purpose: 'TREAT',
        });
        expect(res.status).toBe(403);
        const event = await onlyEvent(sent);
        expectRequestFacts(event, sent, 'TREAT');
        expect(event).toMatchObject({ action: 'access-denied', outcome: 'denied' });
        expect(event.details).toMatchObject({ status: 403, method: 'GET', route: '/api/admin' });
      });

      it('no token: one access-denied event with actor_type anonymous and no actor id', async () => {
        const { res, sent } = await send({ method: 'get', url: `/api/patients/${seeded.patientIds[0]!}` });
        expect(res.status).toBe(401);
        const event = await onlyEvent(sent);
        expect(event).toMatchObject({
          action: 'access-denied',
          outcome: 'denied',
          actor_type: 'anonymous',
          actor_id: null,
          request_id: sent.requestId,
          trace_id: sent.traceId,
          client_ip: CLIENT_IP,
          user_agent: USER_AGENT,
        });
      });

      it('your own ForbiddenError in a route: one access-denied/denied event with the actor', async () => {
        const { res, sent } = await send({
          method: 'get',
          url: `/api/consent/${seeded.patientIds[0]!}`,
          token: clinicianToken,
        });
        expect(res.status).toBe(403);
        const event = await onlyEvent(sent);
        expectRequestFacts(event, sent, null);
        expect(event).toMatchObject({ action: 'access-denied', outcome: 'denied' });
        // The route template, never the URL with the patient's id in it.
        expect(event.details).toMatchObject({ status: 403, method: 'GET', route: '/api/consent/:id' });
      });

      it('authenticate() mounted before trail.middleware(): a refused token is still recorded, once', async () => {
        // docs/audit.md: "a refused token wherever authenticate() is mounted (access-denied, denied,
        // details.reason expired, bad_signature, revoked, …)".
        const outer = makeApp(variant, 'quick-start');
        const forged = `${clinicianToken.slice(0, -4)}AAAA`;
        for (const [i, bearer] of [undefined, forged].entries()) {
          const requestId = `outer-auth-${dialect}-${variant.major}-${i}`;
          let req = request(outer)
            .get(`/api/patients/${seeded.patientIds[0]!}`)
            .set('X-Request-Id', requestId);
          if (bearer !== undefined) req = req.set('Authorization', `Bearer ${bearer}`);
          expect((await req).status).toBe(401);
          await trail.flush();
          const events = await storedEvents(db, 'audit_events', { request_id: requestId });
          expect(events.map((e) => [e.action, e.outcome, e.actor_type])).toEqual([
            ['access-denied', 'denied', 'anonymous'],
          ]);
        }
      });

      it('a forged token: one access-denied event, anonymous', async () => {
        const forged = `${clinicianToken.slice(0, -4)}AAAA`;
        const { res, sent } = await send({ method: 'get', url: '/api/admin', token: forged });
        expect(res.status).toBe(401);
        const event = await onlyEvent(sent);
        expect(event).toMatchObject({
          action: 'access-denied',
          outcome: 'denied',
          actor_type: 'anonymous',
          actor_id: null,
        });
        expect(event.details).toMatchObject({ reason: 'bad_signature' });
      });

      it('req.audit(): a custom export event with the request facts', async () => {
        const id = String(seeded.patientIds[3]!);
        const { res, sent } = await send({
          method: 'post',
          url: `/api/patients/${id}/export`,
          token: clinicianToken,
          purpose: 'ETREAT',
        });
        expect(res.status).toBe(202);
        const event = await onlyEvent(sent);
        expectRequestFacts(event, sent, 'ETREAT');
        expect(event).toMatchObject({
          action: 'export',
          outcome: 'success',
          resource_type: 'Patient',
          resource_id: id,
          patient_id: id,
        });
      });

      it('an unaudited repository records nothing', async () => {
        const { res, sent } = await send({
          method: 'get',
          url: `/api/unaudited/patients/${seeded.patientIds[0]!}`,
          token: clinicianToken,
        });
        expect(res.status).toBe(200);
        expect(await eventsOf(sent)).toEqual([]);
      });

      it('login (tokens issued), a failed login and logout (revocation) through the auth option', async () => {
        const userId = `login-${dialect}-${variant.major}`;
        const login = await send({ method: 'post', url: '/login', body: { userId, roles: ['clinician'] } });
        expect(login.res.status).toBe(200);
        expect(await onlyEvent(login.sent)).toMatchObject({
          action: 'login',
          outcome: 'success',
          actor_id: userId,
          request_id: login.sent.requestId,
          client_ip: CLIENT_IP,
        });

        const failed = await send({
          method: 'post',
          url: '/login-failed',
          body: { userId, password: 'wrong' },
        });
        expect(failed.res.status).toBe(401);
        expect(await onlyEvent(failed.sent)).toMatchObject({
          action: 'login',
          outcome: 'denied',
          request_id: failed.sent.requestId,
        });

        const access = (login.res.body as core.TokenPair).access_token;
        const logout = await send({ method: 'post', url: '/logout', token: access });
        expect(logout.res.status).toBe(204);
        expect(await onlyEvent(logout.sent)).toMatchObject({
          action: 'logout',
          outcome: 'success',
          actor_id: userId,
          request_id: logout.sent.requestId,
        });
        // The revoked token no longer opens the API, and that refusal is recorded as a denial.
        const after = await send({
          method: 'get',
          url: `/api/patients/${seeded.patientIds[0]!}`,
          token: access,
        });
        expect(after.res.status).toBe(401);
        const refused = await onlyEvent(after.sent);
        expect(refused).toMatchObject({ action: 'access-denied', outcome: 'denied' });
        expect(refused.details).toMatchObject({ reason: 'revoked' });
      });
    });

    describe('repository calls outside HTTP', () => {
      async function within<T>(requestId: string, fn: () => Promise<T>): Promise<StoredEvent[]> {
        const ctx = core.createContext({ requestId });
        await core.runWithContext(ctx, async () => {
          core.setUser('batch-user', ['clinician']);
          await fn();
        });
        await trail.flush();
        return storedEvents(db, 'audit_events', { request_id: requestId });
      }

      it('findById, exists: reads; findOne, count: searches; createMany: one event per row', async () => {
        const id = seeded.patientIds[4]!;
        const reads = await within(`repo-reads-${dialect}`, async () => {
          await patients.findById(id);
          await patients.exists(id);
        });
        expect(reads.map((e) => [e.action, e.outcome, e.patient_id])).toEqual([
          ['read', 'success', String(id)],
          ['read', 'success', String(id)],
        ]);

        const searches = await within(`repo-searches-${dialect}`, async () => {
          await patients.findOne({ mrn: `${SECRET_MRN_PREFIX}${dialect}-4` });
          await patients.count({ family_name: SECRET_FAMILY });
        });
        expect(searches.map((e) => e.action)).toEqual(['search', 'search']);
        expect(searches.map((e) => e.details?.filter_fields)).toEqual([['mrn'], ['family_name']]);
        expect(JSON.stringify(searches.map((e) => e.raw))).not.toContain(SECRET_MRN_PREFIX);

        let createdIds: number[] = [];
        const creates = await within(`repo-creates-${dialect}`, async () => {
          const rows = await observations.createMany([
            { patient_id: seeded.patientIds[0]!, code: 'c1', value: SECRET_VALUE },
            { patient_id: seeded.patientIds[1]!, code: 'c2', value: SECRET_VALUE },
          ]);
          createdIds = rows.map((r) => r.id);
        });
        expect(creates.map((e) => [e.action, e.resource_id, e.patient_id])).toEqual([
          ['create', String(createdIds[0]), String(seeded.patientIds[0])],
          ['create', String(createdIds[1]), String(seeded.patientIds[1])],
        ]);
        const missing = Math.max(...seeded.patientIds) + 500;
        const misses = await within(`repo-misses-${dialect}`, async () => {
          await patients.exists(missing);
          await patients.findById(missing);
        });
        expect(misses.map((e) => [e.action, e.outcome, e.resource_id, e.details?.reason])).toEqual([
          ['read', 'error', String(missing), 'not_found'],
          ['read', 'error', String(missing), 'not_found'],
        ]);

        let upserted = 0;
        const upserts = await within(`repo-upserts-${dialect}`, async () => {
          const row = await patients.upsert(
            { mrn: `${SECRET_MRN_PREFIX}${dialect}-4`, family_name: SECRET_FAMILY, birth_date: SECRET_DOB },
            ['mrn'],
          );
          upserted = row.id;
        });
        expect(upserted).toBe(id);
        expect(upserts.map((e) => [e.action, e.outcome, e.resource_id, e.patient_id])).toEqual([
          ['update', 'success', String(id), String(id)],
        ]);
        for (const e of [...reads, ...searches, ...creates, ...misses, ...upserts]) {
          expect(e).toMatchObject({ actor_id: 'batch-user', actor_type: 'user' });
        }
      });

      it('a read outside any request: actor_type system', async () => {
        const before = (await storedEvents(db)).length;
        await patients.findById(seeded.patientIds[0]!);
        await trail.flush();
        const all = await storedEvents(db);
        expect(all).toHaveLength(before + 1);
        expect(all[all.length - 1]).toMatchObject({
          action: 'read',
          actor_type: 'system',
          actor_id: null,
          request_id: null,
        });
      });
    });

    describe('the whole table afterwards', () => {
      let all: StoredEvent[];
      beforeAll(async () => {
        await trail.flush();
        all = await storedEvents(db);
      });

      it('holds no record content: no name, date of birth, MRN or observation value', () => {
        expect(all.length).toBeGreaterThan(20);
        const everything = JSON.stringify(all.map((e) => e.raw));
        for (const secret of [SECRET_FAMILY, SECRET_DOB, SECRET_MRN_PREFIX, SECRET_VALUE]) {
          expect(everything).not.toContain(secret);
        }
      });

      it('is one gapless chain that verifies: checked = rows', async () => {
        expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
        expect(new Set(all.map((e) => e.event_id)).size).toBe(all.length);
        for (let i = 1; i < all.length; i += 1) expect(all[i]!.prev_hash).toBe(all[i - 1]!.hash);
        const expected = { ok: true, checked: all.length, brokenAt: null };
        expect(await core.verifyAuditChain(db, { table: 'audit_events' })).toMatchObject(expected);
        expect(await trail.verify()).toMatchObject(expected);
      });

      it('metrics agree with the table', async () => {
        expect(await valueOf(metrics, 'audit_events_written_total')).toBe(all.length);
        const denied = all.filter((e) => e.action === 'access-denied' && e.outcome === 'denied').length;
        expect(denied).toBeGreaterThan(0);
        expect(
          await valueOf(metrics, 'audit_events_total', { action: 'access-denied', outcome: 'denied' }),
        ).toBe(denied);
        expect(trail.stats()).toMatchObject({ buffered: 0, written: all.length, dropped: 0, rejected: 0 });
      });
    });
  });
});
