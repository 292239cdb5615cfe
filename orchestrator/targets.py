"""What a trial runs: the built-in trainer on a config (preset or YAML), or a modded-nanogpt-style
script (a `.py` path) whose knobs the overrides patch. One place decides, for the loader's
checks, the tracked config and the trial's command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from search_spaces.yaml_data import to_yaml
from trainer.config import load_config
from trainer.data import DATA_FILE_KEYS, matches_nothing_here
from trainer.errors import InputError
from trainer.horizon import at_horizon
from trainer.script.folder import open_folder, patched_files, write_copy
from trainer.script.patch import parse_assignments
from trainer.text import quoted
from trainer.yaml_safe import YamlDataError, load


def is_script(target: str) -> bool:
    """A `.py` target is a script; anything else is a trainer config."""
    return str(target).endswith(".py")


def check_overrides(target: str, overrides: list[str]) -> object:
    """Raise InputError (naming the key or knob) unless the overrides apply to the target. The
    space loaders also run `check_overrides.at_load` (`data_files_here`) on each base override."""
    if is_script(target):
        return patched_files(open_folder(target), parse_assignments(overrides))
    return load_config(target, overrides)


def data_files_here(target: str, overrides: list[str]) -> None:
    """Raise InputError for a shard glob (data.train_files, data.val_files) that matches no file
    here, which every trial would fail on; one with $VARIABLES is each node's to expand, and
    `@fixtures/` ships with speedrun. A check at load time only, where the sweep starts (the
    search_spaces hook's `at_load`): a trial's check runs in a Ray actor whose working directory
    Tune has moved to the trial's own, where a relative glob would match nothing."""
    if is_script(target):
        return
    for item in overrides:
        key, _, raw = item.partition("=")
        if key.strip() not in DATA_FILE_KEYS:
            continue
        try:
            pattern = load(raw)
        except YamlDataError:
            continue  # not a value at all: check_overrides names it
        if isinstance(pattern, str) and matches_nothing_here(pattern):
            raise InputError(f"{quoted(pattern)} matches no file (relative to {Path.cwd()}), so every trial would "
                             "fail; expected a glob of existing shards, or one with $DATA_DIR that each node "
                             "expands (docs/cluster.md)")


check_overrides.at_load = data_files_here  # type: ignore[attr-defined]


def config_leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A config as {dotted key: value}; lists (stage lists, layer lists) stay one value."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(config_leaves(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def horizon_overrides(target: str, overrides: list[str], fraction: float) -> list[str]:
    """What to add to `overrides` to run them at `fraction` of their steps, every schedule
    breakpoint compressed with it: each key the trainer's `at_horizon` changes. Empty when the
    overrides do not apply (the trial's checks then reject them, naming the key)."""
    try:
        full = load_config(target, overrides)
    except InputError:
        return []
    before = config_leaves(full.model_dump(mode="json"))
    after = config_leaves(at_horizon(full, fraction).model_dump(mode="json"))
    return [f"{k}={to_yaml(v)}" for k, v in after.items() if before.get(k) != v]


def write_script_folder(script: str, overrides: list[str], into: Path) -> list[Path]:
    """The script and the modules it imports, with the overrides' literals patched in, copied into
    `into`: a folder that runs on its own (a sweep's best/)."""
    folder = open_folder(script)
    return write_copy(folder, patched_files(folder, parse_assignments(overrides)), into)


def resolve(target: str, overrides: list[str], python: str | None = None,
            env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    """The full config a trial runs, as a dict (for MLflow params) and as text (an artifact); a
    script's names its interpreter when it is not speedrun's, and the environment it runs in
    (its DATA_PATH, say), which a promoted record needs as much as its knobs."""
    if is_script(target):
        knobs = parse_assignments(overrides)
        extra = {k: v for k, v in (("python", python), ("env", env)) if v}
        doc = {"script": str(target), **extra, "set": knobs}
        return {"script": str(target), **extra, "knob": knobs}, yaml.safe_dump(doc, sort_keys=False)
    cfg = load_config(target, overrides)
    return cfg.model_dump(mode="json"), cfg.to_yaml()
