"""Turning user-fixable errors into clean command-line failures."""

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from trainer.errors import InputError

INPUT_ERROR_EXIT_CODE = 2


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
