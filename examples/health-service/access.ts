import type { Request } from 'express';
import type { AuthUser } from '../../lib/index';
import { AuthenticationFailure } from '../../lib/index';
import type { PatientScope } from './patients';

/**
 * The service's roles. A user may hold several (a provider who is also a patient here). An
 * auditor reads the audit trail (`GET /audit`) and no patient record: separation of duties.
 */
export const ROLES = ['admin', 'provider', 'patient', 'auditor'] as const;
export type Role = (typeof ROLES)[number];
export const ADMIN: Role = 'admin';
export const PROVIDER: Role = 'provider';
export const PATIENT: Role = 'patient';
export const AUDITOR: Role = 'auditor';

/** The token claim that links a patient's login to their patient record (their user id is another id). */
export const PATIENT_ID_CLAIM = 'patient_id';

/** `req.user`, set by `authenticate()`; a 401 TOKEN_MISSING if a route was mounted without it. */
export function userOf(req: Request): AuthUser {
  const user = req.user;
  if (user === undefined) throw new AuthenticationFailure('missing');
  return user;
}

export const hasRole = (user: AuthUser, role: Role): boolean => user.roles.includes(role);

/**
 * Which patients `user` may reach: administrators all; a provider the patients assigned to them
 * (`patients.provider_id` is the provider's user id); a patient the record their login is linked
 * to (the `patient_id` claim). Roles add up; a user with none of them (an auditor) reaches nothing.
 */
export function patientScope(user: AuthUser): PatientScope {
  if (hasRole(user, ADMIN)) return { all: true };
  const linked = user.claims[PATIENT_ID_CLAIM];
  return {
    providerId: hasRole(user, PROVIDER) ? user.id : undefined,
    patientId: hasRole(user, PATIENT) && typeof linked === 'string' ? linked : undefined,
  };
}
