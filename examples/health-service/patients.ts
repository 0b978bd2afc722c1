import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Database } from '../../lib/index';
import { BaseRepository } from '../../lib/index';

export const SEXES = ['female', 'male', 'other', 'unknown'] as const;
export type Sex = (typeof SEXES)[number];
export const STATUSES = ['active', 'inactive', 'deceased'] as const;
export type PatientStatus = (typeof STATUSES)[number];

/**
 * A patient as the API returns it. Field names are snake_case, like the rest of the wire format
 * (`error_code`, `request_id`). The `ssn` column exists but is hidden: it is never read back.
 */
export interface Patient {
  readonly id: string;
  /** Medical record number: unique per service. */
  readonly mrn: string;
  readonly family_name: string;
  readonly given_name: string;
  /** `YYYY-MM-DD` on every dialect. */
  readonly birth_date: string;
  readonly sex: Sex;
  readonly status: PatientStatus;
  /** Optimistic-locking version: 1 on create, +1 on every update. */
  readonly version: number;
  readonly created_at: Date;
  readonly updated_at: Date;
  readonly deleted_at: Date | null;
}

const MRN = /^[A-Z0-9][A-Z0-9-]{3,19}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const SSN = /^\d{3}-\d{2}-\d{4}$/;
const MAX_NAME = 100;

/** Messages name the problem, never the submitted value (it may be PHI). */
const required = (what: string) => (issue: { input: unknown }) =>
  issue.input === undefined || issue.input === null ? 'is required' : `must be ${what}`;

/** A real calendar date as `YYYY-MM-DD`. */
export function isIsoDate(value: string): boolean {
  if (!DATE.test(value)) return false;
  const date = new Date(`${value}T00:00:00Z`);
  return !Number.isNaN(date.getTime()) && date.toISOString().startsWith(value);
}

const name = () =>
  z
    .string({ error: required('a string') })
    .trim()
    .min(1, 'must be a non-empty string')
    .max(MAX_NAME, `must be at most ${MAX_NAME} characters`);

const FIELDS = {
  mrn: z
    .string({ error: required('a string') })
    .regex(MRN, 'must be 4-20 upper-case letters, digits or dashes'),
  family_name: name(),
  given_name: name(),
  birth_date: z
    .string({ error: required('a date as YYYY-MM-DD') })
    .refine(isIsoDate, 'must be a date as YYYY-MM-DD')
    .refine((d) => d <= new Date().toISOString().slice(0, 10), 'must not be in the future'),
  sex: z.enum(SEXES, { error: `must be one of ${SEXES.join(', ')}` }),
  status: z.enum(STATUSES, { error: `must be one of ${STATUSES.join(', ')}` }),
  ssn: z.string({ error: 'must be a string as NNN-NN-NNNN' }).regex(SSN, 'must be NNN-NN-NNNN').nullable(),
};

/**
 * An object schema that names every unknown key in `field_errors` (`{ notes: 'is not a known
 * field' }`) instead of one anonymous "unrecognized keys" message.
 */
function strictFields<S extends z.core.$ZodLooseShape>(shape: S) {
  return z.looseObject(shape, { error: 'must be a JSON object' }).check(
    z.superRefine(
      (value: Record<string, unknown>, ctx) => {
        for (const key of Object.keys(value)) {
          if (!Object.hasOwn(shape, key))
            ctx.addIssue({ code: 'custom', path: [key.slice(0, 64)], message: 'is not a known field' });
        }
      },
      {
        when: (payload) =>
          typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value),
      },
    ),
  );
}

export const patientCreateSchema = strictFields({
  mrn: FIELDS.mrn,
  family_name: FIELDS.family_name,
  given_name: FIELDS.given_name,
  birth_date: FIELDS.birth_date,
  sex: FIELDS.sex.default('unknown'),
  status: FIELDS.status.default('active'),
  ssn: FIELDS.ssn.optional(),
});

export const patientUpdateSchema = strictFields({
  mrn: FIELDS.mrn.optional(),
  family_name: FIELDS.family_name.optional(),
  given_name: FIELDS.given_name.optional(),
  birth_date: FIELDS.birth_date.optional(),
  sex: FIELDS.sex.optional(),
  status: FIELDS.status.optional(),
  ssn: FIELDS.ssn.optional(),
}).refine((patch) => Object.keys(patch).length > 0, {
  message: 'must change at least one field',
  path: ['_'],
});

export type PatientCreate = z.input<typeof patientCreateSchema>;
export type PatientUpdate = z.input<typeof patientUpdateSchema>;

/** `YYYY-MM-DD` from what the driver returns for a DATE column (a string, or a Date at local midnight). */
function isoDate(value: unknown): unknown {
  if (!(value instanceof Date)) return value;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${value.getFullYear()}-${pad(value.getMonth() + 1)}-${pad(value.getDate())}`;
}

/**
 * The `patients` table through `core.BaseRepository`: declared filterable and sortable columns (the
 * only ones `parseListQuery` accepts), `ssn` hidden, soft delete, optimistic locking on `version`,
 * zod schemas for create and update.
 */
export class PatientRepository extends BaseRepository<Patient, PatientCreate, PatientUpdate> {
  constructor(db: Database) {
    super(db, {
      table: 'patients',
      resource: 'Patient',
      filterable: [
        'mrn',
        'family_name',
        'given_name',
        'birth_date',
        'sex',
        'status',
        'created_at',
        'updated_at',
      ],
      sortable: ['mrn', 'family_name', 'given_name', 'birth_date', 'status', 'created_at', 'updated_at'],
      hidden: ['ssn'],
      types: { version: 'integer' },
      softDelete: true,
      versionColumn: 'version',
      createSchema: patientCreateSchema,
      updateSchema: patientUpdateSchema,
      generateId: () => randomUUID(),
      defaultSort: [
        { field: 'family_name', direction: 'asc' },
        { field: 'given_name', direction: 'asc' },
      ],
    });
  }

  protected override toEntity(row: Record<string, unknown>): Patient {
    row.birth_date = isoDate(row.birth_date);
    return super.toEntity(row);
  }
}
