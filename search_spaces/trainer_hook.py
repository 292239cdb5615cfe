"""The optional trainer hook: the caller's function that validates trainer overrides, so this
package can ask the trainer about a space without importing any trainer code."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Union

OverrideCheck = Union[Callable[[str, list[str]], object], Callable[[list[str]], object]]
"""Validates trainer overrides, raising on bad ones: `check(base_config, overrides)` (the
signature of `trainer.config.load_config`) or `check(overrides)`."""


class _OverridesOnly:
    """A one-argument hook, `check(overrides)`, called as `check(base_config, overrides)`.
    A class rather than a closure so a space holding it still pickles (Ray may pickle searchers)."""

    def __init__(self, hook: Callable[[list[str]], object]):
        self.hook = hook

    def __call__(self, config: str, overrides: list[str]) -> object:
        return self.hook(overrides)


def two_argument(hook: OverrideCheck) -> Callable[[str, list[str]], object]:
    """`hook` as `check(base_config, overrides)`, whichever of the two forms it takes."""
    try:
        inspect.signature(hook).bind("config", [])
        return hook  # type: ignore[return-value]
    except TypeError:
        return _OverridesOnly(hook)  # type: ignore[arg-type]
    except ValueError:  # no signature (a builtin): assume the documented two-argument form
        return hook  # type: ignore[return-value]


def hook_message(error: Exception, overrides: Iterable[str]) -> str:
    """The hook's message on one line, without the trainer's 'invalid config:' / '--set X: ' prefixes."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip() and ln.strip() != "invalid config:"]
    out = []
    for ln in lines:
        for item in overrides:
            if ln.startswith(f"--set {item}: "):
                ln = ln[len(f"--set {item}: ") :]
                break
        out.append(ln)
    return "; ".join(out) or type(error).__name__
