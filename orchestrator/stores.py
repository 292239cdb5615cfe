"""Where sweeps record by default: databases in the working directory; and store URIs as shown."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow
DEFAULT_STORAGE = "sqlite:///optuna.db"  # Optuna
SQLITE = "sqlite:///"


def absolute(uri: str, workdir: Path) -> str:
    """A relative sqlite URI made absolute against `workdir`; other URIs as they are.

    MLflow caches one store per URI string for the life of the process, so a relative
    `sqlite:///mlflow.db` would keep writing to the file of the directory it was first used in.
    """
    if uri.startswith(SQLITE) and not uri[len(SQLITE):].startswith("/") and uri[len(SQLITE):] != ":memory:":
        return SQLITE + str((Path(workdir) / uri[len(SQLITE):]).resolve())
    return uri


def shown(uri: str) -> str:
    """`uri` with the password of `user:password@host` masked: what goes to the console, errors
    and MLflow params (`postgresql://speedrun:***@db:5432/optuna`)."""
    parts = urlsplit(uri)
    userinfo, at, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not (at and colon):
        return uri
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
