"""User files read as text, and user values quoted in messages, both bounded.

Every file a user names (a config, a space, a losses file, a script) is read here: a byte that is
not UTF-8 is an InputError naming the file and the byte's offset, not a UnicodeDecodeError
traceback, and a file too large to be one of ours is refused before it is read into memory.
"""

from __future__ import annotations

from pathlib import Path

from trainer.errors import InputError

# search_spaces may not import trainer (DESIGN.md), so search_spaces/loader.py (reading a space)
# and search_spaces/report.py (quoted) mirror these two bounds.
# Far above any config, space, losses file, script or published log (the largest are a few MB),
# far below what would exhaust a machine's memory
MAX_TEXT_BYTES = 64 * 2**20
QUOTED_CHARS = 80  # a value quoted in an error message is cut here


class UnreadableText(InputError):
    """A user file that cannot be read as text: `reason` says why and what was expected."""

    def __init__(self, path: Path, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


def read_text(path: str | Path, expected: str) -> str:
    """The file's text exactly as on disk (no newline translation); UnreadableText naming the file
    and `expected` (what it should be, e.g. "a trainer config YAML") when it cannot be read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_BYTES:
            raise UnreadableText(path, f"{size:,} bytes; expected {expected} of at most {MAX_TEXT_BYTES:,} bytes")
        data = path.read_bytes()
    except OSError as e:
        raise UnreadableText(path, f"{e.strerror or e}; expected {expected}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableText(path, f"not UTF-8 text at byte {e.start}; expected {expected} (UTF-8 text)") from None


def quoted(value: object, limit: int = QUOTED_CHARS) -> str:
    """`repr(value)`, cut to `limit` characters with "…": a message names what was given without
    repeating megabytes of it."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
