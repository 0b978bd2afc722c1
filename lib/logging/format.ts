import { isError } from '../errors/index.js';
import winston from 'winston';
import { activeSpan } from '../context/otel.js';
import { storage } from '../context/store.js';
import type { Clock } from './line-writer.js';
import type { Redactor } from './redact.js';

const LEVEL = Symbol.for('level');
const MESSAGE = Symbol.for('message');

const COLOURS: Readonly<Record<string, string>> = {
  error: '\x1b[31m',
  warn: '\x1b[33m',
  info: '\x1b[32m',
  http: '\x1b[36m',
  verbose: '\x1b[34m',
  debug: '\x1b[35m',
  silly: '\x1b[90m',
};
const RESET = '\x1b[0m';
const ERROR_FIELDS = new Set(['code', 'status', 'statusCode', 'errno', 'error_code']);
const DIM = '\x1b[2m';

type Info = winston.Logform.TransformableInfo & Record<string | symbol, unknown>;

/**
 * The logger-level format of every caduceus logger, run once per line whatever the transports:
 * builds a fresh, redacted record (never mutating what the caller passed), adds the request
 * context, and renders it as a JSON line. `prettyFormat` re-renders it for a console.
 */
export function recordFormat(name: string, redactor: Redactor, clock: Clock): winston.Logform.Format {
  const als = storage();
  // Cleaned key names, per logger: a service logs the same few hundred keys over and over.
  const keys = new Map<string, string>();
  const cleanKey = (key: string): string => {
    let clean = keys.get(key);
    if (clean === undefined) {
      clean = redactor.redactString(key);
      if (keys.size < 10_000) keys.set(key, clean);
    }
    return clean;
  };

  const transform = (info: Info): Info => {
    const level = info[LEVEL] ?? info.level;
    const record: Record<string | symbol, unknown> = {
      timestamp: clock(),
      level: info.level,
      logger: name,
      message: undefined,
    };
    // `log.error(err)`: winston hands us the Error itself as the record.
    const error = isError(info)
      ? (info as unknown as Error)
      : isError(info.message)
        ? info.message
        : undefined;
    const message = isError(info.message) ? info.message.message : info.message;
    record.message = typeof message === 'string' ? redactor.redactString(message) : redactor(message);
    const ctx = als.getStore();
    if (ctx !== undefined) {
      // A caller's request id passes a charset check but can still be shaped like an SSN; user ids
      // can be emails. Trace and span ids are hex we generated or validated.
      record.request_id = ctx.requestIdGenerated ? ctx.requestId : redactor.redactString(ctx.requestId);
      record.trace_id = ctx.traceId;
      record.span_id = ctx.spanId;
      if (ctx.userId !== undefined) record.user_id = redactor.redactString(ctx.userId);
    } else {
      // Outside a request (jobs, consumers) an OpenTelemetry span may still be active.
      const span = activeSpan()?.spanContext();
      if (span !== undefined) {
        record.trace_id = span.traceId;
        record.span_id = span.spanId;
      }
    }
    for (const key of Object.keys(info)) {
      // Meta never overwrites what the logger or the request context set (a spread request body
      // cannot forge request_id or timestamp); it only fills what they left empty.
      if (record[key] !== undefined || key === 'level') continue;
      // An Error logged as the record: only its safe fields (pg's `detail`, mysql2's `sql` carry values).
      if (error !== undefined && (info as unknown) === error && !ERROR_FIELDS.has(key)) continue;
      const value = info[key];
      if (value === undefined) continue;
      record[cleanKey(key)] = redactor.isSensitiveKey(key)
        ? redactor.censor
        : typeof value === 'string'
          ? redactor.redactString(value)
          : typeof value === 'number' || typeof value === 'boolean'
            ? value
            : redactor(value);
    }
    if (error !== undefined) {
      record.error_type = error.name;
      if (record.stack === undefined && error.stack !== undefined) {
        const serialised = redactor(error) as { stack?: string; message?: string };
        record.stack = serialised.stack;
        if (isError(info.message) || (info as unknown) === error) record.message = serialised.message;
      }
      if ((info as unknown) === error) delete record.name;
    }
    record[LEVEL] = level;
    record[MESSAGE] = JSON.stringify(record);
    return record as Info;
  };
  return winston.format(transform)();
}

/** Transport format: a readable, optionally coloured line from the redacted record. */
export function prettyFormat(colours: boolean): winston.Logform.Format {
  return winston.format((info: Info) => {
    info[MESSAGE] = pretty(info, colours);
    return info;
  })();
}

function pretty(r: Info, colours: boolean): string {
  const level = r.level;
  const colour = colours ? (COLOURS[level] ?? '') : '';
  const reset = colours ? RESET : '';
  const dim = colours ? DIM : '';
  let line = `${String(r.timestamp)} ${colour}${level.toUpperCase().padEnd(5)}${reset} ${dim}[${String(r.logger)}]${reset} ${String(r.message)}`;
  if (typeof r.request_id === 'string') line += ` ${dim}(${r.request_id})${reset}`;
  for (const key of Object.keys(r)) {
    if (
      key === 'timestamp' ||
      key === 'level' ||
      key === 'logger' ||
      key === 'message' ||
      key === 'request_id' ||
      key === 'trace_id' ||
      key === 'span_id' ||
      key === 'stack'
    )
      continue;
    const v = r[key];
    line += ` ${key}=${typeof v === 'string' ? v : JSON.stringify(v)}`;
  }
  // Only the frame separators become real newlines again; an escaped newline inside a message
  // (`new Error('x\nFAKE LINE')`) stays escaped, so it cannot forge a line.
  if (typeof r.stack === 'string') line += `\n${dim}${r.stack.replace(/\\n {4}at /g, '\n    at ')}${reset}`;
  return line;
}
