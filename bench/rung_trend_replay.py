"""How well a horizon sweep's lowest rung would rank configs with a parameter's trend taken out.

A replay, not a measurement: it reads `bench/horizon_search.py --out` files in which random
search ran every config at full length and horizon halving (random proposals, same sampler seed,
so its configs are among random search's) ran them at the lowest rung. For each seed it fits the
lowest rung's final val loss as a polynomial in one parameter (in log space for a positive one;
degree 0 is the raw loss) and ranks the configs by what the fit leaves over; then it reports the
Spearman rank correlation of that score with the same configs' full-length losses, where random
search's two best configs rank, and the best full-length loss among the configs the halving
would send on (the best 1/factor).

Example:
  python bench/rung_trend_replay.py --param optim.adam_lr --degrees 0 1 2 \\
      docs/results/horizon_search_2026-12-06/h100_b27_s0.json ...
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from horizon_search import loaded  # bench/, the script's own folder
from scipy.stats import spearmanr


def config_key(params: dict) -> tuple:
    return tuple(sorted((k, round(v, 9)) for k, v in params.items()))


def searches(paths: list[Path]) -> dict[int, dict[str, dict]]:
    """{seed: {method: result}} over the files (a later file's search replaces an earlier one's)."""
    out: dict[int, dict[str, dict]] = {}
    for path in paths:
        for r in loaded(path):
            out.setdefault(r["seed"], {})[r["method"]] = r
    return out


def residuals(losses: np.ndarray, values: np.ndarray, degree: int) -> np.ndarray:
    """`losses` less their least-squares polynomial of the given degree in `values`."""
    x = np.log(values) if (values > 0).all() else values
    design = np.stack([x**d for d in range(degree + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(design, losses, rcond=None)
    return losses - design @ coef


def replay(horizon: dict, random: dict, param: str, degree: int, factor: int) -> dict:
    """One seed: the lowest rung's configs scored with `param`'s trend of `degree` taken out."""
    full = {config_key(r["params"]): r["final_val_loss"] for r in random["runs"] if r["final_val_loss"] is not None}
    lowest = min(r["fidelity"] for r in horizon["runs"])
    rung = [r for r in horizon["runs"] if r["fidelity"] == lowest and r["final_val_loss"] is not None
            and config_key(r["params"]) in full]
    loss = np.array([r["final_val_loss"] for r in rung])
    score = residuals(loss, np.array([r["params"][param] for r in rung]), degree)
    at_full = np.array([full[config_key(r["params"])] for r in rung])
    rank = np.argsort(np.argsort(score)) + 1
    kept = math.floor(len(rung) / factor + 1e-9)
    return {"configs": len(rung), "kept": kept, "rho": spearmanr(score, at_full)[0],
            "best_two": [int(rank[i]) for i in np.argsort(at_full)[:2]],
            "kept_best": float(at_full[rank <= kept].min()), "best": float(at_full.min())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", type=Path, nargs="+", help="horizon_search.py --out files")
    ap.add_argument("--param", required=True, help="the parameter whose trend to take out, e.g. optim.adam_lr")
    ap.add_argument("--degrees", type=int, nargs="+", default=[0, 1], help="polynomial degrees; 0: the raw loss")
    ap.add_argument("--factor", type=int, default=3, help="the halving's reduction factor")
    args = ap.parse_args()
    print("| degree | seed | configs | Spearman ρ with full length | random's two best: rank | best full-length loss kept | random's best |")
    print("|---:|---:|---:|---:|---|---:|---:|")
    for degree in args.degrees:
        for seed, by_method in sorted(searches(args.files).items()):
            if {"horizon", "random"} <= set(by_method):
                r = replay(by_method["horizon"], by_method["random"], args.param, degree, args.factor)
                print(f"| {degree} | {seed} | {r['configs']} | {r['rho']:.2f} | {r['best_two'][0]}, {r['best_two'][1]} "
                      f"(best {r['kept']} kept) | {r['kept_best']:.4f} | {r['best']:.4f} |")


if __name__ == "__main__":
    main()
