"""Formatting shared by the commands: JSON output, times, sizes, costs, and a safe rich console.

The console never parses markup or emoji codes in what it prints.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

import click
import msgspec

from delite_cli._safe import clean, clean_json

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = [
    "MIN_WIDTH",
    "age",
    "console",
    "cost",
    "cut",
    "duration_ms",
    "echo_json",
    "json_text",
    "number",
    "plural",
    "size",
    "status_style",
    "text",
    "timestamp",
    "wrap",
]

_encoder = msgspec.json.Encoder(order="deterministic")


def json_text(value: Any, *, indent: int = 2) -> str:
    """``value`` (Structs, dicts, lists) as JSON text that is safe to print on a terminal."""
    raw = _encoder.encode(value)
    if indent:
        raw = msgspec.json.format(raw, indent=indent)
    return clean_json(raw.decode())


def echo_json(value: Any, *, indent: int = 2, file: TextIO | None = None) -> None:
    """Print ``value`` as JSON on stdout (or ``file``)."""
    click.echo(json_text(value, indent=indent), file=file)


MIN_WIDTH = 80
"""The narrowest the human views are laid out at, however narrow the terminal (or ``COLUMNS``) is.

Below their width rich makes room by dropping: it cuts labels to an ellipsis, gives values no cell, and
leaves out whole columns (``status`` and ``steps`` lose COST from about 70 columns; ``inspect`` at one
column is blank lines). 80 is the width their tables are laid out for, and what rich assumes when the
output is not a terminal. A narrower terminal wraps the longer lines itself: nothing is dropped.
"""


def console(*, stderr: bool = False) -> Console:
    """A rich console for the human views: no markup, no emoji codes, no highlighting of content.

    At least :data:`MIN_WIDTH` columns wide, however narrow the terminal (or ``COLUMNS``) is.
    """
    from rich.console import Console

    out = sys.stderr if stderr else sys.stdout
    view = Console(file=out, markup=False, emoji=False, highlight=False, soft_wrap=False)
    view.width = max(view.width, MIN_WIDTH)
    return view


def text(value: object, style: str | None = None, *, newlines: bool = True, limit: int | None = None) -> Text:
    """Untrusted content as a rich ``Text``: escaped, never parsed for markup, optionally cut."""
    from rich.text import Text

    s = clean(value, newlines=newlines)
    if limit is not None:
        s = cut(s, limit)
    return Text(s, style=style or "")


def wrap(s: str, width: int) -> list[str]:
    """``s`` in pieces of at most ``width`` terminal cells, broken after a comma or space where one fits.

    The break comes after the last comma or space when it is near, or when that keeps the word being cut (an
    id, a number) whole on the next line. Cells, not characters: a wide character (CJK, most emoji) takes
    two. Nothing is dropped; joining the pieces gives ``s`` back.
    """
    from rich.cells import cell_len

    width = max(width, 8)
    pieces: list[str] = []
    start = 0
    while start < len(s):
        used = 0
        end = start
        while end < len(s):
            size = cell_len(s[end])
            if used + size > width:
                break
            used += size
            end += 1
        end = max(end, start + 1)
        if end < len(s):
            soft = max(s.rfind(",", start, end), s.rfind(" ", start, end))
            # Break at the last comma or space when it is near, or when that keeps the word being cut (an id, a
            # number, a key) whole on the next line: a copied id must not come out in two pieces.
            after = [i for i in (s.find(",", end), s.find(" ", end)) if i != -1]
            word_end = min(after) + 1 if after else len(s)
            if soft >= start + (end - start) * 2 // 3 or (soft > start and cell_len(s[soft + 1 : word_end]) <= width):
                end = soft + 1
        pieces.append(s[start:end])
        start = end
    return pieces


def cut(s: str, limit: int) -> str:
    """``s`` cut to ``limit`` characters with an ellipsis."""
    return s if len(s) <= limit else s[: max(limit - 1, 0)] + "\u2026"


def timestamp(at: float | None) -> str:
    """A time as ISO 8601 in UTC, to the second."""
    if not at:
        return "-"
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def age(at: float | None, now: float | None = None) -> str:
    """How long ago, compactly: ``12s``, ``5m``, ``3h``, ``2d``."""
    if not at:
        return "-"
    seconds = max((time.time() if now is None else now) - at, 0.0)
    for unit, size_ in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size_:
            return f"{int(seconds // size_)}{unit}"
    return f"{int(seconds)}s"


def duration_ms(ms: float | None) -> str:
    """A duration given in milliseconds, in the unit that reads best."""
    if ms is None:
        return "-"
    if ms < 10:
        return f"{ms:.2f}ms"
    if ms < 1000:
        return f"{ms:.1f}ms"
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.2f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def size(n: int) -> str:
    """A byte count in B, KB, MB or GB (powers of 1000)."""
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def cost(value: str | None) -> str:
    """A dollar cost, or ``unknown`` when no price was known (never a bare ``?``)."""
    if value is None:
        return "unknown"
    try:
        return f"${float(value):.4f}"
    except ValueError:
        return "unknown"


def number(n: int) -> str:
    """An integer with thousands separators."""
    return f"{n:,}"


def plural(n: int, noun: str) -> str:
    """``1 tool call``, ``2 tool calls``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


_STATUS_STYLES = {
    "completed": "green",
    "failed": "red",
    "unreadable": "bold red",
    "cancelled": "dim",
    "running": "cyan",
    "empty": "dim",
}


def status_style(status: str) -> str:
    """The colour of a status."""
    if status.startswith("waiting") or status == "suspended":
        return "yellow"
    return _STATUS_STYLES.get(status, "")


def is_tty() -> bool:
    """Whether stderr is a terminal (progress is shown only there)."""
    return sys.stderr.isatty()
