"""`speedrun promote NAME --track 3`: the optimization track's submission folder.

The track scores the fewest steps at which the mean val loss over a config's runs passes its
validity rule (analysis.track3). As for any promotion, the sweep's best configs are re-run with
fresh seeds (orchestrator/promote.py); here the one whose fresh seeds pass at the earliest val
step wins (ties: the wider margin), the same step for every seed, as the track's rules demand.
Its folder holds what a track-3 pull request needs:

  train_gpt*.py, changes.diff, config.yaml, run.sh   the patched script, runnable (as promote)
  logs/seed_<S>.txt     each fresh seed's own log, the script's full code at its top (rule 4)
  val_losses.csv        val loss by step and seed at every val step all seeds printed
  README.md             the claim, validity at each step, the pairwise check against a prior
                        result (`--against LOSSES --against-steps N`), the commands that check it
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from analysis.losses_file import StepTable, load_losses
from analysis.runs import Sweep, Trial, val_curve
from analysis.track3 import MARGIN, EarliestStep, Pairwise, earliest_passing_step
from trainer.errors import InputError

VAL_TABLE = "val_losses.csv"


@dataclass(frozen=True)
class Against:
    """A prior result to beat: a losses file, read at `steps` when it is a table of steps."""

    path: Path
    steps: int

    def losses(self) -> list[float]:
        loaded = load_losses(self.path)
        runs = loaded.at(self.steps, "--against-steps") if isinstance(loaded, StepTable) else loaded
        return list(runs.losses)


@dataclass(frozen=True)
class Claim:
    """A finalist's fresh seeds: val loss by step and seed, and the earliest step that passes."""

    arm: str
    runs: tuple[Trial, ...]  # the promotion's runs of the arm, by seed
    table: dict[int, dict[str, float]]  # step -> {seed_<S>: loss}, the steps every run has
    earliest: EarliestStep

    @property
    def step(self) -> int | None:
        return self.earliest.step

    def losses_at(self, step: int) -> list[float]:
        return list(self.table[step].values())


def val_table(promotion: Sweep, runs: list[Trial]) -> dict[int, dict[str, float]]:
    """{step: {seed_<S>: val loss}} at the val steps every run printed."""
    curves = {f"seed_{run.searched['seed']}": dict(val_curve(promotion.tracking_uri, run.run_id)) for run in runs}
    common = sorted(set.intersection(*(set(c) for c in curves.values()))) if curves else []
    return {step: {seed: curve[step] for seed, curve in curves.items()} for step in common}


def pick_earliest(promotion: Sweep, arms: list[str], target: float) -> Claim:
    """The arm whose fresh seeds pass the validity rule at the earliest val step (ties: the wider
    margin); InputError when none passes anywhere, naming the closest."""
    claims = []
    for arm in arms:
        runs = sorted((t for t in promotion.trials if t.searched.get("arm") == arm), key=lambda t: t.searched["seed"])
        if runs and all(t.completed for t in runs):
            table = val_table(promotion, runs)
            if table:
                claims.append(Claim(arm, tuple(runs), table,
                                    earliest_passing_step({s: list(v.values()) for s, v in table.items()}, target)))
    passing = [c for c in claims if c.step is not None]
    if not passing:
        closest = max((row for c in claims for row in c.earliest.rows), key=lambda r: r.lhs, default=None)
        near = f"; the closest came to {closest.lhs:.4g} at step {closest.step}" if closest else ""
        raise InputError(f"no finalist's fresh seeds pass the track's validity rule ((target - mean) * n**0.5 >= "
                         f"{MARGIN}) at any val step{near}: run more seeds (--reseeds), or promote longer configs")
    return min(passing, key=lambda c: (c.step, -c.earliest.row.lhs))


def write_val_table(claim: Claim, path: Path) -> None:
    seeds = list(next(iter(claim.table.values())))
    lines = [",".join(["step", *seeds])]
    lines += [",".join([str(step), *(f"{row[s]:.5f}" for s in seeds)]) for step, row in claim.table.items()]
    path.write_text("\n".join(lines) + "\n")


def copy_logs(claim: Claim, trials_dir: Path, into: Path, code: str) -> list[str]:
    """Each run's own log (the newest .txt under its trial's work/logs/) as logs/seed_<S>.txt; the
    seeds whose log does not hold the script's code (the track's rule 4)."""
    into.mkdir(parents=True, exist_ok=True)
    missing = []
    for run in claim.runs:
        logs = sorted((trials_dir / f"trial_{run.number:04d}" / "work" / "logs").rglob("*.txt"),
                      key=lambda p: p.stat().st_mtime)
        seed = run.searched["seed"]
        if not logs:
            missing.append(str(seed))
            continue
        shutil.copyfile(logs[-1], into / f"seed_{seed}.txt")
        if code not in logs[-1].read_text(errors="replace"):
            missing.append(str(seed))
    return missing


def readme(name: str, trial: int | None, claim: Claim, against: Against | None, compared: Pairwise | None,
           target: float, script: str, diff: str, missing_code: list[str], nproc: int) -> str:
    step = claim.step
    row = claim.earliest.row
    rows = "\n".join(f"| {r.step} | {r.n} | {r.mean:.5f} | {r.lhs:.4g} | {'pass' if r.passes else ''} |"
                     for r in claim.earliest.rows)
    versus = ""
    if against is not None and compared is not None:
        versus = f"""
## Against the prior result

`{against.path.name}` at {against.steps} steps (n = {compared.n_old}, mean {compared.mean_old:.5f}) against this
claim at {step} steps (n = {compared.n_new}, mean {compared.mean_new:.5f}): loss_diff {compared.loss_diff:.5f},
step_diff {compared.step_diff}, `(loss_diff + step_diff / 100 * 0.0045) / (1/n1 + 1/n2)**0.5` =
{compared.lhs:.4g}: {"passes" if compared.passes else "does not pass"} (>= {MARGIN}).

```bash
speedrun record compare {VAL_TABLE} {against.path.name} --track 3 --steps {step} {against.steps}
```
"""
    warning = (f"\n**Warning:** the log of seed(s) {', '.join(missing_code)} does not hold the script's code; "
               "the track's rule 4 wants all code in the log.\n") if missing_code else ""
    return f"""# {name}: {step} steps to {target} (track 3)

Trial #{trial} of sweep `{name}` (arm `{claim.arm}` of its promotion), re-run with {row.n} fresh seeds: the mean val loss
at step {step} is {row.mean:.5f}, and `(target - mean) * n**0.5` = {row.lhs:.4g} >= {MARGIN}, the track's
validity rule. The step is the earliest val step at which the mean over all seeds passes, the same
step for every seed (no per-run early stopping). Every seed's run is in `logs/`, its code at its top.
{warning}
| step | n | mean | (target - mean) * n**0.5 | |
|---|---|---|---|---|
{rows}

Check it:

```bash
speedrun record check {VAL_TABLE} --track 3 --step {step}
```
{versus}
## Run it

```bash
bash run.sh   # from the directory its data paths are relative to; NPROC ranks, {nproc} by default
```

## The script

`{Path(script).name}`: the original `{script}` with these knobs (`changes.diff`):

```diff
{diff.rstrip()}
```
"""


def submission_folder(root: Path, name: str) -> Path:
    folder = root / f"{datetime.now(UTC):%Y-%m-%d}_{name}-track3"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
