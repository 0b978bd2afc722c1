/**
 * The demo as its user runs it: `npm run demo` as a real child process on the embedded SQLite
 * default and on PostgreSQL through DATABASE_URL, `start()` in-process for restarts on a file
 * database, and the migrations and seed on their own.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Sqlite from 'better-sqlite3';
import { Pool } from 'pg';
import request from 'supertest';
import { createDatabase, createLogger, hashPassword, loadSettings } from '../../lib/index';
import type { Database } from '../../lib/index';
import { migrate, migrationSource, prepareDatabase, redactUrl } from '../../examples/health-service/database';
import type { DemoUser } from '../../examples/health-service/seed';
import {
  DEMO_ADMIN,
  DEMO_PATIENTS,
  DEMO_PROVIDERS,
  DEMO_USERS,
  SEED_PATIENTS,
  samplePatients,
} from '../../examples/health-service/seed';
import type { Started } from '../../examples/health-service/server';
import { start, walkthrough } from '../../examples/health-service/server';
import { mariaDatabase } from '../support/isolated';
import { PG_URL } from '../support/services';
import { bearer, pgSchema, TEST_PASSWORD_HASH, waitFor } from './support';

const ROOT = resolve(__dirname, '../..');
const API = loadSettings({ NODE_ENV: 'test' }).apiPrefix;
const NEW_PATIENT = { mrn: 'MRN-6001', given_name: 'Lena', family_name: 'Ortiz', birth_date: '1990-05-17' };
const MIGRATIONS = ['20250601000000_create_patients', '20250701000000_create_users'];
const SEEDED = '(migrated, 50 sample patients and 6 demo logins seeded)';

/** Log in over HTTP with a demo user's printed credentials; returns an `Authorization` value. */
async function loginAs(base: string, user: DemoUser): Promise<string> {
  const res = await request(base)
    .post(`${API}/auth/login`)
    .send({ email: user.email, password: user.password })
    .expect(200);
  return `Bearer ${(res.body as { data: { access_token: string } }).data.access_token}`;
}

/**
 * The walkthrough's script (from `API=` to the last command), and the status each of its `curl -i`
 * lines should print: the one its comment names, else 200.
 */
function walkthroughScript(banner: string): { script: string; statuses: number[] } {
  const lines = banner.split('\n');
  const from = lines.findIndex((l) => l.startsWith('  API='));
  const to = lines.findIndex((l) => l.startsWith('Send -H'));
  const script = lines.slice(from, to).join('\n');
  const statuses = lines
    .slice(from, to)
    .filter((l) => /^\s+curl -i /.test(l))
    .map((l) => Number(/#\s*(\d{3})\b/.exec(l)?.[1] ?? 200));
  return { script, statuses };
}

/** Run `script` in bash; resolves with its output once it exits. */
async function bash(script: string): Promise<string> {
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`the walkthrough script exited with ${code}:\n${out}`);
  return out;
}

/** A port that was free a moment ago (the OS picked it). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

/** The environment of this process minus what would change which database the demo picks. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && k !== 'DATABASE_URL' && k !== 'DATABASE_URL_FILE') env[k] = v;
  }
  return env;
}

/** Start a command in its own process group, so the whole tree (npm → sh → tsx → node) can be stopped. */
function run(command: string, args: readonly string[], env: Record<string, string>): Running {
  let out = '';
  let err = '';
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...baseEnv(), ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  return { child, stdout: () => out, stderr: () => err };
}

function stopGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** Quiet settings for in-process starts. */
const quiet = (env: Record<string, string>) => ({ NODE_ENV: 'test', LOG_LEVEL: 'error', PORT: '0', ...env });

describe('npm run demo', () => {
  const started: ChildProcess[] = [];

  afterEach(() => {
    for (const child of started.splice(0)) stopGroup(child, 'SIGKILL');
  });

  test('with no DATABASE_URL: embedded SQLite, seeded patients and logins, the credentials and a walkthrough that works; stops on SIGTERM', async () => {
    const port = await freePort();
    const demo = run('npm', ['run', 'demo'], { PORT: String(port), NODE_ENV: 'development' });
    started.push(demo.child);
    const url = await waitFor(() => /http:\/\/localhost:\d+/.exec(demo.stdout())?.[0], 30_000);
    expect(url).toBe(`http://localhost:${port}`);
    await waitFor(() => (demo.stdout().includes('Ctrl-C stops') ? true : undefined));
    const out = demo.stdout();
    expect(out).toContain(`database: sqlite sqlite::memory: ${SEEDED}`);
    for (const user of DEMO_USERS) expect(out).toMatch(new RegExp(`${user.email}\\s+${user.password}\\s`));
    expect(out).toContain(`curl -i ${url}/health`);
    expect(out).toContain(`API=${url}${API}`);
    expect(out).toContain('$API/patients?status=active&sort=-birth_date,family_name&size=5');
    expect(out).toMatch(/# 404: another provider's patient/);

    const http = request(`http://127.0.0.1:${port}`);
    const health = await http.get('/health').expect(200);
    expect(health.body).toMatchObject({ status: 'pass' });
    expect(health.body.checks['database:responseTime'][0]).toMatchObject({ status: 'pass' });
    await http.get(`${API}/patients`).expect(401);
    const admin = await loginAs(`http://127.0.0.1:${port}`, DEMO_ADMIN);
    const list = await http
      .get(`${API}/patients?status=active&sort=-birth_date&size=5`)
      .set('Authorization', admin)
      .expect(200);
    expect(list.body.meta.total).toBe(SEED_PATIENTS.filter((p) => p.status === 'active').length);
    expect(list.body.data).toHaveLength(5);
    const missing = await http.get(`${API}/patients/pat-0`).set('Authorization', admin).expect(404);
    expect(missing.body.error_code).toBe('NOT_FOUND');

    // The walkthrough as a user pastes it: every `curl -i` answers what its comment says.
    const { script, statuses } = walkthroughScript(out);
    expect(statuses.length).toBeGreaterThan(10);
    const result = await bash(script);
    const seen = [...result.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    expect(seen).toEqual(statuses);
    expect(result).toContain('"error_code":"TOKEN_MISSING"');
    expect(result).toContain('"error_code":"INVALID_CREDENTIALS"');
    expect(result).toContain('"error_code":"TOKEN_REVOKED"');
    expect(result).toContain(`"email":"${DEMO_PROVIDERS[0]!.email}"`); // /auth/me
    expect(result).toContain('"meta":{"page":1,"size":20,"total":1,"pages":1}'); // the patient's list
    expect(result).toContain(`"total":${SEED_PATIENTS.length + 1},`); // the administrator's, with the new patient
    expect(result).not.toContain('undefined'); // every token was picked

    const exited = once(demo.child, 'exit');
    stopGroup(demo.child, 'SIGTERM');
    await exited;
  }, 60_000);

  test('with DATABASE_URL=postgres://…: migrates and seeds PostgreSQL once, then keeps its data', async () => {
    const target = await pgSchema('ex_demo');
    try {
      const port = await freePort();
      const demo = run('npm', ['run', 'demo'], {
        PORT: String(port),
        NODE_ENV: 'development',
        DATABASE_URL: target.url,
      });
      started.push(demo.child);
      await waitFor(() => (demo.stdout().includes('Ctrl-C stops') ? true : undefined), 30_000);
      expect(demo.stdout()).toContain('database: postgres postgres://postgres@127.0.0.1:5432/test');
      expect(demo.stdout()).toContain(SEEDED);
      const http = request(`http://127.0.0.1:${port}`);
      const health = await http.get('/health').expect(200);
      expect(health.body).toMatchObject({ status: 'pass' });
      expect(health.body.checks['database:responseTime'][0]).toMatchObject({ status: 'pass' });
      const lee = DEMO_PROVIDERS[0]!;
      const provider = await loginAs(`http://127.0.0.1:${port}`, lee);
      const list = await http
        .get(`${API}/patients?family_name[ilike]=OKA&sort=given_name`)
        .set('Authorization', provider)
        .expect(200);
      const okafors = SEED_PATIENTS.filter((p) => p.family_name === 'Okafor' && p.provider_id === lee.id);
      expect(list.body.meta.total).toBe(okafors.length);
      const created = await http
        .post(`${API}/patients`)
        .set('Authorization', provider)
        .send(NEW_PATIENT)
        .expect(201);
      expect(created.body.data.provider_id).toBe(lee.id);
      const exited = once(demo.child, 'exit');
      stopGroup(demo.child, 'SIGTERM');
      await exited;

      // The rows are in the schema, in real tables.
      const pool = new Pool({ connectionString: PG_URL, max: 1 });
      try {
        const { rows } = await pool.query<{ n: string }>(
          `select count(*) as n from ${target.schema}.patients`,
        );
        expect(Number(rows[0]!.n)).toBe(51);
        const users = await pool.query<{ email: string; password_hash: string }>(
          `select email, password_hash from ${target.schema}.users order by email`,
        );
        expect(users.rows.map((r) => r.email)).toEqual(DEMO_USERS.map((u) => u.email).sort());
        // The demo's own logins get the default cost too: their passwords are printed, not their hashes.
        for (const r of users.rows) expect(r.password_hash).toMatch(/^\$scrypt\$n=32768,r=8,p=1\$/);
      } finally {
        await pool.end();
      }

      // A second start migrates nothing and seeds nothing: the data stays.
      const again = await start(quiet({ DATABASE_URL: target.url }));
      try {
        expect(again.seeded).toBe(0);
        expect(again.users).toBe(0);
        const res = await request(again.server)
          .get(`${API}/patients?size=1`)
          .set('Authorization', bearer(again.auth, DEMO_ADMIN))
          .expect(200);
        expect(res.body.meta.total).toBe(51);
      } finally {
        await again.stop();
      }
    } finally {
      await target.drop();
    }
  }, 60_000);

  test('SIGTERM: the server and the database close, exit code 0, the data is on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'caduceus-demo-'));
    try {
      const file = join(dir, 'data', 'demo.db');
      const port = await freePort();
      // tsx directly (npm itself dies of the signal): its exit code is the server's.
      const tsx = resolve(ROOT, 'node_modules/.bin/tsx');
      const demo = run(tsx, ['examples/health-service/server.ts'], {
        PORT: String(port),
        DATABASE_URL: `sqlite:${file}`,
        LOG_LEVEL: 'error',
      });
      started.push(demo.child);
      await waitFor(() => (demo.stdout().includes('Ctrl-C stops') ? true : undefined), 30_000);
      expect(demo.stdout()).toContain(`database: sqlite sqlite:${file} ${SEEDED}`);
      const created = await request(`http://127.0.0.1:${port}`)
        .post(`${API}/patients`)
        .set('Authorization', await loginAs(`http://127.0.0.1:${port}`, DEMO_ADMIN))
        .send(NEW_PATIENT)
        .expect(201);
      const exited = once(demo.child, 'exit');
      demo.child.kill('SIGTERM');
      const [code, signal] = (await exited) as [number | null, string | null];
      expect({ code, signal }).toEqual({ code: 0, signal: null });

      const sqlite = new Sqlite(file, { readonly: true });
      try {
        const row = sqlite.prepare('select mrn, ssn from patients where id = ?').get(created.body.data.id) as
          { mrn: string; ssn: string | null } | undefined;
        expect(row).toEqual({ mrn: NEW_PATIENT.mrn, ssn: null });
        expect(sqlite.prepare('select count(*) as n from patients').get()).toEqual({ n: 51 });
      } finally {
        sqlite.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 45_000);

  test('refuses invalid settings with every problem named and exit code 1', async () => {
    const tsx = resolve(ROOT, 'node_modules/.bin/tsx');
    const demo = run(tsx, ['examples/health-service/server.ts'], {
      PORT: '0',
      LOG_LEVEL: 'loud',
      RATE_LIMIT_WINDOW: '-1',
      DATABASE_URL: 'ftp://files.example/patients',
    });
    started.push(demo.child);
    const [code] = (await once(demo.child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(demo.stderr()).toContain('LOG_LEVEL');
    expect(demo.stderr()).toContain('RATE_LIMIT_WINDOW');
    expect(demo.stderr()).toContain('DATABASE_URL');
    expect(demo.stderr()).toContain('docs/error-codes.md#CONFIG_INVALID');
    expect(demo.stdout()).not.toContain('listening');
  }, 45_000);

  test('a database it cannot reach: exit code 1 with a message, never listening', async () => {
    const tsx = resolve(ROOT, 'node_modules/.bin/tsx');
    const demo = run(tsx, ['examples/health-service/server.ts'], {
      PORT: '0',
      DATABASE_URL: 'postgres://postgres:not-this-one@127.0.0.1:1/test',
    });
    started.push(demo.child);
    const [code] = (await once(demo.child, 'exit')) as [number | null];
    expect(code).toBe(1);
    expect(demo.stderr()).toMatch(/ECONNREFUSED|connect/);
    expect(demo.stderr()).not.toContain('not-this-one');
    expect(demo.stdout()).not.toContain('listening');
  }, 45_000);
});

describe('start() in-process', () => {
  let dir: string;
  const running: Started[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'caduceus-demo-'));
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.stop()));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('a file SQLite URL: the directory is created, data survives a restart, no reseed', async () => {
    const url = `sqlite:${join(dir, 'nested', 'demo.db')}`;
    const first = await start(quiet({ DATABASE_URL: url }));
    running.push(first);
    expect(first.seeded).toBe(50);
    expect(first.users).toBe(DEMO_USERS.length);
    expect(first.db.dialect).toBe('sqlite');
    const created = await request(first.server)
      .post(`${API}/patients`)
      .set('Authorization', bearer(first.auth, DEMO_ADMIN))
      .send(NEW_PATIENT)
      .expect(201);
    await first.stop();
    await first.stop(); // idempotent

    const second = await start(quiet({ DATABASE_URL: url }));
    running.push(second);
    expect(second.seeded).toBe(0);
    expect(second.users).toBe(0);
    // A token of the first run is still good: same keys (JWT_SECRET_KEY), and the login is in the file.
    const admin = bearer(first.auth, DEMO_ADMIN);
    const res = await request(second.server)
      .get(`${API}/patients?size=1`)
      .set('Authorization', admin)
      .expect(200);
    expect(res.body.meta.total).toBe(51);
    await request(second.server).get(created.headers.location!).set('Authorization', admin).expect(200);
  });

  test('the banner shows the database without its password', async () => {
    const target = await pgSchema('ex_banner');
    try {
      const url = target.url.replace('postgres@', 'postgres:s3cret-pw@');
      const s = await start(quiet({ DATABASE_URL: url }));
      running.push(s);
      expect(s.databaseUrl).toContain('postgres:***@127.0.0.1');
      const text = walkthrough(s);
      expect(text).toContain('database: postgres postgres://postgres:***@127.0.0.1:5432/test');
      expect(text).not.toContain('s3cret-pw');
      await s.stop();
    } finally {
      await target.drop();
    }
  });

  test('a port in use: start() rejects with EADDRINUSE', async () => {
    const holder = createServer();
    holder.listen(0);
    await once(holder, 'listening');
    const { port } = holder.address() as AddressInfo;
    try {
      await expect(start(quiet({ PORT: String(port) }))).rejects.toThrow(/EADDRINUSE/);
    } finally {
      holder.close();
    }
  });

  test('redactUrl masks passwords and leaves SQLite URLs alone', () => {
    expect(redactUrl('postgres://u:p@h:5432/d')).toBe('postgres://u:***@h:5432/d');
    expect(redactUrl('mysql://root@h/d')).toBe('mysql://root@h/d');
    expect(redactUrl('sqlite::memory:')).toBe('sqlite::memory:');
  });
});

describe('migrations and seed', () => {
  const settings = loadSettings({ NODE_ENV: 'test' });
  const open = (url = 'sqlite::memory:') =>
    createDatabase({ url, settings, logger: createLogger('database', { console: false, settings }) });
  const hash = (password: string) => hashPassword(password, TEST_PASSWORD_HASH);

  test('migrate runs each migration once; rollback drops the tables; prepareDatabase seeds only empty tables', async () => {
    const db = open();
    try {
      expect(await migrate(db)).toEqual(MIGRATIONS);
      expect(await migrate(db)).toEqual([]);
      expect(await db.knex.schema.hasTable('patients')).toBe(true);
      expect(await db.knex.schema.hasTable('users')).toBe(true);
      await db.knex.migrate.rollback({ migrationSource }, true);
      expect(await db.knex.schema.hasTable('patients')).toBe(false);
      expect(await db.knex.schema.hasTable('users')).toBe(false);
      expect(await prepareDatabase(db, { hash })).toEqual({ migrations: MIGRATIONS, seeded: 50, users: 6 });
      expect(await prepareDatabase(db, { hash })).toEqual({ migrations: [], seeded: 0, users: 0 });
    } finally {
      await db.close();
    }
  });

  test('a database of the patients-only schema gets the logins, linked to the records it has', async () => {
    const db = open();
    try {
      await db.knex.migrate.up({ migrationSource });
      await db
        .knex('patients')
        .insert(
          SEED_PATIENTS.slice(0, 4).map(({ provider_id: _p, ...p }) => ({ ...p, updated_at: p.created_at })),
        );
      // MRN-1004 (the first patient login's record) exists, MRN-1005 does not.
      expect(await prepareDatabase(db, { hash })).toEqual({
        migrations: [MIGRATIONS[1]],
        seeded: 0,
        users: 5,
      });
      const linked = (await db.knex('users').whereNotNull('patient_id').pluck('patient_id')) as string[];
      expect(linked).toEqual([DEMO_PATIENTS[0]!.patient_id]);
    } finally {
      await db.close();
    }
  });

  /** The users migration down and up again on `db`: the patients table keeps its indexes and rows. */
  async function downAndUp(db: Database): Promise<void> {
    await db.knex.migrate.latest({ migrationSource });
    const count = async () => Number((await db.knex('patients').count({ n: '*' }).first())?.n);
    await prepareDatabase(db, { hash });
    await db.knex.migrate.down({ migrationSource });
    expect(await db.knex.schema.hasTable('users')).toBe(false);
    expect(await db.knex.schema.hasColumn('patients', 'provider_id')).toBe(false);
    expect(await count()).toBe(50);
    await db.knex.migrate.up({ migrationSource });
    expect(await db.knex.schema.hasColumn('patients', 'provider_id')).toBe(true);
    // Outcomes rather than `rejects.toThrow()`: jest does not always take better-sqlite3's errors for Errors.
    const outcome = (query: PromiseLike<unknown>) =>
      Promise.resolve(query).then(
        () => 'written',
        () => 'refused',
      );
    // The MRN is still unique (SQLite rebuilt the table for the foreign key both ways).
    const duplicate = { ...SEED_PATIENTS[0]!, id: 'x', provider_id: null, updated_at: new Date() };
    expect(await outcome(db.knex('patients').insert(duplicate))).toBe('refused');
    // And provider_id is a foreign key again.
    const dangling = db
      .knex('patients')
      .where({ id: SEED_PATIENTS[0]!.id })
      .update({ provider_id: 'nobody' });
    expect(await outcome(dangling)).toBe('refused');
  }

  test('the users migration goes down and up again on SQLite, PostgreSQL and MariaDB', async () => {
    const sqlite = open();
    try {
      await downAndUp(sqlite);
      const indexes = await sqlite.knex.raw<{ name: string }[]>("pragma index_list('patients')");
      expect(indexes.map((i) => i.name).sort()).toEqual(
        expect.arrayContaining([
          'patients_birth_date_idx',
          'patients_created_at_idx',
          'patients_mrn_unique',
          'patients_name_idx',
          'patients_provider_idx',
          'patients_status_idx',
        ]),
      );
    } finally {
      await sqlite.close();
    }
    for (const target of [await pgSchema('ex_migrate'), await mariaDatabase('ex_migrate')]) {
      const db = open(target.url);
      try {
        await downAndUp(db);
      } finally {
        await db.close();
        await target.drop();
      }
    }
  }, 30_000);

  test('the migrations directory also works with Knex directory loading (the knex CLI way)', async () => {
    const db = open();
    try {
      await db.knex.migrate.latest({
        directory: resolve(ROOT, 'examples/health-service/migrations'),
        loadExtensions: ['.ts'],
      });
      expect(await db.knex.schema.hasColumn('patients', 'ssn')).toBe(true);
      expect(await db.knex.schema.hasColumn('patients', 'provider_id')).toBe(true);
      expect(await db.knex.schema.hasColumn('users', 'password_hash')).toBe(true);
    } finally {
      await db.close();
    }
  });

  test('the seed is deterministic, realistic and unique where the schema says so', () => {
    const providers = DEMO_PROVIDERS.map((p) => p.id);
    expect(samplePatients(50, 20250601, [...providers, null])).toEqual(SEED_PATIENTS);
    // Assigning providers does not change the patients themselves.
    expect(samplePatients()).toEqual(SEED_PATIENTS.map((p) => ({ ...p, provider_id: null })));
    expect(SEED_PATIENTS).toHaveLength(50);
    expect(new Set(SEED_PATIENTS.map((p) => p.id)).size).toBe(50);
    expect(new Set(SEED_PATIENTS.map((p) => p.mrn)).size).toBe(50);
    for (const p of SEED_PATIENTS) {
      expect(p.ssn).toMatch(/^9\d{2}-\d{2}-\d{4}$/); // never-issued area numbers
      expect(p.birth_date).toMatch(/^(19[3-9]\d|20[0-2]\d)-\d{2}-\d{2}$/);
    }
    expect(new Set(SEED_PATIENTS.map((p) => p.status))).toEqual(new Set(['active', 'inactive', 'deceased']));
    expect(providers.map((id) => SEED_PATIENTS.filter((p) => p.provider_id === id).length)).toEqual([17, 17]);
  });

  test('the demo logins: one admin, two providers, an auditor, two patients linked to records of different providers', () => {
    expect(DEMO_USERS.map((u) => u.roles.join())).toEqual([
      'admin',
      'provider',
      'provider',
      'auditor',
      'patient',
      'patient',
    ]);
    expect(new Set(DEMO_USERS.map((u) => u.id)).size).toBe(DEMO_USERS.length);
    expect(new Set(DEMO_USERS.map((u) => u.email)).size).toBe(DEMO_USERS.length);
    for (const u of DEMO_USERS) expect(u.email).toMatch(/^[a-z.]+@clinic\.example$/);
    const records = DEMO_PATIENTS.map((u) => SEED_PATIENTS.find((p) => p.id === u.patient_id));
    expect(records.map((p) => p?.provider_id)).toEqual(DEMO_PROVIDERS.map((p) => p.id));
  });
});
