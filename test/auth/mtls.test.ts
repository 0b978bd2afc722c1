import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import request from 'supertest';
import * as core from '../../lib/index';
import type { MtlsOptions, MtlsServerOptions } from '../../lib/auth/mtls/index';
import {
  certificateThumbprint,
  clientCertificate,
  clientCertificateThumbprint,
  createMtlsServer,
  mtls,
} from '../../lib/auth/mtls/index';
import type { HttpsGetOptions, HttpsReply, KeyPair, TestPki } from '../support/certs';
import { createTestPki, httpsGet, opensslFingerprint, opensslThumbprint } from '../support/certs';
import type { CapturedLogger } from '../support/logs';
import { captureLogger } from '../support/logs';
import { eachExpress } from '../support/express';

const settings = core.loadSettings({ NODE_ENV: 'test' });
const BILLING = 'spiffe://caduceus/billing';

let pki: TestPki;
let billingThumbprint: string;
let billingFingerprint: string;

beforeAll(async () => {
  pki = await createTestPki();
  billingThumbprint = await opensslThumbprint(pki.client.certPath);
  billingFingerprint = await opensslFingerprint(pki.client.certPath);
});

afterAll(async () => {
  await pki.cleanup();
});

/** One HTTPS GET with node's client, as a service would call another. */
function call(port: number, path: string, options: HttpsGetOptions = {}): Promise<HttpsReply> {
  return httpsGet(pki.ca.cert, port, path, options);
}

/** What routes answer: who the caller is, as mtls() and the request context see it. */
function whoami(req: Request, res: Response): void {
  const ctx = core.getContext(req);
  res.json({
    user: req.user ?? null,
    context: { userId: ctx?.userId ?? null, roles: ctx?.roles ?? null },
    thumbprint: clientCertificateThumbprint(req) ?? null,
    source: clientCertificate(req)?.source ?? null,
  });
}

async function until(check: () => boolean, ms = 1000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

function events(captured: CapturedLogger, name: string): Record<string, unknown>[] {
  return captured.lines().filter((l) => l.security_event === name);
}

describe.each(eachExpress)('mTLS on %s', (_name, { express }) => {
  type App = ReturnType<typeof express>;
  const servers: https.Server[] = [];

  afterEach(async () => {
    await Promise.all(
      servers.splice(0).map(
        (server) =>
          new Promise((resolve) => {
            server.closeAllConnections();
            server.close(resolve);
          }),
      ),
    );
  });

  function app(setup: (app: App) => void): App {
    const a = express();
    a.use(core.requestContext());
    setup(a);
    a.use(core.notFound());
    a.use(core.errors({ logger: captureLogger('errors').logger, settings }));
    return a;
  }

  async function serve(
    setup: (app: App, logger: core.Logger) => void,
    options: Partial<MtlsServerOptions> = {},
  ): Promise<{ port: number; log: CapturedLogger; serverLog: CapturedLogger }> {
    const log = captureLogger('mtls');
    const serverLog = captureLogger('mtls-server');
    const server = createMtlsServer(
      app((a) => {
        setup(a, log.logger);
      }),
      {
        cert: pki.server.cert,
        key: pki.server.key,
        ca: pki.ca.cert,
        crl: pki.crl,
        logger: serverLog.logger,
        ...options,
      },
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as AddressInfo).port, log, serverLog };
  }

  const billingRoles: MtlsOptions['roles'] = { [BILLING]: ['billing', 'service'] };

  describe('rejectUnauthorized: true (default) — the handshake refuses', () => {
    it('admits a verified client: identity from the URI SAN, roles, request context', async () => {
      const { port, log } = await serve((a, logger) => {
        a.get('/whoami', mtls({ roles: billingRoles, logger }), whoami);
        a.get('/billing', mtls({ roles: billingRoles, logger }), (req, res, next) => {
          if (req.user?.roles.includes('billing') !== true) {
            next(new core.ForbiddenError());
            return;
          }
          res.json({ ok: true });
        });
      });
      const res = await call(port, '/whoami', { as: pki.client });
      expect(res.status).toBe(200);
      expect(res.body.user).toEqual({
        id: BILLING,
        roles: ['billing', 'service'],
        scopes: [],
        claims: {},
        via: 'certificate',
      });
      expect(res.body.context).toEqual({ userId: BILLING, roles: ['billing', 'service'] });
      expect(res.body.source).toBe('tls');
      expect((await call(port, '/billing', { as: pki.client })).status).toBe(200);

      const admitted = events(log, 'mtls_admitted');
      expect(admitted.length).toBeGreaterThanOrEqual(1);
      expect(admitted[0]).toMatchObject({
        identity: BILLING,
        fingerprint: billingFingerprint.replaceAll(':', '').toLowerCase(),
        source: 'tls',
      });
      expect(log.raw()).not.toContain('billing-service'); // the subject CN is not logged
    });

    it.each([
      ['a certificate from an unknown CA', 'foreignClient', 'untrusted'],
      ['an expired certificate', 'expiredClient', 'expired'],
      ['a certificate revoked by the CRL', 'revokedClient', 'revoked'],
      ['no certificate', undefined, 'missing'],
    ] as const)('refuses %s: the request fails, the refusal is logged', async (_what, who, reason) => {
      const { port, serverLog } = await serve((a, logger) => a.get('/whoami', mtls({ logger }), whoami));
      await expect(call(port, '/whoami', { as: who === undefined ? undefined : pki[who] })).rejects.toThrow();
      await until(() => events(serverLog, 'mtls_handshake_refused').length > 0);
      expect(events(serverLog, 'mtls_handshake_refused')).toEqual([
        expect.objectContaining({ reason, severity: 'medium' }),
      ]);
      expect(serverLog.raw()).not.toMatch(/spiffe|-service/);
    });
  });

  describe('rejectUnauthorized: false — mtls() answers in the error envelope', () => {
    const lenient = { rejectUnauthorized: false };

    // prettier-ignore
    it.each([
      ['a certificate from an unknown CA', 'foreignClient', 'CERTIFICATE_INVALID', 'Client certificate is not trusted', 'untrusted'],
      ['an expired certificate', 'expiredClient', 'CERTIFICATE_INVALID', 'Client certificate has expired', 'expired'],
      ['a revoked certificate', 'revokedClient', 'CERTIFICATE_INVALID', 'Client certificate has been revoked', 'revoked'],
      ['no certificate', undefined, 'CERTIFICATE_REQUIRED', 'Client certificate required', 'missing'],
    ] as const)('%s → 401 %s', async (_what, who, code, message, reason) => {
      const { port, log } = await serve((a, logger) => a.get('/whoami', mtls({ logger }), whoami), lenient);
      const res = await call(port, '/whoami', { as: who === undefined ? undefined : pki[who] });
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ success: false, error_code: code, error: message });
      const refused = events(log, 'mtls_refused');
      expect(refused).toEqual([expect.objectContaining({ reason, severity: 'medium' })]);
      // Refusals carry the reason, never the subject or SAN of a certificate we did not accept.
      expect(log.raw()).not.toMatch(/spiffe|-service/);
    });

    it('a CA without a CRL, when CRLs are checked → 401: revocation status could not be checked', async () => {
      const { port } = await serve((a, logger) => a.get('/whoami', mtls({ logger }), whoami), {
        ...lenient,
        ca: [pki.ca.cert, pki.otherCa.cert],
      });
      const res = await call(port, '/whoami', { as: pki.foreignClient });
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({
        error_code: 'CERTIFICATE_INVALID',
        error: 'Client certificate revocation status could not be checked',
      });
      expect((await call(port, '/whoami', { as: pki.client })).status).toBe(200);
    });

    it('admits a verified client and gives routes its certificate thumbprint (RFC 8705 x5t#S256)', async () => {
      const { port } = await serve((a, logger) => {
        a.get('/whoami', mtls({ logger }), whoami);
        a.get('/no-mtls', whoami);
      }, lenient);
      const res = await call(port, '/whoami', { as: pki.client });
      expect(res.status).toBe(200);
      expect(res.body.user).toMatchObject({ id: BILLING, roles: [], via: 'certificate' });
      expect(res.body.thumbprint).toBe(billingThumbprint);
      // Without mtls(): the thumbprint of the verified connection certificate, or nothing.
      expect((await call(port, '/no-mtls', { as: pki.client })).body.thumbprint).toBe(billingThumbprint);
      expect((await call(port, '/no-mtls', { as: pki.foreignClient })).body.thumbprint).toBeNull();
      expect((await call(port, '/no-mtls')).body.thumbprint).toBeNull();
    });

    it('falls back to the DNS SAN, then the subject CN; identify() overrides', async () => {
      const { port } = await serve((a, logger) => {
        a.get('/whoami', mtls({ logger }), whoami);
        a.get(
          '/custom',
          mtls({
            logger,
            identify: (cert) =>
              cert.commonName === 'lab-gateway' ? { id: 'lab', roles: ['lab-results'] } : undefined,
          }),
          whoami,
        );
      }, lenient);
      expect((await call(port, '/whoami', { as: pki.dnsClient })).body.user.id).toBe('reports.internal');
      expect((await call(port, '/whoami', { as: pki.cnClient })).body.user.id).toBe('lab-gateway');
      const custom = await call(port, '/custom', { as: pki.cnClient });
      expect(custom.body.user).toMatchObject({ id: 'lab', roles: ['lab-results'] });
      // identify() returning undefined refuses a verified certificate.
      const refused = await call(port, '/custom', { as: pki.client });
      expect(refused.status).toBe(403);
      expect(refused.body.error_code).toBe('FORBIDDEN');
    });

    it('allow-lists: identity and pinned SHA-256 fingerprints; others get 403 FORBIDDEN', async () => {
      const { port, log } = await serve((a, logger) => {
        a.get('/other-only', mtls({ logger, allow: ['spiffe://caduceus/other'] }), whoami);
        a.get('/billing-only', mtls({ logger, allow: [BILLING] }), whoami);
        // Colons and case do not matter; a pinned certificate gets in even if its identity is not listed.
        a.get(
          '/pinned',
          mtls({
            logger,
            allow: ['spiffe://caduceus/other'],
            fingerprints: [billingFingerprint.toLowerCase()],
          }),
          whoami,
        );
        a.get(
          '/pinned-bare',
          mtls({ logger, fingerprints: [billingFingerprint.replaceAll(':', '')] }),
          whoami,
        );
        a.get('/pinned-other', mtls({ logger, fingerprints: ['ab'.repeat(32)] }), whoami);
      }, lenient);
      const forbidden = await call(port, '/other-only', { as: pki.client });
      expect(forbidden.status).toBe(403);
      expect(forbidden.body).toMatchObject({
        error_code: 'FORBIDDEN',
        error: 'Client certificate is not allowed',
      });
      expect((await call(port, '/billing-only', { as: pki.client })).status).toBe(200);
      expect((await call(port, '/pinned', { as: pki.client })).status).toBe(200);
      expect((await call(port, '/pinned-bare', { as: pki.client })).status).toBe(200);
      expect((await call(port, '/pinned-other', { as: pki.client })).status).toBe(403);
      expect((await call(port, '/billing-only', { as: pki.dnsClient })).status).toBe(403);
      const logged = events(log, 'mtls_forbidden');
      expect(logged).toHaveLength(3);
      expect(logged[0]).toMatchObject({
        identity: BILLING,
        fingerprint: billingFingerprint.replaceAll(':', '').toLowerCase(),
      });
    });

    it('required: false lets requests without a certificate through, but not bad certificates', async () => {
      const { port } = await serve((a, logger) => {
        a.get('/optional', mtls({ logger, required: false }), whoami);
      }, lenient);
      const anonymous = await call(port, '/optional');
      expect(anonymous.status).toBe(200);
      expect(anonymous.body).toMatchObject({ user: null, thumbprint: null, source: null });
      expect((await call(port, '/optional', { as: pki.client })).body.user.id).toBe(BILLING);
      const bad = await call(port, '/optional', { as: pki.expiredClient });
      expect(bad.status).toBe(401);
      expect(bad.body.error_code).toBe('CERTIFICATE_INVALID');
    });

    it('keeps a user a token already set, and still records the certificate', async () => {
      const { port } = await serve((a, logger) => {
        a.get(
          '/both',
          (req: Request, _res: Response, next: NextFunction) => {
            req.user = {
              id: 'u-1',
              email: undefined,
              roles: ['patient'],
              scopes: [],
              claims: {},
              via: 'token',
            };
            next();
          },
          mtls({ logger }),
          whoami,
        );
      }, lenient);
      const res = await call(port, '/both', { as: pki.client });
      expect(res.body.user).toMatchObject({ id: 'u-1', via: 'token' });
      expect(res.body).toMatchObject({ source: 'tls', thumbprint: billingThumbprint });
    });

    it('identifies a keep-alive connection once and serves its next requests from the cache', async () => {
      const identify = jest.fn(() => ({ id: 'svc' }));
      const { port, log } = await serve(
        (a, logger) => a.get('/whoami', mtls({ logger, identify }), whoami),
        lenient,
      );
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < 3; i++) {
          const res = await call(port, '/whoami', { as: pki.client, agent });
          expect(res.body.user.id).toBe('svc');
        }
      } finally {
        agent.destroy();
      }
      expect(identify).toHaveBeenCalledTimes(1);
      expect(events(log, 'mtls_admitted')).toHaveLength(1);
    });

    it('passes errors of identify() to next() (500), never throws', async () => {
      const { port } = await serve((a, logger) => {
        a.get(
          '/boom',
          mtls({
            logger,
            identify: () => {
              throw new Error('mapping table unavailable');
            },
          }),
          whoami,
        );
        // A mapping that returns nonsense is a bug to surface, not an identity to admit.
        a.get('/bad', mtls({ logger, identify: () => ({ id: 'svc', roles: 'admin' }) as never }), whoami);
      }, lenient);
      for (const path of ['/boom', '/bad']) {
        const res = await call(port, path, { as: pki.client });
        expect(res.status).toBe(500);
        expect(res.body.error_code).toBe('INTERNAL_ERROR');
      }
    });
  });

  describe('a certificate forwarded by a proxy', () => {
    const HEADER = 'x-client-cert';
    const forwarded = (trustedProxies: string[]) => ({ header: HEADER, trustedProxies, ca: pki.ca.cert });
    const escaped = (pem: string) => encodeURIComponent(pem); // nginx $ssl_client_escaped_cert

    function forwardingApp(options: Partial<MtlsOptions>, trustedProxies = ['127.0.0.1', '::1']) {
      const log = captureLogger('mtls');
      const a = app((x) => {
        x.get(
          '/whoami',
          mtls({ logger: log.logger, forwarded: forwarded(trustedProxies), ...options }),
          whoami,
        );
      });
      return { app: a, log };
    }

    it('is admitted from a trusted proxy (URL-encoded PEM, as nginx sends it)', async () => {
      const { app: a, log } = forwardingApp({ roles: billingRoles });
      const res = await request(a).get('/whoami').set(HEADER, escaped(pki.client.cert)).expect(200);
      expect(res.body.user).toMatchObject({ id: BILLING, roles: ['billing', 'service'], via: 'certificate' });
      expect(res.body).toMatchObject({ source: 'forwarded', thumbprint: billingThumbprint });
      expect(events(log, 'mtls_admitted')[0]).toMatchObject({ identity: BILLING, source: 'forwarded' });
    });

    it('is admitted from a trusted CIDR, IPv4 and IPv6', async () => {
      const v4 = forwardingApp({}, ['127.0.0.0/8']).app;
      await request(v4).get('/whoami').set(HEADER, escaped(pki.client.cert)).expect(200);
      const v6 = http.createServer(forwardingApp({}, ['::1/128']).app);
      await new Promise<void>((resolve) => v6.listen(0, '::1', resolve));
      try {
        const status = await new Promise<number | undefined>((resolve, reject) => {
          http
            .get(
              {
                host: '::1',
                port: (v6.address() as AddressInfo).port,
                path: '/whoami',
                headers: { [HEADER]: escaped(pki.client.cert) },
              },
              (res) => {
                res.resume();
                resolve(res.statusCode);
              },
            )
            .on('error', reject);
        });
        expect(status).toBe(200);
      } finally {
        v6.close();
      }
    });

    it('accepts Envoy XFCC, from the last element, with its Hash checked', async () => {
      const xfcc = (pair: KeyPair, hash = new X509Certificate(pair.cert).fingerprint256) =>
        `By=spiffe://caduceus/api;Hash=${hash.replaceAll(':', '').toLowerCase()};` +
        `Cert="${escaped(pair.cert)}";Subject="CN=x,O=y";URI=spiffe://caduceus/billing`;
      const { app: a } = forwardingApp({}, ['127.0.0.1', '::ffff:127.0.0.1']);
      const ok = await request(a).get('/whoami').set(HEADER, xfcc(pki.client)).expect(200);
      expect(ok.body.user.id).toBe(BILLING);
      // Earlier elements were added by proxies further away: only the last one counts.
      const forgedFirst = `${xfcc(pki.foreignClient)},${xfcc(pki.client)}`;
      await request(a).get('/whoami').set(HEADER, forgedFirst).expect(200);
      const forgedLast = `${xfcc(pki.client)},${xfcc(pki.foreignClient)}`;
      expect((await request(a).get('/whoami').set(HEADER, forgedLast).expect(401)).body.error).toBe(
        'Client certificate is not trusted',
      );
      const wrongHash = await request(a)
        .get('/whoami')
        .set(HEADER, xfcc(pki.client, 'ab'.repeat(32)))
        .expect(401);
      expect(wrongHash.body).toMatchObject({
        error_code: 'CERTIFICATE_INVALID',
        error: 'Forwarded client certificate is malformed',
      });
    });

    it('accepts base64 DER (Traefik style)', async () => {
      const der = new X509Certificate(pki.client.cert).raw.toString('base64');
      await request(forwardingApp({}).app).get('/whoami').set(HEADER, der).expect(200);
    });

    it('is ignored, and logged, from an address that is not a trusted proxy', async () => {
      const { app: a, log } = forwardingApp({}, ['10.0.0.0/8', 'fd00::/8']);
      const res = await request(a).get('/whoami').set(HEADER, escaped(pki.client.cert)).expect(401);
      expect(res.body.error_code).toBe('CERTIFICATE_REQUIRED');
      expect(events(log, 'mtls_forwarded_untrusted')).toEqual([
        expect.objectContaining({ header: HEADER, severity: 'high', level: 'error' }),
      ]);
    });

    // prettier-ignore
    it.each([
      ['forged: issued by another CA', () => escaped(pki.foreignClient.cert), 'Client certificate is not trusted'],
      ['expired', () => escaped(pki.expiredClient.cert), 'Client certificate has expired'],
      ['the CA certificate itself', () => escaped(pki.ca.cert), 'Client certificate is not trusted'],
      ['not a certificate', () => 'garbage%%', 'Forwarded client certificate is malformed'],
      ['a truncated PEM', () => escaped(pki.client.cert.slice(0, 200)), 'Forwarded client certificate is malformed'],
      ['two certificates', () => escaped(pki.client.cert + pki.client.cert), 'Forwarded client certificate is malformed'],
      ['XFCC without Cert', () => 'Hash=abc;URI=spiffe://caduceus/billing', 'Forwarded client certificate is malformed'],
      ['XFCC with an open quote', () => `Cert="${escaped(pki.client.cert)}`, 'Forwarded client certificate is malformed'],
    ])('is refused when %s → 401 CERTIFICATE_INVALID', async (_what, value, message) => {
      const { app: a, log } = forwardingApp({});
      const res = await request(a).get('/whoami').set(HEADER, value()).expect(401);
      expect(res.body).toMatchObject({ error_code: 'CERTIFICATE_INVALID', error: message });
      expect(events(log, 'mtls_refused')).toEqual([expect.objectContaining({ source: 'forwarded' })]);
      expect(log.raw()).not.toMatch(/spiffe|-service/);
    });

    it('a trusted proxy without the header means no certificate (never the proxy’s own)', async () => {
      const { app: a } = forwardingApp({});
      const res = await request(a).get('/whoami').expect(401);
      expect(res.body.error_code).toBe('CERTIFICATE_REQUIRED');
      await request(forwardingApp({ required: false }).app)
        .get('/whoami')
        .expect(200);
    });
  });
});

describe('TLS renegotiation', () => {
  it('is refused, so a connection keeps the certificate of its handshake', async () => {
    const server = createMtlsServer((_req, res) => res.end('ok'), {
      cert: pki.server.cert,
      key: pki.server.key,
      ca: pki.ca.cert,
      logger: captureLogger('mtls').logger,
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const tls = await import('node:tls');
    try {
      const outcome = await new Promise<string>((resolve) => {
        const socket = tls.connect(
          {
            host: '127.0.0.1',
            port,
            ca: pki.ca.cert,
            cert: pki.client.cert,
            key: pki.client.key,
            maxVersion: 'TLSv1.2',
          },
          () => {
            socket.renegotiate({}, (err) => {
              resolve(err == null ? 'renegotiated' : 'refused');
            });
            socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'); // drives the renegotiation
          },
        );
        socket.on('error', () => {
          resolve('refused');
        });
        socket.on('close', () => {
          resolve('refused');
        });
      });
      expect(outcome).toBe('refused');
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('certificateThumbprint()', () => {
  it('equals openssl x509 -outform DER | sha256, base64url, from PEM, DER or X509Certificate', () => {
    const x509 = new X509Certificate(pki.client.cert);
    expect(certificateThumbprint(pki.client.cert)).toBe(billingThumbprint);
    expect(certificateThumbprint(x509.raw)).toBe(billingThumbprint);
    expect(certificateThumbprint(x509)).toBe(billingThumbprint);
    expect(billingThumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });
});

describe('option validation', () => {
  const listener: http.RequestListener = (_req, res) => res.end();
  const base = () => ({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert });
  const fakeReq = { method: 'GET', headers: {} };

  // prettier-ignore
  it.each([
    ['without ca', () => createMtlsServer(listener, { cert: pki.server.cert, key: pki.server.key } as MtlsServerOptions), /ca must be PEM/],
    ['without key', () => createMtlsServer(listener, { cert: pki.server.cert, ca: pki.ca.cert } as MtlsServerOptions), /key must be PEM/],
    ['with a misspelt option', () => createMtlsServer(listener, { ...base(), rejectUnauthorised: false } as MtlsServerOptions), /unknown option "rejectUnauthorised"\. Did you mean "rejectUnauthorized"\?/],
    ['with a ca that holds no certificate', () => createMtlsServer(listener, { ...base(), ca: 'not a pem' }), /ca must be PEM CA certificate/],
    ['with TLS 1.0', () => createMtlsServer(listener, { ...base(), minVersion: 'TLSv1' as 'TLSv1.2' }), /minVersion must be 'TLSv1.2' or 'TLSv1.3'/],
    ['with requestCert (always on)', () => createMtlsServer(listener, { ...base(), requestCert: false } as MtlsServerOptions), /unknown option "requestCert"/],
    ['with a key that does not load', () => createMtlsServer(listener, { ...base(), key: 'garbage' }), /TLS options were refused/],
    ['with a key that does not match', () => createMtlsServer(listener, { ...base(), key: pki.client.key }), /TLS options were refused/],
    ['without an app', () => createMtlsServer(undefined as unknown as http.RequestListener, base()), /app must be a request listener/],
  ])('createMtlsServer %s throws ConfigError', (_what, make, message) => {
    expect(make).toThrow(core.ConfigError);
    expect(make).toThrow(message);
  });

  // prettier-ignore
  it.each([
    ['a misspelt option', { alow: [] }, /unknown option "alow"\. Did you mean "allow"\?/],
    ['a bad fingerprint', { fingerprints: ['abc'] }, /fingerprints\[0\] must be a SHA-256 fingerprint/],
    ['allow that is not a list', { allow: 'spiffe://x' }, /allow must be an array of non-empty strings/],
    ['roles that are not lists', { roles: { a: 'admin' } }, /roles\["a"\] must be an array/],
    ['required that is not a boolean', { required: 'no' }, /required must be a boolean/],
    ['identify that is not a function', { identify: 'cn' }, /identify must be a function/],
    ['a forwarded proxy that is not an IP', { forwarded: { header: 'x-c', trustedProxies: ['proxy.local'] } }, /trustedProxies\[0\] must be an IP address or CIDR/],
    ['a CIDR prefix too long', { forwarded: { header: 'x-c', trustedProxies: ['10.0.0.0/33'] } }, /trustedProxies\[0\]/],
    ['an empty CIDR prefix', { forwarded: { header: 'x-c', trustedProxies: ['10.0.0.0/'] } }, /trustedProxies\[0\]/],
    ['no trusted proxies', { forwarded: { header: 'x-c', trustedProxies: [] } }, /trustedProxies must be a non-empty array/],
    ['a forwarded ca that holds no certificate', { forwarded: { header: 'x-c', trustedProxies: ['10.0.0.1'], ca: 'nope' } }, /forwarded\.ca must be PEM/],
    ['a bad header name', { forwarded: { header: 'x c', trustedProxies: ['10.0.0.1'] } }, /forwarded\.header must be a header name/],
    ['a misspelt forwarded option', { forwarded: { header: 'x-c', trustedProxys: ['10.0.0.1'] } }, /unknown option "trustedProxys"\. Did you mean "trustedProxies"\?/],
    ['a request instead of options (app.use(mtls))', fakeReq, /call it to get the middleware/],
  ])('mtls() with %s throws ConfigError', (_what, options, message) => {
    const withCa = (o: object): object => {
      const forwarded = (o as { forwarded?: Record<string, unknown> }).forwarded;
      return forwarded === undefined || 'ca' in forwarded
        ? o
        : { ...o, forwarded: { ...forwarded, ca: pki.ca.cert } };
    };
    const make = () => mtls(withCa(options));
    expect(make).toThrow(core.ConfigError);
    expect(make).toThrow(message);
  });

  it('mtls() refuses a forwarded CA bundle holding a leaf certificate (it would act as an issuer)', () => {
    const forwarded = {
      header: 'x-c',
      trustedProxies: ['10.0.0.1'],
      ca: `${pki.ca.cert}\n${pki.client.cert}`,
    };
    expect(() => mtls({ forwarded })).toThrow(/forwarded\.ca must be CA certificates only/);
  });

  it('never modifies the options object', () => {
    const options = Object.freeze({
      allow: Object.freeze([BILLING]),
      forwarded: Object.freeze({
        header: 'X-Client-Cert',
        trustedProxies: Object.freeze(['10.0.0.1']),
        ca: pki.ca.cert,
      }),
      logger: captureLogger('mtls').logger,
      required: undefined,
    });
    expect(typeof mtls(options)).toBe('function');
    expect(mtls(options).name).toBe('mtlsMiddleware');
  });
});
