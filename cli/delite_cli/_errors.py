"""Map errors to one clear line on stderr and an exit code chosen by the error's class.

Exit codes: 0 success; 1 a failure (not found, a state that refuses the call, a damaged log, a storage
fault); 2 a usage error (a bad option or argument, bad JSON, an ambiguous id prefix, an unknown call id).
The class decides, through :func:`exit_code`: a :class:`~delite.errors.ExecutionStateError` (409: the
state changed under you, e.g. a race lost) is a failure, never a usage error, whatever else it is.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import IO, Any, TypeVar

import click

from delite_cli._safe import clean

__all__ = ["FAILURE", "USAGE", "CliError", "exit_code", "handle_errors"]

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """An error shown as ``error: <message>`` (or one JSON object with ``--json``) on stderr."""

    def __init__(self, message: str, *, kind: str = "error", exit_code: int = 1, as_json: bool = False) -> None:
        """Build from the message, the error's type name and the exit code."""
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code  # type: ignore[misc, unused-ignore]  # a class-level default in click
        self.as_json = as_json

    def show(self, file: IO[Any] | None = None) -> None:
        """Print one line on stderr; untrusted text in the message is escaped."""
        out = file if file is not None else sys.stderr
        message = clean(self.message, newlines=False)
        if self.as_json:
            from delite_cli._format import json_text

            click.echo(json_text({"error": {"type": self.kind, "message": self.message}}, indent=0), file=out)
        else:
            click.echo(f"error: {message}", file=out)


FAILURE = 1
"""The exit code of a command that failed: not found, refused by the execution's state, damaged, I/O."""
USAGE = 2
"""The exit code of a command given wrong input: options, arguments, JSON, ids."""


def exit_code(e: BaseException) -> int:
    """The exit code for an error, by class: :data:`USAGE` for the 400 class of bad input, else :data:`FAILURE`.

    A state error (409) comes first: whatever else it derives from, the input was right and the execution
    was not in a state to take it.
    """
    from delite.errors import (
        AmbiguousExecutionIdError,
        ExecutionStateError,
        InvalidExecutionIdError,
        InvalidToolResultError,
        UsageError,
    )

    if isinstance(e, ExecutionStateError):
        return FAILURE
    if isinstance(e, (UsageError, InvalidExecutionIdError, AmbiguousExecutionIdError, InvalidToolResultError)):
        return USAGE
    return FAILURE


def _convert(e: Exception, as_json: bool) -> CliError | None:
    from delite.errors import DeliteError
    from delite.store._layout import Layout

    if isinstance(e, DeliteError):
        message = str(e)
        searched = getattr(e, "data_dir", None)  # a "not found" names the data directory it searched
        if not isinstance(searched, str) or "://" in searched:
            searched = None  # nothing searched, or a database: no hint about folders
        if searched is not None and not os.path.isdir(searched):
            message += " (that directory does not exist: check --data-dir or DELITE_DATA_DIR)"
        elif searched is not None and not os.path.isdir(Layout(searched).executions):
            message += " (it holds no executions: is it the data directory? check --data-dir or DELITE_DATA_DIR)"
        return CliError(message, kind=type(e).__name__, exit_code=exit_code(e), as_json=as_json)
    if isinstance(e, OSError):
        # the file it happened to, when the error names one; writing to stdout (a full disk, a closed pipe)
        # names none, and the line ends with the reason, not a dangling colon
        files = [str(name) for name in (e.filename, e.filename2) if name is not None and name != ""]
        where = f": {' -> '.join(files)}" if files else ""
        return CliError(f"{e.strerror or e}{where}", kind=type(e).__name__, as_json=as_json)
    return None


def handle_errors(fn: F) -> F:
    """Wrap a command so delite's errors and OS errors end it with one line on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException as e:
            if kwargs.get("json_"):
                if isinstance(e, CliError):
                    e.as_json = True  # raised deep in a command that need not know about --json
                    raise
                raise CliError(e.format_message(), kind="UsageError", exit_code=e.exit_code, as_json=True) from e
            raise
        except Exception as e:
            converted = _convert(e, bool(kwargs.get("json_")))
            if converted is None:
                raise
            raise converted from e

    return wrapper  # type: ignore[return-value]
