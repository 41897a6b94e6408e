// ICE web UI: the component page (see ice.js for the helpers it uses).
(function () {
  'use strict';
  var I = window.ICE;
  if (!I || !I.ready || I.page !== 'component') return;
  var $ = I.$, el = I.el, td = I.td, api = I.api, watch = I.watch, can = I.can;
  var showError = I.showError, clearError = I.clearError, runLink = I.runLink;
  var replaceRows = I.replaceRows, arg = I.arg;

  var name = arg;
  var path = '/v1/components/' + encodeURIComponent(name);
  var comp = null;
  var runs = [];
  var mayWrite = null; // asked once the component is known
  var hclGen = -1; // the generation whose HCL is shown

  function budgetText(c) {
    var b = c.budget;
    if (!b) return 'none';
    var spent = (c.spend && c.spend.units) || {};
    var parts = Object.keys(b.limits || {}).sort().map(function (u) { return u + ' ' + (spent[u] || 0) + ' of ' + b.limits[u]; });
    var text = parts.join(', ');
    if (b.window_ns) text += ' per ' + Math.round(b.window_ns / 36e11) + ' h window';
    if (b.hard) text += ' (hard)';
    if (c.budget_exhausted) text += ': ' + c.budget_exhausted;
    return text;
  }

  function backoffText(r) {
    if (!(r.attempt > 0)) return '';
    var left = r.not_before ? r.not_before / 1e6 - Date.now() : 0;
    return 'restart ' + r.attempt + (left > 0 ? ', next try in ' + Math.ceil(left / 1000) + ' s' : '');
  }

  function render() {
    var c = comp;
    if (!c) return;
    $('#component-status').textContent = c.status + (c.reason ? ': ' + c.reason : '');
    $('#component-generation').textContent = c.generation + ' (runs of generation ' + c.run_generation + ' on are current)';
    $('#component-plugin').textContent = c.plugin.name + (c.plugin.version ? ' ' + c.plugin.version : '') + (c.plugin.sha256 ? ' sha256 ' + c.plugin.sha256 : '');
    $('#component-count').textContent = c.dispatch ? 'dispatched (each dispatch is one run)' : String(c.count);
    $('#component-budget').textContent = budgetText(c);
    var live = runs.filter(function (r) { return r.state !== 'TERMINATED'; });
    live.sort(function (a, b) { return a.slot - b.slot || a.create_index - b.create_index; });
    var updated = live.filter(function (r) { return r.generation >= c.run_generation; }).length;
    var ro = $('#component-rollout');
    ro.setAttribute('data-updated', updated);
    ro.setAttribute('data-live', live.length);
    ro.replaceChildren(el('span', { class: 'progress' + (live.length > 0 && updated === live.length ? ' good' : ''), text: updated + '/' + live.length + ' updated' }));
    live.forEach(function (r) {
      var b = backoffText(r);
      if (b) ro.appendChild(el('span', { class: 'backoff note', 'data-slot': r.slot, text: 'slot ' + r.slot + ': ' + b }));
    });
    replaceRows($('#component-runs'), live.map(function (r) {
      return el('tr', { 'data-run': r.id, 'data-state': r.state }, [
        td(r.slot < 0 ? 'dispatched' : r.slot), td(r.state + (r.reason ? ' (' + r.reason + ')' : ''), 'state'), el('td', null, [runLink(r.id)]),
        td(r.generation + (r.generation >= c.run_generation ? '' : ' (outdated)')), td(r.node || ''), td(backoffText(r), 'backoff')
      ]);
    }));
    var ended = runs.filter(function (r) { return r.state === 'TERMINATED'; });
    ended.sort(function (a, b) { return b.modify_index - a.modify_index; });
    replaceRows($('#component-ended'), ended.slice(0, 50).map(function (r) {
      return el('tr', { 'data-run': r.id, 'data-state': r.state }, [
        td(r.slot < 0 ? 'dispatched' : r.slot), td(r.outcome || r.state), el('td', null, [runLink(r.id)]), td(r.generation), td(r.reason || '')
      ]);
    }));
    renderActions(c);
  }

  async function renderActions(c) {
    if (mayWrite === null) {
      mayWrite = false;
      var f = await can([['write', 'component', name]]);
      mayWrite = f('write', 'component', name);
    }
    var box = $('#component-actions');
    box.setAttribute('data-asked', 'true'); // what the token may do is known
    var stop = $('button.stop', box);
    if (mayWrite && c.status !== 'stopped' && !stop) {
      box.appendChild(el('button', { type: 'button', class: 'stop', 'data-component': name, 'aria-label': 'Stop ' + name, text: 'Stop' }));
    } else if (stop && c.status === 'stopped') {
      stop.remove();
    }
    showDispatch(mayWrite && c.dispatch && c.status !== 'stopped');
  }

  var dispatchShown = false;
  function showDispatch(allowed) {
    var sec = $('#dispatch');
    if (!allowed || dispatchShown) return;
    dispatchShown = true;
    sec.appendChild($('#dispatch-template').content.cloneNode(true));
    sec.hidden = false;
    $('#dispatch-form').addEventListener('submit', dispatch);
  }

  // parseMeta reads name=value lines (blank lines skipped).
  function parseMeta(text) {
    var meta = {};
    var lines = text.split(/\r?\n/);
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i].trim();
      if (!line) continue;
      var eq = line.indexOf('=');
      if (eq <= 0) return { error: 'meta line ' + (i + 1) + ' "' + line + '": want name=value' };
      meta[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
    }
    return { meta: meta };
  }

  async function dispatch(ev) {
    ev.preventDefault();
    clearError();
    var result = $('#dispatch-result');
    result.replaceChildren();
    var m = parseMeta($('#dispatch-meta').value);
    if (m.error) { showError(m.error); return; }
    var body = {};
    var input = $('#dispatch-input').value;
    if (input) body.input = input;
    if (Object.keys(m.meta).length) body.meta = m.meta;
    var b = $('#dispatch-submit');
    b.disabled = true;
    var res = await api('POST', path + '/dispatch', body);
    b.disabled = false;
    if (!res.ok) { showError(res.error); return; }
    result.replaceChildren('dispatched run ', runLink(res.data.run), ' at index ' + res.data.index);
  }

  async function showHCL(gen) {
    if (gen === hclGen) return;
    hclGen = gen;
    var res = await api('GET', path + '/hcl');
    if (!res.ok) { hclGen = -1; $('#component-hcl').textContent = 'the spec is not available: ' + res.error; return; }
    $('#component-hcl').textContent = res.text;
  }

  watch(path, function (c) {
    clearError();
    comp = c;
    render();
    return showHCL(c.generation);
  });
  watch('/v1/runs?component=' + encodeURIComponent(name), function (list) { runs = list || []; render(); });
  setInterval(render, 1000); // the restart countdowns

  // A stop button asks the API, which decides; its refusal is shown.
  document.addEventListener('click', async function (ev) {
    var b = ev.target && ev.target.closest ? ev.target.closest('button.stop') : null;
    if (!b) return;
    clearError();
    b.disabled = true;
    var res = await api('DELETE', path);
    b.disabled = false;
    if (!res.ok) showError(res.error);
  });
})();
