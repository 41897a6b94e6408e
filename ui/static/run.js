// ICE web UI: the run page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'run') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can, sleep = I.sleep;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput, fetchEvents = I.fetchEvents;
  var hashEvent = I.hashEvent, ZERO = I.ZERO, arg = I.arg, TOKEN_KEY = I.TOKEN_KEY, WAIT = '30s';
  var LOG_TAIL = 65536; // bytes of the log the page shows
  // ---- run --------------------------------------------------------------

  function run() {
    var id = arg;
    (async function start() {
      var res = await api('GET', '/v1/runs/' + encodeURIComponent(id));
      if (!res.ok) { showError(res.error); await sleep(2000); start(); return; }
      var r = res.data;
      $('#run-component').replaceChildren(el('a', { href: '/ui/components', text: r.component }));
      var showRun = function (r) {
        $('#run-slot').textContent = r.slot;
        $('#run-state').textContent = r.state + (r.reason ? ' (' + r.reason + ')' : '');
        $('#run-node').textContent = r.node || '';
        $('#run-epoch').textContent = r.epoch || '';
      };
      showRun(r);
      watch('/v1/runs/' + encodeURIComponent(id), showRun);
      timeline(r.component);
      runLog(r.component);
      watch('/v1/grants?run=' + encodeURIComponent(id), function (list) {
        replaceRows($('#grants table'), (list || []).map(function (g) {
          return el('tr', { 'data-grant': g.id }, [td(g.id), td(g.scope), td(g.effect), td(g.status, 'status'), td(g.uses || 0), td(g.reason)]);
        }));
      }, function (res) { $('#grants').appendChild(el('p', { class: 'note', text: res.error })); });
      watch('/v1/memory?run=' + encodeURIComponent(id), function (list) {
        replaceRows($('#memory table'), (list || []).map(function (m) {
          return el('tr', { 'data-record': m.type + '/' + m.key + '@' + m.version }, [
            td(m.type + '/' + m.key + '@' + m.version), td(m.status, 'status'), td(m.value), td(m.reason)]);
        }));
      }, function (res) { $('#memory').appendChild(el('p', { class: 'note', text: res.error })); });
    })();

    // runLog offers the run's plugin log (GET /v1/runs/{id}/log, the last
    // LOG_TAIL bytes) to a token that may read the component; the API
    // decides each fetch, and a refusal is shown in p.error.
    function runLog(component) {
      var show = $('#log-show'), refresh = $('#log-refresh'), pre = $('#log-text'), status = $('#log-status');
      can([['read', 'component', component]]).then(function (may) {
        if (!may('read', 'component', component)) {
          status.textContent = 'This token may not read the log of this run.';
          return;
        }
        show.hidden = false;
      });
      var busy = false;
      async function load() {
        if (busy) return;
        busy = true;
        status.textContent = 'Reading the log…';
        var res = await api('GET', '/v1/runs/' + encodeURIComponent(id) + '/log?tail=' + LOG_TAIL);
        busy = false;
        if (!res.ok) {
          pre.hidden = true;
          pre.textContent = '';
          if (res.status === 404) {
            status.textContent = 'No log on the agent: ' + res.error;
            return;
          }
          status.textContent = 'Not read: ' + res.error;
          showError(res.error);
          return;
        }
        clearError();
        var bytes = new TextEncoder().encode(res.text || '').length;
        pre.textContent = res.text || '';
        pre.hidden = false;
        show.hidden = true;
        refresh.hidden = false;
        status.textContent = bytes === 0 ? 'The log is empty.' :
          (bytes >= LOG_TAIL ? 'The last ' + LOG_TAIL / 1024 + ' KiB of the log' : 'The whole log (' + bytes + ' bytes)') +
          ', read at ' + new Date().toISOString().replace('T', ' ').replace('Z', '') + '.';
        pre.scrollTop = pre.scrollHeight;
      }
      show.addEventListener('click', load);
      refresh.addEventListener('click', load);
    }

    function timeline(component) {
      var ol = $('#timeline');
      var lastSeq = -1n;
      var from = '0';
      (async function loop() {
        var idx = 0;
        for (;;) {
          var r = await fetchEvents(from, component, idx);
          if (r.error) { showError(r.error); await sleep(2000); idx = 0; continue; }
          r.events.forEach(function (x) {
            var e = x.e, f = x.f;
            if (f.seq <= lastSeq) return;
            lastSeq = f.seq;
            from = String(f.index);
            if (e.subject !== id || (e.type !== 'run.transition' && e.type !== 'run.created')) return;
            var p = e.payload || {};
            var to = e.type === 'run.created' ? (p.state || 'CREATED') : p.to;
            ol.appendChild(el('li', { class: 'transition', 'data-to': to }, [
              el('span', { class: 'to', text: (p.from ? p.from + ' → ' : '') + to }),
              el('span', { class: 'index', text: String(f.index) }),
              el('span', { class: 'time', text: fmtTime(f.time) }),
              el('span', { class: 'actor', text: e.actor }),
              el('span', { class: 'purpose', text: e.purpose || '' }),
              el('span', { class: 'reason', text: p.reason || '' }),
              el('span', { class: 'epoch', text: p.epoch ? 'epoch ' + p.epoch : '' })
            ]));
          });
          if (r.index > 0 && r.index !== idx) idx = r.index; else await sleep(1000);
        }
      })();
    }
  }

  run();
})();
