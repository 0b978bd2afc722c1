/**
 * What the monitoring files query, read without a YAML or PromQL parser (the repository has
 * neither as a dependency): the metric names of a PromQL expression, the `expr` of each rule in a
 * rules file (the test checks the count against promtool's), the queries of a Grafana dashboard,
 * and the metric families of a Prometheus text exposition.
 */

/**
 * Queried by an alert or a panel but emitted only from a later release. The contract test fails
 * when one of them appears in /metrics, so that it is taken off this list then. (The circuit
 * breaker families arrived with the example's lab breaker: none is pending now.)
 */
export const PENDING: readonly string[] = [];

/** Series Prometheus makes itself for each target, never in an exposition. */
export const SYNTHETIC: readonly string[] = ['up'];

/** Words that look like metric names in PromQL but are operators and modifiers. */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'offset',
  'atan2',
  'inf',
  'nan',
]);

/**
 * The metric names an expression selects, sorted and deduplicated: every identifier that is not a
 * function (followed by `(`), a keyword, a label inside `{…}` or `by (…)`, a duration inside
 * `[…]`, or part of a number or a Grafana `$variable`. Names given as `{__name__="x"}` are not seen.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/#.*$/gm, '')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\boffset\s+-?[\w$]+/g, '');
  const names = new Set<string>();
  // The identifier is taken whole ((?![\w:])) before asking whether a `(` follows, so that `rate(`
  // does not leave `rat` behind.
  for (const m of stripped.matchAll(/(?<![\w.$:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()/g)) {
    const name = m[1]!;
    if (!KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names].sort();
}

/** `name{…}` selectors of an expression: each metric name with its label matchers. */
export function selectors(expr: string): { name: string; matchers: string }[] {
  return [...expr.matchAll(/(?<![\w.$:])([A-Za-z_:][\w:]*)\s*\{([^}]*)\}/g)].map((m) => ({
    name: m[1]!,
    matchers: m[2]!,
  }));
}

/**
 * The value of every `expr:` key of a YAML rules file: a plain or quoted scalar on the key's line,
 * or a `|` / `>` block (its more-indented lines). Good enough for files promtool has validated;
 * the caller compares the count with promtool's "N rules found".
 */
export function ruleExpressions(yaml: string): string[] {
  const lines = yaml.split('\n');
  const exprs: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*(?:-\s+)?)expr:\s*(.*)$/.exec(lines[i]!);
    if (m === null) continue;
    const indent = m[1]!.length;
    const first = m[2]!.trim();
    const block: string[] = [];
    while (i + 1 < lines.length) {
      const next = lines[i + 1]!;
      if (next.trim() !== '' && next.length - next.trimStart().length <= indent) break;
      block.push(next.trim());
      i++;
    }
    if (/^[|>][-+]?\d*$/.test(first)) exprs.push(block.join('\n').trim());
    else if (first.startsWith("'")) exprs.push(first.slice(1, -1).replaceAll("''", "'"));
    else if (first.startsWith('"')) exprs.push(JSON.parse(first) as string);
    else exprs.push([first, ...block].join(' ').trim());
  }
  return exprs;
}

interface DashboardPanel {
  title?: string;
  type: string;
  targets?: { expr?: string }[];
  panels?: DashboardPanel[];
}

/** Every query of a dashboard (rows' nested panels included) and of its query variables. */
export function dashboardQueries(dashboard: {
  panels: DashboardPanel[];
  templating?: { list: { type: string; definition?: string }[] };
}): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const visit = (panels: readonly DashboardPanel[]): void => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (target.expr !== undefined)
          out.push({ where: `panel "${panel.title ?? '?'}"`, expr: target.expr });
      }
      visit(panel.panels ?? []);
    }
  };
  visit(dashboard.panels);
  for (const variable of dashboard.templating?.list ?? []) {
    // label_values(<selector>, label): the selector is the query.
    const m =
      variable.type === 'query' ? /^label_values\((.*),\s*\w+\)$/.exec(variable.definition ?? '') : null;
    if (m !== null) out.push({ where: `variable ${variable.definition}`, expr: m[1]! });
  }
  return out;
}

/** Metric families of a Prometheus text exposition (0.0.4), from its `# TYPE` lines. */
export function families(exposition: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  return types;
}

/**
 * Whether a queried name is exposed: a family of that name, or `<family>_bucket` of a histogram,
 * `<family>_sum` / `_count` of a histogram or summary.
 */
export function isExposed(name: string, types: ReadonlyMap<string, string>): boolean {
  if (types.has(name)) return true;
  const m = /^(.+)_(bucket|sum|count)$/.exec(name);
  if (m === null) return false;
  const type = types.get(m[1]!);
  return m[2] === 'bucket' ? type === 'histogram' : type === 'histogram' || type === 'summary';
}
