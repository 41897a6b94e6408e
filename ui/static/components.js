// ICE web UI: the components page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'components') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can, sleep = I.sleep;
  var showError = I.showError, clearError = I.clearError, fmtTime = I.fmtTime, runLink = I.runLink;
  var replaceRows = I.replaceRows, reasonInput = I.reasonInput, fetchEvents = I.fetchEvents;
  var hashEvent = I.hashEvent, ZERO = I.ZERO, arg = I.arg, TOKEN_KEY = I.TOKEN_KEY, WAIT = '30s';
  // ---- components -------------------------------------------------------

  function componentHref(name) { return '/ui/components/' + encodeURIComponent(name); }

  // rollout is the component's rollout cell: its live runs at the current
  // run_generation out of all of them ("2/3 updated"), and the restart
  // backoff of each slot waiting for its next try.
  function rollout(c, live) {
    var updated = live.filter(function (r) { return r.generation >= c.run_generation; }).length;
    var cell = el('td', { class: 'rollout', 'data-updated': updated, 'data-live': live.length }, [
      el('span', { class: 'progress' + (live.length > 0 && updated === live.length ? ' good' : ''), text: updated + '/' + live.length + ' updated' })
    ]);
    backoffs(live).forEach(function (b) { cell.appendChild(b); });
    return cell;
  }

  // backoffs are spans for the runs waiting to restart (attempt > 0 and
  // not_before in the future); tickBackoff keeps their countdown.
  function backoffs(live) {
    var now = Date.now();
    return live.filter(function (r) { return r.attempt > 0 && r.not_before && r.not_before / 1e6 > now; }).map(function (r) {
      return el('span', { class: 'backoff note', 'data-run': r.id, 'data-slot': r.slot, 'data-attempt': r.attempt, 'data-not-before-ms': Math.floor(r.not_before / 1e6) });
    });
  }

  function tickBackoff() {
    var now = Date.now();
    document.querySelectorAll('span.backoff[data-not-before-ms]').forEach(function (s) {
      var left = Number(s.getAttribute('data-not-before-ms')) - now;
      var what = 'slot ' + s.getAttribute('data-slot') + ': restart ' + s.getAttribute('data-attempt');
      s.textContent = what + (left > 0 ? ', next try in ' + Math.ceil(left / 1000) + ' s' : ', trying now');
    });
  }
  setInterval(tickBackoff, 1000);

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
        var mine = mayWrite('write', 'component', c.name);
        if (mine && c.status !== 'stopped') {
          actions.appendChild(el('button', { type: 'button', class: 'stop', 'data-component': c.name, 'aria-label': 'Stop ' + c.name, text: 'Stop' }));
        }
        if (mine && c.dispatch && c.status !== 'stopped') {
          actions.appendChild(el('a', { class: 'dispatch-link', href: componentHref(c.name) + '#dispatch', text: 'Dispatch…', 'aria-label': 'Dispatch a run of ' + c.name }));
        }
        var plugin = c.plugin ? c.plugin.name + (c.plugin.version ? ' ' + c.plugin.version : '') : '';
        var name = el('td', { class: 'name' }, [el('a', { class: 'component', href: componentHref(c.name), text: c.name })]);
        return el('tr', { 'data-component': c.name }, [
          name, td(c.status + (c.reason ? ': ' + c.reason : ''), 'status'), td(c.generation, 'generation'),
          td(plugin), td(c.count), rollout(c, rs), el('td', { class: 'runs' }, [list]), actions
        ]);
      }));
      tickBackoff();
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

    watch('/v1/components', function (list) { I.clearReadError(); comps = list || []; return render(); });
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

  components();
})();
