#!/usr/bin/env bash
# Load test of `adaptertune serve` anyone can rerun: trains three packs briefly (SST-2, STS-B,
# MRPC) on the shipped base, serves them, and drives POST /v1/predict on loopback with wrk
# (Debian: apt-get install wrk) from CONNECTIONS clients for DURATION, three times: batching what
# is queued
# (--max-wait-ms 0), batching with a 5 ms wait for company, and one example per forward pass
# (--max-batch 1); each request is one example of a mix of the three tasks and the plain base.
# Prints wrk's summary, throughput, p50 and p99 latency, errors (non-2xx and socket errors), the
# mean batch size from /metrics, and the throughput ratios, all measured in one run.
# Usage: scripts/load_test.sh ADAPTERTUNE [DURATION] [CONNECTIONS] [WORK_DIR] [PRECISION]
# (defaults: 30s, 64, /tmp/adaptertune-load-test, fp32). ADAPTERTUNE_SERVE_FLAGS adds flags to
# every server's command line, e.g. ADAPTERTUNE_SERVE_FLAGS=--unpacked-weights.
set -euo pipefail
cli=$1 duration=${2:-30s} connections=${3:-64} work=${4:-/tmp/adaptertune-load-test}
precision=${5:-fp32}
read -r -a serve_flags <<<"${ADAPTERTUNE_SERVE_FLAGS:-}"
root=$(cd "$(dirname "$0")/.." && pwd)
base=$root/models/adaptertune-base-uncased-L4-H256
command -v wrk >/dev/null || { echo "load_test.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
for task in SST-2 STS-B MRPC; do
  "$cli" train --task "$task" --data-dir "$root/data/glue" --model "$base" --train-examples 64 \
    --batch-size 16 --max-steps 2 --max-length 64 --no-progress --out "$work/$task" \
    >/dev/null 2>"$work/$task.log"
done
cat >"$work/mix.lua" <<'LUA'
local bodies = {
  '{"task": "SST-2", "text": "a gorgeous, witty, seductive movie that never lets up"}',
  '{"task": "STS-B", "text": "A man is playing a guitar.", "text_pair": "A man plays music on stage."}',
  '{"task": "SST-2", "text": "the plot is a tedious mess and the dialogue is worse"}',
  '{"task": "MRPC", "text": "The shares fell 5 percent.", "text_pair": "Shares dropped by 5 percent."}',
  '{"text": "a request for the plain base"}',
}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/predict", {["Content-Type"] = "application/json"},
                    bodies[(n % #bodies) + 1])
end
LUA

run() { # LABEL SERVE_FLAGS...
  local label=$1
  shift
  "$cli" serve --model "$base" --adapter-pack "$work/SST-2/best" --adapter-pack "$work/STS-B/best" \
    --adapter-pack "$work/MRPC/best" --max-queue 100000 --precision "$precision" \
    --port 0 --threads "$connections" "${serve_flags[@]}" "$@" 2>"$work/serve-$label.log" &
  local server=$!
  local port=""
  for _ in $(seq 1 600); do
    port=$(grep -o '127.0.0.1:[0-9]*' "$work/serve-$label.log" | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$work/serve-$label.log" >&2; exit 1; }
  echo "== $label: serve ${serve_flags[*]} $*"
  wrk -t 2 -c "$connections" -d "$duration" --latency -s "$work/mix.lua" "http://127.0.0.1:$port" |
    tee "$work/wrk-$label.txt"
  curl -s "http://127.0.0.1:$port/metrics" >"$work/metrics-$label.txt" 2>/dev/null ||
    /usr/bin/python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode())" \
      >"$work/metrics-$label.txt"
  awk '/^adaptertune_batch_examples_sum/ {s=$2} /^adaptertune_batch_examples_count/ {c=$2}
       END {if (c > 0) printf "mean batch: %.1f examples over %d forward passes\n", s / c, c}' \
    "$work/metrics-$label.txt"
  kill -TERM "$server"
  wait "$server"
}

run batched --max-batch 64 --max-wait-ms 0
run waiting --max-batch 64 --max-wait-ms 5
run unbatched --max-batch 1 --max-wait-ms 0
/usr/bin/python3 - "$work" <<'PY'
import re, sys
work = sys.argv[1]
rate = {}
for label in ("batched", "waiting", "unbatched"):
    text = open(f"{work}/wrk-{label}.txt").read()
    rate[label] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)
    print(f"{label}: {rate[label]:.1f} requests/s, p50 {p50}, p99 {p99}, {errors} errors")
for label in ("batched", "waiting"):
    print(f"{label}: {rate[label] / rate['unbatched']:.2f}x the requests/s of one example per pass")
PY
