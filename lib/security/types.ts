import type { Metrics } from '../metrics/index.js';
import type { RequestHandler } from 'express';
import type { Logger } from '../logging/index.js';
import type { Settings } from '../config/index.js';
import type { Cluster, Redis } from '../redis/index.js';
import type { CorsOptions, HelmetOptions } from './headers.js';
import type { InputLimits, ParameterPollution } from './input.js';
import type { SecurityCounters, SecurityEvent } from './monitor.js';

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
  /**
   * Where `security_events_total{reason,action}` is reported (read from the counters at scrape
   * time); `false`: nowhere. Default: `getMetrics()`.
   */
  metrics?: Metrics | false;
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
