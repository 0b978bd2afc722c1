/**
 * Acceptance test of the example service's authentication and authorization, per role, over HTTP
 * on Express 4 and 5 and on SQLite, PostgreSQL and MariaDB: login, refresh with reuse detection,
 * logout, anonymous and bad requests, and what a patient, a provider and an administrator can reach.
 * The app builds its own Auth here (the default of `createApp()`); the other suite passes one in.
 */
import { randomBytes } from 'node:crypto';
import type { Express } from 'express';
import { Redis } from 'ioredis';
import request from 'supertest';
import type { Response } from 'supertest';
import type { Auth, TokenPair } from '../../lib/index';
import { loadSettings } from '../../lib/index';
import type { ExpressFactory } from '../../examples/health-service/app';
import { createApp, createProtection } from '../../examples/health-service/app';
import { serviceAuth } from '../../examples/health-service/auth';
import type { LabClient } from '../../examples/health-service/labs';
import type { DemoUser } from '../../examples/health-service/seed';
import {
  DEMO_ADMIN,
  DEMO_PATIENTS,
  DEMO_PROVIDERS,
  DEMO_USERS,
  SEED_PATIENTS,
} from '../../examples/health-service/seed';
import { EXPRESS } from '../support/express';
import { requireService, workerSchema } from '../support/services';
import type { CapturedLogs, ExampleDialect, ServiceDatabase } from './support';
import { captureLogs, TEST_PASSWORD_HASH, useServiceDatabase, waitFor } from './support';

const settings = loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'debug' });
const API = settings.apiPrefix;
const MISSING_ID = '00000000-0000-4000-8000-000000000000';

const [LEE, SHAH] = DEMO_PROVIDERS as [DemoUser, DemoUser];
/** Arjun (Dr. Lee's patient) and Hana (Dr. Shah's). */
const [ARJUN, HANA] = DEMO_PATIENTS as [DemoUser, DemoUser];
const recordOf = (user: DemoUser) => SEED_PATIENTS.find((p) => p.id === user.patient_id)!;
const panelOf = (provider: DemoUser) => SEED_PATIENTS.filter((p) => p.provider_id === provider.id);
const UNASSIGNED = SEED_PATIENTS.filter((p) => p.provider_id === null);
/** One of Dr. Lee's patients who is not Arjun. */
const LEES_OTHER = panelOf(LEE).find((p) => p.id !== ARJUN.patient_id)!;

const DIALECTS: readonly { name: string; dialect: ExampleDialect }[] = [
  { name: 'SQLite', dialect: 'sqlite' },
  { name: 'PostgreSQL', dialect: 'postgres' },
  { name: 'MariaDB', dialect: 'mysql' },
];

/** The claims of one of our tokens (the test made it; no verification needed). */
const claimsOf = (token: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;

/** An error body without its request id, to compare two answers. */
const withoutRequestId = (res: Response): unknown => ({
  ...res.body,
  details: { ...res.body.details, request_id: undefined },
});

const ids = (res: Response): string[] => (res.body.data as { id: string }[]).map((p) => p.id);

const workingLabs: LabClient = {
  resultsFor: (id) =>
    Promise.resolve([
      { code: '2345-7', display: `Glucose ${id}`, value: 5.4, unit: 'mmol/L', observed_at: '2026-01-01' },
    ]),
};

/**
 * Until its Redis connection is ready, a Redis denylist refuses to answer (503): ioredis runs with
 * `enableOfflineQueue: false`. Wait for the first answer, as a readiness probe would.
 */
async function denylistReady(auth: Auth, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await auth.revocation.isRevoked('caduceus-readiness-probe');
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/**
 * The app of a describe block, built before each test with `createApp()`'s own Auth (the default
 * this suite covers; the other suite passes one in), and a client for it.
 */
function useApp(express: ExpressFactory, database: ServiceDatabase) {
  const ctx = {
    app: undefined as unknown as Express,
    logs: undefined as unknown as CapturedLogs,
    post: (path: string, body?: unknown) => {
      const req = request(ctx.app).post(`${API}${path}`);
      return body === undefined ? req : req.send(body as object);
    },
    login: async (user: DemoUser): Promise<TokenPair> => {
      const res = await ctx.post('/auth/login', { email: user.email, password: user.password }).expect(200);
      return res.body.data as TokenPair;
    },
    /** An agent that sends `token` (or, given a user, logs them in first). */
    as: async (who: DemoUser | string) => {
      const token = typeof who === 'string' ? who : (await ctx.login(who)).access_token;
      return request.agent(ctx.app).set('Authorization', `Bearer ${token}`);
    },
    refresh: (token: string) => ctx.post('/auth/refresh', { refresh_token: token }),
  };
  beforeEach(() => {
    ctx.logs = captureLogs(settings);
    ctx.app = createApp({
      express,
      settings,
      db: database.db(),
      createLogger: ctx.logs.createLogger,
      passwordHash: TEST_PASSWORD_HASH,
      labs: workingLabs,
    });
  });
  return ctx;
}

describe.each(EXPRESS)('examples/health-service auth on $name', ({ express, major }) => {
  describe('requests refused before any data is read (on SQLite)', () => {
    const database = useServiceDatabase('sqlite', `ex_auth_refused${major}`, settings);
    const ctx = useApp(express, database);
    const { post, as } = ctx;

    describe('login bodies', () => {
      test.each([
        ['no body', undefined, { _: 'must be a JSON object' }],
        ['an array', [LEE.email, LEE.password], { _: 'must be a JSON object' }],
        ['no password', { email: LEE.email }, { password: 'is required' }],
        ['an empty password', { email: LEE.email, password: '' }, { password: 'is required' }],
        ['no email', { password: LEE.password }, { email: 'is required' }],
        ['a number as email', { email: 42, password: LEE.password }, { email: 'must be an email address' }],
        [
          'an object as password',
          { email: LEE.email, password: { $ne: '' } },
          { password: 'must be a string' },
        ],
        [
          'a password over 1024 bytes',
          { email: LEE.email, password: 'é'.repeat(513) },
          { password: 'must be at most 1024 bytes' },
        ],
        [
          'an email over 254 characters',
          { email: `${'a'.repeat(250)}@x.example`, password: 'x' },
          { email: 'must be at most 254 characters' },
        ],
        [
          'an unknown field',
          { email: LEE.email, password: LEE.password, admin: true },
          { admin: 'is not a known field' },
        ],
      ])('a login body with %s is a 422 naming the field', async (_label, body, fieldErrors) => {
        const res = await post('/auth/login', body);
        // Express 4 parses a missing body to {} and Express 5 to undefined: both are 422s.
        expect(res.status).toBe(422);
        expect(res.body).toMatchObject({ success: false, error_code: 'VALIDATION_ERROR' });
        if (!(body === undefined && major === 4)) {
          expect(res.body.details.field_errors).toEqual(fieldErrors);
        }
        expect(res.text).not.toContain(LEE.password);
      });

      test('malformed JSON is a 400, an oversized body a 413, a non-JSON body a 422; never a 500', async () => {
        const bad = await request(ctx.app)
          .post(`${API}/auth/login`)
          .set('Content-Type', 'application/json')
          .send(`{"email":"${LEE.email}","password":`)
          .expect(400);
        expect(bad.body.error_code).toBe('INVALID_JSON');
        const big = await post('/auth/login', { email: LEE.email, password: 'x'.repeat(200 * 1024) }).expect(
          413,
        );
        expect(big.body.error_code).toBe('PAYLOAD_TOO_LARGE');
        const form = await request(ctx.app)
          .post(`${API}/auth/login`)
          .type('form')
          .send({ email: LEE.email, password: LEE.password })
          .expect(422);
        expect(form.body.error_code).toBe('VALIDATION_ERROR');
      });
    });

    describe('anonymous and bad tokens', () => {
      test.each([
        ['GET', '/patients'],
        ['GET', `/patients/${ARJUN.patient_id}`],
        ['POST', '/patients'],
        ['PATCH', `/patients/${ARJUN.patient_id}`],
        ['DELETE', `/patients/${ARJUN.patient_id}`],
        ['GET', `/patients/${ARJUN.patient_id}/lab-results`],
        ['GET', '/auth/me'],
        ['POST', '/auth/logout'],
        ['GET', `/users/${ARJUN.id}`],
        ['POST', '/users'],
        ['GET', '/no-such-route'],
      ])('%s %s without a token is a 401 TOKEN_MISSING', async (method, path) => {
        const res = await request(ctx.app)
          [method.toLowerCase() as 'get' | 'post' | 'patch' | 'delete'](`${API}${path}`)
          .expect(401);
        expect(res.body).toEqual({
          success: false,
          error: 'Authentication required',
          error_code: 'TOKEN_MISSING',
          details: { request_id: res.headers['x-request-id'] },
        });
        expect(res.headers['www-authenticate']).toBe('Bearer realm="api"');
      });

      test('/health stays public; a malformed or foreign token is a 401 TOKEN_INVALID', async () => {
        await request(ctx.app).get('/health').expect(200);
        for (const header of ['Bearer not.a.token', 'Bearer ', 'Basic dXNlcjpwYXNz']) {
          const res = await request(ctx.app).get(`${API}/patients`).set('Authorization', header).expect(401);
          expect(['TOKEN_INVALID', 'TOKEN_MISSING']).toContain(res.body.error_code);
        }
        const other = serviceAuth({
          db: database.db(),
          settings,
          secret: randomBytes(32).toString('hex'),
          logger: ctx.logs.createLogger('auth'),
        });
        try {
          const forged = other.createTokens({ userId: DEMO_ADMIN.id, roles: ['admin'] }).access_token;
          const res = await (await as(forged)).get(`${API}/patients`).expect(401);
          expect(res.body.error_code).toBe('TOKEN_INVALID');
        } finally {
          await other.close();
        }
      });
    });
  });

  describe.each(DIALECTS)('with $name', ({ dialect }) => {
    const database = useServiceDatabase(dialect, `ex_auth${major}`, settings);
    const ctx = useApp(express, database);
    const { post, login, as, refresh } = ctx;

    describe('login', () => {
      test('every demo login gets a token pair whose claims say who it is', async () => {
        for (const user of DEMO_USERS) {
          const res = await post('/auth/login', { email: user.email, password: user.password }).expect(200);
          expect(res.headers['cache-control']).toBe('no-store');
          expect(res.body).toMatchObject({ success: true, data: { token_type: 'bearer' } });
          const pair = res.body.data as TokenPair;
          expect(pair.expires_in).toBeGreaterThan(0);
          const claims = claimsOf(pair.access_token);
          expect(claims).toMatchObject({ sub: user.id, email: user.email, roles: [...user.roles] });
          if (user.patient_id === null) expect(claims).not.toHaveProperty('patient_id');
          else expect(claims.patient_id).toBe(user.patient_id);
          const me = await (await as(pair.access_token)).get(`${API}/auth/me`).expect(200);
          expect(me.body.data).toEqual({
            id: user.id,
            email: user.email,
            name: user.name,
            roles: [...user.roles],
            patient_id: user.patient_id,
            created_at: '2025-01-01T08:00:00.000Z',
            updated_at: '2025-01-01T08:00:00.000Z',
          });
        }
      });

      test('the email is matched without regard to case or surrounding spaces', async () => {
        await post('/auth/login', { email: `  ${LEE.email.toUpperCase()} `, password: LEE.password }).expect(
          200,
        );
      });

      test('unusual emails are looked up like any other (401); control characters are a 422 on every database', async () => {
        for (const email of ['ünïcødé@clinic.example', '💉@clinic.example', '\ud800@clinic.example']) {
          const res = await post('/auth/login', { email, password: 'x\u0000y' }).expect(401);
          expect(res.body.error_code).toBe('INVALID_CREDENTIALS');
        }
        // An injection probe never reaches the login route: security() refuses it.
        const probe = await post('/auth/login', { email: "x' OR '1'='1", password: 'x' }).expect(403);
        expect(probe.body.error_code).toBe('THREAT_DETECTED');
        for (const email of ['a\u0000b@clinic.example', 'a\nb@clinic.example']) {
          const res = await post('/auth/login', { email, password: LEE.password }).expect(422);
          expect(res.body.details.field_errors).toEqual({ email: 'must be an email address' });
        }
      });

      test('a wrong password and an unknown email are the same 401 INVALID_CREDENTIALS', async () => {
        const wrong = await post('/auth/login', { email: LEE.email, password: 'not-the-password' }).expect(
          401,
        );
        const unknown = await post('/auth/login', {
          email: 'nobody@clinic.example',
          password: LEE.password,
        }).expect(401);
        expect(wrong.body).toMatchObject({
          success: false,
          error: 'Invalid email or password',
          error_code: 'INVALID_CREDENTIALS',
        });
        expect(withoutRequestId(unknown)).toEqual(withoutRequestId(wrong));
        expect(wrong.headers['www-authenticate']).toBe(unknown.headers['www-authenticate']);
        // The security log says which, with the user id when there is one — never the email or password.
        const failures = await waitFor(() => {
          const lines = ctx.logs.lines.filter((l) => l.security_event === 'login_failed');
          return lines.length === 2 ? lines : undefined;
        });
        expect(failures.map((l) => [l.reason, l.user_id])).toEqual([
          ['wrong_password', LEE.id],
          ['unknown_email', undefined],
        ]);
        expect(ctx.logs.text()).not.toMatch(/not-the-password|nobody@clinic|provider-demo-password/);
      });
    });

    describe('refresh', () => {
      test('rotates the pair; the spent refresh token presented again revokes the whole family', async () => {
        const first = await login(LEE);
        const res = await refresh(first.refresh_token).expect(200);
        expect(res.headers['cache-control']).toBe('no-store');
        const second = res.body.data as TokenPair;
        expect(second.refresh_token).not.toBe(first.refresh_token);
        expect(claimsOf(second.access_token)).toMatchObject({ sub: LEE.id, roles: ['provider'] });
        await (await as(second.access_token)).get(`${API}/patients`).expect(200);

        // Reuse: whoever holds a copy of the old token, the whole login ends.
        const reuse = await refresh(first.refresh_token).expect(401);
        expect(reuse.body).toMatchObject({ success: false, error_code: 'TOKEN_REVOKED' });
        for (const token of [first.access_token, second.access_token]) {
          const res2 = await (await as(token)).get(`${API}/patients`).expect(401);
          expect(res2.body.error_code).toBe('TOKEN_REVOKED');
        }
        expect((await refresh(second.refresh_token).expect(401)).body.error_code).toBe('TOKEN_REVOKED');
        await waitFor(() => ctx.logs.lines.find((l) => l.security_event === 'refresh_token_reuse'));
        // Another login of the same user is another family: untouched.
        await (await as(LEE)).get(`${API}/patients`).expect(200);
      });

      test('bad refresh bodies are 422s; an access token or garbage in their place is a 401 TOKEN_INVALID', async () => {
        for (const body of [undefined, {}, { refresh_token: '' }, { refresh_token: 7 }, { token: 'x' }]) {
          const res = await post('/auth/refresh', body).expect(422);
          expect(res.body.error_code).toBe('VALIDATION_ERROR');
        }
        const { access_token } = await login(LEE);
        for (const token of [access_token, 'not-a-token', `${access_token}x`]) {
          const res = await refresh(token).expect(401);
          expect(res.body.error_code).toBe('TOKEN_INVALID');
        }
        expect((await refresh('a'.repeat(8193)).expect(422)).body.details.field_errors).toHaveProperty(
          'refresh_token',
        );
      });

      test('a refresh reads the user again: changed roles are in the new pair, a deleted login gets none', async () => {
        const lee = await login(LEE);
        await database.db().knex('users').where({ id: LEE.id }).update({ roles: 'provider,admin' });
        const promoted = (await refresh(lee.refresh_token).expect(200)).body.data as TokenPair;
        expect(claimsOf(promoted.access_token).roles).toEqual(['provider', 'admin']);
        const all = await (await as(promoted.access_token)).get(`${API}/patients?size=1`).expect(200);
        expect(all.body.meta.total).toBe(50);

        const hana = await login(HANA);
        await database.db().knex('users').where({ id: HANA.id }).del();
        const gone = await refresh(hana.refresh_token).expect(401);
        expect(gone.body.error_code).toBe('TOKEN_REVOKED');
        // Her login's family is revoked with it: the access token she holds is refused too.
        const after = await (await as(hana.access_token)).get(`${API}/auth/me`).expect(401);
        expect(after.body.error_code).toBe('TOKEN_REVOKED');
      });
    });

    describe('logout', () => {
      test('204; then the access token and its refresh token are refused, other logins are not', async () => {
        const phone = await login(ARJUN);
        const laptop = await login(ARJUN);
        const agent = await as(phone.access_token);
        await agent.post(`${API}/auth/logout`).expect(204);
        const after = await agent.get(`${API}/patients`).expect(401);
        expect(after.body).toMatchObject({ success: false, error_code: 'TOKEN_REVOKED' });
        expect(after.headers['www-authenticate']).toMatch(/^Bearer .*error="invalid_token"/);
        expect((await refresh(phone.refresh_token).expect(401)).body.error_code).toBe('TOKEN_REVOKED');
        await agent.post(`${API}/auth/logout`).expect(401);
        await (await as(laptop.access_token)).get(`${API}/patients`).expect(200);
      });
    });

    describe('a patient', () => {
      test('sees only their own record: list, read, lab results; any other id is a 404 like a missing one', async () => {
        const arjun = await as(ARJUN);
        const own = recordOf(ARJUN);
        const list = await arjun.get(`${API}/patients`).expect(200);
        expect(ids(list)).toEqual([own.id]);
        expect(list.body.meta).toMatchObject({ total: 1, pages: 1 });
        // Filters narrow the scope, never widen it.
        for (const query of [
          `?provider_id=${SHAH.id}`,
          `?id=${HANA.patient_id}`,
          `?mrn=${recordOf(HANA).mrn}`,
        ]) {
          expect((await arjun.get(`${API}/patients${query}`).expect(200)).body.meta.total).toBe(0);
        }
        const keyset = await arjun.get(`${API}/patients?limit=10&sort=-created_at`).expect(200);
        expect(ids(keyset)).toEqual([own.id]);
        const read = await arjun.get(`${API}/patients/${own.id}`).expect(200);
        expect(read.body.data).toMatchObject({ id: own.id, mrn: own.mrn, provider_id: LEE.id });
        await arjun.get(`${API}/patients/${own.id}/lab-results`).expect(200);

        const missing = await arjun.get(`${API}/patients/${MISSING_ID}`).expect(404);
        for (const other of [LEES_OTHER, recordOf(HANA), UNASSIGNED[0]!]) {
          const res = await arjun.get(`${API}/patients/${other.id}`).expect(404);
          expect(withoutRequestId(res)).toEqual({
            ...(withoutRequestId(missing) as object),
            details: { resource_type: 'Patient', resource_id: other.id, request_id: undefined },
          });
          await arjun.get(`${API}/patients/${other.id}/lab-results`).expect(404);
        }
      });

      test('updates their own names, not the clinic fields, not anyone else; never creates or deletes', async () => {
        const arjun = await as(ARJUN);
        const own = recordOf(ARJUN);
        const renamed = await arjun
          .patch(`${API}/patients/${own.id}`)
          .set('If-Match', '1')
          .send({ given_name: 'Arjun K.' })
          .expect(200);
        // Still Dr. Lee's patient: an update by anyone but an administrator leaves the assignment alone.
        expect(renamed.body.data).toMatchObject({ given_name: 'Arjun K.', version: 2, provider_id: LEE.id });
        const clinic = await arjun
          .patch(`${API}/patients/${own.id}`)
          .set('If-Match', '2')
          .send({ status: 'deceased', mrn: 'MRN-9999', given_name: 'x' })
          .expect(403);
        expect(clinic.body).toMatchObject({
          error_code: 'FORBIDDEN',
          details: { fields: ['mrn', 'status'] },
        });
        await arjun
          .patch(`${API}/patients/${LEES_OTHER.id}`)
          .set('If-Match', '1')
          .send({ given_name: 'x' })
          .expect(404);
        const create = await arjun.post(`${API}/patients`).send({}).expect(403);
        expect(create.body.error_code).toBe('FORBIDDEN');
        await arjun.delete(`${API}/patients/${own.id}`).expect(403);
        expect((await arjun.get(`${API}/patients/${own.id}`).expect(200)).body.data.version).toBe(2);
        expect((await database.db().knex('patients').where({ id: LEES_OTHER.id }).first()).given_name).toBe(
          LEES_OTHER.given_name,
        );
      });

      test('reads their own login, not another one, and creates none', async () => {
        const arjun = await as(ARJUN);
        await arjun.get(`${API}/users/${ARJUN.id}`).expect(200);
        for (const other of [HANA, LEE, DEMO_ADMIN]) {
          expect((await arjun.get(`${API}/users/${other.id}`).expect(403)).body.error_code).toBe('FORBIDDEN');
        }
        await arjun.post(`${API}/users`).send({}).expect(403);
      });

      test('their user id is not their patient id: as a patient id it finds nothing', async () => {
        const res = await (await as(ARJUN)).get(`${API}/patients/${ARJUN.id}`).expect(404);
        expect(res.body.error_code).toBe('NOT_FOUND');
      });
    });

    describe('a provider', () => {
      test('lists only their assigned patients; filters, sort and keyset pages work inside the panel', async () => {
        const lee = await as(LEE);
        const panel = panelOf(LEE);
        const all = await lee.get(`${API}/patients?size=100`).expect(200);
        expect(all.body.meta.total).toBe(panel.length);
        expect(new Set(ids(all))).toEqual(new Set(panel.map((p) => p.id)));
        const active = await lee.get(`${API}/patients?status=active&size=100`).expect(200);
        expect(new Set(ids(active))).toEqual(
          new Set(panel.filter((p) => p.status === 'active').map((p) => p.id)),
        );
        expect((await lee.get(`${API}/patients?provider_id=${SHAH.id}`).expect(200)).body.meta.total).toBe(0);

        const walked: string[] = [];
        let cursor: string | null = null;
        do {
          const res: Response = await lee
            .get(`${API}/patients?limit=4&sort=birth_date${cursor === null ? '' : `&cursor=${cursor}`}`)
            .expect(200);
          walked.push(...ids(res));
          cursor = res.body.meta.next_cursor as string | null;
        } while (cursor !== null);
        expect(walked).toEqual(
          [...panel]
            .sort((a, b) => a.birth_date.localeCompare(b.birth_date) || (a.id < b.id ? -1 : 1))
            .map((p) => p.id),
        );
      });

      test("reads, updates, deletes their patients; another provider's or an unassigned one is a 404 throughout", async () => {
        const lee = await as(LEE);
        await lee.get(`${API}/patients/${LEES_OTHER.id}`).expect(200);
        await lee.get(`${API}/patients/${LEES_OTHER.id}/lab-results`).expect(200);
        const updated = await lee
          .patch(`${API}/patients/${LEES_OTHER.id}`)
          .set('If-Match', '1')
          .send({ status: 'inactive' })
          .expect(200);
        expect(updated.body.data).toMatchObject({ status: 'inactive', version: 2, provider_id: LEE.id });
        for (const other of [recordOf(HANA), UNASSIGNED[0]!]) {
          await lee.get(`${API}/patients/${other.id}`).expect(404);
          await lee.get(`${API}/patients/${other.id}/lab-results`).expect(404);
          await lee
            .patch(`${API}/patients/${other.id}`)
            .set('If-Match', '1')
            .send({ status: 'inactive' })
            .expect(404);
          await lee.delete(`${API}/patients/${other.id}`).expect(404);
        }
        await lee.delete(`${API}/patients/${LEES_OTHER.id}`).expect(204);
        await lee.get(`${API}/patients/${LEES_OTHER.id}`).expect(404);
        // Nothing of the others changed.
        const admin = await as(DEMO_ADMIN);
        for (const other of [recordOf(HANA), UNASSIGNED[0]!]) {
          const res = await admin.get(`${API}/patients/${other.id}`).expect(200);
          expect(res.body.data).toMatchObject({ version: 1, status: other.status, deleted_at: null });
        }
      });

      test('creates patients for themselves only and never reassigns one', async () => {
        const lee = await as(LEE);
        const created = await lee
          .post(`${API}/patients`)
          .send({ mrn: 'MRN-7001', given_name: 'Lena', family_name: 'Ortiz', birth_date: '1990-05-17' })
          .expect(201);
        expect(created.body.data.provider_id).toBe(LEE.id);
        await lee.get(created.headers.location!).expect(200);
        await (await as(SHAH)).get(created.headers.location!).expect(404);
        await lee
          .post(`${API}/patients`)
          .send({
            mrn: 'MRN-7002',
            given_name: 'A',
            family_name: 'B',
            birth_date: '1990-05-17',
            provider_id: LEE.id,
          })
          .expect(201);
        const other = await lee
          .post(`${API}/patients`)
          .send({
            mrn: 'MRN-7003',
            given_name: 'A',
            family_name: 'B',
            birth_date: '1990-05-17',
            provider_id: SHAH.id,
          })
          .expect(403);
        expect(other.body.error_code).toBe('FORBIDDEN');
        const reassign = await lee
          .patch(`${API}/patients/${LEES_OTHER.id}`)
          .set('If-Match', '1')
          .send({ provider_id: SHAH.id })
          .expect(403);
        expect(reassign.body.error_code).toBe('FORBIDDEN');
        expect((await lee.get(`${API}/patients/${LEES_OTHER.id}`).expect(200)).body.data.provider_id).toBe(
          LEE.id,
        );
        await lee.post(`${API}/users`).send({}).expect(403);
      });
    });

    describe('an administrator', () => {
      test('sees every patient, filters by provider, and reassigns patients to providers only', async () => {
        const admin = await as(DEMO_ADMIN);
        expect((await admin.get(`${API}/patients?size=1`).expect(200)).body.meta.total).toBe(50);
        expect((await admin.get(`${API}/patients?provider_id=${SHAH.id}`).expect(200)).body.meta.total).toBe(
          panelOf(SHAH).length,
        );
        expect(
          (await admin.get(`${API}/patients?provider_id[is_null]=true`).expect(200)).body.meta.total,
        ).toBe(UNASSIGNED.length);
        for (const p of [recordOf(ARJUN), recordOf(HANA), UNASSIGNED[0]!]) {
          await admin.get(`${API}/patients/${p.id}`).expect(200);
        }

        const moved = await admin
          .patch(`${API}/patients/${LEES_OTHER.id}`)
          .set('If-Match', '1')
          .send({ provider_id: SHAH.id })
          .expect(200);
        expect(moved.body.data.provider_id).toBe(SHAH.id);
        await (await as(SHAH)).get(`${API}/patients/${LEES_OTHER.id}`).expect(200);
        await (await as(LEE)).get(`${API}/patients/${LEES_OTHER.id}`).expect(404);

        for (const notAProvider of [ARJUN.id, DEMO_ADMIN.id, MISSING_ID]) {
          const res = await admin
            .patch(`${API}/patients/${LEES_OTHER.id}`)
            .set('If-Match', '2')
            .send({ provider_id: notAProvider })
            .expect(422);
          expect(res.body.details.field_errors).toEqual({ provider_id: 'must be the id of a provider' });
        }
        await admin
          .patch(`${API}/patients/${LEES_OTHER.id}`)
          .set('If-Match', '2')
          .send({ provider_id: null })
          .expect(200);
        await admin
          .post(`${API}/patients`)
          .send({ mrn: 'MRN-7004', given_name: 'A', family_name: 'B', birth_date: '1990-05-17' })
          .expect(201)
          .expect((res) => {
            expect(res.body.data.provider_id).toBeNull();
          });
      });

      test('creates logins; the new patient logs in and sees their record; bad input is a 4xx', async () => {
        const admin = await as(DEMO_ADMIN);
        const record = UNASSIGNED[1]!;
        const body = {
          email: 'New.Patient@Clinic.Example',
          password: 'a-long-enough-password',
          name: 'New Patient',
          roles: ['patient'],
          patient_id: record.id,
        };
        const res = await admin.post(`${API}/users`).send(body).expect(201);
        expect(res.body.data).toMatchObject({
          email: 'new.patient@clinic.example',
          roles: ['patient'],
          patient_id: record.id,
        });
        expect(res.text).not.toMatch(/password/);
        expect(res.headers.location).toBe(`${API}/users/${res.body.data.id}`);
        const row = await database.db().knex('users').where({ id: res.body.data.id }).first();
        expect(row.password_hash).toMatch(/^\$scrypt\$n=1024,r=8,p=1\$/);

        const pair = (await post('/auth/login', { email: body.email, password: body.password }).expect(200))
          .body.data as TokenPair;
        const mine = await (await as(pair.access_token)).get(`${API}/patients`).expect(200);
        expect(ids(mine)).toEqual([record.id]);

        const cases: [unknown, number, string][] = [
          [body, 409, 'DUPLICATE'],
          [{ ...body, email: 'other@clinic.example' }, 409, 'DUPLICATE'], // the record already has a login
          [{ ...body, email: 'x@clinic.example', patient_id: MISSING_ID }, 422, 'REFERENCE_NOT_FOUND'],
          [{ ...body, email: 'y@clinic.example', patient_id: undefined }, 422, 'VALIDATION_ERROR'],
          [{ ...body, email: 'z@clinic.example', roles: ['provider'] }, 422, 'VALIDATION_ERROR'],
          [{ ...body, email: 'no-at-sign', patient_id: UNASSIGNED[2]!.id }, 422, 'VALIDATION_ERROR'],
          [{ ...body, email: 'short@clinic.example', password: 'short' }, 422, 'VALIDATION_ERROR'],
          [{ ...body, email: 'roles@clinic.example', roles: ['root'] }, 422, 'VALIDATION_ERROR'],
          [{ ...body, password_hash: '$scrypt$…' }, 422, 'VALIDATION_ERROR'],
        ];
        for (const [input, status, code] of cases) {
          const bad = await admin
            .post(`${API}/users`)
            .send(input as object)
            .expect(status);
          expect(bad.body.error_code).toBe(code);
          expect(bad.text).not.toContain(body.password);
        }
        const staff = await admin
          .post(`${API}/users`)
          .send({
            email: 'dr.new@clinic.example',
            password: 'a-long-enough-password',
            name: 'Dr. New',
            roles: ['provider'],
          })
          .expect(201);
        await admin
          .patch(`${API}/patients/${UNASSIGNED[2]!.id}`)
          .set('If-Match', '1')
          .send({ provider_id: staff.body.data.id })
          .expect(200);
      });
    });

    test('the audit hook records who read which patient', async () => {
      const hana = await as(HANA);
      const res = await hana.get(`${API}/patients`).expect(200);
      const line = await waitFor(() =>
        ctx.logs.lines.find(
          (l) => l.message === 'patient access' && l.request_id === res.headers['x-request-id'],
        ),
      );
      expect(line).toMatchObject({ action: 'search', actor: HANA.id, patient_ids: [HANA.patient_id] });
    });
  });

  describe('on SQLite only', () => {
    const database = useServiceDatabase('sqlite', `ex_auth_once${major}`, settings);

    test('an unknown email costs the same scrypt work as a wrong password', async () => {
      // A cost high enough for hashing to dominate; the new login is hashed with it, like the dummy.
      const cost = { cost: 16_384 };
      const logs = captureLogs(settings);
      const auth = serviceAuth({ db: database.db(), settings, logger: logs.createLogger('auth') });
      try {
        const app = createApp({
          express,
          settings,
          db: database.db(),
          createLogger: logs.createLogger,
          auth,
          passwordHash: cost,
          // Many timed logins for one email: beyond the 5 a minute the login limit allows.
          protection: createProtection(settings, logs.createLogger, { loginRateLimit: { limit: 1000 } }),
        });
        const admin = auth.createTokens({ userId: DEMO_ADMIN.id, roles: ['admin'] }).access_token;
        const user = {
          email: 'timed@clinic.example',
          password: 'a-long-enough-password',
          name: 'T',
          roles: ['provider'],
        };
        await request(app)
          .post(`${API}/users`)
          .set('Authorization', `Bearer ${admin}`)
          .send(user)
          .expect(201);
        const time = async (email: string): Promise<number> => {
          const start = performance.now();
          await request(app)
            .post(`${API}/auth/login`)
            .send({ email, password: 'wrong-password' })
            .expect(401);
          return performance.now() - start;
        };
        const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
        const wrong: number[] = [];
        const unknown: number[] = [];
        for (let i = 0; i < 7; i++) {
          wrong.push(await time(user.email));
          unknown.push(await time(`nobody-${i}@clinic.example`));
        }
        // Without the stand-in hash an unknown email answers in ~1 ms against ~40 ms (ratio ~0.03);
        // the bounds leave room for a busy machine running other suites.
        const ratio = median(unknown) / median(wrong);
        const times = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
        expect(
          ratio > 0.4 && ratio < 2.5
            ? 'similar'
            : `ratio ${ratio.toFixed(2)}: wrong password ${times(wrong)} ms, unknown email ${times(unknown)} ms`,
        ).toBe('similar');
      } finally {
        await auth.close();
      }
    });

    test('logins created through the API get the default scrypt cost', async () => {
      const logs = captureLogs(settings);
      const auth = serviceAuth({ db: database.db(), settings, logger: logs.createLogger('auth') });
      try {
        const app = createApp({
          express,
          settings,
          db: database.db(),
          createLogger: logs.createLogger,
          auth,
        });
        const admin = auth.createTokens({ userId: DEMO_ADMIN.id, roles: ['admin'] }).access_token;
        const res = await request(app)
          .post(`${API}/users`)
          .set('Authorization', `Bearer ${admin}`)
          .send({
            email: 'default@clinic.example',
            password: 'a-long-enough-password',
            name: 'D',
            roles: ['admin'],
          })
          .expect(201);
        const row = await database.db().knex('users').where({ id: res.body.data.id }).first();
        expect(row.password_hash).toMatch(/^\$scrypt\$n=32768,r=8,p=1\$/);
      } finally {
        await auth.close();
      }
    });

    test('the default Auth keeps its denylist in memory; with REDIS_URL it is in Redis, shared by instances', async () => {
      await requireService('Redis', '127.0.0.1', 6379);
      const memory = serviceAuth({
        db: database.db(),
        settings,
        logger: captureLogs(settings).createLogger('auth'),
      });
      expect(memory.revocation.kind).toBe('memory');
      await memory.close();

      const redisUrl = 'redis://127.0.0.1:6379';
      const withRedis = loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'error', REDIS_URL: redisUrl });
      const keyPrefix = `caduceus:test:${workerSchema('ex')}:${randomBytes(4).toString('hex')}:`;
      const logs = captureLogs(withRedis);
      const [a, b] = [1, 2].map(() =>
        serviceAuth({ db: database.db(), settings: withRedis, keyPrefix, logger: logs.createLogger('auth') }),
      ) as [Auth, Auth];
      const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
      try {
        expect(a.revocation.kind).toBe('redis');
        await Promise.all([denylistReady(a), denylistReady(b)]);
        const build = (auth: Auth) =>
          createApp({
            express,
            settings: withRedis,
            db: database.db(),
            createLogger: logs.createLogger,
            auth,
            passwordHash: TEST_PASSWORD_HASH,
          });
        const [appA, appB] = [build(a), build(b)];
        const res = await request(appA)
          .post(`${API}/auth/login`)
          .send({ email: LEE.email, password: LEE.password })
          .expect(200);
        const token = (res.body.data as TokenPair).access_token;
        await request(appB).get(`${API}/patients`).set('Authorization', `Bearer ${token}`).expect(200);
        await request(appA).post(`${API}/auth/logout`).set('Authorization', `Bearer ${token}`).expect(204);
        // Instance B learns of the logout through Redis (pub/sub, or asking Redis before it has synchronised).
        const deadline = Date.now() + 2000;
        let refused: Response;
        do {
          refused = await request(appB).get(`${API}/patients`).set('Authorization', `Bearer ${token}`);
        } while (refused.status !== 401 && Date.now() < deadline);
        expect(refused.status).toBe(401);
        expect(refused.body.error_code).toBe('TOKEN_REVOKED');
      } finally {
        await Promise.all([a.close(), b.close()]);
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 500);
          cursor = next;
          if (keys.length > 0) await redis.unlink(...keys);
        } while (cursor !== '0');
        await redis.quit();
      }
    });
  });
});
