import type { Request } from 'express';
import { AppError } from '../errors/index.js';
import type { ThreatMatch } from './signatures.js';
import { matchQueryText, matchText } from './signatures.js';

/** What happens to a query parameter sent more than once (`?status=a&status=b`). */
export type ParameterPollution = 'last' | 'first' | 'reject' | false;

/** Limits on what a request may carry. Each is checked before any route runs. */
export interface InputLimits {
  /** Longest request target (path + query) in characters → 414 URI_TOO_LONG. Default 8192. */
  urlLength?: number;
  /** Most request headers → 431 HEADERS_TOO_LARGE. Default 100. */
  headerCount?: number;
  /** Longest single header value in characters → 431 HEADERS_TOO_LARGE. Default 8192. */
  headerLength?: number;
  /** Most query parameters → 400 INVALID_INPUT. Default 256. */
  queryParameters?: number;
  /** Largest JSON body (bytes, or `'1mb'`-style) → 413 PAYLOAD_TOO_LARGE. Default `'1mb'`. */
  bodySize?: number | string;
  /** Deepest nesting of a JSON body → 400 INVALID_INPUT. Default 32. */
  jsonDepth?: number;
}

export type ResolvedLimits = Required<InputLimits>;

export const DEFAULT_LIMITS: ResolvedLimits = {
  urlLength: 8192,
  headerCount: 100,
  headerLength: 8192,
  queryParameters: 256,
  bodySize: '1mb',
  jsonDepth: 32,
};

/** Property names that reach `Object.prototype` when an object is merged into another. */
const POLLUTING_KEY = /(?:^|[[\].])(?:__proto__|constructor|prototype)(?:$|[[\].])/;
const POLLUTING_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

const invalid = (message: string, details?: Record<string, unknown>) =>
  new AppError(message, { status: 400, code: 'INVALID_INPUT', expose: true, details });

/** URL length and header limits; an AppError (414/431) or undefined. */
export function checkLimits(req: Request, limits: ResolvedLimits): AppError | undefined {
  if (req.originalUrl.length > limits.urlLength)
    return new AppError('Request URL is too long', { status: 414, code: 'URI_TOO_LONG', expose: true });
  const raw = req.rawHeaders;
  if (raw.length > limits.headerCount * 2)
    return new AppError('Too many request headers', { status: 431, code: 'HEADERS_TOO_LARGE', expose: true });
  for (let i = 1; i < raw.length; i += 2) {
    if ((raw[i] as string).length > limits.headerLength)
      return new AppError('A request header is too large', {
        status: 431,
        code: 'HEADERS_TOO_LARGE',
        expose: true,
      });
  }
  return undefined;
}

/** What one pass over the raw query string found. */
export interface QueryFindings {
  readonly error?: AppError;
  readonly threat?: ThreatMatch;
  /**
   * Parameter names sent more than once; present (maybe empty) also when a name has brackets, so
   * that an array sent once (`role[]=admin`) is reduced too.
   */
  readonly repeated?: ReadonlySet<string>;
}

const NOTHING: QueryFindings = {};

/**
 * One pass over the raw query string: parameter count, prototype-polluting names (in any
 * bracket/dot segment, decoded), repeated names, and — when `scan` — the threat signatures on
 * each decoded name and value. Reads the raw string, so it works whatever query parser the app
 * uses and on Express 5, where `req.query` is a getter that parses on every access.
 */
export function inspectQuery(query: string, maxParameters: number, scan: boolean): QueryFindings {
  if (query.length === 0) return NOTHING;
  let seen: Set<string> | undefined;
  let arrays = false;
  let repeated: Set<string> | undefined;
  let threat: ThreatMatch | undefined;
  let count = 0;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    if (end > start) {
      if (++count > maxParameters) return { error: invalid('Too many query parameters') };
      // Split where qs does: at `]=` when a bracket closes right before an `=` (`a[x=y][b]=1` is
      // the name `a[x=y][b]` to qs), else at the first `=`.
      const bracketEq = query.indexOf(']=', start);
      const eq = bracketEq !== -1 && bracketEq < end ? bracketEq + 1 : query.indexOf('=', start);
      const hasValue = eq !== -1 && eq < end;
      const rawName = query.slice(start, hasValue ? eq : end);
      const name = rawName.includes('%') || rawName.includes('+') ? decodeName(rawName) : rawName;
      if (POLLUTING_KEY.test(name)) return { error: invalid('Query parameter name is not allowed') };
      const base = baseName(name);
      // `role[]=admin` is an array even when sent once.
      if (!arrays && name.includes('[')) arrays = true;
      seen ??= new Set();
      if (seen.has(base)) (repeated ??= new Set()).add(base);
      else seen.add(base);
      if (scan && threat === undefined) {
        threat = matchQueryText(rawName) ?? (hasValue ? matchQueryText(query.slice(eq + 1, end)) : undefined);
      }
    }
    start = end + 1;
  }
  if (arrays && repeated === undefined) repeated = new Set();
  return threat === undefined && repeated === undefined ? NOTHING : { threat, repeated };
}

function decodeName(raw: string): string {
  const spaced = raw.replaceAll('+', ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

/** `filter[status][in]` → `filter`; `a.b` stays `a.b` (qs's dot notation is off by default). */
function baseName(name: string): string {
  const bracket = name.indexOf('[');
  return bracket > 0 ? name.slice(0, bracket) : name;
}

/**
 * HTTP parameter pollution: where a name not in `allowArrays` was repeated, keep one value
 * (`'last'`, as hpp does, or `'first'`) and move the full array to `req.queryPolluted`. The
 * cleaned object is pinned on the request as an own `query` property, which works on Express 4
 * (a plain property) and Express 5 (a getter on the prototype that re-parses on each access).
 */
export function applyPollutionPolicy(
  req: Request,
  repeated: ReadonlySet<string>,
  policy: 'last' | 'first',
  allowArrays: ReadonlySet<string>,
): void {
  const query = req.query as Record<string, unknown>;
  const cleaned: Record<string, unknown> = { ...query };
  const polluted: Record<string, unknown> = {};
  let changed = false;
  // The parser's keys: `filter` (qs nests brackets) or `filter[status]` (Express 5's simple parser).
  for (const name of Object.keys(cleaned)) {
    const base = baseName(name);
    if (allowArrays.has(base)) continue;
    const value = cleaned[name];
    // Arrays anywhere (a repeated name, `a[]`, `a[b]` repeated), and objects of a repeated name.
    if (!repeated.has(base) && !Array.isArray(value) && (typeof value !== 'object' || value === null))
      continue;
    const picked = pick(value, policy);
    if (picked !== value) {
      polluted[name] = value;
      cleaned[name] = picked;
      changed = true;
    }
  }
  if (!changed) return;
  Object.defineProperty(req, 'query', {
    value: cleaned,
    writable: true,
    configurable: true,
    enumerable: true,
  });
  (req as Request & { queryPolluted?: Record<string, unknown> }).queryPolluted = polluted;
}

/** One value from an array; nested objects (qs brackets) are cleaned the same way. */
function pick(value: unknown, policy: 'last' | 'first'): unknown {
  if (Array.isArray(value)) {
    const items = value as unknown[];
    return items.length === 0 ? value : items[policy === 'last' ? items.length - 1 : 0];
  }
  if (typeof value === 'object' && value !== null) {
    let out: Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(value)) {
      const p = pick(v, policy);
      if (p !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = p;
    }
    return out ?? value;
  }
  return value;
}

/**
 * Walks a parsed JSON body once, without recursion (a 1 MB body can nest 500 000 deep): depth,
 * prototype-polluting keys, and — when `scan` — the threat signatures on every key and string.
 */
export function inspectBody(
  body: unknown,
  maxDepth: number,
  scan: boolean,
): { error?: AppError; threat?: ThreatMatch } | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const stack: unknown[] = [body];
  const depths: number[] = [1];
  let threat: ThreatMatch | undefined;
  while (stack.length > 0) {
    const node = stack.pop();
    const depth = depths.pop() as number;
    if (depth > maxDepth)
      return { error: invalid('JSON body is nested too deeply', { max_depth: maxDepth }) };
    if (Array.isArray(node)) {
      for (const item of node as unknown[]) {
        if (typeof item === 'object' && item !== null) {
          stack.push(item);
          depths.push(depth + 1);
        } else if (scan && threat === undefined && typeof item === 'string') {
          threat = matchText(decodeIfEncoded(item), 'body');
        }
      }
      continue;
    }
    for (const key of Object.keys(node as object)) {
      if (POLLUTING_NAMES.has(key)) return { error: invalid('JSON body has a key that is not allowed') };
      if (scan && threat === undefined) threat = matchText(key, 'body');
      const item = (node as Record<string, unknown>)[key];
      if (typeof item === 'object' && item !== null) {
        stack.push(item);
        depths.push(depth + 1);
      } else if (scan && threat === undefined && typeof item === 'string') {
        threat = matchText(decodeIfEncoded(item), 'body');
      }
    }
  }
  return threat === undefined ? undefined : { threat };
}

/** Body strings are not URL-encoded, but a probe may be: decode only what looks encoded. */
function decodeIfEncoded(text: string): string {
  if (!/%[0-9a-f]{2}/i.test(text)) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
