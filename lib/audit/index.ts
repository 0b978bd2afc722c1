import { AuditTrail } from './trail.js';
import type { AuditOptions } from './types.js';

export { AuditTrail } from './trail.js';
export { auditEventsRouter, toFhirAuditEvent } from './fhir.js';
export type { AuditEventsRouterOptions } from './fhir.js';
export { auditMigration, verifyAuditChain } from './store.js';
export type { VerifyOptions } from './store.js';
export { AUDIT_ACTIONS, AUDIT_OUTCOMES } from './types.js';
export type {
  AuditAction,
  AuditActorType,
  AuditDetails,
  AuditEvent,
  AuditEventInput,
  AuditOptions,
  AuditOutcome,
  AuditPage,
  AuditQuery,
  AuditStats,
  VerifyResult,
} from './types.js';

/**
 * A tamper-evident audit trail of access to health records: who read or changed which patient's
 * record, when, from where, and whether it was allowed.
 *
 * @example
 * const trail = core.audit({ db, auth });
 * await trail.migrate();
 * app.use('/api', trail.middleware(), core.authenticate(), routes);
 */
export function audit(options: Readonly<AuditOptions>): AuditTrail {
  return new AuditTrail(options);
}
