#!/usr/bin/env bash
# What bench/script_record_gpu.sh has written so far, into OUT_DIR: the stamps, each step's log
# tail, and the summary table (bench/script_record_summary.py).   usage: WORK OUT_DIR
work=$1; out=$2
cp "$work/stamps.txt" "$out/" 2>/dev/null
for f in "$work"/*.log; do tail -c 20000 "$f" > "$out/$(basename "$f")"; done
python "$(dirname "$0")/script_record_summary.py" "$work" > "$out/summary.md" 2> "$out/summary.err"
cat "$out/stamps.txt" "$out/summary.md" 2>/dev/null
