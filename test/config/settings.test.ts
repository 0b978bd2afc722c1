import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format, inspect } from 'node:util';
import fc from 'fast-check';
import * as core from '../../lib/index';

// Property tests run the same cases on every run: a failure is reproducible, never flaky.
fc.configureGlobal({ seed: 2026 });

type Env = Record<string, string | undefined>;

/** The ConfigError `fn` throws; fails the test when it throws anything else or nothing. */
function configError(fn: () => unknown): core.ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(core.ConfigError);
    return error as core.ConfigError;
  }
  throw new Error('expected a ConfigError, nothing was thrown');
}

const issueNames = (env: Env): string[] =>
  configError(() => core.loadSettings(env)).issues.map((i) => i.name);

/** Every object reachable from `value`, including arrays. */
function objectsIn(value: unknown, out: object[] = []): object[] {
  if (typeof value === 'object' && value !== null) {
    out.push(value);
    for (const v of Object.values(value)) objectsIn(v, out);
  }
  return out;
}

const LONG_SECRET = 'k3y-of-my-own-that-is-long-enough-for-hs256-0123456789';
const CANARY_SECRET = 'CANARY-jwt-secret-4f1c2b9e';
const CANARY_DB_PASSWORD = 'CANARYdbPw7731';
const CANARY_REDIS_PASSWORD = 'CANARYredisPw5517';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'caduceus-settings-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function secretFile(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

describe('loadSettings() defaults', () => {
  it('with an empty environment, returns the seed defaults', () => {
    const s = core.loadSettings({});
    expect(s.environment).toBe('development');
    expect(s.appName).toBe('Personal Health Assistant');
    expect(s.appVersion).toBe('1.0.0');
    expect(s.apiPrefix).toBe('/api/v1');
    expect(s.docsUrl).toBe('/docs');
    expect(s.rateLimitRequests).toBe(100);
    expect(s.rateLimitWindow).toBe(60);
    expect(s.database).toEqual({ url: undefined, poolSize: 10, maxOverflow: 20, echo: false });
    expect({ ...s.auth }).toEqual({
      secretKey: core.SAMPLE_JWT_SECRET,
      algorithm: 'HS256',
      accessTokenExpireMinutes: 30,
      refreshTokenExpireDays: 7,
      issuer: 'Personal Health Assistant',
      audience: 'Personal Health Assistant',
      previousSecretKey: undefined,
      privateKey: undefined,
      keyId: undefined,
      publicKeys: undefined,
      jwksUrl: undefined,
      clockToleranceSeconds: 30,
    });
    expect(s.externalServices).toEqual({
      redisUrl: undefined,
      qdrantUrl: undefined,
      kafkaBootstrapServers: undefined,
    });
    expect(s.monitoring).toMatchObject({ logLevel: 'info', enableMetrics: true, enableTracing: false });
    expect(s.security).toEqual({
      corsOrigins: ['http://localhost:3000', 'http://localhost:8080'],
      corsAllowCredentials: true,
    });
    expect(s.development).toEqual({ debug: false });
  });

  it('parses the seed example environment', () => {
    const s = core.loadSettings({
      DATABASE_URL: 'postgresql://postgres:postgres@localhost:5432/health_assistant',
      DATABASE_POOL_SIZE: '10',
      DATABASE_MAX_OVERFLOW: '20',
      JWT_SECRET_KEY: 'your-super-secret-jwt-key-change-in-production',
      JWT_ALGORITHM: 'HS256',
      JWT_ACCESS_TOKEN_EXPIRE_MINUTES: '30',
      JWT_REFRESH_TOKEN_EXPIRE_DAYS: '7',
      QDRANT_URL: 'http://localhost:6333',
      KAFKA_BOOTSTRAP_SERVERS: 'localhost:9092',
      REDIS_URL: 'redis://localhost:6379',
      SECURITY_CORS_ORIGINS: 'http://localhost:3000,http://localhost:8080',
      SECURITY_CORS_ALLOW_CREDENTIALS: 'true',
      LOG_LEVEL: 'INFO',
      ENABLE_METRICS: 'true',
      ENABLE_TRACING: 'true',
    });
    expect(s.database.url).toBe('postgresql://postgres:postgres@localhost:5432/health_assistant');
    expect(s.auth.secretKey).toBe(core.SAMPLE_JWT_SECRET);
    expect(s.externalServices).toEqual({
      redisUrl: 'redis://localhost:6379',
      qdrantUrl: 'http://localhost:6333',
      kafkaBootstrapServers: 'localhost:9092',
    });
    expect(s.monitoring.enableTracing).toBe(true);
    expect(s.monitoring.logLevel).toBe('info');
  });

  it('reads only the environment it is given, and process.env when given none', () => {
    const saved = process.env.RATE_LIMIT_WINDOW;
    process.env.RATE_LIMIT_WINDOW = '7';
    try {
      expect(core.loadSettings({}).rateLimitWindow).toBe(60);
      expect(core.loadSettings().rateLimitWindow).toBe(7);
    } finally {
      if (saved === undefined) delete process.env.RATE_LIMIT_WINDOW;
      else process.env.RATE_LIMIT_WINDOW = saved;
    }
  });

  it('does not modify the environment object (a frozen one is fine)', () => {
    const env = Object.freeze({ NODE_ENV: 'test', RATE_LIMIT_WINDOW: ' 30 ' });
    const s = core.loadSettings(env);
    expect(s.rateLimitWindow).toBe(30);
    expect(env).toEqual({ NODE_ENV: 'test', RATE_LIMIT_WINDOW: ' 30 ' });
  });

  it('treats an empty variable as unset', () => {
    const s = core.loadSettings({ RATE_LIMIT_WINDOW: '', ENABLE_METRICS: '', JWT_SECRET_KEY: '' });
    expect(s.rateLimitWindow).toBe(60);
    expect(s.monitoring.enableMetrics).toBe(true);
    expect(s.auth.secretKey).toBe(core.SAMPLE_JWT_SECRET);
  });

  it('uses the app name as JWT issuer and audience unless they are set', () => {
    const named = core.loadSettings({ APP_NAME: 'patients-api' });
    expect(named.auth.issuer).toBe('patients-api');
    expect(named.auth.audience).toBe('patients-api');
    const explicit = core.loadSettings({
      APP_NAME: 'patients-api',
      JWT_ISSUER: 'https://id.example',
      JWT_AUDIENCE: 'ehr',
    });
    expect(explicit.auth.issuer).toBe('https://id.example');
    expect(explicit.auth.audience).toBe('ehr');
  });
});

describe('loadSettings() parsing', () => {
  it.each([
    ['RATE_LIMIT_REQUESTS', '250', (s: core.Settings) => s.rateLimitRequests, 250],
    ['RATE_LIMIT_WINDOW', ' 15 ', (s: core.Settings) => s.rateLimitWindow, 15],
    ['DATABASE_POOL_SIZE', '1000', (s: core.Settings) => s.database.poolSize, 1000],
    ['DATABASE_MAX_OVERFLOW', '0', (s: core.Settings) => s.database.maxOverflow, 0],
    ['JWT_ACCESS_TOKEN_EXPIRE_MINUTES', '15', (s: core.Settings) => s.auth.accessTokenExpireMinutes, 15],
    ['JWT_REFRESH_TOKEN_EXPIRE_DAYS', '30', (s: core.Settings) => s.auth.refreshTokenExpireDays, 30],
  ])('parses the integer %s=%j', (name, raw, read, expected) => {
    expect(read(core.loadSettings({ [name]: raw }))).toBe(expected);
  });

  it.each([
    ['RATE_LIMIT_WINDOW', '0'],
    ['RATE_LIMIT_WINDOW', '-5'],
    ['RATE_LIMIT_WINDOW', '1.5'],
    ['RATE_LIMIT_WINDOW', '1e3'],
    ['RATE_LIMIT_WINDOW', '0x10'],
    ['RATE_LIMIT_WINDOW', 'sixty'],
    ['RATE_LIMIT_WINDOW', '99999999999999999999'],
    ['RATE_LIMIT_REQUESTS', '10 requests'],
    ['DATABASE_POOL_SIZE', '0'],
    ['DATABASE_POOL_SIZE', '1001'],
    ['DATABASE_MAX_OVERFLOW', '-1'],
    ['JWT_REFRESH_TOKEN_EXPIRE_DAYS', '3651'],
  ])('rejects the integer %s=%j', (name, raw) => {
    expect(issueNames({ [name]: raw })).toEqual([name]);
  });

  it.each([
    ['true', true],
    ['false', false],
    ['1', true],
    ['0', false],
    ['yes', true],
    ['no', false],
    ['TRUE', true],
    [' No ', false],
  ])('parses the boolean %j', (raw, expected) => {
    const s = core.loadSettings({
      ENABLE_METRICS: raw,
      ENABLE_TRACING: raw,
      DATABASE_ECHO: raw,
      SECURITY_CORS_ALLOW_CREDENTIALS: raw,
      APP_DEBUG: raw,
    });
    expect(s.monitoring.enableMetrics).toBe(expected);
    expect(s.monitoring.enableTracing).toBe(expected);
    expect(s.database.echo).toBe(expected);
    expect(s.security.corsAllowCredentials).toBe(expected);
    expect(s.development.debug).toBe(expected);
  });

  it.each(['maybe', 'ture', '2', 'y e s'])('rejects the boolean %j', (raw) => {
    expect(issueNames({ ENABLE_METRICS: raw, APP_DEBUG: raw }).sort()).toEqual([
      'APP_DEBUG',
      'ENABLE_METRICS',
    ]);
  });

  it('splits SECURITY_CORS_ORIGINS on commas, trimming and dropping empty entries', () => {
    const s = core.loadSettings({ SECURITY_CORS_ORIGINS: ' https://a.example ,https://b.example,, ' });
    expect(s.security.corsOrigins).toEqual(['https://a.example', 'https://b.example']);
  });

  it.each([
    'postgres://app:pw@db:5432/health',
    'postgresql://localhost/health',
    'mysql://root@127.0.0.1:3306/health',
    'mariadb://root@127.0.0.1/health',
    'sqlite::memory:',
    'sqlite:./data/health.db',
  ])('accepts DATABASE_URL=%s', (url) => {
    expect(core.loadSettings({ DATABASE_URL: url }).database.url).toBe(url);
  });

  it.each([
    'http://db.example/health',
    'localhost:5432',
    'not a url',
    'redis://localhost:6379',
    'postgres://bad host/x',
  ])('rejects DATABASE_URL=%s', (url) => {
    expect(issueNames({ DATABASE_URL: url })).toEqual(['DATABASE_URL']);
  });

  it('accepts redis:// and rediss:// for REDIS_URL, http(s) for QDRANT_URL, and nothing else', () => {
    expect(core.loadSettings({ REDIS_URL: 'rediss://:pw@cache:6380/0' }).externalServices.redisUrl).toBe(
      'rediss://:pw@cache:6380/0',
    );
    expect(core.loadSettings({ QDRANT_URL: 'https://qdrant.example' }).externalServices.qdrantUrl).toBe(
      'https://qdrant.example',
    );
    expect(issueNames({ REDIS_URL: 'http://cache:6379', QDRANT_URL: 'redis://q:6333' }).sort()).toEqual([
      'QDRANT_URL',
      'REDIS_URL',
    ]);
  });

  it.each([
    ['DEBUG', 'debug'],
    ['INFO', 'info'],
    ['WARNING', 'warn'],
    ['ERROR', 'error'],
    ['CRITICAL', 'error'],
    ['warn', 'warn'],
    ['silly', 'silly'],
  ])('maps LOG_LEVEL=%s to the winston level %s', (raw, level) => {
    expect(core.loadSettings({ LOG_LEVEL: raw }).monitoring.logLevel).toBe(level);
  });

  it('rejects an unknown LOG_LEVEL and LOG_FORMAT', () => {
    expect(issueNames({ LOG_LEVEL: 'LOUD', LOG_FORMAT: 'xml' }).sort()).toEqual(['LOG_FORMAT', 'LOG_LEVEL']);
  });

  it('accepts the known environments and rejects others', () => {
    for (const env of ['development', 'test', 'staging', 'production'] as const) {
      const s = core.loadSettings({ NODE_ENV: env, JWT_SECRET_KEY: LONG_SECRET });
      expect(s.environment).toBe(env);
    }
    expect(issueNames({ NODE_ENV: 'prod' })).toEqual(['NODE_ENV']);
  });

  it('normalises JWT_ALGORITHM and refuses `none`', () => {
    expect(core.loadSettings({ JWT_ALGORITHM: 'rs256' }).auth.algorithm).toBe('RS256');
    expect(issueNames({ JWT_ALGORITHM: 'none' })).toEqual(['JWT_ALGORITHM']);
  });

  it('requires API_PREFIX to be a path', () => {
    expect(core.loadSettings({ API_PREFIX: '/api/v2' }).apiPrefix).toBe('/api/v2');
    expect(issueNames({ API_PREFIX: 'api/v2' })).toEqual(['API_PREFIX']);
  });

  it('RATE_LIMIT_WINDOW: any string gives a positive integer or a ConfigError, never anything else', () => {
    const raw = fc.oneof(
      fc.string(),
      fc.string({ unit: fc.constantFrom('0', '1', '9', '-', '+', '.', ' ', 'e', '\t', 'x') }),
      fc.integer().map(String),
      fc.double().map(String),
    );
    fc.assert(
      fc.property(raw, (value) => {
        let window: unknown;
        try {
          window = core.loadSettings({ RATE_LIMIT_WINDOW: value }).rateLimitWindow;
        } catch (error) {
          expect(error).toBeInstanceOf(core.ConfigError);
          expect((error as core.ConfigError).issues.map((i) => i.name)).toEqual(['RATE_LIMIT_WINDOW']);
          return;
        }
        expect(Number.isSafeInteger(window)).toBe(true);
        expect(window).toBeGreaterThan(0);
      }),
      { numRuns: 300 },
    );
  });

  it('boolean variables: any string gives a boolean or a ConfigError', () => {
    fc.assert(
      fc.property(fc.string(), (value) => {
        try {
          expect(typeof core.loadSettings({ ENABLE_METRICS: value }).monitoring.enableMetrics).toBe(
            'boolean',
          );
        } catch (error) {
          expect(error).toBeInstanceOf(core.ConfigError);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('loadSettings() result', () => {
  it('is deeply frozen', () => {
    const s = core.loadSettings({ DATABASE_URL: 'sqlite::memory:' });
    for (const o of objectsIn(s)) expect(Object.isFrozen(o)).toBe(true);
    expect(() => {
      (s as { rateLimitWindow: number }).rateLimitWindow = 1;
    }).toThrow(TypeError);
    expect(() => {
      (s.database as { poolSize: number }).poolSize = 1;
    }).toThrow(TypeError);
    expect(() => {
      (s.security.corsOrigins as string[]).push('https://evil.example');
    }).toThrow(TypeError);
    expect(s.database.poolSize).toBe(10);
  });

  it('returns independent objects for each call', () => {
    const a = core.loadSettings({ APP_NAME: 'a' });
    const b = core.loadSettings({ APP_NAME: 'b' });
    expect(a.appName).toBe('a');
    expect(b.appName).toBe('b');
    expect(a.security.corsOrigins).not.toBe(b.security.corsOrigins);
  });
});

describe('loadSettings() errors', () => {
  const BAD: Env = {
    NODE_ENV: 'prod',
    RATE_LIMIT_WINDOW: 'abc',
    DATABASE_POOL_SIZE: '0',
    DATABASE_URL: 'http://db.example/x',
    LOG_LEVEL: 'LOUD',
    ENABLE_METRICS: 'maybe',
    JWT_ALGORITHM: 'none',
  };

  it('reports every invalid variable at once, in one ConfigError', () => {
    const err = configError(() => core.loadSettings(BAD));
    expect(err.issues.map((i) => i.name).sort()).toEqual(Object.keys(BAD).sort());
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.status).toBe(500);
    expect(err.expose).toBe(false);
    expect(core.isAppError(err)).toBe(true);
    expect(err.name).toBe('ConfigError');
    for (const name of Object.keys(BAD)) expect(err.message).toContain(name);
    expect(err.message).toMatch(/See docs\/error-codes\.md#CONFIG_INVALID$/);
    for (const issue of err.issues) {
      expect(issue.expected.length).toBeGreaterThan(0);
      expect(issue.received.length).toBeGreaterThan(0);
    }
  });

  it('says what was expected and what kind of value it got', () => {
    const err = configError(() => core.loadSettings({ RATE_LIMIT_WINDOW: '-5', DATABASE_POOL_SIZE: 'many' }));
    const window = err.issues.find((i) => i.name === 'RATE_LIMIT_WINDOW');
    expect(window?.expected).toMatch(/positive integer/);
    expect(window?.received).toContain('-5');
    expect(err.issues.find((i) => i.name === 'DATABASE_POOL_SIZE')?.expected).toMatch(/1 to 1000/);
  });

  it('never repeats secret values in the message or the issues', () => {
    const err = configError(() =>
      core.loadSettings({
        NODE_ENV: 'production',
        JWT_SECRET_KEY: CANARY_SECRET,
        DATABASE_URL: `http://app:${CANARY_DB_PASSWORD}@db/x`,
        REDIS_URL: `ftp://:${CANARY_REDIS_PASSWORD}@cache:6379`,
      }),
    );
    expect(err.issues.map((i) => i.name).sort()).toEqual(['DATABASE_URL', 'JWT_SECRET_KEY', 'REDIS_URL']);
    const everything = [
      err.message,
      JSON.stringify(err.issues),
      JSON.stringify(err),
      inspect(err, { depth: null }),
    ];
    for (const text of everything) {
      expect(text).not.toContain(CANARY_SECRET);
      expect(text).not.toContain(CANARY_DB_PASSWORD);
      expect(text).not.toContain(CANARY_REDIS_PASSWORD);
    }
  });

  it('does not echo non-secret string values either', () => {
    const err = configError(() => core.loadSettings({ LOG_LEVEL: 'CANARY-level-9d1e' }));
    expect(err.message).not.toContain('CANARY-level-9d1e');
    expect(err.issues[0]?.received).toMatch(/string of \d+ characters/);
  });
});

describe('loadSettings() in production', () => {
  it('refuses the sample secret from the seed', () => {
    const err = configError(() =>
      core.loadSettings({ NODE_ENV: 'production', JWT_SECRET_KEY: core.SAMPLE_JWT_SECRET }),
    );
    expect(err.issues.map((i) => i.name)).toEqual(['JWT_SECRET_KEY']);
    expect(err.message).not.toContain(core.SAMPLE_JWT_SECRET);
  });

  it('refuses the sample secret when it comes from a file', () => {
    const file = secretFile('jwt', `${core.SAMPLE_JWT_SECRET}\n`);
    const err = configError(() => core.loadSettings({ NODE_ENV: 'production', JWT_SECRET_KEY_FILE: file }));
    expect(err.issues.map((i) => i.name)).toEqual(['JWT_SECRET_KEY']);
  });

  it.each([
    ['31 ASCII bytes', 'a'.repeat(31)],
    ['16 characters but 31 bytes', `${'é'.repeat(15)}a`],
  ])('refuses a secret shorter than 32 bytes (%s)', (_label, secret) => {
    const err = configError(() => core.loadSettings({ NODE_ENV: 'production', JWT_SECRET_KEY: secret }));
    expect(err.issues.map((i) => i.name)).toEqual(['JWT_SECRET_KEY']);
    expect(err.issues[0]?.received).toContain('31 bytes');
  });

  it.each([
    ['32 ASCII bytes', 'b'.repeat(32)],
    ['16 two-byte characters', 'é'.repeat(16)],
    ['a long secret', LONG_SECRET],
  ])('accepts a secret of at least 32 bytes (%s)', (_label, secret) => {
    expect(core.loadSettings({ NODE_ENV: 'production', JWT_SECRET_KEY: secret }).auth.secretKey).toBe(secret);
  });

  it('reports the weak secret together with the other invalid variables', () => {
    expect(
      issueNames({ NODE_ENV: 'production', JWT_SECRET_KEY: 'short', RATE_LIMIT_WINDOW: 'x' }).sort(),
    ).toEqual(['JWT_SECRET_KEY', 'RATE_LIMIT_WINDOW']);
  });

  it('does not fall back to the sample secret when none is set', () => {
    expect(core.loadSettings({ NODE_ENV: 'production' }).auth.secretKey).toBeUndefined();
  });

  it.each(['development', 'test'])('accepts the sample and short secrets in %s', (env) => {
    expect(core.loadSettings({ NODE_ENV: env }).auth.secretKey).toBe(core.SAMPLE_JWT_SECRET);
    expect(core.loadSettings({ NODE_ENV: env, JWT_SECRET_KEY: 'dev' }).auth.secretKey).toBe('dev');
  });
});

describe('loadSettings() *_FILE variants', () => {
  it('reads JWT_SECRET_KEY from JWT_SECRET_KEY_FILE, trimming the trailing newline', () => {
    const file = secretFile('jwt', `${LONG_SECRET}\n`);
    const s = core.loadSettings({ NODE_ENV: 'production', JWT_SECRET_KEY_FILE: file });
    expect(s.auth.secretKey).toBe(LONG_SECRET);
  });

  it('trims a Windows line ending, and reads a file without a newline as it is', () => {
    expect(
      core.loadSettings({ JWT_SECRET_KEY_FILE: secretFile('crlf', `${LONG_SECRET}\r\n`) }).auth.secretKey,
    ).toBe(LONG_SECRET);
    expect(core.loadSettings({ JWT_SECRET_KEY_FILE: secretFile('plain', LONG_SECRET) }).auth.secretKey).toBe(
      LONG_SECRET,
    );
  });

  it('reads DATABASE_URL_FILE and REDIS_URL_FILE, and validates what it read', () => {
    const s = core.loadSettings({
      DATABASE_URL_FILE: secretFile('db', 'postgres://app:pw@db:5432/health\n'),
      REDIS_URL_FILE: secretFile('redis', 'redis://:pw@cache:6379\n'),
    });
    expect(s.database.url).toBe('postgres://app:pw@db:5432/health');
    expect(s.externalServices.redisUrl).toBe('redis://:pw@cache:6379');
    expect(issueNames({ DATABASE_URL_FILE: secretFile('bad-db', 'http://nope\n') })).toEqual([
      'DATABASE_URL',
    ]);
  });

  it('refuses X and X_FILE set together', () => {
    const err = configError(() =>
      core.loadSettings({ JWT_SECRET_KEY: LONG_SECRET, JWT_SECRET_KEY_FILE: secretFile('jwt', LONG_SECRET) }),
    );
    expect(err.issues.map((i) => i.name)).toEqual(['JWT_SECRET_KEY_FILE']);
    expect(err.issues[0]?.expected).toContain('JWT_SECRET_KEY');
    expect(err.message).not.toContain(LONG_SECRET);
  });

  it('names the variable when the file cannot be read', () => {
    const err = configError(() =>
      core.loadSettings({ JWT_SECRET_KEY_FILE: join(dir, 'missing'), REDIS_URL_FILE: dir /* a directory */ }),
    );
    expect(err.issues.map((i) => i.name).sort()).toEqual(['JWT_SECRET_KEY_FILE', 'REDIS_URL_FILE']);
    expect(err.message).toContain('JWT_SECRET_KEY_FILE');
    expect(err.message).toContain('REDIS_URL_FILE');
  });

  it('does not use an empty secret file as an empty signing key', () => {
    const file = secretFile('empty', '\n');
    let secretKey: string | undefined;
    try {
      secretKey = core.loadSettings({ NODE_ENV: 'development', JWT_SECRET_KEY_FILE: file }).auth.secretKey;
    } catch (error) {
      expect(error).toBeInstanceOf(core.ConfigError);
      return;
    }
    expect(secretKey).not.toBe('');
  });
});

describe('loadSettings() masking', () => {
  const env: Env = {
    NODE_ENV: 'production',
    JWT_SECRET_KEY: `${CANARY_SECRET}-padding-to-32-bytes`,
    DATABASE_URL: `postgres://app:${CANARY_DB_PASSWORD}@db.internal:5432/health`,
    REDIS_URL: `redis://:${CANARY_REDIS_PASSWORD}@cache:6379/0`,
  };
  const CANARIES = [CANARY_SECRET, CANARY_DB_PASSWORD, CANARY_REDIS_PASSWORD];

  it('masks secrets in JSON.stringify, util.inspect and console formatting', () => {
    const s = core.loadSettings(env);
    const outputs = [
      JSON.stringify(s),
      JSON.stringify(s.auth),
      JSON.stringify(s.database),
      inspect(s),
      inspect(s, { depth: null, showHidden: true }),
      inspect(s.auth),
      format('%o %O %j', s, s, s),
    ];
    for (const out of outputs) for (const canary of CANARIES) expect(out).not.toContain(canary);
    expect(JSON.stringify(s)).toContain('[REDACTED]');
  });

  it('keeps the non-secret parts of a masked URL readable', () => {
    const json = JSON.parse(JSON.stringify(core.loadSettings(env))) as {
      database: { url: string; poolSize: number };
      auth: { algorithm: string };
    };
    expect(json.database.url).toBe('postgres://app:[REDACTED]@db.internal:5432/health');
    expect(json.database.poolSize).toBe(10);
    expect(json.auth.algorithm).toBe('HS256');
  });

  it('leaves the real values readable through the properties', () => {
    const s = core.loadSettings(env);
    expect(s.auth.secretKey).toBe(env.JWT_SECRET_KEY);
    expect(s.database.url).toBe(env.DATABASE_URL);
    expect(s.externalServices.redisUrl).toBe(env.REDIS_URL);
    expect(Object.keys(s.auth)).toContain('secretKey');
  });
});
