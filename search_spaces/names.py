"""The one rule for a name things are filed under: a sweep or an ablation (its folder
sweeps/NAME, its Optuna study, its MLflow experiment) and an ablation's arm."""

from __future__ import annotations

import re

from search_spaces.report import quoted

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # always fullmatch: `$` would let "x\n" through
# a file name may have 255 bytes; derived names (NAME-promote, NAME-loo-CANDIDATE) need room
MAX_NAME_CHARS = 100
NAME_RULE = (f"1 to {MAX_NAME_CHARS} letters, digits, '.', '_' or '-', starting with a letter or digit")


def is_name(name: object) -> bool:
    """Whether `name` may name a sweep, an ablation or an arm."""
    return isinstance(name, str) and len(name) <= MAX_NAME_CHARS and NAME_RE.fullmatch(name) is not None


def name_problem(name: object) -> str | None:
    """`got X; expected ...` for a name that breaks the rule; None for one that keeps it."""
    return None if is_name(name) else f"got {quoted(name)}; expected {NAME_RULE}"
