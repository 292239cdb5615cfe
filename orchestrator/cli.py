"""The `speedrun` command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli_data import data_app
from orchestrator.errors import exit_on_input_error

app = typer.Typer(
    help="Sweeps, ablations and record attempts for the NanoGPT speedrun.\n\nExample: speedrun train --config tiny",
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
    argv = ["--config", config]
    for item in overrides or []:
        argv += ["--set", item]
    if events:
        argv += ["--events", events]
    if resume:
        argv += ["--resume", str(resume)]
    if nproc > 1:
        # torchrun turns any failed rank into exit 1 and a traceback of its own: check the
        # config against the rank count here, so a bad one exits 2 with one `error:` line.
        from trainer.config import load_config

        with exit_on_input_error():
            load_config(config, overrides or []).check_for_run(nproc)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "trainer"]
        raise typer.Exit(subprocess.call(cmd + argv))
    from trainer.__main__ import main

    raise typer.Exit(main(argv))


if __name__ == "__main__":
    app()
