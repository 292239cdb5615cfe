"""Is a horizon-search setting quiet enough for its acceptance test ("within 0.01 of the best")?

Reads `bench/horizon_search.py --out` files. Configs that ran at full length more than once (the
same params and seed in different searches: horizon's picks are among random search's configs)
give the run-to-run noise: the pooled within-config standard deviation of the full-length val
loss. Then, per random search in the files, a Monte Carlo: taking its configs' losses as their
true means and that noise, how often does ONE run of the truly best config land within the
tolerance of the best of random search's noisy runs? That is the pass rate of a perfect search,
the ceiling for any method's; the best of many noisy runs is biased low (the winner's curse).

Example:
  python bench/criterion_noise.py docs/results/horizon_search_2026-12-06/h100_b27_*.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np


def full_length_runs(paths: list[Path]) -> dict[tuple, list[float]]:
    """{(seed, params): [full-length val loss of every run of that config]} over the files."""
    out: dict[tuple, list[float]] = defaultdict(list)
    for path in paths:
        for result in json.loads(path.read_text()).get("results", []):
            for run in result["runs"]:
                if run["status"] == "completed" and run.get("full_length_loss") is not None:
                    key = (result["seed"], tuple(sorted((k, round(v, 9)) for k, v in run["params"].items())))
                    out[key].append(run["full_length_loss"])
    return out


def pooled_sd(groups: list[list[float]]) -> float:
    """Within-group standard deviation, pooled over groups of two or more."""
    repeated = [np.asarray(g) for g in groups if len(g) > 1]
    dof = sum(len(g) - 1 for g in repeated)
    if dof == 0:
        raise SystemExit("no config ran at full length twice in these files: nothing to estimate the noise from")
    return math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in repeated) / dof)


def oracle_pass_rate(means: np.ndarray, sd: float, tolerance: float, draws: int, seed: int) -> float:
    """P(one run of the best config <= best of one noisy run per config + tolerance)."""
    rng = np.random.default_rng(seed)
    best_found = (means + rng.normal(0.0, sd, (draws, len(means)))).min(axis=1)
    oracle = means.min() + rng.normal(0.0, sd, draws)
    return float(np.mean(oracle <= best_found + tolerance))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", type=Path, nargs="+", help="bench/horizon_search.py --out files")
    ap.add_argument("--tolerance", type=float, default=0.01, help="the acceptance's distance to the best")
    ap.add_argument("--draws", type=int, default=200_000, help="Monte Carlo draws per search")
    args = ap.parse_args()

    runs = full_length_runs(args.files)
    repeated = [v for v in runs.values() if len(v) > 1]
    sd = pooled_sd(list(runs.values()))
    spreads = ", ".join(f"{max(v) - min(v):.4f}" for v in sorted(repeated, key=lambda v: max(v) - min(v)))
    print(f"{len(repeated)} configs ran at full length 2+ times ({sum(map(len, repeated))} runs); "
          f"pooled run-to-run sd {sd:.4f}; their spreads: {spreads}\n")
    print("| file | seed | random search's configs | its best | P(one run of the best config within "
          f"{args.tolerance} of random's best) |\n|---|---:|---:|---:|---:|")
    for path in args.files:
        for result in json.loads(path.read_text()).get("results", []):
            if result["method"] != "random":
                continue
            means = np.array([r["full_length_loss"] for r in result["runs"] if r.get("full_length_loss") is not None])
            rate = oracle_pass_rate(means, sd, args.tolerance, args.draws, seed=result["seed"])
            print(f"| {path.name} | {result['seed']} | {len(means)} | {means.min():.4f} | {rate:.2f} |")


if __name__ == "__main__":
    main()
