'use strict';
// Debian's Chromium driven by playwright-core for the console tests and the screenshot script:
// headless, off the network (no background fetches, no component updates, no sync), and never a
// downloaded browser. Every page collects console errors and uncaught exceptions in `errors`, so
// a test can assert there were none.

const fs = require('node:fs');

const CHROMIUM = process.env.DDSD_CHROMIUM || '/usr/bin/chromium';
process.env.PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = '1';

function chromiumPresent() {
  return fs.existsSync(CHROMIUM);
}

async function launch() {
  if (!chromiumPresent()) {
    throw new Error(`Chromium not found at ${CHROMIUM}: run scripts/setup-test-env.sh as root (apt-get install chromium)`);
  }
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage', '--no-first-run'],
  });
}

// A fresh context (own cookies) and page, with its errors collected.
async function newPage(browser, { width = 1280, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return { context, page, errors };
}

// Signs in through the page's form.
async function signIn(page, url, keyId, keySecret) {
  await page.goto(`${url}/console`);
  await page.getByLabel('AccessKeyId').fill(keyId);
  await page.getByLabel('AccessKeySecret').fill(keySecret);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

module.exports = { CHROMIUM, chromiumPresent, launch, newPage, signIn };
