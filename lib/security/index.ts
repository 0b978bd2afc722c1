import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { json } from 'express';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { AppError, ConfigError, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { createLogger } from '../logging/index.js';
import { ClientKeys, IpList, readIpv6Subnet } from '../net/ip.js';
import type { Cluster, Redis } from '../redis/index.js';
import { connectRedis } from '../redis/index.js';
import { Bans } from './bans.js';
import type { CorsOptions, HelmetOptions } from './headers.js';
import { corsMiddleware, DEFAULT_PERMISSIONS_POLICY, headersMiddleware } from './headers.js';
import type { InputLimits, ParameterPollution, ResolvedLimits } from './input.js';
import { applyPollutionPolicy, checkLimits, DEFAULT_LIMITS, inspectBody, inspectQuery } from './input.js';
import type { SecurityCounters, SecurityEvent, SecurityReason } from './monitor.js';
import { SecurityMonitor } from './monitor.js';
import type { ThreatMatch } from './signatures.js';
import { matchPath, matchUserAgent } from './signatures.js';

export type { CorsOptions, HelmetOptions } from './headers.js';
export { API_HELMET_PRESET, DEFAULT_PERMISSIONS_POLICY } from './headers.js';
export type { InputLimits, ParameterPollution } from './input.js';
export type { SecurityEvent, SecurityCounters, SecurityReason, SecurityAction } from './monitor.js';
export type { ThreatCategory, ThreatLocation } from './signatures.js';

/** Threat detection: IP lists, request signatures, temporary bans. */
export interface ThreatOptions {
  /** `'block'` answers a matched signature with 403 THREAT_DETECTED; `'monitor'` only logs it. Default `'block'`. */
  mode?: 'block' | 'monitor';
  /** Addresses and CIDR ranges (IPv4/IPv6) always refused with 403 CLIENT_BLOCKED, in either mode. Default none. */
  denyList?: readonly string[];
  /**
   * Addresses and CIDR ranges that are never blocked or banned (monitoring, internal callers);
   * what they send is still checked and logged. Default none.
   */
  allowList?: readonly string[];
  /** Check requests against the signatures (path, query, JSON body, user agent). Default `true`. */
  signatures?: boolean;
  /**
   * Ban a client for `durationMs` after `threshold` violations (blocked signatures, polluting keys)
   * within `windowMs`; `false` to never ban. Default `{ threshold: 10, windowMs: 60_000, durationMs: 900_000 }`.
   */
  ban?: { threshold?: number; windowMs?: number; durationMs?: number } | false;
  /**
   * Redis to share violation counts and bans across instances: a URL, an ioredis client (Redis or
   * Cluster; it stays yours), or `false`. Default `REDIS_URL`, else memory (per instance).
   */
  redis?: string | Redis | Cluster | false;
  /** Prefix of the Redis keys and channel. Default `'caduceus'`. */
  prefix?: string;
  /** IPv6 clients are banned by this network prefix (32–64). Default 56. */
  ipv6Subnet?: number;
}

/** Everything `security()` accepts. Each default is stated; settings come from the environment. */
export interface SecurityOptions {
  /** helmet options over the API preset (`API_HELMET_PRESET`), or `false` for no helmet headers. */
  helmet?: HelmetOptions | false;
  /** `Cache-Control` for every response (a route may set its own). Default `'no-store'`: PHI must not sit in shared caches. */
  cacheControl?: string | false;
  /** `Permissions-Policy` value. Default {@link DEFAULT_PERMISSIONS_POLICY} (every powerful feature off). */
  permissionsPolicy?: string | false;
  /** CORS; `false` to send no CORS headers. Default from `SECURITY_CORS_ORIGINS` / `SECURITY_CORS_ALLOW_CREDENTIALS`. */
  cors?: CorsOptions | false;
  /** URL, header, query and body limits; see {@link InputLimits} for each default. */
  limits?: InputLimits;
  /**
   * A query parameter sent twice (`?role=user&role=admin`): `'last'` keeps the last value (the
   * full list goes to `req.queryPolluted`), `'first'` the first, `'reject'` answers 400, `false`
   * leaves arrays as the parser made them. Default `'last'`.
   */
  parameterPollution?: ParameterPollution;
  /** Parameters that may repeat (FHIR `date=ge…&date=lt…`, `id=1&id=2`). Default none. */
  allowArrays?: readonly string[];
  /**
   * Parse JSON bodies here (`application/json` and `application/*+json`, such as FHIR), with
   * `limits.bodySize`, so size, depth, polluting keys and signatures are checked before any
   * route. With `false`, a body already parsed by the app is still checked. Default `true`.
   */
  json?: boolean;
  /** Threat detection; `false` to turn it off. Default on, in `'block'` mode. */
  threats?: ThreatOptions | false;
  /** Called for every decision (after it is logged and counted). */
  onEvent?: (event: SecurityEvent) => void;
  /** Where security events go. Default `createLogger('security')`. */
  logger?: Logger;
  /** Settings to read defaults from. Default `loadSettings(process.env)`. */
  settings?: Settings;
}

/** The middleware `security()` returns, with its controls. */
export interface SecurityMiddleware extends RequestHandler {
  /** Decisions so far, by `reason:action`. */
  stats(): SecurityCounters;
  /** Lift a temporary ban on an address (everywhere, with Redis). */
  unban(ip: string): Promise<void>;
  /** Close the Redis connections it opened. */
  close(): Promise<void>;
}

const KNOWN = [
  'helmet',
  'cacheControl',
  'permissionsPolicy',
  'cors',
  'limits',
  'parameterPollution',
  'allowArrays',
  'json',
  'threats',
  'onEvent',
  'logger',
  'settings',
] as const satisfies readonly (keyof SecurityOptions)[];

const THREAT_KNOWN = [
  'mode',
  'denyList',
  'allowList',
  'signatures',
  'ban',
  'redis',
  'prefix',
  'ipv6Subnet',
] as const satisfies readonly (keyof ThreatOptions)[];

const LIMIT_KNOWN = [
  'urlLength',
  'headerCount',
  'headerLength',
  'queryParameters',
  'bodySize',
  'jsonDepth',
] as const satisfies readonly (keyof InputLimits)[];

/** Compiled threat settings. */
interface Threats {
  readonly block: boolean;
  readonly scan: boolean;
  readonly deny: IpList;
  readonly allow: IpList;
  readonly keys: ClientKeys;
  readonly bans: Bans | undefined;
}

/**
 * The security layer of the pipeline, in one middleware: helmet with an API preset,
 * `Cache-Control: no-store` and `Permissions-Policy`; CORS; input limits (URL, headers, query,
 * JSON body size and depth), prototype-polluting keys and parameter pollution; threat detection
 * (IP deny/allow lists, signatures, temporary bans shared through Redis). Every refusal is an
 * error in the envelope, a security log line with the request id, and a counter.
 *
 * ```ts
 * app.use(core.requestContext(), core.logging(), core.security(), core.rateLimit());
 * app.use(core.security({ threats: { mode: 'monitor', denyList: ['203.0.113.0/24'] } }));
 * ```
 */
export function security(input: Readonly<SecurityOptions> = {}): SecurityMiddleware {
  const options = readOptions<SecurityOptions>('security', input, KNOWN);
  const settings = options.settings ?? loadSettings(process.env);
  const logger = options.logger ?? createLogger('security', { settings });
  const monitor = new SecurityMonitor(logger, readHook(options.onEvent));
  const headers = headersMiddleware(
    readHelmet(options.helmet),
    readHeaderValue('cacheControl', options.cacheControl ?? 'no-store'),
    readHeaderValue('permissionsPolicy', options.permissionsPolicy ?? DEFAULT_PERMISSIONS_POLICY),
  );
  const cors =
    options.cors === false
      ? undefined
      : corsMiddleware({
          origins: settings.security.corsOrigins,
          credentials: settings.security.corsAllowCredentials,
          ...readOptions<CorsOptions>('security.cors', options.cors, [
            'origins',
            'credentials',
            'methods',
            'allowedHeaders',
            'exposedHeaders',
            'maxAge',
          ]),
        });
  const limits = readLimits(options.limits);
  const pollution = readPollution(options.parameterPollution ?? 'last');
  const allowArrays = new Set(readStrings('allowArrays', options.allowArrays ?? []));
  if (options.json !== undefined && typeof options.json !== 'boolean')
    throw ConfigError.option('security', 'json', 'true or false', options.json);
  const parse =
    options.json === false
      ? undefined
      : json({ limit: limits.bodySize, type: ['application/json', 'application/*+json'], strict: true });
  const threats =
    options.threats === false ? undefined : readThreats(options.threats ?? {}, settings, logger);

  const refuse = (
    req: Request,
    next: NextFunction,
    err: AppError,
    reason: SecurityReason,
    ip: string | undefined,
  ) => {
    monitor.record(req, reason, 'rejected', ip);
    next(err);
  };

  /** A signature matched: log, count, and in block mode refuse and count a violation. */
  const onThreat = (req: Request, next: NextFunction, match: ThreatMatch, ip: string | undefined): void => {
    const exempt = threats === undefined || !threats.block || threats.allow.has(ip);
    monitor.record(req, match.category, exempt ? 'logged' : 'blocked', ip, match);
    if (exempt) {
      next();
      return;
    }
    violation(req, ip);
    next(new AppError('Request refused', { status: 403, code: 'THREAT_DETECTED', expose: true }));
  };

  const violation = (req: Request, ip: string | undefined) => {
    if (threats?.bans === undefined || !threats.block || ip === undefined || threats.allow.has(ip)) return;
    threats.bans.violation(threats.keys.key(ip)).then(
      (until) => {
        if (until !== undefined) monitor.record(req, 'banned', 'banned', ip);
      },
      () => undefined,
    );
  };

  const afterBody = (req: Request, next: NextFunction, ip: string | undefined) => (err?: unknown) => {
    if (err !== undefined) {
      if ((err as { status?: unknown }).status === 413)
        monitor.record(req, 'payload_too_large', 'rejected', ip);
      next(err);
      return;
    }
    const found = inspectBody(req.body, limits.jsonDepth, threats?.scan === true);
    if (found?.error !== undefined) {
      violation(req, ip);
      refuse(req, next, found.error, 'invalid_input', ip);
    } else if (found?.threat !== undefined) onThreat(req, next, found.threat, ip);
    else next();
  };

  const inspect = (req: Request, res: Response, next: NextFunction) => {
    const ip = req.ip ?? req.socket.remoteAddress;
    const limitError = checkLimits(req, limits);
    if (limitError !== undefined) {
      refuse(req, next, limitError, limitError.status === 414 ? 'uri_too_long' : 'headers_too_large', ip);
      return;
    }
    const url = req.originalUrl;
    const q = url.indexOf('?');
    const scan = threats?.scan === true;
    let match: ThreatMatch | undefined;
    if (q !== -1) {
      const found = inspectQuery(url.slice(q + 1), limits.queryParameters, scan);
      if (found.error !== undefined) {
        violation(req, ip);
        refuse(req, next, found.error, 'invalid_input', ip);
        return;
      }
      if (found.repeated !== undefined && pollution !== false) {
        if (pollution === 'reject' && [...found.repeated].some((name) => !allowArrays.has(name))) {
          refuse(
            req,
            next,
            new AppError('A query parameter is repeated', {
              status: 400,
              code: 'INVALID_INPUT',
              expose: true,
            }),
            'invalid_input',
            ip,
          );
          return;
        }
        if (pollution !== 'reject') applyPollutionPolicy(req, found.repeated, pollution, allowArrays);
      }
      match = found.threat;
    }
    if (scan && match === undefined) {
      match = matchPath(q === -1 ? url : url.slice(0, q));
      const agent = req.headers['user-agent'];
      if (match === undefined && agent !== undefined) match = matchUserAgent(agent);
    }
    if (match !== undefined && (threats?.block !== true || threats.allow.has(ip))) {
      // Logged, not refused: the body is still parsed and checked.
      onThreat(req, () => undefined, match, ip);
      match = undefined;
    }
    if (match !== undefined) {
      onThreat(req, next, match, ip);
      return;
    }
    const done = afterBody(req, next, ip);
    if (parse !== undefined && req.method !== 'GET' && req.method !== 'HEAD') parse(req, res, done);
    else done();
  };

  const gate = (req: Request, res: Response, next: NextFunction) => {
    if (threats !== undefined) {
      const ip = req.ip ?? req.socket.remoteAddress;
      if (threats.deny.has(ip)) {
        monitor.record(req, 'deny_list', 'blocked', ip);
        next(new AppError('Access denied', { status: 403, code: 'CLIENT_BLOCKED', expose: true }));
        return;
      }
      const until =
        ip === undefined || threats.bans === undefined
          ? undefined
          : threats.bans.bannedUntil(threats.keys.key(ip));
      if (until !== undefined && !threats.allow.has(ip)) {
        monitor.record(req, 'banned', 'blocked', ip);
        next(
          new AppError('Access temporarily denied', {
            status: 403,
            code: 'CLIENT_BLOCKED',
            expose: true,
            headers: { 'Retry-After': String(Math.max(1, Math.ceil((until - Date.now()) / 1000))) },
          }),
        );
        return;
      }
    }
    if (cors === undefined) inspect(req, res, next);
    else
      cors(req, res, (err?: unknown) => {
        if (err === undefined) inspect(req, res, next);
        else next(err);
      });
  };

  const middleware = function securityMiddleware(req: Request, res: Response, next: NextFunction) {
    if (headers === undefined) gate(req, res, next);
    else
      headers(req, res, (err?: unknown) => {
        if (err === undefined) gate(req, res, next);
        else next(err);
      });
  } as SecurityMiddleware;
  middleware.stats = () => monitor.counters();
  middleware.unban = async (ip: string) => {
    if (threats?.bans !== undefined) await threats.bans.unban(threats.keys.key(ip));
  };
  middleware.close = async () => {
    await threats?.bans?.close();
  };
  return middleware;
}

function readThreats(input: unknown, settings: Settings, logger: Logger): Threats {
  const options = readOptions<ThreatOptions>('security.threats', input, THREAT_KNOWN);
  const mode: unknown = options.mode ?? 'block';
  if (mode !== 'block' && mode !== 'monitor')
    throw ConfigError.option('security', 'threats.mode', "'block' or 'monitor'", mode);
  const signatures: unknown = options.signatures ?? true;
  if (typeof signatures !== 'boolean')
    throw ConfigError.option('security', 'threats.signatures', 'true or false', signatures);
  const ban = options.ban === false ? undefined : readBan(options.ban ?? {});
  const prefix = options.prefix ?? 'caduceus';
  if (typeof prefix !== 'string' || !/^[\w:.-]{1,64}$/.test(prefix))
    throw ConfigError.option('security', 'threats.prefix', '1–64 characters of A–Z a–z 0–9 _ : . -', prefix);
  const redisTarget =
    options.redis === false ? undefined : (options.redis ?? settings.externalServices.redisUrl);
  if (redisTarget !== undefined && typeof redisTarget !== 'string' && typeof redisTarget !== 'object')
    throw ConfigError.option(
      'security',
      'threats.redis',
      'a redis:// URL, an ioredis client or false',
      redisTarget,
    );
  const bans =
    ban === undefined
      ? undefined
      : new Bans(
          ban,
          logger,
          redisTarget === undefined ? undefined : connectRedis(redisTarget, 'security', logger),
          prefix,
        );
  return {
    block: mode === 'block',
    scan: signatures,
    deny: new IpList('security', 'threats.denyList', options.denyList ?? []),
    allow: new IpList('security', 'threats.allowList', options.allowList ?? []),
    keys: new ClientKeys(readIpv6Subnet('security.threats', options.ipv6Subnet)),
    bans,
  };
}

function readBan(input: unknown) {
  const ban = readOptions<{ threshold: number; windowMs: number; durationMs: number }>(
    'security.threats.ban',
    input,
    ['threshold', 'windowMs', 'durationMs'],
  );
  return {
    threshold: positiveInteger('threats.ban.threshold', ban.threshold ?? 10),
    windowMs: positiveInteger('threats.ban.windowMs', ban.windowMs ?? 60_000),
    durationMs: positiveInteger('threats.ban.durationMs', ban.durationMs ?? 900_000),
  };
}

function readLimits(input: unknown): ResolvedLimits {
  const limits = readOptions<InputLimits>('security.limits', input, LIMIT_KNOWN);
  const bodySize = limits.bodySize ?? DEFAULT_LIMITS.bodySize;
  if (
    !(typeof bodySize === 'string' && /^\d+(?:\.\d+)?\s*(?:b|kb|mb|gb)?$/i.test(bodySize)) &&
    !(Number.isInteger(bodySize) && (bodySize as number) > 0)
  )
    throw ConfigError.option('security', 'limits.bodySize', "a byte count or a size such as '1mb'", bodySize);
  return {
    urlLength: positiveInteger('limits.urlLength', limits.urlLength ?? DEFAULT_LIMITS.urlLength),
    headerCount: positiveInteger('limits.headerCount', limits.headerCount ?? DEFAULT_LIMITS.headerCount),
    headerLength: positiveInteger('limits.headerLength', limits.headerLength ?? DEFAULT_LIMITS.headerLength),
    queryParameters: positiveInteger(
      'limits.queryParameters',
      limits.queryParameters ?? DEFAULT_LIMITS.queryParameters,
    ),
    bodySize,
    jsonDepth: positiveInteger('limits.jsonDepth', limits.jsonDepth ?? DEFAULT_LIMITS.jsonDepth),
  };
}

function positiveInteger(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0)
    throw ConfigError.option('security', option, 'a positive integer', value);
  return value;
}

function readPollution(value: unknown): ParameterPollution {
  if (value !== 'last' && value !== 'first' && value !== 'reject' && value !== false)
    throw ConfigError.option('security', 'parameterPollution', "'last', 'first', 'reject' or false", value);
  return value;
}

function readStrings(option: string, value: unknown): readonly string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
    throw ConfigError.option('security', option, 'an array of strings', value);
  return value;
}

function readHelmet(value: unknown): HelmetOptions | false {
  if (value === undefined) return {};
  if (value === false) return false;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw ConfigError.option('security', 'helmet', "helmet's options object or false", value);
  return value;
}

function readHeaderValue(option: string, value: unknown): string | false {
  if (value !== false && typeof value !== 'string')
    throw ConfigError.option('security', option, 'a header value or false', value);
  return value;
}

function readHook(value: unknown): ((event: SecurityEvent) => void) | undefined {
  if (value !== undefined && typeof value !== 'function')
    throw ConfigError.option('security', 'onEvent', 'a function', value);
  return value as ((event: SecurityEvent) => void) | undefined;
}
