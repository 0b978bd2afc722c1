import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { z } from 'zod';
import type { AuditTrail, Database } from '../../lib/index';
import { BaseRepository } from '../../lib/index';
import { required, strictFields } from './validation';

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
  /** The user id of the provider this patient is assigned to; `null` while unassigned. */
  readonly provider_id: string | null;
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
  provider_id: z
    .string({ error: 'must be the id of a provider, or null' })
    .min(1, 'must be the id of a provider, or null')
    .max(36, 'must be the id of a provider, or null')
    .nullable(),
};

export const patientCreateSchema = strictFields({
  mrn: FIELDS.mrn,
  family_name: FIELDS.family_name,
  given_name: FIELDS.given_name,
  birth_date: FIELDS.birth_date,
  sex: FIELDS.sex.default('unknown'),
  status: FIELDS.status.default('active'),
  ssn: FIELDS.ssn.optional(),
  provider_id: FIELDS.provider_id.optional(),
});

export const patientUpdateSchema = strictFields({
  mrn: FIELDS.mrn.optional(),
  family_name: FIELDS.family_name.optional(),
  given_name: FIELDS.given_name.optional(),
  birth_date: FIELDS.birth_date.optional(),
  sex: FIELDS.sex.optional(),
  status: FIELDS.status.optional(),
  ssn: FIELDS.ssn.optional(),
  provider_id: FIELDS.provider_id.optional(),
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
 * Which patients a caller may reach: all of them (administrators), or the union of a provider's
 * panel (`provider_id`) and one patient's own record. An empty scope reaches none.
 */
export type PatientScope =
  | { readonly all: true }
  | {
      readonly all?: false;
      readonly providerId?: string | undefined;
      readonly patientId?: string | undefined;
    };

type Method = (...args: unknown[]) => unknown;

/**
 * The `patients` table through `core.BaseRepository`: declared filterable and sortable columns (the
 * only ones `parseListQuery` accepts), `ssn` hidden, soft delete, optimistic locking on `version`,
 * zod schemas for create and update, and `visibleTo(scope)` views that reach only the rows a
 * caller may see — a condition of the SQL itself, never a filter applied after fetching.
 * Every read, search and write is recorded in the audit `trail` (ids and field names, never values).
 */
export class PatientRepository extends BaseRepository<Patient, PatientCreate, PatientUpdate> {
  /** The scope of the call in progress on a `visibleTo()` view; undefined on the repository itself. */
  readonly #scope = new AsyncLocalStorage<PatientScope>();

  constructor(db: Database, trail: AuditTrail) {
    super(db, {
      table: 'patients',
      resource: 'Patient',
      // A row of this table is a patient: the patient of each access is the row's own id.
      audit: { trail, resourceType: 'Patient', patientIdColumn: 'id' },
      filterable: [
        'mrn',
        'family_name',
        'given_name',
        'birth_date',
        'sex',
        'status',
        'provider_id',
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

  /**
   * This repository restricted to `scope`, like `withDeleted()`: every read, update and delete
   * made through the view carries the scope in its WHERE clause, so a row outside it is simply
   * not there — a 404, the same as an id that does not exist. `create` is not restricted: the
   * routes decide who may create and for which provider.
   *
   * @example
   * await patients.visibleTo({ providerId: req.user.id }).list(query); // the provider's panel only
   */
  visibleTo(scope: PatientScope): this {
    if (scope.all === true) return this;
    const storage = this.#scope;
    return new Proxy(this, {
      get(target, prop) {
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function' || prop === 'constructor') return value;
        return (...args: unknown[]): unknown =>
          storage.run(scope, () => (value as Method).apply(target, args));
      },
    });
  }

  /** Every read (and the WHERE of every update) starts here: add the caller's scope. */
  protected override baseQuery(k: Knex): Knex.QueryBuilder {
    const qb = super.baseQuery(k);
    const scope = this.#scope.getStore();
    if (scope === undefined || scope.all === true) return qb;
    const { providerId, patientId } = scope;
    if (providerId === undefined && patientId === undefined) return qb.whereRaw('1 = 0');
    return qb.where((q) => {
      if (providerId !== undefined) q.orWhere('provider_id', providerId);
      if (patientId !== undefined) q.orWhere('id', patientId);
    });
  }

  protected override toEntity(row: Record<string, unknown>): Patient {
    row.birth_date = isoDate(row.birth_date);
    return super.toEntity(row);
  }
}
