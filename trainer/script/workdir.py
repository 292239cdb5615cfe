"""A script run's own working directory.

The records' scripts write into their working directory (`logs/<run_id>.txt`, checkpoints in
`logs/<run_id>/`) and read their data by paths relative to it (`data/fineweb10B/...`). A run
gets a fresh directory whose entries are links to those of the user's working directory, so the
data is read where it is, with a real `logs/` of its own: nothing a run writes there piles up
beside another run's. The 2025-08 records name their runs `final/<uuid>` and create only
`logs/`, so the folders a run id's literal text names are created too.
"""

from __future__ import annotations

import ast
from pathlib import Path

from trainer.script.knobs import parse_script

LOGS = "logs"


def make_workdir(user_dir: Path, into: Path, script_source: str) -> Path:
    """`into` with a link to each entry of `user_dir` except `logs` and the folders that hold
    `into` itself, and `logs/` with the folders the script's run id names."""
    into.mkdir(parents=True, exist_ok=True)
    here = into.resolve()
    for entry in sorted(user_dir.resolve().iterdir()):
        target = into / entry.name
        if entry.name == LOGS or here.is_relative_to(entry) or target.exists() or target.is_symlink():
            continue
        target.symlink_to(entry)
    for folder in run_id_folders(script_source):
        (into / LOGS / folder).mkdir(parents=True, exist_ok=True)
    (into / LOGS).mkdir(exist_ok=True)
    return into


def run_id_folders(source: str) -> list[str]:
    """The folders at the head of each `run_id = "DIR/..."` (or f-string) the script assigns."""
    out = []
    for node in ast.walk(parse_script(source)):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_name(t) == "run_id" for t in targets):
                head = _literal_head(node.value)
                if "/" in head:
                    out.append(head.rsplit("/", 1)[0])
    return out


def _name(target: ast.expr) -> str | None:
    if isinstance(target, ast.Name):
        return target.id
    return target.attr if isinstance(target, ast.Attribute) else None


def _literal_head(value: ast.expr) -> str:
    """The constant text a string or f-string starts with."""
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value
    if isinstance(value, ast.JoinedStr) and value.values and isinstance(value.values[0], ast.Constant):
        return str(value.values[0].value)
    return ""
