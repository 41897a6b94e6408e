// ICE web UI: the memory page (see ice.js for the helpers it uses). It
// lists the records GET /v1/memory answers for the filters (type, key,
// status, run: those the API takes, kept in the page's query string), each
// linking to its record page, with invalidate and deprecate (and a reason)
// for a token that may write the record's type.
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'memory') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput;

  // A failed read is shown until a read succeeds; a refused step stays
  // until the next step (ice.js: readError, clearReadError).
  function readError(res) { I.readError(res.error); }
  var readOK = I.clearReadError;
  var FIELDS = ['type', 'key', 'status', 'run'];

  // shortRun links a run by the first 8 characters of its id (the whole
  // id is its title and accessible name), to keep the table narrow.
  function shortRun(id) {
    return el('a', { class: 'run', href: '/ui/runs/' + encodeURIComponent(id), title: id, 'aria-label': 'run ' + id, text: id.slice(0, 8) });
  }

  // recordLink links a record version to its record page.
  function recordLink(m) {
    var ref = m.type + '/' + m.key + '@' + m.version;
    var href = '/ui/memory/' + encodeURIComponent(m.type) + '/' + encodeURIComponent(m.key) + '?version=' + encodeURIComponent(m.version);
    return el('a', { class: 'record', href: href, text: ref });
  }

  // inputId is a stable element id for a record version's reason.
  function inputId(m) {
    return 'm-' + encodeURIComponent(m.type + '/' + m.key + '@' + m.version).replace(/[^A-Za-z0-9_-]/g, '_');
  }

  // keepInputs remembers what is typed in the table's reasons, and which
  // has the focus, so that a live update does not lose them.
  function keepInputs(table) {
    var typed = {};
    table.querySelectorAll('input.reason').forEach(function (i) { typed[i.id] = i.value; });
    var active = document.activeElement && table.contains(document.activeElement) ? document.activeElement : null;
    var focusId = active && active.id ? active.id : '';
    var focusSel = active && active.tagName === 'BUTTON' ? active.getAttribute('data-reason') + '|' + active.className : '';
    return function restore() {
      Object.keys(typed).forEach(function (k) { var i = document.getElementById(k); if (i) i.value = typed[k]; });
      var again = focusId ? document.getElementById(focusId) : null;
      if (!again && focusSel) {
        table.querySelectorAll('button').forEach(function (b) { if (b.getAttribute('data-reason') + '|' + b.className === focusSel) again = b; });
      }
      if (again) again.focus();
    };
  }

  function filtersFromURL() {
    var q = new URLSearchParams(location.search);
    FIELDS.forEach(function (f) {
      var v = q.get(f) || '';
      var input = $('#filter-' + f);
      if (f === 'status') v = v.toUpperCase();
      if (input) input.value = v;
    });
  }

  function query() {
    var q = new URLSearchParams();
    FIELDS.forEach(function (f) {
      var v = ($('#filter-' + f).value || '').trim();
      if (v) q.set(f, v);
    });
    return q.toString();
  }

  function actions(m, may) {
    var cell = el('td', { class: 'act' });
    if (!may('write', 'memory', m.type) || m.status === 'INVALIDATED') return cell;
    var ref = m.type + '/' + m.key + '@' + m.version;
    var rid = inputId(m);
    reasonInput(rid, 'Reason to end ' + ref).forEach(function (x) { cell.appendChild(x); });
    var data = { type: 'button', 'data-type': m.type, 'data-key': m.key, 'data-version': m.version, 'data-reason': 'reason-' + rid };
    cell.appendChild(el('button', Object.assign({ class: 'invalidate', 'aria-label': 'Invalidate ' + ref, text: 'Invalidate' }, data)));
    if (m.status === 'ACTIVE') {
      cell.appendChild(el('button', Object.assign({ class: 'deprecate', 'aria-label': 'Deprecate ' + ref, text: 'Deprecate' }, data)));
    }
    return cell;
  }

  function row(m, may) {
    return el('tr', { 'data-record': m.type + '/' + m.key + '@' + m.version, 'data-status': m.status }, [
      el('td', { class: 'ref' }, [recordLink(m)]), td(m.status, 'status status-' + String(m.status).toLowerCase()),
      el('td', { class: 'run' }, [m.run ? shortRun(m.run) : '']), td(m.component, 'component'),
      el('td', { class: 'value' }, [el('code', { text: m.value })]), td(m.reason, 'reason'), td(fmtTime(m.time), 'time'),
      actions(m, may)
    ]);
  }

  function memory() {
    var asked = null;
    var may = function () { return false; };
    var last = '';
    var stop = null;

    function start() {
      if (stop) stop();
      last = '';
      var q = query();
      stop = watch('/v1/memory' + (q ? '?' + q : ''), async function (list, res) {
        readOK();
        list = list || [];
        var types = Array.from(new Set(list.map(function (m) { return m.type; }))).sort();
        var key = types.join('\n');
        var fresh = key !== asked;
        if (fresh) { asked = key; may = types.length ? await can(types.map(function (t) { return ['write', 'memory', t]; })) : may; }
        if (!fresh && res && res.text === last) return; // nothing changed: keep the rows (and the focus)
        last = res ? res.text : '';
        var table = $('#memory');
        var restore = keepInputs(table);
        replaceRows(table, list.map(function (m) { return row(m, may); }));
        restore();
        $('#memory-count').textContent = list.length + (list.length === 1 ? ' record' : ' records') + (q ? ' match the filters' : '');
      }, readError);
    }

    filtersFromURL();
    $('#memory-filters').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var q = query();
      history.replaceState(null, '', location.pathname + (q ? '?' + q : ''));
      start();
    });
    $('#filter-status').addEventListener('change', function () { $('#memory-filters').requestSubmit(); });
    start();

    document.addEventListener('click', async function (ev) {
      var b = ev.target.closest ? ev.target.closest('#memory button.invalidate, #memory button.deprecate') : null;
      if (!b) return;
      var step = b.classList.contains('invalidate') ? 'invalidate' : 'deprecate';
      var input = document.getElementById(b.getAttribute('data-reason'));
      clearError();
      $('#memory-result').textContent = '';
      b.disabled = true;
      var path = '/v1/memory/' + encodeURIComponent(b.getAttribute('data-type')) + '/' + encodeURIComponent(b.getAttribute('data-key')) + '/' + step;
      var res = await api('POST', path, { version: Number(b.getAttribute('data-version')), reason: input ? input.value : '' });
      b.disabled = false;
      if (!res.ok) { showError(step + ' ' + b.getAttribute('data-type') + '/' + b.getAttribute('data-key') + ': ' + res.error); return; }
      if (input) input.value = '';
      var recs = (res.data && res.data.records) || [];
      $('#memory-result').textContent = step + 'd ' + recs.map(function (m) { return m.type + '/' + m.key + '@' + m.version; }).join(', ') +
        (res.data && res.data.hidden ? ' and ' + res.data.hidden + ' record(s) this token may not read' : '') + ' at index ' + (res.data ? res.data.index : '?');
    });
  }

  memory();
})();
