import type { NextFunction, Request, Response } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import {
  ConfigError,
  ForbiddenError,
  positiveInteger,
  readOptions,
  UnauthorizedError,
} from '../errors/index.js';
import { createLogger } from '../logging/index.js';
import { markScrape } from '../metrics/http.js';
import type { Metrics } from '../metrics/index.js';
import { getMetrics, isMetrics } from '../metrics/index.js';
import { IpList } from '../net/ip.js';
import { CLIENT_SCRIPT } from './client.js';
import { DATA_CSP, PAGE_CSP, renderPage } from './page.js';
import { RateWindow } from './rates.js';
import type { FamilyJson, StatusView } from './types.js';
import { buildView } from './view.js';

export interface StatusPageOptions {
  /** The registry to show. Default: the process's {@link getMetrics}. */
  metrics?: Metrics;
  /**
   * Readers must send the token as `Authorization: Bearer <token>` or as the password of HTTP
   * Basic authentication (any user name; browsers prompt for it). Default `METRICS_TOKEN` (none when unset).
   */
  token?: string;
  /** Only these addresses / CIDR ranges may read the page (`req.ip`, so `trust proxy` applies). Default `METRICS_ALLOW_IPS` (any). */
  allow?: readonly string[];
  /** Heading and document title. Default `"<app> status"` (the registry's `app` label). */
  title?: string;
  /** Seconds between the page's refreshes of its data (1 … 3600). Default `5`. */
  refreshSeconds?: number;
  /** Settings for defaults. Default `loadSettings(process.env)`. */
  settings?: Settings;
}

const KNOWN = [
  'metrics',
  'token',
  'allow',
  'title',
  'refreshSeconds',
  'settings',
] as const satisfies readonly (keyof StatusPageOptions)[];

/** Rates are taken over this much of the past. */
const RATE_WINDOW_MS = 60_000;
const BASIC = /^basic /i;
const BEARER = /^bearer /i;

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** The token a request presents: a Bearer token, or the password of Basic authentication. */
function presented(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (BEARER.test(header)) return header.slice(7).trim();
  if (!BASIC.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

function readTitle(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.trim() === '' || value.length > 200)
    throw ConfigError.option('statusPage', 'title', 'a non-empty string of at most 200 characters', value);
  return value;
}

function readRefresh(value: unknown): number {
  if (value === undefined) return 5;
  const seconds = positiveInteger('statusPage', 'refreshSeconds', value);
  if (seconds > 3600)
    throw ConfigError.option(
      'statusPage',
      'refreshSeconds',
      'a whole number of seconds from 1 to 3600',
      value,
    );
  return seconds;
}

/** A request the page may not answer: refused by address or token, else `undefined`. */
type Guard = (req: Request) => Error | undefined;

function guard(options: Partial<StatusPageOptions>, settings: Settings): Guard {
  const token = options.token ?? settings.monitoring.metricsToken;
  if (token !== undefined && (typeof token !== 'string' || token.length === 0))
    throw ConfigError.option('statusPage', 'token', 'a non-empty string', '(hidden)');
  const expected = token === undefined ? undefined : digest(token);
  const allow = new IpList('statusPage', 'allow', options.allow ?? settings.monitoring.metricsAllowIps);
  if (expected === undefined && allow.size === 0 && settings.environment === 'production')
    createLogger('metrics', { settings }).warn(
      'statusPage() is open to anyone who can reach it: set METRICS_TOKEN or METRICS_ALLOW_IPS',
    );
  return (req) => {
    if (allow.size > 0 && !allow.has(req.ip ?? req.socket.remoteAddress))
      return new ForbiddenError('This address may not read the status page');
    if (expected === undefined) return undefined;
    const given = presented(req.headers.authorization);
    if (given !== undefined && timingSafeEqual(digest(given), expected)) return undefined;
    return new UnauthorizedError(given === undefined ? 'A token is required' : 'Invalid token', {
      headers: { 'WWW-Authenticate': 'Basic realm="status", charset="UTF-8"' },
    });
  };
}

function secure(res: Response, csp: string, type: string): void {
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Security-Policy', csp);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cache-Control', 'no-store');
}

/**
 * A status page for people: live RED metrics per route (rate, error ratio, p50/p99), errors by
 * code, database pools, circuit breakers, rate-limit hits, feature-flag evaluations and security
 * events, read from a metrics registry. One self-contained HTML document (inline CSS allowed by its
 * hash, one script from its own path, its own strict CSP — also behind `security()`), refreshed
 * from `status.json` beside it. Protected like {@link metricsEndpoint}; its own requests are not
 * counted as traffic. Mount it with `app.use(path, …)`.
 *
 * @example
 * app.use('/status', core.statusPage({ allow: ['10.0.0.0/8'] }));
 */
export function statusPage(
  input: Readonly<StatusPageOptions> = {},
): (req: Request, res: Response, next: NextFunction) => void {
  const options = readOptions<StatusPageOptions>('statusPage', input, KNOWN);
  const settings = options.settings ?? loadSettings(process.env);
  if (options.metrics !== undefined && !isMetrics(options.metrics))
    throw ConfigError.option('statusPage', 'metrics', 'a Metrics from core.createMetrics()', options.metrics);
  const refused = guard(options, settings);
  const givenTitle = readTitle(options.title);
  const refreshSeconds = readRefresh(options.refreshSeconds);
  const rates = new RateWindow(RATE_WINDOW_MS);
  let metrics = options.metrics;

  async function view(target: Metrics): Promise<StatusView> {
    const families = (await target.registry.getMetricsAsJSON()) as unknown as FamilyJson[];
    return buildView(families, rates, givenTitle ?? `${target.app} status`, refreshSeconds);
  }

  async function answer(path: string, req: Request, res: Response, target: Metrics): Promise<void> {
    if (path === '/status.json') {
      secure(res, DATA_CSP, 'application/json; charset=utf-8');
      res.send(JSON.stringify(await view(target)));
    } else {
      secure(res, PAGE_CSP, 'text/html; charset=utf-8');
      res.send(renderPage(await view(target), req.baseUrl));
    }
  }

  return function statusPageHandler(req: Request, res: Response, next: NextFunction): void {
    const path = req.path;
    if (
      (req.method !== 'GET' && req.method !== 'HEAD') ||
      (path !== '/' && path !== '/status.json' && path !== '/status.js')
    ) {
      next();
      return;
    }
    const error = refused(req);
    if (error !== undefined) {
      next(error);
      return;
    }
    metrics ??= getMetrics(settings);
    if (!metrics.enabled) {
      next();
      return;
    }
    // Reading the page is not traffic: it stays out of the numbers it shows.
    markScrape(res, metrics);
    if (path === '/status.js') {
      secure(res, DATA_CSP, 'text/javascript; charset=utf-8');
      res.send(CLIENT_SCRIPT);
      return;
    }
    answer(path, req, res, metrics).catch(next);
  };
}
