"""A file of final val losses, one per line, as `speedrun record check` reads it.

Blank lines and `#` comments (whole-line or after the number) are skipped, so a file can
carry notes such as `3.2791  # seed 7, node 3`.
"""

from __future__ import annotations

import math
from pathlib import Path

from trainer.errors import InputError


def read_losses(path: Path) -> list[float]:
    """The losses in file order; InputError naming the file and line of anything that is not one."""
    try:
        text = path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(f"{path}: no such file; expected final val losses, one per line") from None
    losses = []
    for number, line in enumerate(text.splitlines(), start=1):
        field = line.split("#", 1)[0].strip()
        if field:
            losses.append(_loss(field, path, number, line))
    return losses


def _loss(field: str, path: Path, number: int, line: str) -> float:
    try:
        value = float(field)
    except ValueError:
        raise InputError(f"{path}:{number}: expected one loss per line, got {line.strip()!r}") from None
    # a diverged run's nan would make the t-test's p-value nan: say which line it is
    if not math.isfinite(value):
        raise InputError(f"{path}:{number}: loss {line.strip()!r} is not finite")
    return value
