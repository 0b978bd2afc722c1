import type { Request } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import { BlockList, isIP } from 'node:net';
import { ConfigError } from '../errors/index.js';

/**
 * IPv4/IPv6 addresses and CIDR ranges, checked against request addresses. Wraps node's `BlockList`
 * (which also matches IPv4-mapped IPv6 addresses such as `::ffff:10.0.0.1` against IPv4 ranges)
 * with a bounded memo: `BlockList.check` costs ~3 µs, a Map hit ~50 ns, and a client sends many
 * requests from one address.
 */
export class IpList {
  readonly size: number;
  readonly #list = new BlockList();
  readonly #memo = new Map<string, boolean>();

  /**
   * @param entries addresses (`10.0.0.1`, `2001:db8::1`) and ranges (`10.0.0.0/8`, `2001:db8::/32`)
   * @throws ConfigError naming `factory` and `option` for anything else
   */
  constructor(factory: string, option: string, entries: unknown) {
    if (!Array.isArray(entries))
      throw ConfigError.option(factory, option, 'an array of IP addresses or CIDR ranges', entries);
    entries.forEach((entry: unknown, index) => {
      const [address = '', prefix, extra] = typeof entry === 'string' ? entry.trim().split('/') : [];
      const family = isIP(address);
      const max = family === 4 ? 32 : 128;
      const bits = prefix === undefined ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
      if (family === 0 || extra !== undefined || !(bits <= max))
        throw ConfigError.option(factory, `${option}[${index}]`, 'an IP address or CIDR range', entry);
      this.#list.addSubnet(address, bits, family === 4 ? 'ipv4' : 'ipv6');
    });
    this.size = entries.length;
  }

  /** Whether `address` (a socket's `remoteAddress` or `req.ip`) is in the list. */
  has(address: string | undefined): boolean {
    if (address === undefined || this.size === 0) return false;
    let hit = this.#memo.get(address);
    if (hit === undefined) {
      const family = isIP(address);
      hit = family !== 0 && this.#list.check(address, family === 4 ? 'ipv4' : 'ipv6');
      remember(this.#memo, address, hit);
    }
    return hit;
  }
}

/** Longest a memo grows before it starts over (a flood of distinct addresses cannot grow memory). */
const MEMO_MAX = 10_000;

function remember<V>(memo: Map<string, V>, key: string, value: V): void {
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(key, value);
}

/**
 * Turns client addresses into the identity limits and bans count against: an IPv4 address as is
 * (IPv4-mapped IPv6 too), an IPv6 address by its `/subnet` network — one host usually holds a
 * whole /64 or more, so counting single IPv6 addresses lets a client rotate around any limit.
 * express-rate-limit's `ipKeyGenerator` does the work; parsing IPv6 with it costs ~20 µs, so the
 * answers are memoised (bounded).
 */
export class ClientKeys {
  readonly #subnet: number;
  readonly #memo = new Map<string, string>();

  /** @param ipv6Subnet prefix length IPv6 clients are grouped by (32–64; default 56, as express-rate-limit). */
  constructor(ipv6Subnet = 56) {
    this.#subnet = ipv6Subnet;
  }

  key(address: string): string {
    if (!address.includes(':')) return address;
    let key = this.#memo.get(address);
    if (key === undefined) {
      key = isIP(address) === 6 ? ipKeyGenerator(address, this.#subnet) : address;
      remember(this.#memo, address, key);
    }
    return key;
  }
}

/** Checks an `ipv6Subnet` option: an integer prefix from 32 to 64. */
export function readIpv6Subnet(factory: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 32 || value > 64)
    throw ConfigError.option(factory, 'ipv6Subnet', 'an integer from 32 to 64', value);
  return value;
}

/**
 * Express's `trust proxy` decides `req.ip`, which limits, lists and bans start from. Judged on a
 * request: undefined (not yet: no X-Forwarded-For seen), null (fine), or the warning to log once.
 * `true` lets any client choose its address with X-Forwarded-For; off behind a proxy makes every
 * client the proxy.
 */
export function trustProxyProblem(
  req: Request,
  who: string,
  whenTrue: string,
  whenOff: string,
  judged?: WeakSet<object>,
): string | null | undefined {
  // Without X-Forwarded-For only `true` is a problem, and the app's first such request tells:
  // with `judged`, later ones are not looked at (reading the setting costs more than the header).
  const forwarded = req.headers['x-forwarded-for'] !== undefined;
  if (!forwarded && judged !== undefined) {
    if (judged.has(req.app)) return undefined;
    judged.add(req.app);
  }
  const setting: unknown = req.app.get('trust proxy');
  if (setting === true)
    return `${who}: 'trust proxy' is true, so any client can choose its address with X-Forwarded-For and ${whenTrue}; set it to your proxy's address, CIDR or hop count`;
  if (!forwarded) return undefined;
  if (setting === false || setting === undefined || setting === 0)
    return `${who}: requests carry X-Forwarded-For but 'trust proxy' is off, so every client behind the proxy ${whenOff}; set 'trust proxy' to your proxy's address, CIDR or hop count`;
  return null;
}
