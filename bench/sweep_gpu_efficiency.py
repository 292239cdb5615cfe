"""Where a one-GPU sweep's wall-clock goes: timed training and validation against everything else.

Runs real sweeps through `run_sweep` (local Ray, MLflow and Optuna sqlite stores in one working
directory) of `--trials` trials of `gpt2_124m` at proxy scale, one trial at a time on one GPU, and
lays each trial out on the sweep's clock from its timeline (the time_* keys, orchestrator/trial.py):

  idle      the previous trial's final result (or run_sweep() called) -> this trial's setup:
            Tune, the driver's MLflow and Optuna writes, a fresh Ray actor if one is started
  startup   setup -> the trainer's `start` event: trial directory, process start (a warm
            worker: the job handed over), imports, CUDA, data, model build
  compile   the untimed warm-up (torch.compile; skipped by a warm worker on warmed shapes)
  train     timed training
  val       validation (the first one of a process compiles its graph) and checkpoints
  exit      `end` -> the process exit (or the warm worker's reply) seen, and the rest of the trial

The GPU's share: (train + val) / wall-clock, over the whole sweep and after the first trial (from
the first trial's final result to the last one's), and start-up per trial after the first (idle +
startup + compile: from the previous trial's end to this one's first timed step).

`--modes warm fresh` runs one sweep per mode in the same call, side by side: `warm` (the default:
each slot keeps a warm trainer worker, trainer/worker.py) and `fresh` (`--fresh-processes`: a new
process per trial). Every sweep of a call shares one compile cache (`--compile-cache`, default an
empty temp dir), so the first trial of the first sweep compiles cold and later ones hit the disk.

Example (one H100, a slice of the proxy corpus in .gpuslice):
  python bench/sweep_gpu_efficiency.py --trials 6 --steps 300 --data-dir .gpuslice --out eff.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from sweep_overhead import ROOT, create_stores, environment, write_space

from orchestrator.sweep import SweepOptions, prepare_space, run_sweep

PARTS = ["idle", "startup", "compile", "train", "val", "exit"]


def lay_out(records, t0: float, t1: float) -> list[dict]:
    """Each trial's parts in seconds on the sweep's clock (t0: run_sweep() called), in start order."""
    rows = sorted((r for r in records if "started_at" in r.last), key=lambda r: r.last["started_at"])
    out, previous_end = [], t0
    for rec in rows:
        x = rec.last
        at, trial = x["started_at"], x["time_trial_s"]
        row = {"number": rec.number, "status": rec.status, "worker_runs": x.get("worker_runs"),
               "at": at - t0, "idle": at - previous_end,
               "startup": x.get("time_spawn_s", 0.0) + x.get("time_startup_s", 0.0),
               "compile": x.get("time_compile_s", 0.0), "train": x.get("time_train_s", 0.0),
               "val": x.get("time_val_s", 0.0), "final_val_loss": x.get("final_val_loss")}  # fmt: skip
        row["exit"] = trial - row["startup"] - row["compile"] - row["train"] - row["val"]
        row["end"] = at + trial - t0
        out.append(row)
        previous_end = at + trial
    if out:
        out[-1]["teardown"] = t1 - previous_end
    return out


def shares(rows: list[dict], wall: float) -> dict:
    """The GPU's share in timed training and validation, whole sweep and after the first trial."""
    busy = [r["train"] + r["val"] for r in rows]
    out = {"wall_s": wall, "busy_fraction": sum(busy) / wall}
    if len(rows) > 1:
        first_end, last_end = rows[0]["end"], rows[-1]["end"]
        later = rows[1:]
        out.update({
            "busy_fraction_after_first": sum(busy[1:]) / (last_end - first_end),
            "startup_after_first_s": stats([r["idle"] + r["startup"] + r["compile"] for r in later]),
            "train_fraction_after_first": sum(r["train"] for r in later) / (last_end - first_end),
        })  # fmt: skip
    return out


def stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "max": max(values), "min": min(values)}


def report(mode: str, rows: list[dict], s: dict) -> str:
    lines = [f"{mode}: {len(rows)} trials in {s['wall_s']:.1f} s; training + validation "
             f"{s['busy_fraction']:.1%} of the GPU's wall-clock"]
    if "busy_fraction_after_first" in s:
        st = s["startup_after_first_s"]
        lines.append(f"  after the first trial: {s['busy_fraction_after_first']:.1%} "
                     f"(training alone {s['train_fraction_after_first']:.1%}); start-up per trial "
                     f"{st['mean']:.1f} s mean, {st['max']:.1f} s max")
    lines.append("  " + f"{'trial':>5} {'status':<10}{'reused':>7}" + "".join(f"{p:>9}" for p in PARTS)
                 + f"{'val loss':>10}")
    for r in rows:
        loss = r["final_val_loss"]
        lines.append("  " + f"{r['number']!s:>5} {r['status']:<10}{r['worker_runs']!s:>7}"
                     + "".join(f"{r[p]:>9.2f}" for p in PARTS)
                     + (f"{loss:>10.4f}" if isinstance(loss, float) else f"{'-':>10}"))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=6, help="trials per sweep (default 6)")
    p.add_argument("--steps", type=int, default=300, help="schedule.num_iterations of each trial (default 300)")
    p.add_argument("--modes", nargs="+", choices=["warm", "fresh"], default=["warm"],
                   help="one sweep per mode, in this order (default: warm)")
    p.add_argument("--data-dir", type=Path, default=ROOT / ".gpuslice", help="*train*.bin and *val*.bin shards")
    p.add_argument("--val-tokens", type=int, default=1_048_576)
    p.add_argument("--eval-every", type=int, default=50, help="validation every N steps (default 50, as lr.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra trainer override")
    p.add_argument("--compile-cache", type=Path, help="the sweeps' compile cache (default: an empty temp dir)")
    p.add_argument("--preset", default="gpt2_124m", help="trainer preset (tiny on CPU: a smoke test of this script)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = p.parse_args()
    args.gpus_per_trial = 1
    shapes = ["schedule.batch=[{until: 1.0, tokens: 131072}]", "schedule.seq_len=[{until: 1.0, tokens: 32768}]"]
    # lr.yaml's proxy-scale shapes, unless --set says otherwise
    args.set = [*(shapes if args.preset == "gpt2_124m" else []), f"eval.every={args.eval_every}", *args.set]

    env, results = environment(args), []
    with tempfile.TemporaryDirectory(prefix="sweep-gpu-eff-") as tmp:
        work = Path(tmp)
        cache = str(args.compile_cache or work / "compile-cache")
        tracking, storage, _ = create_stores(work)
        for mode in args.modes:
            name = f"eff-{mode}-{int(time.time())}"
            print(f"== {name}: {args.trials} trials x {args.steps} steps of {args.preset} on {args.device}", flush=True)
            space = prepare_space(write_space(work / f"{name}.yaml", args, concurrency=1))
            options = SweepOptions(name=name, workdir=work, tracking_uri=tracking, storage=storage,
                                   fresh_processes=mode == "fresh", compile_cache=cache)
            t0 = time.time()
            result = run_sweep(space, options)
            t1 = time.time()
            rows = lay_out(result.records, t0, t1)
            s = shares(rows, t1 - t0)
            results.append({"mode": mode, **s, "rows": rows})
            print("\n" + report(mode, rows, s) + "\n", flush=True)
    if args.out:
        args.out.write_text(json.dumps({**env, "steps": args.steps, "sets": args.set, "sweeps": results}, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
