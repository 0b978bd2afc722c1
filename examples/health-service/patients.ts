import { DuplicateError, ValidationError } from '../../lib/index';

export const SEXES = ['female', 'male', 'other', 'unknown'] as const;
export type Sex = (typeof SEXES)[number];

/** A patient record. Field names are snake_case, like the rest of the wire format (`error_code`, `request_id`). */
export interface Patient {
  readonly id: string;
  /** Medical record number: unique per service. */
  readonly mrn: string;
  readonly given_name: string;
  readonly family_name: string;
  /** `YYYY-MM-DD`. */
  readonly birth_date: string;
  readonly sex: Sex;
  readonly created_at: string;
}

export type NewPatient = Omit<Patient, 'id' | 'created_at'>;

export interface PatientFilter {
  /** Exact match, case-insensitive. */
  readonly familyName?: string | undefined;
  readonly limit: number;
}

/**
 * The storage seam of the service. It is async although the in-memory store needs no I/O, so a
 * database-backed repository can replace it without touching the routes.
 */
export interface PatientStore {
  list(filter: PatientFilter): Promise<Patient[]>;
  get(id: string): Promise<Patient | undefined>;
  /** Throws `DuplicateError` when the MRN is taken, as a unique index would. */
  create(input: NewPatient): Promise<Patient>;
}

/** Fictional records so the demo has something to list. */
export const SAMPLE_PATIENTS: readonly NewPatient[] = [
  { mrn: 'MRN-1001', given_name: 'Ada', family_name: 'Okafor', birth_date: '1984-03-12', sex: 'female' },
  { mrn: 'MRN-1002', given_name: 'Tomas', family_name: 'Lindqvist', birth_date: '1971-11-30', sex: 'male' },
  { mrn: 'MRN-1003', given_name: 'Mei', family_name: 'Okafor', birth_date: '2012-07-04', sex: 'female' },
];

/** Patients in a Map, with a second Map as the unique index on `mrn`. All state lives in the instance. */
export class MemoryPatientStore implements PatientStore {
  readonly #byId = new Map<string, Patient>();
  readonly #idByMrn = new Map<string, string>();
  #nextId = 1001;

  constructor(seed: readonly NewPatient[] = []) {
    for (const patient of seed) this.#insert(patient);
  }

  list(filter: PatientFilter): Promise<Patient[]> {
    const family = filter.familyName?.toLowerCase();
    const out: Patient[] = [];
    for (const patient of this.#byId.values()) {
      if (out.length >= filter.limit) break;
      if (family === undefined || patient.family_name.toLowerCase() === family) out.push(patient);
    }
    return Promise.resolve(out);
  }

  get(id: string): Promise<Patient | undefined> {
    return Promise.resolve(this.#byId.get(id));
  }

  create(input: NewPatient): Promise<Patient> {
    // A throw inside the executor (DuplicateError) rejects the promise, as a database call would.
    return new Promise((resolve) => {
      resolve(this.#insert(input));
    });
  }

  #insert(input: NewPatient): Patient {
    if (this.#idByMrn.has(input.mrn)) throw new DuplicateError('Patient', 'mrn', input.mrn);
    const patient: Patient = { ...input, id: `pat-${this.#nextId++}`, created_at: new Date().toISOString() };
    this.#byId.set(patient.id, patient);
    this.#idByMrn.set(patient.mrn, patient.id);
    return patient;
  }
}

const MRN = /^[A-Z0-9][A-Z0-9-]{3,19}$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const FIELDS = new Set(['mrn', 'given_name', 'family_name', 'birth_date', 'sex']);
const MAX_NAME = 100;
const MAX_LIMIT = 100;
const DEFAULT_LIMIT = 20;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRealDate(value: string): boolean {
  const m = DATE.exec(value);
  if (m === null) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(value);
}

function name(body: Record<string, unknown>, field: string, errors: Record<string, string>): string {
  const value = body[field];
  if (value === undefined || value === null) {
    errors[field] = 'is required';
    return '';
  }
  if (typeof value !== 'string' || value.trim().length === 0) {
    errors[field] = 'must be a non-empty string';
    return '';
  }
  if (value.length > MAX_NAME) errors[field] = `must be at most ${MAX_NAME} characters`;
  return value.trim();
}

/**
 * Check a create request's body. Every problem is collected, then reported at once as a 422
 * `ValidationError` whose `field_errors` name each field. Messages never echo the submitted value.
 */
export function parseNewPatient(body: unknown, today: Date = new Date()): NewPatient {
  if (!isPlainObject(body)) {
    throw new ValidationError('Request body must be a JSON object', { body: 'must be a JSON object' });
  }
  const errors: Record<string, string> = {};
  for (const key of Object.keys(body)) {
    if (!FIELDS.has(key)) errors[key] = 'is not a known field';
  }

  const mrn = body.mrn;
  if (mrn === undefined || mrn === null) errors.mrn = 'is required';
  else if (typeof mrn !== 'string' || !MRN.test(mrn))
    errors.mrn = 'must be 4-20 upper-case letters, digits or dashes';

  const givenName = name(body, 'given_name', errors);
  const familyName = name(body, 'family_name', errors);

  const birthDate = body.birth_date;
  if (birthDate === undefined || birthDate === null) errors.birth_date = 'is required';
  else if (typeof birthDate !== 'string' || !isRealDate(birthDate))
    errors.birth_date = 'must be a date as YYYY-MM-DD';
  else if (birthDate > today.toISOString().slice(0, 10)) errors.birth_date = 'must not be in the future';

  const sex = body.sex ?? 'unknown';
  if (!SEXES.includes(sex as Sex)) errors.sex = `must be one of ${SEXES.join(', ')}`;

  if (Object.keys(errors).length > 0) throw new ValidationError('Invalid patient', errors);
  return {
    mrn: mrn as string,
    given_name: givenName,
    family_name: familyName,
    birth_date: birthDate as string,
    sex: sex as Sex,
  };
}

/** `?family_name=Okafor&limit=10` → a filter; a repeated or malformed parameter is a 422. */
export function parseListQuery(query: Readonly<Record<string, unknown>>): PatientFilter {
  const errors: Record<string, string> = {};
  const family = query.family_name;
  if (
    family !== undefined &&
    (typeof family !== 'string' || family.length === 0 || family.length > MAX_NAME)
  ) {
    errors.family_name = `must be one non-empty value of at most ${MAX_NAME} characters`;
  }
  let limit = DEFAULT_LIMIT;
  const rawLimit = query.limit;
  if (rawLimit !== undefined) {
    limit = typeof rawLimit === 'string' && /^\d{1,3}$/.test(rawLimit) ? Number(rawLimit) : NaN;
    if (!(limit >= 1 && limit <= MAX_LIMIT)) errors.limit = `must be an integer from 1 to ${MAX_LIMIT}`;
  }
  if (Object.keys(errors).length > 0) throw new ValidationError('Invalid query', errors);
  return { familyName: family as string | undefined, limit };
}
