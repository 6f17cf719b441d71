#!/usr/bin/env bash
# Data-parallel scaling on this machine: the same run as 1 process and as 2 processes under
# torchrun (Gloo, 127.0.0.1), each process with its share of the cores.
#   train:    Houlsby adapters on SST-2, global batch 32, length 64, bf16, STEPS optimizer steps;
#             examples/s over the steps after the first window (start-up left out), from each
#             run's metrics.jsonl.
#   pretrain: masked-LM pretraining of the shipped base on SST-2's training sentences, global
#             batch 32 of 128 tokens, fp32, STEPS steps logged every 10; sequences/s between the
#             first log line and the last, from the seconds rank 0 prints on each (start-up and
#             the first window left out).
# Usage: benchmarks/distributed_scaling.sh [ADAPTERTUNE] [STEPS] [train|pretrain]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${1:-$root/build/tools/cli/adaptertune}
steps=${2:-60}
what=${3:-train}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
threads=$(nproc)
base=$root/models/adaptertune-base-uncased-L4-H256
case $what in
  train)
    args=(train --task SST-2 --data-dir "$root/data/glue" --model "$base" --train-examples 8192
          --batch-size 32 --max-length 64 --precision bf16 --log-every 20 --no-progress) ;;
  pretrain)
    tail -n +2 "$root/data/glue/SST-2/train.tsv" | cut -f 1 > "$work/text.txt"
    args=(pretrain --init-from "$base" --text "$work/text.txt" --batch-size 32 --max-length 128
          --checkpoint-every 0 --log-every 10) ;;
  *) echo "distributed_scaling.sh: the third argument is train or pretrain, not $what" >&2; exit 2 ;;
esac
# Runs "${args[@]}" "${@:3}" as one process ($1 = one) or two ($1 = two), into $2 (stderr in
# $2.log).
run() {
  if [ "$1" = one ]; then
    OMP_NUM_THREADS=$threads "$cli" "${args[@]}" "${@:3}" --out "$2" > /dev/null 2> "$2.log"
  else
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # --redirects/--tee 1: see the README (Debian's torchrun).
    OMP_NUM_THREADS=$((threads / 2 > 0 ? threads / 2 : 1)) torchrun --nnodes 1 --nproc_per_node 2 \
      --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$port" --redirects 1 --tee 1 --no_python \
      "$cli" "${args[@]}" "${@:3}" --out "$2" > /dev/null 2> "$2.log"
  fi
}
if [ "$what" = train ]; then
  run one "$work/one" --max-steps "$steps"
  run two "$work/two" --max-steps "$steps"
  python3 - "$work" "$threads" "$steps" <<'PY'
import json, os, sys
work, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rate(run):
    events = [e for e in map(json.loads, open(os.path.join(work, run, "metrics.jsonl")))
              if e["event"] == "train"]
    later = events[1:]  # the first window holds start-up
    return sum(e["examples_per_s"] for e in later) / len(later)
one, two = rate("one"), rate("two")
print(json.dumps({"what": "train", "cores": threads, "steps": steps, "global_batch": 32,
                  "examples_per_s": {"1 process": round(one, 1), "2 processes": round(two, 1)},
                  "speedup": round(two / one, 2)}))
PY
else
  run one "$work/one" --steps "$steps"
  run two "$work/two" --steps "$steps"
  python3 - "$work" "$threads" "$steps" <<'PY'
import json, os, re, sys
work, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def rate(run):
    logged = [(int(step), float(seconds)) for step, seconds in re.findall(
        r"pretrain: step (\d+)/\d+  mlm loss \S+  lr \S+  ([0-9.]+) s",
        open(os.path.join(work, run + ".log")).read())]
    (first_step, first_s), (last_step, last_s) = logged[0], logged[-1]
    return (last_step - first_step) * 32 / (last_s - first_s)
one, two = rate("one"), rate("two")
print(json.dumps({"what": "pretrain", "cores": threads, "steps": steps, "global_batch": 32,
                  "sequences_per_s": {"1 process": round(one, 1), "2 processes": round(two, 1)},
                  "speedup": round(two / one, 2)}))
PY
fi
