// ICE web UI: the nodes page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'nodes') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can, sleep = I.sleep;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput, fetchEvents = I.fetchEvents;
  var hashEvent = I.hashEvent, ZERO = I.ZERO, arg = I.arg, TOKEN_KEY = I.TOKEN_KEY, WAIT = '30s';
  // ---- nodes ------------------------------------------------------------

  function nodes() {
    var runsByNode = {};
    watch('/v1/runs', function (runs) {
      runsByNode = {};
      (runs || []).forEach(function (r) {
        if (!r.node || r.state === 'TERMINATED') return;
        (runsByNode[r.node] = runsByNode[r.node] || []).push(r);
      });
    }, function () { /* a token that may not read runs sees none */ });
    watch('/v1/nodes', function (list) {
      clearError();
      replaceRows($('#nodes'), (list || []).map(function (n) {
        var labels = Object.keys(n.labels || {}).sort().map(function (k) { return k + '=' + n.labels[k]; }).join(', ');
        var plugins = el('ul', { class: 'plain' }, (n.plugins || []).map(function (p) {
          return el('li', { title: 'sha256 ' + p.sha256 }, [p.name + (p.version ? ' ' + p.version : ''), ' ', el('code', { text: (p.sha256 || '').slice(0, 12) })]);
        }));
        var runs = el('ul', { class: 'plain' }, (runsByNode[n.id] || []).map(function (r) {
          return el('li', null, [runLink(r.id), ' ' + r.component + ' ' + r.state]);
        }));
        return el('tr', { 'data-node': n.id }, [
          td(n.id), td(n.status + (n.reason ? ' (' + n.reason + ')' : ''), 'status'), td(labels, 'labels'),
          el('td', { class: 'plugins' }, [plugins]), el('td', { class: 'node-runs' }, [runs]), td(n.address)
        ]);
      }));
    });
  }

  nodes();
})();
