#!/usr/bin/env bash
# Downloads SQuAD v1.1 and v2.0 (train and dev JSON) into data/squad/ for `train --task squad`.
# Needs internet access and curl; the files come from the SQuAD explorer's own download location
# (https://rajpurkar.github.io/SQuAD-explorer/, CC BY-SA 4.0) and are checked by counting their
# questions, which the papers publish. The repository ships none of them.
# Usage: scripts/download_squad.sh [v1.1|v2.0 ...]   (default: both)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${SQUAD_DIR:-$root/data/squad}
base=https://rajpurkar.github.io/SQuAD-explorer/dataset
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(v1.1 v2.0)
command -v curl >/dev/null || { echo "download_squad.sh: needs curl" >&2; exit 1; }
mkdir -p "$dest"
# Questions per file (Rajpurkar et al. 2016, 2018).
expected() {
  case "$1" in
    train-v1.1.json) echo 87599 ;;
    dev-v1.1.json) echo 10570 ;;
    train-v2.0.json) echo 130319 ;;
    dev-v2.0.json) echo 11873 ;;
  esac
}
for version in "${versions[@]}"; do
  case "$version" in
    v1.1 | v2.0) ;;
    *) echo "download_squad.sh: unknown version $version (expected v1.1 or v2.0)" >&2; exit 1 ;;
  esac
  for split in train dev; do
    file=$split-$version.json
    curl -fsSL "$base/$file" -o "$dest/$file.part"
    count=$(python3 -c 'import json, sys
data = json.load(open(sys.argv[1]))["data"]
print(sum(len(p["qas"]) for a in data for p in a["paragraphs"]))' "$dest/$file.part")
    if [ "$count" != "$(expected "$file")" ]; then
      echo "download_squad.sh: $file has $count questions, expected $(expected "$file")" >&2
      rm -f "$dest/$file.part"
      exit 1
    fi
    mv "$dest/$file.part" "$dest/$file"
    echo "download_squad.sh: $file ($count questions) -> $dest/$file"
  done
done
