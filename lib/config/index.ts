import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import type { ConfigIssue } from '../errors/index.js';
import { ConfigError } from '../errors/index.js';
import type { JWT_ALGORITHMS, NODE_ENVS } from './variables.js';
import { SAMPLE_JWT_SECRET, VARIABLES } from './variables.js';

export { SAMPLE_JWT_SECRET, VARIABLES } from './variables.js';
export type { VariableSpec } from './variables.js';

export type Environment = (typeof NODE_ENVS)[number];
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];
export type LogLevel = 'error' | 'warn' | 'info' | 'http' | 'verbose' | 'debug' | 'silly';

export interface DatabaseSettings {
  readonly url: string | undefined;
  readonly poolSize: number;
  readonly maxOverflow: number;
  readonly echo: boolean;
}
export interface AuthSettings {
  /** Undefined in production when JWT_SECRET_KEY is unset; the seed's sample elsewhere. */
  readonly secretKey: string | undefined;
  readonly algorithm: JwtAlgorithm;
  readonly accessTokenExpireMinutes: number;
  readonly refreshTokenExpireDays: number;
  /** Defaults to the app name. */
  readonly issuer: string;
  /** Defaults to the app name. */
  readonly audience: string;
  /** A retired HMAC secret that still verifies (never signs) while its tokens expire. */
  readonly previousSecretKey: string | undefined;
  /** PEM private key for asymmetric algorithms (JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE). */
  readonly privateKey: string | undefined;
  /** `kid` of the signing key; defaults to its RFC 7638 thumbprint (asymmetric) or a digest (HMAC). */
  readonly keyId: string | undefined;
  /** JWKS JSON of extra verify-only public keys (rotation: the previous key keeps verifying). */
  readonly publicKeys: string | undefined;
  /** An identity provider's JWKS URL: its tokens are verified with keys fetched from there. */
  readonly jwksUrl: string | undefined;
  /** Clock skew tolerated on `exp`, `nbf` and `iat`. Default 30. */
  readonly clockToleranceSeconds: number;
}
export interface ExternalServicesSettings {
  readonly redisUrl: string | undefined;
  readonly qdrantUrl: string | undefined;
  readonly kafkaBootstrapServers: string | undefined;
}
export interface MonitoringSettings {
  readonly logLevel: LogLevel;
  /** Undefined means: pretty in development, JSON elsewhere. */
  readonly logFormat: 'json' | 'pretty' | undefined;
  readonly logFile: string | undefined;
  readonly errorLogFile: string | undefined;
  readonly enableMetrics: boolean;
  readonly enableTracing: boolean;
  /** Bearer token `metricsEndpoint()` asks scrapers for (METRICS_TOKEN); undefined: none. */
  readonly metricsToken: string | undefined;
  /** Addresses and CIDR ranges allowed to scrape (METRICS_ALLOW_IPS); empty: any. */
  readonly metricsAllowIps: readonly string[];
}
export interface SecuritySettings {
  readonly corsOrigins: readonly string[];
  readonly corsAllowCredentials: boolean;
}
export interface DevelopmentSettings {
  readonly debug: boolean;
}

/** Typed, frozen settings shaped like the seed's `Settings`. Secrets are masked when logged or serialised. */
export interface Settings {
  readonly environment: Environment;
  readonly appName: string;
  readonly appVersion: string;
  readonly apiPrefix: string;
  readonly docsUrl: string;
  readonly rateLimitRequests: number;
  /** Seconds. */
  readonly rateLimitWindow: number;
  readonly database: DatabaseSettings;
  readonly auth: AuthSettings;
  readonly externalServices: ExternalServicesSettings;
  readonly monitoring: MonitoringSettings;
  readonly security: SecuritySettings;
  readonly development: DevelopmentSettings;
}

const MIN_SECRET_BYTES = 32;
const MASK = '[REDACTED]';

/** `postgres://user:pw@host/db` → `postgres://user:[REDACTED]@host/db`; anything else secret → mask. */
function maskSecret(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const masked = value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/i, `$1${MASK}@`);
  return masked === value && !/^[a-z][a-z0-9+.-]*:\/\/[^@]*$/i.test(value) ? MASK : masked;
}

/** Where `received` would repeat a secret, say only its class. */
function describeEnv(raw: string, secret: boolean): string {
  if (raw.length === 0) return 'an empty string';
  if (secret) return `a secret of ${Buffer.byteLength(raw)} bytes`;
  if (/^-?\d+(\.\d+)?$/.test(raw.trim())) return `the number ${raw.trim()}`;
  return `a string of ${raw.length} characters`;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1] as string] = value;
}

/** Give a section `toJSON` and `util.inspect` that mask the listed keys; both non-enumerable. */
function maskable<T extends object>(section: T, secretKeys: readonly string[]): T {
  if (secretKeys.length === 0) return section;
  const masked = (): Record<string, unknown> => {
    const copy: Record<string, unknown> = { ...(section as Record<string, unknown>) };
    for (const key of secretKeys) if (copy[key] !== undefined) copy[key] = maskSecret(copy[key]);
    return copy;
  };
  Object.defineProperty(section, 'toJSON', { value: masked, enumerable: false });
  Object.defineProperty(section, inspect.custom, {
    value: (depth: number, options: object) => inspect(masked(), { ...options, depth }),
    enumerable: false,
  });
  return section;
}

function readValue(
  env: Readonly<Record<string, string | undefined>>,
  spec: (typeof VARIABLES)[number],
  issues: ConfigIssue[],
): string | undefined {
  const direct = env[spec.env];
  const fileName = spec.fileVariant === true ? env[`${spec.env}_FILE`] : undefined;
  const hasDirect = direct !== undefined && direct !== '';
  if (fileName !== undefined && fileName !== '') {
    if (hasDirect) {
      issues.push({
        name: `${spec.env}_FILE`,
        expected: `only one of ${spec.env} and ${spec.env}_FILE`,
        received: 'both set',
      });
      return undefined;
    }
    try {
      // Container secrets end with a newline; the value itself never does.
      const value = readFileSync(fileName, 'utf8').replace(/\r?\n$/, '');
      if (value.length === 0)
        issues.push({
          name: `${spec.env}_FILE`,
          expected: 'a file holding the value',
          received: 'an empty file',
        });
      return value.length === 0 ? undefined : value;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      issues.push({
        name: `${spec.env}_FILE`,
        expected: 'a readable file',
        received: `a path that failed with ${code}`,
      });
      return undefined;
    }
  }
  return hasDirect ? direct : undefined;
}

/**
 * Parse every variable caduceus knows from `env` into frozen, typed Settings.
 * All invalid variables are reported at once in one ConfigError; secret values never appear in it.
 *
 * @example
 * const settings = core.loadSettings(); // process.env
 * const test = core.loadSettings({ NODE_ENV: 'test', DATABASE_URL: 'sqlite::memory:' });
 */
export function loadSettings(env: Readonly<Record<string, string | undefined>> = process.env): Settings {
  const issues: ConfigIssue[] = [];
  const out: Record<string, unknown> = {};
  for (const spec of VARIABLES) {
    const raw = readValue(env, spec, issues);
    const parsed = spec.schema.safeParse(raw);
    if (parsed.success) {
      setPath(out, spec.path, parsed.data);
    } else {
      issues.push({
        name: spec.env,
        expected: spec.expected,
        received: describeEnv(raw ?? '', spec.secret === true),
      });
    }
  }
  const environment = out.environment as Environment | undefined;
  const auth = (out.auth ?? {}) as Record<string, unknown>;
  const secret = auth.secretKey as string | undefined;
  if (environment === 'production') {
    if (secret === SAMPLE_JWT_SECRET) {
      issues.push({
        name: 'JWT_SECRET_KEY',
        expected: 'a secret of your own in production, not the sample from the documentation',
        received: 'the sample secret',
      });
    } else if (secret !== undefined && Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
      issues.push({
        name: 'JWT_SECRET_KEY',
        expected: `at least ${MIN_SECRET_BYTES} bytes in production`,
        received: `a secret of ${Buffer.byteLength(secret)} bytes`,
      });
    }
  } else {
    auth.secretKey = secret ?? SAMPLE_JWT_SECRET;
  }
  if (issues.length > 0) {
    const list = issues.map((i) => `${i.name}: expected ${i.expected}, got ${i.received}`).join('; ');
    throw new ConfigError(`Invalid settings (${issues.length}): ${list}`, issues);
  }
  auth.issuer ??= out.appName;
  auth.audience ??= out.appName;

  const secretsBySection = new Map<string, string[]>();
  for (const spec of VARIABLES) {
    if (spec.secret !== true) continue;
    const [section, key] = spec.path.split('.') as [string, string];
    secretsBySection.set(section, [...(secretsBySection.get(section) ?? []), key]);
  }
  for (const [key, value] of Object.entries(out)) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      out[key] = Object.freeze(maskable(value, secretsBySection.get(key) ?? []));
    }
  }
  const security = out.security as { corsOrigins: string[] } | undefined;
  if (security !== undefined) Object.freeze(security.corsOrigins);
  const monitoring = out.monitoring as { metricsAllowIps?: readonly string[] } | undefined;
  if (monitoring?.metricsAllowIps !== undefined) Object.freeze(monitoring.metricsAllowIps);
  return Object.freeze(out) as unknown as Settings;
}
