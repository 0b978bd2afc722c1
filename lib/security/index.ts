import { json } from 'express';
import { loadSettings } from '../config/index.js';
import { readOptions } from '../errors/index.js';
import { createLogger } from '../logging/index.js';
import { metricsFor } from '../metrics/index.js';
import type { CorsOptions } from './headers.js';
import { corsMiddleware, DEFAULT_PERMISSIONS_POLICY, headersMiddleware } from './headers.js';
import { SecurityMonitor } from './monitor.js';
import {
  KNOWN,
  readHeaderValue,
  readHelmet,
  readHook,
  readJson,
  readLimits,
  readPollution,
  readStrings,
  readThreats,
} from './options.js';
import { SecurityPipeline } from './pipeline.js';
import type { SecurityMiddleware, SecurityOptions } from './types.js';

export type { CorsOptions, HelmetOptions } from './headers.js';
export { API_HELMET_PRESET, DEFAULT_PERMISSIONS_POLICY } from './headers.js';
export type { InputLimits, ParameterPollution } from './input.js';
export type { SecurityEvent, SecurityCounters, SecurityReason, SecurityAction } from './monitor.js';
export type { ThreatCategory, ThreatLocation } from './signatures.js';
export type { SecurityOptions, SecurityMiddleware, ThreatOptions } from './types.js';

const CORS_KNOWN = [
  'origins',
  'credentials',
  'methods',
  'allowedHeaders',
  'exposedHeaders',
  'maxAge',
] as const;

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
  const limits = readLimits(options.limits);
  const monitor = new SecurityMonitor(logger, readHook(options.onEvent));
  const unreport =
    metricsFor('security', options.metrics, settings)?.pull(
      {
        name: 'security_events_total',
        help: 'Security decisions by reason (sql_injection, deny_list, banned, invalid_input, …) and action (blocked, logged, banned, rejected).',
        type: 'counter',
        labelNames: ['reason', 'action'],
      },
      (emit) => {
        for (const [key, count] of Object.entries(monitor.counters())) {
          const at = key.lastIndexOf(':');
          emit([key.slice(0, at), key.slice(at + 1)], count);
        }
      },
    ) ?? (() => undefined);
  const pipeline = new SecurityPipeline({
    monitor,
    headers: headersMiddleware(
      readHelmet(options.helmet),
      readHeaderValue('cacheControl', options.cacheControl ?? 'no-store'),
      readHeaderValue('permissionsPolicy', options.permissionsPolicy ?? DEFAULT_PERMISSIONS_POLICY),
    ),
    cors:
      options.cors === false
        ? undefined
        : corsMiddleware({
            origins: settings.security.corsOrigins,
            credentials: settings.security.corsAllowCredentials,
            ...readOptions<CorsOptions>('security.cors', options.cors, CORS_KNOWN),
          }),
    limits,
    pollution: readPollution(options.parameterPollution ?? 'last'),
    allowArrays: new Set(readStrings('allowArrays', options.allowArrays ?? [])),
    parse: readJson(options.json)
      ? json({ limit: limits.bodySize, type: ['application/json', 'application/*+json'], strict: true })
      : undefined,
    threats: options.threats === false ? undefined : readThreats(options.threats ?? {}, settings, logger),
  });
  const middleware = function securityMiddleware(req, res, next) {
    pipeline.handle(req, res, next);
  } as SecurityMiddleware;
  middleware.stats = () => pipeline.stats();
  middleware.unban = (ip: string) => pipeline.unban(ip);
  middleware.close = () => {
    unreport();
    return pipeline.close();
  };
  return middleware;
}
