"""The ``speedrun script`` commands: the knobs of any train_gpt.py, and patched copies of it."""

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.errors import exit_on_input_error
from trainer.errors import InputError
from trainer.script.knobs import Knob, list_knobs, read_script
from trainer.script.patch import apply_edits, parse_assignments, plan_edits

script_app = typer.Typer(
    help=(
        "Any modded-nanogpt-style train_gpt.py, never edited: list the literals a sweep can override, "
        "write a copy with some of them changed (`python -m trainer.script` runs one)."
        "\n\nExample: speedrun script knobs train_gpt.py --grep 'lr|momentum'"
    ),
    no_args_is_help=True,
)


@script_app.command()
def knobs(
    file: Annotated[Path, typer.Argument(help="The train_gpt.py (or a record's code) to read.")],
    grep: Annotated[str | None, typer.Option(help="Only addresses matching this regular expression (any case).")] = None,
) -> None:
    """List the script's knobs: every literal in a named position, with its address, value and line.

    An address is what --set takes: `Hyperparameters.num_iterations` (class attribute), `WINDOW` (module constant), `TRAINING_STAGES[1].lr_mul` and `TRAINING_STAGES[0].window_sizes[1]` (keywords of calls in a list), `adam_defaults.lr` (dict(...) or {...}), `optimizer2.momentum` (a call assigned to a name), `Muon.momentum#2` (the second unassigned Muon(...) call), `get_muon_momentum.momentum_min` (a default), `get_lr.return{0.1}` (a number inside an expression). The grammar is in trainer/script/knobs.py. Arithmetic such as `8 * 2048 * 8` is one knob, shown with its value.

    Example: speedrun script knobs train_gpt.py --grep 'lr|momentum|window|batch|iterations|cooldown'
    """
    with exit_on_input_error():
        found = list_knobs(read_script(file), str(file))
        if grep is not None:
            try:
                pattern = re.compile(grep, re.IGNORECASE)
            except re.error as e:
                raise InputError(f"--grep '{grep}': not a regular expression: {e}") from None
            found = [k for k in found if pattern.search(k.address)]
    if not found:
        typer.echo("no knob matches" if grep is not None else f"{file}: no knobs", err=True)
        return
    rows = [("ADDRESS", "VALUE", "LINE")] + [(k.address, _shown(k), str(k.line)) for k in found]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for address, value, line in rows:
        typer.echo(f"{address:<{widths[0]}}  {value:<{widths[1]}}  {line}".rstrip())


def _shown(knob: Knob) -> str:
    """The value, and the source where it is arithmetic: `131072 = 8 * 2048 * 8`."""
    value = repr(knob.value)
    arithmetic = re.search(r"[*/%()]|\s|(?<!^)(?<![eE])[-+]", knob.text) and knob.kind in ("int", "float")
    return f"{value} = {' '.join(knob.text.split())}" if arithmetic else value


@script_app.command()
def patch(
    file: Annotated[Path, typer.Argument(help="The train_gpt.py to read (never edited).")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="ADDR=VALUE, value parsed as YAML (repeatable); ADDR from `speedrun script knobs`.")
    ] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Where the patched copy goes ('-' for stdout).")] = "-",
) -> None:
    """Write a copy of the script with some knobs changed: only those literals' text differs, every other byte is kept.

    Values are parsed as YAML (1750, 0.05, 1e-3, true, [1, 3], "a string"); each must fit its knob: an int knob takes an int, a float knob an int or a float, a bool knob true or false, a tuple knob a list of numbers. An unknown or ambiguous address fails, naming the closest ones. Each change is printed on stderr as `FILE:LINE: ADDR: OLD -> NEW`.

    Example: speedrun script patch train_gpt.py --set Hyperparameters.num_iterations=1750 --set 'TRAINING_STAGES[1].lr_mul=1.6' -o runs/a/train_gpt.py
    """
    with exit_on_input_error():
        if not overrides:
            raise InputError("nothing to change: give at least one --set ADDR=VALUE")
        source = read_script(file)
        edits = plan_edits(source, parse_assignments(overrides), str(file))
        patched = apply_edits(source, edits, str(file))
    for edit in edits:
        typer.echo(f"{file}:{edit.knob.line}: {edit.knob.address}: {edit.knob.text} -> {edit.text}", err=True)
    if out == "-":
        sys.stdout.write(patched)
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(patched, encoding="utf-8", newline="")
