#!/usr/bin/env bash
# THE test command of ddsd: every test the project has, in one run.
#
#   1. scripts/setup-test-env.sh   Python venv + npm packages for the SDK tests (skipped when current)
#   2. cargo build --workspace     debug build; the SDK tests drive target/debug/ddsd
#   3. cargo nextest run           Rust unit + integration tests (cargo test if nextest is missing)
#   4. pytest tests/sdk            official Python SDKs + raw HTTP against a real ddsd process
#   5. node --test tests/sdk/node  official Node.js SDKs against a real ddsd process, and the web
#                                  console in Debian's Chromium (playwright-core)
#
# Exit status is non-zero if any step fails or if a runner ran no test at all. Steps 3-5 all run
# even when one of them fails, so one run shows every failure; a failed build skips 3-5.
# Logs of each step: target/test-logs/. A summary table closes the output.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
logs="$target_dir/test-logs"
mkdir -p "$logs"

names=() results=() seconds=() counts=()
failed=0
total_passed=0 total_failed=0

# run NAME LOGFILE CMD...: runs a step with its output shown and kept, records status and time.
run() {
  local name="$1" log="$2"; shift 2
  local start rc
  printf '\n==> %s: %s\n' "$name" "$*"
  start=$(date +%s)
  "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  names+=("$name"); seconds+=("$(( $(date +%s) - start ))")
  last_rc=$rc
}

record() { # record STATUS COUNTS
  results+=("$1"); counts+=("$2")
  [ "$1" = ok ] || failed=1
}

skip() {
  names+=("$1"); seconds+=("-"); results+=("SKIPPED ($2)"); counts+=(""); failed=1
}

# Number after/before a word in the last matching line of a log, 0 if absent.
num() { grep -Eo "$2" "$1" | tail -n 1 | grep -Eo '[0-9]+' | head -n 1 || true; }

# ---------------------------------------------------------------------------- 1. environment
run "setup-test-env" "$logs/setup.log" bash scripts/setup-test-env.sh
if [ "$last_rc" -eq 0 ]; then record ok ""; else record "FAILED (exit $last_rc)" ""; fi
env_ok=$last_rc

# ----------------------------------------------------------------------------------- 2. build
run "cargo build" "$logs/build.log" cargo build --workspace --locked
if [ "$last_rc" -eq 0 ]; then record ok ""; else record "FAILED (exit $last_rc)" ""; fi
build_ok=$last_rc

# ------------------------------------------------------------------------------ 3. Rust tests
if [ "$build_ok" -ne 0 ]; then
  skip "rust tests" "build failed"
elif cargo nextest --version >/dev/null 2>&1; then
  # --no-tests=fail: a workspace that suddenly has no tests is a broken suite, not a green one.
  run "rust tests (nextest)" "$logs/rust.log" cargo nextest run --workspace --locked --no-tests=fail
  # Counted from nextest's summary line: a retried test's first failure prints its own counts.
  summary="$logs/rust-summary.txt"
  grep -E '^ *Summary \[' "$logs/rust.log" | tail -n 1 >"$summary" || true
  p=$(num "$summary" '[0-9]+ passed'); f=$(num "$summary" '[0-9]+ failed')
  p=${p:-0}; f=${f:-0}
  total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
  # Tests that passed only on their retry (.config/nextest.toml): shown, to be looked into.
  flaky=$(grep -cE '^ +FLAKY ' "$logs/rust.log" || true)
  note=""
  if [ "${flaky:-0}" -gt 0 ]; then
    note=", $flaky flaky"
    echo "rust tests that passed only on their retry (.config/nextest.toml):"
    grep -E '^ +FLAKY ' "$logs/rust.log" || true
  fi
  if [ "$last_rc" -eq 0 ] && [ "$p" -gt 0 ]; then record ok "$p passed$note"
  elif [ "$last_rc" -eq 0 ]; then record "FAILED (no test ran)" "0 passed"
  else record "FAILED (exit $last_rc)" "$p passed, $f failed"; fi
else
  echo "cargo-nextest not found; falling back to cargo test"
  run "rust tests (cargo test)" "$logs/rust.log" cargo test --workspace --locked
  # One "test result:" line per test binary; add them up.
  p=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$logs/rust.log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
  f=$(grep -Eo '; [0-9]+ failed' "$logs/rust.log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
  p=${p:-0}; f=${f:-0}
  total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
  if [ "$last_rc" -eq 0 ] && [ "$p" -gt 0 ]; then record ok "$p passed"
  elif [ "$last_rc" -eq 0 ]; then record "FAILED (no test ran)" "0 passed"
  else record "FAILED (exit $last_rc)" "$p passed, $f failed"; fi
fi

# ------------------------------------------------------------------------- 4. Python SDK tests
if [ "$env_ok" -ne 0 ]; then
  skip "python SDK tests" "setup-test-env failed"
elif [ "$build_ok" -ne 0 ]; then
  skip "python SDK tests" "build failed"
else
  run "python SDK tests (pytest)" "$logs/pytest.log" \
    "$root/.venv/bin/python" -m pytest tests/sdk -q -rfE --durations=5
  p=$(num "$logs/pytest.log" '[0-9]+ passed'); f=$(num "$logs/pytest.log" '[0-9]+ failed')
  e=$(num "$logs/pytest.log" '[0-9]+ errors?'); p=${p:-0}; f=${f:-0}; e=${e:-0}
  total_passed=$((total_passed + p)); total_failed=$((total_failed + f + e))
  case "$last_rc" in
    0) if [ "$p" -gt 0 ]; then record ok "$p passed"; else record "FAILED (no test passed)" "0 passed"; fi ;;
    # pytest's 5 means it collected nothing: the SDK suite vanished, which must never look green.
    5) record "FAILED (pytest collected no tests)" "0 passed" ;;
    *) record "FAILED (exit $last_rc)" "$p passed, $f failed, $e errors" ;;
  esac
fi

# --------------------------------------------------------------------------- 5. Node SDK tests
if [ "$env_ok" -ne 0 ]; then
  skip "node SDK tests" "setup-test-env failed"
elif [ "$build_ok" -ne 0 ]; then
  skip "node SDK tests" "build failed"
else
  run "node SDK tests (node --test)" "$logs/node.log" node --test tests/sdk/node/
  p=$(num "$logs/node.log" '^# pass [0-9]+'); f=$(num "$logs/node.log" '^# fail [0-9]+')
  c=$(num "$logs/node.log" '^# cancelled [0-9]+')  # tests whose before() hook failed
  p=${p:-0}; f=$(( ${f:-0} + ${c:-0} ))
  total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
  if [ "$last_rc" -eq 0 ] && [ "$p" -gt 0 ]; then record ok "$p passed"
  elif [ "$last_rc" -eq 0 ]; then record "FAILED (no test ran)" "0 passed"
  else record "FAILED (exit $last_rc)" "$p passed, $f failed"; fi
fi

# ---------------------------------------------------------------------------------- summary
printf '\n==================== ddsd test summary ====================\n'
for i in "${!names[@]}"; do
  printf '  %-30s %-34s %6ss  %s\n' "${names[$i]}" "${results[$i]}" "${seconds[$i]}" "${counts[$i]}"
done
printf '  logs: %s\n' "$logs"
if [ "$failed" -eq 0 ]; then
  printf 'RESULT: PASSED\n'
else
  printf 'RESULT: FAILED\n'
fi
printf 'total: %d passed, %d failed\n' "$total_passed" "$total_failed"
exit "$failed"
