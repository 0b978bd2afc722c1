/** Shared by the auth suites: forging tokens by hand, and an app that shows who it authenticated. */
import { createHmac, type KeyObject, sign } from 'node:crypto';
import type { Express } from 'express';
import * as core from '../../lib/index';
import type { ExpressVariant } from '../support/express';

export const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
// LOG_LEVEL error: Auths built without a logger of their own do not print security events into the test output.
export const settings = core.loadSettings({
  NODE_ENV: 'test',
  APP_NAME: 'caduceus-test',
  LOG_LEVEL: 'ERROR',
});

export const b64 = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Sign `header.payload` the way a JWS library would, with whatever key and algorithm we are told. */
export function forge(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key: string | Buffer | KeyObject,
  alg = String(header.alg),
): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const bits = alg.slice(2);
  let signature: Buffer;
  if (alg.startsWith('HS')) signature = createHmac(`sha${bits}`, key).update(input).digest();
  else if (alg.startsWith('ES'))
    signature = sign(`sha${bits}`, Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  else if (alg.startsWith('PS'))
    signature = sign(`sha${bits}`, Buffer.from(input), {
      key: key as KeyObject,
      padding: 6,
      saltLength: Number(bits) / 8,
    });
  else if (alg === 'EdDSA') signature = sign(null, Buffer.from(input), key);
  else signature = sign(`sha${bits}`, Buffer.from(input), key);
  return `${input}.${signature.toString('base64url')}`;
}

/** Claims a valid access token of ours carries, for forging variants of it. */
export function accessClaims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: 'user-1',
    email: 'ada@example.org',
    roles: ['patient'],
    iss: 'caduceus-test',
    aud: 'caduceus-test',
    iat: now,
    exp: now + 600,
    jti: `jti-${Math.random().toString(36).slice(2)}`,
    type: 'access',
    ...overrides,
  };
}

/** The header `createTokens()` writes, for forging with a given kid. */
export function headerOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()) as Record<
    string,
    unknown
  >;
}

export function authApp(
  { express }: ExpressVariant,
  auth: core.Auth,
  setup?: (app: Express) => void,
  authenticate: core.AuthenticateOptions = {},
): Express {
  const app = express();
  app.use(core.requestContext());
  app.get('/me', auth.authenticate(authenticate), (req, res) => {
    res.json({ user: req.user ?? null, context: core.getContext()?.userId ?? null });
  });
  setup?.(app);
  app.use(core.notFound());
  app.use(core.errors({ settings, logger: core.createLogger('errors', { settings, console: false }) }));
  return app;
}
