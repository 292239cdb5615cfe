"""The table of bench/script_record_gpu.sh: each run's start-up, step time and val losses.

    python bench/script_record_summary.py WORK [--json]

Start-up is launch to the first step line (the step-0 validation, after the compile);
the step time is the median of the per-step increments of its train_time; the runs of the
sweeps are read from their trial folders (sweeps/*/trials/trial_*/events.jsonl) and their
MLflow runs (status, start-up as time_startup_s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from mlflow import MlflowClient


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def step_ms(evs: list[dict]) -> float | None:
    """Median train_time increment between consecutive train events (the timed steps)."""
    train = [(e["step"], e["train_time_ms"]) for e in evs if e["event"] == "train" and e.get("train_time_ms") is not None]
    steps = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in zip(train, train[1:]) if s1 > s0 and s0 >= 1]
    return statistics.median(steps) if steps else None


def vals(evs: list[dict]) -> dict[int, float | None]:
    return {e["step"]: e.get("val_loss") for e in evs if e["event"] == "val"}


def row(name: str, evs: list[dict], startup_s: float | None, status: str) -> dict:
    return {"run": name, "status": status, "startup_s": startup_s, "step_ms": step_ms(evs), "val": vals(evs)}


def builtin_run(work: Path) -> list[dict]:
    """The built-in trainer's run on the same data and schedule (start-up from its launch stamp), if any."""
    if not (work / "ours").is_dir():
        return []
    stamps = dict(line.split()[:2] for line in (work / "stamps.txt").read_text().splitlines() if "exit" not in line)
    evs = events(work / "ours" / "events.jsonl")
    start = next((e["time"] for e in evs if e["event"] == "val"), None)
    end = next((e.get("status") for e in evs if e["event"] == "end"), "?")
    return [row("built-in trainer", evs, start - float(stamps["ours"]) if start else None, end)]


def sweep_runs(work: Path) -> list[dict]:
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    out = []
    for exp in sorted(client.search_experiments(), key=lambda e: e.creation_time):
        for run in sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time):
            tags = run.data.tags
            if "mlflow.parentRunId" not in tags:
                continue
            number = int(tags.get("optuna_trial", -1))
            evs = events(work / "sweeps" / exp.name / "trials" / f"trial_{number:04d}" / "events.jsonl")
            out.append(row(f"{exp.name} #{number}", evs, run.data.metrics.get("time_startup_s"), tags.get("status", "?")))
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| run | status | start-up (s) | step (ms) | val loss @20 | @40 |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        fmt = lambda v, f: "–" if v is None else format(v, f)  # noqa: E731
        lines.append(f"| {r['run']} | {r['status']} | {fmt(r['startup_s'], '.0f')} | {fmt(r['step_ms'], '.0f')} | "
                     f"{fmt(r['val'].get(20), '.4f')} | {fmt(r['val'].get(40), '.4f')} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", type=Path)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = builtin_run(args.work) + (sweep_runs(args.work) if (args.work / "mlflow.db").is_file() else [])
    sys.stdout.write(json.dumps(rows, indent=1) + "\n" if args.json else markdown(rows) + "\n")


if __name__ == "__main__":
    main()
