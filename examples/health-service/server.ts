import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuditTrail, Auth, Database, FeatureFlags } from '../../lib/index';
import {
  audit,
  createDatabase,
  createLogger,
  featureFlags,
  gracefulShutdown,
  health,
  loadSettings,
} from '../../lib/index';
import { closeProtection, createApp, createProtection, DEMO_FLAGS } from './app';
import { disconnectedLabs, resilientLabs } from './labs';
import { serviceAuth } from './auth';
import { DEFAULT_DATABASE_URL, ensureSqliteDirectory, prepareDatabase, redactUrl } from './database';
import type { DemoUser } from './seed';
import { DEMO_ADMIN, DEMO_AUDITOR, DEMO_PATIENTS, DEMO_PROVIDERS, DEMO_USERS, SEED_PATIENTS } from './seed';

export interface Started {
  server: Server;
  url: string;
  apiPrefix: string;
  db: Database;
  auth: Auth;
  /** The audit trail (`audit_events`), closed — what it buffered written — just before the database. */
  audit: AuditTrail;
  /** The database URL in use, password masked. */
  databaseUrl: string;
  /** How many seed patients were inserted at this start (0 when the table already had rows). */
  seeded: number;
  /** How many demo logins were inserted at this start (0 when the table already had rows). */
  users: number;
  flags: FeatureFlags;
  /**
   * `gracefulShutdown()`: readiness fails, the server stops accepting, in-flight requests finish,
   * idle keep-alive connections close, then the guards, flags, denylist, audit trail (it writes
   * what it still buffers) and database close.
   */
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
 * Open the database from `env` (`DATABASE_URL`, else SQLite in memory), migrate it, seed what is
 * empty (demo logins, patients), build the app with its Auth (`REDIS_URL`: the denylist in Redis)
 * and listen. Resolves once it accepts connections.
 */
export async function start(
  env: Readonly<Record<string, string | undefined>> = process.env,
  shutdownOptions: {
    /** Signals that start the shutdown. Default none (the caller calls `stop()`); `main()` passes SIGTERM and SIGINT. */
    signals?: NodeJS.Signals[];
    /** Called with the exit code once stopped. Default: none (`stop()` resolves). */
    exit?: (code: number) => void;
  } = {},
): Promise<Started> {
  const port = portFrom(env.PORT);
  const settings = loadSettings(env);
  const url = settings.database.url ?? DEFAULT_DATABASE_URL;
  ensureSqliteDirectory(url);
  const db = createDatabase({ url, settings, logger: createLogger('database', { settings }) });
  // Created first: with REDIS_URL its connection comes up while the database is prepared (until
  // it is ready, the denylist answers 503).
  const auth = serviceAuth({ db, settings, logger: createLogger('auth', { settings }) });
  // Every access to patient records, every 401/403, logins and logouts; its tables are created
  // (when missing) by prepareDatabase().
  const trail = audit({ db, auth, settings, logger: createLogger('audit', { settings }) });
  let seeded: number;
  let users: number;
  try {
    ({ seeded, users } = await prepareDatabase(db, { audit: trail }));
  } catch (err) {
    await trail.close();
    await auth.close();
    await db.close();
    throw err;
  }
  const protection = createProtection(settings, (name) => createLogger(name, { settings }));
  // Flags shared through Redis when REDIS_URL is set (a change on one instance reaches all within a second).
  const flags = featureFlags({ settings, flags: DEMO_FLAGS, logger: createLogger('flags', { settings }) });
  const labs = resilientLabs(disconnectedLabs(), { logger: createLogger('labs', { settings }) });
  const probes = health({
    database: db,
    breakers: [labs.breaker],
    flags,
    settings,
    logger: createLogger('health', { settings }),
  });
  const app = createApp({ settings, db, auth, audit: trail, protection, flags, labs, health: probes });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port);
    s.once('error', reject);
    s.once('listening', () => {
      resolve(s);
    });
  }).catch(async (err: unknown) => {
    await closeProtection(protection);
    await flags.close();
    await probes.close();
    await auth.close();
    await trail.close();
    await db.close();
    throw err;
  });
  const { port: actual } = server.address() as AddressInfo;
  const graceful = gracefulShutdown(server, {
    health: probes,
    // Closed in this order once the last request has finished: the audit trail writes what it
    // still buffers just before the database it writes to closes.
    resources: [{ close: () => closeProtection(protection) }, flags, probes, auth, trail, db],
    timeoutMs: 10_000,
    signals: shutdownOptions.signals ?? [],
    exit: shutdownOptions.exit ?? false,
    settings,
    logger: createLogger('shutdown', { settings }),
  });
  const stop = (): Promise<void> => graceful.shutdown('stop');
  return {
    server,
    url: `http://localhost:${actual}`,
    apiPrefix: settings.apiPrefix,
    db,
    auth,
    audit: trail,
    databaseUrl: redactUrl(url),
    seeded,
    users,
    flags,
    stop,
  };
}

/** What a demo login reaches, for the credentials table. */
function reach(user: DemoUser): string {
  if (user.roles.includes('admin')) return 'admin: every patient; creates logins';
  if (user.roles.includes('auditor')) return 'auditor: no patient record; the audit trail (GET /audit)';
  if (user.roles.includes('provider')) {
    const n = SEED_PATIENTS.filter((p) => p.provider_id === user.id).length;
    return `provider: their ${n} assigned patients`;
  }
  const record = SEED_PATIENTS.find((p) => p.id === user.patient_id);
  return `patient: only their own record (${record?.mrn ?? 'none'})`;
}

/** `VAR=$(…)`: one field of the JSON answer kept in `$json`, picked by node (jq works too, if installed). */
const pick = (variable: string, json: string, field: string): string =>
  `  ${variable}=$(node -pe 'JSON.parse(process.argv[1]).data.${field}' "$${json}")`;

/**
 * The banner `npm run demo` prints: URL, database, the demo logins, and a walkthrough to paste into
 * bash (the acceptance test runs it). The lines from `API=` to the end of the walkthrough are a
 * script: each step uses the tokens of the ones before.
 */
export function walkthrough(
  started: Pick<Started, 'url' | 'apiPrefix' | 'databaseUrl' | 'db' | 'seeded' | 'users'>,
): string {
  const { url, apiPrefix, databaseUrl, db, seeded, users } = started;
  const json = "-H 'content-type: application/json'";
  const bearer = (token: string) => `-H "authorization: Bearer $${token}"`;
  const login = (u: DemoUser) =>
    `curl -s $API/auth/login ${json} -d '{"email":"${u.email}","password":"${u.password}"}'`;
  const [lee, shah] = DEMO_PROVIDERS as [DemoUser, DemoUser];
  const [patient] = DEMO_PATIENTS as [DemoUser];
  const leesPatient = SEED_PATIENTS.find((p) => p.provider_id === lee.id)!;
  const shahsPatient = SEED_PATIENTS.find((p) => p.provider_id === shah.id)!;
  const unassigned = SEED_PATIENTS.find((p) => p.provider_id === null)!;
  const width = Math.max(...DEMO_USERS.map((u) => u.email.length));
  const seededNote = [
    seeded > 0 ? `${seeded} sample patients` : '',
    users > 0 ? `${users} demo logins` : '',
  ].filter((x) => x !== '');
  return [
    `caduceus demo: patient-records service listening on ${url}`,
    `database: ${db.dialect} ${databaseUrl}${seededNote.length > 0 ? ` (migrated, ${seededNote.join(' and ')} seeded)` : ' (migrated)'}`,
    '',
    'Demo logins (email, password, what they see):',
    ...DEMO_USERS.map((u) => `  ${u.email.padEnd(width)}  ${u.password.padEnd(22)}  ${reach(u)}`),
    '',
    'Try it in bash (-g keeps curl from reading [ ] in URLs as a glob):',
    `  API=${url}${apiPrefix}`,
    `  curl -i ${url}/health`,
    '  curl -i $API/patients                                    # 401 TOKEN_MISSING',
    `  curl -i $API/auth/login ${json} -d '{"email":"${lee.email}","password":"wrong"}'   # 401 INVALID_CREDENTIALS`,
    '',
    `  # ${lee.name} logs in: an access token for the API, a refresh token for new pairs`,
    `  LOGIN=$(${login(lee)})`,
    pick('TOKEN', 'LOGIN', 'access_token'),
    pick('REFRESH', 'LOGIN', 'refresh_token'),
    `  curl -s $API/auth/me ${bearer('TOKEN')}`,
    '',
    "  # a provider's list holds their own patients only; filters, sort and pages work within it",
    `  curl -s -g "$API/patients?status=active&sort=-birth_date,family_name&size=5" ${bearer('TOKEN')}`,
    `  curl -s -g "$API/patients?family_name[ilike]=a&birth_date[gte]=1970-01-01" ${bearer('TOKEN')}`,
    `  curl -s -g "$API/patients?limit=5&sort=-created_at" ${bearer('TOKEN')}   # then &cursor=<meta.next_cursor>`,
    `  curl -i $API/patients/${leesPatient.id} ${bearer('TOKEN')}`,
    `  curl -i $API/patients/${shahsPatient.id} ${bearer('TOKEN')}   # 404: another provider's patient`,
    `  curl -i -X PATCH $API/patients/${leesPatient.id} ${bearer('TOKEN')} ${json} -H 'If-Match: 1' -d '{"status":"inactive"}'`,
    `  curl -i $API/patients ${bearer('TOKEN')} ${json} -d '{"mrn":"MRN-2001","given_name":"Lena","family_name":"Ortiz","birth_date":"1990-05-17"}'   # 201, assigned to ${lee.name}`,
    `  curl -i $API/patients ${bearer('TOKEN')} ${json} -d '{"mrn":"x","birth_date":"1990-02-31"}'   # 422 with field_errors`,
    '',
    `  # ${patient.name} (a patient) sees one record, and may not create one`,
    `  LOGIN=$(${login(patient)})`,
    pick('PATIENT_TOKEN', 'LOGIN', 'access_token'),
    `  curl -s $API/patients ${bearer('PATIENT_TOKEN')}`,
    `  curl -i $API/patients/${leesPatient.id} ${bearer('PATIENT_TOKEN')}   # 404: not theirs`,
    `  curl -i $API/patients ${bearer('PATIENT_TOKEN')} ${json} -d '{}'   # 403 FORBIDDEN`,
    '',
    '  # the administrator sees everyone; and what the API answers when a request is wrong',
    `  LOGIN=$(${login(DEMO_ADMIN)})`,
    pick('ADMIN_TOKEN', 'LOGIN', 'access_token'),
    `  curl -s -g "$API/patients?size=1" ${bearer('ADMIN_TOKEN')}   # meta.total: every patient`,
    `  curl -s -g "$API/patients?provider_id=${shah.id}&size=1" ${bearer('ADMIN_TOKEN')}`,
    `  curl -i $API/patients/${leesPatient.id}/lab-results ${bearer('ADMIN_TOKEN')}   # 500: no lab system; the log has the cause`,
    `  curl -i -g "$API/patients?ssn=900-70-0001" ${bearer('ADMIN_TOKEN')}   # 400 VALIDATION_ERROR: ssn is not filterable`,
    `  curl -i -X PATCH $API/patients/${leesPatient.id} ${bearer('ADMIN_TOKEN')} ${json} -H 'If-Match: 1' -d '{"status":"active"}'   # 409 CONFLICT: ${lee.name} changed it`,
    `  curl -i $API/patients ${bearer('ADMIN_TOKEN')} ${json} -d '{"mrn":"MRN-1001","given_name":"A","family_name":"B","birth_date":"1990-05-17"}'   # 409 DUPLICATE`,
    `  curl -i $API/patients ${bearer('ADMIN_TOKEN')} ${json} -d '{"mrn":'   # 400 INVALID_JSON`,
    `  curl -i -X DELETE $API/patients/${unassigned.id} ${bearer('ADMIN_TOKEN')}   # 204 (soft delete); a GET is then a 404`,
    `  curl -i $API/patients/nope ${bearer('ADMIN_TOKEN')} -H 'accept: application/problem+json'   # 404 as RFC 9457 problem details`,
    `  curl -i $API/patients/nope ${bearer('ADMIN_TOKEN')} -H 'accept: application/fhir+json'   # 404 as a FHIR OperationOutcome`,
    '',
    `  # ${DEMO_AUDITOR.name} (the auditor) reads the trail, not the records: who touched a patient, as FHIR`,
    '  # AuditEvents (ids, action codes, outcomes; never a name or a birth date)',
    `  LOGIN=$(${login(DEMO_AUDITOR)})`,
    pick('AUDITOR_TOKEN', 'LOGIN', 'access_token'),
    `  curl -s -g "$API/audit?patient=Patient/${leesPatient.id}&_count=5" ${bearer('AUDITOR_TOKEN')}`,
    `  curl -s -g "$API/audit?patient=Patient/${shahsPatient.id}&action=read&outcome=error" ${bearer('AUDITOR_TOKEN')}   # ${lee.name}'s 404 above`,
    `  curl -s -g "$API/audit?action=access-denied&_count=3" ${bearer('AUDITOR_TOKEN')}   # the 401s and 403s`,
    `  curl -i $API/patients/${leesPatient.id} ${bearer('AUDITOR_TOKEN')}   # 403 FORBIDDEN: auditors read no record`,
    `  curl -i $API/audit ${bearer('TOKEN')}   # 403 FORBIDDEN: a provider does not read the trail`,
    '',
    '  # refresh: a new pair; the spent refresh token presented again revokes the whole login',
    `  NEW=$(curl -s $API/auth/refresh ${json} -d "{\\"refresh_token\\":\\"$REFRESH\\"}")`,
    pick('TOKEN', 'NEW', 'access_token'),
    `  curl -i $API/auth/refresh ${json} -d "{\\"refresh_token\\":\\"$REFRESH\\"}"   # 401 TOKEN_REVOKED (reuse)`,
    `  curl -i $API/patients ${bearer('TOKEN')}   # 401 TOKEN_REVOKED: same family`,
    '',
    '  # logout revokes the token and its refresh token',
    `  curl -i -X POST $API/auth/logout ${bearer('PATIENT_TOKEN')}   # 204`,
    `  curl -i $API/patients ${bearer('PATIENT_TOKEN')}   # 401 TOKEN_REVOKED`,
    '',
    '  # what the service measured: every request above by route template and status (Prometheus scrapes this)',
    `  curl -s ${url}/metrics | grep '^http_requests_total'`,
    '',
    'Send -H "x-request-id: my-id-1" to see your id echoed and in every log line. Ctrl-C stops.',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  let started: Started;
  try {
    // SIGTERM/SIGINT: graceful shutdown, then exit 0 (1 if requests were still running after 10 s).
    started = await start(process.env, {
      signals: ['SIGTERM', 'SIGINT'],
      exit: (code) => process.exit(code),
    });
  } catch (err) {
    // ConfigError lists every bad variable at once; a database error says what failed. No stack.
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
  process.stdout.write(walkthrough(started));
}

// Listen only when run directly (`npm run demo`); importing this file starts nothing.
if (require.main === module) void main();
