"""Loading a space file: find it (a path or a shipped space's name), read it as plain YAML data
with the line of every key, validate it, and raise every problem at once as a `SpaceError`.

Nothing in a space file is executed: YAML is loaded as plain data (tags such as
`!!python/object` are rejected) and constraint expressions are interpreted, never `eval`-ed.
This package imports none of trainer/orchestrator/analysis. Keys are checked here only for
syntax; pass `check_overrides` (e.g. `trainer.config.load_config`, called as
`check(base_config, overrides)`) to have the trainer validate them too.
"""

from __future__ import annotations

from pathlib import Path

from search_spaces.report import Report, SpaceError, did_you_mean, show_path
from search_spaces.schema import SweepSpace
from search_spaces.trainer_hook import OverrideCheck, load_time_check, two_argument
from search_spaces.validation import check_with_trainer, validate
from search_spaces.yaml_data import YamlProblem, load_with_lines

SPACES_DIR = Path(__file__).parent
# search_spaces may not import trainer (DESIGN.md), so this mirrors trainer/text.py's MAX_TEXT_BYTES
MAX_FILE_BYTES = 64 * 2**20  # far above any space, far below what would exhaust memory


def example_spaces() -> dict[str, Path]:
    """The spaces shipped in this package, by name (file stem)."""
    return {p.stem: p for p in sorted(SPACES_DIR.glob("*.yaml"))}


def load_space(path: str | Path, check_overrides: OverrideCheck | None = None) -> SweepSpace:
    """Read and validate a space file (or the name of a shipped space, e.g. 'smoke').

    Everything is checked before anything starts and all problems found are reported together
    in one SpaceError. With `check_overrides` (e.g. `trainer.config.load_config`), the base
    overrides and each param at its extremes and at each choice are also validated by the
    trainer, and `violations()` asks it about every proposal.
    """
    file = find_file(path, example_spaces(), "space")
    data, report = read_file(file)
    space = validate(report, data)
    if space is not None and check_overrides is not None:
        hook = two_argument(check_overrides)
        check_with_trainer(report, space, hook, load_time_check(check_overrides))
        space._check = hook
    report.raise_if_any()
    assert space is not None
    return space


def read_file(file: Path) -> tuple[object, Report]:
    """The file's YAML as plain data, and a Report that knows the line of every key."""
    text = _read_text(file)
    try:
        data, lines = load_with_lines(text)
    except YamlProblem as e:
        raise SpaceError([f"{file}:{line}: {show_path(p)}: {msg}" for p, line, msg in e.problems]) from None
    return data, Report(file, lines)


def _read_text(file: Path) -> str:
    """The file's text as on disk; SpaceError when it cannot be read, is too large or is not UTF-8."""
    def refused(reason: str) -> SpaceError:
        return SpaceError([f"{file}:1: (file): {reason}"])

    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise refused(f"{size:,} bytes; expected a YAML file of at most {MAX_FILE_BYTES:,} bytes")
        data = file.read_bytes()
    except OSError as e:
        raise refused(f"{e.strerror or e}; expected a YAML file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise refused(f"not UTF-8 text at byte {e.start}; expected a YAML file (UTF-8 text)") from None


def find_file(path: str | Path, shipped: dict[str, Path], what: str) -> Path:
    """`path` if it is a file, else the shipped file of that name."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    name = p.stem if p.suffix in (".yaml", ".yml") and len(p.parts) == 1 else str(path)
    if name in shipped:
        return shipped[name]
    hint = did_you_mean(name, list(shipped))
    raise SpaceError(
        [f"{path}:1: (file): no such file; expected {_article(what)} {what} file or a shipped {what} ({', '.join(shipped)}){hint}"]
    )


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
