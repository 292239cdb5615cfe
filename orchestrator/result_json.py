"""`speedrun sweep|ablate --json`: what the driver did, as one JSON object on stdout (the console
goes to stderr), for scripts and agents.

    {"name", "kind": "sweep" | "ablation", "complete", "exit_code", "store_error",
     "best": TRIAL | null, "best_config": path | null,
     "trials": [TRIAL, ...],                        # completed first, best first (records.rank)
     "mlflow": {"tracking_uri", "experiment_id", "parent_run_id"}, "optuna": {"storage", "study"},
     "effects": [...]}                              # an ablation's (analysis/report_json.py), when complete
    TRIAL = {"number", "status", "objective", "final_val_loss", "margin", "params", "rung", "error"}

URIs are shown with their password masked; numbers that are not finite are null.
"""

from __future__ import annotations

from typing import Any

from analysis.report_json import report_json
from analysis.tables import finite_json
from orchestrator.records import TrialRecord, rank
from orchestrator.stores import shown


def result_json(result, kind: str, tracking_uri: str, storage: str) -> dict[str, Any]:
    """A SweepResult (orchestrator.sweep) as the object the module docstring describes."""
    out: dict[str, Any] = {
        "name": result.name, "kind": kind, "complete": result.complete, "exit_code": result.exit_code,
        "store_error": result.store_error or None,
        "best": _trial(result.best) if result.best is not None else None,
        "best_config": str(result.best_config) if result.best_config is not None else None,
        "trials": [_trial(r) for r in sorted(result.records, key=rank)],
        "mlflow": {"tracking_uri": shown(tracking_uri), "experiment_id": result.experiment_id,
                   "parent_run_id": result.parent_run_id},
        "optuna": {"storage": shown(storage), "study": result.name},
    }
    if kind == "ablation" and result.complete:
        out["effects"] = report_json(result.name, tracking_uri).get("effects", [])
    return finite_json(out)


def _trial(rec: TrialRecord) -> dict[str, Any]:
    return {
        "number": rec.number, "status": rec.status, "objective": rec.objective, "final_val_loss": rec.final_val_loss,
        "margin": rec.margin, "params": rec.params, "rung": rec.rung.index if rec.rung is not None else None,
        "error": rec.error,
    }
