#!/bin/bash
# Instructions the leader executes per write, counted by callgrind: a figure that, unlike CPU
# time, does not move with what else runs on the machine, so two builds compare in one run
# each. Node 1 runs under `valgrind --tool=callgrind`, nodes 2 and 3 natively; once node 1
# leads, `bench --target` loads it and the counters cover exactly the measured writes.
# User space only: the kernel's work (TCP, UDP, fdatasync) is not in the count.
#   bash bench/instructions/leader.sh [BINARY] [CLIENTS] [OPS] [leader|follower] [VALUE_BYTES]
# from the workspace root (BINARY defaults to target/release/raft-net). Needs valgrind. With
# `follower`, node 2 leads and takes the load, and node 1 (still under callgrind) follows.
set -euo pipefail
B=${1:-target/release/raft-net}
clients=${2:-16}
ops=${3:-3000}
role=${4:-leader}
value_bytes=${5:-256}
case $role in
  leader) lead=1 ;;
  follower) lead=2 ;;
  *) echo "the role is leader or follower, not $role" >&2; exit 2 ;;
esac
http=28100
raft=28200
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

peers() {
  for j in 1 2 3; do
    [ "$j" = "$1" ] || echo -n " --peer $j=127.0.0.1:$((raft + j))@127.0.0.1:$((http + j))"
  done
}
node() { # id, then what to run it under
  local id=$1; shift
  # shellcheck disable=SC2046
  "$@" "$B" node --id "$id" --raft-addr 127.0.0.1:$((raft + id)) --http-addr 127.0.0.1:$((http + id)) \
    --data-dir "$work/node$id" --admin $(peers "$id") > "$work/node$id.log" 2>&1 &
  pids+=($!)
}
node 2 env
node 3 env
node 1 valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out"
callgrind=${pids[2]}
leader() {
  curl -sf "http://127.0.0.1:$((http + 2))/api/v1/state" |
    python3 -c 'import json, sys; print(json.load(sys.stdin).get("leader"))' 2>/dev/null || true
}
for _ in $(seq 120); do
  [ "$(leader)" = "$lead" ] && break
  "$B" client --server "http://127.0.0.1:$((http + 2))" transfer-leader "$lead" >/dev/null 2>&1 || true
  sleep 1
done
[ "$(leader)" = "$lead" ] || { echo "node $lead did not become the leader" >&2; exit 1; }
target=http://127.0.0.1:$((http + lead))
"$B" bench --target "$target" --clients "$clients" --ops 500 --warmup 0 --value-bytes "$value_bytes" >/dev/null
callgrind_control --zero "$callgrind" >/dev/null 2>&1
"$B" bench --target "$target" --clients "$clients" --ops "$ops" --warmup 0 --value-bytes "$value_bytes" | head -1
dumps() { find "$work" -name 'callgrind.out.*' | wc -l; }
before=$(dumps)
callgrind_control --dump "$callgrind" >/dev/null 2>&1
# The dump is written when the node next runs callgrind's code, not when the request returns.
for _ in $(seq 100); do [ "$(dumps)" -gt "$before" ] && break; sleep 0.1; done
[ "$(dumps)" -gt "$before" ] || { echo "callgrind wrote no dump of the measured writes" >&2; exit 1; }
total=$(grep -hE '^(summary|totals):' "$work"/callgrind.out.* | awk '{print $2}' | sort -n | tail -1)
echo "$role: $((total / ops)) instructions per write ($clients clients, $ops writes of $value_bytes bytes)"
