"""Every use of a private attribute of Ray Tune, Ray or Optuna, in one place.

The public APIs do not reach these: OptunaSearch keeps the Optuna trial of each Tune trial and
its study to itself; Optuna sets a user attribute only through a Trial of the process that asked
for it; Ray offers no switch to keep a local node on loopback. Each was checked against the
versions pyproject.toml allows (ray 2.60, optuna 4.x/5.x); a change there breaks these functions
and the tests that use them (tests/test_sweep.py, test_resume.py, test_local_ray.py), nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import optuna
from optuna.trial import FrozenTrial

# --- ray.tune.search.optuna.OptunaSearch ---------------------------------------------------


def optuna_trial(search: Any, tune_id: str) -> optuna.trial.Trial | None:
    """The Optuna trial OptunaSearch asked for Tune trial `tune_id` (None if it asked for none)."""
    return search._ot_trials.get(tune_id)  # noqa: SLF001


def optuna_study(search: Any) -> optuna.Study:
    """The study OptunaSearch proposes from."""
    return search._ot_study  # noqa: SLF001


def asked_ids(search: Any) -> set[str]:
    """The Tune trials OptunaSearch asked the study for."""
    return set(search._ot_trials)  # noqa: SLF001


def completed_ids(search: Any) -> set[str]:
    """The Tune trials OptunaSearch has told the study the outcome of."""
    return search._completed_trials  # noqa: SLF001


# --- optuna -----------------------------------------------------------------------------------


def set_user_attrs(study: optuna.Study, trial: FrozenTrial, **attrs: Any) -> None:
    """User attributes on a trial that another process asked for (a resumed sweep's)."""
    for key, value in attrs.items():
        study._storage.set_trial_user_attr(trial._trial_id, key, value)  # noqa: SLF001


# --- ray ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def single_node_ray() -> Iterator[None]:
    """While a local node starts: Ray 2.60 binds loopback only when the node's IP is 127.0.0.1, and
    on Linux replaces a loopback `_node_ip_address` by the machine's routable IP unless it runs
    without cluster support (ENABLE_RAY_CLUSTER, read from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER
    when ray is imported). Back as it was afterwards, for a later `--address` join."""
    from ray._private import ray_constants

    cluster = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster
