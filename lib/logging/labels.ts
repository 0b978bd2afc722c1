/**
 * Labelled values in text: `Name: Jane Doe`, `"dob":"1980-02-03"`, `phone=555…`, for the built-in PHI
 * labels and the application's PHI fields. The pattern is built once per redactor.
 */

/** Label words in text for the built-in PHI keys (`Name: Jane`, `"dob":"1980-02-03"`, `phone=555…`). */
const LABELS = [
  // `name` alone, unless it names a thing: `file name: x`, `host name: y`.
  '(?<!(?:file|host|service|table|column|field|route|event|queue|topic|key|app|metric|index|bucket|class|function|method|type|logger|domain|server|database|schema|constraint|relation|param|parameter|header|cookie|job|task|module|package|device|tag|attribute|property|span|operation|resource|test|branch|project|image|container|node|cluster|region|user) )name',
  '(?:first|last|full|given|family|middle|maiden|patient|legal|preferred)[ _-]?name',
  'surname',
  'e-?mail(?:[ _-]?address)?',
  '(?:phone|mobile|cell|fax)(?:[ _-]?(?:number|no))?',
  'tel(?:ephone)?',
  'dob',
  'date[ _-]?of[ _-]?birth',
  'birth[ _-]?date',
  'mrn',
  'medical[ _-]?record[ _-]?(?:number|no)',
  '(?<addr>(?:home[ _-]?|street[ _-]?|mailing[ _-]?|postal[ _-]?)?address|street)',
  'zip(?:[ _-]?code)?',
  'post(?:al)?[ _-]?code',
  'city',
  'insurance[ _-]?id',
  'member[ _-]?id',
  'policy[ _-]?number',
];

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** `family_name`, `familyName`, `family-name` → the words, for a label that matches all their spellings. */
function labelFor(field: string): string | undefined {
  const words = field
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .filter((w) => w.length > 0)
    .map(escapeRegExp);
  return words.length === 0 ? undefined : words.join('[ _.-]?');
}

/** The label pattern of a redactor: built-in labels plus the application's PHI fields. Built once. */
export function labelPattern(fields: readonly string[]): RegExp {
  const all = [...LABELS, ...fields.map(labelFor).filter((l): l is string => l !== undefined)];
  // No lookbehind in front: a pattern that starts with its words is found much faster. Where a
  // label may start is checked by labelStarts().
  return new RegExp(`(?:${all.join('|')})(?![A-Za-z0-9])["']?\\s*[:=]\\s*`, 'gi');
}

const LETTER = /[\p{L}_]/u;

/** Whether a label may start at `i`: not inside a word (`hostname:`), as for the word start of phi.ts' patterns. */
function labelStarts(s: string, i: number): boolean {
  if (i === 0) return true;
  const before = s[i - 1] as string;
  if (!LETTER.test(before)) return true;
  return i >= 2 && s[i - 2] === '\\' && (before === 'n' || before === 'r' || before === 't');
}

const OPEN = '([{';
const CLOSE = ')]}';
/** Unquoted values end at these (`\` starts an escaped control character). */
const STOP = new Set([',', ';', '&', '|', '"', ')', ']', '}', '<', '>', '\\']);

/** End (exclusive) of the quoted or bracketed value at `start`, skipping quoted strings inside. */
function closeOf(s: string, start: number): number {
  const first = s[start] as string;
  if (first === '"' || first === "'" || first === '`') {
    for (let i = start + 1; i < s.length; i++) {
      if (s[i] === '\\') i++;
      else if (s[i] === first) return i + 1;
    }
    return s.length;
  }
  let depth = 0;
  let quote = '';
  for (let i = start; i < s.length; i++) {
    const c = s[i] as string;
    if (quote !== '') {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (OPEN.includes(c)) depth++;
    else if (CLOSE.includes(c) && --depth === 0) return i + 1;
  }
  return s.length;
}

const NEXT_LABEL = /\s+[\w.-]{1,40}["']?\s*[:=]/y;
const CONTINUES = /[\p{Lu}\p{N}]/u;

/**
 * End (exclusive) of an unquoted value. After `:` it runs to the end of the clause (punctuation, or
 * where the next `key:` starts); after `=` (logfmt) to the next space, unless a capitalised word or a
 * number follows (`name=Jane Doe`, `phone=555 201 7790`). An address runs on past commas.
 */
function unquotedEnd(s: string, start: number, commas: boolean, equals: boolean): number {
  let end = start;
  for (let i = start; i < s.length; i++) {
    const c = s[i] as string;
    if (STOP.has(c) && !(commas && c === ',')) break;
    if (c === ' ' || c === '\t') {
      NEXT_LABEL.lastIndex = i;
      if (NEXT_LABEL.test(s)) break;
      if (equals && !CONTINUES.test(s[i + 1] ?? '')) break;
      continue;
    }
    end = i + 1;
  }
  return end;
}

/**
 * Replace the value after every PHI label in `s`: a quoted value keeps its quotes, a bracketed one
 * (`name: [{"family":"Doe"}]`) goes whole, an unquoted one runs to the end of its clause. Running it
 * on its own output changes nothing.
 */
export function redactLabelled(s: string, label: RegExp, censor: string): string {
  label.lastIndex = 0;
  let out = '';
  let from = 0;
  let m: RegExpExecArray | null;
  while ((m = label.exec(s)) !== null) {
    if (!labelStarts(s, m.index)) {
      label.lastIndex = m.index + 1;
      continue;
    }
    const start = m.index + m[0].length;
    if (start >= s.length) break;
    const c = s[start] as string;
    let valueStart = start;
    let valueEnd: number;
    let after = '';
    if (c === '"' || c === "'" || c === '`') {
      valueEnd = closeOf(s, start);
      valueStart = start + 1;
      if (valueEnd > valueStart && s[valueEnd - 1] === c) {
        valueEnd--;
        after = c;
      }
      if (valueEnd === valueStart) continue;
      // The quote itself is kept: `"name":"[REDACTED]"`.
      out += s.slice(from, valueStart) + censor + after;
      from = valueEnd + after.length;
      label.lastIndex = from;
      continue;
    }
    valueEnd = OPEN.includes(c)
      ? closeOf(s, start)
      : unquotedEnd(s, start, m.groups?.addr !== undefined, m[0].includes('='));
    if (valueEnd <= valueStart) continue;
    out += s.slice(from, valueStart) + censor;
    from = valueEnd;
    label.lastIndex = from;
  }
  return from === 0 ? s : out + s.slice(from);
}
