import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as core from '../../lib/index';

const TEST_SETTINGS = core.loadSettings({ NODE_ENV: 'test', LOG_LEVEL: 'DEBUG' });
const PAD = 'x'.repeat(60);

let dir: string;
const open: core.FileTransport[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'caduceus-file-'));
});
afterEach(() => {
  for (const t of open.splice(0)) t.close();
  rmSync(dir, { recursive: true, force: true });
});

function transport(options: Partial<core.FileTransportOptions> = {}): core.FileTransport {
  const t = new core.FileTransport({ filename: join(dir, 'app.log'), ...options });
  open.push(t);
  return t;
}

function loggerWith(t: core.FileTransport, level: core.LogLevel = 'debug'): core.Logger {
  return core.createLogger('files', { console: false, level, settings: TEST_SETTINGS, transports: [t] });
}

const lines = (file: string): string[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.length > 0)
    : [];

const seqs = (file: string): number[] => lines(file).map((l) => (JSON.parse(l) as { seq: number }).seq);

/** Rotated copies that exist, `.1` first (newest). */
function backups(filename: string): string[] {
  const out: string[] = [];
  for (let i = 1; existsSync(`${filename}.${i}`); i++) out.push(`${filename}.${i}`);
  return out;
}

/** Logs `count` lines of ~130 bytes, letting the transport write every `every` lines. */
async function logSequence(logger: core.Logger, count: number, every: number): Promise<void> {
  for (let seq = 0; seq < count; seq++) {
    logger.info('line', { seq, pad: PAD });
    if (seq % every === every - 1) await core.flushLogger(logger);
  }
  await core.flushLogger(logger);
}

describe('FileTransport: writing', () => {
  it('writes each entry as one JSON line, in order', async () => {
    const t = transport();
    const logger = loggerWith(t);
    logger.info('first', { seq: 0 });
    logger.warn('second', { seq: 1 });
    logger.error('third', { seq: 2 });
    await core.flushLogger(logger);
    const written = lines(t.filename).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(written.map((l) => [l.level, l.message, l.seq])).toEqual([
      ['info', 'first', 0],
      ['warn', 'second', 1],
      ['error', 'third', 2],
    ]);
    for (const l of written) expect(l).toMatchObject({ logger: 'files', timestamp: expect.any(String) });
  });

  it('creates missing directories', async () => {
    const filename = join(dir, 'a', 'b', 'service.log');
    const t = transport({ filename });
    const logger = loggerWith(t);
    logger.info('hello');
    await core.flushLogger(logger);
    expect(lines(filename)).toHaveLength(1);
  });

  it('appends to an existing file', async () => {
    const filename = join(dir, 'app.log');
    writeFileSync(filename, 'previous run\n');
    const t = transport();
    const logger = loggerWith(t);
    logger.info('this run');
    await core.flushLogger(logger);
    const all = lines(filename);
    expect(all[0]).toBe('previous run');
    expect(all).toHaveLength(2);
  });

  it('creates the file without access for other users', async () => {
    const t = transport();
    const logger = loggerWith(t);
    logger.info('hello');
    await core.flushLogger(logger);
    expect(statSync(t.filename).mode & 0o007).toBe(0);
  });

  it('redacts before writing (the logger redacts, the transport writes what it got)', async () => {
    const t = transport();
    const logger = loggerWith(t);
    logger.info('login', { password: 'CANARY-file-pw', note: 'ssn 078-05-1120' });
    await core.flushLogger(logger);
    const text = readFileSync(t.filename, 'utf8');
    expect(text).not.toContain('CANARY-file-pw');
    expect(text).not.toContain('078-05-1120');
  });

  it('honours its own level', async () => {
    const t = transport({ level: 'error' });
    const logger = loggerWith(t);
    logger.info('not here');
    logger.warn('not here either');
    logger.error('here');
    await core.flushLogger(logger);
    expect(lines(t.filename).map((l) => (JSON.parse(l) as { message: string }).message)).toEqual(['here']);
  });

  it('flush() resolves immediately when nothing is pending', async () => {
    const t = transport();
    await expect(t.flush()).resolves.toBeUndefined();
  });
});

describe('FileTransport: rotation', () => {
  it('rotates by size into file.1..file.N with the newest in .1, losing nothing', async () => {
    const t = transport({ maxSize: 1024, maxBackups: 50 });
    let rotations = 0;
    t.on('rotate', () => rotations++);
    await logSequence(loggerWith(t), 120, 4);

    const files = backups(t.filename);
    expect(files.length).toBeGreaterThan(5);
    expect(rotations).toBe(files.length);
    for (const f of files) expect(statSync(f).size).toBeGreaterThanOrEqual(1024);
    // Oldest first: .N … .1, then the live file.
    const all = [...files].reverse().flatMap(seqs).concat(seqs(t.filename));
    expect(all).toEqual(Array.from({ length: 120 }, (_, i) => i));
  });

  it('keeps at most maxBackups copies: the newest, contiguous up to the last line', async () => {
    const t = transport({ maxSize: 1024, maxBackups: 3 });
    await logSequence(loggerWith(t), 120, 4);

    expect(backups(t.filename)).toEqual([`${t.filename}.1`, `${t.filename}.2`, `${t.filename}.3`]);
    expect(existsSync(`${t.filename}.4`)).toBe(false);
    const kept = [`${t.filename}.3`, `${t.filename}.2`, `${t.filename}.1`]
      .flatMap(seqs)
      .concat(seqs(t.filename));
    expect(kept.at(-1)).toBe(119);
    expect(kept[0]).toBeGreaterThan(0);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => (kept[0] ?? 0) + i));
    for (const f of backups(t.filename))
      for (const l of lines(f)) expect(() => JSON.parse(l) as unknown).not.toThrow();
  });

  it('loses nothing when a burst is logged in one go', async () => {
    const t = transport({ maxSize: 1024, maxBackups: 5 });
    const logger = loggerWith(t);
    for (let seq = 0; seq < 200; seq++) logger.info('burst', { seq, pad: PAD });
    await core.flushLogger(logger);
    const all = [...backups(t.filename)].reverse().flatMap(seqs).concat(seqs(t.filename));
    expect(all).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('with maxBackups 0, starts the file over and keeps no copies', async () => {
    const t = transport({ maxSize: 1024, maxBackups: 0 });
    await logSequence(loggerWith(t), 60, 4);
    expect(existsSync(`${t.filename}.1`)).toBe(false);
    const kept = seqs(t.filename);
    expect(kept.at(-1)).toBe(59);
    expect(statSync(t.filename).size).toBeLessThan(2048);
  });

  it('counts the size of a file that already existed', async () => {
    const filename = join(dir, 'app.log');
    writeFileSync(filename, `${'old '.repeat(300)}\n`);
    const t = transport({ maxSize: 1024, maxBackups: 2 });
    const logger = loggerWith(t);
    logger.info('new', { seq: 0 });
    await core.flushLogger(logger);
    expect(readFileSync(`${filename}.1`, 'utf8')).toContain('old old');
    logger.info('newer', { seq: 1 });
    await core.flushLogger(logger);
    expect(seqs(filename)).toEqual([1]);
  });
});

describe('FileTransport: close', () => {
  it('writes what was logged before close(), even without a flush', () => {
    const t = transport();
    const logger = loggerWith(t);
    logger.info('last words', { seq: 7 });
    t.close();
    expect(seqs(t.filename)).toEqual([7]);
  });

  it('is idempotent and emits `closed` once', () => {
    const t = transport();
    const closed = jest.fn();
    t.on('closed', closed);
    t.close();
    expect(() => {
      t.close();
    }).not.toThrow();
    t.close();
    expect(closed).toHaveBeenCalledTimes(1);
  });

  it('waits for a write in flight, then closes', async () => {
    const t = transport();
    const logger = loggerWith(t);
    for (let seq = 0; seq < 50; seq++) logger.info('line', { seq, pad: PAD });
    await new Promise((resolve) => setImmediate(resolve)); // the batch write is now in flight
    const closed = new Promise((resolve) => t.once('closed', resolve));
    t.close();
    await closed;
    expect(seqs(t.filename)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('drops later lines without throwing, and flush() still resolves', async () => {
    const t = transport();
    const logger = loggerWith(t);
    logger.info('before', { seq: 1 });
    t.close();
    expect(() => logger.info('after', { seq: 2 })).not.toThrow();
    await expect(core.flushLogger(logger)).resolves.toBeUndefined();
    expect(seqs(t.filename)).toEqual([1]);
  });

  it('is closed by logger.close()', () => {
    const t = transport();
    const closed = jest.fn();
    t.on('closed', closed);
    loggerWith(t).close();
    expect(closed).toHaveBeenCalledTimes(1);
  });

  it('does not leak process listeners across many transports', () => {
    const before = process.listenerCount('exit');
    for (let i = 0; i < 20; i++) new core.FileTransport({ filename: join(dir, `t${i}.log`) }).close();
    expect(process.listenerCount('exit')).toBe(before);
  });
});

describe('FileTransport: options', () => {
  it.each([
    ['an empty filename', { filename: '' }, 'filename'],
    ['a missing filename', { filename: undefined }, 'filename'],
    ['a numeric filename', { filename: 42 }, 'filename'],
    ['maxSize 0', { maxSize: 0 }, 'maxSize'],
    ['maxSize below 1024', { maxSize: 1023 }, 'maxSize'],
    ['a fractional maxSize', { maxSize: 2048.5 }, 'maxSize'],
    ['a string maxSize', { maxSize: '10MB' }, 'maxSize'],
    ['a NaN maxSize', { maxSize: Number.NaN }, 'maxSize'],
    ['negative maxBackups', { maxBackups: -1 }, 'maxBackups'],
    ['fractional maxBackups', { maxBackups: 1.5 }, 'maxBackups'],
    ['an unknown level', { level: 'loud' }, 'level'],
    ["winston's maxFiles instead of maxBackups", { maxFiles: 3 }, 'maxFiles'],
  ])('rejects %s with a ConfigError naming the option', (_label, bad, option) => {
    const options = { filename: join(dir, 'bad.log'), ...bad } as unknown as core.FileTransportOptions;
    let error: unknown;
    try {
      open.push(new core.FileTransport(options));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(core.ConfigError);
    expect((error as core.ConfigError).code).toBe('CONFIG_INVALID');
    expect((error as core.ConfigError).message).toContain(option);
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
  ])('rejects %s options with a ConfigError', (_label, options) => {
    expect(() => new core.FileTransport(options as unknown as core.FileTransportOptions)).toThrow(
      core.ConfigError,
    );
  });

  it('creates nothing when the options are invalid', () => {
    expect(() => new core.FileTransport({ filename: join(dir, 'nope', 'x.log'), maxSize: 1 })).toThrow(
      core.ConfigError,
    );
    expect(existsSync(join(dir, 'nope'))).toBe(false);
  });

  it('does not mutate its options', () => {
    const options = Object.freeze({ filename: join(dir, 'frozen.log'), maxSize: 4096 });
    open.push(new core.FileTransport(options));
    expect(options).toEqual({ filename: join(dir, 'frozen.log'), maxSize: 4096 });
  });
});
