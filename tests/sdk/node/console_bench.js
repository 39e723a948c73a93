'use strict';
// Measures the web console (BENCHMARKS.md, "Web console"), with the browser tests' setup (Debian's
// Chromium through playwright-core) against a fresh `ddsd serve`:
//
// 1. latency: time from an operation's state change to the page showing it, over upgrades of the
//    demo's sharded cluster and replica set watched on the instance page. A change's time is when an
//    independent poller (DdsdDescribeOperations every POLL_MS through the console's own API, in
//    this process) first saw it; "shown" is the frame after the page updated its DOM for the
//    server-sent event carrying it. Changes the page never showed (shorter than the stream's
//    50 ms poll, coalesced into the next one) are counted apart.
// 2. the instance list with 1,000 instances: bytes transferred (HTML, script, style, JSON) and time
//    to the first render of the table, cold, then the kernels of the page's rows filled in; the
//    same for a page of 100.
//
//   node tests/sdk/node/console_bench.js [--instances 1000] [--runs 5] [--sim-speed 30] [--latency-runs 1]
//
// `--latency-runs N` repeats part 1 on N fresh servers and pools the samples; `--instances 0` skips part 2.
//
// DDSD_BIN picks the binary (a release build for the numbers in BENCHMARKS.md).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startDdsd } = require('./ddsd');
const { launch, newPage, signIn } = require('./browser');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const INSTANCES = opt('instances', 1000);
const RUNS = opt('runs', 5);
const SIM_SPEED = opt('sim-speed', 30);
const LATENCY_RUNS = opt('latency-runs', 1);
const POLL_MS = 10;

function pct(values, p) {
  if (!values.length) return NaN;
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(v.length - 1, Math.ceil((p / 100) * v.length) - 1)];
}
const median = (v) => pct(v, 50);
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

// The console's API from this process, with a session of its own.
async function apiClient(url, keyId, keySecret) {
  const r = await fetch(`${url}/console/api/signin`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ AccessKeyId: keyId, AccessKeySecret: keySecret }),
  });
  const session = await r.json();
  if (!session.SignedIn) throw new Error(`sign-in failed: ${JSON.stringify(session)}`);
  const cookie = r.headers.get('set-cookie').split(';')[0];
  return async (action, params) => {
    const a = await fetch(`${url}/console/api/call`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.CsrfToken, Cookie: cookie },
      body: JSON.stringify({ Action: action, Params: params }),
    });
    const body = await a.json();
    if (body.HttpStatus !== 200) throw new Error(`${action}: ${JSON.stringify(body.Response)}`);
    return body.Response;
  };
}

async function openByDescription(page, type, description) {
  await page.getByLabel('Type', { exact: true }).selectOption(type);
  const row = page.getByRole('row').filter({ hasText: description });
  for (let i = 0; i < 240; i++) {
    await page.getByRole('table', { name: 'Instances' }).waitFor();
    if ((await row.count()) === 1 && /Running/.test(await row.textContent())) break;
    await page.waitForTimeout(500);
    await page.getByRole('button', { name: 'Apply filters' }).click();
  }
  const id = (await row.getByRole('link').textContent()).trim();
  await row.getByRole('link').click();
  await page.getByRole('heading', { name: 'Topology' }).waitFor();
  return id;
}

async function latency(browser) {
  const d = await startDdsd({ extraArgs: ['--demo', '--sim-speed', String(SIM_SPEED)] });
  const key = JSON.parse(fs.readFileSync(path.join(d.dataDir, 'admin-key.json'), 'utf8'));
  const api = await apiClient(d.url, d.keyId, d.keySecret);
  const shownAll = [];
  const deliveryAll = [];
  let missed = 0;
  let changes = 0;
  try {
    for (const [type, description] of [['sharding', 'ddsd demo sharded cluster'], ['replicate', 'ddsd demo replica set']]) {
      const { context, page, errors } = await newPage(browser);
      await context.addInitScript(() => { window.__ddsdMeasure = true; });
      await signIn(page, d.url, key.AccessKeyId, key.AccessKeySecret);
      await page.getByRole('table', { name: 'Instances' }).waitFor();
      const id = await openByDescription(page, type, description);
      await page.getByRole('button', { name: 'Upgrade minor version' }).click();
      await page.getByRole('dialog', { name: 'Upgrade minor version' }).getByRole('button', { name: 'Confirm upgrade' }).click();
      // The poller: the first time each state was seen.
      const firstSeen = new Map();
      let done = false;
      const poller = (async () => {
        while (!done) {
          const t0 = Date.now();
          const r = await api('DdsdDescribeOperations', { DBInstanceId: id, MaxRecords: '1' });
          const op = r.Operations.Operation[0];
          if (op && op.Action === 'UpgradeDBInstanceKernelVersion') {
            const k = JSON.stringify([op.Status, op.Progress, op.Report]);
            if (!firstSeen.has(k)) firstSeen.set(k, Date.now());
            if (op.Status === 'Succeeded' || op.Status === 'Failed') done = true;
          }
          const wait = POLL_MS - (Date.now() - t0);
          if (wait > 0) await new Promise((res) => setTimeout(res, wait));
        }
      })();
      await page.getByRole('region', { name: 'Report' }).waitFor({ timeout: 300000 });
      await poller;
      await page.waitForTimeout(300);
      const seen = await page.evaluate(() => window.__ddsdLatency);
      const byKey = new Map(seen.map((s) => [s.key, s]));
      for (const [k, t] of firstSeen) {
        changes += 1;
        const s = byKey.get(k);
        if (!s) { missed += 1; continue; }
        shownAll.push(s.shownMs - t);
      }
      for (const s of seen) deliveryAll.push(s.shownMs - s.serverMs);
      if (errors.length) throw new Error(errors.join('\n'));
      await context.close();
    }
  } finally {
    await d.stop();
  }
  return { shownAll, deliveryAll, missed, changes };
}

async function list(browser) {
  const d = await startDdsd({ extraArgs: ['--sim-speed', '1000'], extraConfig: ['[wire]', 'enabled = false'] });
  try {
    const api = await apiClient(d.url, d.keyId, d.keySecret);
    const t0 = Date.now();
    let next = 0;
    const create = async () => {
      while (next < INSTANCES) {
        const n = next++;
        await api('CreateDBInstance', {
          RegionId: 'cn-hangzhou', ZoneId: 'cn-hangzhou-b', Engine: 'MongoDB', EngineVersion: '4.4',
          DBInstanceClass: 'dds.mongo.mid', DBInstanceStorage: '20', DBInstanceDescription: `bench ${n}`,
        });
      }
    };
    await Promise.all(Array.from({ length: 16 }, create));
    for (;;) {
      const r = await api('DescribeDBInstances', { DBInstanceStatus: 'Running', PageSize: '30' });
      if (r.TotalCount >= INSTANCES) break;
      await new Promise((res) => setTimeout(res, 500));
    }
    const loadS = (Date.now() - t0) / 1000;
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      const { context, page, errors } = await newPage(browser);
      await signIn(page, d.url, d.keyId, d.keySecret);
      await page.waitForFunction(() => window.__ddsdList && window.__ddsdList.kernelsAt);
      // Cold: a new navigation with the session cookie, counting every response's body.
      const bytes = { static: 0, list: 0, rows: 0, other: 0 };
      const count = async (resp) => {
        const u = new URL(resp.url());
        let n = 0;
        try { n = (await resp.body()).length; } catch (e) { return; }
        if (u.pathname === '/console' || u.pathname.startsWith('/console/assets/')) bytes.static += n;
        else if (u.pathname === '/console/api/call') {
          const action = JSON.parse(resp.request().postData() || '{}').Action;
          if (action === 'DescribeDBInstances') bytes.list += n;
          else if (action === 'DescribeDBInstanceAttribute') bytes.rows += n;
          else bytes.other += n;
        } else bytes.other += n;
      };
      const pending = [];
      page.on('response', (r) => pending.push(count(r)));
      await page.goto(`${d.url}/console`, { waitUntil: 'load' });
      await page.waitForFunction(() => window.__ddsdList && window.__ddsdList.kernelsAt);
      await Promise.all(pending);
      const cold = await page.evaluate(() => ({
        shownAt: window.__ddsdList.shownAt,
        kernelsAt: window.__ddsdList.kernelsAt,
        rows: window.__ddsdList.rows,
        fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
        dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd,
        total: document.querySelector('[aria-label="Instance list"] p').textContent,
      }));
      // A page of 100.
      const before = { ...bytes };
      const clicked = await page.evaluate(() => performance.now());
      await page.getByLabel('Per page', { exact: true }).selectOption('100');
      await page.getByRole('button', { name: 'Apply filters' }).click();
      await page.waitForFunction((t) => window.__ddsdList && window.__ddsdList.shownAt > t && window.__ddsdList.kernelsAt > t && window.__ddsdList.rows === 100, clicked);
      await Promise.all(pending);
      const hundred = await page.evaluate(() => ({ shownAt: window.__ddsdList.shownAt, kernelsAt: window.__ddsdList.kernelsAt }));
      runs.push({
        cold, coldBytes: before,
        hundred: { shownMs: hundred.shownAt - clicked, kernelsMs: hundred.kernelsAt - clicked },
        hundredBytes: { list: bytes.list - before.list, rows: bytes.rows - before.rows },
      });
      if (errors.length) throw new Error(errors.join('\n'));
      await context.close();
    }
    return { loadS, runs };
  } finally {
    await d.stop();
  }
}

async function main() {
  const browser = await launch();
  try {
    console.log(`machine: ${os.cpus().length} CPUs (${os.cpus()[0].model.trim()}), ${round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
    console.log(`ddsd: ${process.env.DDSD_BIN || 'target/debug/ddsd'}; chromium: ${browser.version()}`);
    const l = { shownAll: [], deliveryAll: [], missed: 0, changes: 0 };
    for (let i = 0; i < LATENCY_RUNS; i++) {
      const one = await latency(browser);
      l.shownAll.push(...one.shownAll);
      l.deliveryAll.push(...one.deliveryAll);
      l.missed += one.missed;
      l.changes += one.changes;
    }
    console.log(`\nstate change -> on the page, ${LATENCY_RUNS} run(s) of 2 upgrades (${l.shownAll.length} changes shown, ${l.missed} of ${l.changes} coalesced into a later event): `
      + `p50 ${round(median(l.shownAll))} ms, p90 ${round(pct(l.shownAll, 90))} ms, p99 ${round(pct(l.shownAll, 99))} ms, max ${round(Math.max(...l.shownAll))} ms`);
    console.log(`server-sent event -> on the page (${l.deliveryAll.length} events): p50 ${round(median(l.deliveryAll))} ms, p99 ${round(pct(l.deliveryAll, 99))} ms`);
    if (!INSTANCES) return;
    const r = await list(browser);
    console.log(`\n${INSTANCES} instances created through the console's API and Running in ${round(r.loadS)} s`);
    for (const [i, run] of r.runs.entries()) {
      console.log(`run ${i + 1}: ${run.cold.total}; cold load: FCP ${round(run.cold.fcp)} ms, table ${round(run.cold.shownAt)} ms, kernels ${round(run.cold.kernelsAt)} ms; `
        + `bytes static ${run.coldBytes.static}, list ${run.coldBytes.list}, rows ${run.coldBytes.rows}, other ${run.coldBytes.other}; `
        + `page of 100: table ${round(run.hundred.shownMs)} ms, kernels ${round(run.hundred.kernelsMs)} ms, bytes list ${run.hundredBytes.list}, rows ${run.hundredBytes.rows}`);
    }
    const m = (f) => round(median(r.runs.map(f)));
    console.log(`median of ${r.runs.length}: cold FCP ${m((x) => x.cold.fcp)} ms, table ${m((x) => x.cold.shownAt)} ms, kernels ${m((x) => x.cold.kernelsAt)} ms, `
      + `${m((x) => x.coldBytes.static + x.coldBytes.list + x.coldBytes.rows + x.coldBytes.other) / 1} bytes; `
      + `page of 100: table ${m((x) => x.hundred.shownMs)} ms, kernels ${m((x) => x.hundred.kernelsMs)} ms`);
    console.log(`load average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
