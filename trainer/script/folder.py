"""A script base is a script and the folder it lives in.

Today's record code is a folder: HEAD's train_gpt.py imports `triton_kernels.py` and
`dc_triton_kernels.py` from its own folder and reads them by `os.path.dirname(sys.argv[0])`. So
knobs live in several files, and a patched script only runs with its siblings beside it.

Knob addresses: the script's own as `knobs.py` writes them (`Hyperparameters.num_iterations`);
those of a module the script imports from its folder (at any depth of imports) as
`FILE:ADDRESS`, FILE relative to the script's folder (`triton_kernels.py:FusedSoftcappedCrossEntropy.forward.A`).

Two ways to write a patched folder:
  lay_out     a trial's code folder: the patched script and patched modules as files, every other
              entry of the script's folder a symbolic link to the original (data and checkpoints
              are never copied; `dirname(sys.argv[0])` reads and imports find what they expect)
  write_copy  a self-contained folder (a record, `speedrun script patch -o DIR`): the script and
              every module it imports, patched where set, copied
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.errors import InputError
from trainer.script.knobs import Knob, list_knobs, parse_script, read_script
from trainer.script.patch import Edit, apply_edits, plan_edits

_FILE_ADDRESS = re.compile(r"^([\w./-]+\.py):(.+)$")
_NOT_LINKED = {"__pycache__"}  # bytecode of the trial's patched modules must not land in the user's folder


@dataclass(frozen=True)
class ScriptFolder:
    """A script, its folder, and the modules it imports from that folder (relative paths)."""

    script: Path
    modules: tuple[str, ...]

    @property
    def root(self) -> Path:
        return self.script.parent

    def files(self) -> tuple[str, ...]:
        """The script's name, then its modules: every file whose knobs can be set."""
        return (self.script.name, *self.modules)


def open_folder(script: str | Path) -> ScriptFolder:
    """The script and the sibling modules it imports (directly or through each other)."""
    script = Path(script)
    found: list[str] = []
    pending = [script]
    while pending:
        path = pending.pop(0)
        tree = parse_script(read_script(path), str(path))
        for name, line in _read_beside_itself(tree):
            if not (script.parent / name).is_file():
                raise InputError(f"{path}:{line}: the script reads {name} beside itself, and {script.parent} has none; "
                                 "put the files of its folder beside it (`speedrun script extract` writes them from a record's log)")
        for name in _imported_files(tree, script.parent):
            if name not in found and name != script.name:
                found.append(name)
                pending.append(script.parent / name)
    return ScriptFolder(script, tuple(found))


def _read_beside_itself(tree: ast.Module) -> list[tuple[str, int]]:
    """(name, line) of each `os.path.join(os.path.dirname(sys.argv[0]), "NAME")`: the files the
    2026 records read from their own folder to log them."""
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and ast.unparse(node.func) == "os.path.join" and len(node.args) == 2
                and ast.unparse(node.args[0]) == "os.path.dirname(sys.argv[0])"
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            out.append((node.args[1].value, node.lineno))
    return out


def _imported_files(tree: ast.Module, root: Path) -> list[str]:
    """The files under `root` that the tree's absolute imports name, in source order."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for module in modules:
            stem = module.replace(".", "/")
            for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
                if (root / candidate).is_file() and candidate not in out:
                    out.append(candidate)
    return out


def split_address(address: str) -> tuple[str | None, str]:
    """(`FILE`, address inside it) for `FILE:ADDRESS`; (None, address) for the script's own."""
    m = _FILE_ADDRESS.match(address)
    return (m[1], m[2]) if m else (None, address)


def folder_knobs(folder: ScriptFolder) -> list[tuple[str, Knob]]:
    """Every knob of the script and of its modules, as (address as --set takes it, knob)."""
    out = []
    for name in folder.files():
        prefix = "" if name == folder.script.name else f"{name}:"
        out += [(prefix + k.address, k) for k in list_knobs(read_script(folder.root / name), str(folder.root / name))]
    return out


def _by_file(folder: ScriptFolder, overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The overrides grouped by the file that holds each knob; a FILE the script does not import fails."""
    grouped: dict[str, dict[str, Any]] = {}
    for address, value in overrides.items():
        name, inner = split_address(address)
        name = name or folder.script.name
        if name not in folder.files():
            raise InputError(_not_a_module(folder, name, address))
        grouped.setdefault(name, {})[inner] = value
    return grouped


def _not_a_module(folder: ScriptFolder, name: str, address: str) -> str:
    script = folder.script.name
    why = f"{script} does not import {name}" if (folder.root / name).is_file() else f"no {name} beside {script}"
    return (f"'{address}': {why}; knobs can be set in {script} and, as FILE:ADDRESS, in the modules it imports "
            f"from {folder.root}: {', '.join(folder.modules) or 'none'}")


def folder_edits(folder: ScriptFolder, overrides: Mapping[str, Any]) -> dict[str, list[Edit]]:
    """{relative file: its edits} for the script and each module a knob is set in; every address
    and value is checked before anything is written."""
    grouped = _by_file(folder, overrides)
    return {name: plan_edits(read_script(folder.root / name), grouped.get(name, {}), str(folder.root / name))
            for name in (folder.script.name, *(n for n in folder.modules if n in grouped))}


def apply_folder_edits(folder: ScriptFolder, edits: Mapping[str, list[Edit]]) -> dict[str, str]:
    """{relative file: patched source} for each file of `edits`."""
    return {name: apply_edits(read_script(folder.root / name), file_edits, str(folder.root / name))
            for name, file_edits in edits.items()}


def patched_files(folder: ScriptFolder, overrides: Mapping[str, Any]) -> dict[str, str]:
    """{relative file: patched source} for the script and each module a knob is set in."""
    return apply_folder_edits(folder, folder_edits(folder, overrides))


def lay_out(folder: ScriptFolder, patched: Mapping[str, str], into: Path) -> Path:
    """A trial's code folder (see the module docstring); returns the path of the script in it."""
    into.mkdir(parents=True, exist_ok=True)
    for name, text in patched.items():
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        (into / name).write_text(text, encoding="utf-8", newline="")
    _link_rest(folder.root, into, {Path(n) for n in patched})
    return into / folder.script.name


def _link_rest(source: Path, into: Path, patched: set[Path], relative: Path = Path()) -> None:
    """Link each entry of `source` into `into`, descending only into folders that hold a patched
    file; a folder that holds `into` (the user's sweeps beside the script) is left out."""
    here = into.resolve()
    for entry in sorted(source.iterdir()):
        rel = relative / entry.name
        target = into / entry.name
        if entry.name in _NOT_LINKED or rel in patched or here.is_relative_to(entry.resolve()):
            continue
        if any(rel in p.parents for p in patched):
            target.mkdir(exist_ok=True)
            _link_rest(entry, target, patched, rel)
        elif not target.exists() and not target.is_symlink():
            target.symlink_to(entry.resolve())


def write_copy(folder: ScriptFolder, patched: Mapping[str, str], into: Path) -> list[Path]:
    """A self-contained folder: the script and all its modules, `patched` ({file: source}) where
    given, the others as they are; the paths written."""
    written = []
    for name in folder.files():
        text = patched.get(name)
        path = into / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            path.write_bytes((folder.root / name).read_bytes())
        else:
            path.write_text(text, encoding="utf-8", newline="")
        written.append(path)
    return written


def folder_diff(folder: ScriptFolder, patched: Mapping[str, str]) -> str:
    """A unified diff of each patched file ({file: source}) against its original."""
    out = []
    for name, text in patched.items():
        original = read_script(folder.root / name)
        out += difflib.unified_diff(original.splitlines(keepends=True), text.splitlines(keepends=True),
                                    f"a/{name}", f"b/{name}")
    return "".join(out)
