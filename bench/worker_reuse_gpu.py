"""Does a reused warm worker change results on the GPU? The same run, fresh and reused, repeated.

On the CPU a run in a reused worker matches a fresh process bit for bit (tests/test_worker.py).
GPU kernels are not bit-reproducible from run to run, so here the question is statistical: the
same config runs `--runs` times in fresh processes (`python -m trainer`) and `--runs` times as
jobs of one warm worker that first ran a different config (another seed and learning rate). If
reuse changes nothing, the two groups' val losses are draws from one distribution: the gap
between group means is of the order of the spread within each group.

Example (one H100, a slice of the proxy corpus in .gpuslice):
  python bench/worker_reuse_gpu.py --runs 3 --steps 100 --data-dir .gpuslice --out reuse.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.launch import WarmWorker, compile_cache_env, trainer_args  # noqa: E402


def run_args(data: Path, steps: int, events: Path, *extra: str) -> list[str]:
    """`python -m trainer` arguments of one proxy-scale gpt2_124m run (the shapes of
    bench/sweep_gpu_efficiency.py's documented runs); `extra`: more KEY=VALUE overrides."""
    sets = {
        "data.train_files": f"{data}/*train*.bin", "data.val_files": f"{data}/*val*.bin", "data.epochs": 8,
        "data.val_tokens": 1048576, "schedule.num_iterations": steps, "eval.every": 50,
        "schedule.batch": "[{until: 1.0, tokens: 65536}]", "schedule.seq_len": "[{until: 1.0, tokens: 32768}]",
    }  # fmt: skip
    return trainer_args("gpt2_124m", [*(f"{k}={v}" for k, v in sets.items()), *extra], events)


def val_losses(events: Path) -> list[float]:
    return [e["val_loss"] for e in map(json.loads, events.read_text().splitlines()) if e["event"] == "val"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs per group (default 3)")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--data-dir", type=Path, default=ROOT / ".gpuslice")
    p.add_argument("--compile-cache", type=Path, help="default: an empty temp dir")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    data = args.data_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="worker-reuse-") as tmp:
        work = Path(tmp)
        env = compile_cache_env(args.compile_cache or work / "cache")
        groups: dict[str, list[list[float]]] = {"fresh": [], "reused": []}
        for i in range(args.runs):
            events = work / f"fresh_{i}.jsonl"
            subprocess.run([sys.executable, "-m", "trainer", *run_args(data, args.steps, events)], cwd=ROOT,
                           env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
            groups["fresh"].append(val_losses(events))
            print(f"fresh {i}: {groups['fresh'][-1]}", flush=True)
        worker = WarmWorker(ROOT, log=work / "worker.log", env=env)
        other = run_args(data, args.steps, work / "other.jsonl", "runtime.seed=1", "optim.muon_lr=0.02")
        assert worker.submit(other, work / "other.log").wait(None) == 0, (work / "other.log").read_text()
        for i in range(args.runs):
            events = work / f"reused_{i}.jsonl"
            code = worker.submit(run_args(data, args.steps, events), work / f"reused_{i}.log").wait(None)
            assert code == 0, (work / f"reused_{i}.log").read_text()
            groups["reused"].append(val_losses(events))
            print(f"reused {i}: {groups['reused'][-1]}", flush=True)
        worker.close()
    final = {g: [losses[-1] for losses in runs] for g, runs in groups.items()}
    summary = {g: {"mean": statistics.fmean(v), "stdev": statistics.stdev(v) if len(v) > 1 else 0.0,
                   "min": min(v), "max": max(v)} for g, v in final.items()}  # fmt: skip
    gap = summary["reused"]["mean"] - summary["fresh"]["mean"]
    for g, s in summary.items():
        print(f"{g:>7}: final val loss mean {s['mean']:.5f}, stdev {s['stdev']:.5f}, range {s['min']:.5f}-{s['max']:.5f}")
    print(f"reused - fresh: {gap:+.5f}")
    if args.out:
        args.out.write_text(json.dumps({"steps": args.steps, "runs": groups, "summary": summary, "gap": gap}, indent=1) + "\n")


if __name__ == "__main__":
    main()
