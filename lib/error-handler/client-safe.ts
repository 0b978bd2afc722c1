import type { Redactor } from '../logging/redact.js';

/**
 * An error's details as a client may see them: every string through the redactor (emails, phone
 * numbers, labelled values, your PHI patterns…), PHI and secret keys censored. `field_errors` is the
 * exception to key censoring: its keys name fields and its values describe problems
 * (`{ email: 'Invalid email format' }`), so both are kept as text and only cleaned of values in it.
 */
export function clientDetails(
  redactor: Redactor,
  details: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(details)) {
    if (value === undefined) continue;
    if (key === 'field_errors' && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const fields: Record<string, unknown> = {};
      for (const [field, problem] of Object.entries(value as Record<string, unknown>)) {
        fields[redactor.redactString(field)] =
          typeof problem === 'string' ? redactor.redactString(problem) : redactor(problem);
      }
      out.field_errors = fields;
      continue;
    }
    out[redactor.redactString(key)] = redactor.isSensitiveKey(key) ? redactor.censor : redactor(value);
  }
  return out;
}
