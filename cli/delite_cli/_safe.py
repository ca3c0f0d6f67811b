r"""Make untrusted text (model output, tool results, arguments) safe to print on a terminal.

Model and tool content may hold terminal escape sequences (colour changes, window-title writes, cursor
moves, OSC 8 links), bidirectional overrides that reorder what a reader sees, or rich markup. Every such
character is shown as a visible escape (``\x1b``, ``\u202e``) instead of being sent to the terminal, and
the CLI never interprets markup in content.
"""

from __future__ import annotations

import re

__all__ = ["clean", "clean_json"]

# C0 controls except tab and newline, DEL, C1 controls, and the invisible or reordering format characters
# (zero-width, bidi embeddings, overrides and isolates, line/paragraph separators, BOM, interlinear marks).
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\ufff0-\ufffb\U000e0000-\U000e007f]"
)
_UNSAFE_LINES = re.compile(_UNSAFE.pattern[:-1] + "\t\n]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean(text: object, *, newlines: bool = True) -> str:
    """``text`` as a string with every control and invisible format character shown as an escape.

    With ``newlines=False``, newlines and tabs are escaped too (for one-line table cells).
    """
    s = text if isinstance(text, str) else str(text)
    return (_UNSAFE if newlines else _UNSAFE_LINES).sub(_escape, s)


_JSON_UNSAFE = re.compile(_UNSAFE.pattern.replace("\x00-\x08\x0b-\x1f", ""))


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # JSON escapes astral characters as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def clean_json(text: str) -> str:
    r"""Escape the characters JSON may carry raw but a terminal must not see (DEL, C1, bidi, invisibles).

    Valid on JSON text: outside strings JSON has only ASCII punctuation, so every match is inside a string,
    where ``\uXXXX`` means the same character.
    """
    return _JSON_UNSAFE.sub(_json_escape, text)
