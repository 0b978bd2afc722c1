/**
 * Acceptance test of the example service's resilience, feature flag and health probes: the lab
 * system behind timeout + retry + circuit breaker, the `patient-summary` flag rolled out through
 * the admin router, and the health report following the breaker. Express 4 and 5, SQLite.
 */
import type { Express } from 'express';
import request from 'supertest';
import type { Auth } from '../../lib/index';
import { createMetrics, loadSettings } from '../../lib/index';
import { createApp } from '../../examples/health-service/app';
import { serviceAuth } from '../../examples/health-service/auth';
import type { SimulatedLabs } from '../../examples/health-service/labs';
import { simulatedLabs } from '../../examples/health-service/labs';
import { DEMO_ADMIN, DEMO_PATIENTS, DEMO_PROVIDERS, SEED_PATIENTS } from '../../examples/health-service/seed';
import { EXPRESS } from '../support/express';
import { bearer, captureLogs, TEST_PASSWORD_HASH, useServiceDatabase } from './support';

const settings = loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'error' });
const API = settings.apiPrefix;
const LEE = DEMO_PROVIDERS[0]!;
const LEES_PATIENT = SEED_PATIENTS.find((p) => p.provider_id === LEE.id)!;
const ARJUN = DEMO_PATIENTS[0]!;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(EXPRESS)(
  'examples/health-service resilience, flags and health on $name',
  ({ express, major }) => {
    const database = useServiceDatabase('sqlite', `ex_res${major}`, settings);
    let auth: Auth;
    let labs: SimulatedLabs;
    let app: Express;
    let metrics: ReturnType<typeof createMetrics>;

    beforeEach(() => {
      const logs = captureLogs(settings);
      auth = serviceAuth({ db: database.db(), settings, logger: logs.createLogger('auth') });
      labs = simulatedLabs(1);
      metrics = createMetrics({ app: 'records', nodeMetrics: false });
      app = createApp({
        express,
        settings,
        db: database.db(),
        createLogger: logs.createLogger,
        auth,
        passwordHash: TEST_PASSWORD_HASH,
        labs,
        labsResilience: {
          failureThreshold: 3,
          recoveryTimeout: 300,
          timeoutMs: 100,
          maxRetries: 2,
          baseDelay: 5,
        },
        metrics,
      });
    });
    afterEach(async () => {
      await auth.close();
    });

    const as = (user: typeof DEMO_ADMIN) => request.agent(app).set('Authorization', bearer(auth, user));
    const labsOf = (id: string) => as(DEMO_ADMIN).get(`${API}/patients/${id}/lab-results`);

    test('lab results through the breaker: retries a transient failure, a 503 naming the lab system, then the circuit opens and recovers', async () => {
      const ok = await labsOf(LEES_PATIENT.id).expect(200);
      expect(ok.body.data).toHaveLength(2);
      expect(labs.calls).toBe(1);

      labs.mode = 'failing';
      for (let i = 0; i < 3; i++) {
        const res = await labsOf(LEES_PATIENT.id).expect(503);
        expect(res.body).toMatchObject({
          error_code: 'SERVICE_UNAVAILABLE',
          details: { dependency: 'labs' },
        });
      }
      // Each failed request tried three times (two retries of the reset connection).
      expect(labs.calls).toBe(1 + 3 * 3);

      // Three failures in a row: open. The lab system is not called while open.
      const open = await labsOf(LEES_PATIENT.id).expect(503);
      expect(open.body).toMatchObject({ error_code: 'CIRCUIT_OPEN', details: { service: 'labs' } });
      expect(Number(open.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(labs.calls).toBe(10);
      const report = await request(app).get('/health').expect(200);
      expect(report.body.status).toBe('warn');
      expect(report.body.checks['circuitBreaker:labs'][0]).toMatchObject({
        status: 'warn',
        observedValue: 'open',
      });
      await request(app).get('/health/ready').expect(200);

      // The lab system is back; after recoveryTimeout one probe closes the circuit.
      labs.mode = 'ok';
      await sleep(350);
      await labsOf(LEES_PATIENT.id).expect(200);
      await labsOf(LEES_PATIENT.id).expect(200);
      // The report is cached for a second (probes must not load the database): it follows within it.
      const deadline = Date.now() + 3000;
      let status = '';
      while (status !== 'pass' && Date.now() < deadline) {
        status = String((await request(app).get('/health').expect(200)).body.status);
        if (status !== 'pass') await sleep(100);
      }
      expect(status).toBe('pass');

      const text = await metrics.render();
      expect(text).toMatch(/circuit_breaker_state\{service_name="labs",app="records"\} 0/);
      expect(text).toMatch(
        /circuit_breaker_transitions_total\{service_name="labs",from="closed",to="open",app="records"\} 1/,
      );
      expect(text).toMatch(/retries_total\{operation="labs",app="records"\} 6/);
    });

    test('a hanging lab system: each attempt is aborted at its timeout, and the request is a 503, not a hang', async () => {
      labs.mode = 'hanging';
      const started = Date.now();
      const res = await labsOf(LEES_PATIENT.id).expect(503);
      expect(res.body.details).toMatchObject({ dependency: 'labs' });
      expect(labs.calls).toBe(3);
      expect(Date.now() - started).toBeLessThan(2000);
    });

    test('the patient-summary flag: admins first, then rolled out to providers through the admin router', async () => {
      await as(DEMO_ADMIN).get(`${API}/patients/${LEES_PATIENT.id}/summary`).expect(200);
      const lee = as(LEE);
      // Off for providers: the route does not exist for them.
      const hidden = await lee.get(`${API}/patients/${LEES_PATIENT.id}/summary`).expect(404);
      expect(hidden.body.error_code).toBe('NOT_FOUND');

      // Only admins administer flags.
      await lee.get(`${API}/admin/flags`).expect(403);
      await request(app).get(`${API}/admin/flags`).expect(401);
      const listed = await as(DEMO_ADMIN).get(`${API}/admin/flags`).expect(200);
      expect(JSON.stringify(listed.body)).toContain('patient-summary');
      await as(DEMO_ADMIN)
        .put(`${API}/admin/flags/patient-summary`)
        .send({ enabled: true, roles: ['admin', 'provider'] })
        .expect(200);
      await as(DEMO_ADMIN).put(`${API}/admin/flags/patient-summary`).send({ enabled: 'yes' }).expect(400);

      const summary = await lee.get(`${API}/patients/${LEES_PATIENT.id}/summary`).expect(200);
      expect(summary.body.data).toMatchObject({ id: LEES_PATIENT.id });
      expect(typeof summary.body.data.age_years).toBe('number');
      // Patients are not in the rollout.
      await as(ARJUN).get(`${API}/patients/${ARJUN.patient_id!}/summary`).expect(404);
      expect(await metrics.render()).toMatch(
        /feature_flag_evaluations_total\{flag="patient-summary",result="on"/,
      );
    });
  },
);
