"""A script folder in HEAD's shape, end to end through the CLI: swept, ablated, promoted and
record-run, with a knob of the module it imports (tests/fixtures_script/tiny_record/: train_gpt.py
imports and reads triton_kernels.py beside it, and logs to logs/final/<uuid>.txt)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "fixtures_script" / "tiny_record" / "train_gpt.py"
DATA = REPO / "trainer" / "fixtures"
CAP = "triton_kernels.py:SoftcappedCrossEntropy.forward.cap"
BASE = f"""\
base:
  script: {TINY}
  set:
    Hyperparameters.train_files: "{DATA}/fixture_train_*.bin"
    Hyperparameters.val_files: "{DATA}/fixture_val_*.bin"
    Hyperparameters.num_iterations: 4
    Hyperparameters.val_loss_every: 2
  env: {{TINY_RUN_TAG: from-the-space}}
resources: {{gpus: 0, cpus: 1}}
"""


def speedrun(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=work, capture_output=True,
                          text=True, timeout=600)


def trial_runs(work: Path, name: str) -> list:
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def logged_caps(trials: Path) -> dict[str, str]:
    """Each trial's cap, as the script logged its own kernels' code (logs/final/<uuid>.txt)."""
    out = {}
    for log in sorted(trials.glob("trial_*/work/logs/final/*.txt")):
        line = next(text for text in log.read_text().splitlines() if "cap: float =" in text)
        out[log.parts[-5]] = line.split("cap: float =")[1].split(")")[0].strip()
    return out


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict:
    """sweep -> ablate -> promote -> record run, each through the CLI in one working directory."""
    work = tmp_path_factory.mktemp("folder")
    (work / "space.yaml").write_text(BASE + f"""\
params:
  {CAP}: {{choice: [10.0, 30.0]}}
  adam_params[0].lr: {{float: [0.01, 0.1], log: true}}
budget: {{trials: 2}}
sampler: {{name: random, seed: 0}}
""")
    (work / "ablation.yaml").write_text(BASE + f"""\
baseline: {{}}
variants:
  low_cap: {{{CAP}: 5.0}}
seeds: 2
""")
    steps = {"sweep": speedrun(work, "sweep", "space.yaml", "--name", "folder"),
             "ablate": speedrun(work, "ablate", "ablation.yaml", "--name", "folder-ablation"),
             "promote": speedrun(work, "promote", "folder", "--top-k", "1", "--reseeds", "2", "--nproc", "1")}
    records = sorted((work / "records").glob("*_folder"))
    record = records[0] if records else work / "records" / "missing"
    steps["record"] = speedrun(work, "record", "run", str(record), "--runs", "2", "--gpus-per-run", "0",
                               "--target", "11")
    return {"work": work, "folder": record, **steps}


@pytest.mark.parametrize("step", ["sweep", "ablate", "promote"])
def test_each_step_of_the_chain_succeeds(chain, step):
    assert chain[step].returncode == 0, chain[step].stdout + chain[step].stderr


def test_the_record_attempt_passes_its_target(chain):
    assert chain["record"].returncode == 0, chain["record"].stdout + chain["record"].stderr
    results = json.loads((chain["folder"] / "attempt" / "results.json").read_text())
    assert results["verdict"] == "pass" and len(results["runs"]) == 2


def test_the_sibling_knob_s_value_reaches_each_trial(chain):
    searched = {r.data.tags["optuna_trial"]: r.data.params[f"searched.{CAP}"] for r in trial_runs(chain["work"], "folder")}
    logged = logged_caps(chain["work"] / "sweeps" / "folder" / "trials")
    assert {int(k.removeprefix("trial_")): v for k, v in logged.items()} == {int(k): v for k, v in searched.items()}


def test_each_trial_keeps_its_patched_files_as_artifacts(chain):
    client = MlflowClient(f"sqlite:///{chain['work'] / 'mlflow.db'}")
    for run in trial_runs(chain["work"], "folder"):
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"train_gpt.py", "triton_kernels.py", "config.yaml"} <= artifacts
        patched = client.download_artifacts(run.info.run_id, "triton_kernels.py", str(chain["work"]))
        assert f"cap: float = {run.data.params[f'searched.{CAP}']}" in Path(patched).read_text()


def test_the_ablation_s_variant_runs_with_its_cap(chain):
    caps = logged_caps(chain["work"] / "sweeps" / "folder-ablation" / "trials")
    assert sorted(caps.values()) == ["15.0", "15.0", "5.0", "5.0"]


def test_the_promoted_folder_is_runnable_on_its_own_with_bash_run_sh(chain):
    record = chain["folder"]
    assert {"train_gpt.py", "triton_kernels.py", "changes.diff", "run.sh", "config.yaml"} <= {p.name for p in record.iterdir()}
    diff = (record / "changes.diff").read_text()
    changed = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert "+++ b/triton_kernels.py" in diff and any("cap: float =" in line for line in changed)
    assert all(any(k in line for k in ("cap: float", "lr=", "_files", "num_iterations", "val_loss_every"))
               for line in changed)  # only the set knobs' literals changed
    run_dir = chain["work"] / "elsewhere"
    run_dir.mkdir()
    result = subprocess.run(["bash", str(record / "run.sh")], cwd=run_dir, capture_output=True, text=True,
                            env={**os.environ, "NPROC": "1", "PYTHON": sys.executable}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "step:4/4 val_loss:" in result.stdout and "run tag: from-the-space" in result.stdout
    logged = next((run_dir / "logs" / "final").glob("*.txt")).read_text()
    assert (record / "triton_kernels.py").read_text() in logged  # the record's own module ran
