#!/usr/bin/env bash
# Browser test of the run viewer: renders the page for scenarios/readme.scn in headless
# Chromium and checks what the page drew against what raft-sim computes from the same trace:
#   - the page's <pre id="summary"> (its own replay of the whole trace: node count, last log
#     index, commit index and log terms of every node, violation) equals `raft-sim viz --summary`;
#   - at the end of the run (#t=end) it drew one node box per node, and each box shows the
#     final last index and commit index;
# then takes a screenshot. Exits non-zero on any mismatch.
#
# usage: raft-sim/tests/browser.sh [--screenshot FILE.png] [--at FRAGMENT]
#   --screenshot  where to write the PNG (default: a temporary file)
#   --at          the page position for the screenshot, e.g. t=end, t=2955 (ms), e=120 (records)
set -euo pipefail
cd "$(dirname "$0")/../.."

shot=""
at="t=end"
while [ $# -gt 0 ]; do
  case "$1" in
    --screenshot) shot="$2"; shift 2 ;;
    --at) at="$2"; shift 2 ;;
    *) echo "browser.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

chromium="${CHROMIUM:-chromium}"
if ! command -v "$chromium" >/dev/null; then
  echo "browser.sh: $chromium not found (apt-get install chromium)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -n "$shot" ] || shot="$work/readme.png"

cargo build -p raft-sim --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/raft-sim"
"$bin" run raft-sim/scenarios/readme.scn --trace-json "$work/readme.jsonl" --html "$work/readme.html" >/dev/null
expected="$("$bin" viz "$work/readme.jsonl" --summary)"

# A fresh profile per run, nothing fetched, nothing synced.
browser() {
  local profile
  profile="$(mktemp -d "$work/profile.XXXXXX")"
  timeout 60 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --disable-quic \
    --user-data-dir="$profile" "$@" 2>>"$work/chromium.log"
}

fail() {
  echo "browser.sh: FAILED: $*" >&2
  exit 1
}

browser --dump-dom "file://$work/readme.html#t=end" >"$work/dom.html" \
  || fail "chromium could not load the page: $(tail -5 "$work/chromium.log")"

actual="$(sed -n 's:.*<pre id="summary"[^>]*>\([^<]*\)</pre>.*:\1:p' "$work/dom.html")"
[ -n "$actual" ] || fail "the page wrote no summary (did its script run?)"
[ "$actual" = "$expected" ] || fail "the page's summary differs from raft-sim's
  page:     $actual
  raft-sim: $expected"

# What is drawn at the end: one box per node, with the final indexes.
nodes="$(sed -n 's/^nodes=\([0-9]*\) .*/\1/p' <<<"$expected")"
lengths="$(sed -n 's/.* log_lengths=\([0-9,]*\) .*/\1/p' <<<"$expected")"
commits="$(sed -n 's/.* commit=\([0-9,]*\) .*/\1/p' <<<"$expected")"
drawn="$(grep -o '<g class="node" data-node="[0-9]*" data-life="[a-z_]*" data-last="[0-9]*" data-commit="[0-9]*"' "$work/dom.html" \
  | sed 's/.*data-node="\([0-9]*\)".*data-last="\([0-9]*\)" data-commit="\([0-9]*\)"/\1 \2 \3/' || true)"
drawn_nodes="$(grep -c . <<<"$drawn" || true)"
[ "$drawn_nodes" = "$nodes" ] || fail "drew $drawn_nodes node boxes, expected $nodes"
drawn_lengths="$(cut -d' ' -f2 <<<"$drawn" | paste -sd,)"
drawn_commits="$(cut -d' ' -f3 <<<"$drawn" | paste -sd,)"
[ "$drawn_lengths" = "$lengths" ] || fail "drew log lengths $drawn_lengths, expected $lengths"
[ "$drawn_commits" = "$commits" ] || fail "drew commit indexes $drawn_commits, expected $commits"

browser --window-size=1400,900 --screenshot="$shot" "file://$work/readme.html#$at" >/dev/null \
  || fail "no screenshot: $(tail -5 "$work/chromium.log")"
[ "$(head -c 8 "$shot" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "$shot is not a PNG"
size="$(wc -c <"$shot")"
[ "$size" -gt 20000 ] || fail "$shot is only $size bytes: a blank page?"

echo "browser.sh: ok: $nodes nodes, log lengths $lengths, commits $commits; screenshot $shot ($size bytes)"
