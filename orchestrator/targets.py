"""What a trial runs: the built-in trainer on a config (preset or YAML), or a modded-nanogpt-style
script (a `.py` path) whose knobs the overrides patch. One place decides, for the loader's
checks, the tracked config and the trial's command."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from search_spaces.yaml_data import to_yaml
from trainer.config import load_config
from trainer.errors import InputError
from trainer.horizon import at_horizon
from trainer.script.knobs import read_script
from trainer.script.patch import parse_assignments, patch


def is_script(target: str) -> bool:
    """A `.py` target is a script; anything else is a trainer config."""
    return str(target).endswith(".py")


def check_overrides(target: str, overrides: list[str]) -> object:
    """Raise InputError (naming the key or knob) unless the overrides apply to the target."""
    if is_script(target):
        return patched_source(target, overrides)
    return load_config(target, overrides)


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


def patched_source(script: str, overrides: list[str]) -> str:
    """The script's source with the overrides' literals patched in (every other byte as it was)."""
    return patch(read_script(script), parse_assignments(overrides), filename=str(script))


def resolve(target: str, overrides: list[str]) -> tuple[dict[str, Any], str]:
    """The full config a trial runs, as a dict (for MLflow params) and as text (an artifact)."""
    if is_script(target):
        knobs = parse_assignments(overrides)
        return {"script": str(target), "knob": knobs}, yaml.safe_dump({"script": str(target), "set": knobs}, sort_keys=False)
    cfg = load_config(target, overrides)
    return cfg.model_dump(mode="json"), cfg.to_yaml()


def script_diff(script: str, overrides: list[str]) -> str:
    """A unified diff of the patched script against the original."""
    original = read_script(script)
    name = Path(script).name
    return "".join(difflib.unified_diff(original.splitlines(keepends=True),
                                        patched_source(script, overrides).splitlines(keepends=True),
                                        f"a/{name}", f"b/{name}"))
