/**
 * The audit trail's fault proof: the audit store is cut while protected requests run → the
 * configured overflow policy holds, and once the store is back no buffered event is lost or written
 * twice. Real PostgreSQL (and MariaDB) behind the TCP proxy of test/faults; the data the requests
 * read and write lives on a second Database that is never cut, so only the audit store is down —
 * except in the suite that cuts the one database both share.
 */
import type { Express } from 'express';
import { spawn } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'pg';
import request from 'supertest';
import * as core from '../../lib/index';
import { EXPRESS, type ExpressVariant } from '../support/express';
import { mariaDatabase, pgSchema } from '../support/isolated';
import { captureLogger, type CapturedLogger } from '../support/logs';
import { testMetrics, valueOf } from '../support/metrics';
import { TcpProxy } from '../faults/proxy';

const SETTINGS = core.loadSettings({ NODE_ENV: 'test', APP_NAME: 'caduceus-test', LOG_LEVEL: 'ERROR' });
const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
/** Backoff short enough that recovery is seen within a test. */
const RETRY = { initialMs: 20, maxMs: 100 };
const express5 = EXPRESS[1] as ExpressVariant;
const express4 = EXPRESS[0] as ExpressVariant;

type Dialect = 'postgres' | 'mysql';
type Trail = core.AuditTrail;
type AuditOptions = core.AuditOptions;

interface Patient {
  id: number;
  name: string;
}

const silent = (): core.Logger =>
  core.createLogger('quiet', { console: false, settings: SETTINGS, transports: [] });

function open(url: string): core.Database {
  return core.createDatabase({
    url,
    connectTimeoutMs: 1000,
    acquireTimeoutMs: 1000,
    pool: { max: 4 },
    logger: silent(),
    settings: SETTINGS,
    metrics: false,
  });
}

/** The same database as `url`, reached through the proxy listening on `port`. */
function through(url: string, dialect: Dialect, port: number): string {
  const from = dialect === 'postgres' ? '127.0.0.1:5432' : '127.0.0.1:3306';
  return url.replace(from, `127.0.0.1:${port}`);
}

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for: ${what}`);
    await sleep(10);
  }
}

/**
 * One dialect's databases: `data` direct (never cut) and `audit` through a proxy, both on the same
 * isolated schema/database, so the test reads the audit table directly through `data`.
 */
interface Stores {
  dialect: Dialect;
  url: string;
  data: core.Database;
  proxy: TcpProxy;
  audit: core.Database;
  close(): Promise<void>;
}

async function stores(dialect: Dialect, prefix: string): Promise<Stores> {
  const target = dialect === 'postgres' ? await pgSchema(prefix) : await mariaDatabase(prefix);
  const data = open(target.url);
  const proxy = new TcpProxy(dialect === 'postgres' ? 5432 : 3306);
  const port = await proxy.start();
  const audit = open(through(target.url, dialect, port));
  await data.knex.schema.createTable('patients', (t) => {
    t.increments('id');
    t.string('name', 64).notNullable();
  });
  return {
    dialect,
    url: target.url,
    data,
    proxy,
    audit,
    async close() {
      await proxy.close();
      await audit.close();
      await data.close();
      await target.drop();
    },
  };
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

function makeAuth(): core.Auth {
  return core.createAuth({
    settings: SETTINGS,
    secret: SECRET,
    redis: false,
    metrics: false,
    logger: silent(),
  });
}

/** requestContext → authenticate → trail.middleware() → patients read and created through the repository. */
function buildApp(
  { express }: ExpressVariant,
  auth: core.Auth,
  trail: Trail,
  repo: PatientRepository,
  errors: CapturedLogger,
): Express {
  const app = express();
  app.use(express.json());
  app.use(core.requestContext());
  app.use('/api', core.authenticate({ auth }), trail.middleware());
  app.get(
    '/api/patients/:id',
    core.asyncHandler(async (req, res) => {
      res.json(await repo.getById(Number(req.params.id)));
    }),
  );
  app.post(
    '/api/patients',
    core.asyncHandler(async (req, res) => {
      res.status(201).json(await repo.create(req.body as Partial<Patient>));
    }),
  );
  app.use(core.notFound(), core.errors({ settings: SETTINGS, logger: errors.logger, format: 'envelope' }));
  return app;
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  requestId: string;
}

async function call(
  app: Express,
  token: string,
  method: 'get' | 'post',
  path: string,
  body?: object,
): Promise<Answer> {
  const req = request(app)[method](path).set('Authorization', `Bearer ${token}`);
  const res = await (body === undefined ? req : req.send(body));
  return {
    status: res.status,
    body: res.body as Record<string, unknown>,
    requestId: String(res.headers['x-request-id']),
  };
}

/** Rows of the audit table per request id, read directly (never through the proxy). */
async function rowsByRequest(db: core.Database, table: string): Promise<Map<string, number>> {
  const rows: { request_id: string | null; n: number | string }[] = await db
    .knex(table)
    .select('request_id')
    .count({ n: '*' })
    .groupBy('request_id');
  return new Map(rows.map((r) => [String(r.request_id), Number(r.n)]));
}

async function rowCount(db: core.Database, table: string): Promise<number> {
  const [row]: { n: number | string }[] = await db.knex(table).count({ n: '*' });
  return Number(row?.n ?? 0);
}

function expectUnavailableEnvelope(a: Answer): void {
  expect({ status: a.status, success: a.body.success, code: a.body.error_code }).toEqual({
    status: 503,
    success: false,
    code: 'SERVICE_UNAVAILABLE',
  });
  expect(typeof a.body.error).toBe('string');
  expect(a.body.details).toMatchObject({ request_id: a.requestId });
}

function trailOptions(
  db: core.Database,
  table: string,
  extra: Partial<AuditOptions>,
  log: CapturedLogger,
  metrics: core.Metrics | false,
): AuditOptions {
  return {
    db,
    table,
    batchSize: 50,
    flushIntervalMs: 10,
    retry: RETRY,
    logger: log.logger,
    metrics,
    settings: SETTINGS,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------------

const REJECT_CASES: [string, Dialect, ExpressVariant][] = [
  ['PostgreSQL, Express 4', 'postgres', express4],
  ['PostgreSQL, Express 5', 'postgres', express5],
  ['MariaDB, Express 5', 'mysql', express5],
];

describe.each(REJECT_CASES)(
  "onOverflow 'reject' while the audit store is cut (%s)",
  (_n, dialect, variant) => {
    let s: Stores;
    const auth = makeAuth();
    beforeAll(async () => {
      s = await stores(dialect, `aurej${dialect === 'postgres' ? variant.major : 'm'}`);
    });
    afterAll(async () => {
      await s.close();
      await auth.close();
    });

    it('requests succeed until the buffer is full, then 503 before touching data; after recovery every event is stored once', async () => {
      const MAX = 4;
      const log = captureLogger('audit');
      const metrics = testMetrics();
      const trail = core.audit(
        trailOptions(s.audit, 'audit_rej', { onOverflow: 'reject', maxBuffer: MAX }, log, metrics),
      );
      try {
        await trail.migrate();
        const repo = new PatientRepository(s.data, trail);
        await s.data.knex('patients').insert({ name: 'seed' });
        const seedRow: { id: number } | undefined = await s.data
          .knex('patients')
          .where({ name: 'seed' })
          .first('id');
        const seedId = Number(seedRow?.id);
        const app = buildApp(variant, auth, trail, repo, captureLogger('errors'));
        const token = auth.createTokens({ userId: 'dr-1', roles: ['clinician'] }).access_token;

        const warm = await Promise.all(
          [1, 2, 3].map(() => call(app, token, 'get', `/api/patients/${seedId}`)),
        );
        expect(warm.map((a) => a.status)).toEqual([200, 200, 200]);
        await trail.flush();
        expect(await rowCount(s.data, 'audit_rej')).toBe(3);

        await s.proxy.cut();
        const accepted: Answer[] = [];
        for (let i = 0; i < MAX; i++) accepted.push(await call(app, token, 'get', `/api/patients/${seedId}`));
        expect(accepted.map((a) => a.status)).toEqual(Array(MAX).fill(200));
        await waitFor('the writer to notice the outage', () => trail.stats().failing);
        expect(trail.stats()).toMatchObject({ buffered: MAX, rejected: 0, dropped: 0 });

        const refusedRead = await call(app, token, 'get', `/api/patients/${seedId}`);
        expectUnavailableEnvelope(refusedRead);
        const refusedCreate = await call(app, token, 'post', '/api/patients', { name: 'must-not-exist' });
        expectUnavailableEnvelope(refusedCreate);
        // Refused before it touched data: no row.
        expect(await s.data.knex('patients').where({ name: 'must-not-exist' }).select('id')).toEqual([]);
        expect(trail.stats()).toMatchObject({ buffered: MAX, rejected: 2, dropped: 0, failing: true });
        expect(await valueOf(metrics, 'audit_events_rejected_total')).toBe(2);
        expect(await valueOf(metrics, 'audit_buffer_events')).toBe(MAX);
        expect(await valueOf(metrics, 'audit_write_failures_total')).toBeGreaterThanOrEqual(1);

        await s.proxy.restore();
        await trail.flush();
        const byRequest = await rowsByRequest(s.data, 'audit_rej');
        for (const a of [...warm, ...accepted])
          expect([a.requestId, byRequest.get(a.requestId)]).toEqual([a.requestId, 1]);
        for (const a of [refusedRead, refusedCreate]) expect(byRequest.get(a.requestId)).toBeUndefined();
        expect(await rowCount(s.data, 'audit_rej')).toBe(3 + MAX);
        expect(await trail.verify()).toMatchObject({ ok: true, checked: 3 + MAX, brokenAt: null });
        expect(trail.stats()).toMatchObject({ buffered: 0, written: 3 + MAX, failing: false });
        expect(await valueOf(metrics, 'audit_buffer_events')).toBe(0);
        expect(await valueOf(metrics, 'audit_events_written_total')).toBe(3 + MAX);

        // Serving again, and the create that was refused can now be made.
        const created = await call(app, token, 'post', '/api/patients', { name: 'after-recovery' });
        expect(created.status).toBe(201);
        await trail.flush();
        const row = await s.data.knex('audit_rej').where({ request_id: created.requestId }).first();
        expect(row).toMatchObject({
          action: 'create',
          outcome: 'success',
          resource_type: 'Patient',
          actor_id: 'dr-1',
        });
      } finally {
        await s.proxy.restore().catch(() => undefined);
        await trail.close();
      }
    });
  },
);

describe("onOverflow 'drop' while the audit store is cut (PostgreSQL)", () => {
  let s: Stores;
  const auth = makeAuth();
  beforeAll(async () => {
    s = await stores('postgres', 'audrop');
  });
  afterAll(async () => {
    await s.close();
    await auth.close();
  });

  it('requests never fail; stored + dropped = accesses, each drop counted and logged at error, nothing twice', async () => {
    const MAX = 3;
    const log = captureLogger('audit');
    const metrics = testMetrics();
    const trail = core.audit(
      trailOptions(s.audit, 'audit_drop', { onOverflow: 'drop', maxBuffer: MAX }, log, metrics),
    );
    try {
      await trail.migrate();
      const repo = new PatientRepository(s.data, trail);
      await s.data.knex('patients').insert({ name: 'seed' });
      const [{ id }] = (await s.data.knex('patients').select('id')) as [{ id: number }];
      const app = buildApp(express5, auth, trail, repo, captureLogger('errors'));
      const token = auth.createTokens({ userId: 'dr-2', roles: ['clinician'] }).access_token;

      const warm = [
        await call(app, token, 'get', `/api/patients/${id}`),
        await call(app, token, 'get', `/api/patients/${id}`),
      ];
      await trail.flush();

      await s.proxy.cut();
      const during: Answer[] = [];
      for (let i = 0; i < 6; i++) during.push(await call(app, token, 'get', `/api/patients/${id}`));
      during.push(await call(app, token, 'post', '/api/patients', { name: 'created-while-down' }));
      during.push(await call(app, token, 'post', '/api/patients', { name: 'created-while-down-2' }));
      expect(during.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200, 201, 201]);
      const accesses = warm.length + during.length;
      const dropped = during.length - MAX;
      expect(trail.stats()).toMatchObject({ buffered: MAX, dropped, rejected: 0 });
      expect(await valueOf(metrics, 'audit_events_dropped_total')).toBe(dropped);
      const errorLines = log.lines().filter((l) => l.level === 'error' && /drop/i.test(JSON.stringify(l)));
      expect(errorLines.length).toBeGreaterThanOrEqual(1);

      await s.proxy.restore();
      await trail.flush();
      const byRequest = await rowsByRequest(s.data, 'audit_drop');
      const stored = await rowCount(s.data, 'audit_drop');
      expect(stored + trail.stats().dropped).toBe(accesses);
      for (const a of [...warm, ...during]) expect(byRequest.get(a.requestId) ?? 0).toBeLessThanOrEqual(1);
      for (const a of warm) expect(byRequest.get(a.requestId)).toBe(1);
      const ids: { event_id: string }[] = await s.data.knex('audit_drop').select('event_id');
      expect(new Set(ids.map((r) => r.event_id)).size).toBe(stored);
      expect(await trail.verify()).toMatchObject({ ok: true, checked: stored });
    } finally {
      await s.proxy.restore().catch(() => undefined);
      await trail.close();
    }
  });
});

describe('the one database (data and audit) is cut (PostgreSQL)', () => {
  let target: Awaited<ReturnType<typeof pgSchema>>;
  let direct: core.Database;
  let proxy: TcpProxy;
  let db: core.Database;
  const auth = makeAuth();
  beforeAll(async () => {
    target = await pgSchema('aushared');
    direct = open(target.url);
    await direct.knex.schema.createTable('patients', (t) => {
      t.increments('id');
      t.string('name', 64).notNullable();
    });
    proxy = new TcpProxy(5432);
    db = open(through(target.url, 'postgres', await proxy.start()));
  });
  afterAll(async () => {
    await proxy.close();
    await db.close();
    await direct.close();
    await target.drop();
    await auth.close();
  });

  it('events buffered when the line is cut are written once after recovery; failed requests are 503s never recorded as successes', async () => {
    const trail = core.audit(
      // A long interval: the events of the first requests are still in the buffer when the line is cut.
      trailOptions(
        db,
        'audit_shared',
        { flushIntervalMs: 1000, batchSize: 100 },
        captureLogger('audit'),
        testMetrics(),
      ),
    );
    try {
      await trail.migrate();
      const repo = new PatientRepository(db, trail);
      await direct.knex('patients').insert({ name: 'seed' });
      const [{ id }] = (await direct.knex('patients').select('id')) as [{ id: number }];
      const app = buildApp(express5, auth, trail, repo, captureLogger('errors'));
      const token = auth.createTokens({ userId: 'dr-3', roles: ['clinician'] }).access_token;

      const ok = [
        await call(app, token, 'get', `/api/patients/${id}`),
        await call(app, token, 'post', '/api/patients', { name: 'before-cut' }),
        await call(app, token, 'get', `/api/patients/${id}`),
      ];
      expect(ok.map((a) => a.status)).toEqual([200, 201, 200]);
      expect(trail.stats().buffered).toBe(3);

      await proxy.cut();
      const failed = [
        await call(app, token, 'get', `/api/patients/${id}`),
        await call(app, token, 'post', '/api/patients', { name: 'during-cut' }),
      ];
      for (const a of failed) {
        expectUnavailableEnvelope(a);
        expect(a.body.details).toMatchObject({ dependency: 'database' });
      }
      await waitFor('the writer to fail on the cut line', () => trail.stats().failing, 4000);

      await proxy.restore();
      await trail.flush();
      const byRequest = await rowsByRequest(direct, 'audit_shared');
      for (const a of ok) expect([a.requestId, byRequest.get(a.requestId)]).toEqual([a.requestId, 1]);
      for (const a of failed) {
        const rows: { outcome: string }[] = await direct
          .knex('audit_shared')
          .where({ request_id: a.requestId })
          .select('outcome');
        expect(rows.length).toBeLessThanOrEqual(1);
        for (const r of rows) expect(r.outcome).toBe('error');
      }
      expect(await direct.knex('patients').where({ name: 'during-cut' }).select('id')).toEqual([]);
      expect(await trail.verify()).toMatchObject({ ok: true, brokenAt: null });
    } finally {
      await proxy.restore().catch(() => undefined);
      await trail.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------

/**
 * A proxy that, once armed, lets the next `COMMIT` reach the server, waits for the server's answer
 * (so the transaction is durable), and then resets the client's connection instead of forwarding
 * that answer: the writer cannot know its batch was committed — the case that writes a batch twice
 * when the retry is naive.
 */
class CommitCutProxy {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  #armed = false;
  cuts = 0;
  /** What the server answered to the COMMIT (and the writer never got). */
  reply: Buffer | undefined;

  constructor(private readonly targetPort: number) {}

  arm(): void {
    this.#armed = true;
  }

  async start(): Promise<number> {
    const server = createServer((client) => {
      const upstream = connect(this.targetPort, '127.0.0.1');
      this.#sockets.add(client).add(upstream);
      let committing = false;
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => {
        upstream.destroy();
        this.#sockets.delete(client);
      });
      upstream.on('close', () => {
        client.destroy();
        this.#sockets.delete(upstream);
      });
      client.on('data', (chunk: Buffer) => {
        // Knex ends a transaction with the statement `COMMIT;` (table names never contain it).
        if (this.#armed && chunk.toString('latin1').includes('COMMIT;')) {
          this.#armed = false;
          committing = true;
        }
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => {
        if (committing) {
          // The server answered the COMMIT: it is durable. The writer never hears it.
          this.cuts += 1;
          this.reply = chunk;
          client.resetAndDestroy();
          upstream.destroy();
          return;
        }
        client.write(chunk);
      });
    });
    this.#server = server;
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined)
      await new Promise<void>((done) =>
        server.close(() => {
          done();
        }),
      );
  }
}

describe.each(['postgres', 'mysql'] as const)('a cut in the middle of a write (%s)', (dialect) => {
  let target: { url: string; drop(): Promise<void> };
  let direct: core.Database;
  beforeAll(async () => {
    target = dialect === 'postgres' ? await pgSchema('aucommit') : await mariaDatabase('aucommit');
    direct = open(target.url);
  });
  afterAll(async () => {
    await direct.close();
    await target.drop();
  });

  it('the answer to COMMIT is lost: the batch is neither lost nor written twice', async () => {
    const proxy = new CommitCutProxy(dialect === 'postgres' ? 5432 : 3306);
    const db = open(through(target.url, dialect, await proxy.start()));
    const log = captureLogger('audit');
    const trail = core.audit(
      trailOptions(db, 'audit_ack', { batchSize: 200, flushIntervalMs: 50 }, log, false),
    );
    try {
      await trail.migrate();
      trail.record({ action: 'export', resourceType: 'Patient', resourceId: 'warm', patientId: 'warm' });
      await trail.flush();
      proxy.arm();
      const N = 40;
      for (let i = 0; i < N; i++)
        trail.record({ action: 'export', resourceType: 'Patient', resourceId: `p${i}`, patientId: `p${i}` });
      await trail.flush();
      expect(proxy.cuts).toBe(1);
      // The server did commit: PostgreSQL's CommandComplete "COMMIT", MariaDB's OK packet.
      const reply = proxy.reply ?? Buffer.alloc(0);
      if (dialect === 'postgres') expect(reply.toString('latin1')).toMatch(/^C.{4}COMMIT/s);
      else expect(reply[4]).toBe(0x00);
      const rows: { resource_id: string; n: number | string }[] = await direct
        .knex('audit_ack')
        .select('resource_id')
        .count({ n: '*' })
        .groupBy('resource_id');
      const counts = Object.fromEntries(rows.map((r) => [r.resource_id, Number(r.n)]));
      const expected = Object.fromEntries([
        ['warm', 1],
        ...Array.from({ length: N }, (_, i) => [`p${i}`, 1]),
      ]);
      expect(counts).toEqual(expected);
      expect(await trail.verify()).toMatchObject({ ok: true, checked: N + 1, brokenAt: null });
      expect(trail.stats()).toMatchObject({ buffered: 0, written: N + 1, failing: false });
    } finally {
      await trail.close();
      await proxy.close();
      await db.close();
    }
  });
});

describe('a cut while a batch waits inside its transaction (PostgreSQL, head row locked)', () => {
  let target: Awaited<ReturnType<typeof pgSchema>>;
  let direct: Pool;
  let proxy: TcpProxy;
  let db: core.Database;
  beforeAll(async () => {
    target = await pgSchema('aulock');
    direct = new Pool({ connectionString: target.url, max: 2 });
    proxy = new TcpProxy(5432);
    db = open(
      `${through(target.url, 'postgres', await proxy.start())}&application_name=aulock_${process.pid}`,
    );
  });
  afterAll(async () => {
    await proxy.close();
    await db.close();
    await direct.end();
    await target.drop();
  });

  it('the transaction is rolled back with the line, the retry writes each event once', async () => {
    const trail = core.audit(trailOptions(db, 'audit_lock', {}, captureLogger('audit'), false));
    const locker = await direct.connect();
    try {
      await trail.migrate();
      trail.record({ action: 'export', resourceType: 'Patient', resourceId: 'warm' });
      await trail.flush();
      await locker.query('BEGIN');
      await locker.query('SELECT * FROM audit_lock_head FOR UPDATE');
      for (let i = 0; i < 10; i++)
        trail.record({ action: 'export', resourceType: 'Patient', resourceId: `q${i}` });
      await waitFor('the batch to wait on the head row lock', async () => {
        const { rows } = await direct.query(
          "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
          [`aulock_${process.pid}`],
        );
        return rows.length > 0;
      });
      await proxy.cut();
      await locker.query('ROLLBACK');
      await sleep(50);
      await proxy.restore();
      await trail.flush();
      const rows = (await direct.query(
        'SELECT resource_id, count(*)::int AS n FROM audit_lock GROUP BY resource_id ORDER BY resource_id',
      )) as { rows: { resource_id: string; n: number }[] };
      expect(rows.rows).toEqual(
        [
          { resource_id: 'warm', n: 1 },
          ...Array.from({ length: 10 }, (_, i) => ({ resource_id: `q${i}`, n: 1 })),
        ].sort((a, b) => a.resource_id.localeCompare(b.resource_id)),
      );
      expect(await trail.verify()).toMatchObject({ ok: true, checked: 11 });
    } finally {
      locker.release();
      await proxy.restore().catch(() => undefined);
      await trail.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------

describe('the process during an outage (a child process with real unhandledRejection listeners)', () => {
  // Jest's process object is a copy: a real listener needs a real process (see test/faults/pg-proxy.test.ts).
  it('no unhandled rejection, no crash; close() during the outage returns within its deadline and says what it could not write', async () => {
    const root = resolve(__dirname, '../..');
    const child = spawn(resolve(root, 'node_modules/.bin/tsx'), ['test/audit/faults-child.ts'], {
      cwd: root,
      env: { ...process.env, NODE_ENV: 'test' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    // The child must exit on its own once everything is closed: a timer left by close() keeps it alive.
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) =>
      child.on('exit', (c, s) => {
        done([c, s]);
      }),
    );
    clearTimeout(killer);
    expect({ code, signal, stderr: err }).toEqual({ code: 0, signal: null, stderr: '' });
    const line = out.split('\n').find((l) => l.startsWith('REPORT '));
    expect(line).toBeDefined();
    const report = JSON.parse(line!.slice('REPORT '.length)) as {
      uncaught: string[];
      statuses: number[];
      buffered: number;
      closeMs: number;
      close: { ok: boolean; message: string };
      closeLogs: Record<string, unknown>[];
    };
    expect(report.uncaught).toEqual([]);
    expect(report.statuses).toEqual([200, 200, 200, 503, 503]);
    expect(report.buffered).toBe(3);
    // Default deadline 5 s (docs/audit.md), with slack for a loaded machine.
    expect(report.closeMs).toBeLessThan(6500);
    // It says what it could not write: a rejection, or a warn/error line naming the 3 events.
    const said =
      !report.close.ok ||
      report.closeLogs.some(
        (l) => (l.level === 'error' || l.level === 'warn') && JSON.stringify(l).includes('3'),
      );
    expect({ said, close: report.close, closeLogs: report.closeLogs }).toMatchObject({ said: true });
  }, 30_000);
});
