#!/usr/bin/env bash
# What serving N tasks from one base costs: trains N adapter packs briefly (one step each) on the
# shipped base, then answers the same JSON lines with `predict` holding no pack and all N packs.
# Prints the bytes the tasks add to the model (the library's count of their tensors), the bytes of
# the tensors in the packs' files (read from their safetensors headers), and each run's peak RSS.
# Usage: benchmarks/pack_memory.sh ADAPTERTUNE [N] [WORK_DIR]
set -euo pipefail
cli=$1 n=${2:-10} work=${3:-/tmp/adaptertune-pack-memory}
root=$(cd "$(dirname "$0")/.." && pwd)
base=$root/models/adaptertune-base-uncased-L4-H256
rm -rf "$work"
mkdir -p "$work"
tasks=(SST-2 STS-B MRPC CoLA RTE)
packs=()
for ((i = 0; i < n; i++)); do
  task=${tasks[$((i % ${#tasks[@]}))]}
  adapter=$([ $(((i / ${#tasks[@]}) % 2)) -eq 0 ] && echo houlsby || echo pfeiffer)
  name=task$i
  "$cli" train --task "$task" --data-dir "$root/data/glue" --model "$base" --adapter "$adapter" \
    --adapter-name "$name" --train-examples 16 --batch-size 16 --max-steps 1 --max-length 32 \
    --no-progress --out "$work/$name" >/dev/null 2>"$work/$name.log"
  packs+=(--adapter-pack "$work/$name/best")
  printf '{"task": "%s", "text": "a short request", "text_pair": "and its pair"}\n' "$name" \
    >>"$work/requests.jsonl"
done
printf '{"text": "a request for the plain base"}\n' >"$work/base_only.jsonl"

/usr/bin/time -f "%M" -o "$work/rss0" "$cli" predict --model "$base" --input "$work/base_only.jsonl" \
  >/dev/null 2>"$work/predict0.log"
/usr/bin/time -f "%M" -o "$work/rssN" "$cli" predict --model "$base" "${packs[@]}" \
  --input "$work/requests.jsonl" >"$work/answers.jsonl" 2>"$work/predictN.log"
/usr/bin/python3 - "$work" "$n" <<'PY'
import json, struct, sys, glob
work, n = sys.argv[1], int(sys.argv[2])
def tensor_bytes(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return sum(e["data_offsets"][1] - e["data_offsets"][0]
               for k, e in header.items() if k != "__metadata__")
files = sorted(glob.glob(f"{work}/task*/best/*.safetensors"))
pack_bytes = sum(tensor_bytes(f) for f in files)
line = open(f"{work}/predictN.log").read().strip().splitlines()[-1]
rss0 = int(open(f"{work}/rss0").read().split()[-1])
rssN = int(open(f"{work}/rssN").read().split()[-1])
print(line)
print(f"the {n} packs' files hold {pack_bytes:,} bytes of tensors")
print(f"peak RSS: {rss0:,} KiB with no pack, {rssN:,} KiB with {n} packs (+{rssN - rss0:,} KiB)")
PY
