"""Turning user-fixable errors into clean command-line failures."""

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from trainer.errors import InputError

INPUT_ERROR_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130  # as a shell reports a command that SIGINT ended


@contextmanager
def exit_on_input_error() -> Iterator[None]:
    """Print an InputError as ``error: <message>`` on stderr and exit with code 2, no traceback.

    Use as ``with exit_on_input_error(): ...`` inside a command, or as ``@exit_on_input_error()``.
    """
    try:
        yield
    except InputError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=INPUT_ERROR_EXIT_CODE) from None


@contextmanager
def exit_on_interrupt(what: str = "the sweep") -> Iterator[None]:
    """A KeyboardInterrupt that reached the command (a second Ctrl-C, SIGTERM outside the trials):
    one line on stderr and exit 130; the driver has closed its runs as interrupted by then."""
    try:
        yield
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {what} stopped; run the same command with --resume to continue it", err=True)
        raise typer.Exit(code=INTERRUPTED_EXIT_CODE) from None


def first_line(exc: BaseException) -> str:
    """The root cause of an exception as one short line: MLflow wraps SQLAlchemy, which wraps the
    database driver, and each says pages."""
    for _ in range(10):
        if (inner := exc.__cause__ or exc.__context__) is None:
            break
        exc = inner
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"
