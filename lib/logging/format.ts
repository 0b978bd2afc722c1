import winston from 'winston';
import { storage } from '../context/store.js';
import type { Redactor } from './redact.js';

const LEVEL = Symbol.for('level');
const MESSAGE = Symbol.for('message');
const SPLAT = Symbol.for('splat');

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
const DIM = '\x1b[2m';

type Info = winston.Logform.TransformableInfo & Record<string | symbol, unknown>;

/**
 * The logger-level format of every caduceus logger, run once per line whatever the transports:
 * builds a fresh, redacted record (never mutating what the caller passed), adds the request
 * context, and renders it as a JSON line. `prettyFormat` re-renders it for a console.
 */
export function recordFormat(name: string, redactor: Redactor): winston.Logform.Format {
  const als = storage();

  const transform = (info: Info): Info => {
    const level = info[LEVEL] ?? info.level;
    const record: Record<string | symbol, unknown> = {
      timestamp: new Date().toISOString(),
      level: info.level,
      logger: name,
      message: undefined,
    };
    let message = info.message;
    if (message instanceof Error) message = message.message;
    record.message = typeof message === 'string' ? redactor.redactString(message) : redactor(message);
    const ctx = als.getStore();
    if (ctx !== undefined) {
      record.request_id = ctx.requestId;
      record.trace_id = ctx.traceId;
      record.span_id = ctx.spanId;
      if (ctx.userId !== undefined) record.user_id = ctx.userId;
    }
    for (const key of Object.keys(info)) {
      if (key === 'level' || key === 'message') continue;
      const value = info[key];
      if (value === undefined) continue;
      record[key] = redactor.isSensitiveKey(key) ? '[REDACTED]' : redactor(value);
    }
    // winston's format.errors is not in the chain: an Error logged as the message keeps its stack here.
    if (info.message instanceof Error && record.stack === undefined && info.message.stack !== undefined) {
      record.stack = redactor.redactString(info.message.stack);
    }
    record[LEVEL] = level;
    record[SPLAT] = info[SPLAT];
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
  if (typeof r.stack === 'string') line += `\n${dim}${r.stack.replace(/\\n/g, '\n')}${reset}`;
  return line;
}
