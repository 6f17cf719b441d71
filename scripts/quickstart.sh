#!/usr/bin/env bash
# The main job, from a fresh clone: installs dependencies, builds, and fine-tunes Houlsby adapters
# on SST-2 on top of the shipped pretrained base (models/adaptertune-base-uncased-L4-H256),
# printing the dev accuracy at the end (a few minutes on 2 cores).
# Extra arguments go to `adaptertune train` and override the defaults below, e.g.
#   bash scripts/quickstart.sh --epochs 3 --adapter pfeiffer
# A rerun replaces runs/quickstart-sst2 (--overwrite).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh" -DADAPTERTUNE_BUILD_TESTS=OFF
build_dir=${ADAPTERTUNE_BUILD_DIR:-$root/build}
cd "$root"
"$build_dir/tools/cli/adaptertune" train \
  --task SST-2 --data-dir data/glue --model models/adaptertune-base-uncased-L4-H256 \
  --adapter houlsby --train adapters --epochs 1 --batch-size 32 --lr 1e-3 --max-length 64 \
  --precision bf16 --eval-every 500 --out runs/quickstart-sst2 --overwrite "$@"
echo "quickstart: the best adapter pack is in runs/quickstart-sst2/best; run.json and metrics.jsonl describe the run"
