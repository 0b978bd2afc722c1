/** The `patients` table, its zod schemas and repository options, shared by the repository suites. */
import { z } from 'zod';
import * as core from '../../lib/index';

export const createSchema = z.object({
  mrn: z.string().min(1).max(32),
  family_name: z.string().min(1).max(64),
  given_name: z.string().max(64).nullable().optional(),
  status: z.enum(['active', 'inactive', 'pending']).optional(),
  age: z.number().int().min(0).max(150),
  active: z.boolean().optional(),
  ssn: z.string().max(16).optional(),
});

export const updateSchema = createSchema.partial();

export type PatientCreate = z.infer<typeof createSchema>;
export type PatientUpdate = z.infer<typeof updateSchema>;

export interface Patient {
  id: number;
  mrn: string;
  family_name: string;
  given_name: string | null;
  status: string;
  age: number;
  active: boolean;
  version: number;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
}

export const PATIENT_OPTIONS: core.RepositoryOptions<Patient, PatientCreate, PatientUpdate> = {
  table: 'patients',
  resource: 'Patient',
  filterable: ['mrn', 'family_name', 'given_name', 'status', 'age', 'active', 'created_at'],
  sortable: ['family_name', 'given_name', 'age', 'status', 'active', 'created_at'],
  hidden: ['ssn'],
  types: { id: 'integer', age: 'integer', active: 'boolean' },
  softDelete: true,
  versionColumn: 'version',
  createSchema,
  updateSchema,
};

/** Creates `patients`; `datetime(…, {precision: 3})` so MariaDB keeps milliseconds. */
export async function createPatientsTable(db: core.Database): Promise<void> {
  await db.knex.schema.dropTableIfExists('patients');
  await db.knex.schema.createTable('patients', (t) => {
    t.increments('id');
    t.string('mrn', 32).notNullable().unique();
    t.string('family_name', 64).notNullable();
    t.string('given_name', 64).nullable();
    t.string('status', 16).notNullable().defaultTo('active');
    t.integer('age').notNullable();
    t.boolean('active').notNullable().defaultTo(true);
    t.string('ssn', 16).nullable();
    t.integer('version').notNullable().defaultTo(1);
    t.datetime('created_at', { precision: 3 }).notNullable();
    t.datetime('updated_at', { precision: 3 }).notNullable();
    t.datetime('deleted_at', { precision: 3 }).nullable();
  });
}

/** The AppError a promise rejects with; any other outcome fails the test with what happened. */
export async function rejection(promise: Promise<unknown>): Promise<core.AppError> {
  let result: unknown;
  try {
    result = await promise;
  } catch (err) {
    if (core.isAppError(err)) return err;
    throw err;
  }
  throw new Error(`expected a rejection, got ${JSON.stringify(result)}`);
}

/** The AppError a call throws synchronously. */
export function thrown(fn: () => unknown): core.AppError {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    if (core.isAppError(err)) return err;
    throw err;
  }
  throw new Error(`expected a throw, got ${JSON.stringify(result)}`);
}
