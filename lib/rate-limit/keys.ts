import type { Request } from 'express';
import { createHash } from 'node:crypto';
import { ConfigError } from '../errors/index.js';
import type { ClientKeys } from '../net/ip.js';
import { COST_SEPARATOR } from './store.js';

/**
 * Whom a limiter counts:
 * - `'auto'` (default): the verified user where `authenticate()` ran before the limiter, else the
 *   client address — so the default pipeline (limiter before `authenticate()`) limits by IP, and a
 *   limiter mounted after `authenticate()` gives each user their own budget;
 * - `'ip'`: the client address (IPv6 by subnet);
 * - `'user'`: the verified user; requests without one count against their address;
 * - `'ip+username'`: address and the username a login body names (`usernameField`), for login
 *   routes: one address cannot try many passwords for one account, and one account cannot be
 *   locked out by another address;
 * - a function returning the key (a string; `undefined` falls back to the address).
 */
export type KeyBy = 'auto' | 'ip' | 'user' | 'ip+username' | ((req: Request) => string | undefined);

/** Builds the per-request key function once, for one limiter. */
export function keyFunction(
  keyBy: KeyBy,
  clientKeys: ClientKeys,
  usernameFields: readonly string[],
): (req: Request) => string {
  const ip = (req: Request) => `ip:${clientKeys.key(req.ip ?? req.socket.remoteAddress ?? 'unknown')}`;
  switch (keyBy) {
    case 'ip':
      return ip;
    case 'auto':
    case 'user':
      return (req) => {
        const id = req.user?.id;
        return typeof id === 'string' && id !== '' ? `user:${id.replaceAll(COST_SEPARATOR, '')}` : ip(req);
      };
    case 'ip+username':
      return (req) => `${ip(req)}|name:${usernameDigest(req.body, usernameFields)}`;
    default: {
      if (typeof keyBy !== 'function')
        throw ConfigError.option(
          'rateLimit',
          'keyBy',
          "'auto', 'ip', 'user', 'ip+username' or a function",
          keyBy,
        );
      return (req) => {
        const key = keyBy(req);
        // A custom key must not be able to produce our cost separator and so pick its own cost.
        return typeof key === 'string' && key !== '' ? `key:${key.replaceAll(COST_SEPARATOR, '')}` : ip(req);
      };
    }
  }
}

/**
 * The username a login body carries, normalised (NFKC, trimmed, lower case) and hashed: usernames
 * are often e-mail addresses, which must not sit in Redis keys or headers. `-` (the address alone)
 * when none is present, when it is not a string — or when more than one of the fields is: the
 * login handler reads one of them, and a decoy in the other must not buy a fresh budget.
 */
function usernameDigest(body: unknown, fields: readonly string[]): string {
  if (typeof body !== 'object' || body === null) return '-';
  let found: string | undefined;
  for (const field of fields) {
    if (!Object.hasOwn(body, field)) continue;
    const value = (body as Record<string, unknown>)[field];
    if (found !== undefined || typeof value !== 'string' || value.trim() === '') return '-';
    found = value;
  }
  if (found === undefined) return '-';
  const normalised = found.normalize('NFKC').trim().toLowerCase().slice(0, 512);
  return createHash('sha256').update(normalised).digest('base64url').slice(0, 22);
}
