/**
 * security() CORS: exact origins, wildcard hosts and RegExps are allowed and echoed; anything else
 * gets no CORS header at all; preflights are answered; `'*'` with credentials and malformed origins
 * are refused when the middleware is made, from the settings as from the options.
 */
import type { Express } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import { eachExpress, type ExpressVariant } from '../support/express';
import { configError, PROBE_PATH, secure, secureApp, settings, silent } from './support';

const EXPOSED = 'X-Request-Id,RateLimit,RateLimit-Policy,Retry-After,ETag,Location';
const METHODS = 'GET,HEAD,PUT,PATCH,POST,DELETE';
const ALLOWED_HEADERS =
  'Authorization,Content-Type,Accept,X-Request-Id,traceparent,tracestate,If-Match,If-None-Match';

/** The response's CORS headers (and Vary), by lower-case name. */
function corsHeaders(res: request.Response): Record<string, string> {
  return Object.fromEntries(
    Object.entries(res.headers as Record<string, string>).filter(
      ([name]) => name.startsWith('access-control-') || name === 'vary',
    ),
  );
}

const ORIGINS: (string | RegExp)[] = [
  'https://app.example.com',
  'http://localhost:3000',
  'https://*.example.org',
  /^https:\/\/[a-z]+\.clinic\.test$/,
];

function corsApp(variant: ExpressVariant, cors: core.CorsOptions | false): Express {
  return secureApp(variant, secure({ cors, threats: { ban: false } }));
}

describe.each(eachExpress)('%s: CORS', (_name, variant) => {
  const app = corsApp(variant, { origins: ORIGINS, credentials: true });

  const allowedHeaders = (origin: string) => ({
    'access-control-allow-origin': origin,
    'access-control-allow-credentials': 'true',
    'access-control-expose-headers': EXPOSED,
    vary: 'Origin',
  });

  it.each([
    'https://app.example.com',
    'http://localhost:3000',
    'https://a.example.org',
    'https://a.b.example.org',
    'https://portal.clinic.test',
  ])('allows %s: origin echoed, credentials, Vary: Origin, exposed headers', async (origin) => {
    const res = await request(app).get('/api/v1/patients').set('Origin', origin);
    expect(res.status).toBe(200);
    expect(corsHeaders(res)).toEqual(allowedHeaders(origin));
  });

  it('matches exact origins without regard to case, and echoes what was sent', async () => {
    const res = await request(app).get('/api/v1/patients').set('Origin', 'HTTPS://App.Example.com');
    expect(corsHeaders(res)).toEqual(allowedHeaders('HTTPS://App.Example.com'));
  });

  it.each([
    ['another site', 'https://evil.example.net'],
    ['the wildcard suffix on another domain', 'https://example.org.evil.com'],
    ['the wildcard host over http', 'http://a.example.org'],
    ['the bare wildcard domain (a wildcard needs a label)', 'https://example.org'],
    ['a lookalike ending', 'https://a.badexample.org'],
    ['an exact origin on another port', 'https://app.example.com:8443'],
    ['an exact origin over http', 'http://app.example.com'],
    ['a RegExp miss', 'https://portal.clinic.test.evil.com'],
    ["the 'null' origin of sandboxed pages", 'null'],
  ])('refuses %s (%s): no CORS header, the request itself still served', async (_what, origin) => {
    const res = await request(app).get('/api/v1/patients').set('Origin', origin);
    expect(res.status).toBe(200);
    expect(corsHeaders(res)).toEqual({});
  });

  it('answers a preflight with 204, methods, headers and max-age, without reaching the route', async () => {
    const res = await request(app)
      .options('/api/v1/patients/17')
      .set('Origin', 'https://app.example.com')
      .set('Access-Control-Request-Method', 'PUT')
      .set('Access-Control-Request-Headers', 'authorization,content-type,if-match');
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(corsHeaders(res)).toEqual({
      ...allowedHeaders('https://app.example.com'),
      'access-control-allow-methods': METHODS,
      'access-control-allow-headers': ALLOWED_HEADERS,
      'access-control-max-age': '600',
    });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('gives a preflight from a refused origin no CORS header', async () => {
    const res = await request(app)
      .options('/api/v1/patients/17')
      .set('Origin', 'https://evil.example.net')
      .set('Access-Control-Request-Method', 'DELETE');
    expect(corsHeaders(res)).toEqual({});
  });

  it('takes methods, allowed and exposed headers and max-age from the options', async () => {
    const custom = corsApp(variant, {
      origins: ['https://app.example.com'],
      methods: ['GET', 'POST'],
      allowedHeaders: ['Authorization'],
      exposedHeaders: ['X-Request-Id'],
      maxAge: 60,
    });
    const res = await request(custom)
      .options('/x')
      .set('Origin', 'https://app.example.com')
      .set('Access-Control-Request-Method', 'POST');
    expect(res.status).toBe(204);
    expect(corsHeaders(res)).toEqual({
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-expose-headers': 'X-Request-Id',
      'access-control-allow-methods': 'GET,POST',
      'access-control-allow-headers': 'Authorization',
      'access-control-max-age': '60',
      vary: 'Origin',
    });
  });

  it('serves a request without Origin with no CORS header', async () => {
    const res = await request(app).get('/api/v1/patients');
    expect(res.status).toBe(200);
    expect(corsHeaders(res)).toEqual({});
  });

  it('puts CORS headers on a refusal for an allowed origin, so the page can read the error', async () => {
    const res = await request(app).get(PROBE_PATH).set('Origin', 'https://app.example.com');
    expect(res.status).toBe(403);
    expect(corsHeaders(res)).toEqual(allowedHeaders('https://app.example.com'));
  });

  it("'*' without credentials: Access-Control-Allow-Origin: * for any origin, no credentials", async () => {
    const any = corsApp(variant, { origins: ['*'], credentials: false });
    const res = await request(any).get('/x').set('Origin', 'https://anyone.example.net');
    expect(res.status).toBe(200);
    expect(corsHeaders(res)).toEqual({
      'access-control-allow-origin': '*',
      'access-control-expose-headers': EXPOSED,
    });
  });

  it('takes the origins and credentials from the settings when `cors` is not given', async () => {
    const fromSettings = secureApp(
      variant,
      core.security({
        logger: silent,
        threats: false,
        settings: core.loadSettings({
          NODE_ENV: 'test',
          SECURITY_CORS_ORIGINS: 'https://app.example.com,https://*.example.org',
          SECURITY_CORS_ALLOW_CREDENTIALS: 'false',
        }),
      }),
    );
    const allowed = await request(fromSettings).get('/x').set('Origin', 'https://a.example.org');
    expect(corsHeaders(allowed)).toEqual({
      'access-control-allow-origin': 'https://a.example.org',
      'access-control-expose-headers': EXPOSED,
      vary: 'Origin',
    });
    const refused = await request(fromSettings).get('/x').set('Origin', 'https://evil.example.net');
    expect(corsHeaders(refused)).toEqual({});
  });

  it('cors: false sends no CORS header even to a listed origin of the settings', async () => {
    const off = corsApp(variant, false);
    const res = await request(off).get('/x').set('Origin', 'https://app.example.com');
    expect(corsHeaders(res)).toEqual({});
  });
});

describe('CORS configuration errors', () => {
  const CREDENTIALS_MESSAGE = "security: CORS origin '*' cannot be combined with credentials";

  it("'*' with credentials from the settings is a ConfigError naming SECURITY_CORS_ORIGINS", () => {
    const loaded = core.loadSettings({
      NODE_ENV: 'test',
      SECURITY_CORS_ORIGINS: '*',
      SECURITY_CORS_ALLOW_CREDENTIALS: 'true',
    });
    const error = configError(() => core.security({ settings: loaded, logger: silent, threats: false }));
    expect(error.message).toContain(CREDENTIALS_MESSAGE);
    expect(error.message).toContain('SECURITY_CORS_ALLOW_CREDENTIALS=false');
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.issues).toEqual([
      {
        name: 'SECURITY_CORS_ORIGINS',
        expected: 'explicit origins when credentials are allowed',
        received: "'*'",
      },
    ]);
  });

  it("'*' with credentials from the options is the same ConfigError", () => {
    const error = configError(() =>
      secure({ cors: { origins: ['https://a.example.com', '*'], credentials: true } }),
    );
    expect(error.message).toContain(CREDENTIALS_MESSAGE);
  });

  it("'*' in the settings with credentials turned off in the options is fine", () => {
    const loaded = core.loadSettings({
      NODE_ENV: 'test',
      SECURITY_CORS_ORIGINS: '*',
      SECURITY_CORS_ALLOW_CREDENTIALS: 'true',
    });
    expect(() =>
      core.security({ settings: loaded, logger: silent, threats: false, cors: { credentials: false } }),
    ).not.toThrow();
  });

  it.each([
    ['null', 1, "a real origin ('null' is what sandboxed pages and files send)"],
    ['example.com', 1, 'an origin such as https://app.example.com'],
    ['https://example.com/', 1, 'an origin such as https://app.example.com'],
    ['ftp://files.example.com', 1, 'an origin such as https://app.example.com'],
    ['https://*example.com', 1, 'an origin such as https://app.example.com'],
    ['', 1, 'an origin such as https://app.example.com'],
  ])('refuses the origin entry %j, naming cors.origins[%i]', (entry, index, expected) => {
    const error = configError(() => secure({ cors: { origins: ['https://ok.example.com', entry] } }));
    expect(error.message).toContain(`security: cors.origins[${index}] must be ${expected}`);
    expect(error.issues).toEqual([expect.objectContaining({ name: `cors.origins[${index}]` })]);
  });

  it('refuses origins that are not an array, and a non-string entry', () => {
    expect(
      configError(() => secure({ cors: { origins: 'https://a.example.com' as unknown as string[] } }))
        .message,
    ).toContain('security: cors.origins must be an array of origins, patterns or RegExps');
    expect(configError(() => secure({ cors: { origins: [42 as unknown as string] } })).message).toContain(
      'security: cors.origins[0] must be an origin',
    );
  });

  it('refuses an unknown cors option with a did-you-mean', () => {
    const error = configError(() =>
      secure({ cors: { origin: ['https://a.example.com'] } as core.CorsOptions }),
    );
    expect(error.message).toContain('security.cors: unknown option "origin". Did you mean "origins"?');
  });

  it('the settings the suites use are what they say', () => {
    expect(settings.security).toEqual({
      corsOrigins: ['https://app.example.com'],
      corsAllowCredentials: false,
    });
  });
});
