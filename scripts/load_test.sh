#!/usr/bin/env bash
# Load test of `adaptertune serve` anyone can rerun: trains two packs briefly (SST-2, STS-B) on
# the shipped base, serves them, and drives POST /v1/predict with wrk (Debian: apt-get install
# wrk) from CONNECTIONS connections for DURATION, three times: batching what is queued
# (--max-wait-ms 0), batching with a 5 ms wait for company, and one example per forward pass
# (--max-batch 1); each request is one example of a mix of both tasks and the plain base. Prints
# wrk's summary, the mean batch size from /metrics, and the throughput ratios, measured in one
# run.
# Usage: scripts/load_test.sh ADAPTERTUNE [DURATION] [CONNECTIONS] [WORK_DIR]
set -euo pipefail
cli=$1 duration=${2:-10s} connections=${3:-16} work=${4:-/tmp/adaptertune-load-test}
root=$(cd "$(dirname "$0")/.." && pwd)
base=$root/models/adaptertune-base-uncased-L4-H256
command -v wrk >/dev/null || { echo "load_test.sh: needs wrk (apt-get install wrk)" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"
for task in SST-2 STS-B; do
  "$cli" train --task "$task" --data-dir "$root/data/glue" --model "$base" --train-examples 64 \
    --batch-size 16 --max-steps 2 --max-length 64 --no-progress --out "$work/$task" \
    >/dev/null 2>"$work/$task.log"
done
cat >"$work/mix.lua" <<'LUA'
local bodies = {
  '{"task": "SST-2", "text": "a gorgeous, witty, seductive movie that never lets up"}',
  '{"task": "STS-B", "text": "A man is playing a guitar.", "text_pair": "A man plays music on stage."}',
  '{"task": "SST-2", "text": "the plot is a tedious mess and the dialogue is worse"}',
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
    --port 0 --threads "$connections" "$@" 2>"$work/serve-$label.log" &
  local server=$!
  local port=""
  for _ in $(seq 1 600); do
    port=$(grep -o '127.0.0.1:[0-9]*' "$work/serve-$label.log" | head -1 | cut -d: -f2 || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$work/serve-$label.log" >&2; exit 1; }
  echo "== $label: serve $*"
  wrk -t 2 -c "$connections" -d "$duration" -s "$work/mix.lua" "http://127.0.0.1:$port" |
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
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    print(f"{label}: {rate[label]:.1f} requests/s, {errors.group(1) if errors else 0} non-2xx")
for label in ("batched", "waiting"):
    print(f"{label}: {rate[label] / rate['unbatched']:.2f}x the requests/s of one example per pass")
PY
