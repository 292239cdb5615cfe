"""The `speedrun` command line."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli_data import data_app
from orchestrator.cli_record import record_app
from orchestrator.cli_report import report
from orchestrator.cli_script import script_app
from orchestrator.errors import INPUT_ERROR_EXIT_CODE, exit_on_input_error, exit_on_interrupt
from orchestrator.launch import DEFAULT_COMPILE_CACHE
from orchestrator.stores import DEFAULT_STORAGE, DEFAULT_TRACKING_URI
from trainer.errors import InputError

app = typer.Typer(
    help="Sweeps, ablations and record attempts for the NanoGPT speedrun.\n\nExample: speedrun train --config tiny; speedrun sweep smoke",
    no_args_is_help=True,
    add_completion=False,
)
FRESH_HELP = ("Start a new trainer process for every trial. Default: each trial slot keeps a warm trainer process "
              "that reuses its imports, CUDA context and compiled model from one trial to the next (same results).")
CACHE_HELP = "Root of the per-node torch.compile caches (inductor, Triton) that every trial of a node shares."

app.add_typer(data_app, name="data")
app.add_typer(record_app, name="record")
app.add_typer(script_app, name="script")
app.command()(report)


@app.command()
def train(
    config: Annotated[str, typer.Option(help="Preset name (tiny, gpt2_124m) or YAML path.")] = "tiny",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="KEY=VALUE override, value parsed as YAML (repeatable).")
    ] = None,
    events: Annotated[str | None, typer.Option(help="Write JSON-line events here ('-' for stdout).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue from a checkpoint directory.")] = None,
    nproc: Annotated[int, typer.Option(help="Processes (GPUs) on this node; >1 launches torchrun.")] = 1,
    horizon: Annotated[float, typer.Option(help="Run this fraction of the steps, every schedule compressed to fit (ends cooled down).")] = 1.0,
) -> None:
    """Train the speedrun GPT once.

    Example: speedrun train --config tiny --set schedule.num_iterations=30 --events run.jsonl
    """
    from orchestrator.launch import trainer_args, trainer_command

    resume_args = (["--resume", str(resume)] if resume else []) + (["--horizon", str(horizon)] if horizon != 1.0 else [])
    if nproc > 1:
        # torchrun turns any failed rank into exit 1 and a traceback of its own: check the
        # config against the rank count here, so a bad one exits 2 with one `error:` line.
        from trainer.config import load_config

        with exit_on_input_error():
            load_config(config, overrides or []).check_for_run(nproc)
        raise typer.Exit(subprocess.call(trainer_command(config, overrides or [], events, nproc) + resume_args))
    from trainer.__main__ import main

    raise typer.Exit(main(trainer_args(config, overrides or [], events) + resume_args))


@app.command()
def sweep(
    space: Annotated[str, typer.Argument(help="Space YAML file, or a shipped space's name (smoke, lr, ...).")],
    name: Annotated[str | None, typer.Option(help="Sweep name: the Optuna study and MLflow experiment. Default: the space's name.")] = None,
    trials: Annotated[int | None, typer.Option(help="Number of trials. Default: budget.trials of the space.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster to join (auto: the one `ray start` runs on this machine, or HEAD_IP:6379). Default: a new local Ray, even where a cluster runs.")] = None,
    gpus_per_trial: Annotated[int | None, typer.Option(help="GPUs per trial, all on one node; >1 runs torchrun. Default: resources.gpus.")] = None,
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = DEFAULT_TRACKING_URI,
    storage: Annotated[str, typer.Option(help="Optuna storage URL (SQLAlchemy).")] = DEFAULT_STORAGE,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the sweep NAME after its driver stopped: finished trials are kept, interrupted ones re-run.")] = False,
    fresh_processes: Annotated[bool, typer.Option("--fresh-processes", help=FRESH_HELP)] = False,
    compile_cache: Annotated[str, typer.Option(help=CACHE_HELP)] = DEFAULT_COMPILE_CACHE,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Run a hyperparameter sweep: Optuna proposes, Ray Tune runs trainer trials, MLflow records.

    The space is validated first: an invalid one exits 2 before anything starts. Each trial is one trainer run; its val events stream to Tune (and to ASHA when the space asks for it). Every trial lands in MLflow as a nested run under the sweep's run, the Optuna study is stored under the sweep's name, and the best trial's config is written to sweeps/NAME/best.yaml. Exit code 0 when at least one trial completed, 1 when none did or a store could not be written, 130 when interrupted (Ctrl-C or SIGTERM stops the running trials cleanly). One driver runs a sweep at a time: a second is refused, naming the first.

    After the driver was killed (or Ctrl-C), run the same command with --resume: the Optuna study and the MLflow experiment say which trials finished; those count toward --trials and are never re-run, interrupted ones run again with the same parameters. A resume may change --trials, the sampler, CPUs and the time limit, not what a trial is (base, params, steps, objective, scheduler, GPUs).

    Example: speedrun sweep smoke    (CPU, tiny trials; then: speedrun ui; to continue: speedrun sweep smoke --resume)
    """
    from orchestrator.sweep import SweepOptions, prepare_space, run_sweep

    options = SweepOptions(name=name, trials=trials, address=address, gpus_per_trial=gpus_per_trial,
                           tracking_uri=tracking_uri, storage=storage, resume=resume,
                           fresh_processes=fresh_processes, compile_cache=compile_cache)
    with exit_on_input_error(), exit_on_interrupt():
        loaded = _load_or_exit(lambda: prepare_space(space, trials=trials, gpus_per_trial=gpus_per_trial))
        result = run_sweep(loaded, options, console=_stderr_console() if json_ else None)
    if json_:
        _print_json(result, "sweep", options)
    raise typer.Exit(result.exit_code)


@app.command()
def ablate(
    ablation: Annotated[str, typer.Argument(help="Ablation YAML file, or a shipped ablation's name (tiny_switches, ...).")],
    seeds: Annotated[int | None, typer.Option(help="Seeds per arm (0..S-1). Default: seeds of the file.")] = None,
    name: Annotated[str | None, typer.Option(help="Ablation name: the Optuna study and MLflow experiment. Default: the file's name.")] = None,
    leave_one_out: Annotated[Path | None, typer.Option("--leave-one-out", help="A candidate trainer config (e.g. sweeps/NAME/best.yaml): it becomes the baseline, and each of its changes from the file's base is reverted in an arm of its own.")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster to join. Default: a local Ray.")] = None,
    gpus_per_trial: Annotated[int | None, typer.Option(help="GPUs per run, all on one node; >1 runs torchrun. Default: resources.gpus.")] = None,
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = DEFAULT_TRACKING_URI,
    storage: Annotated[str, typer.Option(help="Optuna storage URL (SQLAlchemy).")] = DEFAULT_STORAGE,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the ablation NAME after its driver stopped: finished runs are kept.")] = False,
    fresh_processes: Annotated[bool, typer.Option("--fresh-processes", help=FRESH_HELP)] = False,
    compile_cache: Annotated[str, typer.Option(help=CACHE_HELP)] = DEFAULT_COMPILE_CACHE,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP + " An ablation's adds its effects (analysis/report_json.py).")] = False,
) -> None:
    """Run an ablation: a baseline and variants, each with the same seeds (paired), interleaved.

    Every (arm, seed) is one trainer run scheduled like a sweep trial (Ray, MLflow nested runs, failures recorded, --resume). Runs go seed by seed, the arm order rotated each seed, so a slow node or a drifting clock does not favour one arm. At the end the effect table is printed (each variant against the baseline: difference in final val loss with its 95% CI, paired and Welch p-values, Holm-adjusted) and the report is written to reports/NAME/.

    Example: speedrun ablate tiny_switches --seeds 3    (CPU, about 4 minutes; then: speedrun report tiny_switches)
    """
    from orchestrator.ablate import describe_arms, prepare_ablation
    from orchestrator.sweep import SweepOptions, run_sweep

    with exit_on_input_error(), exit_on_interrupt("the ablation"):
        loaded = _load_or_exit(lambda: prepare_ablation(ablation, seeds, gpus_per_trial, leave_one_out))
        if name is None and leave_one_out is not None:
            name = f"{loaded.name}-loo-{leave_one_out.stem}"
        typer.echo("arms:\n  " + "\n  ".join(describe_arms(loaded)), err=json_)
        options = SweepOptions(name=name, address=address, gpus_per_trial=gpus_per_trial,
                               tracking_uri=tracking_uri, storage=storage, resume=resume,
                               fresh_processes=fresh_processes, compile_cache=compile_cache)
        result = run_sweep(loaded, options, console=_stderr_console() if json_ else None)
        if result.complete:
            from analysis.report import effect_table, write_report

            typer.echo(effect_table(result.name, tracking_uri), err=json_)
            typer.echo(f"report: {write_report(result.name, tracking_uri, storage=storage)}", err=json_)
    if json_:
        _print_json(result, "ablation", options)
    raise typer.Exit(result.exit_code)


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="The sweep to promote from (its MLflow experiment name).")],
    top_k: Annotated[int, typer.Option(help="How many of the sweep's best configs to re-run.")] = 3,
    reseeds: Annotated[int, typer.Option(help="Fresh seeds per config.")] = 5,
    nproc: Annotated[int, typer.Option(help="Ranks in the record folder's run.sh (torchrun); 1 runs plain python.")] = 8,
    address: Annotated[str | None, typer.Option(help="Ray cluster to join. Default: a local Ray.")] = None,
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI (the sweep's).")] = DEFAULT_TRACKING_URI,
    storage: Annotated[str, typer.Option(help="Optuna storage URL.")] = DEFAULT_STORAGE,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted promotion.")] = False,
    track: Annotated[int, typer.Option(help="1: pick by mean final val loss (the record). 3: the optimization track: pick by the earliest val step whose mean passes its validity rule, and write its submission folder.")] = 1,
    against: Annotated[Path | None, typer.Option(help="With --track 3: a prior result's losses (one per line, or a table of val loss by step and seed) to check the pairwise rule against.")] = None,
    against_steps: Annotated[int | None, typer.Option(help="The prior result's step count (required with --against).")] = None,
) -> None:
    """Promote a sweep's winner: re-run its K best configs with R fresh seeds, pick by mean, write a record folder.

    The best single run of a sweep is biased low (the winner's curse), so the finalists are re-run as an ablation named NAME-promote (the sweep's best trial is its baseline; paired by seed) and the config with the lowest mean final val loss wins. Writes records/<date>_NAME/: config.yaml (the full resolved config), run.sh (torchrun on --nproc ranks; FineWeb from $DATA_DIR), README.md (the evidence: means, CIs, seeds, MLflow run ids, commit), statistics.md (finalists compared, the record rule applied) and environment.json; also logged on the promotion's MLflow run.

    With --track 3 (a sweep of a script with objective steps_to_target), the finalist whose fresh seeds pass the optimization track's validity rule at the earliest val step wins, and records/<date>_NAME-track3/ holds what its pull request needs: the patched script, one log per seed with the full code, val_losses.csv (val loss by step and seed), README.md with the validity check at the claimed step and, with --against FILE --against-steps N, the pairwise check against that prior result.

    Example: speedrun promote smoke --top-k 2 --reseeds 3 --nproc 1    (after: speedrun sweep smoke; track 3: speedrun promote NAME --track 3 --reseeds 8 --against prior.txt --against-steps 3250)
    """
    from orchestrator.promote import promote as run_promotion
    from orchestrator.submission import Against
    from orchestrator.sweep import SweepOptions

    options = SweepOptions(address=address, tracking_uri=tracking_uri, storage=storage, resume=resume)
    with exit_on_input_error(), exit_on_interrupt("the promotion"):
        if (against is None) != (against_steps is None):
            raise InputError("--against and --against-steps go together: the prior result's losses and its step count")
        prior = Against(against, against_steps) if against is not None else None
        folder = run_promotion(name, top_k, reseeds, options, nproc, track, prior)
    typer.echo(f"record folder: {folder}")


JSON_HELP = ("Print the outcome as one JSON object on stdout (orchestrator/result_json.py documents its keys: "
             "name, complete, exit_code, best, best_config, trials, mlflow, optuna); the progress goes to stderr.")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _print_json(result, kind: str, options) -> None:
    import json

    from orchestrator.result_json import result_json

    typer.echo(json.dumps(result_json(result, kind, options.tracking_uri, options.storage)))


def _load_or_exit(load):
    """The loaded space or ablation; its SpaceError's lines on stderr and exit 2 otherwise."""
    from search_spaces import SpaceError

    try:
        return load()
    except SpaceError as err:
        for line in err.errors:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(code=INPUT_ERROR_EXIT_CODE) from None


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to bind; 0.0.0.0 exposes the UI to the network.")] = "127.0.0.1",
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking store to show (the sweep's --tracking-uri).")] = DEFAULT_TRACKING_URI,
) -> None:
    """Open the MLflow UI on the sweeps' tracking store (mlflow server), local-only by default.

    Prints the URL, then serves until Ctrl-C. Compare trials' val_loss curves: open the sweep's experiment, select runs, Compare.

    Example: speedrun ui --port 5001    (in the directory where `speedrun sweep` ran; then open http://127.0.0.1:5001/)
    """
    from orchestrator.ui import run_ui

    with exit_on_input_error():
        code = run_ui(tracking_uri, host=host, port=port, echo=typer.echo)
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
