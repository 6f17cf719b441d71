#!/usr/bin/env bash
# Makes here, before the first call to a lent GPU machine (which has no apt and no network), what
# scripts/gpu_check.sh needs there, so that none of the machine's minutes go to it:
#   scripts/prepare_gpu_run.sh            .debs/: the Debian dev packages the build unpacks
#                                         (carry .debs);
#   scripts/prepare_gpu_run.sh pretrain   the same, and .gpu/corpus/: the shipped base's
#                                         pretraining corpus, compressed to travel (carry .debs
#                                         and .gpu/corpus), for `gpu_check.sh pretrain SECONDS`.
# Both folders are git-ignored and made afresh on a fresh machine. Needs apt-get (run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-build}
case "$mode" in build | pretrain) ;; *)
  echo "usage: prepare_gpu_run.sh [pretrain]" >&2
  exit 2
  ;;
esac

apt-get update -qq
# Every library the build finds besides LibTorch (which comes with the machine's PyTorch; see
# CMakeLists.txt and tools/*/CMakeLists.txt), with the runtime packages their dev links point
# into, and pkg-config for cpp-httplib. Keep this list with the build's find_package() calls.
mkdir -p .debs
rm -f .debs/*.deb
(cd .debs && apt-get download -qq libsentencepiece0 libsentencepiece-dev libgtest-dev googletest \
  nlohmann-json3-dev libcli11-dev libutf8proc2 libutf8proc-dev libcsv3 libcsv-dev \
  libcpp-httplib0.11 libcpp-httplib-dev libssl3 libssl-dev zlib1g zlib1g-dev libbrotli1 \
  libbrotli-dev pkgconf pkgconf-bin libpkgconf3)
echo "prepare_gpu_run.sh: $(ls .debs/*.deb | wc -l) packages in .debs ($(du -sh .debs | cut -f1))"

if [ "$mode" = pretrain ]; then
  # The sources of make_pretraining_corpus.py's text (models/README.md, "Text").
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base dict-gcide sword-text-web \
    diatheke python3.11-doc perl-doc >/dev/null
  mkdir -p out/corpus .gpu/corpus
  /usr/bin/python3 scripts/make_pretraining_corpus.py out/corpus/more.txt --gcide --bible \
    --python-docs --perl-docs --held-out out/corpus/heldout-more.txt
  gzip -c out/corpus/more.txt >.gpu/corpus/train.txt.gz.tmp
  mv .gpu/corpus/train.txt.gz.tmp .gpu/corpus/train.txt.gz
  cp out/corpus/heldout-more.txt .gpu/corpus/heldout.txt
  echo "prepare_gpu_run.sh: .gpu/corpus ($(du -sh .gpu/corpus | cut -f1))"
fi
