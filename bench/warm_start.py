"""What a warm worker's run start-up costs when it builds the model and when it restores it.

A worker keeps the last build's initial weights and RNG state (trainer/warm.py `Snapshot`): a run
whose model config and seed equal the last build's restores them instead of building again (the
same weights and RNG state, bit for bit: tests/test_worker.py). This runs `--pairs` pairs of jobs
in one worker, each pair a new seed (built) then the same seed with another learning rate
(restored), and reports each job's `start` event seconds: from the job's start to its model
ready, data loading included. The first pair pays the process's first build and is left out.
Runs are one step long: only their start matters here.

Examples:
  python bench/warm_start.py --pairs 3                                   # CPU, gpt2_124m's module
  python bench/warm_start.py --pairs 3 --device cuda --data-dir .gpuslice --out warm_start.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator.launch import WarmWorker, trainer_args  # noqa: E402


def job(data: Path, device: str, seed: int, lr: float, events: Path) -> list[str]:
    """One step of gpt2_124m with short sequences: the full module, little else."""
    sets = {
        "data.train_files": f"{data}/*train*.bin", "data.val_files": f"{data}/*val*.bin",
        "data.val_seq_len": 1024, "data.val_tokens": 1024, "schedule.num_iterations": 1, "eval.every": 0,
        "schedule.batch": "[{until: 1.0, tokens: 1024}]", "schedule.seq_len": "[{until: 1.0, tokens: 1024}]",
        "runtime.device": device, "runtime.seed": seed, "optim.muon_lr": lr,
    }  # fmt: skip
    return trainer_args("gpt2_124m", [f"{k}={v}" for k, v in sets.items()], events)


def start_event(events: Path) -> dict:
    return next(e for e in map(json.loads, events.read_text().splitlines()) if e["event"] == "start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="warm-start-") as tmp:
        work = Path(tmp)
        worker = WarmWorker(ROOT, log=work / "worker.log")
        try:
            for i in range(args.pairs + 1):
                for lr in (0.05, 0.03):
                    events = work / f"{i}-{lr}.jsonl"
                    code = worker.submit(job(args.data_dir.resolve(), args.device, i, lr, events), work / "job.log").wait(None)
                    if code != 0:
                        sys.exit(f"job {i} (lr {lr}) exited {code}; see {work / 'job.log'}:\n{(work / 'job.log').read_text()[-2000:]}")
                    start = start_event(events)
                    rows.append({"pair": i, "seed": i, "lr": lr, "restored": start["weights_restored"],
                                 "seconds": start["seconds"], "data_seconds": start["data_seconds"]})
                    print(f"seed {i} lr {lr}: {'restored' if start['weights_restored'] else 'built   '} "
                          f"start {start['seconds']:.2f} s (data {start['data_seconds']:.2f} s)", flush=True)
        finally:
            worker.close()
    later = [r for r in rows if r["pair"] > 0]
    for restored in (False, True):
        xs = [r["seconds"] for r in later if r["restored"] is restored]
        print(f"{'restored' if restored else 'built'}: start {statistics.mean(xs):.2f} s mean over {len(xs)} "
              f"(min {min(xs):.2f}, max {max(xs):.2f})")
    if args.out:
        args.out.write_text(json.dumps({"argv": sys.argv, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
