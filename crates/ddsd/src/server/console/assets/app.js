// ddsd console: a small hand-written script, embedded in the ddsd binary and served from
// /console/assets/app.js. No framework, no build step. Every action goes through
// POST /console/api/call, which runs it through ddsd's action table for the signed-in key; live
// progress comes from GET /console/api/events (server-sent events).
'use strict';

(function () {
  const state = { session: null, stream: null, timers: [], page: null };
  window.__ddsdLatency = [];

  // ---------------------------------------------------------------- DOM helpers
  function h(tag, attrs, ...children) {
    const el = tag === 'svg' || tag.startsWith('svg:')
      ? document.createElementNS('http://www.w3.org/2000/svg', tag.replace('svg:', ''))
      : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.setAttribute('class', v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  // A label and its control, side by side in the DOM (the label names the control alone).
  let fieldSeq = 0;
  function field(label, control) {
    if (!control.id) control.id = `f${++fieldSeq}`;
    return h('div', { class: 'field' }, h('label', { for: control.id }, label), control);
  }
  function s(tag, attrs, ...children) { return h('svg:' + tag, attrs, ...children); }
  const $ = (sel, root) => (root || document).querySelector(sel);
  function badge(text) { return h('span', { class: 'badge ' + String(text).replace(/[^A-Za-z]/g, '') }, text); }
  function toast(text) {
    const t = $('#toast');
    t.textContent = text;
    t.classList.add('show');
    setTimeout(() => t.classList.remove('show'), 2500);
  }
  function clock(ms) {
    const sec = Math.max(0, Math.floor(ms / 1000));
    const hh = Math.floor(sec / 3600), mm = Math.floor(sec / 60) % 60, ss = sec % 60;
    const p = (n) => String(n).padStart(2, '0');
    return hh ? `${hh}:${p(mm)}:${p(ss)}` : `${p(mm)}:${p(ss)}`;
  }
  function secs(ms) {
    if (ms === null || ms === undefined) return '—';
    return ms >= 60000 ? `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s` : `${(ms / 1000).toFixed(1)} s`;
  }

  // ---------------------------------------------------------------- API
  class ApiError extends Error {
    constructor(status, body) {
      super(`${body.Code || 'Error'}: ${body.Message || ''}`);
      this.status = status;
      this.code = body.Code;
      this.body = body;
    }
    text() {
      return `${this.code}: ${this.body.Message} (HTTP ${this.status}${this.body.RequestId ? ', RequestId ' + this.body.RequestId : ''})`;
    }
  }
  async function post(path, body) {
    const headers = { 'Content-Type': 'application/json' };
    if (state.session) headers['X-CSRF-Token'] = state.session.CsrfToken;
    const r = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body), credentials: 'same-origin' });
    const data = await r.json().catch(() => ({ Code: 'InvalidResponse', Message: 'The server answered something that is not JSON.' }));
    if (!r.ok) {
      // The console itself refused the request (no session, CSRF, throttled, malformed).
      if (r.status === 401) signedOut();
      throw new ApiError(r.status, data);
    }
    return data;
  }
  // One action of the API, through the same action table as a signed RPC request. The answer
  // carries the action's own HTTP status and envelope.
  async function api(action, params) {
    const data = await post('/console/api/call', { Action: action, Params: params || {} });
    if (data.HttpStatus >= 400) throw new ApiError(data.HttpStatus, data.Response || {});
    return data.Response;
  }
  function errorBox(e) {
    return h('div', { class: 'api-error', role: 'alert' }, e instanceof ApiError ? e.text() : String(e));
  }

  // ---------------------------------------------------------------- sign-in
  function signedOut() {
    state.session = null;
    stopStream();
    $('#view').hidden = true;
    $('#signin').hidden = false;
    $('#signout').hidden = true;
    $('#who').textContent = '';
  }
  function signedIn(session) {
    state.session = session;
    $('#signin').hidden = true;
    $('#view').hidden = false;
    $('#signout').hidden = false;
    $('#who').textContent = `${session.AccessKeyId}${session.Admin ? ' (admin)' : ''}`;
    route();
  }
  async function boot() {
    $('#signin-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = ev.target;
      const err = $('#signin-error');
      err.textContent = '';
      try {
        const session = await post('/console/api/signin', {
          AccessKeyId: f.AccessKeyId.value.trim(), AccessKeySecret: f.AccessKeySecret.value,
        });
        f.AccessKeySecret.value = '';
        if (!session.SignedIn) throw new ApiError(session.HttpStatus, session.Response || {});
        signedIn(session);
      } catch (e) {
        f.AccessKeySecret.value = '';
        err.textContent = e instanceof ApiError ? e.text() : String(e);
      }
    });
    $('#signout').addEventListener('click', async () => {
      try { await post('/console/api/signout', {}); } catch (e) { /* already gone */ }
      signedOut();
      location.hash = '#/';
    });
    window.addEventListener('hashchange', () => { if (state.session) route(); });
    const r = await fetch('/console/api/session', { credentials: 'same-origin' });
    const who = r.ok ? await r.json() : { SignedIn: false };
    if (who.SignedIn) signedIn(who); else signedOut();
  }

  // ---------------------------------------------------------------- routing
  function stopStream() {
    if (state.stream) { state.stream.close(); state.stream = null; }
    for (const t of state.timers) clearInterval(t);
    state.timers = [];
  }
  function route() {
    stopStream();
    const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    const view = $('#view');
    view.replaceChildren();
    if (parts[0] === 'instance' && parts[1]) {
      instancePage(view, parts[1], parts[2] === 'operation' ? parts[3] : null);
    } else {
      listPage(view);
    }
  }

  // ---------------------------------------------------------------- instance list
  const listState = { type: 'replicate', id: '', status: '', engine: '', description: '', page: 1, size: 30 };
  const STATUSES = ['Running', 'Creating', 'MinorVersionUpgrading', 'Rebooting', 'NodeRestarting', 'Deleting'];
  async function listPage(view) {
    const started = performance.now();
    const form = h('form', { class: 'filters', 'aria-label': 'Filters' },
      field('Type', h('select', { name: 'type' },
        h('option', { value: 'replicate', selected: listState.type === 'replicate' }, 'Replica sets'),
        h('option', { value: 'sharding', selected: listState.type === 'sharding' }, 'Sharded clusters'))),
      field('Instance ID', h('input', { name: 'id', value: listState.id, placeholder: 'dds-…', spellcheck: 'false' })),
      field('Description', h('input', { name: 'description', value: listState.description })),
      field('Status', h('select', { name: 'status' }, h('option', { value: '' }, 'Any'),
        STATUSES.map((x) => h('option', { value: x, selected: listState.status === x }, x)))),
      field('Engine version', h('select', { name: 'engine' }, h('option', { value: '' }, 'Any'),
        ['4.0', '4.2', '4.4', '5.0', '6.0', '7.0'].map((x) => h('option', { value: x, selected: listState.engine === x }, x)))),
      field('Per page', h('select', { name: 'size' },
        [30, 50, 100].map((n) => h('option', { value: n, selected: listState.size === n }, n)))),
      h('button', { type: 'submit', class: 'primary' }, 'Apply filters'));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      listState.type = form.type.value; listState.id = form.id.value.trim();
      listState.description = form.description.value.trim();
      listState.status = form.status.value; listState.engine = form.engine.value;
      listState.size = Number(form.size.value); listState.page = 1;
      route();
    });
    form.type.addEventListener('change', () => form.requestSubmit());
    const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
    view.append(h('h1', {}, 'Instances'), h('section', { class: 'card' }, form), h('section', { class: 'card', 'aria-label': 'Instance list' }, body));
    const params = { DBInstanceType: listState.type, PageNumber: String(listState.page), PageSize: String(listState.size) };
    if (listState.id) params.DBInstanceId = listState.id;
    if (listState.status) params.DBInstanceStatus = listState.status;
    if (listState.engine) params.EngineVersion = listState.engine;
    if (listState.description) params.DBInstanceDescription = listState.description;
    let data;
    try {
      data = await api('DescribeDBInstances', params);
    } catch (e) {
      body.replaceChildren(errorBox(e));
      return;
    }
    const items = data.DBInstances.DBInstance || [];
    const total = data.TotalCount || 0;
    const pages = Math.max(1, Math.ceil(total / listState.size));
    const kernelCells = new Map();
    const rows = items.map((i) => {
      const kernel = h('td', { class: 'mono wide' }, '…');
      kernelCells.set(i.DBInstanceId, kernel);
      return h('tr', {},
        h('td', {}, h('a', { href: `#/instance/${encodeURIComponent(i.DBInstanceId)}` }, i.DBInstanceId)),
        h('td', {}, i.DBInstanceDescription || ''),
        h('td', { class: 'wide' }, i.DBInstanceType === 'sharding' ? 'Sharded cluster' : (i.KindCode === '3' ? 'Standalone' : 'Replica set')),
        h('td', { class: 'wide' }, `${i.Engine} ${i.EngineVersion}`),
        kernel,
        h('td', {}, badge(i.DBInstanceStatus)));
    });
    const table = h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Instances' },
      h('thead', {}, h('tr', {}, ['ID', 'Description', 'Type', 'Engine', 'Kernel', 'Status'].map((c, n) =>
        h('th', { scope: 'col', class: n >= 2 && n <= 4 ? 'wide' : null }, c)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No instances match.')))));
    const prev = h('button', { type: 'button', disabled: listState.page <= 1, onclick: () => { listState.page -= 1; route(); } }, 'Previous page');
    const next = h('button', { type: 'button', disabled: listState.page >= pages, onclick: () => { listState.page += 1; route(); } }, 'Next page');
    body.replaceChildren(table, h('div', { class: 'spread' },
      h('p', { class: 'muted' }, `Page ${listState.page} of ${pages} · ${total} instance${total === 1 ? '' : 's'}`),
      h('div', { class: 'row' }, prev, next)));
    // Timings for the benchmark (docs/console.md): ms since navigation began and since this view began.
    window.__ddsdList = { shownAt: performance.now(), viewMs: performance.now() - started, rows: rows.length };
    // The kernel is not part of DescribeDBInstances (as at the vendor): ask for each row's attribute,
    // a few at a time.
    const ids = [...kernelCells.keys()];
    let at = 0;
    async function worker() {
      while (at < ids.length) {
        const id = ids[at++];
        try {
          const a = await api('DescribeDBInstanceAttribute', { DBInstanceId: id });
          kernelCells.get(id).textContent = a.DBInstances.DBInstance[0].CurrentKernelVersion || '—';
        } catch (e) {
          kernelCells.get(id).textContent = e.code || '?';
        }
      }
    }
    await Promise.all([worker(), worker(), worker(), worker()]);
    window.__ddsdList.kernelsAt = performance.now();
  }

  // ---------------------------------------------------------------- progress texts (as `ddsd upgrade --wait`)
  function variant(v) {
    if (typeof v === 'string') return [v, null];
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1) return [keys[0], v[keys[0]]];
    }
    return ['', null];
  }
  function describe(v) {
    if (v === null || v === undefined) return '';
    if (typeof v !== 'object') return String(v);
    if (Array.isArray(v)) return v.map(describe).join(', ');
    const keys = Object.keys(v);
    if (keys.length === 1) {
      const inner = v[keys[0]];
      if (inner === null || (typeof inner === 'object' && !Array.isArray(inner) && Object.keys(inner).length === 0)) return keys[0];
      if (typeof inner === 'object' && !Array.isArray(inner)) return `${keys[0]} (${fields(inner)})`;
      return `${keys[0]} (${describe(inner)})`;
    }
    return fields(v);
  }
  function fields(o) {
    return Object.entries(o).filter(([, x]) => x !== null).map(([k, x]) => `${k}: ${describe(x)}`).join(', ');
  }
  function unmetText(u) {
    const [name, f] = variant(u);
    switch (name) {
      case '': return 'not yet observed';
      case 'ProcessDown': return 'process down';
      case 'NotObserved': return 'not observed yet';
      case 'NotRestarted': return 'still the old process';
      case 'StateFromBeforeStart': return 'waiting for a heartbeat after the restart';
      case 'Unhealthy': return 'unhealthy as seen from the primary';
      case 'NoPrimary': return 'no primary to measure lag against';
      case 'NotSteady': return `in ${String((f && f.State) || '?').toUpperCase()}`;
      case 'WrongKernel': return `running ${(f && f.Observed) || 'another kernel'}`;
      case 'Lagging': return `lagging ${secs(f.LagMs)} > ${secs(f.AllowedMs)}`;
      default: return describe(u);
    }
  }
  function waitingText(w) {
    const [name, f] = variant(w);
    switch (name) {
      case 'PreStopGate': { const b = describe(f && f.Block); return b ? `pre-stop gate: ${b}` : 'pre-stop gate'; }
      case 'Stop': return 'stopping';
      case 'Start': return 'starting';
      case 'PostStartGate': return `post-start gate: ${unmetText(f && f.Unmet)}`;
      case 'Stability': return 'gate holds, stability window';
      case 'StepDown': return f && f.Attempts > 1 ? `stepping down (attempt ${f.Attempts})` : 'stepping down';
      case 'NewPrimary': return 'waiting for the new primary';
      case 'AnyPrimary': return 'waiting for a primary';
      case 'Revert': return 'reverting to its previous kernel';
      default: return describe(w);
    }
  }
  const PHASES = {
    Preflight: 'waiting to start', StoppingBalancer: 'stopping the balancer', ReplicaSets: 'rolling through the replica sets',
    Mongos: 'restarting the mongos', RestoringBalancer: 'restoring the balancer',
    SettingFcv: 'raising the feature compatibility version', Finished: 'finished', '': 'starting',
  };
  const REASONS = {
    StartFailed: 'the process failed to start on the new kernel',
    StartTimeout: 'the process did not come up serving in time',
    CatchUpTimeout: 'the member never caught up (post-start gate deadline)',
    StepDownRefused: 'the primary refused to step down (never forced)',
    NoNewPrimary: 'no new primary was elected after the stepdown',
    PreStopGateTimeout: 'the replica set was not healthy enough to stop the next member',
    NoPrimary: 'the replica set had no primary for too long',
    StopTimeout: 'the process did not stop in time',
    CommandRejected: 'the data plane refused a command',
    Preflight: 'the deployment failed the preflight checks',
    TooManyStepDowns: 'the old primary kept being re-elected',
    BalancerStopTimeout: 'the balancer did not stop in time',
    FcvNotRaised: 'the feature compatibility version could not be raised (every process runs the new binary)',
  };
  function reasonText(r) {
    const [name] = variant(r);
    const words = REASONS[name];
    return words ? `${words} [${describe(r)}]` : describe(r);
  }
  function failureText(f) {
    if (!f) return null;
    const reason = reasonText(f.Reason);
    if (f.NodeId && f.ReplicaSet) return `FAILED at member ${f.NodeId} (replica set ${f.ReplicaSet}): ${reason}`;
    if (f.NodeId) return `FAILED at ${f.NodeId}: ${reason}`;
    return `FAILED: ${reason}`;
  }
  // The operation's parts: one per replica set, then the mongos.
  function viewOf(op) {
    const p = op.Progress || {};
    const parts = (p.ReplicaSets || []).map((rs) => ({
      key: rs.NodeId,
      label: rs.Kind === 'ConfigServer' ? `config servers ${rs.NodeId}` : rs.Kind === 'Shard' ? `shard ${rs.NodeId}` : `replica set ${rs.Name}`,
      done: rs.MembersDone, total: rs.MembersTotal, status: rs.Status || 'Pending',
      currentNode: rs.Current ? rs.Current.NodeId : null,
      current: rs.Current ? `${rs.Current.NodeId || '?'}: ${waitingText(rs.Current.WaitingOn)}` : null,
      elections: rs.Elections || 0,
    }));
    const m = p.Mongos || {};
    if (m.Total > 0) {
      const cur = (m.Current || []);
      const failed = p.Failure && p.Failure.NodeId && !p.Failure.ReplicaSet;
      parts.push({
        key: 'mongos', label: 'mongos', done: m.Done, total: m.Total,
        status: failed ? 'Failed' : m.Done === m.Total ? 'Done' : cur.length ? 'Active' : 'Pending',
        currentNode: cur.length ? cur[0].NodeId : null,
        current: cur.length ? cur.map((c) => `${c.NodeId || '?'}: ${waitingText(c.WaitingOn)}`).join('; ') : null,
        elections: 0,
      });
    }
    const [phaseName] = variant(p.Phase);
    let phase = PHASES[phaseName] !== undefined ? PHASES[phaseName] : phaseName;
    if (phaseName === 'Preflight' && op.SwitchMode === '1') phase = 'waiting for the maintenance window';
    if (phaseName === 'Preflight' && p.StartBlocked) phase = `waiting to start: ${p.StartBlocked.Message || 'the deployment is not settled'}`;
    return { status: op.Status, phase, parts, elections: p.Elections || 0, failure: failureText(p.Failure) };
  }
  function summary(part) {
    const word = { Done: 'done', Failed: 'FAILED', Halted: 'halted (not touched after the failure)', Pending: 'pending' }[part.status] || 'in progress';
    let t = `${part.done}/${part.total} ${word}`;
    if (part.current) t += ` — ${part.current}`;
    if (part.elections) t += ` (${part.elections} election${part.elections === 1 ? '' : 's'})`;
    return t;
  }

  // ---------------------------------------------------------------- instance page
  async function instancePage(view, id, operationId) {
    state.page = { id };
    const header = h('div', { class: 'spread' });
    const actions = h('div', { class: 'row actions-bar', role: 'toolbar', 'aria-label': 'Instance actions' });
    const messages = h('div', { 'aria-live': 'polite' });
    const facts = h('section', { class: 'card', 'aria-labelledby': 'facts-title' }, h('h2', { id: 'facts-title' }, 'Instance'));
    const topo = h('section', { class: 'card', 'aria-labelledby': 'topo-title' }, h('h2', { id: 'topo-title' }, 'Topology'));
    const progress = h('section', { class: 'card', 'aria-labelledby': 'progress-title', hidden: true });
    const ops = h('section', { class: 'card', 'aria-labelledby': 'ops-title' }, h('h2', { id: 'ops-title' }, 'Operations'));
    const admin = h('section', { class: 'card', 'aria-labelledby': 'admin-title', hidden: true });
    view.append(h('p', {}, h('a', { href: '#/' }, '← Instances')), header, actions, messages, progress,
      h('div', { class: 'grid2' }, facts, admin), topo, ops);
    state.page = { id, header, actions, messages, facts, topo, progress, ops, admin, attr: null };
    await refreshInstance();
    await refreshOperations(operationId);
  }

  async function refreshInstance() {
    const pg = state.page;
    let attr;
    try {
      attr = (await api('DescribeDBInstanceAttribute', { DBInstanceId: pg.id })).DBInstances.DBInstance[0];
    } catch (e) {
      pg.header.replaceChildren(h('h1', {}, pg.id));
      pg.messages.replaceChildren(errorBox(e));
      return;
    }
    pg.attr = attr;
    pg.header.replaceChildren(
      h('h1', {}, attr.DBInstanceId, ' ', h('span', { class: 'muted' }, attr.DBInstanceDescription || '')),
      h('div', { class: 'row' }, h('span', { class: 'muted' }, 'Status'), h('span', { id: 'instance-status' }, badge(attr.DBInstanceStatus))));
    const sharded = attr.DBInstanceType === 'sharding';
    pg.actions.replaceChildren(
      h('button', { type: 'button', class: 'primary', onclick: () => upgradeDialog() }, 'Upgrade minor version'),
      h('button', { type: 'button', onclick: () => restartDialog() }, 'Restart'),
      h('button', { type: 'button', onclick: () => { refreshInstance(); refreshOperations(); } }, 'Refresh'));
    const win = `${attr.MaintainStartTime || '—'} – ${attr.MaintainEndTime || '—'} (UTC)`;
    const winValue = h('dd', { id: 'maintenance-window' }, win, ' ',
      h('button', { type: 'button', onclick: () => editWindow(winValue) }, 'Edit maintenance window'));
    pg.facts.replaceChildren(h('h2', { id: 'facts-title' }, 'Instance'), h('dl', { class: 'facts' },
      h('dt', {}, 'Type'), h('dd', {}, sharded ? 'Sharded cluster' : 'Replica set'),
      h('dt', {}, 'Engine'), h('dd', {}, `${attr.Engine} ${attr.EngineVersion}`),
      h('dt', {}, 'Kernel'), h('dd', { id: 'instance-kernel', class: 'mono' }, attr.CurrentKernelVersion || '—'),
      h('dt', {}, 'Class'), h('dd', {}, attr.DBInstanceClass || '—'),
      h('dt', {}, 'Zone'), h('dd', {}, `${attr.RegionId || ''} ${attr.ZoneId || ''}`),
      h('dt', {}, 'Maintenance window'), winValue,
      h('dt', {}, 'Scheduled maintenance'), h('dd', { id: 'scheduled-events' }, '…')));
    refreshEvents();
    if (state.session.Admin) adminPanel();
    await refreshTopology();
  }

  // The instance's scheduled O&M events (DescribeActiveOperationTasks, docs/events.md) that have not
  // ended: what switches when, and the user's two levers — start now, or cancel.
  async function refreshEvents() {
    const pg = state.page;
    const dd = document.getElementById('scheduled-events');
    if (!dd) return;
    let items;
    try {
      items = (await api('DescribeActiveOperationTasks', { InsName: pg.id, PageSize: '100' })).Items || [];
    } catch (e) { dd.replaceChildren(errorBox(e)); return; }
    const open = items.filter((t) => t.Status === 3 || t.Status === 4);
    if (!open.length) { dd.replaceChildren('None'); return; }
    const out = h('div', { 'aria-live': 'polite' });
    const act = async (action, params, done) => {
      try { await api(action, params); toast(done); refreshEvents(); } catch (e) { out.replaceChildren(errorBox(e)); }
    };
    dd.replaceChildren(h('ul', { class: 'plain', 'aria-label': 'Scheduled events' }, open.map((t) => {
      let target = '';
      try { target = JSON.parse(t.TaskParams).TargetKernelVersion || ''; } catch (_) { /* shown without it */ }
      const what = `${t.TaskTypeEn} to ${target || 'the newest kernel'}`;
      const when = t.Status === 4 ? `running since ${t.StartTime}` : `at ${t.SwitchTime} (deadline ${t.Deadline})`;
      return h('li', { 'aria-label': `Event ${t.Id}` }, `${what} ${when} `,
        t.AllowChange === '1' ? h('button', { type: 'button', onclick: () => act('ModifyActiveOperationTasks', { Ids: String(t.Id), ImmediateStart: '1' }, `Event ${t.Id} starts now`) }, 'Start now') : '',
        t.AllowCancel === '1' ? h('button', { type: 'button', class: 'danger', onclick: () => act('CancelActiveOperationTasks', { Ids: String(t.Id) }, `Event ${t.Id} cancelled`) }, 'Cancel event') : '');
    })), out);
  }

  function editWindow(dd) {
    const attr = state.page.attr;
    const start = h('input', { id: 'mw-start', value: attr.MaintainStartTime || '', pattern: '\\d\\d:\\d\\dZ', size: 7, required: true });
    const end = h('input', { id: 'mw-end', value: attr.MaintainEndTime || '', pattern: '\\d\\d:\\d\\dZ', size: 7, required: true });
    const err = h('div');
    const form = h('form', { class: 'inline-form', 'aria-label': 'Maintenance window' },
      field('Start (HH:mmZ)', start), field('End (HH:mmZ)', end),
      h('button', { type: 'submit', class: 'primary' }, 'Save window'),
      h('button', { type: 'button', onclick: () => refreshInstance() }, 'Cancel'), err);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        await api('ModifyDBInstanceMaintainTime', { DBInstanceId: state.page.id, MaintainStartTime: start.value.trim(), MaintainEndTime: end.value.trim() });
        toast('Maintenance window saved');
        refreshInstance();
      } catch (e) { err.replaceChildren(errorBox(e)); }
    });
    dd.replaceChildren(form);
    start.focus();
  }

  async function refreshTopology(working) {
    const pg = state.page;
    const attr = pg.attr;
    if (!attr) return;
    let dep = null;
    try { dep = await api('DdsdDescribeDeployment', { DBInstanceId: pg.id }); } catch (e) { dep = null; }
    const rsObs = new Map(((dep && dep.ReplicaSets) || []).map((r) => [r.Name, r]));
    const mongosObs = new Map(((dep && dep.Mongos) || []).map((m) => [m.NodeId, m]));
    const busy = new Set(working || []);
    function rsBox(title, name, nodeId, kernel) {
      const o = rsObs.get(name) || [...rsObs.values()].find((r) => r.Members.some((m) => m.NodeId.startsWith(nodeId + '-')));
      const members = o ? o.Members.map((m) => {
        const dotClass = !m.ProcessUp ? 'down' : m.Role;
        return h('div', { class: 'member' + (busy.has(m.NodeId) ? ' working' : ''), role: 'listitem', 'aria-label': `${m.NodeId} ${m.ProcessUp ? m.Role : 'down'}` },
          h('span', { class: 'dot ' + dotClass, 'aria-hidden': 'true' }),
          h('span', { class: 'mono' }, m.NodeId),
          h('span', {}, badge(m.ProcessUp ? (m.Role === 'Other' ? m.State : m.Role) : 'Down')),
          h('span', { class: 'meta' }, `${m.State} · ${m.Healthy ? 'healthy' : 'unhealthy'} · ${m.KernelVersion || 'not running'} · lag ${m.LagMs === null ? '—' : secs(m.LagMs)}`));
      }) : [h('p', { class: 'muted' }, 'Not observed.')];
      return h('div', { class: 'rs', role: 'group', 'aria-label': `${title} ${nodeId}` },
        h('h3', {}, h('span', {}, title, ' ', h('span', { class: 'mono' }, nodeId)), h('span', { class: 'muted mono' }, kernel || '')),
        o ? h('p', { class: 'muted' }, `replica set ${o.Name} · term ${o.Term} · primary ${o.Primary || 'none'}`) : null,
        h('div', { role: 'list' }, members));
    }
    const boxes = [];
    if (attr.DBInstanceType === 'sharding') {
      for (const c of (attr.ConfigserverList && attr.ConfigserverList.ConfigserverAttribute) || []) {
        boxes.push(rsBox('Config servers', c.ReplicaSetName || c.NodeId, c.NodeId, c.CurrentKernelVersion));
      }
      for (const sh of (attr.ShardList && attr.ShardList.ShardAttribute) || []) {
        boxes.push(rsBox('Shard', sh.ReplicaSetName || sh.NodeId, sh.NodeId, sh.CurrentKernelVersion));
      }
      const mongos = (attr.MongosList && attr.MongosList.MongosAttribute) || [];
      boxes.push(h('div', { class: 'rs', role: 'group', 'aria-label': 'mongos' }, h('h3', {}, 'mongos'),
        h('div', { role: 'list' }, mongos.map((m) => {
          const o = mongosObs.get(m.NodeId);
          const up = o ? o.Up : true;
          return h('div', { class: 'member' + (busy.has(m.NodeId) ? ' working' : ''), role: 'listitem', 'aria-label': `${m.NodeId} ${up ? 'up' : 'down'}` },
            h('span', { class: 'dot ' + (up ? 'Secondary' : 'down'), 'aria-hidden': 'true' }),
            h('span', { class: 'mono' }, m.NodeId), h('span', {}, badge(up ? 'Up' : 'Down')),
            h('span', { class: 'meta' }, `${(o && o.KernelVersion) || m.CurrentKernelVersion || '—'} · port ${m.Port || '—'}`));
        }))));
      if (dep && dep.Balancer) boxes.push(h('p', { class: 'muted' }, `Balancer: ${dep.Balancer.Mode}${dep.Balancer.InBalancerRound ? ' (round in progress)' : ''}`));
    } else {
      for (const o of rsObs.values()) boxes.push(rsBox('Replica set', o.Name, attr.DBInstanceId, attr.CurrentKernelVersion));
      if (!rsObs.size) boxes.push(h('p', { class: 'muted' }, 'The deployment is not observed (yet).'));
    }
    pg.topo.replaceChildren(h('h2', { id: 'topo-title' }, 'Topology'), h('div', { class: 'topology' }, boxes),
      h('div', { class: 'legend', 'aria-hidden': 'true' },
        h('span', {}, h('i', { class: 'dot Primary' }), 'primary'), h('span', {}, h('i', { class: 'dot Secondary' }), 'secondary / up'),
        h('span', {}, h('i', { class: 'dot Other' }), 'other state'), h('span', {}, h('i', { class: 'dot down' }), 'down')));
  }

  // ---------------------------------------------------------------- operations
  async function refreshOperations(openId) {
    const pg = state.page;
    let data;
    try {
      data = await api('DdsdDescribeOperations', { DBInstanceId: pg.id, MaxRecords: '10' });
    } catch (e) {
      pg.ops.replaceChildren(h('h2', { id: 'ops-title' }, 'Operations'), errorBox(e));
      return;
    }
    const list = data.Operations.Operation || [];
    const rows = list.map((op) => h('tr', {},
      h('td', {}, h('a', { href: `#/instance/${encodeURIComponent(pg.id)}/operation/${encodeURIComponent(op.OperationId)}` }, op.Action)),
      h('td', {}, badge(op.Status)), h('td', {}, op.CreateTime || ''), h('td', {}, op.FinishTime || '—'),
      h('td', { class: 'mono wide' }, op.TargetKernelVersion || op.NodeId || '')));
    pg.ops.replaceChildren(h('h2', { id: 'ops-title' }, 'Operations'),
      h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Operations' },
        h('thead', {}, h('tr', {}, ['Operation', 'Status', 'Created (UTC)', 'Finished', 'Target'].map((c, n) => h('th', { scope: 'col', class: n === 4 ? 'wide' : null }, c)))),
        h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No operations yet.'))))));
    const chosen = openId ? list.find((o) => o.OperationId === openId) : list.find((o) => o.Status === 'Pending' || o.Status === 'Running');
    if (chosen) showOperation(chosen);
  }

  function showOperation(op) {
    const pg = state.page;
    if (pg.shownOperation === op.OperationId && pg.logList) {
      // Already on the page (e.g. refreshed after it finished): keep its log.
      renderOperation(op);
      if ((op.Status === 'Pending' || op.Status === 'Running') && !state.stream) follow(op.OperationId);
      return;
    }
    pg.shownOperation = op.OperationId;
    pg.progress.hidden = false;
    pg.log = [];
    pg.lastLines = new Map();
    pg.op = null;
    const title = h('h2', { id: 'progress-title' }, op.Action === 'UpgradeDBInstanceKernelVersion' ? 'Upgrade progress' : op.Action === 'UpgradeDBInstanceEngineVersion' ? 'Major version upgrade progress' : op.Action === 'RestartDBInstance' ? 'Restart progress' : 'Operation');
    pg.progressBody = h('div');
    pg.logList = h('ol', { class: 'mono', 'aria-label': 'Progress log' });
    pg.progress.replaceChildren(title, pg.progressBody,
      h('details', { open: true }, h('summary', {}, 'Progress log'), pg.logList));
    renderOperation(op);
    if (op.Status === 'Pending' || op.Status === 'Running') follow(op.OperationId);
  }

  function follow(operationId) {
    const pg = state.page;
    if (state.stream) state.stream.close();
    const url = `/console/api/events?DBInstanceId=${encodeURIComponent(pg.id)}&OperationId=${encodeURIComponent(operationId)}`;
    const es = new EventSource(url);
    state.stream = es;
    let lastTopo = 0;
    es.addEventListener('operation', (ev) => {
      const data = JSON.parse(ev.data);
      renderOperation(data.Operation);
      // When each change was on screen (the frame after the DOM update), for the benchmark
      // (docs/console.md).
      const seen = { serverMs: data.ServerMs };
      if (window.__ddsdMeasure) seen.key = JSON.stringify([data.Operation.Status, data.Operation.Progress, data.Operation.Report]);
      requestAnimationFrame(() => requestAnimationFrame(() => {
        seen.shownMs = performance.timeOrigin + performance.now();
        window.__ddsdLatency.push(seen);
      }));
      const now = Date.now();
      const done = data.Operation.Status === 'Succeeded' || data.Operation.Status === 'Failed';
      if (done) {
        es.close();
        state.stream = null;
        refreshInstance().then(() => refreshOperations(operationId));
      } else if (now - lastTopo > 1000) {
        lastTopo = now;
        const v = viewOf(data.Operation);
        refreshTopology(v.parts.map((p) => p.currentNode).filter(Boolean));
      }
    });
    es.addEventListener('refused', (ev) => {
      const body = JSON.parse(ev.data);
      pg.messages.replaceChildren(errorBox(new ApiError(body.HttpStatus || 0, body)));
      es.close();
      state.stream = null;
    });
    // A dropped connection: EventSource reconnects by itself (the server sends the state again).
    // A refused reconnection (the session ended) closes it for good: back to the sign-in form.
    es.addEventListener('error', async () => {
      if (es.readyState !== EventSource.CLOSED) return;
      if (state.stream === es) state.stream = null;
      const r = await fetch('/console/api/session', { credentials: 'same-origin' });
      const who = r.ok ? await r.json() : { SignedIn: false };
      if (!who.SignedIn) signedOut();
    });
    es.addEventListener('none', () => { es.close(); state.stream = null; });
    const timer = setInterval(() => {
      const el = $('#elapsed');
      if (el && pg.op) el.textContent = elapsedText(pg.op);
    }, 1000);
    state.timers.push(timer);
  }

  function createdMs(op) {
    const t = Date.parse(op.CreateTime || '');
    return Number.isNaN(t) ? Date.now() : t;
  }
  function elapsedText(op) {
    const end = op.FinishTime ? Date.parse(op.FinishTime) : Date.now();
    let t = `elapsed ${clock(end - createdMs(op))}`;
    const est = state.page.estimateMs;
    if (est) t += ` / estimate ~${clock(Math.max(1000, est))}`;
    return t;
  }

  function renderOperation(op) {
    const pg = state.page;
    pg.op = op;
    const v = viewOf(op);
    // The log: one line per change, as `ddsd upgrade --wait` prints when piped.
    const stamp = clock(Date.now() - createdMs(op));
    const emit = (key, text) => {
      if (pg.lastLines.get(key) !== text) {
        pg.lastLines.set(key, text);
        pg.logList.append(h('li', {}, `[${stamp}] ${text}`));
        while (pg.logList.children.length > 300) pg.logList.firstChild.remove();
      }
    };
    emit('\u0000status', `operation ${String(v.status).toLowerCase()}: ${v.phase}`);
    for (const p of v.parts) emit(p.key, `${p.label}: ${summary(p)}`);
    if (v.failure) emit('\u0000failure', v.failure);
    const parts = v.parts.map((p) => {
      const pct = p.total ? Math.round((100 * p.done) / p.total) : 0;
      const bar = h('span');
      bar.style.width = pct + '%';
      return h('div', { class: 'progress-part', role: 'group', 'aria-label': p.label, 'data-status': p.status },
        h('div', { class: 'spread' }, h('strong', {}, p.label), badge(p.status)),
        h('div', { class: 'bar' + (p.status === 'Failed' ? ' failed' : ''), role: 'progressbar', 'aria-label': `${p.label} members done`,
          'aria-valuemin': 0, 'aria-valuemax': p.total, 'aria-valuenow': p.done }, bar),
        h('div', { class: 'current' }, summary(p)));
    });
    const head = h('div', { class: 'spread' },
      h('div', {}, badge(v.status), ' ', h('span', { id: 'phase' }, v.phase), ' · ',
        h('span', {}, `${v.elections} election${v.elections === 1 ? '' : 's'}`)),
      h('span', { id: 'elapsed', class: 'muted' }, elapsedText(op)));
    const blocks = [head];
    if (op.TargetKernelVersion) blocks.push(h('p', { class: 'muted' }, 'Target kernel ', h('span', { class: 'mono' }, op.TargetKernelVersion)));
    if (v.failure) blocks.push(h('div', { class: 'failure', role: 'alert', 'aria-label': 'Failure' }, v.failure));
    blocks.push(...parts);
    if (op.Report) blocks.push(reportView(op));
    if (op.Simulation && op.Report) blocks.push(timelineView(op));
    pg.progressBody.replaceChildren(...blocks);
  }

  function reportView(op) {
    const r = op.Report;
    const outcome = r.Outcome === 'Succeeded' ? 'Succeeded' : 'Failed';
    const sim = op.Simulation || {};
    const simRs = new Map((sim.ReplicaSets || []).map((x) => [x.Name, x]));
    const simProc = new Map((sim.Processes || []).map((x) => [x.NodeId, x]));
    const memberRows = [];
    for (const rs of r.ReplicaSets || []) {
      for (const m of rs.Members || []) memberRows.push([rs.Name, m]);
    }
    for (const m of r.Mongos || []) memberRows.push(['mongos', m]);
    const elections = (r.ReplicaSets || []).reduce((n, rs) => n + (rs.Elections || 0), 0);
    const kernelNow = state.page.attr ? state.page.attr.CurrentKernelVersion : '';
    return h('section', { class: outcome === 'Succeeded' ? 'success' : 'failure', 'aria-label': 'Report' },
      h('h3', {}, 'Report'),
      h('p', {}, `${outcome} in ${secs(r.DurationMs)} of plane time · ${elections} election${elections === 1 ? '' : 's'} · ${r.CommandsExecuted || 0} commands executed`,
        outcome === 'Succeeded' && op.TargetKernelVersion ? ` · now on ${op.TargetKernelVersion}` : ''),
      h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Write-unavailable windows' },
        h('thead', {}, h('tr', {}, ['Replica set', 'Elections', 'No primary (observed)', 'No writable primary (ground truth)'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, (r.ReplicaSets || []).map((rs) => {
          const t = simRs.get(rs.Name);
          return h('tr', {}, h('td', { class: 'mono' }, rs.Name), h('td', {}, rs.Elections || 0),
            h('td', {}, `${secs(rs.NoPrimaryMs)} (longest ${secs(rs.LongestNoPrimaryMs)})`),
            h('td', {}, t ? `${secs(t.NoWritablePrimaryMs)} in ${t.NoWritablePrimaryPeriods} period${t.NoWritablePrimaryPeriods === 1 ? '' : 's'}` : '—'));
        })))),
      h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Member downtimes' },
        h('thead', {}, h('tr', {}, ['Member', 'Replica set', 'Kernel', 'Restarted', 'Downtime'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, memberRows.map(([rs, m]) => {
          const t = simProc.get(m.NodeId);
          return h('tr', {}, h('td', { class: 'mono' }, m.NodeId), h('td', { class: 'mono' }, rs),
            h('td', { class: 'mono' }, m.FromKernel && m.FromKernel !== m.Kernel ? `${m.FromKernel} → ${m.Kernel}` : (m.Kernel || '')),
            h('td', {}, m.Failed ? 'FAILED' : m.Skipped ? 'skipped' : m.Restarted ? 'yes' : 'no'),
            h('td', {}, `${secs(m.DowntimeMs)}${t ? ` (ground truth ${secs(t.DownMs)})` : ''}`));
        })))),
      (r.Warnings || []).length ? h('ul', {}, r.Warnings.map((w) => h('li', {}, describe(w)))) : null,
      kernelNow ? h('p', { class: 'muted' }, 'Instance kernel now ', h('span', { class: 'mono' }, kernelNow)) : null);
  }

  // Members on rows, plane time across: down (red), primary (dark blue), secondary (light blue).
  function timelineView(op) {
    const sim = op.Simulation;
    const from = sim.FromMs, until = Math.max(sim.UntilMs, sim.FromMs + 1);
    const procs = sim.Processes || [];
    const rsByName = new Map((sim.ReplicaSets || []).map((r) => [r.Name, r]));
    const rowH = 18, labelW = 190, width = 900, top = 22, plotW = width - labelW - 10;
    const height = top + procs.length * rowH + 24;
    const x = (t) => labelW + ((Math.min(Math.max(t, from), until) - from) / (until - from)) * plotW;
    const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `Timeline of the operation: ${procs.length} processes over ${secs(until - from)} of plane time` },
      s('title', {}, 'Operation timeline'));
    // Axis.
    const ticks = 6;
    for (let i = 0; i <= ticks; i++) {
      const t = from + ((until - from) * i) / ticks;
      svg.append(s('line', { x1: x(t), x2: x(t), y1: top - 4, y2: height - 20, stroke: '#e3e7ee' }),
        s('text', { x: x(t), y: height - 6, 'text-anchor': i === 0 ? 'start' : i === ticks ? 'end' : 'middle', 'font-size': 11, fill: '#5b6577' }, secs(t - from)));
    }
    procs.forEach((p, i) => {
      const y = top + i * rowH;
      svg.append(s('text', { x: 4, y: y + 13, 'font-size': 11, fill: '#1d2533', 'font-family': 'monospace' }, p.NodeId));
      const base = p.ReplicaSet ? '#7aa7ee' : '#9ccc9c';
      svg.append(s('rect', { x: labelW, y: y + 3, width: plotW, height: rowH - 6, fill: base }, s('title', {}, `${p.NodeId}: ${p.ReplicaSet ? 'secondary' : 'up'}`)));
      if (p.ReplicaSet) {
        const rs = rsByName.get(p.ReplicaSet);
        if (rs) {
          const changes = [[from, rs.InitialPrimary]].concat((rs.ElectionLog || []).map((e) => [e.AtMs, e.Winner]));
          changes.sort((a, b) => a[0] - b[0]);
          changes.forEach(([at, who], k) => {
            if (who !== p.NodeId) return;
            const end = k + 1 < changes.length ? changes[k + 1][0] : until;
            svg.append(s('rect', { x: x(at), y: y + 3, width: Math.max(1, x(end) - x(at)), height: rowH - 6, fill: '#2f6fde' },
              s('title', {}, `${p.NodeId}: primary from ${secs(at - from)}`)));
          });
        }
      }
      for (const d of p.DownPeriods || []) {
        const end = d.UntilMs === null ? until : d.UntilMs;
        svg.append(s('rect', { x: x(d.FromMs), y: y + 3, width: Math.max(2, x(end) - x(d.FromMs)), height: rowH - 6, fill: '#d93025' },
          s('title', {}, `${p.NodeId}: down ${secs(end - d.FromMs)}${d.ByCommand ? '' : ' (not by a command)'}`)));
      }
    });
    return h('figure', { class: 'timeline', 'aria-label': 'Timeline' }, h('h3', {}, 'Timeline'), svg,
      h('figcaption', { class: 'legend' },
        h('span', {}, h('i', { class: 'dot Primary' }), 'primary'), h('span', {}, h('i', { class: 'dot Secondary' }), 'secondary'),
        h('span', {}, h('i', { class: 'dot down' }), 'down'), h('span', {}, 'mongos rows: green = up'),
        h('span', {}, 'time across: plane seconds since the operation started')));
  }

  // ---------------------------------------------------------------- upgrade, restart, faults
  function modal(title, ...content) {
    const d = h('dialog', { 'aria-label': title }, h('h2', {}, title), ...content);
    d.addEventListener('close', () => d.remove());
    document.body.append(d);
    d.showModal();
    return d;
  }

  async function upgradeDialog() {
    const pg = state.page;
    pg.messages.replaceChildren();
    let plan;
    try {
      plan = await api('DdsdDescribeUpgradePlan', { DBInstanceId: pg.id });
    } catch (e) {
      pg.messages.replaceChildren(errorBox(e));
      return;
    }
    let notes = [];
    try {
      const rn = await api('DescribeKernelReleaseNotes', { KernelVersion: pg.attr.CurrentKernelVersion });
      notes = (rn.ReleaseNotes && rn.ReleaseNotes.ReleaseNote) || [];
    } catch (e) { notes = []; }
    const per = ((plan.ReplicaSets && plan.ReplicaSets.ReplicaSet) || [])
      .map((r) => `${r.NodeId || r.Name}: ${r.ExpectedElections}`).join(', ');
    const total = plan.ExpectedElections;
    const estimate = plan.EstimatedWallMs || plan.EstimatedDurationMs;
    const steps = ((plan.Steps && plan.Steps.Step) || []);
    const err = h('div');
    const now = h('input', { type: 'radio', name: 'switch', id: 'sw-now', value: '0', checked: true });
    const later = h('input', { type: 'radio', name: 'switch', id: 'sw-window', value: '1' });
    const confirmBtn = h('button', { type: 'submit', class: 'primary' }, 'Confirm upgrade');
    const form = h('form', { method: 'dialog' },
      h('p', {}, 'From ', h('span', { class: 'mono' }, pg.attr.CurrentKernelVersion), ' to ', h('strong', { class: 'mono' }, plan.TargetKernelVersion)),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Steps'), h('dd', {}, String(plan.StepCount || steps.length)),
        h('dt', {}, 'Expected elections'), h('dd', { id: 'plan-elections' }, `${total}${per ? ` (${per})` : ''}`),
        h('dt', {}, 'Estimated time'), h('dd', {}, `${secs(plan.EstimatedDurationMs)} of MongoDB time${plan.EstimatedWallMs ? `, about ${secs(plan.EstimatedWallMs)} here (sim speed ${plan.SimSpeed})` : ''}`)),
      h('h3', {}, 'Plan (dry run: nothing changes until you confirm)'),
      h('div', { class: 'steps' }, h('table', { 'aria-label': 'Upgrade plan' },
        h('thead', {}, h('tr', {}, ['#', 'Command', 'Node', 'Replica set'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, steps.map((st) => h('tr', {}, h('td', {}, st.Index), h('td', {}, st.Command), h('td', { class: 'mono' }, st.NodeId || ''), h('td', { class: 'mono' }, st.ReplicaSet || '')))))),
      h('h3', {}, 'Release notes'),
      h('div', { class: 'notes', 'aria-label': 'Release notes' }, notes.length ? notes.map((n) => h('p', {}, h('strong', { class: 'mono' }, n.KernelVersion), ' ', n.ReleaseNote)) : 'No release notes.'),
      h('fieldset', {}, h('legend', {}, 'When'),
        h('div', { class: 'choice' }, now, h('label', { for: 'sw-now' }, 'Now')),
        h('div', { class: 'choice' }, later, h('label', { for: 'sw-window' }, `In the maintenance window (${pg.attr.MaintainStartTime || '?'}–${pg.attr.MaintainEndTime || '?'} UTC)`))),
      err,
      h('div', { class: 'row' }, confirmBtn, h('button', { type: 'button', onclick: () => d.close() }, 'Cancel')));
    const d = modal('Upgrade minor version', form);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      confirmBtn.disabled = true;
      try {
        await api('UpgradeDBInstanceKernelVersion', { DBInstanceId: pg.id, SwitchMode: later.checked ? '1' : '0' });
        pg.estimateMs = estimate;
        d.close();
        toast('Upgrade accepted');
        await refreshInstance();
        await refreshOperations();
      } catch (e) {
        confirmBtn.disabled = false;
        err.replaceChildren(errorBox(e));
      }
    });
  }

  async function restartDialog() {
    const pg = state.page;
    const attr = pg.attr;
    const nodes = [];
    if (attr.DBInstanceType === 'sharding') {
      for (const c of (attr.ConfigserverList && attr.ConfigserverList.ConfigserverAttribute) || []) nodes.push([c.NodeId, `config servers ${c.NodeId}`]);
      for (const sh of (attr.ShardList && attr.ShardList.ShardAttribute) || []) nodes.push([sh.NodeId, `shard ${sh.NodeId}`]);
      for (const m of (attr.MongosList && attr.MongosList.MongosAttribute) || []) nodes.push([m.NodeId, `mongos ${m.NodeId}`]);
    }
    const select = h('select', { id: 'restart-node' }, h('option', { value: '' }, 'The whole instance'), nodes.map(([v, l]) => h('option', { value: v }, l)));
    const err = h('div');
    const planBox = h('div', { class: 'muted' });
    const go = h('button', { type: 'submit', class: 'primary' }, 'Confirm restart');
    const form = h('form', {}, h('label', { for: 'restart-node' }, 'What to restart '), select, planBox, err,
      h('div', { class: 'row' }, go, h('button', { type: 'button', onclick: () => d.close() }, 'Cancel')));
    const d = modal('Restart', form);
    async function showPlan() {
      const params = { DBInstanceId: pg.id };
      if (select.value) params.NodeId = select.value;
      try {
        const plan = await api('DdsdDescribeRestartPlan', params);
        pg.estimateMs = plan.EstimatedWallMs || plan.EstimatedDurationMs;
        planBox.textContent = `${plan.StepCount} steps, ${plan.ExpectedElections} expected election(s), about ${secs(plan.EstimatedWallMs || plan.EstimatedDurationMs)}.`;
        err.replaceChildren();
      } catch (e) { planBox.textContent = ''; err.replaceChildren(errorBox(e)); }
    }
    select.addEventListener('change', showPlan);
    showPlan();
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      go.disabled = true;
      const params = { DBInstanceId: pg.id };
      if (select.value) params.NodeId = select.value;
      try {
        await api('RestartDBInstance', params);
        d.close();
        toast('Restart accepted');
        await refreshInstance();
        await refreshOperations();
      } catch (e) { go.disabled = false; err.replaceChildren(errorBox(e)); }
    });
  }

  const FAULTS = {
    StartFails: 'a mongod', NeverCatchesUp: 'a mongod', SlowStart: 'a mongod', Crash: 'a mongod',
    StepDownRefused: 'a replica set', NoNewPrimary: 'a replica set', MongosStartFails: 'a mongos', BalancerRound: '—',
  };
  async function adminPanel() {
    const pg = state.page;
    pg.admin.hidden = false;
    const dep = await api('DdsdDescribeDeployment', { DBInstanceId: pg.id }).catch(() => null);
    const nodes = [];
    for (const rs of (dep && dep.ReplicaSets) || []) for (const m of rs.Members) nodes.push(m.NodeId);
    for (const m of (dep && dep.Mongos) || []) nodes.push(m.NodeId);
    const type = h('select', { id: 'fault-type' }, Object.keys(FAULTS).map((f) => h('option', { value: f }, `${f} (${FAULTS[f]})`)));
    const node = h('select', { id: 'fault-node' }, h('option', { value: '' }, '—'), nodes.map((n) => h('option', { value: n }, n)));
    const extra = h('input', { id: 'fault-seconds', type: 'number', min: 0, placeholder: 'seconds', size: 8 });
    const out = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'inline-form', 'aria-label': 'Arm a fault' },
      field('Fault', type), field('Node', node), field('Seconds (if the fault takes some)', extra),
      h('button', { type: 'submit', class: 'danger' }, 'Arm fault'),
      h('button', { type: 'button', onclick: async () => {
        try { const r = await api('DdsdClearFaults', { DBInstanceId: pg.id }); out.replaceChildren(h('p', {}, `Cleared ${r.ClearedFaults} fault(s).`)); } catch (e) { out.replaceChildren(errorBox(e)); }
      } }, 'Clear faults'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const params = { DBInstanceId: pg.id, FaultType: type.value };
      if (node.value) params.NodeId = node.value;
      if (extra.value) {
        const name = { SlowStart: 'ExtraSeconds', Crash: 'DelaySeconds' }[type.value] || 'DurationSeconds';
        params[name] = extra.value;
      }
      try {
        const r = await api('DdsdArmFault', params);
        out.replaceChildren(h('p', { role: 'status' }, `Armed: ${describe(r.Fault)}`));
      } catch (e) { out.replaceChildren(errorBox(e)); }
    });
    pg.admin.replaceChildren(h('h2', { id: 'admin-title' }, 'Faults (admin, simulation)'),
      h('p', { class: 'muted' }, 'Arm a fault in the simulated deployment; the next upgrade or restart meets it. See docs/simulation.md.'),
      form, out);
  }

  window.addEventListener('error', (e) => { console.error('console script error', e.message); });
  document.addEventListener('DOMContentLoaded', boot);
})();
