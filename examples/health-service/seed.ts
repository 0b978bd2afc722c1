import type { Knex } from 'knex';
import { hashPassword } from '../../lib/index';
import type { Role } from './access';
import type { Sex, PatientStatus } from './patients';

/** One seed row: the columns of `patients` minus the version and timestamps the seeder fills in. */
export interface SeedPatient {
  id: string;
  mrn: string;
  family_name: string;
  given_name: string;
  birth_date: string;
  sex: Sex;
  status: PatientStatus;
  /** Fictional: 9xx area numbers are never issued as SSNs. */
  ssn: string;
  /** The provider's user id, or null (unassigned: only administrators see the patient). */
  provider_id: string | null;
  created_at: Date;
}

const GIVEN: Record<'female' | 'male', readonly string[]> = {
  female: [
    'Ada',
    'Mei',
    'Amara',
    'Sofia',
    'Priya',
    'Ingrid',
    'Fatima',
    'Lucia',
    'Hana',
    'Nia',
    'Elena',
    'Zainab',
  ],
  male: [
    'Tomas',
    'Kofi',
    'Mateo',
    'Arjun',
    'Lars',
    'Omar',
    'Kenji',
    'Diego',
    'Samuel',
    'Tariq',
    'Ivan',
    'Malik',
  ],
};
const FAMILY = [
  'Okafor',
  'Lindqvist',
  'Nakamura',
  'Garcia',
  'Patel',
  'Haddad',
  'Novak',
  'Mensah',
  'Rossi',
  'Kowalski',
  'Andersen',
  'Silva',
  'Nguyen',
  'Fischer',
  'Osei',
  'Moreau',
  'Ivanova',
  'Reyes',
  'Kim',
  'Brennan',
];

/** mulberry32: a tiny seeded PRNG, so every run (and every dialect) gets the same patients. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hex(random: () => number, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += Math.floor(random() * 16).toString(16);
  return out;
}

/** A version-4-shaped UUID from the PRNG (deterministic, unlike crypto.randomUUID). */
function uuid(random: () => number): string {
  const variant = '89ab'[Math.floor(random() * 4)] as string;
  return `${hex(random, 8)}-${hex(random, 4)}-4${hex(random, 3)}-${variant}${hex(random, 3)}-${hex(random, 12)}`;
}

const pick = <T>(random: () => number, list: readonly T[]): T =>
  list[Math.floor(random() * list.length)] as T;
const pad = (n: number, width: number) => String(n).padStart(width, '0');

/**
 * `count` fictional patients, the same on every call: MRN-1001, MRN-1002, …; created one per
 * ~7 hours from 2025-01-06 so `sort=created_at` and keyset pages have something to walk. Patient
 * `i` is assigned to `providers[i % providers.length]` (default: nobody).
 */
export function samplePatients(
  count = 50,
  seed = 20250601,
  providers: readonly (string | null)[] = [null],
): SeedPatient[] {
  const random = prng(seed);
  const start = Date.UTC(2025, 0, 6, 8, 0, 0);
  const out: SeedPatient[] = [];
  for (let i = 0; i < count; i++) {
    const roll = random();
    const sex: Sex = roll < 0.48 ? 'female' : roll < 0.96 ? 'male' : roll < 0.98 ? 'other' : 'unknown';
    const given = pick(random, GIVEN[sex === 'male' ? 'male' : 'female']);
    const year = 1935 + Math.floor(random() * 88);
    const month = 1 + Math.floor(random() * 12);
    const day = 1 + Math.floor(random() * 28);
    const s = random();
    const status: PatientStatus = s < 0.8 ? 'active' : s < 0.94 ? 'inactive' : 'deceased';
    out.push({
      id: uuid(random),
      mrn: `MRN-${1001 + i}`,
      family_name: pick(random, FAMILY),
      given_name: given,
      birth_date: `${year}-${pad(month, 2)}-${pad(day, 2)}`,
      sex,
      status,
      ssn: `9${pad(Math.floor(random() * 100), 2)}-${pad(70 + Math.floor(random() * 30), 2)}-${pad(Math.floor(random() * 10_000), 4)}`,
      provider_id: providers[i % providers.length] ?? null,
      created_at: new Date(start + i * 7 * 3_600_000 + Math.floor(random() * 3_600_000)),
    });
  }
  return out;
}

/** A demo login: printed by `npm run demo`, so its password protects nothing. */
export interface DemoUser {
  readonly id: string;
  readonly email: string;
  readonly name: string;
  readonly password: string;
  readonly roles: readonly Role[];
  /** The patient record of a patient's login. */
  readonly patient_id: string | null;
}

const staff = (id: string, email: string, name: string, role: Role, password: string): DemoUser => ({
  id,
  email,
  name,
  password,
  roles: [role],
  patient_id: null,
});

export const DEMO_ADMIN = staff(
  '1922ed9e-6d19-46f3-8272-1da937bbbc3d',
  'admin@clinic.example',
  'Morgan Ellis',
  'admin',
  'admin-demo-password',
);
/** Two providers; patients 0, 3, 6, … are the first one's, 1, 4, 7, … the second one's, the rest unassigned. */
export const DEMO_PROVIDERS: readonly DemoUser[] = [
  staff(
    '92c49c5a-ad14-47d1-8757-3460a5e4cb08',
    'dr.lee@clinic.example',
    'Dr. Grace Lee',
    'provider',
    'provider-demo-password',
  ),
  staff(
    'b769c599-a946-4066-a6ad-e73f9408921d',
    'dr.shah@clinic.example',
    'Dr. Ravi Shah',
    'provider',
    'provider-demo-password',
  ),
];

/**
 * The auditor: reads the audit trail (`GET /audit`, FHIR AuditEvents) and reaches no patient
 * record. Who reads the trail is recorded too.
 */
export const DEMO_AUDITOR = staff(
  '1e8c8e6b-e263-4df3-b1cc-54aa5654e3ee',
  'auditor@clinic.example',
  'Sam Okonkwo',
  'auditor',
  'auditor-demo-password',
);

/** The patients `npm run demo` starts with; the walkthrough names some of them by id. */
export const SEED_PATIENTS: readonly SeedPatient[] = samplePatients(50, 20250601, [
  ...DEMO_PROVIDERS.map((p) => p.id),
  null,
]);

/** The login of a seed patient: `given.family@clinic.example`. */
const patientLogin = (id: string, p: SeedPatient): DemoUser => ({
  id,
  email: `${p.given_name}.${p.family_name}@clinic.example`.toLowerCase(),
  name: `${p.given_name} ${p.family_name}`,
  password: 'patient-demo-password',
  roles: ['patient'],
  patient_id: p.id,
});

/** Two patients with a login: one of each provider (MRN-1004 is Dr. Lee's, MRN-1005 Dr. Shah's). */
export const DEMO_PATIENTS: readonly DemoUser[] = [
  patientLogin('4b0f3dba-6e73-4963-9d36-8fc957050fb8', SEED_PATIENTS[3]!),
  patientLogin('f70a3f70-5498-46e6-a157-33abe0da3cc8', SEED_PATIENTS[4]!),
];

/** Every demo login, staff first. */
export const DEMO_USERS: readonly DemoUser[] = [
  DEMO_ADMIN,
  ...DEMO_PROVIDERS,
  DEMO_AUDITOR,
  ...DEMO_PATIENTS,
];

/**
 * Insert the seed patients (a Knex seed: plain inserts with fixed ids and timestamps, not the
 * repository, whose `create` stamps the current time and a random id). `batchInsert` runs in one
 * transaction: all rows or none. Returns how many rows were inserted. The providers they are
 * assigned to must exist (`seedDemo()` inserts them first).
 */
export async function seedPatients(
  knex: Knex,
  patients: readonly SeedPatient[] = SEED_PATIENTS,
): Promise<number> {
  const rows = patients.map((p) => ({ ...p, version: 1, updated_at: p.created_at, deleted_at: null }));
  await knex.batchInsert('patients', rows, 100);
  return rows.length;
}

export interface SeedOptions {
  /** Hashes a demo password. Default: `core.hashPassword()` at its default cost (tests pass a cheaper one). */
  hash?: (password: string) => Promise<string>;
}

async function isEmpty(knex: Knex, table: string): Promise<boolean> {
  const row = (await knex(table).count({ n: '*' }).first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0) === 0;
}

/**
 * Seed each empty table: the staff logins, then the 50 patients (assigned to the providers), then
 * the patients' logins (for those of their records that exist). In one transaction. Returns how
 * many patients and users were inserted (0 and 0 on a database that has its data).
 */
export async function seedDemo(
  knex: Knex,
  options: Readonly<SeedOptions> = {},
): Promise<{ patients: number; users: number }> {
  const seedUsers = await isEmpty(knex, 'users');
  const seedRecords = await isEmpty(knex, 'patients');
  if (!seedUsers && !seedRecords) return { patients: 0, users: 0 };
  // Hashed before the transaction: scrypt takes a while and needs no connection.
  const rows = seedUsers
    ? await Promise.all(
        DEMO_USERS.map(async ({ password, roles, ...user }) => {
          const now = new Date('2025-01-01T08:00:00.000Z');
          const hash = await (options.hash ?? hashPassword)(password);
          return { ...user, roles: roles.join(','), password_hash: hash, created_at: now, updated_at: now };
        }),
      )
    : [];
  return knex.transaction(async (trx) => {
    if (seedUsers) await trx('users').insert(rows.filter((u) => u.patient_id === null));
    const patients = seedRecords ? await seedPatients(trx) : 0;
    const linked = rows.filter((u) => u.patient_id !== null);
    const ids = linked.map((u) => u.patient_id as string);
    const existing = new Set<string>(
      ids.length === 0 ? [] : await trx('patients').whereIn('id', ids).pluck('id'),
    );
    const patientLogins = linked.filter((u) => existing.has(u.patient_id as string));
    if (patientLogins.length > 0) await trx('users').insert(patientLogins);
    return { patients, users: rows.length - linked.length + patientLogins.length };
  });
}
