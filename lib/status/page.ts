import { createHash } from 'node:crypto';
import type { Section, StatusView, Tile } from './types.js';

/** The page's only stylesheet, inline and allowed by its hash (no `'unsafe-inline'`). */
const CSS = `
:root { color-scheme: light dark; --bg: #f6f7f9; --fg: #1c2430; --muted: #5d6b7e; --panel: #fff;
  --line: #dde3ea; --ok: #1f8a4c; --warn: #b7791f; --bad: #c53030; --accent: #2b6cb0; }
@media (prefers-color-scheme: dark) { :root { --bg: #11161d; --fg: #e3e8ef; --muted: #93a1b3;
  --panel: #19212b; --line: #2a3542; --ok: #48bb78; --warn: #ecc94b; --bad: #fc8181; --accent: #63b3ed; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 1.5rem; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0.5rem 1.5rem; margin-bottom: 1rem; }
h1 { font-size: 1.4rem; margin: 0; }
h1::before { content: ""; display: inline-block; width: 0.7rem; height: 0.7rem; margin-right: 0.5rem;
  border-radius: 50%; background: var(--ok); vertical-align: middle; }
body.stale h1::before { background: var(--bad); }
.meta { margin: 0; color: var(--muted); }
body.stale #live { color: var(--bad); font-weight: 600; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: 0.75rem; margin-bottom: 1rem; }
.tile { background: var(--panel); border: 1px solid var(--line); border-left: 4px solid var(--accent);
  border-radius: 6px; padding: 0.6rem 0.8rem; }
.tile .label { display: block; color: var(--muted); font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.04em; }
.tile .value { display: block; font-size: 1.5rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.tile.t-ok { border-left-color: var(--ok); } .tile.t-warn { border-left-color: var(--warn); }
.tile.t-bad { border-left-color: var(--bad); } .tile.t-bad .value { color: var(--bad); }
main { display: grid; gap: 1rem; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 0.75rem 1rem; overflow-x: auto; }
h2 { font-size: 1rem; margin: 0 0 0.5rem; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: right; padding: 0.3rem 0.6rem; border-bottom: 1px solid var(--line); white-space: nowrap; }
th:first-child, td:first-child { text-align: left; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; }
th { color: var(--muted); font-weight: 600; font-size: 0.8rem; }
tbody tr:hover { background: color-mix(in srgb, var(--accent) 8%, transparent); }
tr > td:first-child { border-left: 3px solid transparent; }
tr.t-ok > td:first-child { border-left-color: var(--ok); }
tr.t-warn > td:first-child { border-left-color: var(--warn); }
tr.t-bad > td:first-child { border-left-color: var(--bad); }
tr.t-bad td { color: var(--bad); }
meter { width: 8rem; }
.empty { color: var(--muted); margin: 0; }
footer { margin-top: 1rem; color: var(--muted); font-size: 0.8rem; }
`;

const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** The page's CSP: its own script file, its own stylesheet by hash, fetches to itself, nothing else. */
export const PAGE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  `style-src ${hash(CSS)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The CSP of `status.json` and `status.js`: data, never a document. */
export const DATA_CSP = "default-src 'none'; frame-ancestors 'none'";

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text safe in HTML content and in quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

function tiles(list: readonly Tile[]): string {
  const items = list.map(
    (t) =>
      `<div class="tile t-${t.tone}"><span class="label">${escapeHtml(t.label)}</span><span class="value">${escapeHtml(t.value)}</span></div>`,
  );
  return `<section class="tiles" aria-label="Summary">${items.join('')}</section>`;
}

function section(s: Section): string {
  const title = `<h2>${escapeHtml(s.title)}</h2>`;
  if (s.rows.length === 0)
    return `<section class="panel" id="s-${s.id}">${title}<p class="empty">${escapeHtml(s.empty)}</p></section>`;
  const head = s.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const rows = s.rows.map((r) => {
    const cells = r.cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('');
    const meter =
      r.meter === undefined
        ? ''
        : `<td><meter min="0" max="1" low="0.5" high="0.8" optimum="0" value="${String(r.meter)}"></meter></td>`;
    return `<tr class="t-${r.tone}">${cells}${meter}</tr>`;
  });
  return `<section class="panel" id="s-${s.id}">${title}<table><thead><tr>${head}</tr></thead><tbody>${rows.join('')}</tbody></table></section>`;
}

/** The whole document: the view as of now, and the script that keeps it current from `base`. */
export function renderPage(view: StatusView, base: string): string {
  const title = escapeHtml(view.title);
  const root = escapeHtml(base);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>${title}</title>
<link rel="icon" href="data:,">
<style>${CSS}</style>
<script src="${root}/status.js" defer></script>
</head>
<body data-src="${root}/status.json" data-refresh="${String(view.refreshSeconds)}">
<header><h1>${title}</h1><p class="meta">Updated <time id="generated" datetime="${view.generatedAt}">${view.generatedAt}</time> · <span id="live">refreshes every ${String(view.refreshSeconds)} s</span></p></header>
<main id="view">${tiles(view.tiles)}${view.sections.map(section).join('')}</main>
<footer>Counts since the process started · rates over the last minute · p50/p99 estimated from the duration histogram's buckets · full series at the metrics endpoint.</footer>
</body>
</html>
`;
}
