"""Map errors to one clear line on stderr and an exit code: 1 for failures, 2 for usage errors."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import IO, Any, TypeVar

import click

from delite_cli._safe import clean

__all__ = ["CliError", "handle_errors"]

F = TypeVar("F", bound=Callable[..., Any])

_USAGE = (
    "UsageError",
    "InvalidExecutionIdError",
    "AmbiguousExecutionIdError",
    "InvalidToolResultError",
)


class CliError(click.ClickException):
    """An error shown as ``error: <message>`` (or one JSON object with ``--json``) on stderr."""

    def __init__(self, message: str, *, kind: str = "error", exit_code: int = 1, as_json: bool = False) -> None:
        """Build from the message, the error's type name and the exit code."""
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code  # type: ignore[misc]  # click declares a class-level default
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


def _convert(e: Exception, as_json: bool) -> CliError | None:
    from delite.errors import DeliteError

    if isinstance(e, DeliteError):
        names = {c.__name__ for c in type(e).__mro__}
        code = 2 if names.intersection(_USAGE) else 1
        message = str(e)
        searched = getattr(e, "data_dir", None)  # a "not found" names the data directory it searched
        if isinstance(searched, str) and not os.path.isdir(searched):
            message += " (that directory does not exist: check --data-dir or DELITE_DATA_DIR)"
        return CliError(message, kind=type(e).__name__, exit_code=code, as_json=as_json)
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return CliError(f"{e.strerror or e}:{where}", kind=type(e).__name__, as_json=as_json)
    return None


def handle_errors(fn: F) -> F:
    """Wrap a command so delite's errors and OS errors end it with one line on stderr."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException as e:
            if kwargs.get("json_") and not isinstance(e, CliError):
                raise CliError(e.format_message(), kind="UsageError", exit_code=e.exit_code, as_json=True) from e
            raise
        except Exception as e:
            converted = _convert(e, bool(kwargs.get("json_")))
            if converted is None:
                raise
            raise converted from e

    return wrapper  # type: ignore[return-value]
