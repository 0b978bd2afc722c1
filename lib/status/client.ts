/**
 * The status page's only script, served by the status router at `status.js` (so the page's CSP is
 * `script-src 'self'`: no inline script, no eval). It reloads `status.json` every `data-refresh`
 * seconds and rebuilds the view with `createElement`/`textContent` — values are never parsed as
 * HTML. The markup it builds is the markup `renderView()` in page.ts writes for the first paint.
 */
export const CLIENT_SCRIPT = `'use strict';
(function () {
  var body = document.body;
  var src = body.getAttribute('data-src');
  var every = Number(body.getAttribute('data-refresh')) * 1000;
  if (!src || !(every > 0)) return;
  var live = document.getElementById('live');
  var liveText = live ? live.textContent : '';
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function tiles(list) {
    var box = el('section', 'tiles');
    box.setAttribute('aria-label', 'Summary');
    list.forEach(function (tile) {
      var item = el('div', 'tile t-' + tile.tone);
      item.appendChild(el('span', 'label', tile.label));
      item.appendChild(el('span', 'value', tile.value));
      box.appendChild(item);
    });
    return box;
  }
  function section(s) {
    var box = el('section', 'panel');
    box.id = 's-' + s.id;
    box.appendChild(el('h2', '', s.title));
    if (s.rows.length === 0) {
      box.appendChild(el('p', 'empty', s.empty));
      return box;
    }
    var table = el('table');
    var head = el('tr');
    s.columns.forEach(function (c) { head.appendChild(el('th', '', c)); });
    table.appendChild(el('thead')).appendChild(head);
    var rows = table.appendChild(el('tbody'));
    s.rows.forEach(function (r) {
      var tr = el('tr', 't-' + r.tone);
      r.cells.forEach(function (c) { tr.appendChild(el('td', '', c)); });
      if (r.meter !== undefined) {
        var meter = el('meter');
        meter.min = 0; meter.max = 1; meter.low = 0.5; meter.high = 0.8; meter.optimum = 0;
        meter.value = r.meter;
        tr.appendChild(el('td')).appendChild(meter);
      }
      rows.appendChild(tr);
    });
    box.appendChild(table);
    return box;
  }
  function show(view) {
    var main = document.getElementById('view');
    var time = document.getElementById('generated');
    if (!main || !time) return;
    var parts = [tiles(view.tiles)];
    view.sections.forEach(function (s) { parts.push(section(s)); });
    main.replaceChildren.apply(main, parts);
    time.textContent = view.generatedAt;
    time.setAttribute('datetime', view.generatedAt);
    body.classList.remove('stale');
    if (live) live.textContent = liveText;
    body.setAttribute('data-updates', String(Number(body.getAttribute('data-updates') || 0) + 1));
  }
  function stale(reason) {
    body.classList.add('stale');
    if (live) live.textContent = 'not updated: ' + reason;
  }
  function poll() {
    fetch(src, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (res) {
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.json();
      })
      .then(show, function (err) { stale(err && err.message ? err.message : 'unreachable'); })
      .then(function () { setTimeout(poll, every); });
  }
  setTimeout(poll, every);
})();
`;
