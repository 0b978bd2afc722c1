/**
 * Signatures of hostile requests: path traversal, SQL injection, script (XSS/template/JNDI)
 * injection, command injection, scanner user agents and the paths scanners probe.
 *
 * Written to be specific rather than broad: a health API carries names such as O'Brien, notes
 * such as "BP < 120/80; select pharmacy" and FHIR search parameters, and none of those may be
 * blocked. Each pattern needs SQL or HTML *syntax*, not a bare keyword. The test corpora in
 * test/security/corpus.ts (attack probes and benign requests) are the contract.
 */

export type ThreatCategory =
  'path_traversal' | 'sql_injection' | 'script_injection' | 'command_injection' | 'scanner';

/** Where in the request a signature matched. */
export type ThreatLocation = 'path' | 'query' | 'body' | 'user_agent';

export interface Signature {
  /** Stable id, logged and counted (never the matched text: it may carry PHI). */
  readonly id: string;
  readonly category: ThreatCategory;
  /** A RegExp, or any `test` that runs in linear time. */
  readonly pattern: { test(text: string): boolean };
}

const sig = (id: string, category: ThreatCategory, pattern: Signature['pattern']): Signature => ({
  id,
  category,
  pattern,
});

const TEMPLATE_KEYWORD = /constructor|__proto__|\bthis\b|\[\s*['"]/gi;
const LOOKUP = /\$\{\s*(?:jndi|env|sys|java|lower|upper|date|::-)[:}]/i;

/**
 * `{{ … constructor … }}`-style template injection and `${jndi:…}` lookups. A regex for "`{{`
 * followed within 200 characters by a keyword" backtracks from every `{{`; this looks for the
 * (rare) keywords first and then back for an open `{{`, so it stays linear.
 */
const TEMPLATE = {
  test(text: string): boolean {
    if (text.includes('${') && LOOKUP.test(text)) return true;
    if (!text.includes('{{')) return false;
    TEMPLATE_KEYWORD.lastIndex = 0;
    for (let m = TEMPLATE_KEYWORD.exec(text); m !== null; m = TEMPLATE_KEYWORD.exec(text)) {
      const before = text.slice(Math.max(0, m.index - 200), m.index);
      const open = before.lastIndexOf('{{');
      if (open !== -1 && !before.includes('}', open)) return true;
    }
    return false;
  },
};

/**
 * Checked against decoded text. Most values in real traffic are words, numbers, dates and ids;
 * `PLAIN` strings skip every signature that needs punctuation, which is most of them.
 */
const TEXT_SIGNATURES: readonly Signature[] = [
  // Path traversal and sensitive files
  sig('traversal-dot-segment', 'path_traversal', /(?:^|[\\/])\.{2,}(?:[\\/]|$)/),
  sig(
    'traversal-sensitive-file',
    'path_traversal',
    /(?:^|[\\/])(?:etc[\\/](?:passwd|shadow|group|hosts|issue)|proc[\\/]self[\\/]|windows[\\/](?:win\.ini|system32)|boot\.ini|win\.ini)/i,
  ),
  // SQL injection: tautologies, comments after a quote, stacked statements, UNION, time and
  // error-based functions, catalogue tables.
  sig(
    'sql-tautology',
    'sql_injection',
    /(?:^|[\s'"()])(?:or|and|\|\||&&)[\s(]*(?:(['"]?)(\w+)\1\s*(?:=|like)\s*(['"]?)\2(?:\3|\s|$|--|#|\))|(['"])\4\s*=\s*\4)/i,
  ),
  sig(
    'sql-quote-boolean',
    'sql_injection',
    /['"`)]\s*(?:or|and|\|\|)[\s(]*(?:true|false|not\s|\d+\s*[=<>]|['"]\s*[=<>]|select\b|sleep\b|if\s*\(|ascii\s*\(|substr(?:ing)?\s*\(|exists\s*\()/i,
  ),
  sig('sql-comment-after-quote', 'sql_injection', /['"`][\s)]*(?:--|#|\/\*)[^'"]*$/),
  sig(
    'sql-stacked-statement',
    'sql_injection',
    /;\s*(?:drop\s+(?:table|database|schema|user)|delete\s+from|insert\s+into|update\s+\w+\s+set|truncate\s+(?:table\s+)?\w|alter\s+(?:table|user)|create\s+(?:table|user|function)|exec(?:ute)?\s+(?:\w|@)|shutdown\b|declare\s+@|select\s+(?:\*|@@|\w+\s*\(|\w+(?:\s*,\s*\w+)*\s+from\b))/i,
  ),
  sig('sql-union-select', 'sql_injection', /\bunion[\s+(]+(?:all[\s+]+|distinct[\s+]+)?\(?select\b/i),
  sig(
    'sql-time-delay',
    'sql_injection',
    /\b(?:sleep|pg_sleep|benchmark)\s*\(\s*\d|\bwaitfor\s+delay\s+['"]|\bdbms_pipe\.receive_message\b|\bdbms_lock\.sleep\b/i,
  ),
  sig(
    'sql-function-probe',
    'sql_injection',
    /\b(?:extractvalue|updatexml|load_file|utl_inaddr\.get_host_address|xp_cmdshell|sp_executesql)\s*\(|\binto\s+(?:out|dump)file\b|\bchar\s*\(\s*\d+\s*(?:,\s*\d+\s*)+\)|\bconcat(?:_ws)?\s*\([^)]{0,256}\bselect\b|@@version\b/i,
  ),
  sig(
    'sql-catalogue',
    'sql_injection',
    /\b(?:information_schema|pg_catalog|mysql\.user|sysobjects|syscolumns|sqlite_master)\b/i,
  ),
  sig(
    'sql-order-by-probe',
    'sql_injection',
    /['")]\s*(?:(?:order|group)\s+by\s+\d+|having\s+\d+\s*=)|\border\s+by\s+\d+\s*(?:--|#|\/\*)/i,
  ),
  sig('sql-subselect-concat', 'sql_injection', /['"]\s*(?:\|\||\+)\s*\(\s*select\b/i),
  // Script injection: HTML that executes, script URLs, template and JNDI lookups.
  sig(
    'xss-tag',
    'script_injection',
    /<[\s/]*(?:script|iframe|frame|frameset|object|embed|applet|meta|base|link|style|svg|math|form|img|image|body|details|video|audio|marquee|isindex|template|xss|input|button|select|textarea|keygen|source|track)\b/i,
  ),
  sig(
    'xss-event-handler',
    'script_injection',
    /\bon(?:error|load|mouseover|mouseenter|focus|blur|toggle|click|begin|end|animationstart|pointerover|pointerenter|start|finish|input|change|submit|wheel|scroll|unload|beforeunload|message|hashchange|popstate|resize|copy|paste|drag\w*|key\w+|mouse\w+|touch\w+)\s*=/i,
  ),
  sig(
    'xss-script-url',
    'script_injection',
    /\b(?:javascript|vbscript|livescript)\s*:|\bdata\s*:\s*text\/html\b/i,
  ),
  sig(
    'xss-dom-sink',
    'script_injection',
    /\bdocument\s*\.\s*(?:cookie|domain|write|location)\b|\bstring\s*\.\s*fromcharcode\s*\(|(?:^|[^\w.-])eval\s*\(|\balert\s*\(\s*(?:\d|['"`]|document)|\bconstructor\s*\.\s*constructor\s*\(/i,
  ),
  sig('template-injection', 'script_injection', TEMPLATE),
  // Command injection: a shell separator followed by a command used to probe.
  sig(
    'cmd-chained-command',
    'command_injection',
    /(?:[;|`\n]|&&|\$\()[ \t]{0,16}(?:(?:cat|more|less|head|tail|type)[ \t]+[/\\~]|(?:id|whoami|uname|ifconfig|ipconfig|hostname|pwd|ls|dir|env|printenv|netstat|ps)\b(?:[ \t]+-\w+)*[ \t]*(?:$|[;|&`)#\n])|(?:wget|curl|nc|ncat|netcat|ping|nslookup|dig|bash|sh|zsh|powershell|cmd(?:\.exe)?|python\d?|perl|php|ruby|telnet|rm|chmod|chown|sleep)[ \t]+(?:-\w|https?:|\/|\\|\d|'|")|(?:bash|sh)[ \t]*$)/i,
  ),
  sig(
    'cmd-substitution',
    'command_injection',
    /\$\([ \t]{0,16}[a-z][\w.-]{0,64}(?:\s[^)]{0,256})?\)|`[ \t]{0,16}(?:id|whoami|uname|cat|ls|wget|curl|nc|sleep|ping)\b[^`]{0,256}`/i,
  ),
];

/** Signatures that can match text made only of letters, digits, spaces and `_ - . , : @ /`. */
const PLAIN_SIGNATURES: readonly Signature[] = TEXT_SIGNATURES.filter((s) =>
  [
    'traversal-sensitive-file',
    'sql-union-select',
    'sql-catalogue',
    'sql-order-by-probe',
    'traversal-dot-segment',
    'xss-script-url',
    'template-injection',
  ].includes(s.id),
);

/** Words, numbers, dates, ids, e-mail addresses, simple paths: nothing a signature needs but the few above. */
const PLAIN = /^[\w .,:@/+\-\u00C0-\uFFFF]*$/;

/** Paths scanners request on every host they find: secrets, VCS metadata, admin panels of other stacks. */
const PROBE_PATH =
  /(?:^|\/)(?:\.(?:env|git|svn|hg|bzr|aws|ssh|docker|npmrc|htaccess|htpasswd|ds_store|bash_history|idea|vscode)(?:$|[/.])|wp-(?:admin|login|content|includes|config)|xmlrpc\.php|phpmyadmin|pma\/|myadmin|adminer|server-status|server-info|cgi-bin\/|actuator(?:$|\/)|console(?:$|\/)|phpunit|eval-stdin|vendor\/|telescope\/|\.well-known\/(?!(?:jwks\.json|openid-configuration|security\.txt|smart-configuration|change-password)$)|(?:web|app)\.config$|config\.(?:json|ya?ml|php|inc)$|(?:backup|dump|db|database)\.(?:sql|zip|tar|gz|bak)$)|\.(?:php\d?|phtml|asp|aspx|ashx|jsp|jspx|cgi|pl|cfm|bak|old|swp)(?:$|[/;])/i;

/** User agents of vulnerability scanners and attack tools (they announce themselves by default). */
const SCANNER_AGENT =
  /sqlmap|nikto|\bSF\/\d|nmap|masscan|acunetix|nessus|openvas|w3af|dirbuster|gobuster|wpscan|nuclei|zgrab|havij|fuzz faster u fool|\bffuf\b|feroxbuster|whatweb|arachni|skipfish|commix|jaeles|zmeu|morfeus|netsparker|\bappscan\b|webinspect|\bwfuzz\b|\bdirb\b|\bparos\b|\bxsser\b|\bhydra\b|\bmedusa\b|burp\s?suite|\bzap\/|owasp[\s_-]?zap|\bbbot\b|\bnaabu\b|\bhttpx\b - open|\binteractsh\b|\bsqlninja\b|\bbsqlbf\b|\bpangolin\b|\bgrabber\b|\bwebshag\b|\bvega\/|\bnmap scripting engine/i;

/** Percent-encodings of `.` `/` `\` as overlong UTF-8 (and their double-encoded forms). */
const OVERLONG = /%(?:25)?(?:c0|c1|e0|f0)%(?:25)?(?:80%(?:25)?)?(?:ae|af|9c|2e|2f|5c|80%(?:25)?ae)/i;

/**
 * A NUL in a URL cuts a file name short where a C library reads it (`report.pdf%00.php`). In a
 * JSON string it is only a character (a password may hold one), so bodies are not checked for it.
 */
const NULL_BYTE_IN_PATH = {
  signature: 'traversal-null-byte',
  category: 'path_traversal',
  location: 'path',
} as const;
const NULL_BYTE_IN_QUERY = { ...NULL_BYTE_IN_PATH, location: 'query' } as const;

/** A match: which signature, where. */
export interface ThreatMatch {
  readonly signature: string;
  readonly category: ThreatCategory;
  readonly location: ThreatLocation;
}

/**
 * Percent-decodes up to three times (double and triple encoding count), tolerating malformed
 * sequences (decoded byte by byte then), and turns `+` into a space for query text.
 */
export function decodeText(text: string, plusIsSpace: boolean): string {
  let out = plusIsSpace && text.includes('+') ? text.replaceAll('+', ' ') : text;
  for (let i = 0; i < 3 && out.includes('%'); i++) {
    let next: string;
    try {
      next = decodeURIComponent(out);
    } catch {
      next = out.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
    if (next === out) break;
    out = next;
  }
  return out;
}

/**
 * Inline SQL comments become spaces, except MySQL's versioned comments (`/*!50000UNION*\/`),
 * whose content MySQL runs. A linear scan: a regex here backtracks on unclosed comments.
 */
function withoutComments(text: string): string {
  let out = '';
  let from = 0;
  for (;;) {
    const start = text.indexOf('/*', from);
    const end = start === -1 ? -1 : text.indexOf('*/', start + 2);
    if (end === -1) return out + text.slice(from);
    const inner = text.slice(start + 2, end);
    out += `${text.slice(from, start)} ${inner.startsWith('!') ? inner.slice(1).replace(/^\d{5,6}/, '') : ''} `;
    from = end + 2;
  }
}

/** The first text signature `decoded` matches, or undefined. Inline SQL comments count as spaces. */
export function matchText(decoded: string, location: ThreatLocation): ThreatMatch | undefined {
  if (decoded.length === 0) return undefined;
  const text = decoded.includes('/*') ? withoutComments(decoded) : decoded;
  const list = PLAIN.test(text) ? PLAIN_SIGNATURES : TEXT_SIGNATURES;
  for (const s of list) {
    if (s.pattern.test(text)) return { signature: s.id, category: s.category, location };
  }
  return undefined;
}

/** Checks the raw (still encoded) path: overlong encodings, scanner probe paths, then the text signatures. */
export function matchPath(rawPath: string): ThreatMatch | undefined {
  if (rawPath.includes('%') && OVERLONG.test(rawPath))
    return { signature: 'traversal-overlong-utf8', category: 'path_traversal', location: 'path' };
  const decoded = decodeText(rawPath, false);
  if (decoded.includes('\0')) return NULL_BYTE_IN_PATH;
  if (PROBE_PATH.test(decoded))
    return { signature: 'scanner-probe-path', category: 'scanner', location: 'path' };
  // Path segments are not free text: only punctuation-bearing segments are worth the regexes.
  return matchText(decoded, 'path');
}

/** Checks a user agent: scanner names, and injections planted in it (log4shell, XSS). */
export function matchUserAgent(agent: string): ThreatMatch | undefined {
  if (SCANNER_AGENT.test(agent))
    return { signature: 'scanner-user-agent', category: 'scanner', location: 'user_agent' };
  const decoded = decodeText(agent, false);
  for (const s of TEXT_SIGNATURES) {
    if (s.category === 'script_injection' && s.pattern.test(decoded))
      return { signature: s.id, category: s.category, location: 'user_agent' };
  }
  return undefined;
}

/** Checks a raw query-string key or value (`+` is a space there). */
export function matchQueryText(raw: string): ThreatMatch | undefined {
  if (raw.includes('%') && OVERLONG.test(raw))
    return { signature: 'traversal-overlong-utf8', category: 'path_traversal', location: 'query' };
  const decoded = decodeText(raw, true);
  return decoded.includes('\0') ? NULL_BYTE_IN_QUERY : matchText(decoded, 'query');
}
