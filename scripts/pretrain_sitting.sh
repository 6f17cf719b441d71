#!/usr/bin/env bash
# One sitting of issue 13's open-ended run (scripts/pretrain_wsd.sh), for a machine that is lent
# for a while: the main run for SECONDS of wall time (resumed from its newest checkpoint, stopped
# with Ctrl-C, which saves one), then a decay branched off that checkpoint, so that every sitting
# ends with a model to evaluate, WSD_DIR/decay-STEP, and the next sitting goes on from the main
# run's checkpoint.
# Usage: scripts/pretrain_sitting.sh SECONDS [extra pretrain flags, e.g. --device cuda]
#   WSD_DECAY: the decay's steps (default: a tenth of the steps the main run has taken, at least 1;
#   the decay then adds about a tenth of SECONDS); other variables as for pretrain_wsd.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ "${1:-}" =~ ^[0-9]+$ ]] || { echo "usage: pretrain_sitting.sh SECONDS [pretrain flags]" >&2; exit 2; }
seconds=$1
shift
dir=${WSD_DIR:-$root/out/wsd}
status=0
# timeout sends SIGINT to its process group, `pretrain` included: it saves a checkpoint and exits.
timeout -s INT "$seconds" bash "$root/scripts/pretrain_wsd.sh" run "$@" || status=$?
case "$status" in
  0) echo "pretrain_sitting.sh: the main run reached its horizon: $dir/main is finished" >&2; exit 0 ;;
  124 | 130) ;;
  *) echo "pretrain_sitting.sh: the main run failed ($status); see $dir/main.log" >&2; exit "$status" ;;
esac
[ -f "$dir/main/checkpoints/latest" ] ||
  { echo "pretrain_sitting.sh: the main run left no checkpoint (stopped before its first step?)" >&2; exit 1; }
step=$(sed 's/^checkpoint-//' "$dir/main/checkpoints/latest")
decay=${WSD_DECAY:-$((step >= 10 ? step / 10 : 1))}
echo "pretrain_sitting.sh: the main run stopped at step $step; a decay of $decay steps follows" >&2
WSD_DECAY=$decay bash "$root/scripts/pretrain_wsd.sh" decay "$step" "$@"
echo "pretrain_sitting.sh: $dir/decay-$step is a finished model" >&2
