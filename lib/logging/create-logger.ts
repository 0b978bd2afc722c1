import winston from 'winston';
import type { LogLevel, Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, readOptions } from '../errors/index.js';
import { FileTransport } from './file-transport.js';
import type { FileTransportOptions } from './file-transport.js';
import { prettyFormat, recordFormat } from './format.js';
import { attachLineWriter, createClock } from './line-writer.js';
import type { RedactOptions, Redactor } from './redact.js';
import { createRedactor } from './redact.js';

export type Logger = winston.Logger;

export interface LoggerOptions {
  /** Lowest level logged. Default: `LOG_LEVEL` (settings), `info`. */
  level?: LogLevel;
  /** `json` lines or a readable `pretty` line. Default: `LOG_FORMAT`, else pretty when NODE_ENV=development, JSON otherwise. */
  format?: 'json' | 'pretty';
  /** Write to stdout. Default `true`. */
  console?: boolean;
  /** Colour the pretty console output. Default: when stdout is a TTY. */
  colours?: boolean;
  /** Append to a size-rotated file (path or options). Default: `LOG_FILE`, else none. */
  file?: string | FileTransportOptions | false;
  /** A second file that receives only `error` lines. Default: `LOG_ERROR_FILE`, else none. */
  errorFile?: string | FileTransportOptions | false;
  /**
   * What to redact, beyond the defaults: secrets always; PHI in PHI mode (`phiMode`, on by default),
   * with your own `phiFields` and `phiPatterns`. See docs/logging.md#phi-mode.
   */
  redact?: RedactOptions;
  /** Further winston transports; their lines are already redacted. */
  transports?: readonly winston.transport[];
  /** Fields on every line (e.g. `{ service: 'patients' }`); redacted like the rest. */
  defaultMeta?: Record<string, unknown>;
  /** Settings to take defaults from. Default: `loadSettings(process.env)`. */
  settings?: Settings;
}

const FORMATS = new Set<string>(['json', 'pretty']);
const LEVELS = new Set(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']);
const KNOWN = [
  'level',
  'format',
  'console',
  'colours',
  'file',
  'errorFile',
  'redact',
  'transports',
  'defaultMeta',
  'settings',
] as const;

function fileOptions(value: string | FileTransportOptions, level?: string): FileTransportOptions {
  const base = typeof value === 'string' ? { filename: value } : value;
  return level === undefined ? base : { ...base, level };
}

/**
 * A winston logger whose every line is redacted (secrets, PHI), carries the request context
 * (request_id, trace_id, user_id) and is escaped against log injection.
 *
 * @example
 * const log = core.createLogger('patients', { file: 'logs/app.log' });
 * log.info('Patient created', { patient_id: id }); // request_id added automatically
 */
export function createLogger(name: string, input: Readonly<LoggerOptions> = {}): Logger {
  if (typeof name !== 'string' || name.length === 0)
    throw ConfigError.option('createLogger', 'name', 'a non-empty string', name);
  const options = readOptions<LoggerOptions>('createLogger', input, KNOWN);
  if (options.level !== undefined && !LEVELS.has(options.level))
    throw ConfigError.option('createLogger', 'level', `one of ${[...LEVELS].join(', ')}`, options.level);
  if (options.format !== undefined && !FORMATS.has(options.format))
    throw ConfigError.option('createLogger', 'format', "'json' or 'pretty'", options.format);
  const settings = options.settings ?? loadSettings(process.env);
  const mon = settings.monitoring;
  const style =
    options.format ?? mon.logFormat ?? (settings.environment === 'development' ? 'pretty' : 'json');
  const redactor = createRedactor(options.redact);

  const transports: winston.transport[] = [];
  if (options.console ?? true) {
    const colours =
      options.colours ?? (style === 'pretty' && (process.stdout.isTTY as boolean | undefined) === true);
    transports.push(
      new winston.transports.Console(style === 'pretty' ? { format: prettyFormat(colours) } : {}),
    );
  }
  const file = options.file ?? mon.logFile;
  if (file !== undefined && file !== false) transports.push(new FileTransport(fileOptions(file)));
  const errorFile = options.errorFile ?? mon.errorLogFile;
  if (errorFile !== undefined && errorFile !== false)
    transports.push(new FileTransport(fileOptions(errorFile, 'error')));
  transports.push(...(options.transports ?? []));
  // With no transport winston prints the unredacted line to stderr; a silent sink prevents that.
  if (transports.length === 0) transports.push(new winston.transports.Console({ silent: true }));

  const clock = createClock();
  const logger = winston.createLogger({
    // Redaction and context run once here, before any transport sees the line.
    format: recordFormat(name, redactor, clock),
    level: options.level ?? mon.logLevel,
    levels: winston.config.npm.levels,
    defaultMeta: options.defaultMeta,
    transports,
    exitOnError: false,
  });
  attachLineWriter(logger, name, redactor, clock, options.defaultMeta);
  // errors() given this logger cleans its responses with the same rules (phiFields, phiPatterns).
  Object.defineProperty(logger, REDACTOR, { value: redactor });
  return logger;
}

/** Shared by every copy of caduceus in the process, like the AppError brand. */
const REDACTOR = Symbol.for('caduceus.logger.redactor');

/** The redactor of a logger made by `createLogger()`; undefined for any other logger. */
export function redactorOf(logger: Logger): Redactor | undefined {
  const r = (logger as unknown as Record<symbol, unknown>)[REDACTOR];
  return typeof r === 'function' ? (r as Redactor) : undefined;
}

/** Resolves once every file transport of `logger` has written what it was given. */
export async function flushLogger(logger: Logger): Promise<void> {
  await Promise.all(
    logger.transports.map((t) => (t instanceof FileTransport ? t.flush() : Promise.resolve())),
  );
}
