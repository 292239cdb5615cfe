"""A runnable folder out of a published modded-nanogpt record log.

A record's log is what its script wrote: the script's own code, a line of exactly 100 `=`, then
the console output. The shapes in modded-nanogpt's records/ (all three tracks, 2024-10 to 2026):

- code, then the `=` line. Most scripts log with `print0(code)`, so the text above the `=` line
  is the code plus print's newline; those of 2024-12-04 and 2024-12-08 use `f.write(code)`, which
  adds nothing. The log does not say which, so the code is the text above the line, as is: at
  most a trailing newline differs from the file that ran.
- 2024-10 and 2024-11: a `=` line first, then the code, then the `=` line.
- track 1 since 2026-01: the main code, then, for each sibling module the script reads beside
  itself (`os.path.dirname(sys.argv[0])`) and imports (triton_kernels.py, later also
  dc_triton_kernels.py), a banner block and that module's code. The script builds the block as
  f"\\n\\n{'-'*40}\\n# NAME.py\\n{'-'*40}\\n\\n", so cutting the block out gives each file byte for byte.

The main code becomes train_gpt.py (what the script's own `sys.argv[0]` was), each embedded
module NAME.py beside it, so `python DIR/train_gpt.py` finds its siblings as the record's did.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

from trainer.errors import InputError
from trainer.script.knobs import BOM
from trainer.text import read_text

MAIN = "train_gpt.py"
RULE = "=" * 100
# The banner the 2026 scripts put before each embedded module. A line of forty dashes is Python only
# inside a multi-line string, which no record has, so a match is a banner, not the script's text;
# the name is a plain file name, so a log can never write outside the output folder.
BANNER = re.compile(r"\n\n-{40}\n# ([A-Za-z0-9_][A-Za-z0-9_.-]*\.py)\n-{40}\n\n")


def split_log(text: str, filename: str) -> dict[str, str]:
    """The files a log's code section holds: {"train_gpt.py": main code, "NAME.py": each embedded module}."""
    start, end = _code_span(text, filename)
    code = text[start:end]
    parts: list[tuple[str, int, int]] = []  # (name, start, end) as offsets into text
    name, begin = MAIN, start
    for m in BANNER.finditer(code):
        parts.append((name, begin, start + m.start()))
        name, begin = m.group(1), start + m.end()
    parts.append((name, begin, end))
    files: dict[str, str] = {}
    for name, begin, stop in parts:
        if name in files:
            raise InputError(f"{filename}:{_line_of(text, begin) - 3}: the log embeds {name} twice; expected each file once")
        source = text[begin:stop]
        first_line = _line_of(text, begin)
        if not source.strip():
            raise InputError(f"{filename}:{first_line}: no code for {name}; expected Python source there")
        try:
            ast.parse(source.removeprefix(BOM), filename=name)
        except SyntaxError as e:
            # Name the log's own line, which is what the user can open; the version matters because
            # records written for a newer Python (PEP 701 f-strings) do not parse on an older one.
            line = first_line + (e.lineno or 1) - 1
            version = f"{sys.version_info.major}.{sys.version_info.minor}"
            raise InputError(f"{filename}:{line}: the code for {name} is not valid Python {version}: {e.msg}") from None
        files[name] = source
    return files


def extract(log_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the log's files into out_dir and return their paths; an identical existing file is kept, a different one refused."""
    files = split_log(read_text(log_path, "a record log"), str(log_path))
    out = Path(out_dir)
    targets = [(out / name, source) for name, source in files.items()]
    # Check every target before writing any, so a refusal leaves the folder as it was.
    to_write = []
    for path, source in targets:
        if path.is_dir():
            raise InputError(f"{path}: is a folder; expected a file name free for {path.name} (choose another --out)")
        if path.exists():
            if _read_bytes(path) != source.encode("utf-8"):
                raise InputError(f"{path}: already exists with different content; not overwritten (remove it or choose another --out)")
            continue
        to_write.append((path, source))
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, source in to_write:
            # newline="" and UTF-8: the bytes the log holds, no newline translation.
            path.write_text(source, encoding="utf-8", newline="")
    except OSError as e:
        raise InputError(f"{e.filename or out}: cannot write: {e.strerror or e}") from None
    return [path for path, _ in targets]


def _code_span(text: str, filename: str) -> tuple[int, int]:
    """Offsets of the code section: above the first `=` line, or between the first two when the log starts with one."""
    rules = [m.start() for m in re.finditer(rf"^{RULE}(?:\r?\n|\Z)", text, re.MULTILINE)]
    if not rules:
        raise InputError(
            f"{filename}: not a modded-nanogpt record log: expected the record's code, then a line of exactly 100 '=', "
            "then the console output (no such line found)"
        )
    if rules[0] > 0:
        return 0, rules[0]
    # 2024-10/11 logs open with the rule; their code ends at the next one.
    start = text.index("\n") + 1 if "\n" in text else len(text)
    if len(rules) < 2:
        raise InputError(f"{filename}:1: the log starts with a line of 100 '=' but has no second one; expected the code between the two")
    return start, rules[1]


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from None


def _line_of(text: str, offset: int) -> int:
    """1-based line number of a character offset."""
    return text.count("\n", 0, offset) + 1
