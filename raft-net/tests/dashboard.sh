#!/usr/bin/env bash
# Browser test of the live dashboard: starts `raft-net cluster` (three nodes on free ports, a
# fresh data dir), then drives its page (GET /ui) in headless Chromium with Playwright
# (tests/dashboard/dashboard.mjs): three nodes and one leader; isolate the leader, a new leader
# in a higher term within seconds; heal, the old leader follows; appended commands in every
# node's log cells; put/get, snapshot, transfer, remove/add, stop/restart through the launcher.
# Exits non-zero on any failure.
#
# usage: raft-net/tests/dashboard.sh [--screenshot FILE.png]
#   --screenshot  also write the page in the partitioned state (leader cut off, a command
#                 committed without it) to FILE.png, at 1400x900
set -euo pipefail
cd "$(dirname "$0")/../.."

shot=()
while [ $# -gt 0 ]; do
  case "$1" in
    --screenshot) shot=(--screenshot "$(realpath -m "$2")"); shift 2 ;;
    *) echo "dashboard.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "dashboard.sh: $CHROMIUM not found (apt-get install chromium)" >&2
  exit 1
fi

work="$(mktemp -d)"
cluster_pid=""
cleanup() {
  # SIGTERM: the cluster stops its nodes (and they stop on their own once it is gone).
  if [ -n "$cluster_pid" ]; then kill "$cluster_pid" 2>/dev/null || true; wait "$cluster_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Playwright from the lock file (no browser download: it drives Debian's chromium).
(cd raft-net/tests/dashboard && npm ci --no-audit --no-fund --loglevel=error </dev/null >/dev/null)

cargo build -p raft-net --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/raft-net"

# Three consecutive ports, free for TCP and UDP, for each of HTTP and Raft.
source raft-net/tests/free_ports.sh
http_base="$(free_base)"
raft_base="$(free_base "$http_base" $((http_base + 1)) $((http_base + 2)))"

: >"$work/cluster.out"
"$bin" cluster --nodes 3 --http-base "$http_base" --raft-base "$raft_base" --launcher-port 0 \
  --data-dir "$work/data" >"$work/cluster.out" 2>"$work/cluster.err" </dev/null &
cluster_pid=$!

url=""
for _ in $(seq 100); do
  url="$(sed -n 's/^Dashboard (every node serves it): \(http[^ ]*\)$/\1/p' "$work/cluster.out")"
  [ -n "$url" ] && break
  kill -0 "$cluster_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "dashboard.sh: FAILED: raft-net cluster printed no dashboard URL" >&2
  cat "$work/cluster.out" "$work/cluster.err" >&2
  exit 1
fi

status=0
(cd "$work" && timeout 300 node "$OLDPWD/raft-net/tests/dashboard/dashboard.mjs" "$url" "$work/data/admin-token" "${shot[@]}") || status=$?
if [ "$status" != 0 ]; then
  [ -f "$work/dashboard-failure.png" ] && cp "$work/dashboard-failure.png" "${TMPDIR:-/tmp}/dashboard-failure.png" \
    && echo "dashboard.sh: the page at the failure: ${TMPDIR:-/tmp}/dashboard-failure.png" >&2
  echo "dashboard.sh: FAILED; the cluster's log:" >&2
  tail -40 "$work/cluster.err" >&2
  exit "$status"
fi
echo "dashboard.sh: ok"
