#!/usr/bin/env bash
# Downloads the GLUE tasks that the repository does not ship (QQP, MNLI, QNLI, WNLI and the AX
# diagnostic set) into data/glue/, in the layout the readers expect (data/glue/<TASK>/*.tsv).
# Needs internet access, curl and unzip; the files come from the GLUE benchmark's own download
# location and keep their original licences (see data/README.md and https://gluebenchmark.com).
# Usage: scripts/download_glue.sh [TASK ...]   (default: QQP MNLI QNLI WNLI AX)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${GLUE_DIR:-$root/data/glue}
base=https://dl.fbaipublicfiles.com/glue/data
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || tasks=(QQP MNLI QNLI WNLI AX)
command -v curl >/dev/null || { echo "download_glue.sh: needs curl" >&2; exit 1; }
command -v unzip >/dev/null || { echo "download_glue.sh: needs unzip" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$dest"
for task in "${tasks[@]}"; do
  case "$task" in
    QQP) archive=QQP-clean.zip ;;
    MNLI) archive=MNLI.zip ;;
    QNLI) archive=QNLIv2.zip ;;
    WNLI) archive=WNLI.zip ;;
    CoLA | SST-2 | MRPC | STS-B | RTE) archive=$task.zip ;;
    AX)
      mkdir -p "$dest/AX"
      curl -fsSL "$base/AX.tsv" -o "$dest/AX/AX.tsv"
      echo "download_glue.sh: AX -> $dest/AX/AX.tsv"
      continue ;;
    *) echo "download_glue.sh: unknown task $task" >&2; exit 1 ;;
  esac
  curl -fsSL "$base/$archive" -o "$tmp/$archive"
  unzip -q -o "$tmp/$archive" -d "$tmp/$task"
  # The archives hold one folder named after the task; move its files into place.
  src=$(find "$tmp/$task" -name 'train.tsv' -printf '%h\n' | head -n 1)
  [ -n "$src" ] || { echo "download_glue.sh: $archive has no train.tsv" >&2; exit 1; }
  mkdir -p "$dest/$task"
  cp "$src"/*.tsv "$dest/$task/"
  echo "download_glue.sh: $task -> $dest/$task"
done
