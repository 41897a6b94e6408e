// ICE web UI: the cluster page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'cluster') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can, sleep = I.sleep;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput, fetchEvents = I.fetchEvents;
  var hashEvent = I.hashEvent, ZERO = I.ZERO, arg = I.arg, TOKEN_KEY = I.TOKEN_KEY, WAIT = '30s';
  // ---- cluster ----------------------------------------------------------

  function cluster() {
    var lastLeader = null;
    var changes = $('#leader-changes');
    (async function loop() {
      for (;;) {
        var res = await api('GET', '/v1/ui/servers');
        if (!res.ok) {
          showError(res.error);
        } else {
          clearError();
          renderCluster(res.data);
        }
        await sleep(1000);
      }
    })();
    function renderCluster(d) {
      var self = d.self || {};
      $('#leader').textContent = self.leader || '(none)';
      $('#secure').textContent = self.secure ? 'secure' : 'insecure';
      $('#secure').className = self.secure ? 'good' : 'bad';
      $('#self').textContent = self.node_id || '';
      $('#counts').textContent = (self.components || 0) + ' components, ' + (self.nodes || 0) + ' nodes, ' + (self.runs || 0) + ' runs, ' +
        ((self.events && self.events.total) || 0) + ' events';
      var alarms = self.alarms || [];
      $('#alarms').textContent = alarms.length ? alarms.map(function (a) { return JSON.stringify(a); }).join('; ') : 'none';
      var dg = $('#digests');
      dg.textContent = d.digests;
      dg.className = d.digests === 'agree' ? 'good' : 'bad';
      $('#digests-note').textContent = d.digests_note || '';
      if (self.leader && self.leader !== lastLeader) {
        changes.appendChild(el('li', { text: fmtTime(Date.now() * 1e6) + ' leader ' + self.leader + ' (term ' + self.term + ')' }));
        lastLeader = self.leader;
      }
      var rows = (d.servers || []).map(function (s) {
        var st = s.status;
        return el('tr', { 'data-server': s.id }, [
          td(s.id),
          td(st ? st.state : (s.leader ? 'Leader' : 'unknown'), 'role'),
          td(st ? st.term : '', 'term'),
          td(st ? st.commit_index : '', 'commit'),
          td(st ? st.applied_index : '', 'applied'),
          el('td', { class: 'digest' }, [el('code', { text: st ? (st.digest || '').slice(0, 16) : (s.error || '') })]),
          td(s.gossip),
          td(s.http_addr)
        ]);
      });
      replaceRows($('#servers'), rows);
    }
  }

  cluster();
})();
