#!/bin/bash
# Side by side on one machine: raft-net's `bench` and a 3-member etcd on 127.0.0.1, same client
# counts, 256-byte values, fsync on both. Needs etcd, etcdctl and protoc on PATH (Debian:
# apt-get install etcd-server etcd-client protobuf-compiler). Run from the workspace root:
#   bash bench/etcd/compare.sh [ROUNDS]
# Every etcd run starts from empty data dirs.
set -euo pipefail
rounds=${1:-1}
root=$(pwd)
work=$(mktemp -d)
pids=()

stop_etcd() {
  if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; fi
  pids=()
}
trap 'stop_etcd; rm -rf "$work"' EXIT
cargo build --release --quiet -p raft-net --bin raft-net
cargo build --release --quiet --manifest-path bench/etcd/load/Cargo.toml --target-dir "$root/target/etcd-load"
B=$root/target/release/raft-net
L=$root/target/etcd-load/release/etcd-load
members="m1=http://127.0.0.1:12380,m2=http://127.0.0.1:22380,m3=http://127.0.0.1:32380"
endpoints="http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379"

start_etcd() {
  rm -rf "$work"/etcd; mkdir -p "$work"/etcd
  for i in 1 2 3; do
    etcd --name m$i --data-dir "$work/etcd/data$i" \
      --listen-client-urls http://127.0.0.1:${i}2379 --advertise-client-urls http://127.0.0.1:${i}2379 \
      --listen-peer-urls http://127.0.0.1:${i}2380 --initial-advertise-peer-urls http://127.0.0.1:${i}2380 \
      --initial-cluster "$members" --initial-cluster-state new --log-level warn \
      > "$work/etcd/m$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 60); do
    ETCDCTL_API=3 etcdctl --endpoints=$endpoints endpoint health >/dev/null 2>&1 && return
    sleep 0.5
  done
  echo "etcd did not start" >&2; exit 1
}

etcd_run() { # put|get clients connections ops
  start_etcd
  leader=$(ETCDCTL_API=3 etcdctl --endpoints=$endpoints endpoint status | awk -F', ' '$5=="true"{print $1}')
  "$L" "$1" "$leader" "$3" "$2" "$4" 256
  stop_etcd
}

raft_run() { # bench flags
  out=$("$B" bench "$@")
  case " $* " in *" --http2 "*) echo "over HTTP/2:" ;; esac
  echo "$out" | head -3
  echo "$out" | grep '^node CPU'
}

for round in $(seq "$rounds"); do
  echo "--- round $round"
  raft_run --clients 100 --ops 50000 --value-bytes 256
  # The clients sharing 10 connections over HTTP/2, as etcd's share 10 gRPC connections.
  raft_run --http2 --clients 100 --ops 50000 --value-bytes 256
  etcd_run put 100 10 50000
  raft_run --clients 1000 --ops 100000 --value-bytes 256
  raft_run --http2 --clients 1000 --ops 100000 --value-bytes 256
  etcd_run put 1000 100 100000
  raft_run --clients 1 --ops 3000 --value-bytes 256
  etcd_run put 1 1 3000
  raft_run --workload read --clients 100 --ops 50000 --value-bytes 256
  etcd_run get 100 10 50000
done
