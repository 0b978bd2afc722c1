/**
 * The variants of `npm run bench -- --suite audit`: one protected route, `GET /patients/:id`,
 * reading the patient through a `BaseRepository` — with the audit trail off, and on (the
 * repository's `audit` option and `trail.middleware()`), on SQLite in memory (the embedded
 * default) and on PostgreSQL (a schema per server process, dropped on shutdown). The caller is set
 * by a stand-in for `authenticate()` (`core.setUser`), so the figures are the trail's cost and not
 * token verification's. On shutdown each variant flushes the trail and reports how many events it
 * wrote, so the report can check that every request was audited.
 */
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { loadCaduceus } from '../support/caduceus.js';
import { patient, PATIENT_PATH } from '../support/patient.js';
import { serve } from '../support/serve.js';

type Store = 'sqlite' | 'postgres';

const PG_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export function serveAudit(audited: boolean, store: Store): void {
  const core = loadCaduceus();
  const settings = core.loadSettings({
    NODE_ENV: 'production',
    JWT_SECRET_KEY: 'b'.repeat(48),
    LOG_LEVEL: 'warn',
  });
  const schema = `bench_audit_${process.pid}`;
  const url = store === 'sqlite' ? 'sqlite::memory:' : PG_URL;
  const logger = core.createLogger('bench', { console: false, settings });
  const metrics = core.createMetrics({ app: 'bench', nodeMetrics: false, settings });
  const db = core.createDatabase({
    url,
    settings,
    logger,
    metrics,
    ...(store === 'postgres' ? { knex: { searchPath: [schema] } } : {}),
  });
  const trail = audited ? core.audit({ db, settings, logger, metrics }) : undefined;
  const user = {
    id: 'bench-provider',
    roles: ['provider'],
    email: undefined,
    scopes: [],
    claims: {},
    via: 'token',
  } as const;

  class Patients extends core.BaseRepository<{ id: number; family_name: string }> {
    constructor() {
      super(db, {
        table: 'patients',
        ...(trail === undefined ? {} : { audit: { trail, resourceType: 'Patient', patientIdColumn: 'id' } }),
      });
    }
  }
  const patients = new Patients();

  const app = express();
  app.use(core.requestContext());
  if (trail !== undefined) app.use(trail.middleware());
  // Stands in for authenticate(): the same caller on every request, without verifying a token.
  app.use(function benchUser(req: Request, _res: Response, next: NextFunction) {
    req.user = user;
    core.setUser(user.id, user.roles, req);
    next();
  });
  app.get(
    PATIENT_PATH,
    core.requireRoles('provider'),
    core.asyncHandler(async (req: Request<{ id: string }>, res: Response) => {
      const row = await patients.getById(req.params.id);
      res.json(patient(String(row.id)));
    }),
  );
  app.use(core.notFound());
  app.use(core.errors({ logger }));

  void (async () => {
    if (store === 'postgres') {
      await db.knex.raw('CREATE SCHEMA IF NOT EXISTS ??', [schema]);
    }
    await db.knex.schema.createTable('patients', (t) => {
      t.integer('id').primary();
      t.string('family_name');
      t.timestamps(false, false);
    });
    const now = new Date();
    const rows = Array.from({ length: 100 }, (_, i) => ({
      id: 4200 + i,
      family_name: `Family ${i}`,
      created_at: now,
      updated_at: now,
    }));
    await db.knex('patients').insert(rows);
    await trail?.migrate();
    serve(app, {
      description: `Express 5 + requestContext()${trail === undefined ? '' : ' + trail.middleware()'} + requireRoles + BaseRepository.getById on ${store === 'sqlite' ? 'SQLite (memory)' : 'PostgreSQL'}, audit ${trail === undefined ? 'off' : 'on'}`,
      async shutdown() {
        let audit: Record<string, number> = {};
        if (trail !== undefined) {
          await trail.close();
          const stats = trail.stats();
          audit = { auditEvents: stats.written, auditBatches: stats.batches };
        }
        if (store === 'postgres') await db.knex.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
        await db.close();
        return audit;
      },
    });
  })();
}
