"""Connection settings of the PostgreSQL store: keepalives, URLs without passwords, driver errors as store errors.

A vanished host (a crash, a pulled cable, a partition) leaves a half-open TCP connection that the server keeps,
with the claims (session advisory locks) on it, until TCP gives up: two hours by default. The claim connection
therefore asks for keepalives on both ends: libpq's (``keepalives``, ``keepalives_idle``, ``keepalives_interval``,
``keepalives_count``, ``tcp_user_timeout``) and the server's (``SET tcp_keepalives_idle`` ... on the session), so
the server drops a lost client's locks after about ``idle + interval * count`` seconds (5 + 2 * 3 = 11 s by
default). Each setting is taken from, in order: the constructor argument, the URL's query parameter of the same
name (``postgresql://host/db?keepalives_idle=10``), the default here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from delite.errors import StoreError, UsageError
from delite.store._open import redact as redact_url

__all__ = ["KEEPALIVE_DEFAULTS", "Keepalives", "connect_error", "redact", "scrub", "split_url"]

KEEPALIVE_DEFAULTS = {"keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3, "tcp_user_timeout": 15000}
"""Seconds of silence before the first probe, seconds between probes, probes lost before the connection is dead,
and milliseconds sent data may stay unacknowledged (``tcp_user_timeout``; 0: the system's default)."""


@dataclass(frozen=True, slots=True)
class Keepalives:
    """The keepalive settings of a connection, for libpq and for the server's end of it."""

    idle: int
    interval: int
    count: int
    user_timeout_ms: int

    def libpq(self) -> dict[str, Any]:
        """Connection parameters for libpq (the client's end)."""
        return {
            "keepalives": 1,
            "keepalives_idle": self.idle,
            "keepalives_interval": self.interval,
            "keepalives_count": self.count,
            "tcp_user_timeout": self.user_timeout_ms,
        }

    def server_settings(self) -> list[tuple[str, str]]:
        """``SET`` commands for the server's end of the same connection (ignored on a Unix socket)."""
        return [
            ("tcp_keepalives_idle", str(self.idle)),
            ("tcp_keepalives_interval", str(self.interval)),
            ("tcp_keepalives_count", str(self.count)),
            ("tcp_user_timeout", str(self.user_timeout_ms)),
        ]


def split_url(url: object, **given: int | None) -> tuple[dict[str, Any], Keepalives]:
    """The URL's connection parameters and the keepalive settings (argument, else URL, else default).

    Raises:
        UsageError: the URL is not a PostgreSQL connection string, or a setting is not a whole number, 0 or more.
    """
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        shown = repr(redact_url(url)) if isinstance(url, str) else type(url).__name__
        raise UsageError(f"a PostgreSQL store is opened with a postgresql:// URL, not {shown:.80}")
    if _NOT_IN_A_URL.search(url):  # libpq versions differ on these; refuse them whatever libpq is installed
        raise UsageError(
            "not a valid PostgreSQL URL (it holds a space, a control character or a % not followed by two hex "
            "digits: percent-encode them, e.g. a space as %20)"
        )
    try:
        params: dict[str, Any] = conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise UsageError(f"not a valid PostgreSQL URL ({scrub(str(e).strip(), url)})") from None
    values: dict[str, int] = {}
    for name, default in KEEPALIVE_DEFAULTS.items():
        chosen: object = given.get(name)
        if chosen is None:
            chosen = params.pop(name, default)
        else:
            params.pop(name, None)
        try:
            number = int(str(chosen)) if not isinstance(chosen, bool) else -1
        except ValueError:
            number = -1
        if number < 0:
            raise UsageError(f"{name} must be a whole number, 0 or more, not {chosen!r}")
        values[name] = number
    params.pop("keepalives", None)
    keep = Keepalives(
        values["keepalives_idle"],
        values["keepalives_interval"],
        values["keepalives_count"],
        values["tcp_user_timeout"],
    )
    return params, keep


# What RFC 3986 never allows as it is in a URL: whitespace, control characters, a lone or malformed %.
_NOT_IN_A_URL = re.compile(r"[\x00-\x20\x7f]|%(?![0-9A-Fa-f]{2})")
_QUOTED = re.compile(r'"([^"]*)"')
_SECRET_NAME = re.compile(r"(?i)pass|secret|token")


def _secrets(url: str) -> list[str]:
    """The parts of ``url`` that may be secret: the user part's password and secret-named query values, raw."""
    found: list[str] = []
    rest = url.partition("://")[2]
    authority, _, query = rest.partition("?")
    at = authority.rfind("@")
    if at >= 0:
        _user, colon, password = authority[:at].partition(":")
        if colon:
            found.append(password)
    for pair in re.split(r"[&#]", query):
        name, eq, value = pair.partition("=")
        if eq and _SECRET_NAME.search(name):
            found.append(value)
    return [f for f in found if f]


def scrub(message: str, url: str) -> str:
    """``message`` (a driver's error about ``url``) without anything of the URL's passwords in it.

    libpq quotes the part it could not parse, which may be the password (``invalid percent-encoded token``),
    or the whole URL: a quoted part that is, holds or lies within a secret becomes ``***``, the URL its
    redacted form, and any secret left anywhere in the text is replaced too. It hides more, never less.
    """
    secrets = _secrets(url)

    def hide(m: re.Match[str]) -> str:
        quoted = m.group(1)
        if quoted == url or "@" in quoted or "://" in quoted:
            return '"' + redact_url(quoted) + '"'
        if any(secret in quoted or quoted in secret for secret in secrets):
            return '"***"'
        return m.group(0)

    out = _QUOTED.sub(hide, message)
    for secret in sorted(secrets, key=len, reverse=True):
        out = out.replace(secret, "***")
    return out


def redact(params: dict[str, Any]) -> str:
    """The database as messages name it: ``postgresql://user@host:port/dbname``, never the password."""
    user = params.get("user")
    host = params.get("host") or "localhost"
    port = params.get("port")
    where = f"{user}@{host}" if user else str(host)
    if port:
        where += f":{port}"
    return f"postgresql://{where}/{params.get('dbname') or ''}"


def connect_error(action: str, where: str, e: BaseException) -> StoreError:
    """A :class:`StoreError` for a driver error raised while trying to ``action``."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return StoreError(f"could not {action}: {text}", where)
