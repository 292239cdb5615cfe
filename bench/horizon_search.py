"""Does horizon halving find good configs for less compute? Four searches on the same budget.

Each search is a real sweep through `run_sweep` (Ray trials, Optuna and MLflow sqlite stores in a
temporary directory) over the same space (Muon LR, Adam LR, cooldown fraction) on the proxy
corpus, repeated with several sampler seeds:

  random    random search, every trial a full-length run
  tpe       TPE, every trial a full-length run (no early stopping)
  asha      TPE + ASHA (`scheduler: asha`, grace 0.25, reduction factor 2): runs cut short
  horizon   TPE + horizon halving (`scheduler: horizon`, rungs 0.25 / 0.5 / 1.0, factor 2):
            complete runs at each horizon, the best half of each rung run again, longer

Compute is counted in training tokens: the sum over every run (pruned, failed and short ones
included) of the tokens it trained on, i.e. steps run x tokens per step; it is reported in
full-run units (one full-length run's tokens). Every search is planned to the same budget:
random and TPE run `--full-runs` trials; ASHA and horizon get as many configs as that budget
pays for at their expected cost per config (0.5 and 0.75 full runs with these rungs), and the
tokens they really spent are reported next to the result.

What is compared is the best val loss of a FULL-LENGTH run (a pruned ASHA trial or a short rung
does not count), after the whole budget and, for the acceptance check, when the search had spent
at most 1/3 of random search's budget (runs in the order they finished, cost summed).

Examples:
  python bench/horizon_search.py --seeds 3 --out horizon_search.json           # CPU, tiny
  python bench/horizon_search.py --preset gpt2_124m --device cuda --seeds 3 --full-runs 16
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the driver, and Ray's workers (Ray hands them the driver's sys.path)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the trainers

METHODS = ("random", "tpe", "asha", "horizon")
RUNGS = (0.25, 0.5, 1.0)
FACTOR = 2
COST_PER_CONFIG = {"random": 1.0, "tpe": 1.0, "asha": 0.5, "horizon": 0.75}  # expected, in full runs
TOLERANCE = 0.01  # acceptance: within this of the best val loss any method found

PRESETS = {  # what one trial is, per preset
    "tiny": dict(steps=32, set={"eval.every": 8, "data.val_tokens": 8192, "runtime.threads": 1}, gpus=0, cpus=1),
    "gpt2_124m": dict(steps=300, set={
        "data.epochs": 3, "data.val_tokens": 1048576, "eval.every": 75,
        "schedule.batch": [{"until": 1.0, "tokens": 131072}], "schedule.seq_len": [{"until": 1.0, "tokens": 32768}],
        "schedule.muon_momentum": {"start": 0.85, "end": 0.95, "steps": 50},
    }, gpus=1, cpus=8),
}


def space_yaml(method: str, preset: str, device: str, data: Path, configs: int, seed: int) -> str:
    p = PRESETS[preset]
    base_set = {**p["set"], "runtime.device": device, "data.train_files": str(data / "proxy_train_*.bin"),
                "data.val_files": str(data / "proxy_val_*.bin")}
    scheduler = {
        "random": "none", "tpe": "none",
        "asha": f"{{name: asha, grace: {RUNGS[0]}, reduction_factor: {FACTOR}, max_t: 1.0}}",
        "horizon": f"{{name: horizon, rungs: [{', '.join(map(str, RUNGS))}], reduction_factor: {FACTOR}}}",
    }[method]
    sampler = f"{{name: random, seed: {seed}}}" if method == "random" else f"{{name: tpe, seed: {seed}, startup_trials: 4}}"
    sets = "\n".join(f"    {k}: {json.dumps(v)}" for k, v in base_set.items())
    return f"""\
base:
  config: {preset}
  set:
{sets}
params:
  optim.muon_lr: {{float: [0.005, 0.2], log: true}}
  optim.adam_lr: {{float: [0.001, 0.05], log: true}}
  schedule.lr.cooldown_frac: {{float: [0.1, 0.8]}}
budget: {{trials: {configs}, steps: {p['steps']}}}
sampler: {sampler}
scheduler: {scheduler}
resources: {{gpus: {p['gpus']}, cpus: {p['cpus']}}}
"""


def runs_of(result, full_tokens: int) -> list[dict]:
    """Each run of a sweep: when it finished, what it cost (full runs), its full-length loss if any."""
    out = []
    for r in result.records:
        full = r.status == "completed" and (r.rung is None or r.rung.fidelity == 1.0)
        out.append({
            "number": r.number, "status": r.status, "fidelity": r.rung.fidelity if r.rung else None,
            "finished": r.finished, "cost": (r.last.get("tokens") or 0) / full_tokens,
            "full_length_loss": r.final_val_loss if full and math.isfinite(r.final_val_loss) else None,
            "final_val_loss": r.final_val_loss if math.isfinite(r.final_val_loss) else None,
        })
    return sorted(out, key=lambda x: x["finished"] or 0)


def best_within(runs: list[dict], budget: float) -> float | None:
    """The best full-length val loss among the runs finished before the cost summed past `budget`."""
    spent, best = 0.0, None
    for run in runs:
        spent += run["cost"]
        if spent > budget + 1e-9:
            break
        if run["full_length_loss"] is not None:
            best = run["full_length_loss"] if best is None else min(best, run["full_length_loss"])
    return best


def run_one(method: str, args, seed: int, work: Path, full_tokens: int) -> dict:
    from rich.console import Console

    from orchestrator.sweep import SweepOptions, prepare_space, run_sweep

    configs = max(round(args.full_runs / COST_PER_CONFIG[method]), FACTOR ** (len(RUNGS) - 1))
    path = work / f"{method}-{seed}.yaml"
    path.write_text(space_yaml(method, args.preset, args.device, args.data, configs, seed))
    t0 = time.time()
    with open(os.devnull, "w") as quiet:
        result = run_sweep(prepare_space(path), SweepOptions(name=f"{method}-{seed}", workdir=work),
                           console=Console(file=quiet))
    runs = runs_of(result, full_tokens)
    losses = [r["full_length_loss"] for r in runs if r["full_length_loss"] is not None]
    return {"method": method, "seed": seed, "configs": configs, "runs": runs, "wall_s": time.time() - t0,
            "cost": sum(r["cost"] for r in runs), "best": min(losses) if losses else None}


def summary(results: list[dict]) -> str:
    """A Markdown table per method (mean and spread over seeds) and the acceptance check per seed."""
    seeds = sorted({r["seed"] for r in results})
    by = {(r["method"], r["seed"]): r for r in results}
    lines = ["| method | configs | runs | budget spent (full runs) | best full-length val loss | at 1/3 of random's budget | wall (s) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m in METHODS:
        rs = [by[(m, s)] for s in seeds if (m, s) in by]
        if not rs:
            continue
        third = [best_within(r["runs"], by[("random", r["seed"])]["cost"] / 3) for r in rs if ("random", r["seed"]) in by]
        lines.append(f"| {m} | {rs[0]['configs']} | {_spread([len(r['runs']) for r in rs], 1)} | "
                     f"{_spread([r['cost'] for r in rs], 2)} | {_spread([r['best'] for r in rs], 4)} | "
                     f"{_spread(third, 4)} | {_spread([r['wall_s'] for r in rs], 0)} |")
    lines += ["", "| seed | best of any method | horizon at 1/3 of random's budget | within 0.01 |", "|---|---:|---:|---|"]
    for s in seeds:
        bests = [by[(m, s)]["best"] for m in METHODS if (m, s) in by and by[(m, s)]["best"] is not None]
        if ("horizon", s) not in by or ("random", s) not in by or not bests:
            continue
        h = best_within(by[("horizon", s)]["runs"], by[("random", s)]["cost"] / 3)
        ok = h is not None and h <= min(bests) + TOLERANCE
        lines.append(f"| {s} | {min(bests):.4f} | {'none' if h is None else f'{h:.4f}'} | {'yes' if ok else 'no'} |")
    return "\n".join(lines)


def _spread(xs: list, digits: int) -> str:
    """mean ± sample std (min–max) over seeds; 'none' counts for a seed without a value."""
    vals = [x for x in xs if x is not None]
    missing = len(xs) - len(vals)
    if not vals:
        return "none"
    text = f"{statistics.mean(vals):.{digits}f}"
    if len(vals) > 1:
        text += f" ± {statistics.stdev(vals):.{digits}f} ({min(vals):.{digits}f}–{max(vals):.{digits}f})"
    return text + (f", {missing} none" if missing else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the proxy corpus' directory")
    ap.add_argument("--seeds", type=int, default=3, help="repeats, each with its own sampler seed")
    ap.add_argument("--full-runs", type=int, default=8, help="the budget, in full-length runs (random and TPE's trials)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--out", type=Path, help="write every run of every search here (JSON)")
    args = ap.parse_args()
    args.data = args.data.resolve()

    from orchestrator.sweep import init_ray
    from trainer.config import load_config
    from trainer.schedules import Schedules

    p = PRESETS[args.preset]
    cfg = load_config(args.preset, [f"schedule.num_iterations={p['steps']}",
                                    *(f"{k}={json.dumps(v)}" for k, v in p["set"].items())])
    sched = Schedules(cfg.schedule, cfg.model)
    full_tokens = sum(sched.batch_tokens(s) for s in range(cfg.schedule.num_iterations))
    started = init_ray(None)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="horizon_search_") as tmp:
            for seed in range(args.seeds):
                for method in args.methods:  # interleaved, so a slow stretch of the machine touches each alike
                    r = run_one(method, args, seed, Path(tmp), full_tokens)
                    results.append(r)
                    print(f"seed {seed} {method:<8} runs {len(r['runs']):>3}  spent {r['cost']:.2f} full runs  "
                          f"best full-length val loss {r['best']}  {r['wall_s']:.0f} s", flush=True)
    finally:
        if started:
            import ray

            ray.shutdown()
    print()
    print(summary(results))
    if args.out:
        meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "host": platform.node(),
                "cpus": os.cpu_count(), "argv": sys.argv, "full_run_tokens": full_tokens}
        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))


if __name__ == "__main__":
    main()
