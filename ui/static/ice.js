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

  // The page's p.error shows one message: a refused action's (showError)
  // stays until the next action, a failed read's (readError) until a read
  // succeeds (clearReadError). A refused write may commit an entry and so
  // wake a live update, which must not wipe the refusal.
  var errorBox = $('p.error');
  var errorFromRead = false;
  function showError(msg) {
    if (!errorBox) return;
    errorFromRead = false;
    errorBox.textContent = msg;
    errorBox.hidden = false;
  }
  function readError(msg) {
    showError(msg);
    errorFromRead = true;
  }
  function clearError() {
    if (!errorBox) return;
    errorFromRead = false;
    errorBox.textContent = '';
    errorBox.hidden = true;
  }
  function clearReadError() {
    if (errorFromRead) clearError();
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
          if (onError) onError(res); else readError(res.error);
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


  // ---- grants -----------------------------------------------------------

  function reasonInput(id, label) {
    return [
      el('label', { class: 'visually-hidden', for: 'reason-' + id, text: label }),
      el('input', { id: 'reason-' + id, class: 'reason', type: 'text', placeholder: 'reason' })
    ];
  }

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


  // ---- sign-in gate and nav -------------------------------------------

  if (page !== 'login' && !token()) {
    location.replace('/ui/login');
  }
  var signout = $('#signout');
  if (signout) {
    signout.addEventListener('click', function () {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
      location.assign('/ui/login');
    });
  }

  // ---- the page scripts ---------------------------------------------------

  // ICE is what each page's script (/ui/static/PAGE.js, loaded after this
  // one) uses. ready is false when the page is leaving for the sign-in page.
  window.ICE = {
    ready: page === 'login' || !!token(), page: page, arg: arg, TOKEN_KEY: TOKEN_KEY,
    $: $, el: el, td: td, api: api, watch: watch, can: can, sleep: sleep,
    showError: showError, clearError: clearError, readError: readError, clearReadError: clearReadError, fmtTime: fmtTime, runLink: runLink,
    replaceRows: replaceRows, reasonInput: reasonInput, fetchEvents: fetchEvents,
    hashEvent: hashEvent, ZERO: ZERO
  };

})();
