import type { NextFunction, Request, Response } from 'express';
import type { HelmetOptions } from 'helmet';
import helmet from 'helmet';
import cors from 'cors';
import type { CorsOptions as CorsPackageOptions } from 'cors';
import { ConfigError } from '../errors/index.js';

export type { HelmetOptions } from 'helmet';

/**
 * helmet's v8 defaults, tightened for a JSON API that serves health data: a CSP that lets a
 * response load and frame nothing (an API renders no HTML), frames refused outright, no referrer.
 * Four headers that only ever acted on HTML pages in browsers of the past are left out (OWASP's
 * REST Security Cheat Sheet lists none of them): `X-XSS-Protection: 0` (it switches off an XSS
 * filter no browser has shipped since 2020), `X-Download-Options` (Internet Explorer 8),
 * `X-DNS-Prefetch-Control` (links in a page) and `Origin-Agent-Cluster` (how a page's documents
 * share a process). Each key can be overridden with helmet's own options through
 * `security({ helmet })`, `true` bringing one of those four back.
 */
export const API_HELMET_PRESET: HelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
    },
  },
  strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
  xFrameOptions: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
  crossOriginResourcePolicy: { policy: 'same-origin' },
  xXssProtection: false,
  xDownloadOptions: false,
  xDnsPrefetchControl: false,
  originAgentCluster: false,
};

/**
 * Browser features an API response never needs; sent as `Permissions-Policy`. (No
 * `interest-cohort`: FLoC is gone, and browsers now report the name as an unrecognised feature;
 * `browsing-topics` is its successor.)
 */
export const DEFAULT_PERMISSIONS_POLICY =
  'accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), ' +
  'magnetometer=(), microphone=(), midi=(), payment=(), publickey-credentials-get=(), usb=(), ' +
  'xr-spatial-tracking=(), browsing-topics=()';

type Middleware = (req: Request, res: Response, next: NextFunction) => void;

/**
 * The preset under the application's options, key by key. A CSP given as options replaces the
 * preset's directives without bringing back helmet's web-page defaults (`useDefaults: false`
 * unless the application says otherwise).
 */
function withPreset(overrides: Readonly<HelmetOptions>): HelmetOptions {
  const csp = (overrides as { contentSecurityPolicy?: unknown }).contentSecurityPolicy;
  const merged = { ...API_HELMET_PRESET, ...overrides } as Record<string, unknown>;
  if (typeof csp === 'object' && csp !== null) merged.contentSecurityPolicy = { useDefaults: false, ...csp };
  return merged;
}

/**
 * helmet with the preset under the application's overrides (`false` for a key turns that header
 * off, as in helmet), plus `Cache-Control` and `Permissions-Policy`, which helmet does not set.
 */
export function headersMiddleware(
  overrides: Readonly<HelmetOptions> | false,
  cacheControl: string | false,
  permissionsPolicy: string | false,
): Middleware | undefined {
  const base = overrides === false ? undefined : helmet(withPreset(overrides));
  if (cacheControl !== false && /[\r\n]/.test(cacheControl))
    throw ConfigError.option('security', 'cacheControl', 'a header value', cacheControl);
  if (permissionsPolicy !== false && /[\r\n]/.test(permissionsPolicy))
    throw ConfigError.option('security', 'permissionsPolicy', 'a header value', permissionsPolicy);
  if (base === undefined && cacheControl === false && permissionsPolicy === false) return undefined;
  const fixed = base === undefined || dynamicCsp(overrides) ? undefined : headersOf(base);
  if (fixed !== undefined) {
    // helmet's answer does not depend on the request: computed once, replayed per request.
    const { set, removed } = fixed;
    return function securityHeaders(_req, res, next) {
      if (cacheControl !== false) res.setHeader('Cache-Control', cacheControl);
      if (permissionsPolicy !== false) res.setHeader('Permissions-Policy', permissionsPolicy);
      for (let i = 0; i < set.length; i += 2) res.setHeader(set[i] as string, set[i + 1] as string);
      for (const name of removed) res.removeHeader(name);
      next();
    };
  }
  return function securityHeaders(req, res, next) {
    // Set before the route runs, so a route that wants caching can still say so.
    if (cacheControl !== false) res.setHeader('Cache-Control', cacheControl);
    if (permissionsPolicy !== false) res.setHeader('Permissions-Policy', permissionsPolicy);
    if (base === undefined) next();
    else base(req, res, next);
  };
}

/** Whether a CSP directive is a function (a per-request nonce): then helmet must run per request. */
function dynamicCsp(overrides: Readonly<HelmetOptions> | false): boolean {
  const csp =
    overrides === false
      ? undefined
      : (overrides as { contentSecurityPolicy?: unknown }).contentSecurityPolicy;
  if (typeof csp !== 'object' || csp === null) return false;
  const directives = (csp as { directives?: Record<string, unknown> }).directives ?? {};
  return Object.values(directives).some(
    (v) => typeof v === 'function' || (Array.isArray(v) && v.some((x) => typeof x === 'function')),
  );
}

/**
 * The headers helmet sets and removes, found by running it once against a recording response;
 * undefined when it did not finish synchronously (then it runs per request as before).
 */
function headersOf(base: Middleware): { set: string[]; removed: string[] } | undefined {
  const set: string[] = [];
  const removed: string[] = [];
  const res = {
    setHeader(name: string, value: unknown) {
      set.push(name, String(value));
      return res;
    },
    removeHeader(name: string) {
      removed.push(name);
    },
    getHeader: () => undefined,
  };
  const outcome = { done: false, failed: false };
  base({ headers: {}, method: 'GET', url: '/' } as Request, res as unknown as Response, (err?: unknown) => {
    outcome.done = true;
    outcome.failed = err !== undefined;
  });
  return outcome.done && !outcome.failed ? { set, removed } : undefined;
}

/** CORS as `security({ cors })` takes it; the defaults come from `SECURITY_CORS_*`. */
export interface CorsOptions {
  /**
   * Allowed origins: exact (`https://app.example.com`), a wildcard host
   * (`https://*.example.com`, one or more labels), a RegExp, or `'*'` for any origin (refused
   * with credentials). Default `SECURITY_CORS_ORIGINS`.
   */
  origins?: readonly (string | RegExp)[];
  /** Send `Access-Control-Allow-Credentials: true`. Default `SECURITY_CORS_ALLOW_CREDENTIALS`. */
  credentials?: boolean;
  /** Default `GET, HEAD, PUT, PATCH, POST, DELETE`. */
  methods?: readonly string[];
  /** Request headers a browser may send. Default Authorization, Content-Type, Accept, X-Request-Id, traceparent, tracestate, If-Match, If-None-Match. */
  allowedHeaders?: readonly string[];
  /** Response headers scripts may read. Default X-Request-Id, RateLimit, RateLimit-Policy, Retry-After, ETag, Location. */
  exposedHeaders?: readonly string[];
  /** Seconds a browser may cache a preflight. Default 600. */
  maxAge?: number;
}

const CORS_DEFAULTS = {
  methods: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'],
  allowedHeaders: [
    'Authorization',
    'Content-Type',
    'Accept',
    'X-Request-Id',
    'traceparent',
    'tracestate',
    'If-Match',
    'If-None-Match',
  ],
  exposedHeaders: ['X-Request-Id', 'RateLimit', 'RateLimit-Policy', 'Retry-After', 'ETag', 'Location'],
  maxAge: 600,
};

/** The cors package, configured once; origins compiled to a Set lookup plus patterns. */
export function corsMiddleware(options: Readonly<CorsOptions>): Middleware {
  const origins = options.origins ?? [];
  const credentials = options.credentials ?? false;
  if (!Array.isArray(origins))
    throw ConfigError.option('security', 'cors.origins', 'an array of origins, patterns or RegExps', origins);
  const any = origins.includes('*');
  if (any && credentials)
    throw new ConfigError(
      "security: CORS origin '*' cannot be combined with credentials (browsers refuse it, and reflecting any origin with credentials lets every site read your users' data). List the origins in SECURITY_CORS_ORIGINS, or set SECURITY_CORS_ALLOW_CREDENTIALS=false",
      [
        {
          name: 'SECURITY_CORS_ORIGINS',
          expected: 'explicit origins when credentials are allowed',
          received: "'*'",
        },
      ],
    );
  const exact = new Set<string>();
  const patterns: RegExp[] = [];
  origins.forEach((entry: unknown, index) => {
    if (entry instanceof RegExp) patterns.push(entry);
    else if (entry === '*') return;
    else if (typeof entry === 'string' && /^https?:\/\/\*\.[a-z0-9.-]+(?::\d+)?$/i.test(entry)) {
      const [scheme = '', rest = ''] = entry.split('://*.');
      patterns.push(new RegExp(`^${scheme}://(?:[a-z0-9-]+\\.)+${escapeRegExp(rest)}$`, 'i'));
    } else if (typeof entry === 'string' && /^https?:\/\/[a-z0-9.-]+(?::\d+)?$/i.test(entry)) {
      exact.add(entry.toLowerCase());
    } else if (typeof entry === 'string' && entry === 'null') {
      throw ConfigError.option(
        'security',
        `cors.origins[${index}]`,
        "a real origin ('null' is what sandboxed pages and files send)",
        entry,
      );
    } else {
      throw ConfigError.option(
        'security',
        `cors.origins[${index}]`,
        "an origin such as https://app.example.com, a wildcard host such as https://*.example.com, a RegExp, or '*'",
        entry,
      );
    }
  });
  const allowed = (origin: string) => exact.has(origin.toLowerCase()) || patterns.some((p) => p.test(origin));
  const config: CorsPackageOptions = {
    origin: any
      ? '*'
      : (origin, callback) => {
          callback(null, origin !== undefined && allowed(origin));
        },
    credentials,
    methods: [...(options.methods ?? CORS_DEFAULTS.methods)],
    allowedHeaders: [...(options.allowedHeaders ?? CORS_DEFAULTS.allowedHeaders)],
    exposedHeaders: [...(options.exposedHeaders ?? CORS_DEFAULTS.exposedHeaders)],
    maxAge: options.maxAge ?? CORS_DEFAULTS.maxAge,
  };
  const handler = cors(config);
  return function corsHeaders(req, res, next) {
    // Same-origin and non-browser requests carry no Origin: nothing to decide.
    if (req.headers.origin === undefined) next();
    else handler(req, res, next);
  };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
