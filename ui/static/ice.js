// ICE web UI: plain JavaScript, no build step, no outside URLs. Every call
// to the API goes through api(), which sends the token and never throws:
// a refusal or a network failure comes back as {ok: false, error}.
(function () {
  'use strict';

  var TOKEN_KEY = 'ice-token';
  var WAIT = '30s';
  var body = document.body;
  var page = body.getAttribute('data-page');
  var arg = body.getAttribute('data-arg') || '';

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function $(sel, root) { return (root || document).querySelector(sel); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === 'text') e.textContent = String(v);
        else if (k === 'class') e.className = v;
        else e.setAttribute(k, v === true ? '' : String(v));
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }

  function td(text, cls) { return el('td', { text: text === undefined || text === null ? '' : text, class: cls }); }

  var errorBox = $('p.error');
  function showError(msg) {
    if (!errorBox) return;
    errorBox.textContent = msg;
    errorBox.hidden = false;
  }
  function clearError() {
    if (!errorBox) return;
    errorBox.textContent = '';
    errorBox.hidden = true;
  }

  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }

  // api calls the HTTP API. It resolves to {ok, status, data, text, index,
  // error}; it never rejects.
  function api(method, path, payload, tok) {
    var headers = { 'X-Ice-Token': tok === undefined ? token() : tok };
    var init = { method: method, headers: headers, cache: 'no-store' };
    if (payload !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = typeof payload === 'string' ? payload : JSON.stringify(payload);
    }
    return fetch(path, init).then(function (res) {
      return res.text().then(function (text) {
        var out = { ok: res.ok, status: res.status, text: text, index: Number(res.headers.get('X-Ice-Index') || 0) };
        try { out.data = text ? JSON.parse(text) : null; } catch (e) { out.data = null; }
        if (!res.ok) {
          out.error = (out.data && out.data.error) || (res.status + ' ' + res.statusText);
        }
        return out;
      });
    }).catch(function (err) {
      return { ok: false, status: 0, error: 'request failed: ' + (err && err.message ? err.message : String(err)) };
    });
  }

  // watch runs a blocking query on path forever: each answer is handed to
  // render, and the next asks for what comes after its X-Ice-Index. A
  // refusal is shown, and asked again a few seconds later.
  function watch(path, render, onError) {
    var index = 0;
    var stopped = false;
    (async function loop() {
      while (!stopped) {
        var sep = path.indexOf('?') < 0 ? '?' : '&';
        var url = index > 0 ? path + sep + 'index=' + index + '&wait=' + WAIT : path;
        var res = await api('GET', url);
        if (stopped) return;
        if (!res.ok) {
          if (onError) onError(res); else showError(res.error);
          await sleep(res.status === 403 || res.status === 404 ? 5000 : 1000);
          index = 0;
          continue;
        }
        try { await render(res.data, res); } catch (e) { showError('render: ' + e.message); }
        if (res.index > 0 && res.index !== index) {
          index = res.index;
        } else {
          await sleep(1000); // no index to block on: poll each second
        }
      }
    })();
    return function () { stopped = true; };
  }

  // can asks the API what the token may do: checks are [level, kind, name]
  // (name "" asks about any resource of the kind). It resolves to a
  // function answering each check; a failed question answers false.
  function can(checks) {
    var q = checks.map(function (c) { return encodeURIComponent(c[0]) + '=' + encodeURIComponent(c[1] + ':' + c[2]); }).join('&');
    return api('GET', '/v1/acl/token/self/can?' + q).then(function (res) {
      var d = res.ok && res.data ? res.data : {};
      return function (level, kind, name) {
        return !!(d[level] && d[level][kind + ':' + name]);
      };
    });
  }

  function fmtTime(ns) {
    if (ns === undefined || ns === null || ns === '' || ns === 0 || ns === '0') return '';
    try {
      var ms = typeof ns === 'bigint' ? Number(ns / 1000000n) : Math.floor(Number(ns) / 1e6);
      return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
    } catch (e) { return String(ns); }
  }

  function runLink(id) {
    return el('a', { class: 'run', href: '/ui/runs/' + encodeURIComponent(id), text: id });
  }

  function replaceRows(table, rows) {
    var tb = $('tbody', table);
    tb.replaceChildren.apply(tb, rows);
  }

  // ---- sign-in gate and nav -------------------------------------------

  if (page !== 'login' && !token()) {
    location.replace('/ui/login');
    return;
  }
  var signout = $('#signout');
  if (signout) {
    signout.addEventListener('click', function () {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
      location.assign('/ui/login');
    });
  }

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

  // ---- components -------------------------------------------------------

  function components() {
    var comps = [];
    var runs = [];
    var mayWrite = function () { return false; };
    var asked = null; // the component names last asked about (none yet: even an empty list must be asked)

    async function render() {
      var names = comps.map(function (c) { return c.name; }).sort();
      var key = names.join('\n');
      if (key !== asked) {
        asked = key;
        var checks = [['write', 'component', '']].concat(names.map(function (n) { return ['write', 'component', n]; }));
        mayWrite = await can(checks);
        showDeploy(mayWrite('write', 'component', ''));
      }
      var byComp = {};
      runs.forEach(function (r) { (byComp[r.component] = byComp[r.component] || []).push(r); });
      replaceRows($('#components'), comps.map(function (c) {
        var rs = (byComp[c.name] || []).filter(function (r) { return r.state !== 'TERMINATED'; });
        rs.sort(function (a, b) { return a.slot - b.slot || a.create_index - b.create_index; });
        var list = el('ul', { class: 'plain' }, rs.map(function (r) {
          return el('li', { 'data-run': r.id, 'data-state': r.state }, ['slot ' + r.slot + ' ', el('span', { class: 'state', text: r.state }), ' ', runLink(r.id)]);
        }));
        var actions = el('td', { class: 'actions' });
        if (mayWrite('write', 'component', c.name) && c.status !== 'stopped') {
          actions.appendChild(el('button', { type: 'button', class: 'stop', 'data-component': c.name, 'aria-label': 'Stop ' + c.name, text: 'Stop' }));
        }
        var plugin = c.plugin ? c.plugin.name + (c.plugin.version ? ' ' + c.plugin.version : '') : '';
        return el('tr', { 'data-component': c.name }, [
          td(c.name, 'name'), td(c.status + (c.reason ? ': ' + c.reason : ''), 'status'), td(c.generation, 'generation'),
          td(plugin), td(c.count), el('td', { class: 'runs' }, [list]), actions
        ]);
      }));
    }

    var deployShown = false;
    function showDeploy(allowed) {
      var sec = $('#deploy-section');
      if (!allowed || deployShown) return;
      deployShown = true;
      var tpl = $('#deploy-template');
      sec.appendChild(tpl.content.cloneNode(true));
      sec.hidden = false;
      $('#deploy-form').addEventListener('submit', deploy);
    }

    async function deploy(ev) {
      ev.preventDefault();
      clearError();
      var result = $('#deploy-result');
      result.textContent = '';
      var src = $('#deploy-spec').value;
      var parsed = await api('POST', '/v1/ui/spec', src);
      if (!parsed.ok) { showError(parsed.error); return; }
      var spec = parsed.data;
      if (!spec.name) { showError('the spec names no component'); return; }
      var res = await api('PUT', '/v1/components/' + encodeURIComponent(spec.name), spec);
      if (!res.ok) { showError(res.error); return; }
      result.textContent = 'deployed ' + res.data.name + ' generation ' + res.data.generation + ' at index ' + res.data.index;
    }

    watch('/v1/components', function (list) { clearError(); comps = list || []; return render(); });
    watch('/v1/runs', function (list) { runs = list || []; return render(); });
  }

  // A stop button, even one the page did not render, asks the API, which
  // decides; its refusal is shown.
  document.addEventListener('click', async function (ev) {
    var b = ev.target && ev.target.closest ? ev.target.closest('button.stop') : null;
    if (!b) return;
    var row = b.closest('tr[data-component]');
    var name = b.getAttribute('data-component') || (row && row.getAttribute('data-component'));
    if (!name) return;
    clearError();
    b.disabled = true;
    var res = await api('DELETE', '/v1/components/' + encodeURIComponent(name));
    b.disabled = false;
    if (!res.ok) showError(res.error);
  });

  // ---- events and the chain check --------------------------------------

  // parseRaw parses JSON keeping, for each object, where each value's text
  // is (obj.__raw[key] = [start, end]): the chain needs int64 times beyond
  // a double's precision and payloads byte for byte.
  function parseRaw(text) {
    var i = 0;
    var strRe = /"[^"\\]*(?:\\.[^"\\]*)*"/y;
    var numRe = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
    function ws() {
      for (;;) {
        var c = text.charCodeAt(i);
        if (c === 32 || c === 9 || c === 10 || c === 13) i++; else return;
      }
    }
    function str() {
      strRe.lastIndex = i;
      var m = strRe.exec(text);
      if (!m) throw new Error('bad JSON string at ' + i);
      i = strRe.lastIndex;
      return JSON.parse(m[0]);
    }
    function value() {
      ws();
      var c = text[i];
      if (c === '{') {
        i++;
        var o = {};
        var raw = {};
        Object.defineProperty(o, '__raw', { value: raw });
        ws();
        if (text[i] === '}') { i++; return o; }
        for (;;) {
          ws();
          var k = str();
          ws();
          i++; // :
          ws();
          var s = i;
          o[k] = value();
          raw[k] = [s, i];
          ws();
          if (text[i++] === ',') continue;
          return o;
        }
      }
      if (c === '[') {
        i++;
        var a = [];
        ws();
        if (text[i] === ']') { i++; return a; }
        for (;;) {
          a.push(value());
          ws();
          if (text[i++] === ',') continue;
          return a;
        }
      }
      if (c === '"') return str();
      if (text.startsWith('true', i)) { i += 4; return true; }
      if (text.startsWith('false', i)) { i += 5; return false; }
      if (text.startsWith('null', i)) { i += 4; return null; }
      numRe.lastIndex = i;
      var m = numRe.exec(text);
      if (!m) throw new Error('bad JSON at ' + i);
      i = numRe.lastIndex;
      return Number(m[0]);
    }
    return value();
  }

  var enc = new TextEncoder();
  function pushUvarint(out, n) {
    n = BigInt(n);
    while (n >= 0x80n) { out.push(Number(n & 0x7fn) | 0x80); n >>= 7n; }
    out.push(Number(n));
  }
  function pushVarint(out, n) {
    n = BigInt(n);
    pushUvarint(out, n >= 0n ? n << 1n : ((-n) << 1n) - 1n);
  }
  function pushBytes(out, b) {
    pushUvarint(out, b.length);
    for (var j = 0; j < b.length; j++) out.push(b[j]);
  }
  function hexToBytes(h) {
    var b = [];
    for (var j = 0; j < h.length; j += 2) b.push(parseInt(h.substr(j, 2), 16));
    return b;
  }
  function bytesToHex(buf) {
    return Array.prototype.map.call(new Uint8Array(buf), function (x) { return (x < 16 ? '0' : '') + x.toString(16); }).join('');
  }
  var ZERO = '0000000000000000000000000000000000000000000000000000000000000000';

  // eventFields reads an event parsed by parseRaw with its exact integers
  // and payload text.
  function eventFields(text, e) {
    var r = e.__raw;
    function raw(k) { return r[k] ? text.slice(r[k][0], r[k][1]) : ''; }
    return {
      seq: BigInt(raw('seq') || '0'), index: BigInt(raw('index') || '0'), term: BigInt(raw('term') || '0'),
      time: BigInt(raw('time') || '0'), payload: raw('payload')
    };
  }

  // canonical is fsm.Event's canonical encoding (fsm/event.go): uvarint
  // seq, index, term, varint time, the length-prefixed type, subject,
  // component, actor, purpose and compact JSON payload. The API returns
  // the payload as stored (compact), byte for byte.
  function canonical(e, f) {
    var out = hexToBytes(e.prev_hash || ZERO);
    pushUvarint(out, f.seq);
    pushUvarint(out, f.index);
    pushUvarint(out, f.term);
    pushVarint(out, f.time);
    [e.type, e.subject, e.component, e.actor, e.purpose].forEach(function (s) { pushBytes(out, enc.encode(s || '')); });
    pushBytes(out, enc.encode(f.payload));
    return new Uint8Array(out);
  }

  async function hashEvent(e, f) {
    return bytesToHex(await crypto.subtle.digest('SHA-256', canonical(e, f)));
  }

  // fetchEvents reads events from index from (all pages) and returns them
  // with their exact fields, and the X-Ice-Index of the last page.
  async function fetchEvents(from, component, waitIndex) {
    var all = [];
    var idx = 0;
    var lastSeq = -1n;
    for (;;) {
      var url = '/v1/events?from=' + from + (component ? '&component=' + encodeURIComponent(component) : '');
      if (waitIndex > 0) url += '&index=' + waitIndex + '&wait=' + WAIT;
      var res = await api('GET', url);
      if (!res.ok) return { error: res.error, status: res.status };
      idx = res.index;
      var list = parseRaw(res.text) || [];
      list.forEach(function (e) {
        var f = eventFields(res.text, e);
        if (f.seq > lastSeq) { all.push({ e: e, f: f }); lastSeq = f.seq; }
      });
      if (list.length < 10000) break;
      from = String(all[all.length - 1].f.index); // the next page, from the last index (seen ones are skipped)
      waitIndex = 0;
    }
    return { events: all, index: idx };
  }

  function events() {
    var filter = $('#filter-component');
    var table = $('#events');
    var tbody = $('tbody', table);
    var head = null; // {seq, hash}
    var broken = null;
    var checked = 0;
    var gaps = 0;
    $('#filter-form').addEventListener('submit', function (ev) { ev.preventDefault(); });
    filter.addEventListener('input', applyFilter);
    function applyFilter() {
      var want = filter.value.trim();
      Array.prototype.forEach.call(tbody.rows, function (tr) {
        tr.hidden = !!want && tr.getAttribute('data-component') !== want;
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
        var tr = el('tr', { class: 'event', 'data-seq': String(f.seq), 'data-component': e.component || '', 'data-type': e.type }, [
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
        if (r.error) { showError(r.error); await sleep(r.status === 403 ? 5000 : 1000); idx = 0; continue; }
        clearError();
        var fresh = r.events.filter(function (x) { return !head || x.f.seq > head.seq; });
        await add(fresh);
        if (head) from = String(head.index);
        if (r.index > 0 && r.index !== idx) idx = r.index; else await sleep(1000);
      }
    })();
    setStatus();
  }

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

  // ---- grants -----------------------------------------------------------

  function reasonInput(id, label) {
    return [
      el('label', { class: 'visually-hidden', for: 'reason-' + id, text: label }),
      el('input', { id: 'reason-' + id, class: 'reason', type: 'text', placeholder: 'reason' })
    ];
  }

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

  var pages = { login: login, cluster: cluster, nodes: nodes, components: components, events: events, run: run, grants: grants, memory: memory };
  if (pages[page]) pages[page]();
})();
