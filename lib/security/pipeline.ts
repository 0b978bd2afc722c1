import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { getContext } from '../context/index.js';
import { AppError } from '../errors/index.js';
import { trustProxyProblem } from '../net/ip.js';
import type { ParameterPollution, ResolvedLimits } from './input.js';
import { applyPollutionPolicy, checkLimits, inspectBody, inspectQuery } from './input.js';
import type { SecurityMonitor, SecurityReason } from './monitor.js';
import type { Threats } from './options.js';
import type { ThreatMatch } from './signatures.js';
import { matchPath, matchUserAgent } from './signatures.js';

type Step = (req: Request, res: Response, next: NextFunction) => void;

/** What `security()` compiled from its options, once. */
export interface SecurityPlan {
  readonly monitor: SecurityMonitor;
  readonly headers: Step | undefined;
  readonly cors: Step | undefined;
  readonly limits: ResolvedLimits;
  readonly pollution: ParameterPollution;
  readonly allowArrays: ReadonlySet<string>;
  readonly parse: RequestHandler | undefined;
  readonly threats: Threats | undefined;
}

/**
 * One request through the security layer, in order: headers; deny list and bans; CORS; URL,
 * header and query checks with parameter pollution; signatures on path, query and user agent;
 * the JSON body (parsed here), its depth, keys and strings. A refusal is `next(err)`.
 */
export class SecurityPipeline {
  readonly #plan: SecurityPlan;
  #proxyPending: boolean;
  readonly #proxyJudged = new WeakSet<object>();

  constructor(plan: SecurityPlan) {
    this.#plan = plan;
    this.#proxyPending = plan.threats !== undefined;
  }

  /** Deny lists and bans key on `req.ip`: a `trust proxy` that lets clients pick it is warned about once. */
  #checkProxy(req: Request): void {
    const verdict = trustProxyProblem(
      req,
      'security',
      'get another client banned or slip past the deny list',
      'is the proxy to the deny list and to bans',
      this.#proxyJudged,
    );
    if (verdict === undefined) return;
    this.#proxyPending = false;
    if (verdict !== null) this.#plan.monitor.warn(verdict);
  }

  handle(req: Request, res: Response, next: NextFunction): void {
    if (this.#proxyPending) this.#checkProxy(req);
    const headers = this.#plan.headers;
    if (headers === undefined) this.#gate(req, res, next);
    else
      headers(req, res, (err?: unknown) => {
        if (err === undefined) this.#gate(req, res, next);
        else next(err);
      });
  }

  /** Deny list and bans, before anything else is looked at; then CORS. */
  #gate(req: Request, res: Response, next: NextFunction): void {
    const threats = this.#plan.threats;
    if (threats !== undefined) {
      const ip = clientIp(req);
      if (threats.deny.has(ip)) {
        this.#plan.monitor.record(req, 'deny_list', 'blocked', ip);
        next(new AppError('Access denied', { status: 403, code: 'CLIENT_BLOCKED', expose: true }));
        return;
      }
      const until =
        ip === undefined || threats.bans === undefined
          ? undefined
          : threats.bans.bannedUntil(threats.keys.key(ip));
      if (until !== undefined && !threats.allow.has(ip)) {
        this.#plan.monitor.record(req, 'banned', 'blocked', ip);
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
    const cors = this.#plan.cors;
    if (cors === undefined) this.#inspect(req, res, next);
    else
      cors(req, res, (err?: unknown) => {
        if (err === undefined) this.#inspect(req, res, next);
        else next(err);
      });
  }

  /** Limits, the query string, signatures on the URL and user agent; then the body. */
  #inspect(req: Request, res: Response, next: NextFunction): void {
    const { limits, pollution, threats } = this.#plan;
    const ip = clientIp(req);
    const limitError = checkLimits(req, limits);
    if (limitError !== undefined) {
      this.#refuse(
        req,
        next,
        limitError,
        limitError.status === 414 ? 'uri_too_long' : 'headers_too_large',
        ip,
      );
      return;
    }
    const url = req.originalUrl;
    const q = url.indexOf('?');
    const scan = threats?.scan === true;
    let match: ThreatMatch | undefined;
    if (q !== -1) {
      const found = inspectQuery(url.slice(q + 1), limits.queryParameters, scan);
      if (found.error !== undefined) {
        this.#violation(req, ip);
        this.#refuse(req, next, found.error, 'invalid_input', ip);
        return;
      }
      if (found.repeated !== undefined && pollution !== false) {
        if (pollution !== 'reject')
          applyPollutionPolicy(req, found.repeated, pollution, this.#plan.allowArrays);
        else if ([...found.repeated].some((name) => !this.#plan.allowArrays.has(name))) {
          const err = new AppError('A query parameter is repeated', {
            status: 400,
            code: 'INVALID_INPUT',
            expose: true,
          });
          this.#refuse(req, next, err, 'invalid_input', ip);
          return;
        }
      }
      match = found.threat;
    }
    if (scan && match === undefined) {
      match = matchPath(q === -1 ? url : url.slice(0, q));
      const agent = req.headers['user-agent'];
      if (match === undefined && agent !== undefined) match = matchUserAgent(agent);
    }
    if (match !== undefined) {
      if (this.#refuses(ip)) {
        this.#threat(req, next, match, ip);
        return;
      }
      // Logged, not refused: the body is still parsed and checked.
      this.#plan.monitor.record(req, match.category, 'logged', ip, match);
    }
    const parse = this.#plan.parse;
    // Every method that carries a body (a GET with a body would otherwise reach an app parser
    // unchecked); without one — neither Transfer-Encoding nor Content-Length, body-parser's own
    // test — there is nothing to parse or inspect.
    if (!hasBody(req)) next();
    else if (parse !== undefined)
      parse(req, res, (err?: unknown) => {
        this.#body(req, next, ip, err);
      });
    else this.#body(req, next, ip, undefined);
  }

  #body(req: Request, next: NextFunction, ip: string | undefined, err: unknown): void {
    if (err !== undefined) {
      if ((err as { status?: unknown }).status === 413)
        this.#plan.monitor.record(req, 'payload_too_large', 'rejected', ip);
      next(err);
      return;
    }
    const found = inspectBody(req.body, this.#plan.limits.jsonDepth, this.#plan.threats?.scan === true);
    if (found?.error !== undefined) {
      this.#violation(req, ip);
      this.#refuse(req, next, found.error, 'invalid_input', ip);
    } else if (found?.threat === undefined) next();
    else if (this.#refuses(ip)) this.#threat(req, next, found.threat, ip);
    else {
      this.#plan.monitor.record(req, found.threat.category, 'logged', ip, found.threat);
      next();
    }
  }

  /** Whether a matched signature is refused: block mode, and the client is not allow-listed. */
  #refuses(ip: string | undefined): boolean {
    const threats = this.#plan.threats;
    return threats !== undefined && threats.block && !threats.allow.has(ip);
  }

  #threat(req: Request, next: NextFunction, match: ThreatMatch, ip: string | undefined): void {
    this.#plan.monitor.record(req, match.category, 'blocked', ip, match);
    this.#violation(req, ip);
    next(new AppError('Request refused', { status: 403, code: 'THREAT_DETECTED', expose: true }));
  }

  #refuse(
    req: Request,
    next: NextFunction,
    err: AppError,
    reason: SecurityReason,
    ip: string | undefined,
  ): void {
    this.#plan.monitor.record(req, reason, 'rejected', ip);
    next(err);
  }

  /** Counts towards a ban (block mode only; never for allow-listed clients). Answered later. */
  #violation(req: Request, ip: string | undefined): void {
    const threats = this.#plan.threats;
    if (threats?.bans === undefined || !threats.block || ip === undefined || threats.allow.has(ip)) return;
    threats.bans.violation(threats.keys.key(ip)).then(
      (until) => {
        if (until !== undefined) this.#plan.monitor.record(req, 'banned', 'banned', ip);
      },
      () => undefined,
    );
  }

  stats() {
    return this.#plan.monitor.counters();
  }

  async unban(ip: string): Promise<void> {
    const threats = this.#plan.threats;
    if (threats?.bans !== undefined) await threats.bans.unban(threats.keys.key(ip));
  }

  async close(): Promise<void> {
    await this.#plan.threats?.bans?.close();
  }
}

/**
 * The client address: the request context's, worked out once per request (Express's `req.ip`
 * parses `X-Forwarded-For` against `trust proxy` on every read), else Express's.
 */
function clientIp(req: Request): string | undefined {
  const ctx = getContext(req);
  return ctx !== undefined ? ctx.ip : (req.ip ?? req.socket.remoteAddress);
}

/** Whether the request carries a body: type-is's `hasBody`, the test body-parser starts with. */
function hasBody(req: Request): boolean {
  const headers = req.headers;
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && !Number.isNaN(Number(length));
}
