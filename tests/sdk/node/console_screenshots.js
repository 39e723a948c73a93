'use strict';
// Takes the screenshots of docs/console.md with the browser tests' setup (Debian's Chromium through
// playwright-core) against a fresh `ddsd serve --demo`: the sign-in page, the instance list, the
// sharded cluster's page, the upgrade's dry run, the upgrade in progress, the finished report with
// its timeline, a failure caused by an armed fault, and the instance page on a narrow window.
//
//   node tests/sdk/node/console_screenshots.js [OUT_DIR]     (default docs/console)
//
// Needs target/debug/ddsd (or DDSD_BIN), like the tests.

const fs = require('node:fs');
const path = require('node:path');
const { startDdsd } = require('./ddsd');
const { launch, newPage, signIn } = require('./browser');

const OUT = path.resolve(process.argv[2] || path.join(__dirname, '..', '..', '..', 'docs', 'console'));

async function openByDescription(page, type, description) {
  await page.getByLabel('Type', { exact: true }).selectOption(type);
  const row = page.getByRole('row').filter({ hasText: description });
  for (let i = 0; i < 120; i++) {
    await page.getByRole('table', { name: 'Instances' }).waitFor();
    if ((await row.count()) === 1 && /Running/.test(await row.textContent())) break;
    await page.waitForTimeout(500);
    await page.getByRole('button', { name: 'Apply filters' }).click();
  }
  await row.getByRole('link').click();
  await page.getByRole('heading', { name: 'Topology' }).waitFor();
  await page.waitForTimeout(300);
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const d = await startDdsd({ extraArgs: ['--demo', '--sim-speed', '15'] });
  const key = JSON.parse(fs.readFileSync(path.join(d.dataDir, 'admin-key.json'), 'utf8'));
  const browser = await launch();
  const shot = (page, name, opts = {}) => page.screenshot({ path: path.join(OUT, name), ...opts });
  try {
    const { page, errors } = await newPage(browser);
    await page.goto(`${d.url}/console`);
    await page.getByLabel('AccessKeyId').fill(key.AccessKeyId);
    await shot(page, 'signin.png');
    await signIn(page, d.url, key.AccessKeyId, key.AccessKeySecret);
    await page.getByRole('table', { name: 'Instances' }).waitFor();
    await page.waitForTimeout(1500);
    await shot(page, 'instances.png');

    await openByDescription(page, 'sharding', 'ddsd demo sharded cluster');
    await shot(page, 'instance.png', { fullPage: true });

    await page.getByRole('button', { name: 'Upgrade minor version' }).click();
    const dialog = page.getByRole('dialog', { name: 'Upgrade minor version' });
    await dialog.waitFor();
    await shot(page, 'upgrade-plan.png');
    await dialog.getByRole('button', { name: 'Confirm upgrade' }).click();
    // Mid-way: a shard being worked on.
    await page.getByRole('group', { name: /^shard / }).and(page.locator('[data-status="Active"]')).first().waitFor({ timeout: 120000 });
    await page.waitForTimeout(400);
    await shot(page, 'progress.png', { fullPage: true });
    await page.getByRole('region', { name: 'Report' }).waitFor({ timeout: 180000 });
    await page.waitForTimeout(800);
    await page.getByRole('region', { name: 'Upgrade progress' }).screenshot({ path: path.join(OUT, 'report.png') });

    // A failure: StartFails armed on a secondary of the demo replica set.
    await page.goto(`${d.url}/console#/`);
    await openByDescription(page, 'replicate', 'ddsd demo replica set');
    const secondary = (await page.getByRole('listitem', { name: / Secondary$/ }).first().getAttribute('aria-label')).split(' ')[0];
    const faults = page.getByRole('form', { name: 'Arm a fault' });
    await faults.getByLabel('Fault', { exact: true }).selectOption('StartFails');
    await faults.getByLabel('Node', { exact: true }).selectOption(secondary);
    await faults.getByRole('button', { name: 'Arm fault' }).click();
    await page.getByText(/Armed: /).waitFor();
    await page.getByRole('button', { name: 'Upgrade minor version' }).click();
    await page.getByRole('dialog', { name: 'Upgrade minor version' }).getByRole('button', { name: 'Confirm upgrade' }).click();
    await page.getByRole('region', { name: 'Report' }).waitFor({ timeout: 300000 });
    await page.waitForTimeout(800);
    await page.getByRole('region', { name: 'Upgrade progress' }).screenshot({ path: path.join(OUT, 'failure.png') });

    // Narrow window (a phone held upright).
    const narrow = await newPage(browser, { width: 390, height: 844 });
    await signIn(narrow.page, d.url, key.AccessKeyId, key.AccessKeySecret);
    await narrow.page.getByRole('table', { name: 'Instances' }).waitFor();
    await narrow.page.waitForTimeout(800);
    await shot(narrow.page, 'narrow-list.png');
    await openByDescription(narrow.page, 'sharding', 'ddsd demo sharded cluster');
    await shot(narrow.page, 'narrow-instance.png');

    const all = errors.concat(narrow.errors);
    if (all.length) throw new Error(`page errors: ${all.join('\n')}`);
    console.log(`screenshots in ${OUT}`);
  } finally {
    await browser.close();
    await d.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
