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
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import psycopg
import pytest
import ray
from mlflow import MlflowClient
from sqlalchemy.engine import make_url

from orchestrator.driver_lock import SweepBusy, driver_lock
from orchestrator.stores import shown
from orchestrator.sweep import SweepOptions, init_ray, prepare_space, run_sweep

from processes import UI_GONE_TIMEOUT_S, in_sessions, start_ui  # tests/processes.py

pytestmark = pytest.mark.slow

POSTGRES_URL_ENV = "SPEEDRUN_TEST_POSTGRES_URL"
SERVER_USER = "postgres"  # who runs a server started as root: postgres refuses to run as root
PASSWORD = f"pw{uuid.uuid4().hex}"  # in the stores' URLs: no file, artifact or console line may hold it


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


def with_password(url: str) -> str:
    """`url` with a password: its own, else PASSWORD (a server of trust auth ignores it), so that
    what the tests write can be searched for it."""
    parsed = make_url(url)
    return url if parsed.password else parsed.set(password=PASSWORD).render_as_string(hide_password=False)


def password_of(url: str) -> str:
    return str(make_url(url).password)


@pytest.fixture(scope="module")
def stores(postgres_url):
    """(tracking URI, storage URL): two new databases on the server, dropped afterwards; the
    URLs hold a password."""
    names = [f"speedrun_test_{uuid.uuid4().hex[:8]}_{kind}" for kind in ("mlflow", "optuna")]
    # CREATE DATABASE cannot run in a transaction
    admin = psycopg.connect(make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False),
                            autocommit=True)
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield tuple(with_password(make_url(postgres_url).set(database=name).render_as_string(hide_password=False))
                    for name in names)
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
    session = Path(ray._private.worker._global_node.get_session_dir_path())  # Tune stages its state here too
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
    written[:] = [work, session]
    return tracking_uri, storage, counts


written: list[Path] = []  # where the module's sweep wrote: its working directory and Ray's session folder


def child_runs(tracking_uri: str) -> list:
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("pg").experiment_id])
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def test_a_sweep_records_its_trials_in_postgresql(resumed_sweep):
    _, _, counts = resumed_sweep
    assert counts[0] == (2, 2)  # Optuna trials, MLflow trial runs


def test_no_file_a_sweep_or_its_ray_wrote_holds_the_database_password(resumed_sweep):
    tracking_uri, storage, _ = resumed_sweep
    work, session = written
    assert (work / "sweeps" / "pg" / "tune" / "tuner.pkl").is_file()  # Tune's pickles are among what is searched
    for secret in {password_of(tracking_uri), password_of(storage)}:
        assert files_holding(work, secret) + files_holding(session, secret) == []


def test_a_second_driver_of_a_postgresql_sweep_is_refused_until_the_first_dies(stores):
    _, storage = stores
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time\nfrom orchestrator.driver_lock import driver_lock\n"
        f"with driver_lock({storage!r}, 'locked'):\n    print('held', flush=True)\n    time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SweepBusy, match=f"pid {holder.pid}"), driver_lock(storage, "locked"):
            pass
        with driver_lock(storage, "another-name"):  # one lock per sweep name
            pass
    finally:
        holder.kill()
        holder.wait()
    deadline = time.time() + 30
    while True:  # the server drops a dead client's session, and its lock with it
        try:
            with driver_lock(storage, "locked"):
                break
        except SweepBusy:
            assert time.time() < deadline, "the lock outlived its driver"
            time.sleep(0.2)


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


# --- no password in what a report or the UI writes or prints ------------------------------------


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def sweep_run_id(tracking_uri: str, name: str) -> str:
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id],
                              filter_string="tags.`speedrun.role` = 'sweep'")
    return runs[0].info.run_id


def test_a_report_on_postgresql_names_its_stores_without_their_password(resumed_sweep, tmp_path):
    tracking_uri, storage, _ = resumed_sweep
    done = run_cli(tmp_path, "report", "pg", "--tracking-uri", tracking_uri, "--storage", storage,
                   "--out", str(tmp_path / "report"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert f"`{shown(tracking_uri)}`" in text and f"`{shown(storage)}`" in text
    # what the report logged to MLflow, wherever the store keeps its artifacts
    logged = MlflowClient(tracking_uri).download_artifacts(sweep_run_id(tracking_uri, "pg"), "report",
                                                             str(tmp_path / "artifacts"))
    assert (Path(logged) / "report.md").read_text() == text
    for secret in {password_of(tracking_uri), password_of(storage)}:
        assert secret not in done.stdout + done.stderr
        assert files_holding(tmp_path, secret) == []


@pytest.mark.parametrize("case", ["storage_recorded_masked", "storage_given_masked", "no_such_sweep"])
def test_a_report_on_postgresql_fails_in_one_line_that_holds_no_password(resumed_sweep, tmp_path, case):
    tracking_uri, storage, _ = resumed_sweep
    name, args, expected = {
        # the sweep recorded the storage masked: connecting with *** would fail deep in the driver
        "storage_recorded_masked": ("pg", [], f"--storage {shown(storage).replace(':***@', ':PASSWORD@')}"),
        "storage_given_masked": ("pg", ["--storage", shown(storage)], "its password is the mask ***"),
        "no_such_sweep": ("nosuch", ["--storage", storage], f"no sweep named 'nosuch' in MLflow store {shown(tracking_uri)}"),
    }[case]
    done = run_cli(tmp_path, "report", name, "--tracking-uri", tracking_uri, *args, "--out", str(tmp_path / "report"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1, done.stderr
    assert expected in done.stderr
    for secret in {password_of(tracking_uri), password_of(storage)}:
        assert secret not in done.stdout + done.stderr


def test_speedrun_ui_on_postgresql_shows_no_password_on_its_console_or_command_lines(stores, tmp_path):
    tracking_uri, _ = stores
    secret = password_of(tracking_uri).encode()
    ui = start_ui(tmp_path, "--tracking-uri", tracking_uri)
    try:
        command_lines = []  # of what it started (its own holds what the user typed)
        for pid in set(in_sessions(ui.sessions)) - {ui.proc.pid}:
            try:
                command_lines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:  # exited since the listing
                pass
        assert len(command_lines) >= 3 and not [c for c in command_lines if secret in c]
        ui.proc.send_signal(signal.SIGTERM)
        assert ui.proc.wait(timeout=UI_GONE_TIMEOUT_S) == 130
    finally:
        ui.kill_leftovers()
    console = ui.stdout.read_bytes() + ui.stderr.read_bytes()
    assert shown(tracking_uri).encode() in console and secret not in console
