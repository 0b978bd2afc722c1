/**
 * The bearer tokens of `--suite auth` and `--suite full`: made once, before any server starts,
 * with `createTokens()` of the very caduceus build the servers load, and the key and claims policy
 * every variant checks (bench/auth/shared.ts).
 */
import { AUDIENCE, ISSUER, ROLE, SECRET } from '../auth/shared.js';
import { loadCaduceus } from './caduceus.js';

export interface Tokens {
  /** Sent with every request of every variant (the unauthenticated ones ignore it): role `provider`. */
  provider: string;
  /** Valid, but without the role: 403 from every authenticated variant. */
  patient: string;
  /** The provider token with one signature character changed: 401. */
  tampered: string;
}

/** `entry` is the caduceus build the servers load (BENCH_CADUCEUS_ENTRY). */
export async function makeTokens(entry: string): Promise<Tokens> {
  process.env.BENCH_CADUCEUS_ENTRY = entry;
  const core = loadCaduceus();
  const auth = core.createAuth({
    secret: SECRET,
    algorithm: 'HS256',
    issuer: ISSUER,
    audience: AUDIENCE,
    redis: false,
    jwksUrl: false,
    // Longer than any run, so no token expires in the middle of one.
    accessTokenTtlSeconds: 6 * 3600,
    logger: core.createLogger('auth', { console: false }),
  });
  try {
    const provider = auth.createTokens({
      userId: '4242',
      email: 'bench@example.org',
      roles: [ROLE],
    }).access_token;
    const patient = auth.createTokens({ userId: '4242', roles: ['patient'] }).access_token;
    // A middle character of the signature: its padding bits are not involved, so only the HMAC can tell.
    const at = provider.lastIndexOf('.') + 10;
    const tampered = `${provider.slice(0, at)}${provider[at] === 'A' ? 'B' : 'A'}${provider.slice(at + 1)}`;
    return { provider, patient, tampered };
  } finally {
    await auth.close();
  }
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
