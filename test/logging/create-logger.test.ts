import { Console } from 'node:console';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import winston from 'winston';
import * as core from '../../lib/index';

const SSN = '078-05-1120';
const TOKEN = 'tok_CANARY_9f8e7d6c5b4a3210';
const BEARER = `Bearer ${TOKEN}`;
const PASSWORD = 'Pa55w0rd-CANARY-81f3';
const CANARIES = [SSN, TOKEN, PASSWORD];

const TEST_SETTINGS = core.loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'DEBUG' });

/** A writable that keeps what it is given. */
function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return { stream, text: () => chunks.join('') };
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const nonEmpty = (text: string): string[] => text.split('\n').filter((l) => l.length > 0);

interface Captured {
  logger: core.Logger;
  text: () => string;
  lines: () => string[];
  records: () => Record<string, unknown>[];
}

/** A logger whose lines are captured from a real winston Stream transport. */
function capture(options: core.LoggerOptions = {}, name = 'patients'): Captured {
  const out = sink();
  const logger = core.createLogger(name, {
    console: false,
    settings: TEST_SETTINGS,
    transports: [new winston.transports.Stream({ stream: out.stream })],
    ...options,
  });
  const lines = (): string[] => nonEmpty(out.text());
  return {
    logger,
    text: out.text,
    lines,
    records: () => lines().map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Runs `fn` with the global console writing into a buffer, and returns what winston's Console transport wrote. */
async function captureConsole(fn: () => unknown): Promise<string> {
  const out = sink();
  const saved = globalThis.console;
  globalThis.console = new Console({ stdout: out.stream, stderr: out.stream });
  try {
    await fn();
    await settle();
  } finally {
    globalThis.console = saved;
  }
  return out.text();
}

function prettyLogger(options: core.LoggerOptions = {}): core.Logger {
  return core.createLogger('patients', {
    format: 'pretty',
    colours: false,
    settings: core.loadSettings({ NODE_ENV: 'development' }),
    ...options,
  });
}

function expectNoCanary(text: string): void {
  for (const canary of CANARIES) expect(text).not.toContain(canary);
}

describe('createLogger: JSON lines', () => {
  it('writes one JSON line per entry with timestamp, level, logger name and message', async () => {
    const { logger, lines, records } = capture();
    const before = Date.now();
    logger.info('Patient created', { patient_id: 'p-1', count: 3 });
    logger.warn('Slow query');
    await settle();
    expect(lines()).toHaveLength(2);
    const [first, second] = records();
    expect(first).toMatchObject({
      level: 'info',
      logger: 'patients',
      message: 'Patient created',
      patient_id: 'p-1',
      count: 3,
    });
    expect(second).toMatchObject({ level: 'warn', logger: 'patients', message: 'Slow query' });
    expect(first?.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(String(first?.timestamp))).toBeGreaterThanOrEqual(before - 1000);
  });

  it('adds defaultMeta to every line', async () => {
    const { logger, records } = capture({ defaultMeta: { service: 'patients-api' } });
    logger.info('a');
    logger.error('b');
    await settle();
    for (const r of records()) expect(r.service).toBe('patients-api');
  });

  it('writes JSON to the console in production and pretty lines in development', async () => {
    const production = await captureConsole(() => {
      core
        .createLogger('svc', {
          settings: core.loadSettings({ NODE_ENV: 'production', JWT_SECRET_KEY: 'x'.repeat(40) }),
        })
        .info('hello');
    });
    expect(JSON.parse(production.trim())).toMatchObject({ level: 'info', logger: 'svc', message: 'hello' });

    const development = await captureConsole(() => {
      core
        .createLogger('svc', { colours: false, settings: core.loadSettings({ NODE_ENV: 'development' }) })
        .info('hello');
    });
    expect(development).toMatch(/^\S+Z INFO {2}\[svc\] hello\n$/);
  });

  it('takes the format from LOG_FORMAT, and the option over it', async () => {
    const fromSettings = await captureConsole(() => {
      core
        .createLogger('svc', { settings: core.loadSettings({ NODE_ENV: 'development', LOG_FORMAT: 'json' }) })
        .info('x');
    });
    expect(() => JSON.parse(fromSettings) as unknown).not.toThrow();
    const fromOption = await captureConsole(() => {
      core
        .createLogger('svc', {
          format: 'pretty',
          colours: false,
          settings: core.loadSettings({ NODE_ENV: 'production', JWT_SECRET_KEY: 'y'.repeat(40) }),
        })
        .info('x');
    });
    expect(fromOption).toMatch(/INFO {2}\[svc\] x/);
  });

  it('keeps the stack of an Error logged directly', async () => {
    const { logger, records } = capture();
    logger.error(new core.NotFoundError('Patient', 'p-1'));
    await settle();
    const [line] = records();
    expect(line?.message).toBe('Patient not found');
    expect(line?.stack).toEqual(expect.stringContaining('NotFoundError: Patient not found'));
  });

  it('keeps the stack of an Error passed as meta', async () => {
    const { logger, records } = capture();
    logger.error('Lookup failed', new Error('connection reset'));
    await settle();
    expect(records()[0]?.stack).toEqual(expect.stringContaining('Error: connection reset'));
  });
});

describe('createLogger: redaction', () => {
  const cases: [string, (log: core.Logger) => void][] = [
    ['the message', (log) => log.info(`patient ${SSN} called with ${BEARER}`)],
    [
      'URL credentials in the message',
      (log) => log.info(`connecting to postgres://app:${PASSWORD}@db:5432/health`),
    ],
    ['a query string in the message', (log) => log.info(`GET /login?user=jane&password=${PASSWORD}`)],
    ['meta keys', (log) => log.info('login', { password: PASSWORD, ssn: SSN, authorization: BEARER })],
    [
      'meta values',
      (log) => log.info('note', { note: `ssn ${SSN}`, header: BEARER, dsn: `redis://:${PASSWORD}@cache` }),
    ],
    [
      'nested meta',
      (log) =>
        log.info('request', {
          req: {
            headers: { authorization: BEARER, cookie: `sid=${TOKEN}` },
            body: { user: { password: PASSWORD, ssn: SSN } },
          },
          list: [{ token: TOKEN }, `ssn ${SSN}`],
        }),
    ],
    [
      'an Error as the message',
      (log) => log.error(new Error(`failed for ${SSN} with ${BEARER} at postgres://u:${PASSWORD}@h/db`)),
    ],
    ['an Error as meta', (log) => log.error('failed', new Error(`failed for ${SSN} with ${BEARER}`))],
    [
      'an Error nested in meta',
      (log) => log.error('failed', { err: new Error(`failed for ${SSN}`, { cause: new Error(BEARER) }) }),
    ],
    ['an info object', (log) => log.log({ level: 'info', message: `ssn ${SSN}`, password: PASSWORD })],
    ['extra arguments', (log) => log.info('user %s', SSN, PASSWORD)],
    [
      'a child logger',
      (log) => log.child({ token: TOKEN, note: `ssn ${SSN}` }).info(`Authorization: ${BEARER}`),
    ],
    [
      'the settings object',
      (log) =>
        log.info('config', {
          settings: core.loadSettings({
            JWT_SECRET_KEY: PASSWORD,
            DATABASE_URL: `postgres://app:${PASSWORD}@db/x`,
          }),
        }),
    ],
    [
      'a Map and a Buffer',
      (log) => log.info('m', { m: new Map([['password', PASSWORD]]), b: Buffer.from(PASSWORD) }),
    ],
  ];

  it.each(cases)('no canary from %s reaches the JSON output', async (_label, write) => {
    const { logger, text, records } = capture();
    write(logger);
    await settle();
    expect(text().length).toBeGreaterThan(0);
    expectNoCanary(text());
    expect(() => records()).not.toThrow();
  });

  it.each(cases)('no canary from %s reaches the pretty output', async (_label, write) => {
    const out = await captureConsole(() => {
      write(prettyLogger());
    });
    expect(out.length).toBeGreaterThan(0);
    expectNoCanary(out);
  });

  it('redacts defaultMeta', async () => {
    const { logger, text } = capture({ defaultMeta: { apiKey: TOKEN, owner: `ssn ${SSN}` } });
    logger.info('x');
    await settle();
    expectNoCanary(text());
  });

  it('does not mutate the meta it is given', async () => {
    const { logger } = capture();
    const meta = { password: PASSWORD, nested: { note: `ssn ${SSN}\nnext`, list: [BEARER] } };
    const before = structuredClone(meta);
    logger.info('x', meta);
    await settle();
    expect(meta).toEqual(before);
  });

  it('takes extra keys from the redact option', async () => {
    const { logger, text } = capture({ redact: { keys: ['localRef'] } });
    logger.info('x', { local_ref: 'CANARY-local-ref' });
    await settle();
    expect(text()).not.toContain('CANARY-local-ref');
  });
});

describe('createLogger: levels', () => {
  it('drops entries below the level option', async () => {
    const { logger, records } = capture({ level: 'warn' });
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    await settle();
    expect(records().map((r) => r.message)).toEqual(['w', 'e']);
  });

  it.each([
    ['WARNING', 'warn', ['w', 'e']],
    ['CRITICAL', 'error', ['e']],
    ['DEBUG', 'debug', ['d', 'i', 'w', 'e']],
    [undefined, 'info', ['i', 'w', 'e']],
  ])('takes the level from LOG_LEVEL=%s', async (raw, level, expected) => {
    const { logger, records } = capture({
      settings: core.loadSettings({ NODE_ENV: 'test', LOG_LEVEL: raw }),
    });
    expect(logger.level).toBe(level);
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    await settle();
    expect(records().map((r) => r.message)).toEqual(expected);
  });

  it('prefers the level option over LOG_LEVEL', () => {
    const { logger } = capture({ level: 'error', settings: core.loadSettings({ LOG_LEVEL: 'DEBUG' }) });
    expect(logger.level).toBe('error');
  });
});

describe('createLogger: log injection', () => {
  const FORGED = '\n2024-01-01T00:00:00.000Z INFO  [auth] FAKE LINE admin logged in';
  const INJECTIONS: [string, (log: core.Logger) => void][] = [
    ['the message', (log) => log.info(`hello${FORGED}`)],
    [
      'a carriage return and line separators',
      (log) => log.info(`a\rFAKE LINE\u2028FAKE LINE\u2029FAKE LINE`),
    ],
    ['a meta value', (log) => log.info('x', { note: `hello${FORGED}` })],
    ['a meta key', (log) => log.info('x', { [`key${FORGED}`]: 1 })],
    ['a nested value', (log) => log.info('x', { body: { [`k${FORGED}`]: `v${FORGED}` } })],
  ];

  it.each(INJECTIONS)('JSON: a newline in %s stays on one line', async (_label, write) => {
    const { logger, text, records } = capture();
    write(logger);
    await settle();
    expect(nonEmpty(text())).toHaveLength(1);
    expect(text()).not.toMatch(/[\r\u2028\u2029]/);
    expect(records()).toHaveLength(1);
  });

  it('JSON: the escaped message is still readable', async () => {
    const { logger, records } = capture();
    logger.info('line one\nFAKE LINE');
    await settle();
    expect(records()[0]?.message).toBe('line one\\nFAKE LINE');
  });

  it.each(INJECTIONS)('pretty: a newline in %s stays on one line', async (_label, write) => {
    const out = await captureConsole(() => {
      write(prettyLogger());
    });
    expect(nonEmpty(out)).toHaveLength(1);
    expect(out).not.toMatch(/[\r\u2028\u2029]/);
    expect(out).toContain('FAKE LINE');
  });

  it.each([
    ['logged directly', (log: core.Logger) => log.error(new Error(`boom${FORGED}`))],
    ['passed as meta', (log: core.Logger) => log.error('failed', new Error(`boom${FORGED}`))],
    ['nested in meta', (log: core.Logger) => log.error('failed', { err: new Error(`boom${FORGED}`) })],
  ])('pretty: an Error message %s cannot forge a log line', async (_label, write) => {
    const out = await captureConsole(() => write(prettyLogger()));
    const [first, ...rest] = nonEmpty(out);
    expect(first).toMatch(/^\S+Z ERROR \[patients\] /);
    // A stack may follow on its own lines, but no line of it may pass for an entry.
    for (const line of rest) expect(line).not.toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('pretty: the entry shows level, logger, message, request id and fields on one line', async () => {
    const out = await captureConsole(() => {
      core.runWithContext(core.createContext({ requestId: 'r-1', userId: 'u-1' }), () => {
        prettyLogger().warn('Slow query', { duration_ms: 1200, table: 'patients' });
      });
    });
    expect(nonEmpty(out)).toHaveLength(1);
    expect(out).toMatch(/^\S+Z WARN {2}\[patients\] Slow query \(r-1\)/);
    expect(out).toContain('duration_ms=1200');
    expect(out).toContain('table=patients');
    expect(out).toContain('user_id=u-1');
  });

  it('pretty: colours only when asked', async () => {
    const plain = await captureConsole(() => prettyLogger({ colours: false }).error('x'));
    const coloured = await captureConsole(() => prettyLogger({ colours: true }).error('x'));
    // eslint-disable-next-line no-control-regex -- looking for ANSI escapes is the point
    expect(plain).not.toMatch(/\u001b\[/);
    // eslint-disable-next-line no-control-regex -- looking for ANSI escapes is the point
    expect(coloured).toMatch(/\u001b\[31m/);
  });
});

describe('createLogger: request context', () => {
  it('adds request_id, trace_id and user_id inside runWithContext', async () => {
    const { logger, records } = capture();
    core.runWithContext(core.createContext({ requestId: 'r-1', userId: 'u-1' }), () => {
      logger.info('inside');
    });
    logger.info('outside');
    await settle();
    const [inside, outside] = records();
    expect(inside).toMatchObject({ request_id: 'r-1', user_id: 'u-1' });
    expect(inside?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(outside).not.toHaveProperty('request_id');
    expect(outside).not.toHaveProperty('user_id');
    expect(outside).not.toHaveProperty('trace_id');
  });

  it('uses a given trace id and omits user_id when there is none', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const { logger, records } = capture();
    core.runWithContext(core.createContext({ requestId: 'r-2', traceId }), () => logger.info('x'));
    await settle();
    expect(records()[0]).toMatchObject({ request_id: 'r-2', trace_id: traceId });
    expect(records()[0]).not.toHaveProperty('user_id');
  });

  it('keeps the context across await, timers and immediates', async () => {
    const { logger, records } = capture();
    await core.runWithContext(core.createContext({ requestId: 'r-async' }), async () => {
      await sleep(1);
      logger.info('after await');
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          logger.info('in timer');
          resolve();
        }, 1),
      );
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          logger.info('in immediate');
          resolve();
        }),
      );
    });
    await settle();
    expect(records().map((r) => r.request_id)).toEqual(['r-async', 'r-async', 'r-async']);
  });

  it('keeps concurrent contexts apart', async () => {
    const { logger, records } = capture();
    await Promise.all(
      ['a', 'b', 'c'].map((id, i) =>
        core.runWithContext(core.createContext({ requestId: id }), async () => {
          await sleep(3 - i);
          logger.info(id);
        }),
      ),
    );
    await settle();
    for (const r of records()) expect(r.request_id).toBe(r.message);
  });

  it('shows a user set later with setUser', async () => {
    const { logger, records } = capture();
    core.runWithContext(core.createContext({ requestId: 'r-3' }), () => {
      logger.info('anonymous');
      core.setUser('u-42', ['clinician']);
      logger.info('known');
    });
    await settle();
    expect(records().map((r) => r.user_id)).toEqual([undefined, 'u-42']);
  });

  it('meta (e.g. a spread request body) cannot overwrite the context fields', async () => {
    const { logger, records } = capture();
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    core.runWithContext(core.createContext({ requestId: 'r-real', traceId }), () =>
      logger.info('x', { request_id: 'forged', trace_id: 'forged' }),
    );
    await settle();
    expect(records()[0]).toMatchObject({ request_id: 'r-real', trace_id: traceId });
  });
});

describe('createLogger: files from settings', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caduceus-logger-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes LOG_FILE and only error lines to LOG_ERROR_FILE', async () => {
    const logFile = join(dir, 'app.log');
    const errorFile = join(dir, 'error.log');
    const logger = core.createLogger('svc', {
      console: false,
      settings: core.loadSettings({ NODE_ENV: 'test', LOG_FILE: logFile, LOG_ERROR_FILE: errorFile }),
    });
    logger.info('info line');
    logger.warn('warn line');
    logger.error('error line', { password: PASSWORD });
    await core.flushLogger(logger);
    logger.close();
    const messages = (file: string): unknown[] =>
      nonEmpty(readFileSync(file, 'utf8')).map((l) => (JSON.parse(l) as { message: string }).message);
    expect(messages(logFile)).toEqual(['info line', 'warn line', 'error line']);
    expect(messages(errorFile)).toEqual(['error line']);
    expectNoCanary(readFileSync(logFile, 'utf8') + readFileSync(errorFile, 'utf8'));
  });

  it('file: false turns the LOG_FILE off', () => {
    const logFile = join(dir, 'off.log');
    const logger = core.createLogger('svc', {
      console: false,
      file: false,
      settings: core.loadSettings({ NODE_ENV: 'test', LOG_FILE: logFile }),
      transports: [new winston.transports.Stream({ stream: sink().stream })],
    });
    logger.info('x');
    logger.close();
    expect(existsSync(logFile)).toBe(false);
  });

  it('accepts file options with rotation', async () => {
    const filename = join(dir, 'rot.log');
    const logger = core.createLogger('svc', {
      console: false,
      settings: TEST_SETTINGS,
      file: { filename, maxSize: 1024, maxBackups: 2 },
    });
    for (let i = 0; i < 30; i++) {
      logger.info('line', { i, pad: 'p'.repeat(80) });
      if (i % 5 === 4) await core.flushLogger(logger);
    }
    await core.flushLogger(logger);
    logger.close();
    expect(existsSync(`${filename}.1`)).toBe(true);
    expect(existsSync(`${filename}.3`)).toBe(false);
  });
});

describe('createLogger: options', () => {
  const make = (name: unknown, options: unknown) => (): core.Logger =>
    core.createLogger(name as string, options as core.LoggerOptions);
  const base = { console: false, settings: TEST_SETTINGS };
  const bad: [string, () => unknown, RegExp][] = [
    ['an empty name', make('', base), /^createLogger: name/],
    ['a non-string name', make(42, base), /^createLogger: name/],
    ['an unknown option', make('svc', { ...base, levl: 'info' }), /^createLogger: .*levl/],
    ['a bad level', make('svc', { ...base, level: 'loud' }), /^createLogger: level/],
    ['a Python level name', make('svc', { ...base, level: 'WARNING' }), /^createLogger: level/],
    ['a bad format', make('svc', { ...base, format: 'xml' }), /^createLogger: format/],
    ['options that are not an object', make('svc', 'info'), /^createLogger: /],
    ['bad redact options', make('svc', { ...base, redact: { patterns: [/x/] } }), /redact\.patterns/],
    ['bad file options', make('svc', { ...base, file: { filename: 'x.log', maxSize: 1 } }), /maxSize/],
  ];

  it.each(bad)('rejects %s with a ConfigError naming the option', (_label, create, message) => {
    let error: unknown;
    try {
      create();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(core.ConfigError);
    expect((error as core.ConfigError).code).toBe('CONFIG_INVALID');
    expect((error as core.ConfigError).message).toMatch(message);
  });

  it('names the unknown option and suggests the right one', () => {
    expect(() => core.createLogger('svc', { levl: 'info' } as core.LoggerOptions)).toThrow(
      /levl.*Did you mean "level"/,
    );
  });

  it('ignores options set to undefined and does not mutate its options', () => {
    const options = Object.freeze({ console: false, level: undefined, settings: TEST_SETTINGS });
    const logger = core.createLogger('svc', options);
    expect(logger.level).toBe('debug');
    expect(options).toEqual({ console: false, level: undefined, settings: TEST_SETTINGS });
  });

  it('returns independent loggers', async () => {
    const a = capture({ level: 'error' }, 'a');
    const b = capture({ level: 'debug' }, 'b');
    a.logger.info('dropped');
    b.logger.info('kept');
    await settle();
    expect(a.records()).toEqual([]);
    expect(b.records()[0]).toMatchObject({ logger: 'b', message: 'kept' });
  });
});
