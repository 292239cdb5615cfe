"""A losses file, as `speedrun record check` and `speedrun record compare` read it. Three layouts:

- final val losses, one per line (`3.2791`);
- a table of val loss by step and seed, as the optimization track's runs print val every 25
  steps near the end: a header row whose first column is `step` and whose other columns name
  seeds (`step,seed_0,seed_1`), then one row per val step, each cell that seed's val loss there;
- a table of runs, one per row (a track-1 results table): a header naming `val_loss` and,
  optionally, `seed` and the run's `train_time_ms` or `train_time_s`.

A table's cells are separated by commas, tabs or whitespace: whichever its header uses. Blank
lines and `#` comments (whole-line or after the values) are skipped in every layout, so a file
can carry notes such as `3.2791  # seed 7, node 3`. Anything else (a missing cell, a duplicate
step, a non-finite or negative loss, an unknown column) is an InputError naming file and line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import InputError
from trainer.text import quoted, read_text

# a plain decimal number: Python's float() also takes `3_27` (327.0), `nan`, `inf` and `1e400`,
# none of which is a loss someone meant to write
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_STEP = re.compile(r"\d+")

STEP = "step"
VAL_LOSS, SEED, TIME_MS, TIME_S = "val_loss", "seed", "train_time_ms", "train_time_s"
RUN_COLUMNS = (VAL_LOSS, SEED, TIME_MS, TIME_S)
LAYOUTS = ("final val losses, one per line, or a table: `step,<seed>,<seed>,...` (val loss by step and seed) "
           f"or a header naming `{VAL_LOSS}` (one run per row)")
_STEPS_SHOWN = 8  # a table's steps listed in a message, first and last ones


@dataclass(frozen=True)
class Runs:
    """One loss per run, with each run's seed and train time where the file names them."""

    path: Path
    losses: tuple[float, ...]
    seeds: tuple[str, ...] | None = None  # None: the file does not say which seed each loss is
    times_ms: tuple[float, ...] | None = None
    step: int | None = None  # the val step of a step table these losses were read at

    def by_seed(self, values: tuple[float, ...] | None = None) -> dict[str, float] | None:
        """{seed: loss} (or {seed: value} of `values`, e.g. times_ms); None without seeds."""
        values = self.losses if values is None else values
        return None if self.seeds is None or values is None else dict(zip(self.seeds, values))


@dataclass(frozen=True)
class StepTable:
    """Val loss by step and seed: `rows[step]` holds every seed's loss at that step, in `seeds` order."""

    path: Path
    seeds: tuple[str, ...]
    rows: Mapping[int, tuple[float, ...]]  # ascending steps

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(self.rows)

    def at(self, step: int, flag: str = "--step") -> Runs:
        """The losses at one step; an InputError naming `flag`, the file and its steps when it has none there."""
        if step not in self.rows:
            raise InputError(f"{flag}: {self.path} has no val step {step}; its steps: {self.steps_text()}")
        return Runs(self.path, self.rows[step], self.seeds, step=step)

    def last(self) -> Runs:
        """The losses at the last val step: the runs' final losses."""
        return self.at(self.steps[-1])

    def by_step(self) -> dict[int, dict[str, float]]:
        return {step: dict(zip(self.seeds, losses)) for step, losses in self.rows.items()}

    def steps_text(self) -> str:
        steps = [str(s) for s in self.steps]
        if len(steps) > _STEPS_SHOWN:
            half = _STEPS_SHOWN // 2
            steps = [*steps[:half], "…", *steps[-half:]]
        return f"{', '.join(steps)} ({len(self.rows)} step{'s' if len(self.rows) != 1 else ''})"


def load_losses(path: Path) -> Runs | StepTable:
    """The file's losses, in whichever layout it uses; InputError naming the file and line of anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; expected {LAYOUTS}")
    raw = read_text(path, LAYOUTS).splitlines()
    lines = [(number, line.split("#", 1)[0].strip()) for number, line in enumerate(raw, start=1)]
    lines = [(number, field) for number, field in lines if field]
    if lines and _is_header(lines[0][1]):
        return _table(path, lines)
    return Runs(path, tuple(_loss(field, path, number, raw[number - 1].strip(), first=i == 0)
                            for i, (number, field) in enumerate(lines)))


def read_losses(path: Path) -> list[float]:
    """The final losses in file order: a plain file's, a runs table's `val_loss`, a step table's last step."""
    loaded = load_losses(path)
    return list((loaded.last() if isinstance(loaded, StepTable) else loaded).losses)


def _is_header(field: str) -> bool:
    cells = _split(field, _delimiter(field))
    return cells[0].lower() == STEP or VAL_LOSS in (c.lower() for c in cells)


def _delimiter(header: str) -> str | None:
    """What a table's header separates its cells with: comma, tab, else runs of whitespace (None)."""
    return "," if "," in header else "\t" if "\t" in header else None


def _split(field: str, delimiter: str | None) -> list[str]:
    return [c.strip() for c in field.split(delimiter)]


def _table(path: Path, lines: list[tuple[int, str]]) -> Runs | StepTable:
    (header_line, header), body = lines[0], lines[1:]
    delimiter = _delimiter(header)
    names = _split(header, delimiter)
    where = f"{path}:{header_line}"
    step_table = names[0].lower() == STEP
    # the layout's own column names in lower case; seed names as written
    columns = [n if step_table and i > 0 and n.lower() not in (STEP, *RUN_COLUMNS) else n.lower()
               for i, n in enumerate(names)]
    for i, name in enumerate(columns):
        if not name:
            raise InputError(f"{where}: column {i + 1} of the header has no name; expected {LAYOUTS}")
        if name in columns[:i]:
            raise InputError(f"{where}: column {quoted(name)} appears twice in the header; each column once")
    if step_table:
        for name in columns[1:]:
            if name in RUN_COLUMNS or name == STEP:
                raise InputError(f"{where}: unknown column {quoted(name)} in a table of val loss by step and seed; "
                                 f"after `{STEP}`, every column names a seed (e.g. `step,seed_0,seed_1`)")
        if len(columns) < 2:
            raise InputError(f"{where}: a `{STEP}` column but no seed columns; expected `step,<seed>,<seed>,...`")
    else:
        for name in columns:
            if name not in RUN_COLUMNS:
                raise InputError(f"{where}: unknown column {quoted(name)} in a table of runs; expected `{VAL_LOSS}` "
                                 f"and optionally {', '.join(f'`{c}`' for c in RUN_COLUMNS[1:])}")
        if TIME_MS in columns and TIME_S in columns:
            raise InputError(f"{where}: both `{TIME_MS}` and `{TIME_S}`; expected one train time column")
    if not body:
        what = "one row per val step" if step_table else "one row per run"
        raise InputError(f"{path}: a header (line {header_line}) but no rows; expected {what}")

    cells: list[tuple[int, list[str | None]]] = []
    for number, field in body:
        row = _split(field, delimiter)
        if len(row) > len(columns):
            raise InputError(f"{path}:{number}: {len(row)} cells for the header's {len(columns)} columns "
                             f"({', '.join(columns)}); expected one cell per column")
        cells.append((number, [c or None for c in row] + [None] * (len(columns) - len(row))))
    for i, name in enumerate(columns):
        if all(row[i] is None for _, row in cells):
            unit = "seed" if step_table and i > 0 else "column"
            raise InputError(f"{where}: {unit} {quoted(name)} has no values; expected a value in every row"
                             + (" (leave out a seed that has not run)" if unit == "seed" else ""))
    for number, row in cells:
        for i, cell in enumerate(row):
            if cell is None:
                at = f"step {row[0]}" if step_table and row[0] is not None else "this row"
                what = f"no val loss for seed {quoted(columns[i])} at {at}" if step_table and i > 0 \
                    else f"no {columns[i]} in this row"
                raise InputError(f"{path}:{number}: {what}; every row needs a value in every column")
    return _steps(path, columns, cells) if step_table else _runs(path, columns, cells)


def _steps(path: Path, columns: list[str], cells: list[tuple[int, list[str | None]]]) -> StepTable:
    rows: dict[int, tuple[float, ...]] = {}
    first_line: dict[int, int] = {}
    for number, row in cells:
        if not _STEP.fullmatch(row[0]):
            raise InputError(f"{path}:{number}: step {quoted(row[0])} is not a step; expected a whole number ≥ 0")
        step = int(row[0])
        if step in rows:
            raise InputError(f"{path}:{number}: step {step} appears again (first on line {first_line[step]}); "
                             "expected one row per val step")
        first_line[step] = number
        rows[step] = tuple(_cell(c, f"seed {quoted(columns[i + 1])}", path, number) for i, c in enumerate(row[1:]))
    return StepTable(path, tuple(columns[1:]), dict(sorted(rows.items())))


def _runs(path: Path, columns: list[str], cells: list[tuple[int, list[str | None]]]) -> Runs:
    col = {name: i for i, name in enumerate(columns)}
    losses, seeds, times = [], [], []
    first_line: dict[str, int] = {}
    for number, row in cells:
        losses.append(_cell(row[col[VAL_LOSS]], VAL_LOSS, path, number))
        if SEED in col:
            seed = row[col[SEED]]
            if seed in first_line:
                raise InputError(f"{path}:{number}: seed {quoted(seed)} appears again (first on line "
                                 f"{first_line[seed]}); expected one row per run")
            first_line[seed] = number
            seeds.append(seed)
        for name, to_ms in ((TIME_MS, 1.0), (TIME_S, 1000.0)):
            if name in col:
                times.append(_cell(row[col[name]], name, path, number, what="train time") * to_ms)
    return Runs(path, tuple(losses), tuple(seeds) if SEED in col else None,
                tuple(times) if TIME_MS in col or TIME_S in col else None)


def _cell(cell: str, column: str, path: Path, number: int, what: str = "val loss") -> float:
    """One cell's number: finite and ≥ 0 (a cross-entropy, a duration); `column` names where it is."""
    expected = f"a finite decimal number ≥ 0 ({'a cross-entropy' if what == 'val loss' else 'a duration'})"
    if not _NUMBER.fullmatch(cell):
        try:
            finite = math.isfinite(float(cell))
        except ValueError:
            finite = True
        problem = f"is not a {what}" if finite else "is not finite" + (" (a diverged run?)" if what == "val loss" else "")
        raise InputError(f"{path}:{number}: {column}: {quoted(cell)} {problem}; expected {expected}")
    value = float(cell)
    if not 0 <= value < float("inf"):
        raise InputError(f"{path}:{number}: {column}: {what} {quoted(cell)} is out of range; expected {expected}")
    return value


def _loss(field: str, path: Path, number: int, line: str, first: bool = False) -> float:
    if not _NUMBER.fullmatch(field):
        hint = (f"; or, on its first line, a table's header: `step,<seed>,...` or one naming `{VAL_LOSS}`"
                if first else "")
        raise InputError(f"{path}:{number}: expected one loss per line (a decimal number), got {quoted(line)}{hint}")
    value = float(field)
    # a cross-entropy is finite and never negative: anything else is a typo or a diverged run
    if not 0 <= value < float("inf"):
        raise InputError(f"{path}:{number}: loss {quoted(line)} is not a cross-entropy; expected a finite number ≥ 0")
    return value
