// ICE web UI: the memory page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'memory') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can, sleep = I.sleep;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput, fetchEvents = I.fetchEvents;
  var hashEvent = I.hashEvent, ZERO = I.ZERO, arg = I.arg, TOKEN_KEY = I.TOKEN_KEY, WAIT = '30s';
  // ---- memory -----------------------------------------------------------

  function memory() {
    var asked = '';
    var may = function () { return false; };
    watch('/v1/memory', async function (list) {
      clearError();
      list = list || [];
      var types = Array.from(new Set(list.map(function (m) { return m.type; }))).sort();
      var key = types.join('\n');
      if (key !== asked && types.length) { asked = key; may = await can(types.map(function (t) { return ['write', 'memory', t]; })); }
      var typed = {};
      document.querySelectorAll('#memory input.reason').forEach(function (i) { typed[i.id] = i.value; });
      replaceRows($('#memory'), list.map(function (m, n) {
        var ref = m.type + '/' + m.key + '@' + m.version;
        var act = el('td', { class: 'act' });
        if (m.status !== 'INVALIDATED' && may('write', 'memory', m.type)) {
          var rid = 'm' + n + '-' + String(m.version);
          reasonInput(rid, 'Reason to invalidate ' + ref).forEach(function (x) { act.appendChild(x); });
          act.appendChild(el('button', { type: 'button', class: 'invalidate', 'data-type': m.type, 'data-key': m.key, 'data-version': m.version, 'data-reason': 'reason-' + rid, text: 'Invalidate' }));
        }
        return el('tr', { 'data-record': ref, 'data-status': m.status }, [
          td(ref, 'ref'), td(m.status, 'status'), el('td', null, [m.run ? runLink(m.run) : '']), td(m.value, 'value'), td(m.reason), act
        ]);
      }));
      Object.keys(typed).forEach(function (k) { var i = document.getElementById(k); if (i) i.value = typed[k]; });
    });
    document.addEventListener('click', async function (ev) {
      var b = ev.target.closest ? ev.target.closest('button.invalidate') : null;
      if (!b) return;
      var input = document.getElementById(b.getAttribute('data-reason'));
      clearError();
      b.disabled = true;
      var path = '/v1/memory/' + encodeURIComponent(b.getAttribute('data-type')) + '/' + encodeURIComponent(b.getAttribute('data-key')) + '/invalidate';
      var res = await api('POST', path, { version: Number(b.getAttribute('data-version')), reason: input ? input.value : '' });
      b.disabled = false;
      if (!res.ok) showError(res.error);
    });
  }

  memory();
})();
