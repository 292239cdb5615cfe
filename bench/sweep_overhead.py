"""What the sweep driver costs: real sweeps through `run_sweep`, timed trial by trial.

Each sweep runs N trials of one searched learning rate (TPE, so Optuna really proposes and
records every trial) on a local Ray that the sweep starts, with MLflow and Optuna sqlite stores
in one working directory (created first and timed apart: once per directory), as `speedrun
sweep` does. Each trial's final result lays out its timeline (the time_* keys, documented in
orchestrator/trial.py); the bench adds what only the sweep shows:

  sweep start-up   run_sweep() called -> the first trial's setup(): Ray's start, imports, the
                   study and the experiment, the first Ray actor
  driver           the trial as the driver sees it (on_trial_start -> on_trial_complete, the
                   MLflow run's wall_time_s); in_trial = driver - the trainer's lifetime
  between          a trial's final result -> the next trial's setup(): Tune, the driver's MLflow
                   and Optuna writes, the slot's actor taking its next trial (concurrency
                   1 only, where trials follow each other)
  sweep tear-down  the last final result -> run_sweep() returned
  overhead         per trial: (trials at once x sweep wall - the trainers' lifetimes) / trials,
                   the slot-seconds not spent in a trainer; at concurrency 1 also without the
                   sweep's start-up and tear-down (setup() to the next setup() - lifetime)

CPU (the default, `--preset tiny`): each trial is cut to almost no work (one step of 128
tokens, no warm-up, one validation of 128 tokens), so a trainer's lifetime is mostly Python and
torch start-up. Any other preset runs as configured for `--steps` steps on the shards in
`--data-dir` (validation only at the end, on `--val-tokens` tokens); on a GPU the bench reports
the share of the GPU's wall-clock spent in timed training.

Ray, Optuna and MLflow may come from PYTHONPATH: this checkout is put on the path of the driver,
the Ray workers and the trainers, so no `pip install -e .` is needed.

Examples:
  python bench/sweep_overhead.py --trials 8 --concurrency 1 2 --out sweep_overhead.json
  python bench/sweep_overhead.py --preset gpt2_124m --device cuda --steps 50 --trials 4 \\
      --data-dir .gpudata --out sweep_gpu.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the driver, and Ray's workers (Ray hands them the driver's sys.path)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the trainers

from orchestrator.sweep import SweepOptions, prepare_space, run_sweep  # noqa: E402

# One trainer step of 128 tokens and one validation of 128 tokens: the least `tiny` accepts.
ALMOST_NO_WORK = {
    "schedule.batch": [{"until": 1.0, "tokens": 128}],
    "schedule.seq_len": [{"until": 1.0, "tokens": 128}],
    "data.val_seq_len": 128,
    "data.val_tokens": 128,
    "eval.every": 0,
    "runtime.warmup_steps": 0,
}
# The phases of a trial in the order they happen (orchestrator/trial.py documents each), then
# the driver's view of it and its share of the sweep (see the module docstring).
PHASES = ["spawn", "startup", "import", "data", "build", "compile", "train", "val", "exit", "process", "trial"]
COLUMNS = ["at", *PHASES, "driver", "in_trial", "between"]


def base_set(args: argparse.Namespace, threads: int) -> dict:
    """The trainer overrides every trial shares."""
    sets: dict = {"runtime.device": args.device}
    if args.preset == "tiny":
        sets.update(ALMOST_NO_WORK)
    else:
        data = args.data_dir.resolve()
        sets.update({
            "data.train_files": f"{data}/*train*.bin", "data.val_files": f"{data}/*val*.bin",
            "data.val_tokens": args.val_tokens, "data.epochs": 3, "eval.every": 0,
        })  # fmt: skip
    if args.device == "cpu":
        sets["runtime.threads"] = threads  # trials at once share the cores instead of each taking all
    for item in args.set:
        key, _, value = item.partition("=")
        sets[key] = yaml.safe_load(value)
    return sets


def write_space(path: Path, args: argparse.Namespace, concurrency: int) -> Path:
    """A space of `args.trials` trials whose resources let `concurrency` of them run at once."""
    cpus = len(os.sched_getaffinity(0)) / concurrency
    space = {
        "base": {"config": args.preset, "set": base_set(args, max(1, int(cpus)))},
        "params": {"optim.muon_lr": {"float": [0.03, 0.06], "log": True}},
        "budget": {"trials": args.trials, "steps": args.steps},
        "sampler": {"name": "tpe", "seed": 0},
        "resources": {"gpus": args.gpus_per_trial if args.device == "cuda" else 0, "cpus": cpus},
    }
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def create_stores(work: Path) -> tuple[str, str, float]:
    """The MLflow and Optuna sqlite stores in `work`, created as a first sweep there would;
    returns their URIs and the seconds that took (schema creation)."""
    import optuna
    from mlflow import MlflowClient

    tracking, storage = f"sqlite:///{work}/mlflow.db", f"sqlite:///{work}/optuna.db"
    t = time.time()
    MlflowClient(tracking).search_experiments()
    optuna.storages.RDBStorage(storage)
    return tracking, storage, time.time() - t


def trial_row(rec, t0: float) -> dict:
    """One trial's status and timeline in seconds (`at`: its setup() from the sweep's start)."""
    last = rec.last
    row = {"number": rec.number, "status": rec.status}
    if "started_at" in last:
        row["at"] = last["started_at"] - t0
    row.update({p: last[f"time_{p}_s"] for p in PHASES if f"time_{p}_s" in last})
    row["driver"] = rec.duration_s  # on_trial_start -> on_trial_complete: MLflow's wall_time_s
    if "process" in row:
        row["in_trial"] = row["driver"] - row["process"]
    return row


def most_at_once(rows: list[dict]) -> int:
    """How many trials' setup()-to-result spans overlapped at most."""
    edges = sorted([(r["at"], 1) for r in rows] + [(r["at"] + r["trial"], -1) for r in rows])
    now = most = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start
        now += step
        most = max(most, now)
    return most


def summarize(result, t0: float, t1: float, concurrency: int) -> dict:
    """The sweep's numbers: wall, trials/min, fixed and per-trial overheads, phase means and medians."""
    rows = sorted((trial_row(r, t0) for r in result.records), key=lambda r: r.get("at", float("inf")))
    timed = [r for r in rows if "process" in r and "at" in r]
    wall = t1 - t0
    out = {
        "concurrency": concurrency, "trials": len(rows), "completed": sum(r["status"] == "completed" for r in rows),
        "wall_s": wall, "trials_per_min": 60 * len(rows) / wall,
    }  # fmt: skip
    if not timed:
        return {**out, "rows": rows}
    slots = most_at_once(timed)
    pairs = list(zip(timed, timed[1:])) if slots == 1 else []  # trials that follow each other
    for r, nxt in pairs:
        r["between"] = nxt["at"] - (r["at"] + r["trial"])
    cycles = [nxt["at"] - r["at"] - r["process"] for r, nxt in pairs]  # setup() to next setup(), minus the trainer
    out.update({
        "slots_seen": slots,
        "sweep_startup_s": timed[0]["at"],
        "sweep_teardown_s": wall - max(r["at"] + r["trial"] for r in timed),
        "overhead_per_trial_s": (slots * wall - sum(r["process"] for r in timed)) / len(timed),
        "steady_overhead_per_trial_s": statistics.fmean(cycles) if cycles else None,
        "train_fraction": sum(r.get("train", 0.0) for r in timed) / (slots * wall),
        "phases": {p: stats([r[p] for r in timed if p in r]) for p in COLUMNS[1:]},
        "rows": rows,
    })  # fmt: skip
    return out


def stats(values: list[float]) -> dict | None:
    """Mean and median, or None for no values."""
    return {"mean": statistics.fmean(values), "median": statistics.median(values)} if values else None


def report(s: dict) -> str:
    """A sweep's summary and its per-trial table, as text."""
    lines = [
        f"concurrency {s['concurrency']}: {s['trials']} trials ({s['completed']} completed) in {s['wall_s']:.1f} s, "
        f"{s['trials_per_min']:.2f} trials/min"
    ]
    if "phases" not in s:
        return "\n".join(lines + ["  no trial started a trainer"])
    steady = s["steady_overhead_per_trial_s"]
    lines += [
        f"  at once (seen): {s['slots_seen']}; "
        f"sweep start-up {s['sweep_startup_s']:.1f} s, tear-down {s['sweep_teardown_s']:.1f} s",
        f"  driver overhead per trial: {s['overhead_per_trial_s']:.2f} s over the whole sweep"
        + (f", {steady:.2f} s between start-up and tear-down" if steady is not None else ""),
        f"  timed training: {s['train_fraction']:.1%} of the wall-clock (x {s['slots_seen']} at once)",
        "",
        f"  {'phase':<10}{'mean s':>9}{'median s':>10}",
    ]
    lines += [f"  {name:<10}{st['mean']:>9.2f}{st['median']:>10.2f}" for name, st in s["phases"].items() if st]
    lines += ["", "  " + f"{'trial':>5} {'status':<10}" + "".join(f"{c:>9}" for c in COLUMNS)]
    for r in s["rows"]:
        cells = "".join(f"{r[c]:>9.2f}" if c in r else f"{'-':>9}" for c in COLUMNS)
        lines.append("  " + f"{r['number']!s:>5} {r['status']:<10}" + cells)
    return "\n".join(lines)


def environment(args: argparse.Namespace) -> dict:
    """Where and with what the numbers were taken."""
    versions = {}
    for pkg in ("torch", "ray", "optuna", "mlflow"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    gpu = None
    if args.device == "cuda":
        try:
            names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                   capture_output=True, text=True, timeout=30).stdout.split("\n")
            gpu = [n for n in names if n.strip()]
        except (OSError, subprocess.SubprocessError):  # no driver tools: the JSON says null
            pass
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "host": socket.gethostname(),
        "cpus": len(os.sched_getaffinity(0)), "gpus": gpu, "python": platform.python_version(), **versions,
        "command": " ".join(sys.argv), "load_average_before": os.getloadavg(),
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=8, help="trials per sweep (default 8)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1],
                   help="one sweep per value: trials at once (each gets cpus / value CPUs); default 1")
    p.add_argument("--preset", default="tiny", help="trainer preset; tiny is cut to almost no work (default)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--steps", type=int, default=1, help="schedule.num_iterations of each trial (default 1)")
    p.add_argument("--gpus-per-trial", type=int, default=1, help="with --device cuda (default 1)")
    p.add_argument("--data-dir", type=Path, default=ROOT / ".gpudata",
                   help="*train*.bin and *val*.bin shards, for presets other than tiny")
    p.add_argument("--val-tokens", type=int, default=1_048_576, help="for presets other than tiny")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra trainer override (repeatable)")
    p.add_argument("--workdir", type=Path,
                   help="keep the stores and trial directories here (default: a temp dir, removed)")
    p.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = p.parse_args()

    env = environment(args)
    sweeps = []
    with tempfile.TemporaryDirectory(prefix="sweep-overhead-") as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        tracking, storage, env["stores_created_s"] = create_stores(work)
        print(f"stores created in {env['stores_created_s']:.1f} s", flush=True)
        for i, c in enumerate(args.concurrency, 1):
            name = f"overhead-c{c}-{int(time.time())}"
            print(f"== sweep {i}/{len(args.concurrency)}: {name}, {args.trials} trials of {args.preset} "
                  f"({args.steps} step(s), {args.device}), concurrency {c}, in {work}", flush=True)
            space = prepare_space(write_space(work / f"{name}.yaml", args, c))
            options = SweepOptions(name=name, workdir=work, tracking_uri=tracking, storage=storage)
            t0 = time.time()
            result = run_sweep(space, options)
            sweeps.append(summarize(result, t0, time.time(), c))
            print("\n" + report(sweeps[-1]) + "\n", flush=True)
    env["load_average_after"] = os.getloadavg()
    if args.out:
        args.out.write_text(json.dumps({**env, "preset": args.preset, "device": args.device, "steps": args.steps,
                                        "sweeps": sweeps}, indent=1) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
