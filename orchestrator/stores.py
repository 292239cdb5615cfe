"""Where sweeps record by default: databases in the working directory; and store URIs as shown
(`shown`, defined in trainer/uris.py)."""

from __future__ import annotations

from pathlib import Path

from trainer.uris import shown

__all__ = ["DEFAULT_STORAGE", "DEFAULT_TRACKING_URI", "SQLITE", "absolute", "shown"]  # shown: one definition, analysis/ uses it too

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
