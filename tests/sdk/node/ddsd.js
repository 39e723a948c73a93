'use strict';
// Starts the real `ddsd serve` for the node:test suites, the same way tests/sdk/conftest.py does:
// temp data dir, a TOML config adding the key pair testid/testsecret, --listen 127.0.0.1:0, and
// the port read from the `ddsd listening on http(s)://IP:PORT` line on stdout (`extraArgs` are
// appended to `serve`'s, `extraConfig` lines to the TOML file). Nothing is built here.
// Binary: $DDSD_BIN, else $CARGO_TARGET_DIR/debug/ddsd, else <repo>/target/debug/ddsd.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const TEST_KEY_ID = 'testid';
const TEST_KEY_SECRET = 'testsecret';
const START_TIMEOUT_MS = Number(process.env.DDSD_START_TIMEOUT || 30) * 1000;
const LISTENING = /^ddsd listening on (https?):\/\/(127\.0\.0\.1):(\d+)$/;

function ddsdBinary() {
  if (process.env.DDSD_BIN) return process.env.DDSD_BIN;
  const target = path.resolve(REPO, process.env.CARGO_TARGET_DIR || 'target');
  return path.join(target, 'debug', 'ddsd');
}

async function startDdsd({ extraArgs = [], extraConfig = [] } = {}) {
  const bin = ddsdBinary();
  if (!fs.existsSync(bin)) {
    throw new Error(`ddsd binary not found at ${bin}: run \`cargo build -p ddsd\` (or set DDSD_BIN)`);
  }
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ddsd-node-'));
  const dataDir = path.join(work, 'data');
  const config = path.join(work, 'ddsd.toml');
  fs.writeFileSync(config, [
    'listen = "127.0.0.1:0"',
    `data_dir = "${dataDir}"`,
    'region = "cn-hangzhou"',
    '',
    '[[access_keys]]',
    `id = "${TEST_KEY_ID}"`,
    `secret = "${TEST_KEY_SECRET}"`,
    '',
    ...extraConfig,
    '',
  ].join('\n'));
  const stderrPath = path.join(work, 'stderr.log');
  const stderrFd = fs.openSync(stderrPath, 'w');
  // DDSD_* or RUST_LOG from the caller's shell must not change what is under test.
  const env = Object.fromEntries(Object.entries(process.env)
    .filter(([k]) => !k.startsWith('DDSD_') && k !== 'RUST_LOG'));
  const child = spawn(bin, ['serve', '--config', config, '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...extraArgs], {
    cwd: work, env, stdio: ['ignore', 'pipe', stderrFd],
  });
  fs.closeSync(stderrFd);

  const stdoutLines = [];
  const { scheme, host, port } = await new Promise((resolve, reject) => {
    let buf = '';
    const fail = (why) => {
      child.kill('SIGKILL');
      reject(new Error(`ddsd did not print its listening line (${why})\nstdout:\n${stdoutLines.join('\n')}\n`
        + `stderr:\n${fs.readFileSync(stderrPath, 'utf8').slice(-8000)}`));
    };
    const timer = setTimeout(() => fail(`timed out after ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    child.on('exit', (code) => { clearTimeout(timer); fail(`exited with code ${code}`); });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        stdoutLines.push(line);
        const m = LISTENING.exec(line);
        if (m) {
          clearTimeout(timer);
          child.removeAllListeners('exit');
          resolve({ scheme: m[1], host: m[2], port: Number(m[3]) });
        }
      }
    });
  });
  // Keep draining stdout so a chatty server can never block on a full pipe.
  child.stdout.on('data', () => {});

  const exited = new Promise((resolve) => child.on('exit', (code, sig) => resolve({ code, sig })));
  return {
    host,
    port,
    endpoint: `${host}:${port}`,
    url: `${scheme}://${host}:${port}`,
    keyId: TEST_KEY_ID,
    keySecret: TEST_KEY_SECRET,
    dataDir,
    stderrPath,
    stdoutLines,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
        const result = await exited;
        clearTimeout(timer);
        return result;
      }
      return exited;
    },
  };
}

module.exports = { startDdsd, TEST_KEY_ID, TEST_KEY_SECRET };
