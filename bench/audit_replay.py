"""What `scheduler.audit` would have shown in horizon searches that ran beside a random search.

A replay, not a measurement: reads `bench/horizon_search.py --out` files in which, for a seed,
horizon halving (random proposals, so its configs are among random search's) and random search
(every config at full length) both ran. The halving's runs go into an Optuna study as the sweep
recorded them; the product's own rule (`orchestrator.horizon.due_audits`) picks the configs that
`audit: N` would have run at full length, whose full-length losses are random search's runs of
the same configs; then the report's audit section (`analysis.rungs.audit_section`) is printed as
the sweep's report would have shown it. Retune runs are left out; for searches run without
`--audit` (an audit run would be read as a promoted one).

Example:
  R=docs/results/horizon_search_2026-12-06
  python bench/audit_replay.py --audit 2 $R/h100_b27_s0.json $R/h100_b27_s1.json
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from horizon_search import SPACE  # noqa: E402  (bench/, the script's own folder)
from rung_trend_replay import config_key, searches  # noqa: E402

from analysis.rungs import audit_section  # noqa: E402
from analysis.runs import Trial  # noqa: E402
from orchestrator.horizon import due_audits  # noqa: E402
from orchestrator.records import Rung  # noqa: E402
from search_spaces import SchedulerSpec  # noqa: E402

DISTRIBUTIONS = {k: FloatDistribution(low, high, log=log) for k, (low, high, log) in SPACE.items()}


def replay(horizon: dict, random: dict, audit: int) -> tuple[str, list[str]]:
    """One seed: (which configs the audit picks, the report's audit section)."""
    rungs = sorted({r["fidelity"] for r in horizon["runs"]})
    spec = SchedulerSpec(name="horizon", rungs=rungs, promotion="sync", audit=audit, detrend=horizon["detrend"],
                         reduction_factor=horizon["factor"])
    lowest = sorted((r for r in horizon["runs"] if r["fidelity"] == rungs[0]), key=lambda r: r["number"])
    config_of = {config_key(r["params"]): i for i, r in enumerate(lowest)}
    study, trials = optuna.create_study(), []
    for r in sorted(horizon["runs"], key=lambda r: r["number"]):
        if (config := config_of.get(config_key(r["params"]))) is None:
            continue  # a retune run
        k = rungs.index(r["fidelity"])
        loss = math.inf if r["final_val_loss"] is None else r["final_val_loss"]
        study.add_trial(create_trial(params=r["params"], distributions=DISTRIBUTIONS, value=loss,
                                     user_attrs=Rung(k, r["fidelity"], config, None if k == 0 else config).attrs()))
        trials.append(run(r["number"], k, config, loss))
    full = {config_key(r["params"]): r["final_val_loss"] for r in random["runs"] if r["final_val_loss"] is not None}
    picked = []
    for t, rung in due_audits(study.trials, spec, len(lowest), DISTRIBUTIONS):
        picked.append(rung.config_trial)
        trials.append(run(None, len(rungs) - 1, rung.config_trial, full[config_key(t.params)], audit=True))
    return f"audited configs {', '.join(f'#{c}' for c in picked)} of {len(lowest)}", audit_section(trials)


def run(number: int | None, rung: int, config: int, loss: float, audit: bool = False) -> Trial:
    """A run as the report reads it; an audit's loss is random search's run of the config."""
    return Trial(run_id="random" if audit else f"h{number}", number=number, status="completed", objective=loss,
                 final_val_loss=loss, train_time_s=math.nan, wall_time_s=math.nan, rung=rung, fidelity=None,
                 config_trial=config, audit=audit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", type=Path, nargs="+", help="bench/horizon_search.py --out files")
    ap.add_argument("--audit", type=int, default=2, help="configs the lowest rung dropped to audit")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for seed, by_method in sorted(searches(args.files).items()):
        if "horizon" not in by_method or "random" not in by_method:
            continue
        picked, section = replay(by_method["horizon"], by_method["random"], args.audit)
        print(f"### seed {seed}: {by_method['horizon']['variant']}; {picked}\n\n" + "\n\n".join(section) + "\n")


if __name__ == "__main__":
    main()
