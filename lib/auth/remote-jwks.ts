import { ConfigError, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/create-logger.js';
import { createLogger } from '../logging/create-logger.js';
import { jwkToVerificationKey, MAX_KID_LENGTH } from './jwk.js';
import type { VerificationKey } from './types.js';

export interface RemoteJwksOptions {
  /** The identity provider's JWKS URL. `https:` is required; `http:` only for localhost, 127.0.0.1 and [::1]. No default. */
  url: string;
  /** Age after which a lookup starts a background refresh while the cached keys keep serving. Default 600000 ms (10 min). */
  cacheMaxAgeMs?: number;
  /** Minimum time between two fetches triggered by lookups (unknown `kid`, stale cache), so garbage kids cannot make us hammer the IdP. Not applied before the first successful fetch, nor to explicit `refresh()` calls. Default 30000 ms. */
  cooldownMs?: number;
  /** Time allowed for one fetch, body included. Default 5000 ms. */
  timeoutMs?: number;
  /** Largest JWKS body accepted. Default 1048576 bytes (1 MiB). */
  maxBytes?: number;
  /** Where fetch failures (once per outage), recoveries and skipped keys are logged. Default `createLogger('jwks')`. */
  logger?: Logger;
  /** The fetch implementation. Default `globalThis.fetch`. */
  fetch?: typeof fetch;
}

const KNOWN = ['url', 'cacheMaxAgeMs', 'cooldownMs', 'timeoutMs', 'maxBytes', 'logger', 'fetch'] as const;
const NAME = 'RemoteJwks';
const MAX_TIMER_MS = 2_147_483_647; // setTimeout's limit
const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);
const ACCEPT = 'application/jwk-set+json, application/json;q=0.9';

function checkUrl(value: unknown): URL {
  const expected = 'an https URL (http only for localhost, 127.0.0.1 or [::1])';
  if (typeof value !== 'string' || !URL.canParse(value))
    throw ConfigError.option(NAME, 'url', expected, value);
  const url = new URL(value);
  const local = url.protocol === 'http:' && LOCAL_HOSTS.has(url.hostname);
  if (url.protocol !== 'https:' && !local) {
    throw new ConfigError(`${NAME}: url must be ${expected}, got a ${url.protocol} URL to ${url.hostname}`, [
      { name: 'url', expected, received: `a ${url.protocol} URL` },
    ]);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError(`${NAME}: url must not carry credentials`, [
      { name: 'url', expected, received: 'a URL with credentials' },
    ]);
  }
  return url;
}

function checkInt(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_TIMER_MS) {
    throw ConfigError.option(NAME, name, `an integer from ${min} to ${MAX_TIMER_MS}`, value);
  }
  return value;
}

/** The body as text, refusing more than `maxBytes` (announced or streamed) and invalid UTF-8. */
async function readCapped(response: Response, maxBytes: number): Promise<string> {
  const announced = Number(response.headers.get('content-length') ?? 0);
  if (announced > maxBytes || response.body === null) {
    await response.body?.cancel();
    if (announced > maxBytes) throw new Error(`body of ${announced} bytes exceeds maxBytes ${maxBytes}`);
    return '';
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new Error(`body exceeds maxBytes ${maxBytes}`);
    }
    chunks.push(value);
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
}

/**
 * The keys of an external identity provider's JWKS, cached: lookups by `kid` are synchronous, an
 * unknown `kid` refreshes at most once per cooldown, and while the endpoint is down (error, timeout,
 * bad body) the last good keys keep verifying. A successful fetch replaces the set, so keys the IdP
 * removed stop verifying. Only public signature keys pass (see `jwkToVerificationKey`).
 *
 * @example
 * const jwks = new RemoteJwks({ url: 'https://idp.example.org/.well-known/jwks.json' });
 * const key = await jwks.resolve(header.kid); // undefined → 401 unknown_key
 */
export class RemoteJwks {
  readonly #url: URL;
  readonly #maxAgeMs: number;
  readonly #cooldownMs: number;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #logger: Logger;
  readonly #fetch: typeof fetch;
  #keys = new Map<string, VerificationKey>();
  /** performance.now() of the last successful fetch; undefined until one succeeds. */
  #loadedAt: number | undefined;
  /** performance.now() of the start of the last fetch, successful or not. */
  #attemptedAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #failing = false;
  #closed = false;

  constructor(input: Readonly<RemoteJwksOptions>) {
    const options = readOptions<RemoteJwksOptions>(NAME, input, KNOWN);
    this.#url = checkUrl(options.url);
    this.#maxAgeMs = checkInt('cacheMaxAgeMs', options.cacheMaxAgeMs, 600_000, 1);
    this.#cooldownMs = checkInt('cooldownMs', options.cooldownMs, 30_000, 0);
    this.#timeoutMs = checkInt('timeoutMs', options.timeoutMs, 5_000, 1);
    this.#maxBytes = checkInt('maxBytes', options.maxBytes, 1_048_576, 1);
    if (options.fetch !== undefined && typeof options.fetch !== 'function') {
      throw ConfigError.option(NAME, 'fetch', 'a fetch function', options.fetch);
    }
    const logger: unknown = options.logger;
    if (logger !== undefined && (typeof logger !== 'object' || logger === null)) {
      throw ConfigError.option(NAME, 'logger', 'a Logger', logger);
    }
    // Late-bound, so a fetch installed after construction (an undici dispatcher, a test double) is used.
    this.#fetch = options.fetch ?? ((resource, init) => globalThis.fetch(resource, init));
    this.#logger = options.logger ?? createLogger('jwks');
  }

  /** How many keys are cached. */
  get size(): number {
    return this.#keys.size;
  }

  /** The cached key for `kid`, without waiting. Starts a background refresh when the cache is stale. Never throws. */
  get(kid: string): VerificationKey | undefined {
    if (this.#closed) return undefined;
    const key = this.#keys.get(kid);
    if (this.#stale() && this.#mayFetch()) {
      this.refresh().catch(() => undefined); // logged by #load; the stale keys keep serving
    }
    return key;
  }

  /**
   * The key for `kid`: from the cache, else after a refresh (shared with any refresh in flight;
   * skipped during the cooldown). Never rejects: when the endpoint fails, what the cache holds.
   */
  async resolve(kid: string): Promise<VerificationKey | undefined> {
    const id: unknown = kid; // from a token header: anything
    if (this.#closed || typeof id !== 'string' || id.length === 0 || id.length > MAX_KID_LENGTH) {
      return undefined;
    }
    const cached = this.get(kid);
    if (cached !== undefined) return cached;
    if (this.#inflight === undefined && !this.#mayFetch()) return undefined;
    await this.refresh().catch(() => undefined);
    return this.#keys.get(kid); // emptied by close() meanwhile, if it was called
  }

  /**
   * Fetches the JWKS now (ignoring the cooldown); concurrent callers share one fetch. Rejects when
   * the fetch fails — the previous keys are kept either way. Resolves without fetching once closed.
   */
  refresh(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#inflight ??= this.#load().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  /** Aborts a fetch in flight and empties the cache; later lookups answer undefined without fetching. */
  close(): void {
    this.#closed = true;
    this.#abort?.abort(new Error('RemoteJwks closed'));
    this.#keys = new Map();
  }

  #stale(): boolean {
    return this.#loadedAt === undefined || performance.now() - this.#loadedAt >= this.#maxAgeMs;
  }

  /**
   * Lookups may start a fetch once per cooldown — before the first success too, though then at
   * most a second apart, so a service that starts while its provider is down recovers quickly
   * without letting garbage `kid`s turn every request into an outbound fetch.
   */
  #mayFetch(): boolean {
    if (this.#inflight !== undefined) return false;
    const wait = this.#loadedAt === undefined ? Math.min(this.#cooldownMs, 1_000) : this.#cooldownMs;
    return performance.now() - this.#attemptedAt >= wait;
  }

  async #load(): Promise<void> {
    this.#attemptedAt = performance.now();
    try {
      const { keys, skipped } = await this.#fetchKeys();
      if (this.#closed) return;
      this.#keys = keys;
      this.#loadedAt = performance.now();
      this.#logger.debug('JWKS loaded', { jwks_url: this.#where(), keys: keys.size, skipped });
      if (this.#failing) {
        this.#failing = false;
        this.#logger.info('JWKS endpoint recovered', { jwks_url: this.#where(), keys: keys.size });
      }
    } catch (err) {
      if (!this.#closed && !this.#failing) {
        this.#failing = true;
        this.#logger.warn('JWKS fetch failed; keeping the cached keys until it recovers', {
          jwks_url: this.#where(),
          reason: describeFailure(err),
          stale_keys: this.#keys.size,
        });
      }
      throw err;
    }
  }

  async #fetchKeys(): Promise<{ keys: Map<string, VerificationKey>; skipped: number }> {
    const abort = new AbortController();
    this.#abort = abort;
    const timer = setTimeout(() => {
      abort.abort(new Error(`timed out after ${this.#timeoutMs} ms`));
    }, this.#timeoutMs);
    timer.unref();
    try {
      const response = await this.#fetch(this.#url, {
        redirect: 'error',
        headers: { accept: ACCEPT },
        signal: abort.signal,
      });
      if (!response.ok) {
        await response.body?.cancel();
        throw new Error(`HTTP ${response.status}`);
      }
      return parseKeySet(parseJson(await readCapped(response, this.#maxBytes)));
    } catch (err) {
      // fetch rejects with the abort reason; keep ours (timeout, closed) rather than a generic AbortError.
      throw abort.signal.aborted ? abort.signal.reason : err;
    } finally {
      clearTimeout(timer);
      if (this.#abort === abort) this.#abort = undefined;
    }
  }

  /** The URL without query or fragment, for logs. */
  #where(): string {
    return `${this.#url.origin}${this.#url.pathname}`;
  }
}

/** JSON.parse, whose error would quote the body (key material) in the log: only "invalid JSON" here. */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error('invalid JSON');
  }
}

/** A log-safe reason: the message, and the code of its cause (undici's "fetch failed" hides ECONNREFUSED there). */
function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  const code =
    typeof cause === 'object' && cause !== null && 'code' in cause && typeof cause.code === 'string'
      ? cause.code
      : cause instanceof Error
        ? cause.message
        : undefined;
  return code === undefined ? err.message : `${err.message} (${code})`;
}

/** The usable keys of a JWKS document; throws when it is not one or has no usable key. */
function parseKeySet(doc: unknown): { keys: Map<string, VerificationKey>; skipped: number } {
  const list = typeof doc === 'object' && doc !== null ? (doc as { keys?: unknown }).keys : undefined;
  if (!Array.isArray(list)) throw new Error('not a JWK Set (no "keys" array)');
  const keys = new Map<string, VerificationKey>();
  let skipped = 0;
  for (const jwk of list as unknown[]) {
    const key = jwkToVerificationKey(jwk);
    // A kid listed twice is ambiguous; the first entry wins and the others count as skipped.
    if (key?.kid === undefined || keys.has(key.kid)) skipped++;
    else keys.set(key.kid, key);
  }
  if (keys.size === 0) throw new Error(`no usable signature key among ${list.length} entries`);
  return { keys, skipped };
}
