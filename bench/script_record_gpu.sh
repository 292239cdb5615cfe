#!/usr/bin/env bash
# modded-nanogpt's 2025-08-23 record, its own code unedited, through speedrun on one GPU:
# `speedrun sweep` (2 trials, the first compiling cold, the second from its cache; with BUILTIN=1
# the built-in trainer on the same data and schedule beside its first trial), then `promote` (1
# finalist, 2 fresh runs), a 2-run `record run` of the promoted folder and `ablate` (2 arms x 2
# runs), one run at a time. 40 steps of the record's schedule at its 393,216 tokens per step.
# docs/benchmarks.md has what it measured.
#
#   speedrun script extract <the record's log>.txt -o .ref/r0823      # once, git-ignored
#   bench/script_record_gpu.sh WORK DATA_DIR                          # from the repository root
#   python bench/script_record_summary.py WORK                        # the table
#
# DATA_DIR holds one train and one val shard (proxy_train_*.bin, proxy_val_*.bin): the record's
# loader neither wraps nor cycles, so WORK/data/fineweb10B/ lists the train shard 8 times and the
# val shard twice (it reads ahead). Every command's console goes to WORK/<step>.log.
set -uo pipefail
root=$(pwd)
work=$(realpath -m "$1")
data=$(realpath "$2")
shards=$work/data/fineweb10B
mkdir -p "$shards"
for i in 1 2 3 4 5 6 7 8; do ln -sf "$data"/proxy_train_*.bin "$shards/fineweb_train_00000$i.bin"; done
for i in 0 1; do ln -sf "$data"/proxy_val_*.bin "$shards/fineweb_val_00000$i.bin"; done
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
cd "$work" || exit 1
stamp() { echo "$1 $(date +%s.%N)" >> "$work/stamps.txt"; echo "== $1 $(date -u +%T)"; }

if [ -n "${BUILTIN:-}" ]; then  # the built-in trainer on the same data and schedule, beside the first trial
  stamp ours
  TORCHINDUCTOR_CACHE_DIR=/tmp/ours-cache/inductor TRITON_CACHE_DIR=/tmp/ours-cache/triton \
    python -m trainer --config gpt2_124m --events ours/events.jsonl \
    --set "data.train_files=$data/proxy_train_*.bin" --set "data.val_files=$data/proxy_val_*.bin" \
    --set data.val_tokens=524288 --set data.epochs=8 --set schedule.num_iterations=40 --set eval.every=20 \
    > ours.log 2>&1 &
fi
cli() { stamp "$1"; python -m orchestrator.cli "${@:2}" > "$1.log" 2>&1; echo "$1 exit $?" >> "$work/stamps.txt"; }
cli sweep sweep "$root/bench/script_record/r0823_sweep.yaml"
# Then, from the compile cache the sweep filled, one run at a time: two of the record's runs side
# by side fit an 80 GB H100 only just (33 GB each plus validation), and a third process does not
cli promote promote r0823 --top-k 1 --reseeds 2 --nproc 1
cli record record run records/*_r0823 --runs 2 --gpus-per-run 1 --cpus-per-run 8
cli ablate ablate "$root/bench/script_record/r0823_ablation.yaml"
stamp done
wait
