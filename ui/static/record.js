// ICE web UI: the record page, /ui/memory/{type}/{key} (see ice.js for the
// helpers it uses). It shows every version of the record (GET
// /v1/memory/{type}/{key}), with invalidate and deprecate per version for
// a token that may write the type, and the lineage of one version (GET
// .../lineage?version=N: what it was derived from, what read it) as two
// nested lists linking the other records' pages and their runs. The
// version shown is the page's ?version= (the newest without one).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'record') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput, arg = I.arg;

  // A failed read is shown until a read succeeds; a refused step stays
  // until the next step (ice.js: readError, clearReadError).
  function readError(res) { I.readError(res.error); }
  var readOK = I.clearReadError;

  var cut = arg.indexOf('/');
  var TYPE = cut < 0 ? arg : arg.slice(0, cut);
  var KEY = cut < 0 ? '' : arg.slice(cut + 1);
  var BASE = '/v1/memory/' + encodeURIComponent(TYPE) + '/' + encodeURIComponent(KEY);

  // shortRun links a run by the first 8 characters of its id (the whole
  // id is its title and accessible name), to keep the table narrow.
  function shortRun(id) {
    return el('a', { class: 'run', href: '/ui/runs/' + encodeURIComponent(id), title: id, 'aria-label': 'run ' + id, text: id.slice(0, 8) });
  }

  function refText(r) { return r.type + '/' + r.key + (r.version ? '@' + r.version : ''); }

  function recordHref(r) {
    return '/ui/memory/' + encodeURIComponent(r.type) + '/' + encodeURIComponent(r.key) + (r.version ? '?version=' + encodeURIComponent(r.version) : '');
  }

  function wantedVersion() {
    var v = Number(new URLSearchParams(location.search).get('version') || 0);
    return Number.isInteger(v) && v > 0 ? v : 0;
  }

  // ---- versions ------------------------------------------------------------

  function actions(m, may) {
    var cell = el('td', { class: 'act' });
    if (!may('write', 'memory', TYPE) || m.status === 'INVALIDATED') return cell;
    var ref = refText(m);
    var rid = 'v' + m.version;
    reasonInput(rid, 'Reason to end ' + ref).forEach(function (x) { cell.appendChild(x); });
    var data = { type: 'button', 'data-version': m.version, 'data-reason': 'reason-' + rid };
    cell.appendChild(el('button', Object.assign({ class: 'invalidate', 'aria-label': 'Invalidate ' + ref, text: 'Invalidate' }, data)));
    if (m.status === 'ACTIVE') {
      cell.appendChild(el('button', Object.assign({ class: 'deprecate', 'aria-label': 'Deprecate ' + ref, text: 'Deprecate' }, data)));
    }
    return cell;
  }

  function versionRow(m, may, shown) {
    var inputs = (m.inputs || []).length;
    var ended = m.end_time ? fmtTime(m.end_time) + ' (index ' + m.end_index + ')' : '';
    return el('tr', { 'data-version': m.version, 'data-status': m.status, class: m.version === shown ? 'shown' : null }, [
      el('td', { class: 'version' }, [el('a', { href: recordHref(m), 'aria-label': 'Lineage of version ' + m.version, text: String(m.version) })]),
      td(m.status, 'status status-' + String(m.status).toLowerCase()), el('td', { class: 'run' }, [m.run ? shortRun(m.run) : '']),
      td(m.component + (m.generation ? ' (generation ' + m.generation + ')' : ''), 'component'),
      el('td', { class: 'value' }, [el('code', { text: m.value })]), td(m.reason, 'reason'),
      td(fmtTime(m.time) + (m.index ? ' (index ' + m.index + ')' : ''), 'time'), td(ended, 'ended'),
      td(m.expire_time ? fmtTime(m.expire_time) : 'never', 'expires'), td(inputs ? String(inputs) : '', 'inputs'), actions(m, may)
    ]);
  }

  // keepInputs remembers the typed reasons and the focus across an update.
  function keepInputs(root) {
    var typed = {};
    root.querySelectorAll('input.reason').forEach(function (i) { typed[i.id] = i.value; });
    var a = document.activeElement && root.contains(document.activeElement) ? document.activeElement : null;
    var sel = a && a.id ? '#' + CSS.escape(a.id) : a && a.tagName === 'BUTTON' ? 'button.' + a.classList[0] + '[data-version="' + a.getAttribute('data-version') + '"]' : '';
    return function () {
      Object.keys(typed).forEach(function (k) { var i = document.getElementById(k); if (i) i.value = typed[k]; });
      var again = sel ? root.querySelector(sel) : null;
      if (again) again.focus();
    };
  }

  function fillVersions(list, shown) {
    var select = $('#lineage-version');
    var want = String(shown);
    var opts = [el('option', { value: '0', text: 'newest' })].concat(list.map(function (m) {
      return el('option', { value: String(m.version), text: m.version + ' (' + m.status + ')' });
    }));
    select.replaceChildren.apply(select, opts);
    select.value = want;
  }

  // ---- lineage -------------------------------------------------------------

  function nodeItem(n) {
    if (n.hidden) return el('li', { class: 'hidden-record' }, [el('span', { class: 'note', text: 'a record this token may not read' })]);
    var parts = [el('a', { class: 'record', href: recordHref(n.ref), text: refText(n.ref) })];
    var m = n.record;
    if (n.missing) parts.push(' ', el('span', { class: 'note', text: '(no longer in the state)' }));
    if (m) {
      parts.push(' ', el('span', { class: 'status status-' + String(m.status).toLowerCase(), text: m.status }));
      if (m.run) parts.push(' by run ', runLink(m.run));
      if (m.reason) parts.push(' ', el('span', { class: 'reason', text: m.reason }));
    }
    if (n.repeat) parts.push(' ', el('span', { class: 'note', text: '(shown above, with what follows it)' }));
    var kids = n.children || [];
    if (kids.length) parts.push(el('ul', null, kids.map(nodeItem)));
    return el('li', { 'data-ref': refText(n.ref), 'data-status': m ? m.status : '' }, parts);
  }

  function fillTree(list, nodes, none) {
    nodes = nodes || [];
    var items = nodes.length ? nodes.map(nodeItem) : [el('li', { class: 'none note', text: none })];
    list.replaceChildren.apply(list, items);
  }

  function renderLineage(l) {
    var rec = l.record || {};
    fillTree($('#lineage-inputs'), l.inputs, 'nothing: its run read no memory');
    fillTree($('#lineage-derived'), l.derived, 'nothing read it yet');
    var note = 'Lineage of ' + refText(rec) + ' (' + rec.status + ').';
    if (l.hidden) note += ' ' + l.hidden + ' record(s) this token may not read are not shown.';
    if (l.truncated) note += ' The lineage is larger than the API answers: the lists stop there.';
    $('#lineage-note').textContent = note;
    $('#lineage').setAttribute('data-version', String(rec.version || ''));
  }

  // ---- the page --------------------------------------------------------------

  function record() {
    var may = function () { return false; };
    var asked = false;
    var last = '';
    var shown = wantedVersion();
    var stopLineage = null;

    function startLineage() {
      if (stopLineage) stopLineage();
      var lastLineage = '';
      stopLineage = watch(BASE + '/lineage' + (shown ? '?version=' + shown : ''), function (l, res) {
        readOK();
        if (!l || (res && res.text === lastLineage)) return;
        lastLineage = res ? res.text : '';
        renderLineage(l);
      }, readError);
    }

    var versions = [];
    function renderVersions() {
      var table = $('#versions');
      var restore = keepInputs(table);
      var newestFirst = versions.slice().sort(function (a, b) { return b.version - a.version; });
      var mark = shown || (newestFirst[0] || {}).version;
      replaceRows(table, newestFirst.map(function (m) { return versionRow(m, may, mark); }));
      restore();
      fillVersions(versions, shown);
    }

    watch(BASE, async function (list, res) {
      readOK();
      if (!asked) { asked = true; may = await can([['write', 'memory', TYPE]]); }
      if (res && res.text === last) return;
      last = res ? res.text : '';
      versions = list || [];
      renderVersions();
    }, readError);
    startLineage();

    $('#lineage-version').addEventListener('change', function (ev) {
      shown = Number(ev.target.value) || 0;
      history.replaceState(null, '', location.pathname + (shown ? '?version=' + shown : ''));
      renderVersions();
      startLineage();
    });
    $('#lineage-form').addEventListener('submit', function (ev) { ev.preventDefault(); });

    document.addEventListener('click', async function (ev) {
      var b = ev.target.closest ? ev.target.closest('#versions button.invalidate, #versions button.deprecate') : null;
      if (!b) return;
      var step = b.classList.contains('invalidate') ? 'invalidate' : 'deprecate';
      var version = Number(b.getAttribute('data-version'));
      var input = document.getElementById(b.getAttribute('data-reason'));
      clearError();
      $('#record-result').textContent = '';
      b.disabled = true;
      var res = await api('POST', BASE + '/' + step, { version: version, reason: input ? input.value : '' });
      b.disabled = false;
      if (!res.ok) { showError(step + ' ' + TYPE + '/' + KEY + '@' + version + ': ' + res.error); return; }
      if (input) input.value = '';
      var recs = (res.data && res.data.records) || [];
      $('#record-result').textContent = step + 'd ' + recs.map(refText).join(', ') +
        (res.data && res.data.hidden ? ' and ' + res.data.hidden + ' record(s) this token may not read' : '') + ' at index ' + (res.data ? res.data.index : '?');
    });
  }

  record();
})();
