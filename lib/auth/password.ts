import { randomBytes, scrypt, type ScryptOptions, timingSafeEqual } from 'node:crypto';

/** scrypt cost parameters (RFC 7914). Defaults: N=2^15, r=8, p=1 (OWASP's minimum is N=2^17 with r=8 or N=2^15 with more p; raise N as hardware allows). */
export interface PasswordHashOptions {
  /** CPU/memory cost, a power of two. Default 32768. */
  cost?: number;
  /** Block size. Default 8. */
  blockSize?: number;
  /** Parallelism. Default 1. */
  parallelization?: number;
}

const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Longer inputs are refused: hashing megabytes is a denial of service, not a password. */
const MAX_PASSWORD_BYTES = 1024;
const FORMAT = /^\$scrypt\$n=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  const options: ScryptOptions = { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, KEY_BYTES, options, (err, key) => {
      if (err === null) resolve(key);
      else reject(err);
    });
  });
}

/** 128·N·r bytes of memory at most 128 MiB (OWASP's N=2^17, r=8), and p ≤ 4. */
const MAX_MEMORY = 128 * 1024 * 1024;
function withinBounds(n: number, r: number, p: number): boolean {
  return n >= 1024 && (n & (n - 1)) === 0 && r >= 1 && p >= 1 && p <= 4 && 128 * n * r <= MAX_MEMORY;
}

function checkPassword(password: unknown): asserts password is string {
  if (typeof password !== 'string' || password.length === 0)
    throw new TypeError('password must be a non-empty string');
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES)
    throw new RangeError(`password longer than ${MAX_PASSWORD_BYTES} bytes`);
}

/**
 * Hash a password with scrypt (node:crypto, off the event loop) into a self-describing string:
 * `$scrypt$n=32768,r=8,p=1$<salt>$<hash>`. Store that string; pass it to `verifyPassword()`.
 */
export async function hashPassword(
  password: string,
  options: Readonly<PasswordHashOptions> = {},
): Promise<string> {
  checkPassword(password);
  const n = options.cost ?? 32_768;
  const r = options.blockSize ?? 8;
  const p = options.parallelization ?? 1;
  if (!Number.isInteger(n) || n < 1024 || (n & (n - 1)) !== 0)
    throw new RangeError(`cost must be a power of two ≥ 1024, got ${n}`);
  if (!Number.isInteger(r) || r < 1 || !Number.isInteger(p) || p < 1)
    throw new RangeError('blockSize and parallelization must be positive integers');
  if (!withinBounds(n, r, p)) {
    throw new RangeError(
      `scrypt parameters over the limit verifyPassword() accepts (128·N·r ≤ 128 MiB, p ≤ 4)`,
    );
  }
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, n, r, p);
  return `$scrypt$n=${n},r=${r},p=${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/**
 * True when `password` matches a `hashPassword()` string (constant-time comparison). A malformed
 * or foreign hash is false, never an exception, so a corrupt row cannot become a 500 at login.
 */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (
    typeof password !== 'string' ||
    password.length === 0 ||
    Buffer.byteLength(password) > MAX_PASSWORD_BYTES
  ) {
    return false;
  }
  const match = typeof hash === 'string' ? FORMAT.exec(hash) : null;
  if (match === null) return false;
  const [n, r, p] = [Number(match[1]), Number(match[2]), Number(match[3])];
  // Bounds keep a tampered row from asking for gigabytes or minutes: 128·N·r ≤ 64 MiB, p ≤ 4.
  if (n < 1024 || (n & (n - 1)) !== 0 || r < 1 || p < 1 || p > 4 || 128 * n * r > 64 * 1024 * 1024)
    return false;
  const expected = Buffer.from(match[5] as string, 'base64');
  if (expected.length !== KEY_BYTES) return false;
  try {
    const key = await derive(password, Buffer.from(match[4] as string, 'base64'), n, r, p);
    return timingSafeEqual(key, expected);
  } catch {
    return false;
  }
}
