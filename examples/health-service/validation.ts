import { z } from 'zod';
import { ValidationError } from '../../lib/index';

/** Messages name the problem, never the submitted value (it may be PHI or a password). */
export const required = (what: string) => (issue: { input: unknown }) =>
  issue.input === undefined || issue.input === null ? 'is required' : `must be ${what}`;

/**
 * An object schema that names every unknown key in `field_errors` (`{ notes: 'is not a known
 * field' }`) instead of one anonymous "unrecognized keys" message.
 */
export function strictFields<S extends z.core.$ZodLooseShape>(shape: S) {
  return z.looseObject(shape, { error: 'must be a JSON object' }).check(
    z.superRefine(
      (value: Record<string, unknown>, ctx) => {
        for (const key of Object.keys(value)) {
          if (!Object.hasOwn(shape, key))
            ctx.addIssue({ code: 'custom', path: [key.slice(0, 64)], message: 'is not a known field' });
        }
      },
      {
        when: (payload) =>
          typeof payload.value === 'object' && payload.value !== null && !Array.isArray(payload.value),
      },
    ),
  );
}

/** Parse a request body with `schema`, or throw a 422 VALIDATION_ERROR naming each bad field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown, message: string): z.output<S> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const fieldErrors: Record<string, string> = {};
  for (const issue of result.error.issues)
    fieldErrors[issue.path.map(String).join('.') || '_'] ??= issue.message;
  throw new ValidationError(message, fieldErrors);
}
