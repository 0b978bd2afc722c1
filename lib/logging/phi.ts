import { redactLabelled } from './labels.js';

/**
 * What PHI mode recognises: identifying key names, and the shapes of identifiers in free text.
 * Everything here is compiled once, at module load or in `createRedactor()`, never per line.
 */

/** Keys (normalised: lower case, letters and digits only) that hold PHI when they are exactly one of these. */
export const PHI_EXACT = [
  'name',
  'firstname',
  'lastname',
  'fullname',
  'givenname',
  'familyname',
  'middlename',
  'patientname',
  'maidenname',
  'surname',
  'forename',
  'nickname',
  'preferredname',
  'legalname',
  'email',
  'emailaddress',
  'phone',
  'phonenumber',
  'mobile',
  'telephone',
  'telecom',
  'fax',
  'dob',
  'dateofbirth',
  'birthdate',
  'birthday',
  'address',
  'addressline',
  'addressline1',
  'addressline2',
  'street',
  'streetaddress',
  'city',
  'zip',
  'zipcode',
  'postcode',
  'postalcode',
  'mrn',
  'medicalrecordnumber',
  'insuranceid',
  'memberid',
  'policynumber',
  'nhsnumber',
  'licensenumber',
  'driverslicense',
  'passport',
  'passportnumber',
  'diagnosis',
  'diagnoses',
  'condition',
  'medication',
  'medications',
  'notes',
  'clinicalnotes',
];

/**
 * Keys that hold PHI when they end with one of these (`patient_email`, `homePhone`, `guardianDob`).
 * Only endings no ordinary key has: not `name` (`file_name`, `service_name`) nor `address`
 * (`ip_address`, `remoteAddress`).
 */
export const PHI_SUFFIXES = [
  'email',
  'emailaddress',
  'phone',
  'phonenumber',
  'mobilenumber',
  'faxnumber',
  'dob',
  'dateofbirth',
  'birthdate',
  'mrn',
  'medicalrecordnumber',
  'firstname',
  'lastname',
  'fullname',
  'givenname',
  'familyname',
  'middlename',
  'maidenname',
  'surname',
  'homeaddress',
  'streetaddress',
  'mailingaddress',
  'postaladdress',
  'billingaddress',
  'zipcode',
  'postcode',
  'postalcode',
];

/**
 * Word start: not after a letter — except the `n`, `r` or `t` of a control character the redactor
 * has already escaped (`bad record\\nname: Jane`), which starts a new line of the original. A digit
 * before is allowed: it may end a value (a ZIP) that a later pattern redacts, and redacting twice
 * must change nothing.
 */
const START = String.raw`(?:(?<=\\[nrt])|(?<![\p{L}_]))`;

/** Emails, also percent-encoded (`jane%40example.org` in a path). Bounded runs: no quadratic backtracking. */
export const EMAIL = /[\w.%+-]{1,64}(?:@|%40)[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}/g;
/**
 * North American formats (not after a digit: a letter before it may be the end of a value already
 * redacted, and redacting twice must change nothing): `(555) 123-4567`, `555.123.4567`, `+1 555 123 4567`, `1-800-555-0199`. */
export const PHONE = new RegExp(
  String.raw`(?<![\d+])(?:(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}|\+\d{8,15})(?!\d)`,
  'g',
);
/**
 * International numbers written with a `+` (or `%2B`) and separated groups: `+44 20 7946 0958`,
 * `+33 1 42 68 53 00`, `+49 (0)30 901820`. Every group but the first needs a separator, so a long
 * run of digits cannot be split many ways (no catastrophic backtracking). 8–15 digits in all.
 */
export const INTL_PHONE =
  /(?<![+%])(?:\+|%2B)\d{1,4}(?:[ .\-\u00a0](?:\(\d{1,4}\) ?\d{1,8}|\d{1,8})){1,6}(?!\w)/gi;

export function hasEightDigits(s: string): boolean {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57 && ++n === 8) return true;
  }
  return false;
}

export const countDigits = (s: string): number => {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
};

/**
 * PostgreSQL's `detail` echoes the row: `Key (email)=(a@b.c) already exists.`, `Key (lower(email::text))=(…)`,
 * `… conflicts with existing key (during)=(…)`. The columns stay, the values go.
 */
export const PG_KEY =
  /(?<![A-Za-z_])([Kk]ey \(.*?\)=\().*\)(?= already exists| is not present| is still referenced| conflicts with|\.?$)/g;
/** PostgreSQL's `detail` of a NOT NULL or CHECK violation: `Failing row contains (1, Jane, 1980-02-03).` */
export const PG_FAILING_ROW = /(Failing row contains \().*\)/g;
/**
 * PostgreSQL data errors quote the value: `invalid input syntax for type date: "Jane"`,
 * `value "123…" is out of range`. At the end of the message, or of its line in a stack.
 */
export const PG_VALUE = /(: |(?<![A-Za-z_])value )"(?:[^"\\]|\\.)*"(?= is out of range|$|\\n)/g;
/** SQL in text (a Knex message logged by hand): its string literals are values, often PHI. */
export const SQL_HINT =
  /\b(?:insert into|update\s+\S+\s+set|select\s[\s\S]{0,500}?\sfrom|delete from|values\s*\()/i;
export const SQL_LITERAL = /'(?:[^'\\]|\\.|'')*'/g;
/** V8's JSON.parse message echoes the input: `Unexpected token 'J', "Jane Doe, "... is not valid JSON`. */
export const JSON_ECHO = /, ".*"(\.\.\.)? is not valid JSON/g;

const MONTH =
  'jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?';
const DATE = [
  '\\d{4}[-/.]\\d{1,2}[-/.]\\d{1,2}',
  '\\d{1,2}[-/.]\\d{1,2}[-/.]\\d{2,4}',
  `\\d{1,2}(?:st|nd|rd|th)?[ -](?:${MONTH})\\.?,?[ -]\\d{2,4}`,
  `(?:${MONTH})\\.? \\d{1,2}(?:st|nd|rd|th)?,? \\d{4}`,
  '\\d{8}',
].join('|');
/**
 * A date introduced as a birth date, with or without a separator: `DOB 03/02/1980`,
 * `born on March 3, 1980`, `date of birth 1980-02-03`. A bare date is kept: it cannot be told from
 * the date of an appointment or of the log line.
 */
export const DOB = new RegExp(
  `${START}(DOB|D\\.O\\.B\\.?|date of birth|birth ?date|born(?: on)?)(\\s*[:=]?\\s*)(?:${DATE})(?![\\p{N}])`,
  'giu',
);
/** `MRN 00123456`, `MRN#A-1234`, `mrn-123456`, `MRN no. 4455`: the value must hold a digit. */
export const MRN = new RegExp(
  String.raw`${START}(MRN(?:\s*(?:#|no\.?|number))?\s*[:=#-]?\s*)(?=[A-Z-]{0,30}\d)[A-Z0-9][A-Z0-9-]{2,30}`,
  'giu',
);
/** A courtesy title and the capitalised words after it: `Mrs. Jane Doe`, `Mr O'Brien`. (Not `Dr`: clinicians.) */
export const HONORIFIC = new RegExp(
  String.raw`${START}(M(?:rs?|s|iss|x)\.?\s+)\p{Lu}[\p{L}'’-]{0,40}(?:\s+\p{Lu}[\p{L}'’-]{0,40}){0,2}`,
  'gu',
);
const STREET_TYPE =
  'Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Square|Sq|Circle|Trail|Gardens|Row|Walk';
/** A house number, up to four capitalised words and a street type: `742 Evergreen Terrace`, `12 N. Main St, Apt 4B`. */
export const STREET = new RegExp(
  `${START}(?<!-)\\d{1,6}[A-Za-z]?\\s+(?:\\p{Lu}[\\p{L}'-]{0,30}\\.?\\s+){1,4}(?:${STREET_TYPE})\\b\\.?(?:,?\\s+(?:Apt|Apartment|Suite|Ste|Unit|Flat)\\.?\\s*#?[\\w-]+)?`,
  'gu',
);
export const PO_BOX = /(?<![A-Za-z])P\.? ?O\.? Box \d+/gi;
/** `Springfield, IL 62704`, `Portland, OR 97201-1234`: city, state and ZIP. */
export const CITY_STATE_ZIP =
  /(?:\p{Lu}[\p{L}.'-]{0,30}\s){0,2}\p{Lu}[\p{L}.'-]{0,30},\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?(?!\d)/gu;
/** ZIP+4 on its own: `62704-1234`. A bare five-digit ZIP is kept: it cannot be told from any number. */
export const ZIP4 = /(?<![\w-])\d{5}-\d{4}(?![\w-])/g;
/** UK (`SW1A 1AA`, `M1 1AE`) and Canadian (`K1A 0B1`) postcodes, written with their space. */
export const POSTCODE =
  /(?<![A-Za-z0-9])(?:[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}|[A-Z]\d[A-Z] \d[A-Z]\d)(?![A-Za-z0-9])/g;

/**
 * Cheap pre-check for PHI mode: a string with none of these cannot match a PHI pattern or label
 * (emails have `@`, labels `:` or `=`, phone numbers 8 digits, addresses a digit before a capital…).
 */
export const PHI_HINT =
  /[A-Za-z]['"]?\s*[:=]|["']|\)=\(|Failing row|%40|%2B|\d\s+[A-Z]|[A-Z]\d|[A-Z]{2}\s+\d{5}|M(?:rs?|s|iss|x)\b|MRN|mrn|[Bb]orn|DOB|[Dd]ob|Box/;

/** Cheap guards: each pattern below runs only on strings that pass its guard. */
export const LABEL_HINT = /[A-Za-z]['"]?\s*[:=]/;
export const DOB_HINT = /DOB|D\.O\.B|[Bb]irth|[Bb]orn|dob/;
export const MRN_HINT = /mrn/i;
export const HONORIFIC_HINT = /M(?:rs?|s|iss|x)\b/;
export const ADDRESS_HINT = /\d\s+[A-Z]|\d[A-Z\d]? \d[A-Z]|Box|\d{5}-\d{4}|[A-Z]{2}\s+\d{5}/;

/** The PHI-mode pass over a string that may hold PHI (see phi.ts for each pattern). */
export function phiPass(s: string, censor: string, label: RegExp): string {
  let out = s;
  if (out.includes('ey (')) out = out.replace(PG_KEY, `$1${censor})`);
  if (out.includes('Failing row')) out = out.replace(PG_FAILING_ROW, `$1${censor})`);
  if (out.includes("'") && SQL_HINT.test(out)) out = out.replace(SQL_LITERAL, `'${censor}'`);
  if (out.includes('"')) {
    out = out.replace(PG_VALUE, `$1"${censor}"`);
    if (out.includes('not valid JSON')) out = out.replace(JSON_ECHO, `, "${censor}"$1 is not valid JSON`);
  }
  if (out.includes('@') || out.includes('%40')) out = out.replace(EMAIL, censor);
  if (hasEightDigits(out)) {
    out = out.replace(PHONE, censor).replace(INTL_PHONE, (m) => {
      const n = countDigits(m);
      return n >= 8 && n <= 15 ? censor : m;
    });
  }
  if (LABEL_HINT.test(out)) out = redactLabelled(out, label, censor);
  if (DOB_HINT.test(out)) out = out.replace(DOB, `$1$2${censor}`);
  if (MRN_HINT.test(out)) out = out.replace(MRN, `$1${censor}`);
  if (HONORIFIC_HINT.test(out)) out = out.replace(HONORIFIC, `$1${censor}`);
  if (ADDRESS_HINT.test(out)) {
    out = out
      .replace(STREET, censor)
      .replace(PO_BOX, censor)
      .replace(CITY_STATE_ZIP, censor)
      .replace(ZIP4, censor)
      .replace(POSTCODE, censor);
  }
  return out;
}
