import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Database } from '../../lib/index';
import { createDatabase, createLogger, loadSettings } from '../../lib/index';
import { createApp } from './app';
import { DEFAULT_DATABASE_URL, ensureSqliteDirectory, prepareDatabase, redactUrl } from './database';
import { SEED_PATIENTS } from './seed';

export interface Started {
  server: Server;
  url: string;
  apiPrefix: string;
  db: Database;
  /** The database URL in use, password masked. */
  databaseUrl: string;
  /** How many seed patients were inserted at this start (0 when the table already had rows). */
  seeded: number;
  /** Stop accepting connections, let in-flight requests finish, then close the database. */
  stop(): Promise<void>;
}

/** Parse `PORT`: an integer from 0 (any free port) to 65535. Default 3000. */
export function portFrom(value: string | undefined): number {
  if (value === undefined || value === '') return 3000;
  const port = Number(value);
  if (!/^\d{1,5}$/.test(value) || port > 65535)
    throw new Error(`PORT must be an integer from 0 to 65535, got "${value}"`);
  return port;
}

/**
 * Open the database from `env` (`DATABASE_URL`, else SQLite in memory), migrate it, seed it when
 * the `patients` table is empty, build the app and listen. Resolves once it accepts connections.
 */
export async function start(
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<Started> {
  const port = portFrom(env.PORT);
  const settings = loadSettings(env);
  const url = settings.database.url ?? DEFAULT_DATABASE_URL;
  ensureSqliteDirectory(url);
  const db = createDatabase({ url, settings, logger: createLogger('database', { settings }) });
  let seeded: number;
  try {
    ({ seeded } = await prepareDatabase(db));
  } catch (err) {
    await db.close();
    throw err;
  }
  const app = createApp({ settings, db });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port);
    s.once('error', reject);
    s.once('listening', () => {
      resolve(s);
    });
  }).catch(async (err: unknown) => {
    await db.close();
    throw err;
  });
  const { port: actual } = server.address() as AddressInfo;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
      server.closeIdleConnections();
    }).then(() => db.close()));
  return {
    server,
    url: `http://localhost:${actual}`,
    apiPrefix: settings.apiPrefix,
    db,
    databaseUrl: redactUrl(url),
    seeded,
    stop,
  };
}

export function walkthrough(
  started: Pick<Started, 'url' | 'apiPrefix' | 'databaseUrl' | 'db' | 'seeded'>,
): string {
  const { url, apiPrefix, databaseUrl, db, seeded } = started;
  const api = `${url}${apiPrefix}`;
  const json = "-H 'content-type: application/json'";
  const id = SEED_PATIENTS[0]?.id ?? '<id>';
  return [
    `caduceus demo: patient-records service listening on ${url}`,
    `database: ${db.dialect} ${databaseUrl}${seeded > 0 ? ` (migrated, ${seeded} sample patients seeded)` : ' (migrated)'}`,
    '',
    'Try (-g keeps curl from reading [ ] in the URL as a glob):',
    `  curl -i ${url}/health`,
    '',
    '  # list: offset pages, filters (field=value, field[op]=value), sort (-desc, comma-separated)',
    `  curl -g '${api}/patients?page=2&size=5'`,
    `  curl -g '${api}/patients?status=active&sort=-birth_date,family_name&size=10'`,
    `  curl -g '${api}/patients?family_name[ilike]=ok&birth_date[gte]=1970-01-01'`,
    `  curl -g '${api}/patients?status[in]=inactive,deceased&sort=created_at'`,
    "  # keyset pages: pass each answer's meta.next_cursor as cursor",
    `  curl -g '${api}/patients?limit=10&sort=-created_at'`,
    `  curl -g '${api}/patients?limit=10&sort=-created_at&cursor=<next_cursor>'`,
    `  curl -i -g '${api}/patients?ssn=900-70-0001'             # 400 VALIDATION_ERROR: ssn is not filterable`,
    `  curl -i -g '${api}/patients?size=1000&sort=password'     # 400 naming the field`,
    '',
    '  # one patient, create, update with optimistic locking, soft delete',
    `  curl -i ${api}/patients/${id}`,
    `  curl -i ${api}/patients/00000000-0000-4000-8000-000000000000   # 404 NOT_FOUND`,
    `  curl -i ${api}/patients ${json} -d '{"mrn":"MRN-2001","given_name":"Lena","family_name":"Ortiz","birth_date":"1990-05-17","ssn":"900-12-3456"}'`,
    `  curl -i ${api}/patients ${json} -d '{"mrn":"MRN-1001","given_name":"Lena","family_name":"Ortiz","birth_date":"1990-05-17"}'   # 409 DUPLICATE`,
    `  curl -i ${api}/patients ${json} -d '{"mrn":"x","birth_date":"1990-02-31"}'   # 422 with field_errors`,
    `  curl -i -X PATCH ${api}/patients/${id} ${json} -H 'If-Match: 1' -d '{"status":"inactive"}'`,
    `  curl -i -X PATCH ${api}/patients/${id} ${json} -H 'If-Match: 1' -d '{"status":"active"}'   # 409 CONFLICT: stale version`,
    `  curl -i -X DELETE ${api}/patients/${id}                  # 204; then GET is a 404`,
    '',
    '  # failures',
    `  curl -i ${api}/patients ${json} -d '{"mrn":'          # 400 INVALID_JSON`,
    `  curl -i ${api}/patients/${id}/lab-results   # 500 after an await; the log has the cause`,
    `  curl -i -H 'accept: application/problem+json' ${api}/patients/nope`,
    `  curl -i -H 'accept: application/fhir+json' ${api}/patients/nope`,
    '',
    'Send -H "x-request-id: my-id-1" to see your id echoed and in every log line. Ctrl-C stops.',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  let started: Started;
  try {
    started = await start(process.env);
  } catch (err) {
    // ConfigError lists every bad variable at once; a database error says what failed. No stack.
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  process.stdout.write(walkthrough(started));

  const stop = (): void => {
    // In-flight requests get a few seconds; then leave anyway (exit code 1: not a clean stop).
    setTimeout(() => process.exit(1), 5000).unref();
    started.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`shutdown: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

// Listen only when run directly (`npm run demo`); importing this file starts nothing.
if (require.main === module) void main();
