#!/usr/bin/env bash
# Data-parallel scaling on this machine: the same training (Houlsby adapters on SST-2, global
# batch 32, length 64, bf16) as 1 process and as 2 processes under torchrun (Gloo, 127.0.0.1),
# each run for STEPS optimizer steps; prints examples/s measured over the steps after the first
# window (start-up and the first steps left out), from each run's metrics.jsonl.
# Usage: benchmarks/distributed_scaling.sh [ADAPTERTUNE] [STEPS]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${1:-$root/build/tools/cli/adaptertune}
steps=${2:-60}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(train --task SST-2 --data-dir "$root/data/glue" --model "$root/models/adaptertune-base-uncased-L4-H256"
      --train-examples 8192 --batch-size 32 --max-length 64 --precision bf16 --max-steps "$steps"
      --log-every 20 --no-progress)
threads=$(nproc)
OMP_NUM_THREADS=$threads "$cli" "${args[@]}" --out "$work/one" > /dev/null 2> "$work/one.log"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Each process gets its share of the cores. --redirects/--tee 1: see the README (Debian's torchrun).
OMP_NUM_THREADS=$((threads / 2 > 0 ? threads / 2 : 1)) torchrun --nnodes 1 --nproc_per_node 2 \
  --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$port" --redirects 1 --tee 1 --no_python \
  "$cli" "${args[@]}" --out "$work/two" > /dev/null 2> "$work/two.log"
python3 - "$work" "$threads" "$steps" <<'PY'
import json, os, sys
work, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rate(run):
    events = [e for e in map(json.loads, open(os.path.join(work, run, "metrics.jsonl")))
              if e["event"] == "train"]
    later = events[1:]  # the first window holds start-up
    return sum(e["examples_per_s"] for e in later) / len(later)
one, two = rate("one"), rate("two")
print(json.dumps({"cores": threads, "steps": steps, "global_batch": 32,
                  "examples_per_s": {"1 process": round(one, 1), "2 processes": round(two, 1)},
                  "speedup": round(two / one, 2)}))
PY
