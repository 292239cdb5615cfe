"""Does horizon halving find as good a config as the other searches on a third of their compute?

Each search is a real sweep through `run_sweep` (Ray trials, Optuna and MLflow sqlite stores in a
temporary directory) over the same space (Muon LR, Adam LR, cooldown fraction) on the proxy
corpus, repeated with several sampler seeds:

  random    random search, every trial a full-length run                  budget B
  tpe       TPE, every trial a full-length run (no early stopping)        budget B
  asha      TPE + ASHA (`scheduler: asha`, grace = the first rung,        budget B
            same reduction factor): truncated runs compared at the same fraction of their schedule
  horizon   TPE + horizon halving (`scheduler: horizon`, `promotion:      budget B x --horizon-share
            sync`): complete runs at each rung, the best 1/factor of a rung run again, longer;
            with `--retune`, then a line search at full length over those params (its runs
            counted in horizon's budget); with `--hold`, some of them held at one value until then;
            with `--detrend`, shorter rungs rank runs by loss less its linear trend in some params;
            with `--audit N`, N configs the lowest rung dropped also run at full length (in budget)

`--sampler random` has ASHA and horizon propose at random instead of by TPE: with the same seed,
the very configs random search runs, so the comparison isolates what the halving itself picks.

Compute is counted in training tokens: the sum over every run (pruned, failed and short ones
included) of the tokens it trained on, reported in full-run units (one full-length run's tokens);
the wall-clock of each search is reported next to it, since short runs pay a trainer start-up
and validation that tokens do not count. B is `--full-runs`: random and TPE run that many trials;
ASHA gets as many configs as B pays for at its expected cost per config; horizon gets the most
configs whose synchronous halving (exactly n, n/factor, ... runs) fits in B x share, by default
1/3 of the others' budget.

What counts is the best val loss of a FULL-LENGTH run (a pruned ASHA trial or a short rung does
not), among the runs that finished within the budget B (ASHA's asynchronous promotions can
spend past it). The acceptance check, per seed: horizon's best, with at most 1/3 of random
search's spent tokens and at most 1/3 of its device time in trials (the sum of its runs'
durations, trainer start-up and validation included), is within 0.01 of the best any search
found. Next to it, the loss random search's own run of horizon's best config ended at: the same
config run twice differs by the run-to-run noise (bench/criterion_noise.py), so that column tells
a miss by the pick from a miss by the noise. Runs in the order they finished also give each
search's best after 1/3, 2/3 and all of B.
A last table checks the fidelity itself: the rank correlation between horizons over the configs
that ran at both, in any of the searches.

Examples:
  python bench/horizon_search.py --seeds 3 --out horizon_search.json           # CPU, tiny
  python bench/horizon_search.py --preset gpt2_124m --device cuda --data .gpuslice --seed-list 0 --out s0.json
  python bench/horizon_search.py --full-runs 27 --methods horizon --sampler random --out sh.json
  python bench/horizon_search.py --full-runs 27 --horizon-share 0.3 --set optim.muon_weight_decay=0.01
  python bench/horizon_search.py --full-runs 27 --horizon-share 0.3 --retune optim.adam_lr --sampler random
  python bench/horizon_search.py --full-runs 27 --horizon-share 0.28 --retune optim.adam_lr --hold optim.adam_lr=0.008
  python bench/horizon_search.py --full-runs 27 --horizon-share 0.3 --detrend optim.adam_lr --sampler random
  python bench/horizon_search.py --full-runs 27 --horizon-share 0.3 --audit 2 --sampler random
  python bench/horizon_search.py --merge s0.json s1.json s2.json                # one table from several calls
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
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the driver, and Ray's workers (Ray hands them the driver's sys.path)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))  # the trainers

METHODS = ("random", "tpe", "asha", "horizon")
SPACE = {"optim.muon_lr": (0.005, 0.2, True), "optim.adam_lr": (0.001, 0.05, True),  # name: (low, high, log)
         "schedule.lr.cooldown_frac": (0.1, 0.8, False)}
TOLERANCE = 0.01  # acceptance: within this of the best val loss any method found
DEFAULT_RUNGS, DEFAULT_FACTOR = "1/9,1/3,1", 3

# What one trial is, per preset; steps divisible by 9 so that rungs of 1/9 and 1/3 are whole. No
# search validates the initial weights (the same for every trial): in a 1/9 run that validation
# alone would be a quarter of the run's compute on the CPU.
PRESETS = {
    "tiny": dict(steps=72, set={"eval.every": 8, "eval.at_start": False, "data.val_tokens": 8192, "runtime.threads": 1},
                 gpus=0, cpus=1),
    "gpt2_124m": dict(steps=270, set={
        "data.epochs": 2, "data.val_tokens": 262144, "eval.every": 30, "eval.at_start": False,
        "schedule.batch": [{"until": 1.0, "tokens": 32768}], "schedule.seq_len": [{"until": 1.0, "tokens": 32768}],
        "schedule.muon_momentum": {"start": 0.85, "end": 0.95, "steps": 45},
    }, gpus=1, cpus=8),
}


def setting(text: str) -> tuple[str, object]:
    """`KEY=VALUE` with a YAML value, read as the trainer's `--set` reads it."""
    from trainer.config import parse_override
    from trainer.errors import InputError

    try:
        return parse_override(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def rungs_of(text: str) -> list[float]:
    """`1/9,1/3,1` as fractions of the run."""
    return [float(Fraction(x)) for x in text.split(",")]


def horizon_configs(rungs: list[float], factor: int, budget: float, steps: int) -> int:
    """The most configs whose synchronous halving (n, n // factor, ... runs, rung by rung) costs at
    most `budget` full runs, each rung's steps rounded as the trainer rounds them."""
    def cost(n: int) -> float:
        total = 0.0
        for f in rungs:
            total, n = total + n * max(1, round(steps * f)) / steps, n // factor
        return total

    n = factor ** (len(rungs) - 1)  # the fewest for one config to reach full length
    while cost(n + 1) <= budget + 1e-9:
        n += 1
    return n


def asha_cost_per_config(rungs: list[float], factor: int) -> float:
    """ASHA's expected training per config, in full runs: 1/factor**k of the configs go on from
    rung k-1 to rung k, each continuing its run rather than starting again."""
    return sum((b - a) / factor ** k for k, (a, b) in enumerate(zip([0.0, *rungs], rungs)))


def plan(method: str, args) -> int:
    """How many configs a method is given for its budget (horizon's: what its retune may spend aside)."""
    if method == "horizon":
        budget = args.full_runs * args.horizon_share - len(args.retune) * args.retune_runs - args.audit
        return horizon_configs(args.rungs, args.factor, budget, PRESETS[args.preset]["steps"])
    if method == "asha":
        return round(args.full_runs / asha_cost_per_config(args.rungs, args.factor))
    return args.full_runs


def space_yaml(method: str, args, configs: int, seed: int) -> str:
    p = PRESETS[args.preset]
    base_set = {**p["set"], **args.set, "runtime.device": args.device, "data.train_files": str(args.data / "proxy_train_*.bin"),
                "data.val_files": str(args.data / "proxy_val_*.bin")}
    rungs = ", ".join(str(Fraction(f).limit_denominator(1000)) for f in args.rungs)
    hold = f", hold: {{{', '.join(f'{k}: {v!r}' for k, v in args.hold.items())}}}" if args.hold else ""
    retune = f", retune: {{params: [{', '.join(args.retune)}], runs: {args.retune_runs}{hold}}}" if args.retune else ""
    detrend = f", detrend: [{', '.join(args.detrend)}]" if args.detrend else ""
    audit = f", audit: {args.audit}" if args.audit else ""
    scheduler = {
        "random": "none", "tpe": "none",
        "asha": f"{{name: asha, grace: {args.rungs[0]!r}, reduction_factor: {args.factor}, max_t: 1.0}}",
        "horizon": f"{{name: horizon, rungs: [{rungs}], reduction_factor: {args.factor}, promotion: sync{detrend}{audit}{retune}}}",
    }[method]
    startup = min(4, configs)
    random = method == "random" or (method in ("asha", "horizon") and args.sampler == "random")
    sampler = f"{{name: random, seed: {seed}}}" if random else f"{{name: tpe, seed: {seed}, startup_trials: {startup}}}"
    sets = "\n".join(f"    {k}: {json.dumps(v)}" for k, v in base_set.items())
    params = "\n".join(f"  {k}: {{float: [{low!r}, {high!r}]{', log: true' if log else ''}}}" for k, (low, high, log) in SPACE.items())
    return f"""\
base:
  config: {args.preset}
  set:
{sets}
params:
{params}
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
            "config": r.rung.config_trial if r.rung else r.number, "params": r.params,
            "finished": r.finished, "seconds": r.duration_s, "cost": (r.last.get("tokens") or 0) / full_tokens,
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

    configs = plan(method, args)
    path = work / f"{method}-{seed}.yaml"
    path.write_text(space_yaml(method, args, configs, seed))
    t0 = time.time()
    with open(os.devnull, "w") as quiet:
        options = SweepOptions(name=f"{method}-{seed}", workdir=work,
                               **({"compile_cache": args.compile_cache} if args.compile_cache else {}))
        result = run_sweep(prepare_space(path), options, console=Console(file=quiet))
    runs = runs_of(result, full_tokens)
    losses = [r["full_length_loss"] for r in runs if r["full_length_loss"] is not None]
    return {"method": method, "variant": variant(method, args.rungs, args.factor, args.sampler, args.retune, args.hold, args.detrend,
                                                 args.audit),
            "seed": seed,
            "configs": configs, "runs": runs, "wall_s": time.time() - t0,
            "cost": sum(r["cost"] for r in runs), "best": min(losses) if losses else None}


def variant(method: str, rungs: list[float], factor: int, sampler: str = "tpe", retune: list[str] = (),
            hold: dict[str, float] | None = None, detrend: list[str] = (), audit: int = 0) -> str:
    """A search's name in the tables: ASHA and horizon with their rungs and, unless TPE, their
    sampler; horizon with what it detrends, its audits, its retuned parameters and what it holds."""
    if method not in ("asha", "horizon"):
        return method
    name = f"{method} ({', '.join(str(Fraction(f).limit_denominator(1000)) for f in rungs)}; factor {factor}"
    if sampler != "tpe":
        name += f"; {sampler}"
    if detrend and method == "horizon":
        name += f"; detrend {', '.join(detrend)}"
    if audit and method == "horizon":
        name += f"; audit {audit}"
    if retune and method == "horizon":
        hold = hold or {}
        name += "; retune " + ", ".join(p + (f" held at {hold[p]:g}" if p in hold else "") for p in retune)
    return name + ")"


def loaded(path: Path) -> list[dict]:
    """The results of an --out file, each named by its variant and given the `factor` and `detrend`
    of the command line that made it."""
    data = json.loads(path.read_text())
    ap = argparse.ArgumentParser()
    ap.add_argument("--rungs", type=rungs_of, default=rungs_of(DEFAULT_RUNGS))
    ap.add_argument("--factor", type=int, default=DEFAULT_FACTOR)
    ap.add_argument("--detrend", nargs="+", default=[])
    made, _ = ap.parse_known_args(data["meta"]["argv"][1:])
    return [{**r, "variant": r.get("variant") or variant(r["method"], made.rungs, made.factor),
             "factor": made.factor, "detrend": made.detrend} for r in data["results"]]


def trial_seconds(result: dict) -> tuple[float, str]:
    """The device time a search held in trials (the sum of its runs' durations, trainer start-up
    included), or its wall-clock where the file predates per-run durations; and which it is."""
    if all("seconds" in run for run in result["runs"]):
        return sum(run["seconds"] for run in result["runs"]), "trials"
    return result["wall_s"], "wall"


def typical_seconds(result: dict) -> float | None:
    """The device time a search's runs would take at the median duration of the runs of their
    length: its time in trials without the one-time start of each trainer worker (process,
    CUDA context, compiled code loaded from the cache), which lands in the first run on a worker
    whatever its length. None where the file predates per-run durations."""
    if not all("seconds" in run for run in result["runs"]):
        return None
    by_fidelity: dict[float | None, list[float]] = {}
    for run in result["runs"]:
        by_fidelity.setdefault(run["fidelity"], []).append(run["seconds"])
    return sum(statistics.median(by_fidelity[run["fidelity"]]) for run in result["runs"])


def summary(results: list[dict]) -> str:
    """A Markdown table per search (mean and spread over seeds) and the acceptance check per seed:
    at most 1/3 of random search's compute, in tokens and in device time alike."""
    seeds = sorted({r["seed"] for r in results})
    names = sorted({r["variant"] for r in results}, key=lambda v: (METHODS.index(v.split()[0]), v))
    by = {(r["variant"], r["seed"]): r for r in results}
    budget = {s: by[("random", s)]["cost"] for s in seeds if ("random", s) in by}
    lines = ["| search | configs | runs | spent (full runs) | time in trials (s) | wall (s) | best at B/3 | best at 2B/3 "
             "| best at B | best full-length val loss |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        rs = [by[(name, s)] for s in seeds if (name, s) in by]
        at = lambda share, rs=rs: _spread([best_within(r["runs"], budget[r["seed"]] * share) for r in rs if r["seed"] in budget], 4)  # noqa: E731
        timed = [trial_seconds(r) for r in rs]
        held = _spread([t for t, kind in timed if kind == "trials"], 0) if all(k == "trials" for _, k in timed) else "n/a"
        lines.append(f"| {name} | {_spread([r['configs'] for r in rs], 0)} | {_spread([len(r['runs']) for r in rs], 1)} | "
                     f"{_spread([r['cost'] for r in rs], 2)} | {held} | {_spread([r['wall_s'] for r in rs], 0)} | "
                     f"{at(1 / 3)} | {at(2 / 3)} | {at(1)} | {_spread([r['best'] for r in rs], 4)} |")
    lines += ["", "| search | seed | best of any search on B | its best | its best config in random search's run "
              "| tokens / random's | time / random's | time / random's, worker start-up apart | within 0.01 on at most 1/3 |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name in (n for n in names if n.startswith("horizon")):
        for s in seeds:
            # each search's best on the budget B (ASHA's promotions can overspend it)
            within = {n: best_within(by[(n, s)]["runs"], budget[s]) for n in names if (n, s) in by and s in budget}
            found = {n: b for n, b in within.items() if b is not None}
            if (name, s) not in by or s not in budget or not found:
                continue
            h = by[(name, s)]
            share = h["cost"] / budget[s]
            (held, kind), (random_held, random_kind) = trial_seconds(h), trial_seconds(by[("random", s)])
            kind = "trials" if kind == random_kind == "trials" else "wall"
            time_share = (held if kind == "trials" else h["wall_s"]) / (random_held if kind == "trials" else by[("random", s)]["wall_s"])
            typical, random_typical = typical_seconds(h), typical_seconds(by[("random", s)])
            steady = "n/a" if typical is None or random_typical is None else f"{typical / random_typical:.3f}"
            winner = min(found, key=found.get)
            close = h["best"] is not None and h["best"] <= found[winner] + TOLERANCE
            ok = close and share <= 1 / 3 + 1e-9 and time_share <= 1 / 3 + 1e-9
            best = "none" if h["best"] is None else f"{h['best']:.4f}"
            again = run_elsewhere(h, by[("random", s)])
            lines.append(f"| {name} | {s} | {found[winner]:.4f} ({winner}) | {best} | "
                         f"{'n/a' if again is None else f'{again:.4f}'} | {share:.3f} | "
                         f"{time_share:.3f}{'' if kind == 'trials' else ' (wall)'} | {steady} | {'yes' if ok else 'no'} |")
    return "\n".join(lines)


def run_elsewhere(search: dict, other: dict) -> float | None:
    """The full-length loss, in `other`'s run of it, of the config `search` found best; None if
    `other` did not run it. With random proposals horizon's configs are random search's, so this
    separates what the halving picked from the run-to-run noise of its own run."""
    full = [r for r in search["runs"] if r["full_length_loss"] is not None]
    if not full:
        return None
    key = sorted(min(full, key=lambda r: r["full_length_loss"])["params"].items())
    return next((r["full_length_loss"] for r in other["runs"]
                 if r["full_length_loss"] is not None and sorted(r["params"].items()) == key), None)


def fidelity_check(results: list[dict]) -> str:
    """Spearman ρ between fidelities over the configs that ran at both, pairing runs of one seed
    with equal params across searches (random search and TPE share their first, random
    proposals; TPE and horizon often share more), so not only promoted configs count."""
    from scipy.stats import spearmanr

    losses: dict[tuple, dict[float, float]] = {}
    for r in results:
        for run in r["runs"]:
            if run["final_val_loss"] is None or run["status"] != "completed":
                continue
            config = (r["seed"], tuple(sorted((k, round(v, 9)) for k, v in run["params"].items())))
            fidelity = run["fidelity"] or 1.0
            at = losses.setdefault(config, {})
            at[fidelity] = min(at.get(fidelity, math.inf), run["final_val_loss"])
    fidelities = sorted({f for at in losses.values() for f in at})
    lines = ["| fidelity | against | configs | Spearman ρ | p |", "|---:|---:|---:|---:|---:|"]
    for i, a in enumerate(fidelities):
        for b in fidelities[i + 1:]:
            pairs = [(at[a], at[b]) for at in losses.values() if a in at and b in at]
            if len(pairs) >= 3:
                rho, pval = spearmanr(*zip(*pairs))
                lines.append(f"| {a:.3g} | {b:.3g} | {len(pairs)} | {rho:.2f} | {pval:.2g} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def _spread(xs: list, digits: int) -> str:
    """mean ± sample std (min–max) over seeds; 'none' counts for a seed without a value."""
    vals = [x for x in xs if x is not None]
    missing = len(xs) - len(vals)
    if not vals:
        return "none"
    text = f"{statistics.mean(vals):.{digits}f}"
    if len(vals) > 1 and max(vals) > min(vals):
        text += f" ± {statistics.stdev(vals):.{digits}f} ({min(vals):.{digits}f}–{max(vals):.{digits}f})"
    return text + (f", {missing} none" if missing else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="the proxy corpus' directory")
    ap.add_argument("--seeds", type=int, default=3, help="repeats, each with its own sampler seed: 0 .. seeds-1")
    ap.add_argument("--seed-list", type=int, nargs="+", help="these sampler seeds instead of --seeds")
    ap.add_argument("--full-runs", type=int, default=9, help="the budget B, in full-length runs (random and TPE's trials)")
    ap.add_argument("--horizon-share", type=float, default=1 / 3, help="horizon's budget, as a share of B")
    ap.add_argument("--rungs", type=rungs_of, default=rungs_of(DEFAULT_RUNGS), help="horizon rungs; ASHA's grace is the first")
    ap.add_argument("--factor", type=int, default=DEFAULT_FACTOR, help="reduction factor of ASHA and horizon")
    ap.add_argument("--sampler", choices=("tpe", "random"), default="tpe",
                    help="what proposes ASHA's and horizon's configs (random: the very configs random search runs)")
    ap.add_argument("--retune", nargs="+", default=[], metavar="PARAM",
                    help="horizon's full-length retune of these params (e.g. optim.adam_lr), out of its budget")
    ap.add_argument("--retune-runs", type=int, default=2, help="the retune's runs per param, at most")
    ap.add_argument("--detrend", nargs="+", default=[], metavar="PARAM",
                    help="horizon's shorter rungs rank runs by loss less its linear trend in these params")
    ap.add_argument("--audit", type=int, default=0, metavar="N",
                    help="horizon runs N configs its lowest rung dropped at full length too, out of its budget")
    ap.add_argument("--hold", type=setting, action="append", default=[], metavar="PARAM=VALUE",
                    help="hold a --retune param at VALUE through the halving (e.g. optim.adam_lr=0.008)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--set", type=setting, action="append", default=[], metavar="KEY=VALUE",
                    help="a trainer setting over the preset's, in every search (repeatable)")
    ap.add_argument("--compile-cache", default=None, help="the sweeps' --compile-cache (default: the sweep's own)")
    ap.add_argument("--out", type=Path, help="write every run of every search here (JSON), after each search")
    ap.add_argument("--merge", type=Path, nargs="+", help="print the tables of these --out files and run nothing")
    args = ap.parse_args()
    args.set = dict(args.set)
    args.hold = dict(args.hold)
    if args.merge:
        merged = [r for path in args.merge for r in loaded(path)]
        print(summary(merged) + "\n\n" + fidelity_check(merged))
        return
    args.data = args.data.resolve()

    from orchestrator.sweep import init_ray
    from trainer.config import load_config
    from trainer.schedules import Schedules

    p = PRESETS[args.preset]
    cfg = load_config(args.preset, [f"schedule.num_iterations={p['steps']}",
                                    *(f"{k}={json.dumps(v)}" for k, v in {**p["set"], **args.set}.items())])
    sched = Schedules(cfg.schedule, cfg.model)
    full_tokens = sum(sched.batch_tokens(s) for s in range(cfg.schedule.num_iterations))
    meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "host": platform.node(),
            "cpus": os.cpu_count(), "argv": sys.argv, "full_run_tokens": full_tokens}
    started = init_ray(None)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="horizon_search_") as tmp:
            for seed in args.seed_list if args.seed_list is not None else range(args.seeds):
                for method in args.methods:  # interleaved, so a slow stretch of the machine touches each alike
                    r = run_one(method, args, seed, Path(tmp), full_tokens)
                    results.append(r)
                    print(f"seed {seed} {method:<8} configs {r['configs']:>3} runs {len(r['runs']):>3}  spent "
                          f"{r['cost']:.2f} full runs  best full-length val loss {r['best']}  {r['wall_s']:.0f} s", flush=True)
                    if args.out:
                        args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    finally:
        if started:
            import ray

            ray.shutdown()
    print()
    print(summary(results) + "\n\n" + fidelity_check(results))


if __name__ == "__main__":
    main()
