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
With `detrend`, a rung ranks its runs by what a linear fit of their losses in those parameters
leaves over (`rung_scores`), for a parameter whose effect the short runs get backwards.

`audit` runs some configs the lowest rung dropped at full length all the same (`due_audits`,
user attribute `audit`): the runs a promotion never makes, without which the lowest rung's
ranking is only ever checked against the configs it ranked best.

`retune` adds a line search at full length once the halving is over (`retune_step`): a parameter
whose best value shifts with the run's length was chosen at the short rungs, so the best
full-length config is run again with it moved, one run at a time. Each such run is a new config
(its own `config_trial`) at the last rung with user attributes `retune` (the parameter) and
`promoted_from` (the run it moved away from); the study holds the search's state as it holds the
promotions'. A parameter in `retune.hold` keeps one value through the halving (`halving_space`),
so the short rungs, which may favour another value of it, rank configs on the others alone.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

from orchestrator.outcome import INTERRUPTED, PROMOTED_FROM, RETUNE, STATUS
from orchestrator.private_api import asked_ids, completed_ids, optuna_study, optuna_trial
from orchestrator.records import Rung
from orchestrator.search import SweepSearch
from search_spaces import RetuneSpec, SchedulerSpec, SweepSpace


def rung_of(t: FrozenTrial) -> Rung | None:
    return Rung.of(t.user_attrs)


def configs_proposed(trials: Sequence[FrozenTrial]) -> int:
    """Configs the sampler has proposed: rung-0 runs, an interrupted run and its retry as one."""
    return len({r.config_trial for r in map(rung_of, trials) if r is not None and r.index == 0})


def rung_scores(runs: Sequence[FrozenTrial], spec: SchedulerSpec, ranges: Mapping[str, Any]) -> dict[int, float]:
    """The score, lower better, of each of one rung's runs with a finite loss, by trial number: its
    loss, or with `spec.detrend`, what is left of it after a least-squares fit linear in those
    parameters (log-scaled where their distribution in `ranges` is): a short rung that favours
    another value of them than the full run ranks configs on the rest. The loss itself while the
    rung has too few runs for the fit to leave anything to rank (fewer than parameters + 3)."""
    finite = [t for t in runs if t.value is not None and math.isfinite(t.value)]
    if len(finite) < len(spec.detrend) + 3:
        return {t.number: t.value for t in finite}
    loss = np.array([t.value for t in finite])
    design = np.array([[1.0] + [math.log(t.params[n]) if ranges[n].log else float(t.params[n]) for n in spec.detrend]
                       for t in finite])
    coef, *_ = np.linalg.lstsq(design, loss, rcond=None)
    return {t.number: float(r) for t, r in zip(finite, loss - design @ coef)}


def rung_ranking(trials: Sequence[FrozenTrial], k: int, spec: SchedulerSpec,
                 ranges: Mapping[str, Any] | None = None) -> tuple[list[FrozenTrial], int]:
    """Rung k's finished runs with a finite score, best first (by `rung_scores`), and how many of
    them the rung sends on: 1/reduction_factor of its finished runs, a diverged one counted."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and (r := rung_of(t)) is not None and r.index == k]
    scores = rung_scores(done, spec, ranges or {})
    ranked = sorted((t for t in done if t.number in scores), key=lambda t: (scores[t.number], t.number))
    return ranked, math.floor(len(done) / spec.reduction_factor + 1e-9)


def due_promotions(trials: Sequence[FrozenTrial], spec: SchedulerSpec, configs: int = 0,
                   ranges: Mapping[str, Any] | None = None) -> list[tuple[FrozenTrial, Rung]]:
    """(run, the rung its config goes to) for each config in the best 1/reduction_factor of the
    finished runs at its rung (by `rung_scores`; `ranges`: the space's distributions by name)
    that has no run at the next rung yet. Finished: told COMPLETE (a diverged run counts, with
    its inf, and is never promoted); failed runs do not count. With `promotion: sync` only rungs
    that are closed (`rung_closed`, `configs` proposed) promote."""
    placed = {(r.config_trial, r.index) for r in map(rung_of, trials) if r is not None}
    out = []
    for k, fidelity in enumerate(spec.rungs[1:]):
        if spec.promotion == "sync" and not rung_closed(trials, k, configs):
            break  # the rungs above cannot have runs yet
        ranked, keep = rung_ranking(trials, k, spec, ranges)
        for t in ranked[:keep]:
            config = rung_of(t).config_trial
            if (config, k + 1) not in placed:
                out.append((t, Rung(k + 1, fidelity, config, promoted_from=t.number)))
    return out


def due_audits(trials: Sequence[FrozenTrial], spec: SchedulerSpec, configs: int = 0,
               ranges: Mapping[str, Any] | None = None) -> list[tuple[FrozenTrial, Rung]]:
    """(rung-0 run, its config's audit run) for each audit not yet placed: once the lowest rung is
    closed, `spec.audit` of the configs it dropped (outside its best 1/reduction_factor by
    `rung_scores`, never promoted, finite loss), evenly spaced over their ranking so that the
    audits span it, each to run at the last rung."""
    if spec.audit == 0 or not rung_closed(trials, 0, configs):
        return []
    rungs = [r for r in map(rung_of, trials) if r is not None]
    promoted = {r.config_trial for r in rungs if r.index == 1 and not r.audit}  # with two rungs, audits run at 1
    placed = {(r.config_trial, r.index) for r in rungs}
    ranked, keep = rung_ranking(trials, 0, spec, ranges)
    dropped = [t for t in ranked[keep:] if rung_of(t).config_trial not in promoted]
    n, last = min(spec.audit, len(dropped)), len(spec.rungs) - 1
    picks = [dropped[(2 * i + 1) * len(dropped) // (2 * n)] for i in range(n)]
    return [(t, Rung(last, spec.rungs[-1], rung_of(t).config_trial, promoted_from=t.number, audit=True))
            for t in picks if (rung_of(t).config_trial, last) not in placed]


def rung_closed(trials: Sequence[FrozenTrial], k: int, configs: int) -> bool:
    """Rung k can get no more runs: the rungs below are closed (for rung 0: `configs` configs
    proposed) and none of its runs is queued or running."""
    if k == 0:
        below = configs_proposed(trials) >= configs
    else:
        below = rung_closed(trials, k - 1, configs)
    pending = (TrialState.WAITING, TrialState.RUNNING)
    return below and not any(t.state in pending and (r := rung_of(t)) is not None and r.index == k for t in trials)


def promote(study: optuna.Study, spec: SchedulerSpec, configs: int = 0,
            ranges: Mapping[str, Any] | None = None) -> list[tuple[FrozenTrial, Rung]]:
    """Enqueue every due promotion, then every due audit; what was enqueued."""
    trials = study.get_trials(deepcopy=False)
    due = due_promotions(trials, spec, configs, ranges) + due_audits(trials, spec, configs, ranges)
    for t, rung in due:
        study.enqueue_trial(t.params, user_attrs=rung.attrs(), skip_if_exists=False)
    return due


_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def _loss(t: FrozenTrial) -> float:
    """A finished run's loss for the line search: a failed or stopped run counts as the worst."""
    return t.value if t.state == TrialState.COMPLETE and t.value is not None else math.inf


def line_search_step(start: float, start_loss: float, tried: Sequence[tuple[float, float]], spec: RetuneSpec,
                     low: float, high: float) -> float | None:
    """The next value of one parameter's line search from `start` (whose run ended at
    `start_loss`), given the (value, loss) of its runs so far in order; None once it is over.
    Up by `spec.factor` from the best value so far while that improves; down from `start` if the
    first step up does not; over at `spec.runs` runs, at the range's edge or on a step that fails
    after one that improved."""
    if len(tried) >= spec.runs:
        return None
    best, best_loss, sign, moved = start, start_loss, 1, False
    for value, loss in tried:
        if loss < best_loss:
            best, best_loss, moved = value, loss, True
        elif sign == 1 and not moved:
            sign = -1
        else:
            return None
    while True:
        value = min(high, max(low, best * spec.factor ** sign))
        if not math.isclose(value, best) and not any(math.isclose(value, v) for v, _ in tried):
            return value
        if sign == -1 or moved:
            return None
        sign = -1  # at the top of the range already: try below


def retune_step(trials: Sequence[FrozenTrial], spec: SchedulerSpec, ranges: dict[str, Any],
                configs: int) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The next retune run as (params, user attributes), or None: the halving or a retune run is
    still going, or the retune is over. Each parameter's search starts from the best full-length
    run of the halving and the searches of the parameters before it; `ranges`: the space's
    distributions by name, whose low and high bound each step."""
    last = len(spec.rungs) - 1
    pending = (TrialState.WAITING, TrialState.RUNNING)
    if spec.retune is None or any(t.state in pending and RETUNE in t.user_attrs for t in trials):
        return None
    if not rung_closed(trials, last, configs):
        return None
    full = [(t, r) for t in trials if (r := rung_of(t)) is not None and r.index == last and t.state in _FINISHED
            and t.user_attrs.get(STATUS) != INTERRUPTED]  # its retry stands for it
    settled: list[str] = []
    for name in spec.retune.params:
        pool = [t for t, r in full if t.state == TrialState.COMPLETE and (r.retune is None or r.retune in settled)]
        start = min((t for t in pool if math.isfinite(t.value)), key=lambda t: (t.value, t.number), default=None)
        if start is None:
            return None
        tried = [(t.params[name], _loss(t)) for t, r in sorted(full, key=lambda x: x[0].number) if r.retune == name]
        value = line_search_step(start.params[name], start.value, tried, spec.retune, ranges[name].low, ranges[name].high)
        if value is not None:
            return {**start.params, name: value}, {RETUNE: name, PROMOTED_FROM: start.number}
        settled.append(name)
    return None


def retune(study: optuna.Study, trials: Sequence[FrozenTrial], spec: SchedulerSpec, ranges: dict[str, Any],
           configs: int) -> bool:
    """Enqueue the next retune run, if one is due after `trials` (the study's); whether one was."""
    step = retune_step(trials, spec, ranges, configs)
    if step is not None:
        study.enqueue_trial(step[0], user_attrs=step[1], skip_if_exists=False)
    return step is not None


def halving_space(space: SweepSpace) -> Callable[[optuna.Trial], dict[str, Any]]:
    """The space's define-by-run function for a horizon sweep: `retune.hold`'s parameters at their
    held values, except in retune runs, which move them. Picklable, as Tune checkpoints its searcher."""
    retune = space.scheduler.retune
    return functools.partial(_define_by_run, space, retune.hold if retune is not None else {})


def _define_by_run(space: SweepSpace, hold: dict[str, float], trial: optuna.Trial) -> dict[str, Any]:
    return space.define_by_run(trial, {} if RETUNE in trial.user_attrs else hold)


def sampler_caveat(sampler: str, spec: SchedulerSpec) -> str | None:
    """Why a model-based sampler may mislead a sync horizon sweep, or None: it proposes every config
    before any longer run exists, so it learns from the lowest rung alone."""
    if spec.promotion != "sync" or sampler not in ("tpe", "cmaes"):
        return None
    return (f"sampler {sampler} with promotion: sync proposes every config before any longer run has "
            "finished, so it learns from the shortest rung alone and piles its proposals where short "
            "runs look best (whose learning rates need not be the full run's); sampler: random or qmc "
            "lets the halving choose among evenly spread configs")


def max_runs(spec: SchedulerSpec, configs: int) -> int:
    """An upper bound on the runs of `configs` configs: each runs at most once per rung (an
    audited config at two), then the retune's runs."""
    return configs * len(spec.rungs) + (spec.retune.max_runs() if spec.retune else 0)


def expected_runs(spec: SchedulerSpec, configs: int) -> int:
    """Runs when every rung has finished: its configs' best 1/reduction_factor go on, rung by rung
    (exact with `promotion: sync` and no failed run; async may promote a few more early); the
    audits of configs the lowest rung dropped; then the retune's runs, at most (a line search may
    end early)."""
    total, n = 0, configs
    for _ in spec.rungs:
        total += n
        n = math.floor(n / spec.reduction_factor + 1e-9)
    audits = min(spec.audit, configs - math.floor(configs / spec.reduction_factor + 1e-9))
    return total + audits + (spec.retune.max_runs() if spec.retune else 0)


class HorizonSearch(SweepSearch):
    """SweepSearch that runs due promotions before new proposals, proposes `configs` configs at the
    lowest rung, then runs the retune, and is finished once all of it has run. `ranges`: the
    space's distributions by name (the retune's bounds)."""

    def __init__(self, *args: Any, scheduler: SchedulerSpec, configs: int, ranges: dict[str, Any], **kwargs: Any):
        self.spec = scheduler
        self.configs = configs
        self.ranges = ranges
        self._stale = True  # promotions to look for: at start (a resumed study) and after each finished run
        self._idle = False
        super().__init__(*args, **kwargs)

    def _propose(self, trial_id: str) -> dict[str, Any] | str | None:
        if optuna_trial(self, trial_id) is None and self._nothing_to_run():
            running = asked_ids(self) - completed_ids(self)
            return None if running else Searcher.FINISHED  # a running trial may still earn a promotion
        self._stale = True  # one more config proposed, or one queued run taken
        return super()._propose(trial_id)

    def _nothing_to_run(self) -> bool:
        """No run queued and every config proposed; looked up in the study only when that may have
        changed, since Tune asks again and again while the answer is no."""
        if self._stale:
            study = optuna_study(self)
            promote(study, self.spec, self.configs, self.ranges)
            trials = study.get_trials(deepcopy=False)
            queued = any(t.state == TrialState.WAITING for t in trials)
            if not queued and self.spec.retune is not None:
                queued = retune(study, trials, self.spec, self.ranges, self.configs)
            self._idle = not queued and configs_proposed(trials) >= self.configs
            self._stale = False
        return self._idle

    def _new_rung(self, ot_trial) -> Rung:
        moved = ot_trial.user_attrs.get(RETUNE)
        if moved is not None:  # a retune run: a new config at the last rung
            rung = Rung(len(self.spec.rungs) - 1, self.spec.rungs[-1], ot_trial.number,
                        ot_trial.user_attrs[PROMOTED_FROM], moved)
        else:
            rung = Rung(0, self.spec.rungs[0], ot_trial.number)
        for key, value in rung.attrs().items():
            ot_trial.set_user_attr(key, value)
        return rung

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, result, error)
        self._stale = True
