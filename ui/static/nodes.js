// ICE web UI: the nodes page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'nodes') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can, sleep = I.sleep;
  var showError = I.showError, clearError = I.clearError, runLink = I.runLink, replaceRows = I.replaceRows;
  // ---- nodes ------------------------------------------------------------

  var list = [];
  var runsByNode = {};
  var leases = {}; // node id -> api.NodeLease
  var mayWrite = function () { return false; };
  var asked = null; // the node ids last asked about (none yet)
  var confirming = {}; // node id -> true while its drain waits for the second click

  function secs(ms) {
    var s = ms / 1000;
    return (s < 10 ? s.toFixed(1) : String(Math.round(s))) + ' s';
  }

  // leaseText is "renewed 1.2 s ago (TTL 10 s)", marked when past the TTL.
  function showLease(cell, l) {
    if (!cell) return;
    cell.classList.remove('bad');
    if (!l) { cell.textContent = ''; cell.removeAttribute('data-age-ms'); return; }
    var ttl = ' (TTL ' + secs(l.ttl_ms) + ')';
    if (!l.known) {
      cell.textContent = 'no renewal seen by this leader yet' + ttl;
      cell.removeAttribute('data-age-ms');
      return;
    }
    cell.setAttribute('data-age-ms', String(l.age_ms));
    cell.setAttribute('data-ttl-ms', String(l.ttl_ms));
    cell.textContent = (l.expired ? 'expired: ' : '') + 'renewed ' + secs(l.age_ms) + ' ago' + ttl;
    if (l.expired) cell.classList.add('bad');
  }

  function plugins(n) {
    return el('ul', { class: 'plain' }, (n.plugins || []).map(function (p) {
      var sha = p.sha256 || '';
      var li = el('li', { 'data-plugin': p.name }, [p.name + (p.version ? ' ' + p.version : ''), ' ']);
      if (!sha) return li;
      li.appendChild(el('code', { class: 'sha256', title: 'sha256 ' + sha, text: sha.slice(0, 12) }));
      li.appendChild(el('details', null, [
        el('summary', { text: 'sha256', 'aria-label': 'full sha256 of ' + p.name }),
        el('code', { class: 'sha256-full', text: sha })
      ]));
      return li;
    }));
  }

  function actions(n) {
    var cell = el('td', { class: 'node-actions' });
    if (!mayWrite('write', 'node', n.id)) return cell;
    if (n.status === 'ready' || n.status === 'ineligible') {
      var c = !!confirming[n.id];
      cell.appendChild(el('button', {
        type: 'button', class: 'drain' + (c ? ' confirming' : ''), 'data-node': n.id,
        'aria-label': (c ? 'Confirm: drain ' : 'Drain ') + n.id, text: c ? 'Confirm drain' : 'Drain'
      }));
      if (c) cell.appendChild(el('button', { type: 'button', class: 'drain-cancel', 'data-node': n.id, 'aria-label': 'Cancel draining ' + n.id, text: 'Cancel' }));
    }
    if (n.status === 'ready') {
      cell.appendChild(el('button', { type: 'button', class: 'eligibility', 'data-node': n.id, 'data-eligible': 'false', 'aria-label': 'Mark ' + n.id + ' ineligible', text: 'Mark ineligible' }));
    } else if (n.status === 'ineligible' || n.status === 'draining') {
      cell.appendChild(el('button', { type: 'button', class: 'eligibility', 'data-node': n.id, 'data-eligible': 'true', 'aria-label': 'Mark ' + n.id + ' eligible', text: 'Mark eligible' }));
    }
    return cell;
  }

  async function render() {
    var ids = list.map(function (n) { return n.id; }).sort();
    var key = ids.join('\n');
    if (key !== asked) {
      asked = key;
      mayWrite = ids.length === 0 ? function () { return false; } : await can(ids.map(function (id) { return ['write', 'node', id]; }));
    }
    replaceRows($('#nodes'), list.map(function (n) {
      var labels = Object.keys(n.labels || {}).sort().map(function (k) { return k + '=' + n.labels[k]; }).join(', ');
      var runs = el('ul', { class: 'plain' }, (runsByNode[n.id] || []).map(function (r) {
        return el('li', null, [runLink(r.id), ' ' + r.component + ' ' + r.state]);
      }));
      var lease = el('td', { class: 'lease' });
      showLease(lease, leases[n.id]);
      return el('tr', { 'data-node': n.id }, [
        td(n.id), td(n.status + (n.reason ? ' (' + n.reason + ')' : ''), 'status'), lease, td(labels, 'labels'),
        el('td', { class: 'plugins' }, [plugins(n)]), el('td', { class: 'node-runs' }, [runs]), td(n.address), actions(n)
      ]);
    }));
  }

  function nodes() {
    watch('/v1/runs', function (runs) {
      runsByNode = {};
      (runs || []).forEach(function (r) {
        if (!r.node || r.state === 'TERMINATED') return;
        (runsByNode[r.node] = runsByNode[r.node] || []).push(r);
      });
      return render();
    }, function () { /* a token that may not read runs sees none */ });
    watch('/v1/nodes', function (l) { I.clearReadError(); list = l || []; return render(); });
    // Leases are in the leader's memory, not the replicated state: no
    // blocking query to wait on; ask each second.
    (async function pollLeases() {
      var note = $('#lease-note');
      for (;;) {
        var res = await api('GET', '/v1/nodes/leases');
        if (res.ok && res.data) {
          leases = {};
          (res.data.leases || []).forEach(function (l) { leases[l.node] = l; });
          note.textContent = 'Leases as leader ' + res.data.leader + ' sees them.';
          document.querySelectorAll('#nodes tr[data-node]').forEach(function (row) {
            showLease($('td.lease', row), leases[row.getAttribute('data-node')]);
          });
        } else {
          note.textContent = 'Leases unknown: ' + res.error;
        }
        await sleep(1000);
      }
    })();
  }

  async function setNode(b, path, body, done) {
    clearError();
    var result = $('#node-action-result');
    result.textContent = '';
    b.disabled = true;
    var res = await api('PUT', path, body);
    b.disabled = false;
    if (!res.ok) { showError(res.error); return; }
    result.textContent = done + ' (index ' + res.data.index + ')';
  }

  // The buttons, even ones the page did not render, ask the API, which
  // decides; its refusal is shown. Drain asks for a second click first.
  document.addEventListener('click', function (ev) {
    var b = ev.target && ev.target.closest ? ev.target.closest('button[data-node]') : null;
    if (!b) return;
    var id = b.getAttribute('data-node');
    var path = '/v1/nodes/' + encodeURIComponent(id);
    if (b.classList.contains('drain-cancel')) {
      delete confirming[id];
      render();
    } else if (b.classList.contains('drain')) {
      if (!confirming[id]) {
        confirming[id] = true;
        render().then(function () {
          var confirm = document.querySelector('button.drain[data-node="' + CSS.escape(id) + '"]');
          if (confirm) confirm.focus();
        });
        return;
      }
      delete confirming[id];
      setNode(b, path + '/drain', {}, 'draining ' + id).then(render);
    } else if (b.classList.contains('eligibility')) {
      var eligible = b.getAttribute('data-eligible') === 'true';
      setNode(b, path + '/eligibility', { eligible: eligible }, id + ' marked ' + (eligible ? 'eligible' : 'ineligible'));
    }
  });

  nodes();
})();
