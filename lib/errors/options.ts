import { ConfigError } from './app-error.js';

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] as number;
      prev[j] = Math.min(
        up + 1,
        (prev[j - 1] as number) + 1,
        diag + (a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1),
      );
      diag = up;
    }
  }
  return prev[b.length] as number;
}

/**
 * The common front of every factory: refuses `app.use(core.x)` (the factory passed instead of
 * called), non-objects and unknown keys (with a "did you mean" hint), and returns a copy without
 * the keys set to `undefined` — the caller's object is never mutated.
 */
export function readOptions<T extends object>(
  factory: string,
  options: unknown,
  known: readonly (keyof T & string)[],
): Partial<T> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw ConfigError.option(factory, 'options', 'an options object', options);
  }
  if ('method' in options && 'headers' in options) {
    throw new ConfigError(
      `${factory}: call it to get the middleware — app.use(core.${factory}()), not app.use(core.${factory})`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (!(known as readonly string[]).includes(key)) {
      const near = known.map((k) => [k, distance(key, k)] as const).sort((x, y) => x[1] - y[1])[0];
      const hint = near !== undefined && near[1] <= 2 ? ` Did you mean "${near[0]}"?` : '';
      throw new ConfigError(
        `${factory}: unknown option "${key}".${hint} Known options: ${known.join(', ')}`,
        [{ name: key, expected: `one of ${known.join(', ')}`, received: 'an unknown option' }],
      );
    }
    if (value !== undefined) out[key] = value;
  }
  return out as Partial<T>;
}

/** A positive integer option, or a ConfigError naming the factory and option. */
export function positiveInteger(factory: string, option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0)
    throw ConfigError.option(factory, option, 'a positive integer', value);
  return value;
}
