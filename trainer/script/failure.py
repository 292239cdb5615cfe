"""What a failed script's stderr says went wrong: its exception and the line of the user's code
that raised it, so a console line, an MLflow tag and a report can say more than an exit code.

Under torchrun a rank's traceback comes first, then torchrun's own (`ChildFailedError`), which
only says that a rank failed: the rank's is the one that explains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')
_PREFIX = re.compile(r"^\[[^\]]*\]: ?")  # torchrun --tee: `[rank0]: `
_LAUNCHER = ("torch.distributed.elastic", "ChildFailedError")


def summarize(stderr: Iterable[str], code_dir: Path | None = None) -> str | None:
    """`Exception: message (FILE:LINE)` of the last traceback that is not the launcher's (None when
    there is none: a rank that exited by sys.exit leaves only torchrun's); FILE is the innermost
    frame in `code_dir` (the script's folder) when one is, else the innermost frame."""
    lines = [line.rstrip("\n") for line in stderr]
    blocks = _tracebacks(lines)
    own = [b for b in blocks if not any(mark in b[-1] for mark in _LAUNCHER)]
    if not own:
        return None
    block = own[-1]
    exception = block[-1].strip()
    frames = [(m[1], int(m[2])) for m in map(_FRAME.match, block) if m]
    if code_dir is not None:
        mine = [f for f in frames if Path(f[0]).is_relative_to(code_dir)]
        frames = mine or frames
    if not frames:
        return exception
    path, line = frames[-1]
    shown = Path(path).relative_to(code_dir) if code_dir is not None and Path(path).is_relative_to(code_dir) else Path(path).name
    return f"{exception} ({shown}:{line})"


def _tracebacks(lines: list[str]) -> list[list[str]]:
    """Each `Traceback (most recent call last):` block: its indented frames, then the first line
    that is not indented, the exception."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in (_PREFIX.sub("", raw) for raw in lines):
        if line.startswith("Traceback (most recent call last):"):
            current = [line]
        elif current is not None and line.strip():
            current.append(line)
            if not line[0].isspace():
                blocks.append(current)
                current = None
    return blocks
