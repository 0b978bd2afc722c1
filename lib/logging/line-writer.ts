import winston from 'winston';
import type { RequestContext } from '../context/store.js';
import { FileTransport } from './file-transport.js';
import type { Redactor } from './redact.js';

const LEVEL = Symbol.for('level');
const MESSAGE = Symbol.for('message');
const WRITER = Symbol('caduceus.lineWriter');
const LEVELS: Readonly<Record<string, number>> = winston.config.npm.levels;
const noop = (): void => undefined;

/**
 * Writes a fixed-schema line (the access log's) straight to the logger's transports: the same JSON
 * line the logger's format would produce, built by concatenation instead of through winston's
 * stream and the generic record builder — on the request path that is most of a line's cost.
 * Only for loggers whose transports all take the finished line as it is (caduceus' file transport,
 * console and stream transports without formats of their own); others use the normal path.
 */
export interface LineWriter {
  /** JSON for a string value, redacted like any logged string. */
  text(value: string): string;
  /** `body` is `,"key":value…` for the fields after the standard ones. */
  write(level: string, messageJson: string, ctx: RequestContext | undefined, body: string): void;
}

export interface Clock {
  (): string;
}

/** ISO timestamp, recomputed at most once per millisecond. */
export function createClock(): Clock {
  let lastMs = -1;
  let lastIso = '';
  return () => {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastIso = new Date(now).toISOString();
    }
    return lastIso;
  };
}

const isPlainTransport = (t: winston.transport): boolean =>
  t.format === undefined &&
  (t instanceof FileTransport ||
    t instanceof winston.transports.Console ||
    t instanceof winston.transports.Stream);

export function attachLineWriter(
  logger: winston.Logger,
  name: string,
  redactor: Redactor,
  clock: Clock,
  defaultMeta: Readonly<Record<string, unknown>> | undefined,
): void {
  if (!logger.transports.every(isPlainTransport)) return;
  const nameJson = JSON.stringify(name);
  const text = (value: string): string => JSON.stringify(redactor.redactString(value));
  let metaPart = '';
  for (const [key, value] of Object.entries(defaultMeta ?? {})) {
    if (value === undefined) continue;
    const v = redactor.isSensitiveKey(key) ? redactor.censor : redactor(value);
    metaPart += `,${JSON.stringify(redactor.redactString(key))}:${JSON.stringify(v)}`;
  }
  const writer: LineWriter = {
    text,
    write(level, messageJson, ctx, body) {
      let line = `{"timestamp":"${clock()}","level":"${level}","logger":${nameJson},"message":${messageJson}`;
      if (ctx !== undefined) {
        // Trace and span ids are hex we generated or validated; the request id came from a caller.
        const id = ctx.requestIdGenerated ? `"${ctx.requestId}"` : text(ctx.requestId);
        line += `,"request_id":${id},"trace_id":"${ctx.traceId}","span_id":"${ctx.spanId}"`;
        if (ctx.userId !== undefined) line += `,"user_id":${text(ctx.userId)}`;
      }
      line += `${body}${metaPart}}`;
      const info = { level, message: '', [LEVEL]: level, [MESSAGE]: line };
      const wanted = LEVELS[level] ?? 0;
      for (const t of logger.transports) {
        if (t.silent === true) continue;
        const threshold = LEVELS[t.level ?? logger.level] ?? 0;
        if (threshold >= wanted) t.log?.(info, noop);
      }
    },
  };
  (logger as unknown as Record<symbol, LineWriter>)[WRITER] = writer;
}

/** The logger's line writer, when it has one (see attachLineWriter). */
export function lineWriterOf(logger: winston.Logger): LineWriter | undefined {
  return (logger as unknown as Record<symbol, LineWriter | undefined>)[WRITER];
}
