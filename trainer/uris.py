"""Store URIs as they may be shown: with the password of `user:password@host` masked.

One definition for the orchestrator (console lines, errors, MLflow params) and analysis/ (reports,
their errors), which cannot import the orchestrator.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def shown(uri: str) -> str:
    """`uri` with the password of `user:password@host` masked: what goes to the console, errors,
    reports and MLflow params (`postgresql://speedrun:***@db:5432/optuna`)."""
    parts = urlsplit(uri)
    userinfo, at, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if not (at and colon):
        return uri
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


def is_masked(uri: str) -> bool:
    """Whether `uri` is one `shown` masked (its password is gone): what a sweep records."""
    userinfo, at, _ = urlsplit(uri).netloc.rpartition("@")
    return bool(at) and userinfo.partition(":")[2] == MASK
