import type { Settings } from '../config/index.js';
import { ConfigError, positiveInteger, readOptions } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { ClientKeys, IpList, readIpv6Subnet } from '../net/ip.js';
import { connectRedis } from '../redis/index.js';
import { Bans } from './bans.js';
import type { HelmetOptions } from './headers.js';
import type { InputLimits, ParameterPollution, ResolvedLimits } from './input.js';
import { DEFAULT_LIMITS } from './input.js';
import type { SecurityEvent } from './monitor.js';
import type { SecurityOptions, ThreatOptions } from './types.js';

// Option readers of security(): each checks one option and throws a ConfigError naming it.

export const KNOWN = [
  'helmet',
  'cacheControl',
  'permissionsPolicy',
  'cors',
  'limits',
  'parameterPollution',
  'allowArrays',
  'json',
  'threats',
  'onEvent',
  'metrics',
  'logger',
  'settings',
] as const satisfies readonly (keyof SecurityOptions)[];

const THREAT_KNOWN = [
  'mode',
  'denyList',
  'allowList',
  'signatures',
  'ban',
  'redis',
  'prefix',
  'ipv6Subnet',
] as const satisfies readonly (keyof ThreatOptions)[];

const LIMIT_KNOWN = [
  'urlLength',
  'headerCount',
  'headerLength',
  'queryParameters',
  'bodySize',
  'jsonDepth',
] as const satisfies readonly (keyof InputLimits)[];

/** Compiled threat settings. */
export interface Threats {
  readonly block: boolean;
  readonly scan: boolean;
  readonly deny: IpList;
  readonly allow: IpList;
  readonly keys: ClientKeys;
  readonly bans: Bans | undefined;
}

export function readThreats(input: unknown, settings: Settings, logger: Logger): Threats {
  const options = readOptions<ThreatOptions>('security.threats', input, THREAT_KNOWN);
  const mode: unknown = options.mode ?? 'block';
  if (mode !== 'block' && mode !== 'monitor')
    throw ConfigError.option('security', 'threats.mode', "'block' or 'monitor'", mode);
  const signatures: unknown = options.signatures ?? true;
  if (typeof signatures !== 'boolean')
    throw ConfigError.option('security', 'threats.signatures', 'true or false', signatures);
  const ban = options.ban === false ? undefined : readBan(options.ban ?? {});
  const prefix = options.prefix ?? 'caduceus';
  if (typeof prefix !== 'string' || !/^[\w:.-]{1,64}$/.test(prefix))
    throw ConfigError.option('security', 'threats.prefix', '1–64 characters of A–Z a–z 0–9 _ : . -', prefix);
  const redisTarget =
    options.redis === false ? undefined : (options.redis ?? settings.externalServices.redisUrl);
  if (redisTarget !== undefined && typeof redisTarget !== 'string' && typeof redisTarget !== 'object')
    throw ConfigError.option(
      'security',
      'threats.redis',
      'a redis:// URL, an ioredis client or false',
      redisTarget,
    );
  const bans =
    ban === undefined
      ? undefined
      : new Bans(
          ban,
          logger,
          redisTarget === undefined ? undefined : connectRedis(redisTarget, 'security', logger),
          prefix,
        );
  return {
    block: mode === 'block',
    scan: signatures,
    deny: new IpList('security', 'threats.denyList', options.denyList ?? []),
    allow: new IpList('security', 'threats.allowList', options.allowList ?? []),
    keys: new ClientKeys(readIpv6Subnet('security.threats', options.ipv6Subnet)),
    bans,
  };
}

function readBan(input: unknown) {
  const ban = readOptions<{ threshold: number; windowMs: number; durationMs: number }>(
    'security.threats.ban',
    input,
    ['threshold', 'windowMs', 'durationMs'],
  );
  return {
    threshold: positiveInteger('security', 'threats.ban.threshold', ban.threshold ?? 10),
    windowMs: positiveInteger('security', 'threats.ban.windowMs', ban.windowMs ?? 60_000),
    durationMs: positiveInteger('security', 'threats.ban.durationMs', ban.durationMs ?? 900_000),
  };
}

export function readLimits(input: unknown): ResolvedLimits {
  const limits = readOptions<InputLimits>('security.limits', input, LIMIT_KNOWN);
  const bodySize = limits.bodySize ?? DEFAULT_LIMITS.bodySize;
  if (
    !(typeof bodySize === 'string' && /^\d+(?:\.\d+)?\s*(?:b|kb|mb|gb)?$/i.test(bodySize)) &&
    !(Number.isInteger(bodySize) && (bodySize as number) > 0)
  )
    throw ConfigError.option('security', 'limits.bodySize', "a byte count or a size such as '1mb'", bodySize);
  return {
    urlLength: positiveInteger('security', 'limits.urlLength', limits.urlLength ?? DEFAULT_LIMITS.urlLength),
    headerCount: positiveInteger(
      'security',
      'limits.headerCount',
      limits.headerCount ?? DEFAULT_LIMITS.headerCount,
    ),
    headerLength: positiveInteger(
      'security',
      'limits.headerLength',
      limits.headerLength ?? DEFAULT_LIMITS.headerLength,
    ),
    queryParameters: positiveInteger(
      'security',
      'limits.queryParameters',
      limits.queryParameters ?? DEFAULT_LIMITS.queryParameters,
    ),
    bodySize,
    jsonDepth: positiveInteger('security', 'limits.jsonDepth', limits.jsonDepth ?? DEFAULT_LIMITS.jsonDepth),
  };
}

export function readPollution(value: unknown): ParameterPollution {
  if (value !== 'last' && value !== 'first' && value !== 'reject' && value !== false)
    throw ConfigError.option('security', 'parameterPollution', "'last', 'first', 'reject' or false", value);
  return value;
}

export function readStrings(option: string, value: unknown): readonly string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
    throw ConfigError.option('security', option, 'an array of strings', value);
  return value;
}

export function readHelmet(value: unknown): HelmetOptions | false {
  if (value === undefined) return {};
  if (value === false) return false;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw ConfigError.option('security', 'helmet', "helmet's options object or false", value);
  return value;
}

export function readHeaderValue(option: string, value: unknown): string | false {
  if (value !== false && typeof value !== 'string')
    throw ConfigError.option('security', option, 'a header value or false', value);
  return value;
}

export function readHook(value: unknown): ((event: SecurityEvent) => void) | undefined {
  if (value !== undefined && typeof value !== 'function')
    throw ConfigError.option('security', 'onEvent', 'a function', value);
  return value as ((event: SecurityEvent) => void) | undefined;
}

export function readJson(value: unknown): boolean {
  if (value !== undefined && typeof value !== 'boolean')
    throw ConfigError.option('security', 'json', 'true or false', value);
  return value !== false;
}
