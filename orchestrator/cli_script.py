"""The ``speedrun script`` commands: the knobs of any train_gpt.py, and patched copies of it."""

import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.errors import exit_on_input_error
from trainer.errors import InputError
from trainer.script.extract import extract as extract_log
from trainer.script.folder import (
    ScriptFolder,
    apply_folder_edits,
    folder_edits,
    folder_knobs,
    open_folder,
    write_copy,
)
from trainer.script.knobs import Knob
from trainer.script.patch import parse_assignments

script_app = typer.Typer(
    help=(
        "Any modded-nanogpt-style train_gpt.py, never edited: list the literals a sweep can override, "
        "write a copy with some of them changed (`python -m trainer.script` runs one)."
        "\n\nExample: speedrun script knobs train_gpt.py --grep 'lr|momentum'"
    ),
    no_args_is_help=True,
)


SHOWN_MAX = 60


@script_app.command()
def knobs(
    file: Annotated[Path, typer.Argument(help="The train_gpt.py (or a record's code) to read.")],
    grep: Annotated[str | None, typer.Option(help="Only addresses matching this regular expression (any case).")] = None,
) -> None:
    """List the script's knobs, and those of the modules it imports from its folder (as FILE:ADDRESS): every literal in a named position, with its address, value and line.

    An address is what --set takes: `Hyperparameters.num_iterations` (class attribute), `WINDOW` (module constant), `TRAINING_STAGES[1].lr_mul` and `TRAINING_STAGES[0].window_sizes[1]` (keywords of calls in a list), `adam_defaults.lr` (dict(...) or {...}), `optimizer2.momentum` (a call assigned to a name), `Muon.momentum#2` (the second unassigned Muon(...) call), `get_muon_momentum.momentum_min` (a default), `get_lr.return{0.1}` (a number inside an expression). `triton_kernels.py:FusedSoftcappedCrossEntropy.forward.A` is a knob of triton_kernels.py, which the script imports. The grammar is in trainer/script/knobs.py. Arithmetic such as `8 * 2048 * 8` is one knob, shown with its value.

    Example: speedrun script knobs train_gpt.py --grep 'lr|momentum|window|batch|iterations|cooldown'
    """
    with exit_on_input_error():
        found = folder_knobs(open_folder(file))
        if grep is not None:
            try:
                pattern = re.compile(grep, re.IGNORECASE)
            except re.error as e:
                raise InputError(f"--grep '{grep}': not a regular expression: {e}") from None
            found = [(address, k) for address, k in found if pattern.search(address)]
    if not found:
        typer.echo("no knob matches" if grep is not None else f"{file}: no knobs", err=True)
        return
    rows = [("ADDRESS", "VALUE", "LINE")] + [(address, _shown(k), str(k.line)) for address, k in found]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for address, value, line in rows:
        typer.echo(f"{address:<{widths[0]}}  {value:<{widths[1]}}  {line}".rstrip())


def _shown(knob: Knob) -> str:
    """The value, and the source where it is arithmetic: `131072 = 8 * 2048 * 8`; a long one cut
    (a kernel's embedded source string would otherwise widen every row)."""
    value = repr(knob.value)
    arithmetic = re.search(r"[*/%()]|\s|(?<!^)(?<![eE])[-+]", knob.text) and knob.kind in ("int", "float")
    shown = f"{value} = {' '.join(knob.text.split())}" if arithmetic else value
    return shown if len(shown) <= SHOWN_MAX else shown[: SHOWN_MAX - 1] + "…"


@script_app.command()
def patch(
    file: Annotated[Path, typer.Argument(help="The train_gpt.py to read (never edited).")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="ADDR=VALUE, value parsed as YAML (repeatable); ADDR from `speedrun script knobs`.")
    ] = None,
    out: Annotated[str, typer.Option("--out", "-o", help="Where the patched script goes ('-' for stdout), or a folder (no .py suffix) that gets the script and the modules it imports.")] = "-",
) -> None:
    """Write a copy of the script with some knobs changed: only those literals' text differs, every other byte is kept.

    Values are parsed as YAML (1750, 0.05, 1e-3, true, [1, 3], "a string"; a quoted "2800" stays a string); each must fit its knob: an int knob takes an int, a float knob an int or a float, a bool knob true or false, a tuple knob a list of numbers. An unknown or ambiguous address fails, naming the closest ones. A knob of a module the script imports (FILE:ADDRESS) needs -o FOLDER: the script runs with its modules beside it. Each change is printed on stderr as `FILE:LINE: ADDR: OLD -> NEW`.

    Example: speedrun script patch train_gpt.py --set Hyperparameters.num_iterations=1750 --set 'triton_kernels.py:FusedSoftcappedCrossEntropy.forward.A=23.0' -o runs/a
    """
    with exit_on_input_error():
        if not overrides:
            raise InputError("nothing to change: give at least one --set ADDR=VALUE")
        folder = open_folder(file)
        edits = folder_edits(folder, parse_assignments(overrides))
        to_folder = out != "-" and not out.endswith(".py")
        if not to_folder and set(edits) != {folder.script.name}:
            raise InputError(f"-o {out}: a knob of a module {file.name} imports is set; give -o a folder, "
                             "which gets the script and the modules it imports")
        patched = apply_folder_edits(folder, edits)
        written = _write(folder, patched, out, to_folder) if out != "-" else []
    for name, file_edits in edits.items():
        for edit in file_edits:
            typer.echo(f"{folder.root / name}:{edit.knob.line}: {edit.knob.address}: {edit.knob.text} -> {edit.text}", err=True)
    if to_folder:
        typer.echo("wrote " + ", ".join(str(p) for p in written), err=True)
    elif out == "-":
        sys.stdout.write(patched[folder.script.name])


OUT_EXPECTED = "expected a .py file for the patched script, or a folder (no .py suffix) for it and the modules it imports"


def _write(folder: ScriptFolder, patched: dict[str, str], out: str, to_folder: bool) -> list[Path]:
    """Write the patched script (`-o FILE.py`) or a folder copy (`-o DIR`); the paths written.
    InputError, before anything is written, for an -o that cannot hold it or is the original."""
    target = Path(out)
    if target.is_dir() != to_folder and target.exists():
        raise InputError(f"-o {out}: is {'a file' if to_folder else 'a folder'}; {OUT_EXPECTED}")
    paths = {name: target / name for name in folder.files()} if to_folder else {folder.script.name: target}
    for name, path in paths.items():
        # a symbolic link counts too: a trial's code folder links the originals
        if path.resolve() == (folder.root / name).resolve():
            raise InputError(f"-o {out}: would overwrite the original {folder.root / name}; expected another "
                             f"{'folder' if to_folder else 'file'} (the original is never edited)")
    try:
        if to_folder:
            return write_copy(folder, patched, target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(patched[folder.script.name], encoding="utf-8", newline="")
    except OSError as e:
        raise InputError(f"-o {out}: cannot write {e.filename or out}: {e.strerror or e}") from None
    return [target]


@script_app.command("extract")
def extract_command(
    log: Annotated[Path, typer.Argument(help="A published record log: the record's code, a line of 100 '=', then the console output.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The folder for train_gpt.py and the modules the log embeds (created if missing).")],
) -> None:
    """Turn a modded-nanogpt record log into a runnable folder: train_gpt.py and, beside it, each file the log embeds.

    The code above the log's line of 100 '=' becomes OUT/train_gpt.py; a 2026 track-1 log also holds the modules the script reads and imports from beside itself, each after a `# NAME.py` banner, and each becomes OUT/NAME.py. Every file must parse as Python. An existing file with other content is never overwritten (the command fails, writing nothing); one with the same content is kept. Each file of the folder is printed.

    Example: speedrun script extract records/track_1_short/2026-01-19_BigramHashEmbedding/40ec7bb6-14b3-46f8-90b7-bb5ed188faba.txt -o runs/bigram
    """
    with exit_on_input_error():
        written = extract_log(log, out)
    for path in written:
        typer.echo(str(path))
