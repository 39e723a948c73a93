#!/usr/bin/env bash
# The one-way arrows between ddsd's wings (crates/ddsd/src/{server,client,tools,agent}), checked on the
# source text. Fails (exit 1) listing every offending line.
#
#   server/  may use: its own modules, acs-rpc, dds-engine, and the host agent's protocol
#            (crate::agent::api: the mongodb data plane is the agents' client).
#            must not use: crate::client, crate::tools, crate::fleet, the rest of crate::agent,
#            the ddsd-client crate.
#   agent/   may use: its own modules, acs-rpc, ddsd-client (the protocol's client half).
#            must not use: crate::server, crate::client, crate::tools, crate::fleet.
#   fleet/   (`ddsd sim-fleet`) may use: the server (its simulated plane, wire listeners, store)
#            and the agent (the protocol and its service). must not use: crate::client, crate::tools.
#   client/  may use: ddsd-client; from the server only its plain configuration types
#            (crate::server::config) and, in demo.rs (a client sharing the server's process), the
#            on-listening hook with the store and kernel catalog it hands over
#            (crate::server::{Listening, OnListening, store::Store, actions::kernels::KernelCatalog});
#            tests may use the store's test fixtures (crate::server::store::fixtures).
#            must not use: crate::tools.
#   tools/   may use: the client (ddsd-client, crate::client), and from the server only the store's
#            defaults and its read-only integrity check
#            (crate::server::store::{SqliteOptions, sqlite::integrity_check}).
#   agent/   may use: only its own modules (crate::agent), acs-rpc, ddsd-client (the client half
#            of its protocol). must not use: crate::server, crate::client, crate::tools — it runs
#            on every MongoDB host and the server's data plane uses it, not the other way round.
# And no import circle among the top-level modules of crates/ddsd/src.
#
# Paths are checked as written, so a grouped `use crate::{a, b}` is refused: it would hide an arrow.
#
# Usage: scripts/check-layering.sh [SRC_DIR]   (default crates/ddsd/src)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${1:-$root/crates/ddsd/src}"
cd "$src"

failed=0
fail() { echo "layering: $*" >&2; failed=1; }

# code PATTERN PATH...: lines matching PATTERN outside `//` comments, as FILE:LINE:TEXT.
code() {
  local pattern="$1"; shift
  grep -rnE --include='*.rs' "$pattern" "$@" 2>/dev/null | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' || true
}

# uses DIR: every `crate::…` path written in DIR's code, as FILE:LINE:PATH.
uses() {
  local file line text
  while IFS=: read -r file line text; do
    grep -oE 'crate::[A-Za-z_][A-Za-z0-9_:]*' <<<"$text" | sed "s|^|$file:$line:|"
  done < <(code 'crate::' "$1")
}

# Grouped imports from the crate root.
while IFS= read -r hit; do
  [ -n "$hit" ] && fail "$hit: a grouped crate:: import hides which wing it reaches; write the paths"
done < <(code 'crate::\{' .)

# 1. The server.
while IFS= read -r hit; do
  [ -n "$hit" ] && fail "$hit: the server must not use the client or the tools"
done < <(code 'crate::(client|tools|fleet)\b|\bddsd_client\b' server)
while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  case "$path" in
    crate::agent::api | crate::agent::api::*) ;;
    crate::agent*) fail "$file:$line: $path: the server may use only the agent's protocol (crate::agent::api)" ;;
  esac
done < <(uses server)

# 1b. The agent and the fleet.
while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  case "$path" in
    crate::agent*) ;;
    crate::*) fail "$file:$line: $path: the agent may use only its own modules" ;;
  esac
done < <(uses agent)
while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  case "$path" in
    crate::client* | crate::tools*) fail "$file:$line: $path: the fleet must not use the client or the tools" ;;
  esac
done < <(uses fleet)

# 2. The client.
while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  case "$path" in
    crate::tools*) fail "$file:$line: $path: the client must not use the tools" ;;
    crate::server::config | crate::server::config::*) ;;
    crate::server::store::fixtures*) ;;
    crate::server::Listening | crate::server::OnListening | crate::server::store::Store | \
      crate::server::actions::kernels::KernelCatalog)
      [ "$file" = client/demo.rs ] ||
        fail "$file:$line: $path: only the demo may take the server's hand-over"
      ;;
    crate::server*) fail "$file:$line: $path: the client may use only the server's config" ;;
  esac
done < <(uses client)

# 3. The tools.
while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  case "$path" in
    crate::server::store::SqliteOptions | crate::server::store::SqliteOptions::* | \
      crate::server::store::sqlite::integrity_check) ;;
    crate::server*) fail "$file:$line: $path: the tools may use only the store's read-only check" ;;
  esac
done < <(uses tools)

# 4. The agent.
while IFS=: read -r file line path; do
  [ -n "$file" ] || continue
  case "$path" in
    crate::agent | crate::agent::*) ;;
    *) fail "$file:$line: $path: the agent may use only crate::agent" ;;
  esac
done < <(uses agent)

# 5. No circle among top-level modules: an edge A -> B for each `crate::B` in A's files.
mapfile -t tops < <(sed -nE 's/^pub mod ([a-z_]+);/\1/p' lib.rs)
declare -A edge=()
for a in "${tops[@]}"; do
  files=()
  [ -d "$a" ] && files+=("$a")
  [ -f "$a.rs" ] && files+=("$a.rs")
  [ ${#files[@]} -gt 0 ] || continue
  for b in "${tops[@]}"; do
    [ "$a" = "$b" ] && continue
    if [ -n "$(code "crate::$b\b" "${files[@]}")" ]; then
      edge[$a]+=" $b"
    fi
  done
done
# reach FROM TARGET PATH: prints the first path from FROM back to TARGET, if any.
declare -A seen=()
reach() {
  local from="$1" target="$2" trail="$3" next
  for next in ${edge[$from]:-}; do
    if [ "$next" = "$target" ]; then echo "$trail -> $next"; return 0; fi
    [ -n "${seen[$next]:-}" ] && continue
    seen[$next]=1
    reach "$next" "$target" "$trail -> $next" && return 0
  done
  return 1
}
for a in "${tops[@]}"; do
  seen=()
  if circle=$(reach "$a" "$a" "$a"); then
    fail "import circle: $circle"
  fi
done

if [ "$failed" -ne 0 ]; then
  exit 1
fi
arrows=""
for a in "${tops[@]}"; do
  for b in ${edge[$a]:-}; do arrows+=" $a->$b"; done
done
echo "layering: ok (arrows:${arrows:- none})"
