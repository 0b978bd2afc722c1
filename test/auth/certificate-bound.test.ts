/**
 * RFC 8705 certificate-bound access tokens, end to end over real mutual TLS: a token whose
 * `cnf["x5t#S256"]` names a client certificate is accepted only with that certificate — on the
 * connection, or forwarded by a trusted TLS-terminating proxy.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Request, Response } from 'express';
import * as core from '../../lib/index';
import type { HttpsReply, KeyPair, TestPki } from '../support/certs';
import { createTestPki, httpsGet } from '../support/certs';
import { eachExpress } from '../support/express';
import { captureLogger } from '../support/logs';

const settings = core.loadSettings({ NODE_ENV: 'test' });
const HEADER = 'x-client-cert';

let pki: TestPki;
let auth: core.Auth;
/** Bound to `pki.client` (spiffe://caduceus/billing). */
let bound: string;
/** No `cnf`: a plain bearer token. */
let unbound: string;

beforeAll(async () => {
  pki = await createTestPki();
  auth = core.createAuth({
    settings,
    secret: 'x'.repeat(40),
    redis: false,
    logger: captureLogger('auth').logger,
  });
  bound = auth.createTokens(
    { userId: 'svc' },
    { certificateThumbprint: core.certificateThumbprint(pki.client.cert) },
  ).access_token;
  unbound = auth.createTokens({ userId: 'svc' }).access_token;
});

afterAll(async () => {
  await auth.close();
  await pki.cleanup();
});

/** One HTTPS GET presenting `as` (if given) and a bearer token. */
function call(
  port: number,
  path: string,
  token: string,
  as?: KeyPair,
  headers: Record<string, string> = {},
): Promise<HttpsReply> {
  return httpsGet(pki.ca.cert, port, path, { as, headers: { ...headers, authorization: `Bearer ${token}` } });
}

function whoami(req: Request, res: Response): void {
  res.json({
    user: req.user ?? null,
    context: core.getContext(req)?.userId ?? null,
    thumbprint: core.clientCertificateThumbprint(req) ?? null,
  });
}

describe.each(eachExpress)('certificate-bound access tokens on %s', (_name, { express }) => {
  let server: https.Server;
  let port: number;

  beforeAll(async () => {
    const log = captureLogger('mtls').logger;
    const app = express();
    app.use(core.requestContext());
    app.get('/me', core.mtls({ required: false, logger: log }), auth.authenticate(), whoami);
    // No mtls(): the token is checked against the connection's verified certificate.
    app.get('/plain', auth.authenticate(), whoami);
    // Behind a TLS-terminating proxy on this host: the certificate comes in a header.
    app.get(
      '/proxied',
      core.mtls({
        required: false,
        logger: log,
        forwarded: { header: HEADER, trustedProxies: ['127.0.0.1', '::ffff:127.0.0.1'], ca: pki.ca.cert },
      }),
      auth.authenticate(),
      whoami,
    );
    // Rotation of a bound pair: the refresh request must present the same certificate.
    app.get(
      '/refresh',
      core.mtls({ required: false, logger: log }),
      core.asyncHandler(async (req: Request, res: Response) => {
        const thumbprint = core.clientCertificateThumbprint(req);
        res.json(
          await auth.refreshTokens(String(req.headers['x-refresh']), { certificateThumbprint: thumbprint }),
        );
      }),
    );
    app.use(core.notFound());
    app.use(core.errors({ settings, logger: captureLogger('errors').logger }));
    server = core.createMtlsServer(app, {
      cert: pki.server.cert,
      key: pki.server.key,
      ca: pki.ca.cert,
      rejectUnauthorized: false,
      logger: log,
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const boundElsewhere = {
    success: false,
    error_code: 'TOKEN_INVALID',
    error: 'Token is bound to another client certificate',
  };

  it('accepts a bound token presented with its certificate', async () => {
    const res = await call(port, '/me', bound, pki.client);
    expect(res.status).toBe(200);
    // The token's user, not the certificate's service identity.
    expect(res.body.user).toMatchObject({ id: 'svc', via: 'token' });
    expect(res.body.user.claims.cnf).toEqual({ 'x5t#S256': core.certificateThumbprint(pki.client.cert) });
    expect(res.body.context).toBe('svc');
    expect(res.body.thumbprint).toBe(core.certificateThumbprint(pki.client.cert));
  });

  it('refuses it with another valid certificate of the same CA → 401 TOKEN_INVALID', async () => {
    for (const other of [pki.dnsClient, pki.cnClient]) {
      const res = await call(port, '/me', bound, other);
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject(boundElsewhere);
    }
  });

  it('refuses it without a certificate → 401 TOKEN_INVALID', async () => {
    const res = await call(port, '/me', bound);
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject(boundElsewhere);
  });

  it('accepts a token without cnf with or without a certificate', async () => {
    for (const as of [pki.client, pki.dnsClient, undefined]) {
      const res = await call(port, '/me', unbound, as);
      expect(res.status).toBe(200);
      expect(res.body.user).toMatchObject({ id: 'svc', via: 'token' });
    }
  });

  it('without mtls(), checks the verified certificate of the connection', async () => {
    expect((await call(port, '/plain', bound, pki.client)).status).toBe(200);
    expect((await call(port, '/plain', bound, pki.dnsClient)).body).toMatchObject(boundElsewhere);
    expect((await call(port, '/plain', bound)).body).toMatchObject(boundElsewhere);
    // Same identity from an unrelated CA: the handshake did not verify it, so it binds nothing.
    const foreign = await call(port, '/plain', bound, pki.foreignClient);
    expect(foreign.status).toBe(401);
    expect(foreign.body).toMatchObject(boundElsewhere);
  });

  it('rotates a bound pair only for its certificate, and the new pair stays bound', async () => {
    const pair = auth.createTokens(
      { userId: 'svc' },
      { certificateThumbprint: core.certificateThumbprint(pki.client.cert) },
    );
    for (const as of [pki.dnsClient, undefined]) {
      const refused = await call(port, '/refresh', 'unused', as, { 'x-refresh': pair.refresh_token });
      expect(refused).toMatchObject({ status: 401, body: { error_code: 'TOKEN_INVALID' } });
    }
    const rotated = await call(port, '/refresh', 'unused', pki.client, { 'x-refresh': pair.refresh_token });
    expect(rotated.status).toBe(200);
    const access = rotated.body.access_token as string;
    expect((await call(port, '/me', access, pki.client)).status).toBe(200);
    expect((await call(port, '/me', access, pki.dnsClient)).status).toBe(401);
    expect((await call(port, '/me', access)).status).toBe(401);
  });

  describe('forwarded by a trusted proxy', () => {
    const forwarded = (pair: KeyPair) => ({ [HEADER]: encodeURIComponent(pair.cert) }); // nginx $ssl_client_escaped_cert

    it('accepts the bound token when the forwarded certificate matches', async () => {
      const res = await call(port, '/proxied', bound, undefined, forwarded(pki.client));
      expect(res.status).toBe(200);
      expect(res.body.user).toMatchObject({ id: 'svc', via: 'token' });
      expect(res.body.thumbprint).toBe(core.certificateThumbprint(pki.client.cert));
    });

    it('refuses it when the forwarded certificate is another one, even if the proxy’s own matches', async () => {
      const other = await call(port, '/proxied', bound, pki.client, forwarded(pki.dnsClient));
      expect(other.status).toBe(401);
      expect(other.body).toMatchObject(boundElsewhere);
      // From a trusted proxy, no header means no certificate — never the proxy's own.
      const none = await call(port, '/proxied', bound, pki.client);
      expect(none.status).toBe(401);
      expect(none.body).toMatchObject(boundElsewhere);
    });
  });
});
