"""The optional trainer hook: the caller's function that validates trainer overrides, so this
package can ask the trainer about a space without importing it (it imports none of
trainer/orchestrator/analysis).

A hook may carry an `at_load` attribute, a second check of the same signature that the loaders
run on each `base.set` override at load time only, reporting its message at that key's line:
for what holds of the machine and folder the space is loaded in (a data glob that matches no
file there) rather than of a proposal. `violations()` never calls it, since it runs where the
trial runs (a Ray actor, whose working directory Tune moves to the trial's own)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

OverrideCheck = Callable[[str, list[str]], object] | Callable[[list[str]], object]
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


def load_time_check(hook: OverrideCheck) -> Callable[[str, list[str]], object] | None:
    """The hook's `at_load` check (see the module docstring) as `check(base_config, overrides)`, or None."""
    at_load = getattr(hook, "at_load", None)
    return two_argument(at_load) if at_load is not None else None


def hook_message(error: Exception, overrides: Iterable[str]) -> str:
    """The hook's message on one line, without the trainer's 'invalid config:' / '--set X: ' prefixes."""
    text = "; ".join(ln.strip() for ln in str(error).splitlines() if ln.strip()).removeprefix("invalid config: ")
    for item in overrides:
        text = text.replace(f"--set {item}: ", "")
    return text or type(error).__name__
