"""Errors a user can fix by changing their input."""


class InputError(ValueError):
    """Bad user input: the message names the file, key or line and what was expected."""
