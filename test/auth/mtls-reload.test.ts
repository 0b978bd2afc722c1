/**
 * `createMtlsServer().updateCredentials()`: a CRL (or client CA, or server certificate) replaced
 * while the server runs. New handshakes use it at once; connections admitted before are closed —
 * idle ones now, busy ones after their answer — so a certificate revoked in the new CRL gets no
 * further request through, on a new connection or a kept-alive one. A bad update changes nothing.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import * as core from '../../lib/index';
import type { HttpsReply, KeyPair, TestPki } from '../support/certs';
import { createTestPki, httpsGet } from '../support/certs';
import type { CapturedLogger } from '../support/logs';
import { captureLogger } from '../support/logs';
import { eachExpress } from '../support/express';

let pki: TestPki;
beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(async () => {
  await pki.cleanup();
});

function refusals(log: CapturedLogger, reason: string): number {
  return log.lines().filter((l) => l.security_event === 'mtls_handshake_refused' && l.reason === reason)
    .length;
}

async function until(check: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

/** A keep-alive agent holding one connection, presenting `as`. */
function keepAlive(as: KeyPair): https.Agent {
  return new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.ca.cert, cert: as.cert, key: as.key });
}

describe.each(eachExpress)('createMtlsServer().updateCredentials() on %s', (_name, { express }) => {
  const opened: { server: core.MtlsServer; agents: https.Agent[] }[] = [];
  afterEach(async () => {
    for (const { server, agents } of opened.splice(0)) {
      for (const agent of agents) agent.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  /** An mTLS server on the test CA and CRL: `/who` names the client, `/slow` answers when released. */
  async function serve(extra: Partial<core.MtlsServerOptions> = {}) {
    const log = captureLogger('mtls');
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const app = express();
    app.get('/who', (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      res.json({ cn: peer.subject.CN });
    });
    app.get('/slow', async (_req, res) => {
      await released;
      res.json({ done: true });
    });
    const server = core.createMtlsServer(app, {
      cert: pki.server.cert,
      key: pki.server.key,
      ca: pki.ca.cert,
      crl: pki.crl,
      logger: log.logger,
      ...extra,
    });
    let handshakes = 0;
    server.on('secureConnection', () => handshakes++);
    const agents: https.Agent[] = [];
    opened.push({ server, agents });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    return {
      server,
      log,
      release,
      handshakes: () => handshakes,
      agent(as: KeyPair) {
        const agent = keepAlive(as);
        agents.push(agent);
        return agent;
      },
      get: (path: string, as: KeyPair, agent?: https.Agent): Promise<HttpsReply> =>
        httpsGet(pki.ca.cert, port, path, { as, agent }),
      port,
    };
  }

  it('a certificate revoked in a new CRL gets no further request, on a new or a kept-alive connection; others go on', async () => {
    const alice = await pki.issueClient(`alice-${_name.replace(/\W/g, '')}`);
    const bob = await pki.issueClient(`bob-${_name.replace(/\W/g, '')}`);
    const s = await serve();
    const aliceAgent = s.agent(alice);
    const bobAgent = s.agent(bob);

    expect((await s.get('/who', alice, aliceAgent)).status).toBe(200);
    expect((await s.get('/who', alice, aliceAgent)).status).toBe(200);
    expect(s.handshakes()).toBe(1); // the agent kept its connection
    // Bob is mid-request when the CRL changes.
    const slow = s.get('/slow', bob, bobAgent);
    await until(() => s.handshakes() === 2);

    const crl = await pki.revoke(alice);
    s.server.updateCredentials({ crl });

    // Alice's kept-alive connection is gone; a new handshake is refused by the new CRL.
    await expect(s.get('/who', alice, aliceAgent)).rejects.toThrow();
    await expect(s.get('/who', alice)).rejects.toThrow();
    await until(() => refusals(s.log, 'revoked') >= 1);
    expect(refusals(s.log, 'revoked')).toBeGreaterThanOrEqual(1);

    // Bob's answer completes, tells him to reconnect, and his new handshake passes.
    s.release();
    const answer = await slow;
    expect(answer).toMatchObject({ status: 200, body: { done: true }, connection: 'close' });
    const before = s.handshakes();
    expect((await s.get('/who', bob, bobAgent)).body).toEqual({ cn: expect.stringMatching(/^bob-/) });
    expect(s.handshakes()).toBe(before + 1);

    const line = s.log
      .lines()
      .find((l) => l.message === 'mtls: credentials updated; connections made before are closed');
    expect(line).toMatchObject({ updated: ['crl'], connections: 2 });
    // Nothing of the certificates in the line.
    expect(JSON.stringify(line)).not.toContain('BEGIN');
  });

  it('a TLS session from before the update is not resumed: the revoked client gets a full handshake, and is refused', async () => {
    const dave = await pki.issueClient(`dave-${_name.replace(/\W/g, '')}`);
    const s = await serve();
    // No keep-alive: every request is a new connection, resumed from the agent's session cache.
    const agent = new https.Agent({
      keepAlive: false,
      maxCachedSessions: 10,
      ca: pki.ca.cert,
      cert: dave.cert,
      key: dave.key,
    });
    expect((await s.get('/who', dave, agent)).status).toBe(200);
    expect((await s.get('/who', dave, agent)).reused).toBe(true);

    s.server.updateCredentials({ crl: await pki.revoke(dave) });
    await expect(s.get('/who', dave, agent)).rejects.toThrow();
    await until(() => refusals(s.log, 'revoked') >= 1);
    expect(refusals(s.log, 'revoked')).toBe(1);
  });

  it('with ticket keys of its own, a new CRL needs new keys; with them, old sessions are not resumed', async () => {
    const erin = await pki.issueClient(`erin-${_name.replace(/\W/g, '')}`);
    const s = await serve({ ticketKeys: randomBytes(48) });
    const agent = new https.Agent({ keepAlive: false, ca: pki.ca.cert, cert: erin.cert, key: erin.key });
    expect((await s.get('/who', erin, agent)).status).toBe(200);
    expect((await s.get('/who', erin, agent)).reused).toBe(true);

    const crl = await pki.revoke(erin);
    expect(() => {
      s.server.updateCredentials({ crl });
    }).toThrow(/ticketKeys must be new keys with a new ca or crl/);
    expect(() => {
      s.server.updateCredentials({ crl, ticketKeys: randomBytes(16) });
    }).toThrow(/ticketKeys must be a 48-byte Buffer/);
    // Refused updates changed nothing: the session still resumes.
    expect((await s.get('/who', erin, agent)).reused).toBe(true);

    s.server.updateCredentials({ crl, ticketKeys: randomBytes(48) });
    await expect(s.get('/who', erin, agent)).rejects.toThrow();
    await until(() => refusals(s.log, 'revoked') >= 1);
    expect(refusals(s.log, 'revoked')).toBe(1);
  });

  it('refuses a bad update with a ConfigError and keeps the credentials and the connections it had', async () => {
    const carol = await pki.issueClient(`carol-${_name.replace(/\W/g, '')}`);
    const s = await serve();
    const agent = s.agent(carol);
    expect((await s.get('/who', carol, agent)).status).toBe(200);

    const bad: [string, unknown, RegExp][] = [
      [
        'an empty update',
        {},
        /updateCredentials: update must be one of cert, key, passphrase, ca, crl, ticketKeys/,
      ],
      ['a misspelt option', { crls: pki.crl }, /unknown option "crls"\. Did you mean "crl"\?/],
      ['a CRL that is not text', { crl: 5 }, /crl must be PEM text/],
      ['a null certificate (only the CRL can be dropped)', { cert: null }, /cert must be PEM text/],
      ['an empty CRL string', { crl: '' }, /crl must be PEM text/],
      [
        'a CRL that does not parse',
        { crl: '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n' },
        /TLS options were refused/,
      ],
      ['a ca without a certificate', { ca: 'not a pem' }, /ca must be PEM CA certificate/],
      ['a certificate without its key', { cert: pki.client.cert }, /TLS options were refused/],
      ['a passphrase that is not a string', { passphrase: 42 }, /passphrase must be a string/],
      ['not an object', 'crl', /updateCredentials/],
    ];
    for (const [what, update, message] of bad) {
      let thrown: unknown;
      try {
        s.server.updateCredentials(update as core.MtlsCredentials);
      } catch (err) {
        thrown = err;
      }
      expect([what, thrown]).toEqual([what, expect.any(core.ConfigError)]);
      expect([what, (thrown as Error).message]).toEqual([what, expect.stringMatching(message)]);
    }

    // Same connection, same verdicts: carol admitted on her kept-alive connection, the revoked refused.
    expect((await s.get('/who', carol, agent)).status).toBe(200);
    expect(s.handshakes()).toBe(1);
    await expect(s.get('/who', pki.revokedClient)).rejects.toThrow();
    expect(s.log.lines().some((l) => String(l.message).startsWith('mtls: credentials updated'))).toBe(false);
  });

  it('replaces the client CA (crl: null drops the CRL): the old CA’s clients are refused, the new one’s admitted', async () => {
    const s = await serve();
    expect((await s.get('/who', pki.client)).status).toBe(200);
    await expect(s.get('/who', pki.foreignClient)).rejects.toThrow();

    s.server.updateCredentials({ ca: pki.otherCa.cert, crl: null });
    expect((await s.get('/who', pki.foreignClient)).body).toEqual({ cn: 'billing-service' });
    await expect(s.get('/who', pki.client)).rejects.toThrow();

    // A renewed server certificate is served from the next handshake on.
    const renewed = await pki.renewServer();
    s.server.updateCredentials({ cert: renewed.cert, key: renewed.key });
    const after = await s.get('/who', pki.foreignClient);
    expect(after.status).toBe(200);
    expect(after.serverSerial).toBe(new X509Certificate(renewed.cert).serialNumber);
    expect(after.serverSerial).not.toBe(new X509Certificate(pki.server.cert).serialNumber);
  });
});
