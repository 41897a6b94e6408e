// ICE web UI: the events page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'events') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can, sleep = I.sleep;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput, fetchEvents = I.fetchEvents;
  var hashEvent = I.hashEvent, ZERO = I.ZERO, arg = I.arg, TOKEN_KEY = I.TOKEN_KEY, WAIT = '30s';
  function events() {
    var filter = $('#filter-component');
    var table = $('#events');
    var tbody = $('tbody', table);
    var head = null; // {seq, hash}
    var broken = null;
    var checked = 0;
    var gaps = 0;
    $('#filter-form').addEventListener('submit', function (ev) { ev.preventDefault(); });
    var typeFilter = $('#filter-type');
    var actorFilter = $('#filter-actor');
    [filter, typeFilter, actorFilter].forEach(function (f) { f.addEventListener('input', applyFilter); });
    // A row shows when its component is the one asked (exactly), its type
    // starts with the type asked ("run." matches every run event) and its
    // actor contains the actor asked.
    function applyFilter() {
      var comp = filter.value.trim();
      var typ = typeFilter.value.trim();
      var actor = actorFilter.value.trim();
      Array.prototype.forEach.call(tbody.rows, function (tr) {
        tr.hidden = (!!comp && tr.getAttribute('data-component') !== comp) ||
          (!!typ && (tr.getAttribute('data-type') || '').indexOf(typ) !== 0) ||
          (!!actor && (tr.getAttribute('data-actor') || '').indexOf(actor) < 0);
      });
    }
    function setStatus() {
      var st = $('#chain-status');
      if (!(window.crypto && crypto.subtle)) {
        st.textContent = 'unavailable';
        st.className = 'bad';
        $('#chain-detail').textContent = 'WebCrypto needs a secure context (HTTPS or localhost)';
        return;
      }
      st.textContent = broken ? 'broken' : 'ok';
      st.className = broken ? 'bad' : 'good';
      $('#chain-head').textContent = head ? head.hash : '(no events)';
      $('#chain-detail').textContent = broken ? broken :
        checked + ' events re-hashed in this browser' + (head ? ', head seq ' + head.seq : '') +
        (gaps ? '; ' + gaps + ' links not checkable (events this token may not read, or before the first held)' : '');
    }
    async function add(list) {
      for (var j = 0; j < list.length; j++) {
        var e = list[j].e, f = list[j].f;
        if (window.crypto && crypto.subtle && !broken) {
          var h = await hashEvent(e, f);
          checked++;
          if (h !== e.hash) {
            broken = 'event ' + f.seq + ' (index ' + f.index + '): content hashes to ' + h + ', it says ' + e.hash;
          } else if (head && f.seq === head.seq + 1n && e.prev_hash !== head.hash) {
            broken = 'event ' + f.seq + ': prev_hash ' + e.prev_hash + ' does not link to ' + head.hash;
          } else if (head === null && f.seq === 1n && e.prev_hash !== ZERO) {
            broken = 'event 1 does not link to the zero hash';
          } else if (head && f.seq !== head.seq + 1n) {
            gaps++;
          }
        }
        head = { seq: f.seq, hash: e.hash, index: f.index };
        var tr = el('tr', { class: 'event', 'data-seq': String(f.seq), 'data-component': e.component || '', 'data-type': e.type, 'data-actor': e.actor || '' }, [
          td(String(f.seq)), td(String(f.index)), td(fmtTime(f.time)), td(e.type), td(e.subject), td(e.actor), td(e.purpose),
          el('td', { class: 'payload' }, [el('code', { text: f.payload })]),
          el('td', { class: 'hash', title: e.hash }, [el('code', { text: (e.hash || '').slice(0, 12) })])
        ]);
        tbody.insertBefore(tr, tbody.firstChild);
      }
      while (tbody.rows.length > 2000) tbody.deleteRow(tbody.rows.length - 1);
      applyFilter();
      setStatus();
    }
    (async function loop() {
      var from = '0';
      var idx = 0;
      for (;;) {
        var r = await fetchEvents(from, '', idx);
        if (r.error) { I.readError(r.error); await sleep(r.status === 403 ? 5000 : 1000); idx = 0; continue; }
        I.clearReadError();
        var fresh = r.events.filter(function (x) { return !head || x.f.seq > head.seq; });
        await add(fresh);
        if (head) from = String(head.index);
        if (r.index > 0 && r.index !== idx) idx = r.index; else await sleep(1000);
      }
    })();
    setStatus();
  }

  events();
})();
