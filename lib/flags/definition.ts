import { z } from 'zod';
import { AppError, ConfigError } from '../errors/index.js';

/** A JSON value, as a variant's `value` may hold. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** One variant of a flag: its share of the users the flag is on for, and an optional value. */
export interface FlagVariant {
  /** 1–64 characters of `A–Z a–z 0–9 _ . -`; reported as the metric's `result` label. */
  readonly name: string;
  /** Relative weight (≥ 0); shares are `weight / sum of weights`. */
  readonly weight: number;
  /** What OpenFeature's string, number and object evaluations return for this variant. */
  readonly value?: JsonValue;
}

/**
 * A feature flag. Everything but `enabled` is optional; see docs/flags.md for the order in which
 * the rules apply.
 *
 * @example
 * { enabled: true, roles: ['admin'], percentage: 10, environments: ['staging', 'production'] }
 */
export interface FlagDefinition {
  /** `false` turns the flag off for everyone, whatever the other rules say. */
  readonly enabled: boolean;
  /** User ids the flag is on for. */
  readonly users?: readonly string[];
  /** Roles the flag is on for (any one of them). */
  readonly roles?: readonly string[];
  /** Share of the other users (0–100, two decimals) the flag is on for, sticky per user. */
  readonly percentage?: number;
  /** Environments (`NODE_ENV` values) the flag can be on in; elsewhere it is off. */
  readonly environments?: readonly string[];
  /** From when the flag can be on: ISO 8601 with an offset, or epoch milliseconds. Stored as ISO. */
  readonly startsAt?: string | number | Date;
  /** Until when (exclusive) the flag can be on. Stored as ISO. */
  readonly endsAt?: string | number | Date;
  /** Weighted variants, sticky per user, for those the flag is on for. */
  readonly variants?: readonly FlagVariant[];
  /** What the flag is for (shown to admins; never evaluated). */
  readonly description?: string;
}

/** A definition as stored and returned: dates as ISO strings, frozen. */
export interface StoredFlagDefinition extends FlagDefinition {
  readonly startsAt?: string;
  readonly endsAt?: string;
}

/** Flag names: 1–100 characters of `A–Z a–z 0–9 _ . : -`, starting with a letter or digit. */
export const FLAG_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$/;
const VARIANT_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Buckets of the sticky hash: a percentage with two decimals is a whole number of buckets. */
export const BUCKETS = 10_000;
const MAX_USERS = 10_000;

const text = (what: string, max: number) =>
  z
    .string({ error: `must be ${what}` })
    .min(1, { error: `must be ${what}` })
    .max(max, { error: `must be at most ${max} characters` });

const list = (item: z.ZodString, what: string, max: number) =>
  z
    .array(item, { error: `must be a list of ${what}` })
    .max(max, { error: `must list at most ${max} ${what}` });

const isoDateTime = z.iso.datetime({ offset: true });
const INSTANT_PROBLEM =
  'must be an ISO 8601 date-time with an offset (2025-01-31T09:00:00Z) or epoch milliseconds';

/** An ISO 8601 date-time with an offset, epoch milliseconds or a Date → ISO string (UTC). */
const instant = z.unknown().transform((value, ctx) => {
  if (value === undefined) return undefined;
  const ms =
    value instanceof Date
      ? value.getTime()
      : typeof value === 'number'
        ? Number.isInteger(value) && value >= 0 && value <= 8.64e15
          ? value
          : Number.NaN
        : isoDateTime.safeParse(value).success
          ? Date.parse(value as string)
          : Number.NaN;
  if (Number.isNaN(ms)) {
    ctx.addIssue({ code: 'custom', message: INSTANT_PROBLEM });
    return z.NEVER;
  }
  return new Date(ms).toISOString();
});

const variant = z.strictObject(
  {
    name: z.string({ error: 'must be a string' }).regex(VARIANT_NAME, {
      error: 'must be 1–64 characters of A–Z a–z 0–9 _ . -',
    }),
    weight: z
      .number({ error: 'must be a number' })
      .nonnegative({ error: 'must be 0 or more' })
      .max(1_000_000, { error: 'must be at most 1000000' }),
    value: z.json({ error: 'must be a JSON value' }).optional(),
  },
  { error: 'must be an object { name, weight, value? }' },
);

const schema = z
  .strictObject(
    {
      enabled: z.boolean({ error: 'must be true or false' }),
      users: list(text('a user id', 256), 'user ids', MAX_USERS).optional(),
      roles: list(text('a role', 128), 'roles', 100).optional(),
      percentage: z
        .number({ error: 'must be a number from 0 to 100' })
        .min(0, { error: 'must be a number from 0 to 100' })
        .max(100, { error: 'must be a number from 0 to 100' })
        .refine((p) => Number.isInteger(Math.round(p * 100 * 1e6) / 1e6), {
          error: 'must have at most two decimals',
        })
        .optional(),
      environments: list(text('an environment name', 64), 'environments', 20).optional(),
      startsAt: instant.optional(),
      endsAt: instant.optional(),
      variants: z
        .array(variant, { error: 'must be a list of { name, weight, value? }' })
        .min(1, { error: 'must list at least one variant' })
        .max(20, { error: 'must list at most 20 variants' })
        .optional(),
      description: z
        .string({ error: 'must be a string' })
        .max(500, { error: 'must be at most 500 characters' })
        .optional(),
    },
    { error: 'must be an object' },
  )
  .superRefine((def, ctx) => {
    const { startsAt, endsAt } = def;
    if (typeof startsAt === 'string' && typeof endsAt === 'string' && endsAt <= startsAt)
      ctx.addIssue({ code: 'custom', path: ['endsAt'], message: 'must be later than startsAt' });
    if (def.variants !== undefined) {
      const names = new Set<string>();
      def.variants.forEach((v, i) => {
        if (names.has(v.name))
          ctx.addIssue({
            code: 'custom',
            path: ['variants', i, 'name'],
            message: 'is already used by another variant',
          });
        names.add(v.name);
      });
      if (!def.variants.some((v) => v.weight > 0))
        ctx.addIssue({
          code: 'custom',
          path: ['variants'],
          message: 'must give at least one variant a weight above 0',
        });
    }
  });

/** Problems with a definition: field (zod path joined with `.`) → a short problem, never the value. */
export type FieldErrors = Record<string, string>;

/** Validate and normalise a definition; the field errors when it is invalid. */
export function parseDefinition(
  input: unknown,
): { ok: true; definition: StoredFlagDefinition } | { ok: false; errors: FieldErrors } {
  const result = schema.safeParse(input);
  if (result.success) {
    const data = result.data as StoredFlagDefinition;
    // Drop absent optional keys, so a stored definition reads back as it was written.
    const clean = Object.fromEntries(Object.entries(data).filter(([, v]) => v !== undefined));
    return { ok: true, definition: deepFreeze(clean) as StoredFlagDefinition };
  }
  const errors: FieldErrors = {};
  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) errors[[...issue.path, key].join('.')] = 'is not a known field';
      continue;
    }
    const field = issue.path.length === 0 ? 'definition' : issue.path.map(String).join('.');
    errors[field] ??= issue.message;
  }
  return { ok: false, errors };
}

/** Is `name` a valid flag name? */
export function isFlagName(name: unknown): name is string {
  return typeof name === 'string' && FLAG_NAME.test(name);
}

const NAME_PROBLEM = 'must be 1–100 characters of A–Z a–z 0–9 _ . : -, starting with a letter or digit';

/** 400 VALIDATION_ERROR for a bad name or definition given to `setFlag()` or the admin router. */
export function invalidFlag(errors: FieldErrors): AppError {
  return new AppError('Invalid feature flag definition', {
    status: 400,
    code: 'VALIDATION_ERROR',
    details: { field_errors: errors },
  });
}

/** The flag name, or a 400 naming the problem. */
export function checkName(name: unknown): string {
  if (!isFlagName(name)) throw invalidFlag({ name: NAME_PROBLEM });
  return name;
}

/** The `flags` option, validated at creation: a ConfigError that names the flag and the field. */
export function readSeed(factory: string, input: unknown): Map<string, StoredFlagDefinition> {
  const out = new Map<string, StoredFlagDefinition>();
  if (input === undefined) return out;
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw ConfigError.option(factory, 'flags', 'an object of flag name → definition', input);
  for (const [name, raw] of Object.entries(input)) {
    if (!FLAG_NAME.test(name))
      throw new ConfigError(
        `${factory}: flags has an invalid name ${JSON.stringify(name.slice(0, 40))}: it ${NAME_PROBLEM}`,
        [{ name: 'flags', expected: NAME_PROBLEM, received: `a name of ${name.length} characters` }],
      );
    const parsed = parseDefinition(raw);
    if (!parsed.ok) {
      const issues = Object.entries(parsed.errors).map(([field, problem]) => ({
        name: `flags.${name}.${field}`,
        expected: problem,
        received: 'an invalid value',
      }));
      const list = issues.map((i) => `${i.name} ${i.expected}`).join('; ');
      throw new ConfigError(`${factory}: invalid definition of flag "${name}": ${list}`, issues);
    }
    out.set(name, parsed.definition);
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
