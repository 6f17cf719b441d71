# Sourced by pretrain_probes.sh and pretrain_base.sh (issue 13), after they set $root: the
# pretraining recipe they share, so that the long run is the probes' recipe at a longer budget.

# The flags besides the config, corpus, output, steps and what a probe changes: 64 x 128 tokens a
# step, peak learning rate 5e-4 after 6 % warmup, bf16 compute, bf16 weights saved, a log line
# every 50 steps and a checkpoint every 250.
pretrain_recipe=(--vocab "$root/data/vocab/bert-base-uncased-vocab.txt" --batch-size 64 --max-length 128
  --lr 5e-4 --warmup-ratio 0.06 --seed 42 --precision bf16 --save-bf16 --log-every 50
  --checkpoint-every 250)

# set_config_dropout SRC DST [DROPOUT]: writes DST (atomically, newline-terminated) as config SRC
# with hidden and attention dropout DROPOUT (default: the shipped base's, models/base-config.json).
set_config_dropout() {
  /usr/bin/python3 -c 'import json, os, sys
src, dst, base = sys.argv[1:4]
c = json.load(open(src))
for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
    c[key] = float(sys.argv[4]) if len(sys.argv) > 4 else json.load(open(base))[key]
open(dst + ".tmp", "w").write(json.dumps(c, indent=2) + "\n"); os.replace(dst + ".tmp", dst)' \
    "$1" "$2" "$root/models/base-config.json" "${@:3}"
}

# write_nodropout_config FILE: the shipped base's config with dropout 0, the nodropout probe's and
# the long run's.
write_nodropout_config() { set_config_dropout "$root/models/base-config.json" "$1" 0; }
