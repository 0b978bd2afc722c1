import { getContext } from '../context/index.js';
import type { JsonValue } from './definition.js';
import type { FlagContext, FlagEvaluation } from './evaluate.js';
import type { FeatureFlags, FlagResolution, FlagsProvider, OpenFeatureContext } from './types.js';

type Kind = 'string' | 'number' | 'object';

/** OpenFeature's error results: the caller's default, reason ERROR, and the code the spec names. */
function failure<T>(
  value: T,
  errorCode: 'FLAG_NOT_FOUND' | 'TYPE_MISMATCH',
  errorMessage: string,
): FlagResolution<T> {
  return { value, reason: 'ERROR', errorCode, errorMessage } as FlagResolution<T>;
}

function roleList(value: unknown): readonly string[] | undefined {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.filter((r): r is string => typeof r === 'string');
  return undefined;
}

/**
 * The evaluation context: `targetingKey` is the user and `roles` their roles; without either, the
 * current request's user (as for `flags.isEnabled()` without a context). `environment`, when a
 * string, overrides the flags' environment.
 */
function toFlagContext(context: OpenFeatureContext | undefined): FlagContext {
  const environment = typeof context?.environment === 'string' ? context.environment : undefined;
  const targetingKey = typeof context?.targetingKey === 'string' ? context.targetingKey : undefined;
  const roles = roleList(context?.roles);
  if (targetingKey !== undefined || roles !== undefined) return { userId: targetingKey, roles, environment };
  const request = getContext();
  return { userId: request?.userId, roles: request?.roles, environment };
}

function matches(kind: Kind, value: unknown): boolean {
  if (kind === 'object') return typeof value === 'object' && value !== null;
  return typeof value === kind;
}

/**
 * Flags through OpenFeature. Booleans are `isEnabled()`; strings, numbers and objects are the
 * value of the user's variant (a string flag without values answers the variant's name).
 * Reasons: `TARGETING_MATCH` (a rule turned it on, or a variant was picked), `STATIC` (a boolean
 * on for everyone), `DEFAULT` (off
 * for this context: the caller's default for variants, `false` for booleans), `DISABLED`
 * (`enabled: false`: the caller's default), `ERROR` with `FLAG_NOT_FOUND` or `TYPE_MISMATCH`.
 */
class CaduceusProvider implements FlagsProvider {
  readonly metadata = { name: 'caduceus' } as const;
  readonly runsOn = 'server';
  readonly #flags: FeatureFlags;

  constructor(flags: FeatureFlags) {
    this.#flags = flags;
  }

  resolveBooleanEvaluation(
    flagKey: string,
    defaultValue: boolean,
    context: OpenFeatureContext,
  ): Promise<FlagResolution<boolean>> {
    const ev = this.#flags.evaluate(flagKey, toFlagContext(context));
    const early = this.#early(flagKey, ev, defaultValue);
    if (early !== undefined) return Promise.resolve(early);
    return Promise.resolve(
      ev.enabled
        ? { value: true, reason: ev.reason === 'all' ? 'STATIC' : 'TARGETING_MATCH', ...variantOf(ev) }
        : { value: false, reason: 'DEFAULT' },
    );
  }

  resolveStringEvaluation(
    flagKey: string,
    defaultValue: string,
    context: OpenFeatureContext,
  ): Promise<FlagResolution<string>> {
    return Promise.resolve(this.#resolveVariant(flagKey, defaultValue, 'string', context));
  }

  resolveNumberEvaluation(
    flagKey: string,
    defaultValue: number,
    context: OpenFeatureContext,
  ): Promise<FlagResolution<number>> {
    return Promise.resolve(this.#resolveVariant(flagKey, defaultValue, 'number', context));
  }

  resolveObjectEvaluation<T extends JsonValue>(
    flagKey: string,
    defaultValue: T,
    context: OpenFeatureContext,
  ): Promise<FlagResolution<T>> {
    return Promise.resolve(this.#resolveVariant(flagKey, defaultValue, 'object', context));
  }

  #early<T>(flagKey: string, ev: FlagEvaluation, defaultValue: T): FlagResolution<T> | undefined {
    if (ev.reason === 'unknown')
      return failure(defaultValue, 'FLAG_NOT_FOUND', `flag "${flagKey}" is not defined`);
    if (ev.reason === 'disabled') return { value: defaultValue, reason: 'DISABLED' };
    return undefined;
  }

  #resolveVariant<T>(
    flagKey: string,
    defaultValue: T,
    kind: Kind,
    context: OpenFeatureContext,
  ): FlagResolution<T> {
    const definition = this.#flags.getFlag(flagKey);
    if (definition !== undefined && definition.variants === undefined)
      return failure(defaultValue, 'TYPE_MISMATCH', `flag "${flagKey}" has no variants, so no ${kind} value`);
    const ev = this.#flags.evaluate(flagKey, toFlagContext(context));
    const early = this.#early(flagKey, ev, defaultValue);
    if (early !== undefined) return early;
    if (!ev.enabled || ev.variant === undefined) return { value: defaultValue, reason: 'DEFAULT' };
    const value = ev.value === undefined && kind === 'string' ? ev.variant : ev.value;
    if (!matches(kind, value))
      return failure(
        defaultValue,
        'TYPE_MISMATCH',
        `variant "${ev.variant}" of flag "${flagKey}" has no ${kind} value`,
      );
    // Variants are picked per user even for a flag that is on for everyone: always a targeting match.
    return { value: value as T, variant: ev.variant, reason: 'TARGETING_MATCH' };
  }
}

function variantOf(ev: FlagEvaluation): { variant?: string } {
  return ev.variant === undefined ? {} : { variant: ev.variant };
}

export function openFeatureProvider(flags: FeatureFlags): FlagsProvider {
  return new CaduceusProvider(flags);
}
