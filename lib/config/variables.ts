import { z } from 'zod';

/** One environment variable: where it lands in Settings, how it parses, and whether it is a secret. */
export interface VariableSpec {
  readonly env: string;
  /** Dotted path in Settings, e.g. `auth.secretKey`. */
  readonly path: string;
  readonly schema: z.ZodType;
  /** Human description of what is accepted, used in ConfigError issues. */
  readonly expected: string;
  readonly secret?: boolean;
  /** May be read from a file named by `${env}_FILE` (container secrets). */
  readonly fileVariant?: boolean;
}

const TRUE = new Set(['true', '1', 'yes', 'on']);
const FALSE = new Set(['false', '0', 'no', 'off']);

const bool = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return fallback;
      const s = v.trim().toLowerCase();
      if (TRUE.has(s)) return true;
      if (FALSE.has(s)) return false;
      ctx.addIssue({ code: 'custom', message: 'not a boolean' });
      return z.NEVER;
    });

const int = (fallback: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return fallback;
      const s = v.trim();
      if (!/^-?\d+$/.test(s)) {
        ctx.addIssue({ code: 'custom', message: 'not an integer' });
        return z.NEVER;
      }
      const n = Number(s);
      if (n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: 'out of range' });
        return z.NEVER;
      }
      return n;
    });

const str = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((v) => v ?? fallback);
const optionalStr = () => z.string().optional();

const url = (protocols: readonly string[], fallback?: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return fallback;
      // `sqlite:` URLs carry a path (sqlite:./data.db, sqlite::memory:) and are not WHATWG-parseable hosts.
      const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(v)?.[1]?.toLowerCase();
      if (scheme === undefined || !protocols.includes(scheme)) {
        ctx.addIssue({ code: 'custom', message: 'bad scheme' });
        return z.NEVER;
      }
      if (scheme !== 'sqlite' && !URL.canParse(v)) {
        ctx.addIssue({ code: 'custom', message: 'not a URL' });
        return z.NEVER;
      }
      return v;
    });

const list = (fallback: readonly string[]) =>
  z
    .string()
    .optional()
    .transform((v) =>
      v === undefined
        ? [...fallback]
        : v
            .split(',')
            .map((s) => s.trim())
            .filter((s) => s.length > 0),
    );

/** Python-style level names from the seed map onto winston's npm levels. */
const LOG_LEVELS: Readonly<Record<string, string>> = {
  critical: 'error',
  fatal: 'error',
  error: 'error',
  warning: 'warn',
  warn: 'warn',
  info: 'info',
  http: 'http',
  verbose: 'verbose',
  debug: 'debug',
  silly: 'silly',
  trace: 'silly',
};

const logLevel = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined) return 'info';
    const level = LOG_LEVELS[v.trim().toLowerCase()];
    if (level === undefined) {
      ctx.addIssue({ code: 'custom', message: 'unknown level' });
      return z.NEVER;
    }
    return level;
  });

const oneOf = <const T extends string>(values: readonly T[], fallback: T) =>
  z
    .string()
    .optional()
    .transform((v, ctx): T => {
      if (v === undefined) return fallback;
      const s = v.trim().toLowerCase();
      const found = values.find((x) => x === s);
      if (found === undefined) {
        ctx.addIssue({ code: 'custom', message: 'not allowed' });
        return z.NEVER;
      }
      return found;
    });

export const JWT_ALGORITHMS = [
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

const jwtAlgorithm = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined) return 'HS256' as const;
    const found = JWT_ALGORITHMS.find((a) => a.toLowerCase() === v.trim().toLowerCase());
    if (found === undefined) {
      ctx.addIssue({ code: 'custom', message: 'unsupported algorithm' });
      return z.NEVER;
    }
    return found;
  });

/** The seed's sample secret: accepted outside production so the demo runs, refused in production. */
export const SAMPLE_JWT_SECRET = 'your-super-secret-jwt-key-change-in-production';

export const NODE_ENVS = ['development', 'test', 'staging', 'production'] as const;

/** Every environment variable caduceus reads, in one table (also the source of docs/configuration.md). */
export const VARIABLES: readonly VariableSpec[] = [
  {
    env: 'NODE_ENV',
    path: 'environment',
    schema: oneOf(NODE_ENVS, 'development'),
    expected: `one of ${NODE_ENVS.join(', ')}`,
  },
  { env: 'APP_NAME', path: 'appName', schema: str('Personal Health Assistant'), expected: 'a name' },
  { env: 'APP_VERSION', path: 'appVersion', schema: str('1.0.0'), expected: 'a version string' },
  {
    env: 'API_PREFIX',
    path: 'apiPrefix',
    schema: z
      .string()
      .regex(/^\/[\w\-/.]*$/)
      .optional()
      .transform((v) => v ?? '/api/v1'),
    expected: 'a path starting with /',
  },
  { env: 'DOCS_URL', path: 'docsUrl', schema: str('/docs'), expected: 'a path' },
  {
    env: 'RATE_LIMIT_REQUESTS',
    path: 'rateLimitRequests',
    schema: int(100, 1),
    expected: 'a positive integer',
  },
  {
    env: 'RATE_LIMIT_WINDOW',
    path: 'rateLimitWindow',
    schema: int(60, 1),
    expected: 'a positive integer (seconds)',
  },
  {
    env: 'DATABASE_URL',
    path: 'database.url',
    schema: url(['postgres', 'postgresql', 'mysql', 'mariadb', 'sqlite']),
    expected: 'a postgres://, mysql://, mariadb:// or sqlite: URL',
    secret: true,
    fileVariant: true,
  },
  {
    env: 'DATABASE_POOL_SIZE',
    path: 'database.poolSize',
    schema: int(10, 1, 1000),
    expected: 'an integer from 1 to 1000',
  },
  {
    env: 'DATABASE_MAX_OVERFLOW',
    path: 'database.maxOverflow',
    schema: int(20, 0, 1000),
    expected: 'an integer from 0 to 1000',
  },
  { env: 'DATABASE_ECHO', path: 'database.echo', schema: bool(false), expected: 'true or false' },
  {
    env: 'JWT_SECRET_KEY',
    path: 'auth.secretKey',
    schema: optionalStr(),
    expected: 'a secret of at least 32 bytes',
    secret: true,
    fileVariant: true,
  },
  {
    env: 'JWT_ALGORITHM',
    path: 'auth.algorithm',
    schema: jwtAlgorithm,
    expected: `one of ${JWT_ALGORITHMS.join(', ')}`,
  },
  {
    env: 'JWT_ACCESS_TOKEN_EXPIRE_MINUTES',
    path: 'auth.accessTokenExpireMinutes',
    schema: int(30, 1, 60 * 24 * 365),
    expected: 'a positive integer (minutes)',
  },
  {
    env: 'JWT_REFRESH_TOKEN_EXPIRE_DAYS',
    path: 'auth.refreshTokenExpireDays',
    schema: int(7, 1, 3650),
    expected: 'a positive integer (days)',
  },
  { env: 'JWT_ISSUER', path: 'auth.issuer', schema: optionalStr(), expected: 'an issuer string' },
  { env: 'JWT_AUDIENCE', path: 'auth.audience', schema: optionalStr(), expected: 'an audience string' },
  {
    env: 'JWT_SECRET_KEY_PREVIOUS',
    path: 'auth.previousSecretKey',
    schema: optionalStr(),
    expected: 'the previous secret (still verifies, never signs) during a rotation',
    secret: true,
    fileVariant: true,
  },
  {
    env: 'JWT_PRIVATE_KEY',
    path: 'auth.privateKey',
    schema: z
      .string()
      .optional()
      .refine((v) => v === undefined || v.includes('-----BEGIN'), 'not PEM'),
    expected: 'a PEM private key (RS*, PS*, ES* or EdDSA)',
    secret: true,
    fileVariant: true,
  },
  {
    env: 'JWT_KEY_ID',
    path: 'auth.keyId',
    schema: z
      .string()
      .regex(/^[\w.:-]{1,128}$/)
      .optional(),
    expected: '1-128 characters of A-Z a-z 0-9 _ . : -',
  },
  {
    env: 'JWT_PUBLIC_KEYS',
    path: 'auth.publicKeys',
    schema: optionalStr(),
    expected: 'a JWKS document ({"keys": [...]}) of verify-only public keys',
    fileVariant: true,
  },
  {
    env: 'JWT_JWKS_URL',
    path: 'auth.jwksUrl',
    schema: url(['https', 'http']),
    expected: "an https:// URL of an identity provider's JWKS",
  },
  {
    env: 'JWT_CLOCK_TOLERANCE_SECONDS',
    path: 'auth.clockToleranceSeconds',
    schema: int(30, 0, 300),
    expected: 'an integer from 0 to 300 (seconds)',
  },
  {
    env: 'REDIS_URL',
    path: 'externalServices.redisUrl',
    schema: url(['redis', 'rediss']),
    expected: 'a redis:// or rediss:// URL',
    secret: true,
    fileVariant: true,
  },
  {
    env: 'QDRANT_URL',
    path: 'externalServices.qdrantUrl',
    schema: url(['http', 'https']),
    expected: 'an http(s) URL',
  },
  {
    env: 'KAFKA_BOOTSTRAP_SERVERS',
    path: 'externalServices.kafkaBootstrapServers',
    schema: optionalStr(),
    expected: 'host:port[,host:port]',
  },
  {
    env: 'SECURITY_CORS_ORIGINS',
    path: 'security.corsOrigins',
    schema: list(['http://localhost:3000', 'http://localhost:8080']),
    expected: 'a comma-separated list of origins',
  },
  {
    env: 'SECURITY_CORS_ALLOW_CREDENTIALS',
    path: 'security.corsAllowCredentials',
    schema: bool(true),
    expected: 'true or false',
  },
  {
    env: 'LOG_LEVEL',
    path: 'monitoring.logLevel',
    schema: logLevel,
    expected: 'one of DEBUG, INFO, WARNING, ERROR, CRITICAL (or a winston level)',
  },
  {
    env: 'LOG_FORMAT',
    path: 'monitoring.logFormat',
    schema: z.enum(['json', 'pretty']).optional(),
    expected: 'json or pretty',
  },
  { env: 'LOG_FILE', path: 'monitoring.logFile', schema: optionalStr(), expected: 'a file path' },
  { env: 'LOG_ERROR_FILE', path: 'monitoring.errorLogFile', schema: optionalStr(), expected: 'a file path' },
  { env: 'ENABLE_METRICS', path: 'monitoring.enableMetrics', schema: bool(true), expected: 'true or false' },
  { env: 'ENABLE_TRACING', path: 'monitoring.enableTracing', schema: bool(false), expected: 'true or false' },
  {
    env: 'METRICS_TOKEN',
    path: 'monitoring.metricsToken',
    schema: optionalStr(),
    expected: 'a bearer token for the metrics endpoint',
    secret: true,
    fileVariant: true,
  },
  {
    env: 'METRICS_ALLOW_IPS',
    path: 'monitoring.metricsAllowIps',
    schema: list([]),
    expected: 'a comma-separated list of IP addresses or CIDR ranges',
  },
  { env: 'APP_DEBUG', path: 'development.debug', schema: bool(false), expected: 'true or false' },
];
