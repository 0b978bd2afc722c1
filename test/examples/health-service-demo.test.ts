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
import { createDatabase, createLogger, loadSettings } from '../../lib/index';
import { migrate, migrationSource, prepareDatabase, redactUrl } from '../../examples/health-service/database';
import { SEED_PATIENTS, samplePatients } from '../../examples/health-service/seed';
import type { Started } from '../../examples/health-service/server';
import { start, walkthrough } from '../../examples/health-service/server';
import { PG_URL } from '../support/services';
import { pgSchema, waitFor } from './support';

const ROOT = resolve(__dirname, '../..');
const API = loadSettings({ NODE_ENV: 'test' }).apiPrefix;
const NEW_PATIENT = { mrn: 'MRN-6001', given_name: 'Lena', family_name: 'Ortiz', birth_date: '1990-05-17' };

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

  test('with no DATABASE_URL: embedded SQLite, 50 seeded patients, a curl walkthrough; stops on SIGTERM', async () => {
    const port = await freePort();
    const demo = run('npm', ['run', 'demo'], { PORT: String(port), NODE_ENV: 'development' });
    started.push(demo.child);
    const url = await waitFor(() => /http:\/\/localhost:\d+/.exec(demo.stdout())?.[0], 30_000);
    expect(url).toBe(`http://localhost:${port}`);
    await waitFor(() => (demo.stdout().includes('Ctrl-C stops') ? true : undefined));
    const out = demo.stdout();
    expect(out).toContain('database: sqlite sqlite::memory: (migrated, 50 sample patients seeded)');
    expect(out).toContain(`curl -i ${url}/health`);
    expect(out).toContain(
      `curl -g '${url}${API}/patients?status=active&sort=-birth_date,family_name&size=10'`,
    );
    expect(out).toContain(`${url}${API}/patients?limit=10&sort=-created_at&cursor=<next_cursor>`);
    expect(out).toContain(`-H 'If-Match: 1'`);
    expect(out).toContain(`${API}/patients/${SEED_PATIENTS[0]!.id}`);

    const http = request(`http://127.0.0.1:${port}`);
    const health = await http.get('/health').expect(200);
    expect(health.body).toMatchObject({ status: 'ok', database: { status: 'healthy', dialect: 'sqlite' } });
    const list = await http.get(`${API}/patients?status=active&sort=-birth_date&size=5`).expect(200);
    expect(list.body.meta.total).toBe(SEED_PATIENTS.filter((p) => p.status === 'active').length);
    expect(list.body.data).toHaveLength(5);
    const keyset = await http.get(`${API}/patients?limit=10&sort=-created_at`).expect(200);
    expect(typeof keyset.body.meta.next_cursor).toBe('string');
    const missing = await http.get(`${API}/patients/pat-0`).expect(404);
    expect(missing.body.error_code).toBe('NOT_FOUND');
    await http.post(`${API}/patients`).send(NEW_PATIENT).expect(201);

    const exited = once(demo.child, 'exit');
    stopGroup(demo.child, 'SIGTERM');
    await exited;
  }, 45_000);

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
      expect(demo.stdout()).toContain('(migrated, 50 sample patients seeded)');
      const http = request(`http://127.0.0.1:${port}`);
      const health = await http.get('/health').expect(200);
      expect(health.body.database).toMatchObject({ status: 'healthy', dialect: 'postgres' });
      expect(health.body.database.version).toMatch(/^PostgreSQL/);
      const list = await http.get(`${API}/patients?family_name[ilike]=OKA&sort=given_name`).expect(200);
      expect(list.body.meta.total).toBe(SEED_PATIENTS.filter((p) => p.family_name === 'Okafor').length);
      await http.post(`${API}/patients`).send(NEW_PATIENT).expect(201);
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
      } finally {
        await pool.end();
      }

      // A second start migrates nothing and seeds nothing: the data stays.
      const again = await start(quiet({ DATABASE_URL: target.url }));
      try {
        expect(again.seeded).toBe(0);
        const res = await request(again.server).get(`${API}/patients?size=1`).expect(200);
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
      expect(demo.stdout()).toContain(
        `database: sqlite sqlite:${file} (migrated, 50 sample patients seeded)`,
      );
      const created = await request(`http://127.0.0.1:${port}`)
        .post(`${API}/patients`)
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
    expect(first.db.dialect).toBe('sqlite');
    const created = await request(first.server).post(`${API}/patients`).send(NEW_PATIENT).expect(201);
    await first.stop();
    await first.stop(); // idempotent

    const second = await start(quiet({ DATABASE_URL: url }));
    running.push(second);
    expect(second.seeded).toBe(0);
    const res = await request(second.server).get(`${API}/patients?size=1`).expect(200);
    expect(res.body.meta.total).toBe(51);
    await request(second.server).get(created.headers.location!).expect(200);
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
  const open = () =>
    createDatabase({
      url: 'sqlite::memory:',
      settings: loadSettings({ NODE_ENV: 'test' }),
      logger: createLogger('database', { console: false, settings: loadSettings({ NODE_ENV: 'test' }) }),
    });

  test('migrate runs each migration once; rollback drops the table; prepareDatabase seeds only an empty table', async () => {
    const db = open();
    try {
      expect(await migrate(db)).toEqual(['20250601000000_create_patients']);
      expect(await migrate(db)).toEqual([]);
      expect(await db.knex.schema.hasTable('patients')).toBe(true);
      await db.knex.migrate.rollback({ migrationSource }, true);
      expect(await db.knex.schema.hasTable('patients')).toBe(false);
      expect(await prepareDatabase(db)).toEqual({
        migrations: ['20250601000000_create_patients'],
        seeded: 50,
      });
      expect(await prepareDatabase(db)).toEqual({ migrations: [], seeded: 0 });
    } finally {
      await db.close();
    }
  });

  test('the migrations directory also works with Knex directory loading (the knex CLI way)', async () => {
    const db = open();
    try {
      await db.knex.migrate.latest({
        directory: resolve(ROOT, 'examples/health-service/migrations'),
        loadExtensions: ['.ts'],
      });
      expect(await db.knex.schema.hasColumn('patients', 'ssn')).toBe(true);
    } finally {
      await db.close();
    }
  });

  test('the seed is deterministic, realistic and unique where the schema says so', () => {
    expect(samplePatients()).toEqual(SEED_PATIENTS);
    expect(SEED_PATIENTS).toHaveLength(50);
    expect(new Set(SEED_PATIENTS.map((p) => p.id)).size).toBe(50);
    expect(new Set(SEED_PATIENTS.map((p) => p.mrn)).size).toBe(50);
    for (const p of SEED_PATIENTS) {
      expect(p.ssn).toMatch(/^9\d{2}-\d{2}-\d{4}$/); // never-issued area numbers
      expect(p.birth_date).toMatch(/^(19[3-9]\d|20[0-2]\d)-\d{2}-\d{2}$/);
    }
    expect(new Set(SEED_PATIENTS.map((p) => p.status))).toEqual(new Set(['active', 'inactive', 'deceased']));
  });
});
