"""The ``speedrun record`` commands: run a record attempt, check losses against the record rule or
the optimization track's validity rule, compare two attempts, and plan how many runs a claim needs."""

import dataclasses
import json
import math
from pathlib import Path
from typing import Annotated

import typer

from analysis import record_plan, track3
from analysis.attempts import AttemptComparison, Metric, compare_attempts
from analysis.losses_file import LAYOUTS, Runs, StepTable, load_losses
from analysis.stats import RECORD_P_THRESHOLD, RECORD_TARGET, record_test, summarize
from analysis.tables import DASH, finite_json, markdown_table
from orchestrator.errors import exit_on_input_error
from orchestrator.stores import DEFAULT_STORAGE, DEFAULT_TRACKING_URI
from trainer.errors import InputError

record_app = typer.Typer(
    help=(
        "Record attempts: run one, apply the record rule (ttest_1samp(losses, 3.28, alternative='less').pvalue < 0.01) "
        "or the optimization track's rules (--track 3) to losses, compare two attempts, and plan how many runs a "
        "claim needs."
        "\n\nExample: speedrun record run records/2026-11-25_lr-1 --runs 10; speedrun record plan --sigma 0.0014 --delta 0.001"
    ),
    no_args_is_help=True,
)

TargetOption = Annotated[float, typer.Option(help="The val loss the mean must be shown to be below.")]


def check_target(target: float) -> None:
    """Refuse a --target no loss can be compared with (typer reads `nan` and `inf` as floats)."""
    if not math.isfinite(target):
        raise InputError(f"--target {target}: expected a finite val loss, e.g. {RECORD_TARGET}")


@record_app.command()
def run(
    record_dir: Annotated[Path, typer.Argument(help="A record folder with config.yaml (speedrun promote writes one).")],
    runs: Annotated[int, typer.Option(help="Runs of the attempt (seeds 0..N-1); with --looks, the most it runs.")] = 10,
    baseline: Annotated[Path | None, typer.Option(help="A config to run with the same seeds, interleaved on the same nodes, to compare times.")] = None,
    looks: Annotated[int, typer.Option(help="Sequential: stop at the first of this many planned looks that passes at 0.01/looks (Bonferroni).")] = 1,
    target: TargetOption = RECORD_TARGET,
    gpus_per_run: Annotated[int | None, typer.Option(help="GPUs per run, one node. Default: 8 for a CUDA config, else 0.")] = None,
    cpus_per_run: Annotated[float, typer.Option(help="CPUs per run.")] = 1.0,
    address: Annotated[str | None, typer.Option(help="Ray cluster to join. Default: a local Ray.")] = None,
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = DEFAULT_TRACKING_URI,
    storage: Annotated[str, typer.Option(help="Optuna storage URL.")] = DEFAULT_STORAGE,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted attempt.")] = False,
) -> None:
    """Run a record attempt N times through the orchestrator and apply the record rule.

    The runs are an ablation named record-<folder> (Ray, MLflow, failures recorded, --resume). The verdict, the losses, mean/std, times and every run's log go to RECORD_DIR/attempt/ (verdict.md, results.json, logs/) and onto the attempt's MLflow run. Exit code 0 on PASS, 1 on FAIL.

    Example: speedrun record run records/2026-11-25_lr-1 --runs 10 --baseline base.yaml
    """
    from orchestrator.record import run_attempt
    from orchestrator.sweep import SweepOptions

    options = SweepOptions(address=address, tracking_uri=tracking_uri, storage=storage, resume=resume)
    with exit_on_input_error():
        check_target(target)
        verdict = run_attempt(record_dir, runs, options, baseline=baseline, target=target, gpus=gpus_per_run,
                              cpus=cpus_per_run, looks=looks)
    typer.echo(f"{'PASS' if verdict.passed else 'FAIL'}: n={verdict.n} mean={verdict.mean:.4f} p={verdict.pvalue:.4g}; "
               f"see {record_dir / 'attempt' / 'verdict.md'}")
    raise typer.Exit(0 if verdict.passed else 1)


TrackOption = Annotated[int, typer.Option(
    help="1: the main track's record rule (one-sided t-test, p < 0.01). 3: the optimization track's rules "
         "(records/track_3_optimization/README.md).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of the text (keys: see above).")]
LOSSES_HELP = ("Final val losses one per line; or a table, comma-, tab- or space-separated: `step,seed_0,seed_1,...` "
               "(one row per val step, a seed's val loss in each cell) or a header naming `val_loss` (one run per "
               "row; optional `seed`, `train_time_ms` or `train_time_s`). Blank lines and # comments allowed.")
TRACK3_RULE = (f"the optimization track's validity rule: a one-sided z-test at p < .001 assuming "
               f"σ = {track3.SIGMA}")


def check_track(track: int) -> None:
    if track not in (1, 3):
        raise InputError(f"--track {track}: expected 1 (the record rule) or 3 (the optimization track's rules)")


def _runs_at(loaded: Runs | StepTable, step: int | None) -> Runs:
    """A file's losses at --step of its table, or its final losses (a table's last step)."""
    if isinstance(loaded, StepTable):
        return loaded.last() if step is None else loaded.at(step, f"--step {step}")
    if step is not None:
        raise InputError(f"--step {step}: {loaded.path} holds final losses, not a table of val loss by step; "
                         "drop the step or give a `step,<seed>,...` table")
    return loaded


def _compared(path: Path, steps: tuple[int, int] | None, i: int) -> Runs:
    """One compared file's losses: a table's at its --steps count (track 3) or last step, else the file's."""
    loaded = load_losses(path)
    if not isinstance(loaded, StepTable):
        return loaded
    return loaded.last() if steps is None else loaded.at(steps[i], f"--steps {steps[0]} {steps[1]}")


def _some_losses(runs: Runs) -> Runs:
    if not runs.losses:
        raise InputError(f"{runs.path}: no losses; expected {LAYOUTS}")
    return runs


def _echo_json(obj: dict) -> None:
    typer.echo(json.dumps(finite_json(obj)))


@record_app.command()
def check(
    losses_file: Annotated[Path, typer.Argument(help=LOSSES_HELP)],
    track: TrackOption = 1,
    step: Annotated[int | None, typer.Option(help="With a table of val loss by step: the step to check. Default: with --track 3 the earliest passing step, else the last step.")] = None,
    target: TargetOption = RECORD_TARGET,
    json_: JsonOption = False,
) -> None:
    """Apply a record rule to an attempt's val losses.

    Track 1 (default), the record rule: a one-sided one-sample t-test that the mean is below the target, p < 0.01; prints n, mean, std and p. With a table of val loss by step, the losses at --step (default: the last step).

    Track 3 (--track 3), the optimization track's validity rule: (3.28 − mean)·√n ≥ 0.004 (a one-sided z-test at p < .001 assuming σ = 0.0013; one run is enough); prints n, mean and that left-hand side. With a table and no --step, every step's row (step, n, mean, left-hand side) and the earliest step that passes, the track's claim.

    Then PASS or FAIL with the reason. Exit code 0 on PASS (track 3 with a table: some step passes), 1 on FAIL, 2 when the file cannot be read or is not a losses file (one `error:` line naming file and line: a value that is not a loss ≥ 0, a missing cell, a duplicate step, an unknown column), lacks --step, or (track 1) holds fewer than 2 losses or one value repeated (no p-value).

    --json keys: track, file, step (the step checked, or the earliest passing one; null for final losses or when none passes), n, mean, target, passed; track 1 adds std, p, threshold (0.01); track 3 adds lhs, margin (0.004) and, for a table without --step, steps: a list of {step, n, mean, lhs, passed}.

    Example: speedrun record check losses.txt    (losses.txt: 3.2791, 3.2776, ... one per line); speedrun record check val_by_step.csv --track 3
    """
    with exit_on_input_error():
        check_target(target)
        check_track(track)
        loaded = load_losses(losses_file)
        if track == 3 and isinstance(loaded, StepTable) and step is None:
            _check_track3_table(loaded, target, json_)
        runs = _runs_at(loaded, step)
        if track == 3:
            _check_track3(_some_losses(runs), target, json_)
        at = "" if runs.step is None else f" at step {runs.step}"
        if len(runs.losses) < 2:
            raise InputError(f"{losses_file}: {len(runs.losses)} loss(es){at}; the record rule's t-test needs at least 2 runs")
        if len(set(runs.losses)) == 1:
            raise InputError(f"{losses_file}: all {len(runs.losses)} losses{at} are {runs.losses[0]}; the record rule's "
                             "t-test needs losses that vary from run to run (with no spread it has no p-value)")
    result = record_test(list(runs.losses), target)
    if json_:
        _echo_json({"track": 1, "file": str(losses_file), "step": runs.step, "n": result.n, "mean": result.mean,
                    "std": result.std, "p": result.pvalue, "threshold": RECORD_P_THRESHOLD, "target": target,
                    "passed": result.passed})
        raise typer.Exit(0 if result.passed else 1)
    prefix = "" if runs.step is None else f"step={runs.step}  "
    typer.echo(f"{prefix}n={result.n}  mean={result.mean:.5f}  std={result.std:.5f}  p={result.pvalue:.4g}")
    if result.passed:
        verdict = f"PASS: p={result.pvalue:.4g} < {RECORD_P_THRESHOLD}"
    else:
        verdict = f"FAIL: p={result.pvalue:.4g} ≥ {RECORD_P_THRESHOLD}"
    typer.echo(f"{verdict} (one-sided t-test that the mean is below {target})")
    raise typer.Exit(0 if result.passed else 1)


def _lhs_verdict(lhs: float, passes: bool) -> str:
    return f"{lhs:#.4g} ≥ {track3.MARGIN}" if passes else f"{lhs:#.4g} < {track3.MARGIN}"


def _check_track3(runs: Runs, target: float, json_: bool) -> None:
    v = track3.validity(runs.losses, target)
    if json_:
        _echo_json({"track": 3, "file": str(runs.path), "step": runs.step, "n": v.n, "mean": v.mean, "lhs": v.lhs,
                    "margin": track3.MARGIN, "target": target, "passed": v.passes})
        raise typer.Exit(0 if v.passes else 1)
    prefix = "" if runs.step is None else f"step={runs.step}  "
    typer.echo(f"{prefix}n={v.n}  mean={v.mean:.5f}  ({target} − mean)·√n={v.lhs:#.4g}")
    typer.echo(f"{'PASS' if v.passes else 'FAIL'}: {_lhs_verdict(v.lhs, v.passes)} ({TRACK3_RULE})")
    raise typer.Exit(0 if v.passes else 1)


def _check_track3_table(table: StepTable, target: float, json_: bool) -> None:
    result = track3.earliest_passing_step(table.rows, target)
    row = result.row
    if json_:
        _echo_json({"track": 3, "file": str(table.path), "step": result.step,
                    "n": row.n if row else None, "mean": row.mean if row else None, "lhs": row.lhs if row else None,
                    "margin": track3.MARGIN, "target": target, "passed": row is not None,
                    "steps": [{"step": r.step, "n": r.n, "mean": r.mean, "lhs": r.lhs, "passed": r.passes}
                              for r in result.rows]})
        raise typer.Exit(0 if row else 1)
    rows = [[str(r.step), str(r.n), f"{r.mean:.5f}", f"{r.lhs:#.4g}", "PASS" if r.passes else "FAIL"] for r in result.rows]
    typer.echo(markdown_table(["step", "n", "mean", f"({target} − mean)·√n", f"≥ {track3.MARGIN}"], rows,
                              right=[True, True, True, True, False]))
    if row:
        typer.echo(f"PASS: earliest passing step {row.step}: n={row.n}  mean={row.mean:.5f}  "
                   f"{_lhs_verdict(row.lhs, True)} ({TRACK3_RULE})")
    else:
        best = max(result.rows, key=lambda r: r.lhs)
        typer.echo(f"FAIL: no step passes; the closest, step {best.step}, has {_lhs_verdict(best.lhs, False)} "
                   f"({TRACK3_RULE})")
    raise typer.Exit(0 if row else 1)


@record_app.command()
def compare(
    new: Annotated[Path, typer.Argument(help="The NEW attempt's losses. " + LOSSES_HELP)],
    old: Annotated[Path, typer.Argument(help="The OLD attempt's (the prior record's) losses, in any of the same layouts.")],
    track: TrackOption = 1,
    steps: Annotated[tuple[int, int] | None, typer.Option(metavar="N_NEW N_OLD", help="Track 3 (required): the step counts NEW's and OLD's losses were reached at; a table's losses are read at that step.")] = None,
    json_: JsonOption = False,
) -> None:
    """Compare two attempts: does NEW beat OLD, not only the target?

    Track 3 (--track 3 --steps N_NEW N_OLD), the optimization track's pairwise rule: (loss_diff + step_diff/100·0.0045) / √(1/n_new + 1/n_old) ≥ 0.004, with loss_diff = mean OLD − mean NEW and step_diff = N_OLD − N_NEW (0.0045: the loss 100 steps are worth near the end of a run); prints both means, loss_diff, step_diff and the left-hand side to four significant digits. One run per file is enough.

    Track 1 (default): final val losses by a one-sided t-test that NEW is lower, paired by seed when both files are tables naming the same seeds, else Welch's; train time the same way where both files hold it (a runs table's train_time_ms or train_time_s). Prints each measure's means, the difference NEW − OLD with its 95% CI and the one-sided p. A table of val loss by step counts at its last step.

    Exit code 0 when NEW passes (track 3: the pairwise rule; track 1: NEW is significantly faster, p < 0.01, or, when the files hold no train times, significantly lower in loss), 1 when not, 2 on bad input (one `error:` line): a file that is not a losses file, a step a table lacks, --steps missing with --track 3 (or given without it), fewer than 2 losses per file for a t-test, or values without spread.

    --json keys: track, new, old, passed; track 3 adds n_new, n_old, mean_new, mean_old, steps_new, steps_old, loss_diff, step_diff, loss_per_100_steps (0.0045), lhs, margin (0.004); track 1 adds test ("paired" or "welch"), n_pairs, threshold (0.01), confidence (0.95), decided_by ("train_time" or "val_loss"), val_loss and train_time_ms (null without times): each {n_new, n_old, mean_new, mean_old, difference, ci_low, ci_high, p}.

    Example: speedrun record compare new.txt old.txt --track 3 --steps 3325 3375; speedrun record compare new.csv old.csv
    """
    with exit_on_input_error():
        check_track(track)
        if track == 3 and steps is None:
            raise InputError("--steps N_NEW N_OLD is required with --track 3: the step counts at which NEW's and OLD's "
                             "losses were reached (the pairwise rule credits each 100 steps saved with 0.0045 of loss)")
        if track == 1 and steps is not None:
            raise InputError(f"--steps {steps[0]} {steps[1]}: step counts are for the pairwise rule (--track 3); "
                             "track 1 compares final losses (a table's last step)")
        if steps is not None and min(steps) < 1:
            raise InputError(f"--steps {steps[0]} {steps[1]}: expected step counts ≥ 1")
        new_runs, old_runs = (_some_losses(_compared(path, steps, i)) for i, path in enumerate((new, old)))
        if track == 3:
            _compare_track3(new_runs, old_runs, steps, json_)
        # by seed where the file names seeds (compare_attempts pairs when both name the same ones)
        result = compare_attempts(
            new_runs.by_seed() or new_runs.losses, old_runs.by_seed() or old_runs.losses,
            new_runs.by_seed(new_runs.times_ms) or new_runs.times_ms,
            old_runs.by_seed(old_runs.times_ms) or old_runs.times_ms,
            new_label=str(new), old_label=str(old))
    _compare_track1(result, new_runs, old_runs, json_)


def _compare_track3(new: Runs, old: Runs, steps: tuple[int, int], json_: bool) -> None:
    r = track3.pairwise(new.losses, old.losses, *steps)
    if json_:
        _echo_json({"track": 3, "new": str(new.path), "old": str(old.path), "n_new": r.n_new, "n_old": r.n_old,
                    "mean_new": r.mean_new, "mean_old": r.mean_old, "steps_new": r.new_steps, "steps_old": r.old_steps,
                    "loss_diff": r.loss_diff, "step_diff": r.step_diff,
                    "loss_per_100_steps": track3.LOSS_PER_100_STEPS, "lhs": r.lhs, "margin": track3.MARGIN,
                    "passed": r.passes})
        raise typer.Exit(0 if r.passes else 1)
    per_100 = track3.LOSS_PER_100_STEPS
    typer.echo("\n".join([
        f"new: {new.path}  n={r.n_new}  mean={r.mean_new:.5f}  at {r.new_steps} steps",
        f"old: {old.path}  n={r.n_old}  mean={r.mean_old:.5f}  at {r.old_steps} steps",
        f"loss_diff = mean_old − mean_new = {round(r.loss_diff, 10):#.4g}",  # rounded: 3.2785 − 3.2785 prints 0
        f"step_diff = old − new = {r.step_diff} steps, worth {r.step_diff}/100 · {per_100} = "
        f"{r.step_diff / 100 * per_100:.4g} of loss",
        f"lhs = (loss_diff + step_diff/100 · {per_100}) / √(1/n_new + 1/n_old) = {r.lhs:#.4g}",
        f"{'PASS' if r.passes else 'FAIL'}: {_lhs_verdict(r.lhs, r.passes)} (the optimization track's pairwise rule: "
        f"NEW is {'' if r.passes else 'not '}shown better than OLD)",
    ]))
    raise typer.Exit(0 if r.passes else 1)


def _compare_track1(result: AttemptComparison, new: Runs, old: Runs, json_: bool) -> None:
    def metric(m: Metric | None) -> dict | None:
        return None if m is None else {k: getattr(m, k) for k in (
            "n_new", "n_old", "mean_new", "mean_old", "difference", "ci_low", "ci_high", "p")}

    decided = result.time_ms if result.decided_by == "train time" else result.loss
    if json_:
        _echo_json({"track": 1, "new": str(new.path), "old": str(old.path),
                    "test": "paired" if result.paired else "welch", "n_pairs": result.loss.n_pairs,
                    "threshold": result.threshold, "confidence": result.confidence,
                    "decided_by": result.decided_by.replace(" ", "_"), "passed": result.passed,
                    "val_loss": metric(result.loss), "train_time_ms": metric(result.time_ms)})
        raise typer.Exit(0 if result.passed else 1)
    if result.paired:
        test = f"paired t-test over the {result.loss.n_pairs} seeds both files name"
    else:
        test = "Welch t-test (the files do not both name the same seeds)"
    rows = []
    for m, fmt, unit in ((result.loss, "{:.5f}", ""), (result.time_ms, "{:.1f}", " (ms)")):
        if m is not None:
            rows.append([m.name + unit, fmt.format(m.mean_new), fmt.format(m.mean_old), fmt.format(m.difference),
                         f"[{fmt.format(m.ci_low)}, {fmt.format(m.ci_high)}]", f"{m.p:.4g}"])
    lines = [f"new: {new.path}  n={result.loss.n_new}", f"old: {old.path}  n={result.loss.n_old}", f"test: {test}",
             markdown_table(["measure", "mean NEW", "mean OLD", "NEW − OLD", f"{result.confidence:.0%} CI",
                             "p (NEW lower)"], rows, right=[False, True, True, True, True, True])]
    if result.time_ms is None:
        has = [str(r.path) for r in (new, old) if r.times_ms is not None]
        lines.append(f"train time: not compared ({'only ' + has[0] + ' holds' if has else 'neither file holds'} "
                     "train times); the verdict is on val loss")
    what = "faster" if result.decided_by == "train time" else "lower in val loss"
    if result.passed:
        lines.append(f"PASS: NEW is significantly {what} than OLD: one-sided p={decided.p:.4g} < {result.threshold}")
    else:
        lines.append(f"FAIL: NEW is not significantly {what} than OLD: one-sided p={decided.p:.4g} ≥ {result.threshold}")
    typer.echo("\n".join(lines))
    raise typer.Exit(0 if result.passed else 1)


@record_app.command()
def plan(
    sigma: Annotated[float | None, typer.Option(help="Run-to-run std of the final val loss (about 0.0014 for records since mid-2025). Default with --from: the observed std.")] = None,
    delta: Annotated[float | None, typer.Option(help="How far the true mean final loss is below the target (target − mean). Default with --from: target − the observed mean.")] = None,
    runs: Annotated[int, typer.Option(min=2, help="Runs in the attempt (records submit 5–24, median 10).")] = 10,
    target: TargetOption = RECORD_TARGET,
    from_: Annotated[str | None, typer.Option("--from", help="A sweep or ablation whose completed runs' final val losses are resampled (bootstrap).")] = None,
    arm: Annotated[str | None, typer.Option(help="With --from an ablation: the arm to resample. Default: baseline (or the only arm).")] = None,
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI the sweep logged to.")] = DEFAULT_TRACKING_URI,
    json_: JsonOption = False,
) -> None:
    """How many runs a record claim needs: the probability that an attempt of N runs passes.

    For the record rule (one-sided t-test, p < 0.01; exact, noncentral t) and the optimization track's rule ((3.28 − mean)·√N ≥ 0.004, a z-test assuming σ = 0.0013; exact, normal), both for runs with true mean target − delta and std sigma: the pass probability at --runs and at 3..40 runs, and the fewest runs for 80%, 90% and 95%. With --from, also the record rule's pass probability for N runs resampled from the observed ones (10,000 seeded resamples, ± Monte-Carlo standard error); a sweep's trials differ in config, so their spread overstates run-to-run noise: prefer an ablation (e.g. NAME-promote).

    --json keys: target, sigma, delta, runs, observed ({label, n, mean, std} with --from, else null), record and track3 (each {probability: {runs: p}, runs_needed: {goal: runs or null}}), bootstrap ({runs: {probability, se, resamples}} with --from, else null).

    Example: speedrun record plan --sigma 0.0014 --delta 0.001 --runs 10
    """
    with exit_on_input_error():
        check_target(target)
        label, observed = _observed(from_, arm, tracking_uri) if from_ else (None, None)
        if observed is None and (sigma is None or delta is None):
            raise InputError("--sigma and --delta are required without --from")
        seen = summarize(observed) if observed is not None else None
        if seen is not None:
            if not json_:
                typer.echo(f"observed: {label}, {seen.n} completed runs, mean {seen.mean:.5f}, std {seen.std:.5f}")
            sigma = seen.std if sigma is None else sigma
            delta = target - seen.mean if delta is None else delta
        result = record_plan.plan(sigma, delta, runs, target, observed)
    if json_:
        _echo_json({**dataclasses.asdict(result),
                    "observed": {"label": label, "n": seen.n, "mean": seen.mean, "std": seen.std} if seen else None})
        return
    typer.echo(_plan_text(result, label))


def _observed(name: str, arm: str | None, tracking_uri: str) -> tuple[str, list[float]]:
    from analysis.runs import load_sweep  # loads mlflow, which only --from needs

    return record_plan.observed_losses(load_sweep(name, tracking_uri), arm)


def _plan_text(result: record_plan.Plan, label: str | None) -> str:
    """The plan as a headline, a per-rule summary table and a table of P(pass) by runs."""
    goals, n = record_plan.GOALS, result.runs

    def rule_row(name: str, rule: record_plan.RulePlan) -> list[str]:
        needed = (DASH if rule.runs_needed[g] is None else str(rule.runs_needed[g]) for g in goals)
        return [name, f"{rule.probability[n]:.3f}", *needed]

    summary = [
        rule_row(f"record: t-test p < {RECORD_P_THRESHOLD}", result.record),
        rule_row(f"track 3: ({result.target} − mean)·√N ≥ {track3.MARGIN} "
                 f"(σ={track3.SIGMA})", result.track3),
    ]
    columns = {"record": result.record.probability, "track 3": result.track3.probability}
    if result.bootstrap is not None:
        boot = result.bootstrap[n]
        summary.append([f"bootstrap: {label}, B={boot.resamples}", f"{boot.probability:.3f} ± {boot.se:.3f}",
                        *(DASH for _ in goals)])
        columns["bootstrap"] = {k: b.probability for k, b in result.bootstrap.items()}
    by_runs = [[str(k), *(f"{column[k]:.3f}" for column in columns.values())] for k in result.record.probability]
    return "\n".join([
        f"true mean {result.target - result.delta:.5f} (target {result.target} − delta {result.delta:.5f}), "
        f"run-to-run sigma {result.sigma:.5f}",
        "",
        markdown_table(["rule", f"P(pass), {n} runs", *(f"runs for {g:.0%}" for g in goals)], summary,
                       right=[False, *(True for _ in range(1 + len(goals)))]),
        "",
        "P(pass) by runs:",
        markdown_table(["runs", *columns], by_runs, right=[True] * (1 + len(columns))),
    ])
