#!/usr/bin/env bash
# One prepared run on a lent GPU machine (see ../shared/GPU.md): build against the PyTorch-bundled
# LibTorch with CUDA, then
#   scripts/gpu_check.sh            run the test suite (CUDA cases included) and the training-step
#                                   benchmark next to the PyTorch-Python reference, bert-base shape;
#                                   $OUT gets logs.tgz (the logs, the GPU's name, the SST-2 dev
#                                   lengths, the Kineto traces of our bf16 forward pass and full
#                                   step and PyTorch eager's, with their summaries) and compare.py's
#                                   three JSON files;
#   scripts/gpu_check.sh results    build only the CLI and run scripts/results_table.sh on CUDA;
#   scripts/gpu_check.sh pretrain SECONDS [pretrain flags]
#                                   build only the CLI and run one sitting of issue 13's open-ended
#                                   pretraining run on CUDA (scripts/pretrain_sitting.sh: the main
#                                   run for SECONDS, then a decay of a tenth of its steps), from the
#                                   shipped base on the corpus in .gpu/corpus, compressed to fit
#                                   the 64 MiB that travel (carry .gpu/corpus): the shipped base's
#                                   own corpus, with its running text (models/README.md), made here
#                                   by scripts/prepare_gpu_run.sh pretrain (19 MB compressed). The
#                                   flags after SECONDS go to every `pretrain`
#                                   call, e.g. the shipped base's second run's --lr 3e-4 (with
#                                   WSD_WARMUP=300 in the environment), or a batch that fills the
#                                   GPU (--batch-size); WSD_* variables pass through as for
#                                   scripts/pretrain_wsd.sh.
#                                   $OUT gets logs.tgz (the build's, the run's and the weights'
#                                   sha256) and the decayed model, its weights split in parts under
#                                   16 MiB (join: cat model.safetensors.part-* > model.safetensors
#                                   and check with sha256sum -c; config.json beside them, vocab.txt
#                                   and the licence as in models/adaptertune-base-uncased-L4-H256):
#                                   5 files, where at most 8 come back.
#   scripts/gpu_check.sh configure  only what the build needs from .debs, the configure step and
#                                   the sources that include each library's headers: a check of
#                                   the packages, for a machine that lacks them (seconds, no GPU).
# Needs the Debian packages in .debs/, unpacked here into a prefix (the machine has no apt and no
# network): made on the CPU machine by scripts/prepare_gpu_run.sh (carry .debs). Writes logs to
# $OUT (or out/gpu when OUT is unset).
set -uo pipefail
mode=${1:-all}
out=${OUT:-out/gpu}
mkdir -p "$out"
prefix=/tmp/adaptertune-deps
build=/tmp/adaptertune-build
ls .debs/*.deb >/dev/null 2>&1 || {
  echo "gpu_check.sh: no .debs/*.deb: make them with scripts/prepare_gpu_run.sh and carry .debs" >&2
  exit 1
}
rm -rf "$prefix" && mkdir -p "$prefix"
for f in .debs/*.deb; do dpkg -x "$f" "$prefix"; done
lib=$prefix/usr/lib/x86_64-linux-gnu
# Runtime libraries the machine has already (OpenSSL, zlib, Brotli, which its Python uses too):
# the build links the machine's own copy through the dev link, and ours are removed, so that no
# process of this script loads a second copy from LD_LIBRARY_PATH.
for so in libcrypto.so.3 libssl.so.3 libz.so.1 libbrotlicommon.so.1 libbrotlidec.so.1 \
  libbrotlienc.so.1; do
  system=$(/sbin/ldconfig -p | awk -v so="$so" '$1 == so && /x86-64/ {print $NF; exit}')
  [ -n "$system" ] || continue
  rm -f "$lib/$so" "$lib/$so".*
  ln -sf "$system" "$lib/${so%.so.*}.so"
done
export LD_LIBRARY_PATH=$lib:${LD_LIBRARY_PATH:-}
# pkg-config (Debian's pkgconf) for cpp-httplib, reading only the prefix's .pc files, whose paths
# (prefix=/usr) it moves into the prefix; OpenSSL's multiarch header dir for the compiler.
export PATH=$prefix/usr/bin:$PATH
export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$prefix/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$prefix
export CPLUS_INCLUDE_PATH=$prefix/usr/include/x86_64-linux-gnu${CPLUS_INCLUDE_PATH:+:$CPLUS_INCLUDE_PATH}
torch_prefix=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
if [ "$mode" != configure ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
fi
extra=()
[ "$mode" = results ] || [ "$mode" = pretrain ] &&
  extra=(-DADAPTERTUNE_BUILD_TESTS=OFF -DADAPTERTUNE_BUILD_BENCHMARKS=OFF)
if [ "$mode" = pretrain ]; then
  [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "usage: gpu_check.sh pretrain SECONDS [pretrain flags]" >&2; exit 2; }
  for f in .gpu/corpus/train.txt.gz .gpu/corpus/heldout.txt; do
    [ -f "$f" ] || { echo "gpu_check.sh: no $f (carry .gpu/corpus)" >&2; exit 1; }
  done
fi

start=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${extra[@]}" \
  -DCMAKE_PREFIX_PATH="$torch_prefix;$prefix/usr;$prefix/usr/lib/x86_64-linux-gnu/cmake" \
  -DTORCH_CUDA_ARCH_LIST=9.0 > "$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
if [ "$mode" = configure ]; then
  # One source per library it includes: OpenSSL, libcsv, cpp-httplib, sentencepiece, utf8proc,
  # nlohmann/json, CLI11, GoogleTest.
  objects=()
  targets=$(cd "$build" && ninja -t targets all)
  for source in src/sha256.cpp src/tasks/text_dataset.cpp tools/serve/http_server.cpp \
    src/text/sentencepiece_shim.cpp src/text/unicode.cpp src/json_util.cpp \
    tools/cli/common.cpp tests/format_test.cpp; do
    objects+=("$(grep -o "^[^:]*/${source##*/}\.o" <<<"$targets" | head -1)")
  done
  (cd "$build" && ninja "${objects[@]}") > "$out/build.log" 2>&1 ||
    { grep -E "error|Error" -A3 "$out/build.log" | head -40; exit 1; }
  grep -E "OPENSSL_CRYPTO_LIBRARY|CSV_LIBRARY|SENTENCEPIECE_LIBRARY|UTF8PROC_LIBRARY|pkgcfg_lib_CPP" \
    "$build/CMakeCache.txt"
  echo "configure: the packages in .debs build ${#objects[@]} sources"
  exit 0
fi
cmake --build "$build" -j 16 > "$out/build.log" 2>&1 || { grep -E "error|Error" -A3 "$out/build.log" | head -60; exit 1; }
echo "build: $(( $(date +%s) - start )) s"

if [ "$mode" = results ]; then
  ADAPTERTUNE_CLI=$build/tools/cli/adaptertune ADAPTERTUNE_RESULTS_DIR=/tmp/results \
    bash scripts/results_table.sh --device cuda --precision bf16 2>&1 | tee "$out/results.log"
  cp docs/results.md "$out/results.md"
  tar -C /tmp -czf "$out/results-runs.tgz" --exclude='checkpoints' --exclude='best' results
  exit 0
fi

if [ "$mode" = pretrain ]; then
  wsd=/tmp/wsd
  gunzip -c .gpu/corpus/train.txt.gz > /tmp/train.txt
  ADAPTERTUNE=$build/tools/cli/adaptertune WSD_DIR=$wsd CORPUS=/tmp/train.txt \
    EVAL_TEXT=.gpu/corpus/heldout.txt \
    bash scripts/pretrain_sitting.sh "$2" --device cuda "${@:3}" 2>&1 | tee "$out/sitting.log"
  cp "$wsd/main.log" "$out/main.log"
  for model in "$wsd"/decay-*/; do
    [ -f "$model/model.safetensors" ] || continue
    name=$(basename "$model")
    cp "$wsd/$name.log" "$out/$name.log"
    cp "$model/config.json" "$out/config.json"
    split -b 15M "$model/model.safetensors" "$out/model.safetensors.part-"
    (cd "$model" && sha256sum model.safetensors) > "$out/model.safetensors.sha256"
  done
  # At most 8 files come back from a lent machine: the logs travel as one archive.
  (cd "$out" && shopt -s nullglob && tar -czf logs.tgz --remove-files -- *.log *.txt *.sha256)
  exit 0
fi

ctest --test-dir "$build" --output-on-failure -j 4 > "$out/ctest.log" 2>&1
echo "ctest exit $?"; grep -E "tests passed|tests failed|Failed|\*\*\*" "$out/ctest.log" | head -30

bench="$build/benchmarks/adaptertune_bench"
"$bench" --device cuda --precision bf16 --batch 128 --seq 128 --steps 10 --warmup 3 --padded \
  --modes full,houlsby 2>&1 | tee -a "$out/bench.log"
for precision in bf16 fp32; do
  "$bench" --device cuda --precision "$precision" --batch 128 --seq 128 --steps 10 --warmup 3 --json \
    2>&1 | tee -a "$out/bench.log"
  PYTHONUNBUFFERED=1 python3 benchmarks/reference_step.py --device cuda --precision "$precision" \
    --batch 128 --seq 128 --steps 10 --warmup 3 2>&1 | tee -a "$out/bench.log"
done
# Where the GPU's time goes (issue 10: our bf16 forward pass and full step against PyTorch eager's):
# Kineto traces of 5 steps each side, summed up by kernel class and kernel (profile-MODE.log), the
# traces themselves kept compressed in logs.tgz. The forward pass computes every position, as
# PyTorch's does (--all-positions).
for mode in forward full; do
  flags=()
  [ "$mode" = forward ] && flags=(--all-positions)
  "$bench" --device cuda --precision bf16 --batch 128 --seq 128 --steps 5 --warmup 3 --modes "$mode" \
    "${flags[@]}" --profile "$out/trace-ours-$mode.json" >> "$out/bench.log" 2>&1
  python3 benchmarks/reference_step.py --device cuda --precision bf16 --batch 128 --seq 128 --steps 5 \
    --warmup 3 --modes "$mode" --profile "$out/trace-pytorch-$mode.json" >> "$out/bench.log" 2>&1
  python3 benchmarks/trace_summary.py --steps 5 --top 25 "ours=$out/trace-ours-$mode.json" \
    "pytorch=$out/trace-pytorch-$mode.json" 2>&1 | tee "$out/profile-$mode.log"
  gzip -f "$out/trace-ours-$mode.json" "$out/trace-pytorch-$mode.json"
done
# Ours against PyTorch eager at bert-base, batch 128, interleaved, with spreads and peak memory:
# compare_cuda OUT_NAME [compare.py flags].
compare_cuda() {
  python3 benchmarks/compare.py --shape bert-base --batch 128 --device cuda --python python3 \
    --bench "$bench" --cli "$build/tools/cli/adaptertune" --rounds 3 --steps 10 --warmup 3 \
    --out "$out/$1" "${@:2}" 2>&1 | tee -a "$out/bench.log"
}
# Training, the forward pass and SST-2 dev inference.
compare_cuda compare-cuda.json --modes full,houlsby,forward,infer-dev-dynamic,infer-dev-maxpad \
  --lengths-file "$out/sst2-dev-lengths.txt"
# The forward pass like for like: a classifier in evaluation computes its last layer at [CLS] only
# (LastLayerOutput), which PyTorch eager does not; --all-positions computes every position, as the
# issue's "bf16 forward no slower than PyTorch" compares.
compare_cuda compare-cuda-all-positions.json --precisions bf16 --modes forward \
  --ours-flags=--all-positions
# The training option that computes the last layer at [CLS] only (train --last-layer-first-position,
# off by default): its gain on CUDA, against the same reference as the first call.
compare_cuda compare-cuda-last-layer.json --precisions bf16 --modes full,houlsby \
  --ours-flags=--last-layer-first-position
# At most 8 files come back from a lent machine: the logs, the lengths and the traces travel as one
# archive.
(cd "$out" && shopt -s nullglob && tar -czf logs.tgz --remove-files -- *.log *.txt trace-*.json.gz)
