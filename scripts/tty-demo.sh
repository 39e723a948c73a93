#!/usr/bin/env bash
# The progress display of `ddsd upgrade --wait` in a real terminal, checked.
#
#   bash scripts/tty-demo.sh [path/to/ddsd]        (default: target/debug/ddsd)
#
# Starts `ddsd serve --demo` on a free loopback port with a temporary data dir, then runs the upgrade
# command the demo prints inside a detached tmux session (a real pseudo-terminal, 160x40) and
# captures the screen with `tmux capture-pane` every 200 ms until the command exits. It checks that,
# while the upgrade ran, the terminal showed the bars — one per replica set (the config servers and
# each shard) and one for the mongos, each like `[=====>      ] 1/3`, a member being worked on with
# its gate, under a header with the phase, elections, elapsed time and estimate — and that the
# command ended with the four bars complete and the instance Running on the target kernel, exit 0.
# Prints the last screen. Exits non-zero if any check fails. Needs tmux.
#
# DDSD_TTY_KEEP=1 keeps the temporary directory (its path is printed) with every captured screen.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${1:-$root/target/debug/ddsd}"
[ -x "$bin" ] || { echo "tty-demo: no ddsd binary at $bin (cargo build -p ddsd)" >&2; exit 2; }
command -v tmux >/dev/null 2>&1 || { echo "tty-demo: tmux is not installed" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/ddsd-tty.XXXXXX")"
socket="ddsd-tty-$$"
server_pid=""
cleanup() {
  tmux -L "$socket" kill-server >/dev/null 2>&1 || true
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "${DDSD_TTY_KEEP:-0}" = 1 ]; then
    echo "tty-demo: kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

fail() { echo "tty-demo: FAILED: $*" >&2; [ -f "$work/last.txt" ] && cat "$work/last.txt" >&2; exit 1; }

# ------------------------------------------------------------------------------- the demo server
(cd "$work" && exec env -u DDSD_DATA_DIR -u DDSD_SIM_SPEED DDSD_LISTEN=127.0.0.1:0 \
  "$bin" serve --demo --data-dir "$work/data" >"$work/serve.out" 2>"$work/serve.err") &
server_pid=$!
cmd=""
for _ in $(seq 1 1200); do
  if grep -q "by running:$" "$work/serve.out" 2>/dev/null; then
    cmd="$(grep -A1 "by running:$" "$work/serve.out" | tail -n 1 | sed 's/^ *//')"
    [ -n "$cmd" ] && break
  fi
  kill -0 "$server_pid" 2>/dev/null || fail "ddsd serve --demo exited: $(cat "$work/serve.err")"
  sleep 0.1
done
[ -n "$cmd" ] || fail "the demo printed no upgrade command: $(cat "$work/serve.out")"
echo "tty-demo: running in a terminal: $cmd"

# ---------------------------------------------------------------------- the command in a terminal
tmux -L "$socket" new-session -d -x 160 -y 40 -s demo \
  "cd '$work' && $cmd; echo \"TTY-DEMO-EXIT=\$?\"; sleep 600"
# The pane must be big enough for every bar: keep it at 160x40 whatever the client does.
tmux -L "$socket" set-option -t demo -g status off >/dev/null 2>&1 || true

n=0
saw_bars=""
for _ in $(seq 1 1500); do
  n=$((n + 1))
  tmux -L "$socket" capture-pane -p -t demo >"$work/screen-$n.txt" 2>/dev/null || true
  cp "$work/screen-$n.txt" "$work/last.txt"
  if grep -Eq '\[[=> ]{24}\] [0-9]+/[0-9]+' "$work/screen-$n.txt" \
     && grep -q "config servers" "$work/screen-$n.txt" \
     && grep -q "shard d-" "$work/screen-$n.txt" \
     && grep -q " mongos " "$work/screen-$n.txt" \
     && grep -Eq ' · Running · .*elapsed [0-9]{2}:[0-9]{2} / estimate ~[0-9]{2}:[0-9]{2}' "$work/screen-$n.txt" \
     && grep -Eq '\[=*>? *\] [0-9]+/[0-9]+ .*: (stopping|starting|post-start gate|gate holds|stepping down|waiting)' "$work/screen-$n.txt"; then
    # A screen in the middle of the run: bars plus a member being worked on and its gate.
    [ -n "$saw_bars" ] || saw_bars="$n"
  fi
  grep -q "TTY-DEMO-EXIT=" "$work/screen-$n.txt" && break
  sleep 0.2
done

grep -q "TTY-DEMO-EXIT=" "$work/last.txt" || fail "the upgrade did not finish in time"
[ -n "$saw_bars" ] || fail "no screen showed, while running, a bar per replica set and for the mongos, a member and its gate, the elapsed time and the estimate"
[ "$(grep -Ec '\[=+\] ([0-9]+)/\1 done' "$work/last.txt")" -eq 4 ] || fail "the last screen does not show the 4 bars complete"
grep -q "TTY-DEMO-EXIT=0" "$work/last.txt" || fail "the upgrade command did not exit 0"
grep -Eq "is Running on [^ ]+ after" "$work/last.txt" || fail "the final line is missing"
# Plain lines are for pipes: a terminal gets bars only.
if grep -Eq '^\[[0-9]{2}:[0-9]{2}\] ' "$work/last.txt"; then
  fail "plain progress lines were printed to a terminal"
fi

echo "tty-demo: bars seen on screen $saw_bars of $n; a screen while it ran:"
sed -e '/^[[:space:]]*$/d' "$work/screen-$saw_bars.txt"
echo "tty-demo: the last screen:"
sed -e '/^[[:space:]]*$/d' "$work/last.txt"
echo "tty-demo: OK"
