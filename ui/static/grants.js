// ICE web UI: the grants page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'grants') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can, sleep = I.sleep;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput, fetchEvents = I.fetchEvents;
  var hashEvent = I.hashEvent, ZERO = I.ZERO, arg = I.arg, TOKEN_KEY = I.TOKEN_KEY, WAIT = '30s';
  function grants() {
    var asked = '';
    var may = function () { return false; };
    watch('/v1/grants', async function (list) {
      clearError();
      list = list || [];
      var scopes = list.filter(function (g) { return g.status === 'PENDING'; }).map(function (g) { return g.scope; }).sort();
      var key = scopes.join('\n');
      if (key !== asked && scopes.length) { asked = key; may = await can(scopes.map(function (s) { return ['write', 'capability', s]; })); }
      // Keep what an operator is typing in a reason across updates.
      var typed = {};
      document.querySelectorAll('#grants input.reason').forEach(function (i) { typed[i.id] = i.value; });
      replaceRows($('#grants'), list.map(function (g) {
        var decide = el('td', { class: 'decide' });
        if (g.status === 'PENDING' && may('write', 'capability', g.scope)) {
          reasonInput(g.id, 'Reason for grant ' + g.id).forEach(function (n) { decide.appendChild(n); });
          decide.appendChild(el('button', { type: 'button', class: 'approve', 'data-grant': g.id, text: 'Approve' }));
          decide.appendChild(el('button', { type: 'button', class: 'deny', 'data-grant': g.id, text: 'Deny' }));
        }
        var approvals = (g.approvals || []).length + (g.required ? ' of ' + g.required : '');
        return el('tr', { 'data-grant': g.id, 'data-status': g.status }, [
          td(g.id), td(g.component), el('td', null, [g.run ? runLink(g.run) : '']), td(g.scope), td(g.effect),
          td(g.status, 'status'), td(approvals), td(g.reason), decide
        ]);
      }));
      Object.keys(typed).forEach(function (k) { var i = document.getElementById(k); if (i) i.value = typed[k]; });
    });
    document.addEventListener('click', async function (ev) {
      var b = ev.target.closest ? ev.target.closest('button.approve, button.deny') : null;
      if (!b) return;
      var gid = b.getAttribute('data-grant');
      var step = b.classList.contains('approve') ? 'approve' : 'deny';
      var input = document.getElementById('reason-' + gid);
      clearError();
      b.disabled = true;
      var res = await api('POST', '/v1/grants/' + encodeURIComponent(gid) + '/' + step, { reason: input ? input.value : '' });
      b.disabled = false;
      if (!res.ok) showError(res.error);
    });
  }

  grants();
})();
