import type { Knex } from 'knex';
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
 * ~7 hours from 2025-01-06 so `sort=created_at` and keyset pages have something to walk.
 */
export function samplePatients(count = 50, seed = 20250601): SeedPatient[] {
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
      created_at: new Date(start + i * 7 * 3_600_000 + Math.floor(random() * 3_600_000)),
    });
  }
  return out;
}

/** The patients `npm run demo` starts with. The walkthrough uses the first one's id. */
export const SEED_PATIENTS: readonly SeedPatient[] = samplePatients();

/**
 * Insert the seed patients (a Knex seed: plain inserts with fixed ids and timestamps, not the
 * repository, whose `create` stamps the current time and a random id). `batchInsert` runs in one
 * transaction: all rows or none. Returns how many rows were inserted.
 */
export async function seedPatients(
  knex: Knex,
  patients: readonly SeedPatient[] = SEED_PATIENTS,
): Promise<number> {
  const rows = patients.map((p) => ({ ...p, version: 1, updated_at: p.created_at, deleted_at: null }));
  await knex.batchInsert('patients', rows, 100);
  return rows.length;
}
