#!/usr/bin/env bash
# Installs what the official-SDK integration tests need, from the project's own files only:
#   - a Python virtualenv at .venv from tests/sdk/requirements.txt (every version pinned);
#   - the npm packages of tests/sdk/node from its package.json + package-lock.json (`npm ci`);
#   - tmux (Debian package), for the terminal progress test, when it is missing;
#   - chromium (Debian package, /usr/bin/chromium), for the web console's browser tests, when it is
#     missing. playwright-core (npm, pinned) drives it; no browser is ever downloaded
#     (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1).
# Needs on the machine: CPython 3.11 with venv/pip, Node 20+ with npm. Registries: PyPI, npm and,
# as root, Debian's (apt-get) for tmux and chromium.
#
# Idempotent and quick when nothing changed: each half writes a stamp holding the hash of its
# inputs (requirement files + interpreter version) and is skipped while the stamp still matches.
# FORCE=1 reinstalls anyway. PYTHON=/path/to/python3.11 picks the interpreter.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="$root/.venv"
py_req="$root/tests/sdk/requirements.txt"
node_dir="$root/tests/sdk/node"
py_stamp="$venv/.ddsd-setup-stamp"
node_stamp="$node_dir/node_modules/.ddsd-setup-stamp"

say() { printf 'setup-test-env: %s\n' "$*"; }
die() { printf 'setup-test-env: ERROR: %s\n' "$*" >&2; exit 1; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

pick_python() {
  if [ -n "${PYTHON:-}" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "PYTHON=$PYTHON not found"
    echo "$PYTHON"; return
  fi
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then echo "$cand"; return; fi
  done
  die "no python3.11 / python3 on PATH"
}

setup_python() {
  local py pyver want have
  py="$(pick_python)"
  pyver="$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
  case "$pyver" in
    3.1[1-9].*) ;;
    *) die "Python >= 3.11 needed, $py is $pyver" ;;
  esac
  want="$(printf '%s\n%s\n' "$(hash_of "$py_req")" "$pyver")"
  have="$(cat "$py_stamp" 2>/dev/null || true)"
  if [ "${FORCE:-0}" != 1 ] && [ "$want" = "$have" ] && [ -x "$venv/bin/python" ]; then
    say "python venv up to date ($venv, Python $pyver)"
    return
  fi
  say "creating python venv at $venv with $py ($pyver)"
  rm -rf "$venv"
  "$py" -m venv "$venv" || die "'$py -m venv' failed (on Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$py_req" || die "pip install -r tests/sdk/requirements.txt failed"
  # Fails here, not in the middle of the test run, if an import is broken.
  "$venv/bin/python" -c 'import aliyunsdkcore, aliyunsdkdds, alibabacloud_dds20151201, alibabacloud_tea_openapi, prometheus_client, pymongo, pytest' \
    || die "installed python packages do not import"
  printf '%s\n' "$want" >"$py_stamp"
  say "python venv ready"
}

setup_node() {
  local nodever want have
  command -v node >/dev/null 2>&1 || die "node not on PATH (Node 20+ needed)"
  command -v npm >/dev/null 2>&1 || die "npm not on PATH"
  nodever="$(node --version)"
  case "$nodever" in
    v1[0-9].*|v[0-9].*) die "Node 20+ needed, found $nodever" ;;
  esac
  [ -f "$node_dir/package.json" ] || die "missing $node_dir/package.json"
  local inputs=("$node_dir/package.json")
  [ -f "$node_dir/package-lock.json" ] && inputs+=("$node_dir/package-lock.json")
  want="$(printf '%s\n%s\n' "$(hash_of "${inputs[@]}")" "$nodever")"
  have="$(cat "$node_stamp" 2>/dev/null || true)"
  if [ "${FORCE:-0}" != 1 ] && [ "$want" = "$have" ] && [ -d "$node_dir/node_modules/@alicloud/openapi-client" ]; then
    say "node modules up to date ($node_dir/node_modules, node $nodever)"
    return
  fi
  say "installing node modules in $node_dir (node $nodever)"
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  if [ -f "$node_dir/package-lock.json" ]; then
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
  else
    (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error) || die "npm install failed"
    want="$(printf '%s\n%s\n' "$(hash_of "$node_dir/package.json" "$node_dir/package-lock.json")" "$nodever")"
  fi
  (cd "$node_dir" && node -e 'require("@alicloud/openapi-client"); require("@alicloud/tea-util"); require("@alicloud/pop-core"); require("mongodb"); require("playwright-core")' \
    && ./node_modules/.bin/mongosh --nodb --quiet --eval 1 >/dev/null) \
    || die "installed node packages do not load"
  printf '%s\n' "$want" >"$node_stamp"
  say "node modules ready"
}

# The terminal test (scripts/tty-demo.sh, run by a Rust test) needs tmux; that test is skipped, saying
# why, only where tmux is missing and cannot be installed.
setup_tmux() {
  if command -v tmux >/dev/null 2>&1; then
    say "tmux present ($(tmux -V))"
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing tmux with apt-get"
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux) >/dev/null 2>&1; then
      say "tmux ready"
      return
    fi
  fi
  say "WARNING: tmux is missing and could not be installed: the terminal progress test will be skipped"
}

# The console's browser tests (tests/sdk/node/console.test.js) drive Debian's Chromium; they fail,
# saying why, where it is missing and cannot be installed.
setup_chromium() {
  if [ -x /usr/bin/chromium ]; then
    say "chromium present ($(/usr/bin/chromium --version 2>/dev/null | head -n 1))"
    return
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing chromium with apt-get"
    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
      && [ -x /usr/bin/chromium ]; then
      say "chromium ready"
      return
    fi
  fi
  say "WARNING: /usr/bin/chromium is missing and could not be installed (apt-get install chromium as root): the console's browser tests will fail"
}

setup_python
setup_node
setup_tmux
setup_chromium
