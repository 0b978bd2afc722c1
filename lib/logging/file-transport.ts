import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, write, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import TransportStream from 'winston-transport';
import { ConfigError, readOptions } from '../errors/index.js';

export interface FileTransportOptions {
  /** Path of the live file; rotated copies are `<filename>.1` (newest) … `<filename>.<maxBackups>`. */
  filename: string;
  /** Rotate once the file reaches this many bytes. Default 10 MiB (the seed's 10 MB). */
  maxSize?: number;
  /** Rotated copies kept. Default 5 (the seed's backup_count). */
  maxBackups?: number;
  /** Lowest level written. Default: the logger's. */
  level?: string;
  /**
   * Lines are gathered for up to this long and written in one call (sooner once 64 KiB are waiting).
   * Buffered lines are written synchronously when the process exits. Default 20 ms; 0 writes on the
   * next turn of the event loop.
   */
  flushIntervalMs?: number;
  /** A transport-level format, run after the logger's redaction. */
  format?: TransportStream.TransportStreamOptions['format'];
}

/**
 * An append-only, size-rotated file transport that batches lines: each event-loop turn's lines go
 * out in one asynchronous write. winston's own File transport issues one write per line through
 * two streams; on the request path that difference is most of the logger's cost (see docs/performance.md).
 */
const LEVELS = new Set(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']);

/** Write at once when this much is waiting, whatever the interval. */
const HIGH_WATER = 64 * 1024;

/** winston's formatted-line key (triple-beam's MESSAGE). */
const MESSAGE = Symbol.for('message');

export class FileTransport extends TransportStream {
  readonly filename: string;
  readonly #maxSize: number;
  readonly #maxBackups: number;
  #fd: number | undefined;
  #size: number;
  #buffer = '';
  #writing = false;
  #scheduled = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #intervalMs: number;
  #waiters: (() => void)[] = [];
  readonly #onExit = (): void => {
    this.#flushSync();
  };

  constructor(input: FileTransportOptions) {
    if (typeof input !== 'object' || (input as unknown) === null) {
      throw ConfigError.option('FileTransport', 'options', 'an options object with a filename', input);
    }
    const options = readOptions<FileTransportOptions>('FileTransport', input, [
      'filename',
      'maxSize',
      'maxBackups',
      'level',
      'format',
      'flushIntervalMs',
    ]);
    const {
      filename,
      maxSize = 10 * 1024 * 1024,
      maxBackups = 5,
      level,
      format,
      flushIntervalMs = 20,
    } = options;
    if (!Number.isInteger(flushIntervalMs) || flushIntervalMs < 0 || flushIntervalMs > 10_000) {
      throw ConfigError.option(
        'FileTransport',
        'flushIntervalMs',
        'an integer from 0 to 10000 (milliseconds)',
        flushIntervalMs,
      );
    }
    if (level !== undefined && !LEVELS.has(level)) {
      throw ConfigError.option('FileTransport', 'level', `one of ${[...LEVELS].join(', ')}`, level);
    }
    if (typeof filename !== 'string' || filename.length === 0)
      throw ConfigError.option('FileTransport', 'filename', 'a file path', filename);
    if (!Number.isInteger(maxSize) || maxSize < 1024)
      throw ConfigError.option('FileTransport', 'maxSize', 'an integer of at least 1024 (bytes)', maxSize);
    if (!Number.isInteger(maxBackups) || maxBackups < 0)
      throw ConfigError.option('FileTransport', 'maxBackups', 'a non-negative integer', maxBackups);
    super({ ...(level === undefined ? {} : { level }), ...(format === undefined ? {} : { format }) });
    this.filename = filename;
    this.#maxSize = maxSize;
    this.#maxBackups = maxBackups;
    this.#intervalMs = flushIntervalMs;
    mkdirSync(dirname(filename), { recursive: true });
    this.#fd = openSync(filename, 'a', 0o640);
    this.#size = fstatSync(this.#fd).size;
    process.on('exit', this.#onExit);
  }

  override log(info: Record<string | symbol, unknown>, callback: () => void): void {
    if (this.#fd !== undefined) {
      this.#buffer += `${String(info[MESSAGE])}\n`;
      if (this.#timer !== undefined && this.#buffer.length >= HIGH_WATER) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        setImmediate(this.#flush);
      } else if (!this.#scheduled && !this.#writing) {
        this.#schedule();
      }
    }
    callback();
  }

  #schedule(): void {
    this.#scheduled = true;
    if (this.#intervalMs === 0 || this.#buffer.length >= HIGH_WATER) {
      setImmediate(this.#flush);
    } else {
      // Unref'd: a pending batch never keeps the process alive; the exit hook writes it.
      this.#timer = setTimeout(this.#flush, this.#intervalMs);
      this.#timer.unref();
    }
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#writing || this.#fd === undefined) return;
    if (this.#buffer.length === 0) {
      this.#release();
      return;
    }
    const data = Buffer.from(this.#buffer);
    this.#buffer = '';
    this.#writing = true;
    this.#writeAll(this.#fd, data, 0);
  };

  #writeAll(fd: number, data: Buffer, offset: number): void {
    write(fd, data, offset, data.length - offset, null, (err, written) => {
      if (err !== null) {
        this.#writing = false;
        this.emit('warn', err);
        this.#flush();
        return;
      }
      if (offset + written < data.length) {
        this.#writeAll(fd, data, offset + written);
        return;
      }
      this.#size += data.length;
      this.#writing = false;
      if (this.#size >= this.#maxSize) this.#rotate();
      // Someone is waiting, or a lot piled up: write on. Otherwise gather the next batch.
      if (this.#buffer.length === 0 || this.#waiters.length > 0 || this.#buffer.length >= HIGH_WATER)
        this.#flush();
      else if (!this.#scheduled) this.#schedule();
    });
  }

  /** Runs between writes, so no write is in flight: shift `.1…` up, drop the oldest, reopen. */
  #rotate(): void {
    if (this.#fd === undefined) return;
    try {
      closeSync(this.#fd);
      if (this.#maxBackups === 0) {
        rmSync(this.filename, { force: true });
      } else {
        rmSync(`${this.filename}.${this.#maxBackups}`, { force: true });
        for (let i = this.#maxBackups - 1; i >= 1; i--) {
          try {
            renameSync(`${this.filename}.${i}`, `${this.filename}.${i + 1}`);
          } catch {
            // that backup does not exist yet
          }
        }
        renameSync(this.filename, `${this.filename}.1`);
      }
    } catch (err) {
      this.emit('warn', err);
    }
    try {
      // The directory may have been removed under us (log cleanup); recreate it rather than crash.
      mkdirSync(dirname(this.filename), { recursive: true });
      this.#fd = openSync(this.filename, 'a', 0o640);
    } catch (err) {
      // Lines are dropped until the transport is recreated; the process keeps running.
      this.#fd = undefined;
      this.emit('warn', err);
      return;
    }
    this.#size = 0;
    this.emit('rotate', this.filename);
  }

  #release(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #flushSync(): void {
    if (this.#fd === undefined || this.#buffer.length === 0 || this.#writing) return;
    const data = this.#buffer;
    this.#buffer = '';
    writeSync(this.#fd, data);
    this.#size += Buffer.byteLength(data);
  }

  /** Resolves once every line logged so far is written. */
  flush(): Promise<void> {
    if (this.#fd === undefined || (!this.#writing && !this.#scheduled && this.#buffer.length === 0))
      return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      if (!this.#writing) this.#flush();
    });
  }

  /** Writes what is buffered and closes the file; later lines are dropped. Idempotent. */
  override close(): void {
    if (this.#fd === undefined) return;
    process.removeListener('exit', this.#onExit);
    const finish = (): void => {
      this.#flushSync();
      const fd = this.#fd;
      this.#fd = undefined;
      if (fd !== undefined) closeSync(fd);
      this.#release();
      this.emit('closed');
    };
    if (this.#writing) void this.flush().then(finish);
    else finish();
  }
}
