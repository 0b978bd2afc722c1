/**
 * The `application/health+json` shapes (draft-inadarei-api-health-check) and the small rules that
 * turn check outcomes into them. No I/O here.
 */

/** `pass` (healthy), `warn` (healthy, with concerns), `fail` (unhealthy). */
export type HealthCheckStatus = 'pass' | 'warn' | 'fail';

/** One reading of one component, an entry of `checks["<component>:<measurement>"]`. */
export interface HealthCheckResult {
  componentId?: string;
  /** `datastore`, `component`, `system`, or your own. */
  componentType?: string;
  observedValue?: unknown;
  observedUnit?: string;
  status: HealthCheckStatus;
  /** ISO 8601 time the reading was taken. */
  time: string;
  /** Why it is not `pass`: an error code or class, `timed out`, … — never an error message. */
  output?: string;
}

/** The body of `GET /health`. */
export interface HealthReport {
  status: HealthCheckStatus;
  /** `APP_VERSION`. */
  version: string;
  /** `APP_NAME`. */
  serviceId: string;
  description: string;
  /** Set when the service is shutting down. */
  output?: string;
  checks: Record<string, HealthCheckResult[]>;
}

/** What a custom check may return (every field optional); `undefined` is a plain `pass`. */
export interface CheckDetails {
  /** Default `pass`. A non-critical check's `fail` is reported as `warn`. */
  status?: HealthCheckStatus;
  observedValue?: unknown;
  observedUnit?: string;
  /** Shown as is: keep secrets and PHI out of it. */
  output?: string;
  /** Default `component`. */
  componentType?: string;
  componentId?: string;
}

const RANK: Record<HealthCheckStatus, number> = { pass: 0, warn: 1, fail: 2 };

export function worst(a: HealthCheckStatus, b: HealthCheckStatus): HealthCheckStatus {
  return RANK[b] > RANK[a] ? b : a;
}

export function isStatus(value: unknown): value is HealthCheckStatus {
  return value === 'pass' || value === 'warn' || value === 'fail';
}

const CODE = /^[A-Za-z0-9_.:-]{1,64}$/;
const NAME = /^[A-Za-z_$][\w$]{0,63}$/;

/**
 * What a failure shows: the error's code (`ECONNREFUSED`, `28P01`) or its class (`TypeError`),
 * never its message — messages carry URLs, passwords and patient data.
 */
export function errorOutput(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const { code, name } = err as { code?: unknown; name?: unknown };
    if (typeof code === 'string' && CODE.test(code)) return code;
    if (typeof name === 'string' && NAME.test(name)) return name;
  }
  return 'Error';
}

/** Milliseconds with two decimals. */
export function roundMs(ms: number): number {
  return Math.round(ms * 100) / 100;
}
