// ICE web UI: the login page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'login') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can, sleep = I.sleep;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput, fetchEvents = I.fetchEvents;
  var hashEvent = I.hashEvent, ZERO = I.ZERO, arg = I.arg, TOKEN_KEY = I.TOKEN_KEY, WAIT = '30s';
  // ---- login ------------------------------------------------------------

  function login() {
    var form = $('#login-form');
    var input = $('#token');
    input.focus();
    form.addEventListener('submit', async function (ev) {
      ev.preventDefault();
      clearError();
      var tok = input.value.trim();
      if (!tok) { showError('enter a token'); return; }
      var st = await api('GET', '/v1/status', undefined, tok);
      if (!st.ok) { showError(st.error); return; }
      if (st.data && st.data.acls) {
        var self = await api('GET', '/v1/acl/token/self', undefined, tok);
        if (!self.ok) { showError(self.error); return; }
      }
      try { sessionStorage.setItem(TOKEN_KEY, tok); } catch (e) { showError('session storage unavailable: ' + e.message); return; }
      location.assign('/ui/cluster');
    });
  }

  login();
})();
