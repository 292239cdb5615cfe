"""Errors located in a space file: each reads `<file>:<line>: <key path>: what was wrong; what
was expected`, and all of a file's errors are raised together in one `SpaceError`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # yaml_data quotes values with `quoted`, below
    from search_spaces.yaml_data import Path_

# search_spaces may not import trainer (DESIGN.md), so this mirrors trainer/text.py's QUOTED_CHARS and quoted
QUOTED_CHARS = 80  # a value quoted in an error message is cut here


def quoted(value: object, limit: int = QUOTED_CHARS) -> str:
    """`repr(value)`, cut to `limit` characters with "…", so an error never repeats megabytes of input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SpaceError(ValueError):
    """A space file that cannot be run. Each line of the message (and each item of `errors`) reads
    `<file>:<line>: <key path>: what was wrong; what was expected`."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class Report:
    """The errors found in one space file so far, each with the line of its key path."""

    def __init__(self, file: Path, lines: dict[Path_, int]):
        self.file = file
        self.lines = lines
        self.errors: list[tuple[int, str]] = []

    def line(self, path: Path_) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return 1

    def error(self, path: Path_, message: str) -> None:
        line = self.line(path)
        self.errors.append((line, f"{self.file}:{line}: {show_path(path)}: {message}"))

    def unknown_key(self, path: Path_, options: Iterable[str], expected: str | None = None) -> None:
        """`path[-1]` is not a key here; `expected` defaults to the options, comma-separated."""
        options = list(options)
        key = path[-1]
        self.error(path, f"unknown key '{key}'; expected {expected or ', '.join(options)}{did_you_mean(key, options)}")

    def raise_if_any(self) -> None:
        if self.errors:
            raise SpaceError([msg for _, msg in sorted(self.errors, key=lambda e: e[0])])


def show_path(path: Path_) -> str:
    """('params', 'schedule.batch', 'stages', 0) -> 'params.schedule.batch.stages[0]'."""
    if not path:
        return "(top level)"
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(word: object, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
