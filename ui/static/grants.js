// ICE web UI: the grants page, where operators approve (see ice.js for the
// helpers it uses). It lists GET /v1/grants (component and run filtered by
// the API, the status here, PENDING first by default) with each grant's
// scope, effect, approvals so far of those required and who gave them,
// expiry and uses; Approve and Deny for a PENDING grant and Revoke for a
// GRANTED one, when the token may write the grant's scope (can()). The
// number pending shows in the Approvals heading and the nav's Grants link.
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'grants') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput;

  // A failed read is shown until a read succeeds; a refused step stays
  // until the next step (ice.js: readError, clearReadError).
  function readError(res) { I.readError(res.error); }
  var readOK = I.clearReadError;
  var RANK = { PENDING: 0, GRANTED: 1 };

  // shortRun links a run by the first 8 characters of its id (the whole
  // id is its title and accessible name), to keep the table narrow.
  function shortRun(id) {
    return el('a', { class: 'run', href: '/ui/runs/' + encodeURIComponent(id), title: id, 'aria-label': 'run ' + id, text: id.slice(0, 8) });
  }

  function fmtDuration(ns) {
    var s = Math.round(Number(ns) / 1e9);
    if (!s) return '';
    var out = '';
    [[86400, 'd'], [3600, 'h'], [60, 'm'], [1, 's']].forEach(function (u) {
      if (s >= u[0]) { out += Math.floor(s / u[0]) + u[1]; s %= u[0]; }
    });
    return out;
  }

  function effectCell(g) {
    var e = g.effect || 'internal';
    var text = e === 'irreversible' ? 'irreversible' : e + ' (reversible)';
    return td(text, 'effect effect-' + e);
  }

  function approvalsCell(g) {
    var given = g.approvals || [];
    var cell = el('td', { class: 'approvals' });
    if (g.effect !== 'irreversible' && !g.required && !given.length) {
      cell.appendChild(el('span', { class: 'note', text: 'none needed' }));
      return cell;
    }
    cell.appendChild(el('span', { class: 'count', text: given.length + ' of ' + (g.required || 1) }));
    if (given.length) {
      cell.appendChild(el('ul', { class: 'plain approvers' }, given.map(function (a) {
        return el('li', { class: 'approver' }, [
          el('span', { class: 'operator', text: a.operator }),
          a.reason ? ': ' + a.reason : '', ' ', el('span', { class: 'time note', text: fmtTime(a.time) })
        ]);
      })));
    }
    return cell;
  }

  function expiresCell(g) {
    if (g.expire_time) return td(fmtTime(g.expire_time), 'expires');
    if (g.status === 'PENDING' && g.ttl_ns) return td('lasts ' + fmtDuration(g.ttl_ns) + ' once granted', 'expires');
    return td('', 'expires');
  }

  function reasonCell(g) {
    var parts = [];
    if (g.purpose) parts.push(el('div', { class: 'purpose' }, [el('span', { class: 'note', text: 'purpose: ' }), g.purpose]));
    if (g.reason) parts.push(el('div', { class: 'reason' }, [el('span', { class: 'note', text: 'reason: ' }), g.reason]));
    if (g.end_time) parts.push(el('div', { class: 'ended note', text: 'ended ' + fmtTime(g.end_time) }));
    return el('td', { class: 'why' }, parts);
  }

  function decideCell(g, may) {
    var cell = el('td', { class: 'decide' });
    var live = g.status === 'PENDING' || g.status === 'GRANTED';
    if (!live || !may('write', 'capability', g.scope)) return cell;
    reasonInput(g.id, 'Reason for grant ' + g.id).forEach(function (n) { cell.appendChild(n); });
    var data = { type: 'button', 'data-grant': g.id };
    if (g.status === 'PENDING') {
      cell.appendChild(el('button', Object.assign({ class: 'approve', 'aria-label': 'Approve grant ' + g.id, text: 'Approve' }, data)));
      cell.appendChild(el('button', Object.assign({ class: 'deny', 'aria-label': 'Deny grant ' + g.id, text: 'Deny' }, data)));
    } else {
      cell.appendChild(el('button', Object.assign({ class: 'revoke', 'aria-label': 'Revoke grant ' + g.id, text: 'Revoke' }, data)));
    }
    return cell;
  }

  function row(g, may) {
    var scope = el('td', { class: 'scope' }, [el('code', { text: g.scope })]);
    if (g.declared && g.declared !== g.scope) scope.appendChild(el('div', { class: 'note', text: 'declared ' + g.declared }));
    return el('tr', { 'data-grant': g.id, 'data-status': g.status }, [
      el('td', { class: 'id' }, [el('code', { title: g.id, text: g.id.slice(0, 8) })]), td(g.component, 'component'),
      el('td', { class: 'run' }, [g.run ? shortRun(g.run) : '']), scope,
      effectCell(g), td(g.status, 'status status-' + String(g.status).toLowerCase()), approvalsCell(g), expiresCell(g),
      td(String(g.uses || 0), 'uses'), reasonCell(g), decideCell(g, may)
    ]);
  }

  // keepInputs remembers the typed reasons and the focus across an update.
  function keepInputs(root) {
    var typed = {};
    root.querySelectorAll('input.reason').forEach(function (i) { typed[i.id] = i.value; });
    var a = document.activeElement && root.contains(document.activeElement) ? document.activeElement : null;
    var sel = a && a.id ? '#' + CSS.escape(a.id) : a && a.tagName === 'BUTTON' ? 'button.' + a.classList[0] + '[data-grant="' + CSS.escape(a.getAttribute('data-grant')) + '"]' : '';
    return function () {
      Object.keys(typed).forEach(function (k) { var i = document.getElementById(k); if (i) i.value = typed[k]; });
      var again = sel ? root.querySelector(sel) : null;
      if (again) again.focus();
    };
  }

  function showPending(n, filtered) {
    var text = n === 0 ? 'No grant waits for a decision' : n + (n === 1 ? ' grant waits' : ' grants wait') + ' for a decision';
    $('#pending-summary').textContent = text + (filtered ? ' (among the grants of the component and run filters).' : '.');
    var nav = document.getElementById('nav-grants');
    if (!nav) return;
    var badge = nav.querySelector('.pending-count');
    if (!badge) { badge = el('span', { class: 'pending-count' }); nav.appendChild(badge); }
    badge.textContent = n ? ' (' + n + ' pending)' : '';
  }

  function query() {
    var q = new URLSearchParams();
    ['component', 'run'].forEach(function (f) { var v = $('#filter-' + f).value.trim(); if (v) q.set(f, v); });
    return q.toString();
  }

  function grants() {
    var asked = '';
    var may = function () { return false; };
    var list = [];
    var stop = null;

    function render() {
      var status = $('#filter-status').value;
      var shown = list.filter(function (g) { return !status || g.status === status; });
      shown.sort(function (a, b) {
        var ra = a.status in RANK ? RANK[a.status] : 2, rb = b.status in RANK ? RANK[b.status] : 2;
        return ra - rb || b.create_index - a.create_index;
      });
      var table = $('#grants');
      var restore = keepInputs(table);
      replaceRows(table, shown.map(function (g) { return row(g, may); }));
      restore();
      showPending(list.filter(function (g) { return g.status === 'PENDING'; }).length, query() !== '');
    }

    function start() {
      if (stop) stop();
      var last = null;
      var q = query();
      stop = watch('/v1/grants' + (q ? '?' + q : ''), async function (data, res) {
        readOK();
        if (res && res.text === last) return;
        last = res ? res.text : '';
        list = data || [];
        var scopes = Array.from(new Set(list.filter(function (g) { return g.status === 'PENDING' || g.status === 'GRANTED'; }).map(function (g) { return g.scope; }))).sort();
        var key = scopes.join('\n');
        if (key !== asked && scopes.length) { asked = key; may = await can(scopes.map(function (s) { return ['write', 'capability', s]; })); }
        render();
      }, readError);
    }

    var params = new URLSearchParams(location.search);
    ['component', 'run'].forEach(function (f) { $('#filter-' + f).value = params.get(f) || ''; });
    $('#filter-status').value = (params.get('status') || '').toUpperCase();
    if ($('#filter-status').selectedIndex < 0) $('#filter-status').value = '';
    $('#grant-filters').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var q = new URLSearchParams(query());
      if ($('#filter-status').value) q.set('status', $('#filter-status').value);
      history.replaceState(null, '', location.pathname + (q.toString() ? '?' + q : ''));
      start();
    });
    $('#filter-status').addEventListener('change', function () { $('#grant-filters').requestSubmit(); });
    start();

    document.addEventListener('click', async function (ev) {
      var b = ev.target.closest ? ev.target.closest('#grants button.approve, #grants button.deny, #grants button.revoke') : null;
      if (!b) return;
      var gid = b.getAttribute('data-grant');
      var step = b.classList[0];
      var input = document.getElementById('reason-' + gid);
      clearError();
      $('#grants-result').textContent = '';
      b.disabled = true;
      var res = await api('POST', '/v1/grants/' + encodeURIComponent(gid) + '/' + step, { reason: input ? input.value : '' });
      b.disabled = false;
      if (!res.ok) { showError(step + ' grant ' + gid + ': ' + res.error); return; }
      if (input) input.value = '';
      var g = (res.data && res.data.grant) || {};
      var count = g.effect === 'irreversible' ? ' (' + (g.approvals || []).length + ' of ' + (g.required || 1) + ' approvals)' : '';
      $('#grants-result').textContent = step + ' grant ' + gid + ': it is ' + g.status + count + ' at index ' + res.data.index;
    });
  }

  grants();
})();
