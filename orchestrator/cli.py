"""The `speedrun` command line."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli_data import data_app
from orchestrator.errors import INPUT_ERROR_EXIT_CODE, exit_on_input_error
from orchestrator.stores import DEFAULT_STORAGE, DEFAULT_TRACKING_URI

app = typer.Typer(
    help="Sweeps, ablations and record attempts for the NanoGPT speedrun.\n\nExample: speedrun train --config tiny; speedrun sweep smoke",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(data_app, name="data")


@app.command()
def train(
    config: Annotated[str, typer.Option(help="Preset name (tiny, gpt2_124m) or YAML path.")] = "tiny",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="KEY=VALUE override, value parsed as YAML (repeatable).")
    ] = None,
    events: Annotated[str | None, typer.Option(help="Write JSON-line events here ('-' for stdout).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue from a checkpoint directory.")] = None,
    nproc: Annotated[int, typer.Option(help="Processes (GPUs) on this node; >1 launches torchrun.")] = 1,
) -> None:
    """Train the speedrun GPT once.

    Example: speedrun train --config tiny --set schedule.num_iterations=30 --events run.jsonl
    """
    from orchestrator.launch import trainer_args, trainer_command

    resume_args = ["--resume", str(resume)] if resume else []
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
    address: Annotated[str | None, typer.Option(help="Ray cluster to join (auto, or HEAD_IP:6379), from a node of that cluster. Default: a local Ray.")] = None,
    gpus_per_trial: Annotated[int | None, typer.Option(help="GPUs per trial, all on one node; >1 runs torchrun. Default: resources.gpus.")] = None,
    tracking_uri: Annotated[str, typer.Option(help="MLflow tracking URI.")] = DEFAULT_TRACKING_URI,
    storage: Annotated[str, typer.Option(help="Optuna storage URL (SQLAlchemy).")] = DEFAULT_STORAGE,
) -> None:
    """Run a hyperparameter sweep: Optuna proposes, Ray Tune runs trainer trials, MLflow records.

    The space is validated first: an invalid one exits 2 before anything starts. Each trial is one trainer run; its val events stream to Tune (and to ASHA when the space asks for it). Every trial lands in MLflow as a nested run under the sweep's run, the Optuna study is stored under the sweep's name, and the best trial's config is written to sweeps/NAME/best.yaml. Exit code 0 when at least one trial completed, 1 when none did, 130 when interrupted (Ctrl-C stops the running trials cleanly).

    Example: speedrun sweep smoke    (CPU, tiny trials; then: speedrun ui)
    """
    from search_spaces import SpaceError

    from orchestrator.sweep import SweepOptions, prepare_space, run_sweep

    options = SweepOptions(name=name, trials=trials, address=address, gpus_per_trial=gpus_per_trial,
                           tracking_uri=tracking_uri, storage=storage)
    with exit_on_input_error():
        try:
            loaded = prepare_space(space, trials=trials, gpus_per_trial=gpus_per_trial)
        except SpaceError as err:
            for line in err.errors:
                typer.echo(f"error: {line}", err=True)
            raise typer.Exit(code=INPUT_ERROR_EXIT_CODE) from None
        result = run_sweep(loaded, options)
    raise typer.Exit(result.exit_code)


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
