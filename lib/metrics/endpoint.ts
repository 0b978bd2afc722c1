import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { Settings } from '../config/index.js';
import { loadSettings } from '../config/index.js';
import { ConfigError, ForbiddenError, readOptions, UnauthorizedError } from '../errors/index.js';
import { createLogger } from '../logging/index.js';
import { IpList } from '../net/ip.js';
import { markScrape } from './http.js';
import type { Metrics } from './registry.js';
import { getMetrics, isMetrics } from './registry.js';

export interface MetricsEndpointOptions {
  /** The registry to serve. Default: the process's {@link getMetrics}. */
  metrics?: Metrics;
  /** Scrapers must send `Authorization: Bearer <token>`. Default `METRICS_TOKEN` (none when unset). */
  token?: string;
  /** Only these addresses / CIDR ranges may scrape (`req.ip`, so `trust proxy` applies). Default `METRICS_ALLOW_IPS` (any). */
  allow?: readonly string[];
  /**
   * In the primary of a Node cluster: serve every worker's series summed (workers create their
   * registries with `createMetrics({ cluster: true })`). Prometheus text only. Default `false`.
   */
  cluster?: boolean;
  /** Answer `Accept: application/openmetrics-text` in OpenMetrics (with exemplars). Default `true`. */
  openMetrics?: boolean;
  /** Settings for defaults. Default `loadSettings(process.env)`. */
  settings?: Settings;
}

const KNOWN = [
  'metrics',
  'token',
  'allow',
  'cluster',
  'openMetrics',
  'settings',
] as const satisfies readonly (keyof MetricsEndpointOptions)[];

const OPENMETRICS = 'application/openmetrics-text; version=1.0.0; charset=utf-8';
const TEXT = Registry.PROMETHEUS_CONTENT_TYPE;

/**
 * Whether `Accept` prefers OpenMetrics to the text format. Parsed here rather than with
 * `req.accepts()`: Prometheus sends `application/openmetrics-text;version=1.0.0`, and Express's
 * negotiator only matches media ranges whose parameters the offered type repeats.
 */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined || !accept.includes('openmetrics')) return false;
  let open = 0;
  let text = 0;
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';');
    let q = 1;
    for (const param of params) {
      const [key, value] = param.split('=');
      if (key?.trim().toLowerCase() === 'q') q = Number(value);
    }
    if (!(q >= 0 && q <= 1)) continue;
    const media = type.trim().toLowerCase();
    if (media === 'application/openmetrics-text') open = Math.max(open, q);
    else if (media === 'text/plain' || media === 'text/*' || media === '*/*') text = Math.max(text, q);
  }
  return open > 0 && open >= text;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * Serves the metrics registry to Prometheus: text format, or OpenMetrics when the scraper asks for
 * it (Prometheus does), optionally behind a bearer token and an address allow-list. Its own
 * requests are not counted by `metrics()`.
 *
 * @example
 * app.get('/metrics', core.metricsEndpoint({ token: process.env.METRICS_TOKEN }));
 */
export function metricsEndpoint(input: Readonly<MetricsEndpointOptions> = {}): RequestHandler {
  const options = readOptions<MetricsEndpointOptions>('metricsEndpoint', input, KNOWN);
  const settings = options.settings ?? loadSettings(process.env);
  if (options.metrics !== undefined && !isMetrics(options.metrics))
    throw ConfigError.option(
      'metricsEndpoint',
      'metrics',
      'a Metrics from core.createMetrics()',
      options.metrics,
    );
  const token = options.token ?? settings.monitoring.metricsToken;
  if (token !== undefined && (typeof token !== 'string' || token.length === 0))
    throw ConfigError.option('metricsEndpoint', 'token', 'a non-empty string', '(hidden)');
  const expected = token === undefined ? undefined : digest(token);
  const allow = new IpList('metricsEndpoint', 'allow', options.allow ?? settings.monitoring.metricsAllowIps);
  for (const key of ['cluster', 'openMetrics'] as const) {
    const value = options[key];
    if (value !== undefined && typeof value !== 'boolean')
      throw ConfigError.option('metricsEndpoint', key, 'true or false', value);
  }
  const openMetrics = options.openMetrics ?? true;
  if (expected === undefined && allow.size === 0 && settings.environment === 'production')
    createLogger('metrics', { settings }).warn(
      'metricsEndpoint() is open to anyone who can reach it: set METRICS_TOKEN or METRICS_ALLOW_IPS',
    );
  const aggregator = options.cluster === true ? new AggregatorRegistry() : undefined;
  let metrics = options.metrics;

  async function render(req: Request, res: Response): Promise<void> {
    if (aggregator !== undefined) {
      const body = await aggregator.clusterMetrics();
      res.setHeader('Content-Type', TEXT);
      res.send(body);
      return;
    }
    metrics ??= getMetrics(settings);
    const asOpenMetrics = openMetrics && prefersOpenMetrics(req.headers.accept);
    const body = await metrics.render(asOpenMetrics);
    res.setHeader('Content-Type', asOpenMetrics ? OPENMETRICS : TEXT);
    res.send(body);
  }

  return function metricsEndpointHandler(req: Request, res: Response, next: NextFunction): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      next();
      return;
    }
    if (allow.size > 0 && !allow.has(req.ip ?? req.socket.remoteAddress)) {
      next(new ForbiddenError('This address may not read metrics'));
      return;
    }
    if (expected !== undefined) {
      const header = req.headers.authorization;
      const given = header !== undefined && /^bearer /i.test(header) ? header.slice(7).trim() : undefined;
      if (given === undefined || !timingSafeEqual(digest(given), expected)) {
        next(
          given === undefined
            ? new UnauthorizedError('A bearer token is required', { realm: 'metrics' })
            : new UnauthorizedError('Invalid token', { realm: 'metrics', bearerError: 'invalid_token' }),
        );
        return;
      }
    }
    // Only an admitted scrape stops being traffic: refused ones are counted like any request.
    if (aggregator === undefined) markScrape(res, metrics ?? getMetrics(settings));
    if (!(metrics ?? getMetrics()).enabled && aggregator === undefined) {
      next();
      return;
    }
    res.setHeader('Cache-Control', 'no-store');
    render(req, res).catch(next);
  };
}
