import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AuditTrail, Database, PasswordHashOptions, TokenClaims } from '../../lib/index';
import { BaseRepository, hashPassword } from '../../lib/index';
import type { Role } from './access';
import { PATIENT, PATIENT_ID_CLAIM, PROVIDER, ROLES } from './access';
import { parseBody, required, strictFields } from './validation';

/** A login as the API returns it: never the password hash. */
export interface User {
  readonly id: string;
  readonly email: string;
  readonly name: string;
  readonly roles: readonly Role[];
  /** The patient record this login belongs to (patients only); `null` for staff. */
  readonly patient_id: string | null;
  readonly created_at: Date;
  readonly updated_at: Date;
}

/** What `login` needs: the user and the stored hash. */
export interface Credentials {
  readonly user: User;
  readonly passwordHash: string;
}

/** A row as it is written: roles as one comma-separated column. */
interface UserRow {
  email: string;
  name: string;
  password_hash: string;
  roles: string;
  patient_id: string | null;
}

/** scrypt reads at most this much; longer inputs are refused before any hashing. */
const MAX_PASSWORD_BYTES = 1024;
/** NIST SP 800-63B asks for at least 8 characters; a service that sets its own passwords can ask more. */
const MIN_NEW_PASSWORD = 12;

const email = () =>
  z
    .string({ error: required('an email address') })
    .trim()
    .toLowerCase()
    .min(3, 'must be an email address')
    .max(254, 'must be at most 254 characters')
    // No control characters: PostgreSQL refuses NUL in text, the other databases would look it up.
    .refine((e) => !/\p{Cc}/u.test(e), 'must be an email address');

const password = (min: number) =>
  z
    .string({ error: required('a string') })
    .min(min, min === 1 ? 'is required' : `must be at least ${min} characters`)
    .refine((p) => Buffer.byteLength(p) <= MAX_PASSWORD_BYTES, `must be at most ${MAX_PASSWORD_BYTES} bytes`);

/** `POST /auth/login`. Any email shape is looked up (an unknown one is a 401 like a wrong password). */
export const loginSchema = strictFields({ email: email(), password: password(1) });

/** `POST /auth/refresh`. */
export const refreshSchema = strictFields({
  refresh_token: z
    .string({ error: required('a string') })
    .min(1, 'is required')
    .max(8192, 'must be at most 8192 characters'),
});

/** `POST /users` (administrators). A patient login must name its patient record; staff logins must not. */
export const userCreateSchema = strictFields({
  email: email().regex(/^[^\s@]+@[^\s@]+$/, 'must be an email address'),
  password: password(MIN_NEW_PASSWORD),
  name: z
    .string({ error: required('a string') })
    .trim()
    .min(1, 'must be a non-empty string')
    .max(100, 'must be at most 100 characters'),
  roles: z
    .array(z.enum(ROLES, { error: `must each be one of ${ROLES.join(', ')}` }), { error: required('a list') })
    .min(1, 'must name at least one role')
    .refine((r) => new Set(r).size === r.length, 'must not repeat a role'),
  patient_id: z
    .string({ error: 'must be the id of a patient, or null' })
    .min(1, 'must be the id of a patient, or null')
    .max(36, 'must be the id of a patient, or null')
    .nullable()
    .optional(),
}).refine((u) => u.roles.includes(PATIENT) === (u.patient_id !== undefined && u.patient_id !== null), {
  message: 'is required with the patient role, and only with it',
  path: ['patient_id'],
});

const parseRoles = (value: unknown): Role[] =>
  String(value)
    .split(',')
    .filter((r): r is Role => (ROLES as readonly string[]).includes(r));

/**
 * The `users` table: `password_hash` hidden from every read, email lookups for login, and
 * `register()` for accounts created through the API (hashed with the service's cost).
 *
 * A patient's login holds their name and email and points at their record (`patient_id`), so the
 * routes' repository is audited (`trail`): reading or creating a patient's login is in that
 * patient's trail. `serviceAuth()`'s own repository (the refresh re-reads the login) is not: the
 * trail records token issuance itself, as `login`.
 */
export class UserRepository extends BaseRepository<User, UserRow> {
  constructor(db: Database, trail?: AuditTrail) {
    super(db, {
      table: 'users',
      resource: 'User',
      ...(trail === undefined
        ? {}
        : { audit: { trail, resourceType: 'User', patientIdColumn: 'patient_id' } }),
      filterable: ['email', 'patient_id'],
      sortable: ['email', 'created_at'],
      hidden: ['password_hash'],
      generateId: () => randomUUID(),
      defaultSort: [{ field: 'email', direction: 'asc' }],
    });
  }

  /** The user with this (normalised) email and their password hash, or undefined. */
  async credentials(normalisedEmail: string): Promise<Credentials | undefined> {
    const row = (await this.run(() =>
      this.baseQuery(this.readerKnex()).where('email', normalisedEmail).first(),
    )) as Record<string, unknown> | undefined;
    if (row === undefined) return undefined;
    return { passwordHash: String(row.password_hash), user: this.toEntity({ ...row }) };
  }

  /** Whether `id` is a provider's login (patients are assigned only to providers). */
  async isProvider(id: string): Promise<boolean> {
    const user = await this.findById(id);
    return user?.roles.includes(PROVIDER) === true;
  }

  /** Validate a `POST /users` body, hash its password and insert the user. 422/409 on bad input. */
  async register(body: unknown, hashing: Readonly<PasswordHashOptions> = {}): Promise<User> {
    const input = parseBody(userCreateSchema, body, 'Invalid User');
    return this.create({
      email: input.email,
      name: input.name,
      password_hash: await hashPassword(input.password, hashing),
      roles: input.roles.join(','),
      patient_id: input.patient_id ?? null,
    });
  }

  protected override toEntity(row: Record<string, unknown>): User {
    row.roles = parseRoles(row.roles);
    return super.toEntity(row);
  }
}

/** The claims of a user's tokens: id, email, roles, and the patient record a patient's login is linked to. */
export function claimsOf(user: Pick<User, 'id' | 'email' | 'roles' | 'patient_id'>): TokenClaims {
  return {
    userId: user.id,
    email: user.email,
    roles: user.roles,
    ...(user.patient_id === null ? {} : { [PATIENT_ID_CLAIM]: user.patient_id }),
  };
}
