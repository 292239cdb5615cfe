"""Training throughput of our trainer on one GPU: step time, tokens/s, MFU, peak memory.

Runs `gpt2_124m` (393,216 tokens per step; 8 accumulation steps on one GPU) for a few
steps per variant on the proxy corpus, each variant a list of `--set` overrides, all in
one process tree on one warm inductor cache, and prints one row per variant. MFU counts
6 x (matmul parameters) FLOPs per token against the bf16 matmul rate measured here.

Example:
  python bench/trainer_throughput.py --data-dir .gpudata --steps 40 \\
      --variant default= --variant no_fp8_head=model.fp8_head=false
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from reference_side_by_side import ROOT, our_command, summarize, table  # noqa: E402
from runlog import bf16_matmul_tflops, run_and_time  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=ROOT / ".gpudata")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--val-tokens", type=int, default=1_048_576)
    p.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VALUE[,KEY=VALUE]",
                   help="a named list of overrides; 'default=' for none (repeatable)")
    p.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "speedrun-bench-cache" / "ours")
    p.add_argument("--results", type=Path, default=Path("throughput.jsonl"))
    args = p.parse_args()
    peak = bf16_matmul_tflops()
    print(f"measured bf16 matmul peak: {peak:.0f} TFLOP/s", flush=True)
    env = {"TORCHINDUCTOR_CACHE_DIR": str(args.cache_dir / "inductor"), "TRITON_CACHE_DIR": str(args.cache_dir / "triton")}
    for variant in args.variant or ["default="]:
        name, _, sets = variant.partition("=")
        extra = [s for s in sets.split(",") if s]
        cmd = our_command(args.data_dir, args.steps, args.val_tokens, passes=2, extra=extra)
        row = summarize(run_and_time(name, cmd, cwd=ROOT, env=env), "ours", "warm", peak)
        with open(args.results, "a") as f:
            f.write(json.dumps({**row, "overrides": extra}) + "\n")
    print(table(args.results))


if __name__ == "__main__":
    main()
