"""Successive halving over horizons (`scheduler: horizon`): every run is a complete, cooled-down run.

A config first runs at the lowest rung's horizon (`rungs[0]` of the full run, every schedule
breakpoint compressed with it: orchestrator/targets.py `horizon_overrides`). Whenever a config's
run is among the best 1/reduction_factor of the finished runs at its rung, the config is run
again from scratch at the next rung's horizon: a new Optuna trial, enqueued with the same params
and user attributes `rung`, `fidelity`, `config_trial` and `promoted_from`. With `promotion: async`
(as in ASHA) it does not wait for a rung to fill; with `sync` a rung promotes once, when every
run of it has finished, so the sweep runs exactly `expected_runs` runs.

The Optuna study is the state: a rung's members are its trials' user attributes, a promotion is
due when the config has no trial at the next rung yet (queued, running or finished), so a driver
that resumes a killed sweep rebuilds everything from the study and neither loses nor repeats a
promotion. `budget.trials` counts the configs proposed (rung-0 runs); promotions come on top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

from orchestrator.records import Rung
from orchestrator.search import SweepSearch
from search_spaces import SchedulerSpec


def rung_of(t: FrozenTrial) -> Rung | None:
    return Rung.of(t.user_attrs)


def configs_proposed(trials: Sequence[FrozenTrial]) -> int:
    """Configs the sampler has proposed: rung-0 runs, an interrupted run and its retry as one."""
    return len({r.config_trial for r in map(rung_of, trials) if r is not None and r.index == 0})


def due_promotions(trials: Sequence[FrozenTrial], spec: SchedulerSpec, configs: int = 0) -> list[tuple[FrozenTrial, Rung]]:
    """(run, the rung its config goes to) for each config in the best 1/reduction_factor of the
    finished runs at its rung that has no run at the next rung yet. Finished: told COMPLETE (a
    diverged run counts, with its inf, and is never promoted); failed runs do not count. With
    `promotion: sync` only rungs that are closed (`rung_closed`, `configs` proposed) promote."""
    placed = {(r.config_trial, r.index) for r in map(rung_of, trials) if r is not None}
    out = []
    for k, fidelity in enumerate(spec.rungs[1:]):
        if spec.promotion == "sync" and not rung_closed(trials, k, configs):
            break  # the rungs above cannot have runs yet
        done = [t for t in trials if t.state == TrialState.COMPLETE and (r := rung_of(t)) is not None and r.index == k]
        keep = math.floor(len(done) / spec.reduction_factor + 1e-9)
        ranked = sorted((t for t in done if t.value is not None and math.isfinite(t.value)), key=lambda t: (t.value, t.number))
        for t in ranked[:keep]:
            config = rung_of(t).config_trial
            if (config, k + 1) not in placed:
                out.append((t, Rung(k + 1, fidelity, config, promoted_from=t.number)))
    return out


def rung_closed(trials: Sequence[FrozenTrial], k: int, configs: int) -> bool:
    """Rung k can get no more runs: the rungs below are closed (for rung 0: `configs` configs
    proposed) and none of its runs is queued or running."""
    if k == 0:
        below = configs_proposed(trials) >= configs
    else:
        below = rung_closed(trials, k - 1, configs)
    pending = (TrialState.WAITING, TrialState.RUNNING)
    return below and not any(t.state in pending and (r := rung_of(t)) is not None and r.index == k for t in trials)


def promote(study: optuna.Study, spec: SchedulerSpec, configs: int = 0) -> list[tuple[FrozenTrial, Rung]]:
    """Enqueue every due promotion; what was enqueued."""
    due = due_promotions(study.get_trials(deepcopy=False), spec, configs)
    for t, rung in due:
        study.enqueue_trial(t.params, user_attrs=rung.attrs(), skip_if_exists=False)
    return due


def sampler_caveat(sampler: str, spec: SchedulerSpec) -> str | None:
    """Why a model-based sampler may mislead a sync horizon sweep, or None: it proposes every config
    before any longer run exists, so it learns from the lowest rung alone."""
    if spec.promotion != "sync" or sampler not in ("tpe", "cmaes"):
        return None
    return (f"sampler {sampler} with promotion: sync proposes every config before any longer run has "
            "finished, so it learns from the shortest rung alone and piles its proposals where short "
            "runs look best (short runs favour higher learning rates); sampler: random or qmc lets the "
            "halving choose among evenly spread configs")


def max_runs(spec: SchedulerSpec, configs: int) -> int:
    """An upper bound on the runs of `configs` configs: each runs at most once per rung."""
    return configs * len(spec.rungs)


def expected_runs(spec: SchedulerSpec, configs: int) -> int:
    """Runs when every rung has finished: its configs' best 1/reduction_factor go on, rung by rung
    (exact with `promotion: sync` and no failed run; async may promote a few more early)."""
    total, n = 0, configs
    for _ in spec.rungs:
        total += n
        n = math.floor(n / spec.reduction_factor + 1e-9)
    return total


class HorizonSearch(SweepSearch):
    """SweepSearch that runs due promotions before new proposals, proposes `configs` configs at the
    lowest rung, and is finished once they and every promotion they earned have run."""

    def __init__(self, *args: Any, scheduler: SchedulerSpec, configs: int, **kwargs: Any):
        self.spec = scheduler
        self.configs = configs
        self._stale = True  # promotions to look for: at start (a resumed study) and after each finished run
        self._idle = False
        super().__init__(*args, **kwargs)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        if trial_id not in self._ot_trials and self._nothing_to_run():
            running = set(self._ot_trials) - self._completed_trials
            return None if running else Searcher.FINISHED  # a running trial may still earn a promotion
        self._stale = True  # one more config proposed, or one queued run taken
        return super().suggest(trial_id)

    def _nothing_to_run(self) -> bool:
        """No run queued and every config proposed; looked up in the study only when that may have
        changed, since Tune asks again and again while the answer is no."""
        if self._stale:
            promote(self._ot_study, self.spec, self.configs)
            trials = self._ot_study.get_trials(deepcopy=False)
            queued = any(t.state == TrialState.WAITING for t in trials)
            self._idle = not queued and configs_proposed(trials) >= self.configs
            self._stale = False
        return self._idle

    def _new_rung(self, ot_trial) -> Rung:
        rung = Rung(0, self.spec.rungs[0], ot_trial.number)
        for key, value in rung.attrs().items():
            ot_trial.set_user_attr(key, value)
        return rung

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, result, error)
        self._stale = True
