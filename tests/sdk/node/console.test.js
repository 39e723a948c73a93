'use strict';
// The web console (/console) in Debian's Chromium, driven by playwright-core through accessible
// roles and names, against a real `ddsd serve --demo`: sign in, find the demo's sharded cluster,
// upgrade it and watch the progress move through the config servers, the shards and the mongos to
// `Running` on the target kernel with the report; a wrong key refused; an armed fault (admin key)
// shown as a failure naming the member; a state-changing request without the CSRF token refused; a
// scheduled minor-version event shown on its instance and cancelled there.
// No test may leave a console error or an uncaught page error behind.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const OpenApi = require('@alicloud/openapi-client');
const Util = require('@alicloud/tea-util');
const { startDdsd } = require('./ddsd');
const { launch, newPage, signIn } = require('./browser');

const TARGET = 'mongodb_20240119_4.4.19';
const SIM_SPEED = process.env.DDSD_CONSOLE_SIM_SPEED || '40';

// Lines of the page's progress log, in order.
async function logLines(page) {
  return page.getByRole('list', { name: 'Progress log' }).getByRole('listitem').allTextContents();
}

// Opens the instance whose description is `description` from the list, once it reads Running.
async function openInstance(page, type, description) {
  await page.getByLabel('Type', { exact: true }).selectOption(type);
  const row = page.getByRole('row').filter({ hasText: description });
  const deadline = Date.now() + 60000;
  for (;;) {
    await page.getByRole('table', { name: 'Instances' }).waitFor();
    if ((await row.count()) === 1 && /Running/.test(await row.textContent())) break;
    assert.ok(Date.now() < deadline, `${description} never listed as Running`);
    await page.waitForTimeout(500);
    await page.getByRole('button', { name: 'Apply filters' }).click();
  }
  const link = row.getByRole('link');
  const id = (await link.textContent()).trim();
  await link.click();
  await page.getByRole('heading', { name: 'Topology' }).waitFor();
  return id;
}

// Presses Tab until the focused element's accessible text matches `re` (at most `max` times).
async function tabTo(page, re, max = 80) {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const text = await page.evaluate(() => {
      const el = document.activeElement;
      return el ? `${el.tagName} ${el.getAttribute('aria-label') || el.labels?.[0]?.textContent || el.textContent}` : '';
    });
    if (re.test(text)) return text;
  }
  throw new Error(`nothing matching ${re} is reachable with Tab`);
}

describe('the web console in Chromium', () => {
  let d;
  let browser;
  let admin;
  before(async () => {
    d = await startDdsd({ extraArgs: ['--demo', '--sim-speed', SIM_SPEED] });
    const key = JSON.parse(fs.readFileSync(path.join(d.dataDir, 'admin-key.json'), 'utf8'));
    admin = { id: key.AccessKeyId, secret: key.AccessKeySecret };
    browser = await launch();
  });
  after(async () => {
    if (browser) await browser.close();
    if (!d) return;
    const { code } = await d.stop();
    assert.equal(code, 0, 'ddsd did not exit cleanly on SIGTERM');
  });

  it('upgrades the demo sharded cluster and shows the progress live, then the report', async () => {
    const { context, page, errors } = await newPage(browser);
    await signIn(page, d.url, d.keyId, d.keySecret);
    await page.getByText(`${d.keyId}`, { exact: true }).waitFor();
    const id = await openInstance(page, 'sharding', 'ddsd demo sharded cluster');

    // Topology: config servers, two shards, the mongos; every member drawn with its role.
    await page.getByRole('group', { name: 'mongos' }).waitFor();
    assert.equal(await page.getByRole('group', { name: /^Config servers cs-/ }).count(), 1);
    assert.equal(await page.getByRole('group', { name: /^Shard d-/ }).count(), 2);
    assert.equal(await page.getByRole('listitem', { name: / Primary$/ }).count(), 3);

    // The dry run and the release notes, then confirm "now".
    await page.getByRole('button', { name: 'Upgrade minor version' }).click();
    const dialog = page.getByRole('dialog', { name: 'Upgrade minor version' });
    await dialog.waitFor();
    assert.ok((await dialog.getByRole('table', { name: 'Upgrade plan' }).getByRole('row').count()) > 10);
    assert.match(await dialog.locator('#plan-elections').textContent(), /^3 /);
    assert.match(await dialog.getByLabel('Release notes').textContent(), new RegExp(TARGET));
    assert.ok(await dialog.getByLabel('Now').isChecked());
    await dialog.getByRole('button', { name: 'Confirm upgrade' }).click();

    // Live progress, then the report.
    const progress = page.getByRole('region', { name: 'Upgrade progress' });
    await progress.waitFor();
    await progress.getByRole('region', { name: 'Report' }).waitFor({ timeout: 120000 });
    const lines = await logLines(page);
    const first = (re) => lines.findIndex((l) => re.test(l));
    const cs = first(/config servers cs-\S+: \d\/3 in progress — cs-\S+: /);
    const shard = first(/shard d-\S+: \d\/3 in progress — d-\S+: /);
    const mongos = first(/mongos: \d\/2 in progress — s-\S+: /);
    assert.ok(cs >= 0 && shard > cs && mongos > shard, `progress order: ${lines.join('\n')}`);
    assert.ok(lines.some((l) => /operation succeeded: finished/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /\(1 election\)/.test(l)), 'elections are shown as they happen');
    // Every part ends done.
    for (const name of [/^config servers /, /^shard /, /^mongos$/]) {
      const parts = progress.getByRole('group', { name });
      for (let i = 0; i < (await parts.count()); i++) {
        assert.equal(await parts.nth(i).getAttribute('data-status'), 'Done');
      }
    }
    await page.locator('#instance-status').getByText('Running').waitFor();
    assert.equal((await page.locator('#instance-kernel').textContent()).trim(), TARGET);
    const report = progress.getByRole('region', { name: 'Report' });
    assert.match(await report.textContent(), /Succeeded in .* 3 elections/);
    assert.equal(await report.getByRole('table', { name: 'Member downtimes' }).getByRole('row').count(), 1 + 9 + 2);
    assert.equal(await report.getByRole('table', { name: 'Write-unavailable windows' }).getByRole('row').count(), 1 + 3);
    await progress.getByRole('img', { name: /Timeline of the operation: 11 processes/ }).waitFor();

    // A second upgrade is refused by the API: the page shows the vendor's code, message and status.
    await page.getByRole('button', { name: 'Upgrade minor version' }).click();
    const refusal = page.getByRole('alert').filter({ hasText: 'InvalidMinorVersionAlreadyLatest' });
    await refusal.waitFor();
    assert.match(await refusal.textContent(), /InvalidMinorVersionAlreadyLatest: .*\(HTTP 400, RequestId /);
    assert.ok(id.startsWith('dds-'));
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('restarts one mongos of the sharded cluster and follows it to the end', async () => {
    const { context, page, errors } = await newPage(browser);
    await signIn(page, d.url, d.keyId, d.keySecret);
    await openInstance(page, 'sharding', 'ddsd demo sharded cluster');
    await page.getByRole('button', { name: 'Restart' }).click();
    const dialog = page.getByRole('dialog', { name: 'Restart' });
    const what = dialog.getByLabel('What to restart');
    const mongos = (await what.locator('option').allTextContents()).find((t) => t.startsWith('mongos '));
    await what.selectOption({ label: mongos });
    await dialog.getByText(/^1 steps|^\d+ steps, 0 expected election/).waitFor();
    await dialog.getByRole('button', { name: 'Confirm restart' }).click();
    const progress = page.getByRole('region', { name: 'Restart progress' });
    await progress.getByRole('region', { name: 'Report' }).waitFor({ timeout: 120000 });
    assert.match(await progress.getByRole('region', { name: 'Report' }).textContent(), /^ReportSucceeded/);
    assert.equal(await progress.getByRole('group', { name: 'mongos' }).getAttribute('data-status'), 'Done');
    await page.locator('#instance-status').getByText('Running').waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('edits the maintenance window, and shows a refused value with the vendor code', async () => {
    const { context, page, errors } = await newPage(browser);
    await signIn(page, d.url, d.keyId, d.keySecret);
    await openInstance(page, 'sharding', 'ddsd demo sharded cluster');
    await page.getByRole('button', { name: 'Edit maintenance window' }).click();
    const form = page.getByRole('form', { name: 'Maintenance window' });
    await form.getByLabel('Start (HH:mmZ)').fill('25:00Z');
    await form.getByLabel('End (HH:mmZ)').fill('03:00Z');
    await form.getByRole('button', { name: 'Save window' }).click();
    await form.getByRole('alert').filter({ hasText: /^InvalidParameter: / }).waitFor();
    assert.match(await form.getByRole('alert').textContent(), /\(HTTP 400, RequestId /);
    await form.getByLabel('Start (HH:mmZ)').fill('01:00Z');
    await form.getByRole('button', { name: 'Save window' }).click();
    await page.locator('#maintenance-window').getByText('01:00Z – 03:00Z (UTC)').waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('refuses a wrong key and stays on the sign-in form', async () => {
    const { context, page, errors } = await newPage(browser);
    await signIn(page, d.url, d.keyId, 'not-the-secret');
    const alert = page.locator('#signin-error');
    await alert.getByText('Console.SignInFailed').waitFor();
    assert.match(await alert.textContent(), /HTTP 401/);
    assert.ok(await page.getByRole('heading', { name: 'Sign in' }).isVisible());
    assert.equal(await page.getByLabel('AccessKeySecret').inputValue(), '', 'the secret field is cleared');
    assert.deepEqual((await context.cookies()).filter((c) => c.name === 'ddsd_console'), []);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('shows an upgrade stopped by an armed fault as a failure naming the member', async () => {
    const { context, page, errors } = await newPage(browser);
    await signIn(page, d.url, admin.id, admin.secret);
    await page.getByText(`${admin.id} (admin)`).waitFor();
    await openInstance(page, 'replicate', 'ddsd demo replica set');
    const secondary = await page.getByRole('listitem', { name: / Secondary$/ }).first().getAttribute('aria-label');
    const node = secondary.split(' ')[0];

    const faults = page.getByRole('form', { name: 'Arm a fault' });
    await faults.getByLabel('Fault', { exact: true }).selectOption('StartFails');
    await faults.getByLabel('Node', { exact: true }).selectOption(node);
    await faults.getByRole('button', { name: 'Arm fault' }).click();
    await page.getByRole('status').filter({ hasText: /Armed: FaultType: StartFails, NodeId: / }).waitFor();

    await page.getByRole('button', { name: 'Upgrade minor version' }).click();
    await page.getByRole('dialog', { name: 'Upgrade minor version' }).getByRole('button', { name: 'Confirm upgrade' }).click();
    const failure = page.getByRole('alert', { name: 'Failure' });
    await failure.waitFor({ timeout: 120000 });
    assert.match(await failure.textContent(), new RegExp(`^FAILED at member ${node} \\(replica set mgset-\\d+\\): the process`));
    await page.getByRole('region', { name: 'Report' }).waitFor({ timeout: 60000 });
    assert.match(await page.getByRole('region', { name: 'Report' }).textContent(), /^ReportFailed/);
    await page.locator('#instance-status').getByText('Running').waitFor();
    await page.getByRole('button', { name: 'Clear faults' }).click();
    await page.getByText(/Cleared \d+ fault/).waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('is usable with the keyboard alone: sign in, open an instance, open and close a dialog', async () => {
    const { context, page, errors } = await newPage(browser);
    await page.goto(`${d.url}/console`);
    await tabTo(page, /^INPUT AccessKeyId/);
    await page.keyboard.type(d.keyId);
    await tabTo(page, /^INPUT AccessKeySecret/);
    await page.keyboard.type(d.keySecret);
    await page.keyboard.press('Enter');
    await page.getByRole('table', { name: 'Instances' }).waitFor();
    await tabTo(page, /^A dds-/);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Topology' }).waitFor();
    await tabTo(page, /^BUTTON Restart/);
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Restart' });
    await dialog.waitFor();
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('refuses a state-changing request without the CSRF token', async () => {
    const { context, page, errors } = await newPage(browser);
    await signIn(page, d.url, d.keyId, d.keySecret);
    await page.getByRole('table', { name: 'Instances' }).waitFor();
    const csrf = await page.evaluate(async () => (await (await fetch('/console/api/session')).json()).CsrfToken);
    assert.match(csrf, /^[0-9a-f]{64}$/);
    const cookie = (await context.cookies()).find((c) => c.name === 'ddsd_console');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(cookie.path, '/console');
    // The page's cookie jar, from outside the page: no X-CSRF-Token, then a wrong one, then the right one.
    const body = { Action: 'DescribeRegions', Params: {} };
    const url = `${d.url}/console/api/call`;
    let r = await context.request.post(url, { data: body });
    assert.equal(r.status(), 403);
    assert.equal((await r.json()).Code, 'Console.CsrfTokenInvalid');
    r = await context.request.post(url, { data: body, headers: { 'X-CSRF-Token': 'f'.repeat(64) } });
    assert.equal(r.status(), 403);
    r = await context.request.post(url, { data: body, headers: { 'X-CSRF-Token': csrf } });
    assert.equal(r.status(), 200);
    assert.equal((await r.json()).HttpStatus, 200);
    // Signing out ends the session: the token no longer works.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    r = await context.request.post(url, { data: body, headers: { 'X-CSRF-Token': csrf } });
    assert.equal(r.status(), 401);
    assert.deepEqual(errors, []);
    await context.close();
  });

  // Last: the kernel it publishes becomes every 4.4 instance's upgrade target.
  it('shows a scheduled minor-version event on the instance and cancels it', async () => {
    const client = new OpenApi.default(new OpenApi.Config({
      accessKeyId: admin.id, accessKeySecret: admin.secret, endpoint: d.endpoint, protocol: 'http', regionId: 'cn-hangzhou',
    }));
    const params = new OpenApi.Params({
      action: 'DdsdPublishKernelVersion', version: '2015-12-01', protocol: 'HTTPS', pathname: '/',
      method: 'POST', authType: 'AK', style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
    });
    const kernel = 'mongodb_20261201_4.4.30';
    const switchTime = new Date(Date.now() + 86400000).toISOString().replace(/\.\d+Z$/, 'Z');
    const published = await client.callApi(params, new OpenApi.OpenApiRequest({ query: {
      EngineVersion: '4.4', KernelVersion: kernel, ReleaseNote: 'scheduled rollout', ReleaseDate: '2026-12-02',
      Rollout: 'Scheduled', SwitchTime: switchTime,
    } }), new Util.RuntimeOptions({}));
    assert.ok(published.body.TaskIds.length >= 1, JSON.stringify(published.body));

    const { context, page, errors } = await newPage(browser);
    await signIn(page, d.url, d.keyId, d.keySecret);
    await openInstance(page, 'replicate', 'ddsd demo replica set');
    const item = page.getByRole('list', { name: 'Scheduled events' }).getByRole('listitem');
    await item.waitFor();
    assert.equal(await item.count(), 1);
    assert.match(await item.textContent(), new RegExp(`^Minor version upgrade to ${kernel} at ${switchTime} \\(deadline `));
    await item.getByRole('button', { name: 'Cancel event' }).click();
    await page.locator('#scheduled-events').getByText('None', { exact: true }).waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });
});
