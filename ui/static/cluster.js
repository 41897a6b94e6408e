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

  // Errors of the page's two pollers: shown together in p.error.
  var errors = { servers: '', metrics: '' };
  function reportErrors() {
    var msgs = [errors.servers, errors.metrics].filter(function (m) { return m; });
    if (msgs.length) showError(msgs.join('\n')); else clearError();
  }

  function cluster() {
    (async function loop() {
      for (;;) {
        var res = await api('GET', '/v1/ui/servers');
        errors.servers = res.ok ? '' : 'GET /v1/ui/servers: ' + res.error;
        reportErrors();
        if (res.ok) renderCluster(res.data || {});
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
      renderLeaderChanges(self.node_id, d.leader_changes || []);
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

  // renderLeaderChanges lists the answering server's leader history,
  // newest first, as the server sends it; unchanged lists are left alone.
  var shownChanges = '';
  function renderLeaderChanges(by, changes) {
    var key = by + ' ' + JSON.stringify(changes);
    if (key === shownChanges) return;
    shownChanges = key;
    $('#leaders-by').textContent = by ? 'server ' + by : 'the answering server';
    var list = $('#leader-changes');
    if (!changes.length) {
      list.replaceChildren(el('li', { class: 'note', text: 'no leader seen yet' }));
      return;
    }
    list.replaceChildren.apply(list, changes.map(function (c) {
      return el('li', { class: 'leader-change', 'data-term': c.term, 'data-leader': c.leader, 'data-at': c.at }, [
        el('span', { class: 'term', text: 'term ' + c.term }), ' ',
        el('strong', { class: 'leader', text: c.leader }),
        c.from ? el('span', { class: 'from', text: ' after ' + c.from }) : null, ' ',
        el('time', { class: 'at note', text: fmtTime(c.at) })
      ]);
    }));
  }

  // ---- commit charts ----------------------------------------------------

  var METRICS_EVERY = 5000, METRICS_KEEP = 5 * 60 * 1000;
  // The SVG namespace, from the charts' placeholders the HTML parser made.
  var SVG = $('#chart-latency svg').namespaceURI;

  // parseMetrics reads the summaries of the Prometheus text exposition
  // that the charts need: name -> {sum, count, p99}.
  function parseMetrics(text, names) {
    var out = {};
    names.forEach(function (n) { out[n] = { sum: NaN, count: NaN, p99: NaN }; });
    var re = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/;
    text.split('\n').forEach(function (line) {
      if (line === '' || line[0] === '#') return;
      var m = re.exec(line);
      if (!m) return;
      var name = m[1], labels = m[2] || '', v = Number(m[3]);
      names.forEach(function (n) {
        if (name === n + '_sum') out[n].sum = v;
        else if (name === n + '_count') out[n].count = v;
        else if (name === n && labels.indexOf('quantile="0.99"') >= 0) out[n].p99 = v;
      });
    });
    return out;
  }

  // A series is the per-interval figures of one summary: each point is
  // {t, mean, p99, n}, the mean of the samples taken between two scrapes
  // (from the deltas of _sum and _count) and the server's p99 at the
  // second (over its own sliding window).
  function newSeries(name) { return { name: name, prev: null, points: [] }; }

  function addSample(series, t, s) {
    var prev = series.prev;
    series.prev = { t: t, sum: s.sum, count: s.count };
    if (prev && s.count >= prev.count && isFinite(s.sum) && isFinite(prev.sum)) {
      var n = s.count - prev.count;
      if (n > 0) series.points.push({ t: t, mean: (s.sum - prev.sum) / n, p99: s.p99, n: n, dt: t - prev.t });
    }
    while (series.points.length && series.points[0].t < t - METRICS_KEEP) series.points.shift();
  }

  function svgEl(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    return e;
  }

  function fmtNum(v) {
    if (!isFinite(v)) return '–';
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  }

  // drawChart redraws fig's SVG: the mean line, and the p99 line when
  // withP99, over the last five minutes, with its figures in text. The
  // SVG is drawn at the figure's pixel width, so its dots stay round.
  function drawChart(fig, series, now, unit, withP99) {
    var W = Math.max(160, Math.floor($('figcaption', fig).clientWidth) || 320), H = 110, L = 4, R = 4, T = 16, B = 18;
    var pts = series.points;
    var top = 0, peak = 0;
    pts.forEach(function (p) {
      peak = Math.max(peak, p.mean);
      top = Math.max(top, p.mean, withP99 && isFinite(p.p99) ? p.p99 : 0);
    });
    top = top > 0 ? top * 1.1 : 1;
    function x(t) { return L + (W - L - R) * (1 - (now - t) / METRICS_KEEP); }
    function y(v) { return H - B - (H - T - B) * v / top; }
    function line(cls, pick) {
      var coords = pts.filter(function (p) { return isFinite(pick(p)); })
        .map(function (p) { return x(p.t).toFixed(1) + ',' + y(pick(p)).toFixed(1); });
      var g = svgEl('polyline', { class: cls, points: coords.join(' ') });
      g.setAttribute('data-points', String(coords.length));
      return g;
    }
    function tick(tx, ty, anchor, words) {
      var e = svgEl('text', { class: 'tick', x: tx, y: ty, 'text-anchor': anchor });
      e.textContent = words;
      return e;
    }
    var last = pts[pts.length - 1];
    var text = last
      ? 'latest ' + fmtNum(last.mean) + ' ' + unit + ' (mean of ' + last.n + ' in ' + Math.round(last.dt / 1000) + ' s)' +
        (withP99 && isFinite(last.p99) ? ', p99 ' + fmtNum(last.p99) + ' ' + unit : '') +
        '; highest mean ' + fmtNum(peak) + ' ' + unit + ' over ' + pts.length + ' intervals with commits'
      : 'no commits seen since the page opened';
    var label = $('.chart-label', fig).textContent;
    var svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'aria-label': label + ': ' + text });
    svg.appendChild(svgEl('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
    if (pts.length) {
      svg.appendChild(svgEl('line', { class: 'grid', x1: L, y1: y(top / 1.1), x2: W - R, y2: y(top / 1.1) }));
      svg.appendChild(tick(L, 11, 'start', fmtNum(top / 1.1) + ' ' + unit));
    }
    svg.appendChild(tick(L, H - 4, 'start', '5 min ago'));
    svg.appendChild(tick(W - R, H - 4, 'end', 'now'));
    if (withP99) svg.appendChild(line('p99', function (p) { return p.p99; }));
    svg.appendChild(line('mean', function (p) { return p.mean; }));
    pts.forEach(function (p) { svg.appendChild(svgEl('circle', { class: 'dot', cx: x(p.t).toFixed(1), cy: y(p.mean).toFixed(1), r: 2.5 })); });
    var old = $('svg', fig);
    if (old) old.replaceWith(svg); else fig.insertBefore(svg, fig.firstChild);
    $('.chart-value', fig).textContent = text;
    fig.setAttribute('data-points', String(pts.length));
  }

  function charts() {
    var latency = newSeries('ice_commit_entry'), batch = newSeries('ice_commit_batch_size');
    (async function loop() {
      for (;;) {
        var res = await api('GET', '/metrics');
        var now = Date.now();
        errors.metrics = res.ok ? '' : 'GET /metrics: ' + res.error;
        reportErrors();
        if (res.ok) {
          var m = parseMetrics(res.text || '', [latency.name, batch.name]);
          addSample(latency, now, m[latency.name]);
          addSample(batch, now, m[batch.name]);
        }
        drawChart($('#chart-latency'), latency, now, 'ms', true);
        drawChart($('#chart-batch'), batch, now, 'entries', false);
        await sleep(METRICS_EVERY);
      }
    })();
  }

  cluster();
  charts();
})();
