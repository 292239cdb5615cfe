"""Our trainer beside modded-nanogpt's own 2025-08-23 record code, on the same GPU and data.

The reference is the code above the first `=====` line of
`records/track_1_short/2025-08-23_SparseAttnGate/*.txt` in a local copy of the public
repository, saved to a git-ignored file (see docs/benchmarks.md); it is never committed.
Only its data path (DATA_PATH, a folder of symlinks), step count and validation size are
changed. Its loader neither cycles nor wraps, so the train shard appears K times in its
glob and the val shard twice (it reads 8 micro-batches ahead).

Example (one H100; cold = empty compile caches, warm = the caches of the cold run):
  python bench/reference_side_by_side.py --reference .ref/train_gpt_2025_08_23.py \\
      --data-dir .gpudata --runs ours:cold,ours:warm,ref:cold,ref:warm --results results.jsonl
  python bench/reference_side_by_side.py --table results.jsonl
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from runlog import RunLog, bf16_matmul_tflops, run_and_time  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOKENS_PER_STEP = 8 * 48 * 1024


def reference_command(reference: Path, data_dir: Path, work: Path, steps: int, val_tokens: int, passes: int) -> tuple[list[str], dict]:
    """A patched copy of the reference in `work`, and the environment that points it at the proxy data."""
    code = reference.read_text()
    for name, value in (("num_iterations", steps), ("val_tokens", val_tokens)):
        code, n = re.subn(rf"^(\s+{name} = )\d+", rf"\g<1>{value}", code, count=1, flags=re.M)
        if n != 1:
            sys.exit(f"{reference}: found no '{name} = <int>' literal to set")
    script = work / "train_gpt.py"
    script.write_text(code)
    (work / "logs" / "final").mkdir(parents=True)  # its run ids are 'final/<uuid>' under logs/
    shards = work / "data" / "fineweb10B"
    shards.mkdir(parents=True, exist_ok=True)
    train, val = sorted(data_dir.glob("*train*.bin"))[0], sorted(data_dir.glob("*val*.bin"))[0]
    for i in range(passes):
        (shards / f"fineweb_train_{i + 1:06d}.bin").symlink_to(train.resolve())
    for i in range(2):
        (shards / f"fineweb_val_{i:06d}.bin").symlink_to(val.resolve())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", str(script)]
    return cmd, {"DATA_PATH": str(work)}


def our_command(data_dir: Path, steps: int, val_tokens: int, passes: int, extra: list[str]) -> list[str]:
    sets = [
        f"data.train_files={data_dir.resolve()}/*train*.bin",
        f"data.val_files={data_dir.resolve()}/*val*.bin",
        f"data.val_tokens={val_tokens}",
        f"data.epochs={passes}",
        f"schedule.num_iterations={steps}",
        *extra,
    ]
    return [sys.executable, "-m", "trainer", "--config", "gpt2_124m", *(a for s in sets for a in ("--set", s))]


@functools.cache
def matmul_params() -> int:
    """Parameters of the record model's matmuls (hidden matrices and lm_head): 6 FLOPs each per token."""
    from trainer.config import TrainConfig
    from trainer.model import GPT

    groups = GPT(TrainConfig().model, max_seq_len=128).param_groups()
    return sum(p.numel() for p in groups["hidden"] + groups["head"])


def summarize(log: RunLog, which: str, cache: str, peak_tflops: float) -> dict:
    step_ms = log.median_step_ms() if log.step_times_ms() else float("nan")
    tok_s = TOKENS_PER_STEP / (step_ms / 1000)
    return dict(
        label=log.label, which=which, cache=cache, returncode=log.returncode,
        median_step_ms=step_ms, tokens_per_s=tok_s,
        mfu=6 * matmul_params() * tok_s / (peak_tflops * 1e12),
        peak_tflops=peak_tflops, startup_s=log.startup_s, wall_s=log.wall_s,
        final_val_loss=log.final_val_loss(), peak_memory_mib=log.peak_memory_mib,
        val_losses=log.val_losses, step_times_ms=log.step_times_ms(),
    )


def table(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    head = f"{'run':<14}{'step ms':>9}{'tok/s':>10}{'MFU':>7}{'start-up s':>12}{'val loss':>10}{'peak MiB':>10}"
    lines = [head]
    for r in rows:
        val = f"{r['final_val_loss']:.4f}" if r["final_val_loss"] is not None else "-"
        start = f"{r['startup_s']:.0f}" if r["startup_s"] is not None else "-"
        lines.append(
            f"{r['label']:<14}{r['median_step_ms']:>9.1f}{r['tokens_per_s']:>10.0f}{r['mfu']:>7.1%}"
            f"{start:>12}{val:>10}{r['peak_memory_mib'] or '-':>10}"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", type=Path, help="the record's code (above the first ===== line)")
    p.add_argument("--data-dir", type=Path, default=ROOT / ".gpudata", help="holds *train*.bin and *val*.bin shards")
    p.add_argument("--runs", default="ours:cold,ours:warm", help="comma list of ours|ref : cold|warm")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--val-tokens", type=int, default=1_048_576)
    p.add_argument("--passes", type=int, default=3, help="passes over the train shard (the reference does not cycle)")
    p.add_argument("--cache-root", type=Path, default=Path(tempfile.gettempdir()) / "speedrun-bench-cache")
    p.add_argument("--results", type=Path, default=Path("results.jsonl"), help="appends one JSON line per run")
    p.add_argument("--logs", type=Path, default=None, help="folder for the full timestamped logs")
    p.add_argument("--set", dest="extra", action="append", default=[], help="extra override for our trainer")
    p.add_argument("--table", type=Path, help="only print the table of a results file")
    args = p.parse_args()
    if args.table:
        print(table(args.table))
        return
    peak = bf16_matmul_tflops()
    print(f"measured bf16 matmul peak: {peak:.0f} TFLOP/s", flush=True)
    for run in args.runs.split(","):
        which, cache = run.split(":")
        cache_dir = args.cache_root / which
        if cache == "cold" and cache_dir.exists():
            shutil.rmtree(cache_dir)
        env = {"TORCHINDUCTOR_CACHE_DIR": str(cache_dir / "inductor"), "TRITON_CACHE_DIR": str(cache_dir / "triton")}
        log = args.logs / f"{which}_{cache}.log" if args.logs else None
        if which == "ref":
            if not args.reference:
                sys.exit("--reference is needed for ref runs")
            work = Path(tempfile.mkdtemp(prefix="ref-"))
            cmd, extra_env = reference_command(args.reference, args.data_dir, work, args.steps, args.val_tokens, args.passes)
            result = run_and_time(f"ref:{cache}", cmd, cwd=work, env={**env, **extra_env}, log=log)
        else:
            cmd = our_command(args.data_dir, args.steps, args.val_tokens, args.passes, args.extra)
            result = run_and_time(f"ours:{cache}", cmd, cwd=ROOT, env=env, log=log)
        row = summarize(result, which, cache, peak)
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(table(args.results), flush=True)


if __name__ == "__main__":
    main()
