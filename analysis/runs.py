"""A sweep or ablation as the driver recorded it in MLflow, read back into plain dataclasses.

The data contract: one experiment per sweep (named after it); a parent run tagged
`speedrun.role = sweep` (and `speedrun.kind`, sweep or ablation); one child run per trial,
tagged `mlflow.parentRunId`, `status`, `optuna_trial`, with the searched values as
`searched.<name>` params and `objective` / `final_val_loss` / `wall_time_s` metrics at the end.
A horizon sweep's runs also have params `rung` and `fidelity` and the tag `config_trial`; its
retune runs the tags `retune` (the parameter moved) and `promoted_from`, its audit runs `audit`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from trainer.errors import InputError
from trainer.uris import shown

PARENT_TAG = "mlflow.parentRunId"
SEARCHED = "searched."
ENV = "env."
RUNNING = "running"
COMPLETED = "completed"
MAX_RUNS = 50000  # one page of search_runs; far more trials than any sweep runs

Value = int | float | str


@dataclass(frozen=True)
class Trial:
    """One child run: what the searcher chose, how it ended, and its final numbers (nan if absent)."""

    run_id: str
    number: int | None  # the Optuna trial number
    status: str
    objective: float
    final_val_loss: float
    train_time_s: float  # training time at the last val event
    wall_time_s: float
    searched: dict[str, Value] = field(default_factory=dict)
    error: str = ""
    retry_of: int | None = None
    env: dict[str, str] = field(default_factory=dict)  # the environment fingerprint (env.* tags)
    rung: int | None = None  # a horizon sweep's run: its rung, its horizon, its config's rung-0 trial
    fidelity: float | None = None
    config_trial: int | None = None
    retune: str | None = None  # a retune run: the parameter it moved from its `promoted_from` run's
    promoted_from: int | None = None
    audit: bool = False  # an audit run: a config the lowest rung dropped, run at full length all the same
    margin: float = -math.inf  # the validity margin at the objective's step: ranks configs of one objective

    @property
    def label(self) -> str:
        return f"#{self.number}" if self.number is not None else self.run_id[:8]

    @property
    def finished(self) -> bool:
        return self.status != RUNNING

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED and math.isfinite(self.final_val_loss)


@dataclass(frozen=True)
class Sweep:
    """The parent run's settings and every trial run under it (running ones included)."""

    name: str
    kind: str  # "sweep" or "ablation"
    tracking_uri: str
    parent_id: str
    objective: str  # final_val_loss | time_to_target | steps_to_target
    target: float | None
    storage: str | None  # the Optuna storage URL the sweep ran with
    trials: list[Trial]

    @property
    def finished(self) -> list[Trial]:
        return [t for t in self.trials if t.finished]

    def counts(self) -> dict[str, int]:
        """Finished trials by status, most frequent first."""
        out: dict[str, int] = {}
        for t in self.finished:
            out[t.status] = out.get(t.status, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def longest_runs(trials: list[Trial]) -> list[Trial]:
    """The completed trials that may be ranked against each other: in a horizon sweep those of the
    highest rung a completed run reached (shorter runs end at higher losses); otherwise all."""
    done = [t for t in trials if t.completed]
    top = max((t.rung for t in done if t.rung is not None), default=None)
    return done if top is None else [t for t in done if t.rung == top]


def load_sweep(name: str, tracking_uri: str) -> Sweep:
    """The sweep or ablation NAME from the MLflow store; InputError naming the store if absent."""
    client = open_store(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        names = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        known = ", ".join(names) if names else "none"
        raise InputError(f"no sweep named '{name}' in MLflow store {shown(tracking_uri)}; experiments there: {known}")
    parents = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`speedrun.role` = 'sweep'",
        order_by=["attributes.start_time ASC"], max_results=1,
    )
    if not parents:
        raise InputError(f"MLflow experiment '{name}' in {shown(tracking_uri)} has no sweep run (tag speedrun.role = sweep)")
    parent = parents[0]
    params, tags = parent.data.params, parent.data.tags
    children = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'", max_results=MAX_RUNS
    )
    trials = sorted((_trial(run) for run in children), key=lambda t: (t.number is None, t.number or 0, t.run_id))
    target = _number(params.get("target"))
    return Sweep(
        name=name, kind=tags.get("speedrun.kind", "sweep"), tracking_uri=tracking_uri, parent_id=parent.info.run_id,
        objective=params.get("objective", "final_val_loss"), target=target if math.isfinite(target) else None,
        storage=params.get("optuna_storage"), trials=trials,
    )


def open_store(tracking_uri: str) -> MlflowClient:
    """A client on an existing store; a missing sqlite file is an error, not a new empty store."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        if not db.is_file():
            raise InputError(
                f"no MLflow store at {db} (--tracking-uri {tracking_uri}); run the report where the sweep ran, "
                "or point --tracking-uri at its store"
            )
    return MlflowClient(tracking_uri)


def val_curve(tracking_uri: str, run_id: str) -> list[tuple[int, float]]:
    """A run's (step, val_loss) points in step order."""
    history = MlflowClient(tracking_uri).get_metric_history(run_id, "val_loss")
    return sorted((m.step, m.value) for m in history if math.isfinite(m.value))


def parse_value(text: str) -> Value:
    """A param string as a number where it is one (params are logged as str() or JSON)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float) and not isinstance(value, bool) else text


def _trial(run: Run) -> Trial:
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    number = tags.get("optuna_trial", "")
    retry_of = tags.get("retry_of", "")
    return Trial(
        run_id=run.info.run_id,
        number=int(number) if number.isdigit() else None,
        status=tags.get("status", RUNNING),
        objective=metrics.get("objective", math.nan),
        # a completed run's latest val_loss is its final one (a run closed by `--resume` may lack the metric)
        final_val_loss=metrics.get("final_val_loss", metrics.get("val_loss", math.nan) if tags.get("status") == COMPLETED else math.nan),
        # run.data.metrics holds each metric's latest value: the last val event's train time
        train_time_s=metrics.get("train_time_ms", math.nan) / 1000,
        wall_time_s=metrics.get("wall_time_s", math.nan),
        searched={k[len(SEARCHED):]: parse_value(v) for k, v in sorted(params.items()) if k.startswith(SEARCHED)},
        error=tags.get("error", ""),
        retry_of=int(retry_of) if retry_of.isdigit() else None,
        env={k[len(ENV):]: v for k, v in sorted(tags.items()) if k.startswith(ENV)},
        rung=int(params["rung"]) if params.get("rung", "").isdigit() else None,
        fidelity=_number(params["fidelity"]) if "fidelity" in params else None,
        config_trial=int(tags["config_trial"]) if tags.get("config_trial", "").isdigit() else None,
        retune=tags.get("retune"),
        promoted_from=int(tags["promoted_from"]) if tags.get("promoted_from", "").isdigit() else None,
        audit=tags.get("audit") == "True",
        margin=metrics.get("margin", -math.inf),
    )


def _number(text: str | None) -> float:
    value = parse_value(text) if text is not None else math.nan
    return float(value) if isinstance(value, int | float) else math.nan
