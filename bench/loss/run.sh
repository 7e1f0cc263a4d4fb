#!/bin/bash
# Writes through a lossy network: a local three-node cluster whose peer datagrams are dropped
# at random (an iptables `statistic` rule on the loopback interface, both directions), loaded
# by `bench` at its leader. Prints one `bench` summary per build and round, builds alternating.
#   sudo bash bench/loss/run.sh LOSS CLIENTS OPS ROUNDS BINARY...
# e.g. `bash bench/loss/run.sh 0.05 100 30000 3 /tmp/before/raft-net target/release/raft-net`.
# Needs root and iptables; the rule is removed on exit.
set -euo pipefail
loss=$1; clients=$2; ops=$3; rounds=$4; shift 4
http=28300
raft=28400
rule=(INPUT -i lo -p udp --dport "$((raft + 1)):$((raft + 3))" -m statistic --mode random
  --probability "$loss" -j DROP)
work=$(mktemp -d)
cluster=
cleanup() {
  iptables -D "${rule[@]}" 2>/dev/null || true
  [ -z "$cluster" ] || { kill -INT "$cluster" 2>/dev/null || true; wait "$cluster" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

one() { # binary
  local b=$1 leader
  rm -rf "$work/data"
  "$b" cluster --http-base $((http + 1)) --raft-base $((raft + 1)) --data-dir "$work/data" \
    > "$work/cluster.log" 2>&1 &
  cluster=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$((http + 1))/healthz" > /dev/null && break
    sleep 0.1
  done
  sleep 1
  leader=$(curl -s "http://127.0.0.1:$((http + 1))/api/v1/state" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["leader"])')
  iptables -A "${rule[@]}"
  "$b" bench --target "http://127.0.0.1:$((http + leader))" --clients "$clients" --ops "$ops" \
    --warmup 300 --value-bytes 256 2>&1 | grep -E "writes/s|latency" | tr -s ' \n' ' '
  echo
  iptables -D "${rule[@]}"
  kill -INT "$cluster"; wait "$cluster" 2>/dev/null || true
  cluster=
}

for round in $(seq "$rounds"); do
  for b in "$@"; do
    echo -n "round $round $b: "
    one "$b"
  done
done
