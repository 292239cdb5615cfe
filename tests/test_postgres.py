"""A sweep with both stores on a real PostgreSQL server: MLflow (`--tracking-uri postgresql://…`)
and Optuna (`--storage postgresql://…`), each in a database of its own (both use an
`alembic_version` table, so they cannot share one), and `--resume` continuing from them.

The server: the one SPEEDRUN_TEST_POSTGRES_URL names (a URL of a role that may create databases,
e.g. postgresql://speedrun@127.0.0.1:5432/postgres; .ci/run sets it), else a throwaway one started
here on loopback in a temporary directory (initdb and pg_ctl from PATH or /usr/lib/postgresql).
Where neither is possible the tests are skipped, saying why.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import optuna
import psycopg
import pytest
import ray
from mlflow import MlflowClient
from sqlalchemy.engine import make_url

from orchestrator.stores import shown
from orchestrator.sweep import SweepOptions, init_ray, prepare_space, run_sweep

pytestmark = pytest.mark.slow

POSTGRES_URL_ENV = "SPEEDRUN_TEST_POSTGRES_URL"
SERVER_USER = "postgres"  # who runs a server started as root: postgres refuses to run as root


def server_bin() -> Path | None:
    """The directory of initdb and pg_ctl: from PATH, else Debian's newest /usr/lib/postgresql/N/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A URL of a PostgreSQL role that may create databases: the given server or a throwaway one."""
    given = os.environ.get(POSTGRES_URL_ENV)
    if given:
        yield given
        return
    bin_dir = server_bin()
    if bin_dir is None:
        pytest.skip(f"no PostgreSQL: initdb/pg_ctl not found; install PostgreSQL or set {POSTGRES_URL_ENV}")
    run_as: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"no PostgreSQL: running as root and there is no '{SERVER_USER}' user to start a server as; "
                        f"set {POSTGRES_URL_ENV}")
        run_as = ["runuser", "-u", SERVER_USER, "--"]
    home = Path(tempfile.mkdtemp(prefix="speedrun-pg-"))  # not under pytest's root-only tmp dir
    if run_as:
        os.chown(home, owner.pw_uid, owner.pw_gid)
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off"
    steps = [[str(bin_dir / "initdb"), "-D", str(home / "data"), "-U", "speedrun", "-A", "trust", "--no-sync"],
             [str(bin_dir / "pg_ctl"), "-D", str(home / "data"), "-l", str(home / "server.log"), "-o", options,
              "-w", "-t", "60", "start"]]
    for cmd in steps:
        done = subprocess.run(run_as + cmd, capture_output=True, text=True)
        if done.returncode:
            shutil.rmtree(home, ignore_errors=True)
            pytest.skip(f"no PostgreSQL: {' '.join(cmd[:1])} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    try:
        yield f"postgresql://speedrun@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(run_as + [str(bin_dir / "pg_ctl"), "-D", str(home / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def stores(postgres_url):
    """(tracking URI, storage URL): two new databases on the server, dropped afterwards."""
    names = [f"speedrun_test_{uuid.uuid4().hex[:8]}_{kind}" for kind in ("mlflow", "optuna")]
    # CREATE DATABASE cannot run in a transaction
    admin = psycopg.connect(make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False),
                            autocommit=True)
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield tuple(make_url(postgres_url).set(database=name).render_as_string(hide_password=False) for name in names)
    finally:
        with admin.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # MLflow keeps its pool open
        admin.close()


@pytest.fixture(scope="module")
def resumed_sweep(stores, tmp_path_factory):
    """A sweep of 2 trials into PostgreSQL, then `--resume` of it with `--trials 3`; the stores'
    trial counts after each driver."""
    tracking_uri, storage = stores
    work = tmp_path_factory.mktemp("pg")
    (work / "space.yaml").write_text("""\
base:
  config: tiny
  set: {eval.every: 2, data.val_tokens: 2048}
params:
  optim.muon_lr: {float: [0.01, 0.1], log: true}
budget: {trials: 2, steps: 2}
sampler: {name: random, seed: 0}
resources: {gpus: 0, cpus: 1}
""")
    started = init_ray(None)
    old = Path.cwd()
    os.chdir(work)  # MLflow's artifacts go to ./mlruns beside a database store
    try:
        counts = []
        for trials, resume in ((2, False), (3, True)):
            options = SweepOptions(name="pg", tracking_uri=tracking_uri, storage=storage, workdir=work, resume=resume)
            result = run_sweep(prepare_space(work / "space.yaml", trials=trials), options)
            assert result.complete and result.exit_code == 0
            counts.append((len(optuna.load_study(study_name="pg", storage=storage).trials), len(child_runs(tracking_uri))))
    finally:
        os.chdir(old)
        if started:
            ray.shutdown()
    return tracking_uri, storage, counts


def child_runs(tracking_uri: str) -> list:
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("pg").experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_a_sweep_records_its_trials_in_postgresql(resumed_sweep):
    _, _, counts = resumed_sweep
    assert counts[0] == (2, 2)  # Optuna trials, MLflow trial runs


def test_resume_continues_the_same_sweep_from_postgresql(resumed_sweep):
    tracking_uri, storage, counts = resumed_sweep
    assert counts[1] == (3, 3)  # one trial more, none re-run
    study = optuna.load_study(study_name="pg", storage=storage)
    assert [(t.number, t.state) for t in study.trials] == [(n, optuna.trial.TrialState.COMPLETE) for n in range(3)]
    runs = child_runs(tracking_uri)
    assert sorted(int(r.data.tags["optuna_trial"]) for r in runs) == [0, 1, 2]
    assert all(r.data.tags["status"] == "completed" and r.info.status == "FINISHED" for r in runs)
    client = MlflowClient(tracking_uri)
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED" and parent.data.tags["resumes"] == "1"
    assert parent.data.params["optuna_storage"] == shown(storage)


@pytest.mark.parametrize("uri, expected", [
    ("postgresql://speedrun:s3cr%40t@db:5432/optuna", "postgresql://speedrun:***@db:5432/optuna"),
    ("postgresql+psycopg://speedrun:pw@db/optuna?sslmode=require", "postgresql+psycopg://speedrun:***@db/optuna?sslmode=require"),
    ("http://admin:pw@mlflow:5000", "http://admin:***@mlflow:5000"),
    ("postgresql://speedrun@db/optuna", "postgresql://speedrun@db/optuna"),
    ("sqlite:////work/optuna.db", "sqlite:////work/optuna.db"),
])
def test_a_store_s_password_is_masked_wherever_its_uri_is_shown(uri, expected):
    assert shown(uri) == expected
