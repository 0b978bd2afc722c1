import { ConfigError, driverMessage, isError, readOptions } from '../errors/index.js';
import { labelPattern } from './labels.js';
import { hasEightDigits, PHI_EXACT, PHI_HINT, PHI_SUFFIXES, phiPass } from './phi.js';

export interface RedactOptions {
  /** Extra key names to redact at any depth (matched case- and separator-insensitively, exactly). */
  keys?: readonly string[];
  /** Extra value patterns; each match is replaced with the censor. Must be global (`/…/g`). */
  patterns?: readonly RegExp[];
  /**
   * PHI mode: besides secrets, redact identifying keys (names, DOB, address, MRN, email, phone…),
   * emails, phone numbers, labelled values (`DOB: 1980-02-03`, `"name":"Jane"`), MRNs, street
   * addresses, postcodes and courtesy-titled names in text, and values echoed by database drivers.
   * Default `true`. See docs/logging.md#phi-mode.
   */
  phiMode?: boolean;
  /**
   * Key names your application holds PHI in (`['family_name', 'insurance_id']`), on top of the
   * built-in ones: redacted at any depth, matched like `keys`, and their `name: value` / `name=value`
   * / `"name":"value"` forms in text. PHI mode only. Default none.
   */
  phiFields?: readonly string[];
  /** Value patterns of your PHI identifiers (`/\bMRN-\d{6}\b/g`), global RegExps. PHI mode only. Default none. */
  phiPatterns?: readonly RegExp[];
  /** @deprecated Alias of `phiMode`, kept for compatibility. */
  phi?: boolean;
  /** Replacement text. Default `[REDACTED]`. */
  censor?: string;
  /** Deeper values are replaced by `[Truncated]`. Default 8. */
  maxDepth?: number;
}

/** Keys redacted when their normalised form contains one of these. */
const SECRET_FRAGMENTS = [
  'password',
  'passwd',
  'passphrase',
  'secret',
  'token',
  'authorization',
  'cookie',
  'apikey',
  'privatekey',
  'credential',
  'creditcard',
  'cardnumber',
  'sessionid',
  'jwt',
];
/** Keys redacted when their normalised form is exactly one of these. */
const SECRET_EXACT = [
  'ssn',
  'socialsecuritynumber',
  'pin',
  'cvv',
  'cvc',
  'otp',
  'auth',
  'bearer',
  'signature',
  'accountnumber',
  'routingnumber',
];

const JWT = /eyJ[\w-]{2,}\.[\w-]{2,}\.[\w-]*/g;
// The lookahead keeps a repeated scheme word (`bearer Bearer tok`) from passing for the credential.
// Not `\b`: after a digit (`1120Bearer x`) there is no word boundary, but once the digits before it
// are redacted there is — the scheme must match both times for redaction to be idempotent.
const AUTH_SCHEME = /(?<![A-Za-z])(Bearer|Basic|Digest)\s+(?!(?:Bearer|Basic|Digest)\b)[\w.~+/=-]{4,}/gi;
const SSN = /(?<!\d)\d{3}[- ]\d{2}[- ]\d{4}(?!\d)/g;
// Not inside a word: a UUID or hex id (`586e7197-5393-4882-8cf6-…`) can hold 13 Luhn-valid digits.
const CARD = /(?<![0-9A-Za-z])\d(?:[ -]?\d){12,18}(?![0-9A-Za-z])/g;
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/[^:/\s@]*:)[^@\s/]+@/gi;
const QUERY_VALUE = /([?&][^=&#\s?]+=)[^&#\s]*/g;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f\u2028\u2029]/g;
/**
 * Cheap pre-check: a string with none of these, and fewer than eight digits, cannot match any
 * built-in pattern (an SSN has 9 digits, a phone number at least 8 after `+` or 10, a card 13).
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const SUSPICIOUS = /[\u0000-\u001f\u007f\u2028\u2029@?=]|eyJ|bearer|basic|digest|:\/\//i;

function luhn(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

function escapeControl(ch: string): string {
  switch (ch) {
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    case '\t':
      return '\\t';
    default:
      return `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
  }
}

/**
 * A database driver's error, through Knex, starts with the SQL — with SQLite and MySQL the bound
 * values (patient data) written into it — and MySQL quotes values in its own messages. Keep the
 * driver's words, drop the SQL and every quoted literal.
 */
function databaseSafe(err: Error, message: string): string {
  const e = err as { sql?: unknown; sqlState?: unknown; code?: unknown };
  const code = typeof e.code === 'string' ? e.code : '';
  const isDatabase =
    e.sql !== undefined ||
    e.sqlState !== undefined ||
    code.startsWith('SQLITE_') ||
    code.startsWith('ER_') ||
    /^[0-9A-Z]{5}$/.test(code);
  if (!isDatabase) return message;
  return driverMessage(message).replace(/'(?:[^'\\]|\\.|'')*'/g, "'[REDACTED]'");
}

/** An error's message as it may be logged: a database driver's without the SQL and values Knex puts in it. */
export function loggableMessage(err: Error): string {
  return databaseSafe(err, err.message);
}

/** A Map key as text, whatever it is (a null-prototype object has no toString). */
function keyText(key: unknown): string {
  if (typeof key === 'string') return key;
  if (typeof key === 'number' || typeof key === 'boolean' || typeof key === 'bigint') return String(key);
  return `[${typeof key}]`;
}

const normaliseKey = (key: string): string => key.toLowerCase().replace(/[^a-z0-9]/g, '');

const KNOWN = [
  'keys',
  'patterns',
  'phiMode',
  'phiFields',
  'phiPatterns',
  'phi',
  'censor',
  'maxDepth',
] as const satisfies readonly (keyof RedactOptions)[];

function checkStrings(option: string, value: unknown): void {
  if (value !== undefined && (!Array.isArray(value) || value.some((k) => typeof k !== 'string')))
    throw ConfigError.option('createLogger', `redact.${option}`, 'an array of strings', value);
}

function checkPatterns(option: string, value: unknown): void {
  if (value === undefined) return;
  if (!Array.isArray(value))
    throw ConfigError.option('createLogger', `redact.${option}`, 'an array of global RegExps (/…/g)', value);
  for (const p of value as unknown[]) {
    if (!(p instanceof RegExp) || !p.global)
      throw ConfigError.option('createLogger', `redact.${option}`, 'global RegExps (/…/g)', p);
  }
}

/** Whether PHI mode is on, from `phiMode` or its alias `phi`; both set differently is a mistake. */
function phiModeOf(options: Readonly<RedactOptions>): boolean {
  // Read through a type without the deprecation: this is the one place the alias is honoured.
  const { phi: alias } = options as { phi?: unknown };
  const { phiMode } = options as { phiMode?: unknown };
  for (const [name, v] of [
    ['phiMode', phiMode],
    ['phi', alias],
  ] as const) {
    if (v !== undefined && typeof v !== 'boolean')
      throw ConfigError.option('createLogger', `redact.${name}`, 'true or false', v);
  }
  if (alias !== undefined && phiMode !== undefined && alias !== phiMode)
    throw ConfigError.option(
      'createLogger',
      'redact.phi',
      'the same as redact.phiMode (phi is its old name; set only phiMode)',
      alias,
    );
  const on = (phiMode ?? alias ?? true) as boolean;
  if (!on && (options.phiFields !== undefined || options.phiPatterns !== undefined))
    throw new ConfigError(
      'createLogger: redact.phiFields and redact.phiPatterns apply only in PHI mode, which phiMode: false turns off; remove one or the other',
      [{ name: 'redact.phiMode', expected: 'true with phiFields or phiPatterns', received: 'false' }],
    );
  return on;
}

function checkOptions(options: Readonly<RedactOptions>): void {
  checkStrings('keys', options.keys);
  checkStrings('phiFields', options.phiFields);
  checkPatterns('patterns', options.patterns);
  checkPatterns('phiPatterns', options.phiPatterns);
  if (options.censor !== undefined && typeof options.censor !== 'string')
    throw ConfigError.option('createLogger', 'redact.censor', 'a string', options.censor);
  if (options.maxDepth !== undefined && (!Number.isInteger(options.maxDepth) || options.maxDepth < 1)) {
    throw ConfigError.option('createLogger', 'redact.maxDepth', 'a positive integer', options.maxDepth);
  }
}

/**
 * Build the redactor the logger runs on every line. It never mutates its input: objects are copied
 * as they are cleaned, so logging `req.body` cannot change `req.body`.
 */
export function createRedactor(input: Readonly<RedactOptions> = {}): Redactor {
  const options = readOptions<RedactOptions>('createRedactor', input, KNOWN);
  checkOptions(options);
  const phiMode = phiModeOf(options);
  const censor = options.censor ?? '[REDACTED]';
  const maxDepth = options.maxDepth ?? 8;
  const phiFields = (options.phiFields ?? []).map(normaliseKey).filter((k) => k.length > 0);
  const exact = new Set([
    ...SECRET_EXACT,
    ...(phiMode ? [...PHI_EXACT, ...phiFields] : []),
    ...(options.keys ?? []).map(normaliseKey),
  ]);
  const suffixes = phiMode ? PHI_SUFFIXES : [];
  // Copies: a caller's RegExp keeps its own lastIndex, and ours cannot be changed from outside.
  const extra = [...(phiMode ? (options.phiPatterns ?? []) : []), ...(options.patterns ?? [])].map(
    (p) => new RegExp(p.source, p.flags),
  );
  const label = labelPattern(phiMode ? (options.phiFields ?? []) : []);
  // Decisions per key name are cached: a service logs the same few hundred keys over and over.
  const keyCache = new Map<string, boolean>();

  const isSensitiveKey = (key: string): boolean => {
    let hit = keyCache.get(key);
    if (hit === undefined) {
      const n = normaliseKey(key);
      hit =
        exact.has(n) || SECRET_FRAGMENTS.some((f) => n.includes(f)) || suffixes.some((f) => n.endsWith(f));
      if (keyCache.size < 10_000) keyCache.set(key, hit);
    }
    return hit;
  };

  /** One pass; `secrets: false` when the string cannot hold a secret or a query (see SUSPICIOUS). */
  const redactOnce = (s: string, secrets: boolean): string => {
    // Escape first: patterns then see exactly what is written.
    let out = secrets
      ? s
          .replace(CONTROL, escapeControl)
          .replace(JWT, censor)
          .replace(AUTH_SCHEME, `$1 ${censor}`)
          .replace(URL_CREDENTIALS, `$1${censor}@`)
          .replace(SSN, censor)
          .replace(CARD, (m) => (luhn(m.replace(/[ -]/g, '')) ? censor : m))
      : s;
    // PHI first: a label's value can hide a `?` or `&` that the query pattern would see differently
    // once the value is gone.
    if (phiMode) out = phiPass(out, censor, label);
    if (secrets && out.includes('?')) out = out.replace(QUERY_VALUE, `$1${censor}`);
    for (const p of extra) out = out.replace(p, censor);
    return out;
  };

  const redactString = (s: string): string => {
    const secrets = SUSPICIOUS.test(s) || hasEightDigits(s);
    // Custom patterns can match anything, so with any configured the shortcut is off.
    if (!secrets && extra.length === 0 && !(phiMode && PHI_HINT.test(s))) return s;
    // Redacting twice must change nothing. One pass can leave a match for the next: a value that
    // ended right before another (`…62704Key (email)=(…)`) hid it from a pattern that wants a word
    // boundary. So a string that changed gets another full pass (rarely a third) until it is stable.
    let out = redactOnce(s, secrets || extra.length > 0);
    for (let i = 0; i < 2 && out !== s; i++) {
      s = out;
      out = redactOnce(s, true);
    }
    return out;
  };

  const redact = (value: unknown, depth: number, seen: object[]): unknown => {
    switch (typeof value) {
      case 'string':
        return redactString(value);
      case 'bigint':
        return value.toString();
      case 'function':
      case 'symbol':
        return undefined;
      case 'object':
        break;
      default:
        return value;
    }
    if (value === null) return null;
    if (depth >= maxDepth) return '[Truncated]';
    if (seen.includes(value)) return '[Circular]';
    if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
    if (Buffer.isBuffer(value)) return `[Buffer ${value.length} bytes]`;
    seen.push(value);
    try {
      if (Array.isArray(value)) return value.slice(0, 100).map((v) => redact(v, depth + 1, seen));
      if (isError(value)) return redactError(value, depth, seen);
      if (value instanceof Map)
        return redactEntries(
          [...value.entries()].map(([k, v]) => [keyText(k), v]),
          depth,
          seen,
        );
      if (value instanceof Set) return [...value].slice(0, 100).map((v) => redact(v, depth + 1, seen));
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') return redact(toJSON.call(value), depth + 1, seen);
      return redactEntries(Object.entries(value), depth, seen);
    } catch {
      // A throwing getter or toJSON must not turn a log call into an exception.
      return '[Unserializable]';
    } finally {
      seen.pop();
    }
  };

  const redactEntries = (
    entries: [string, unknown][],
    depth: number,
    seen: object[],
  ): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries) {
      if (v === undefined) continue;
      // Keys are data too (`{ [email]: … }`): they are cleaned like values.
      out[redactString(k)] = isSensitiveKey(k) ? censor : redact(v, depth + 1, seen);
    }
    return out;
  };

  const redactError = (err: Error, depth: number, seen: object[]): Record<string, unknown> => {
    const message = databaseSafe(err, err.message);
    const out: Record<string, unknown> = { type: err.name, message: redactString(message) };
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') out.code = code;
    if (err.stack !== undefined) {
      // The stack starts with the message: keep the frames, not the original text.
      const frames = err.stack.indexOf('\n    at ');
      out.stack = redactString(`${err.name}: ${message}${frames === -1 ? '' : err.stack.slice(frames)}`);
    }
    if (err.cause !== undefined) out.cause = redact(err.cause, depth + 1, seen);
    return out;
  };

  return Object.assign((value: unknown): unknown => redact(value, 0, []), {
    isSensitiveKey,
    redactString,
    censor,
    phiMode,
  });
}

/** A redactor: call it on any value; the logger's format also uses its parts on top-level fields. */
export interface Redactor {
  (value: unknown): unknown;
  isSensitiveKey(key: string): boolean;
  redactString(s: string): string;
  readonly censor: string;
  /** Whether PHI mode is on. */
  readonly phiMode: boolean;
}
