"""The ``speedrun record`` commands: run a record attempt, check final losses against the record
rule, and plan how many runs a claim needs."""

from pathlib import Path
from typing import Annotated

import typer

from analysis import record_plan
from analysis.losses_file import read_losses
from analysis.stats import RECORD_P_THRESHOLD, RECORD_TARGET, record_test, summarize
from analysis.tables import DASH, markdown_table
from orchestrator.errors import exit_on_input_error
from orchestrator.stores import DEFAULT_STORAGE, DEFAULT_TRACKING_URI
from trainer.errors import InputError

record_app = typer.Typer(
    help=(
        "Record attempts: run one, apply the record rule (ttest_1samp(losses, 3.28, alternative='less').pvalue < 0.01) "
        "to final losses, and plan how many runs a claim needs."
        "\n\nExample: speedrun record run records/2026-11-25_lr-1 --runs 10; speedrun record plan --sigma 0.0014 --delta 0.001"
    ),
    no_args_is_help=True,
)

TargetOption = Annotated[float, typer.Option(help="The val loss the mean must be shown to be below.")]


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
        verdict = run_attempt(record_dir, runs, options, baseline=baseline, target=target, gpus=gpus_per_run,
                              cpus=cpus_per_run, looks=looks)
    typer.echo(f"{'PASS' if verdict.passed else 'FAIL'}: n={verdict.n} mean={verdict.mean:.4f} p={verdict.pvalue:.4g}; "
               f"see {record_dir / 'attempt' / 'verdict.md'}")
    raise typer.Exit(0 if verdict.passed else 1)


@record_app.command()
def check(
    losses_file: Annotated[Path, typer.Argument(help="Final val losses, one per line; blank lines and # comments allowed.")],
    target: TargetOption = RECORD_TARGET,
) -> None:
    """Apply the record rule to an attempt's final val losses: a one-sided one-sample t-test, p < 0.01.

    Prints n, mean, std and p, then PASS or FAIL with the reason. Exit code 0 on PASS, 1 on FAIL, 2 when the file cannot be read, has a line that is not a number, or holds fewer than 2 losses.

    Example: speedrun record check losses.txt    (losses.txt: 3.2791, 3.2776, ... one per line)
    """
    with exit_on_input_error():
        losses = read_losses(losses_file)
        if len(losses) < 2:
            raise InputError(f"{losses_file}: {len(losses)} loss(es); the record rule's t-test needs at least 2 runs")
    result = record_test(losses, target)
    typer.echo(f"n={result.n}  mean={result.mean:.5f}  std={result.std:.5f}  p={result.pvalue:.4g}")
    if result.passed:
        verdict = f"PASS: p={result.pvalue:.4g} < {RECORD_P_THRESHOLD}"
    else:
        verdict = f"FAIL: p={result.pvalue:.4g} ≥ {RECORD_P_THRESHOLD}"
    typer.echo(f"{verdict} (one-sided t-test that the mean is below {target})")
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
) -> None:
    """How many runs a record claim needs: the probability that an attempt of N runs passes.

    For the record rule (one-sided t-test, p < 0.01; exact, noncentral t) and the optimization track's rule ((3.28 − mean)·√N ≥ 0.004, a z-test assuming σ = 0.0013; exact, normal), both for runs with true mean target − delta and std sigma: the pass probability at --runs and at 3..40 runs, and the fewest runs for 80%, 90% and 95%. With --from, also the record rule's pass probability for N runs resampled from the observed ones (10,000 seeded resamples, ± Monte-Carlo standard error); a sweep's trials differ in config, so their spread overstates run-to-run noise: prefer an ablation (e.g. NAME-promote).

    Example: speedrun record plan --sigma 0.0014 --delta 0.001 --runs 10
    """
    with exit_on_input_error():
        label, observed = _observed(from_, arm, tracking_uri) if from_ else (None, None)
        if observed is None and (sigma is None or delta is None):
            raise InputError("--sigma and --delta are required without --from")
        if observed is not None:
            seen = summarize(observed)
            typer.echo(f"observed: {label}, {seen.n} completed runs, mean {seen.mean:.5f}, std {seen.std:.5f}")
            sigma = seen.std if sigma is None else sigma
            delta = target - seen.mean if delta is None else delta
        result = record_plan.plan(sigma, delta, runs, target, observed)
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
        rule_row(f"track 3: ({result.target} − mean)·√N ≥ {record_plan.TRACK3_MARGIN} "
                 f"(σ={record_plan.TRACK3_SIGMA})", result.track3),
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
