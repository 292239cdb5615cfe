"""One live driver per sweep: a lock on the sweep's name in its Optuna storage, held for the
life of the driver and released by the operating system or the database server when the driver
dies, however it dies (SIGKILL included), so a dead driver can never leave it held.

    with driver_lock("sqlite:////work/optuna.db", "smoke"):   # raises SweepBusy naming the holder
        ...

- sqlite: an `flock` on `<db>.locks/<name>.lock` beside the database file, which holds the
  holder's host and pid while held;
- PostgreSQL: a session-level advisory lock on one connection kept open by the driver; the
  holder is found in `pg_stat_activity` by the connection's `application_name`.

Other storages (MySQL, say) get no lock; an in-memory sqlite study has only one driver anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import first_line
from orchestrator.stores import shown
from trainer.errors import InputError

SQLITE = "sqlite:///"
PG_NAMESPACE = 0x5350_4452  # "SPDR": the first key of speedrun's advisory locks, apart from other users'
APP_PREFIX = "speedrun driver "


class SweepBusy(InputError):
    """Another driver runs the sweep of this name; nothing was done."""


def holder() -> str:
    """This driver, as the lock shows it to others."""
    return f"host {socket.gethostname()}, pid {os.getpid()}"


def busy(name: str, who: str) -> SweepBusy:
    return SweepBusy(
        f"sweep '{name}' is being run by another driver ({who}); wait for it to finish, or stop it "
        "(Ctrl-C or SIGTERM) and continue it with --resume"
    )


@contextlib.contextmanager
def driver_lock(storage: str, name: str) -> Iterator[None]:
    """Hold the lock of sweep `name` in `storage` for the block; raise SweepBusy if another driver holds it."""
    if storage.startswith(SQLITE) and storage != SQLITE + ":memory:":
        with _file_lock(Path(storage[len(SQLITE):]), name):
            yield
    elif storage.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        with _advisory_lock(storage, name):
            yield
    else:
        yield


@contextlib.contextmanager
def _file_lock(db: Path, name: str) -> Iterator[None]:
    path = db.parent / f"{db.name}.locks" / f"{name}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by Ray or the trainers (PEP 446)
    except OSError as exc:
        raise InputError(f"--storage {SQLITE}{db}: cannot make the sweep's lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy(name, _written_holder(path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _written_holder(path: Path) -> str:
    with contextlib.suppress(OSError):
        if text := path.read_text().strip():
            return text
    return "unknown host and pid"


def _key(name: str) -> int:
    """A stable 31-bit key for the sweep name (advisory locks take integers)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") >> 1


@contextlib.contextmanager
def _advisory_lock(storage: str, name: str) -> Iterator[None]:
    import sqlalchemy

    engine = sqlalchemy.create_engine(storage, poolclass=sqlalchemy.pool.NullPool,
                                      connect_args={"application_name": (APP_PREFIX + holder())[:63]})
    try:
        try:
            conn = engine.connect()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise InputError(f"--storage {shown(storage)}: cannot open the Optuna storage: {first_line(exc)}") from None
        with conn:
            got = conn.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:a, :b)"),
                               {"a": PG_NAMESPACE, "b": _key(name)}).scalar()
            conn.commit()
            if not got:
                raise busy(name, _pg_holder(conn, name))
            yield  # the lock lives as long as this connection: the server drops it when the driver dies
    finally:
        engine.dispose()


def _pg_holder(conn, name: str) -> str:
    import sqlalchemy

    row = conn.execute(sqlalchemy.text(
        "SELECT a.application_name, a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :a AND l.objid = :b AND l.objsubid = 2"
    ), {"a": PG_NAMESPACE, "b": _key(name)}).first()
    if row is not None and row[0] and row[0].startswith(APP_PREFIX):
        return row[0][len(APP_PREFIX):]
    return f"a connection from {row[1]}" if row is not None and row[1] else "unknown host and pid"
