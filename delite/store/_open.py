"""Choosing the store: a data directory's path opens a file store, a ``postgresql://`` URL a PostgreSQL store.

Everything that takes "where the executions live" (``Agent``, ``Runtime``, ``DataDir``, ``DELITE_DATA_DIR``,
the CLI's ``--data-dir``) goes through :func:`open_store`, so a new kind of store is one more branch here.
A URL may hold a password: :func:`redact` is what every message, ``repr`` and log line shows instead.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from delite.errors import MissingExtraError, StoreError, UsageError
from delite.log._durability import Durability
from delite.store._keys import keys_configured
from delite.store._layout import DATA_DIR_ENV, DEFAULT_DATA_DIR

if TYPE_CHECKING:
    from delite.store._base import Store
    from delite.store._sealed import Keyring

__all__ = [
    "POSTGRES_SCHEMES",
    "SUPPORTED",
    "default_location",
    "describe",
    "is_postgres_url",
    "looks_like_url",
    "open_store",
    "postgres_module",
    "redact",
    "same_location",
    "store_location",
    "without_secrets",
]

POSTGRES_SCHEMES = ("postgresql", "postgres")
"""The URL schemes that open a PostgreSQL store (the two libpq accepts)."""

SUPPORTED = (
    "a data directory's path (a file store), or a PostgreSQL URL such as "
    "postgresql://user@host:5432/dbname (postgres:// too)"
)
"""What :func:`open_store` accepts, for messages."""

# Schemes that are URLs even without '//' (file:data, sqlite:x.db), besides anything written scheme://...
_BARE_SCHEMES = frozenset({"file", "sqlite", "sqlite3", "mysql", "mariadb", "redis", "s3", "gs", "http", "https"})
# Query parameters whose values are secrets (libpq's password and sslpassword, and anything of the kind). Compiled
# when a URL is first redacted: a path opens without them (each compile is a few tenths of a millisecond).
_HIDDEN_PARAM = r"(?i)([?&][^=&#]*(?:pass|secret|token)[^=&#]*=)[^&#]*"
_HIDDEN_VALUE = r"(?i)(?<=[?&])[^=&#]*(?:pass|secret|token)[^=&#]*=[^&#]*"
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")


def _scheme(text: str) -> str | None:
    """The scheme ``text`` starts with, as written, or None.

    A scheme is two characters or more before the first ``:``: a letter, then letters, digits, ``+``, ``.`` or
    ``-`` (one letter is a Windows drive, a path). The same as the regular expression
    ``([A-Za-z][A-Za-z0-9+.-]+):`` matched at the start, without compiling a pattern to open a path.
    """
    colon = text.find(":")
    if colon < 2:
        return None
    scheme = text[:colon]
    if not ("a" <= scheme[0] <= "z" or "A" <= scheme[0] <= "Z") or not _SCHEME_CHARS.issuperset(scheme):
        return None
    return scheme


def looks_like_url(text: str) -> bool:
    """Whether ``text`` is written as a URL (``scheme://...``, or a known scheme such as ``file:``), not a path."""
    scheme = _scheme(text)
    if scheme is None:
        return False
    return text.startswith("//", len(scheme) + 1) or scheme.lower() in (*_BARE_SCHEMES, *POSTGRES_SCHEMES)


def is_postgres_url(target: object) -> bool:
    """Whether ``target`` is a string naming a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    if not isinstance(target, str):
        return False
    scheme = _scheme(target)
    return scheme is not None and scheme.lower() in POSTGRES_SCHEMES


def redact(text: str) -> str:
    """``text`` with any password in it replaced by ``***``: the only form of a URL ever shown.

    The password of the user part (``postgresql://user:secret@host/db``) and the values of query parameters
    that name a secret (``?password=...``, ``sslpassword=``) are hidden; the rest (scheme, user, host, port,
    database) is kept, so a message still says which database. When in doubt it hides more, never less:
    everything from the first ``:`` after the user name to the last ``@`` goes.
    """
    if not isinstance(text, str):
        return repr(type(text).__name__)
    out = text
    start = out.find("://")
    if start >= 0:
        rest = out[start + 3 :]
        at = rest.rfind("@")
        if at >= 0:
            userinfo = rest[:at]
            colon = userinfo.find(":")
            if colon >= 0:
                rest = userinfo[:colon] + ":***" + rest[at:]
            out = out[: start + 3] + rest
    elif "@" in out and ":" in out.partition("@")[0]:
        scheme = _scheme(out)
        head = len(scheme) + 1 if scheme is not None else 0
        at = out.rfind("@")
        body = out[head:at]
        colon = body.find(":")
        if colon >= 0:
            out = out[:head] + body[:colon] + ":***" + out[at:]
    return re.sub(_HIDDEN_PARAM, r"\1***", out)


def describe(target: str | os.PathLike[str]) -> str:
    """How to name ``target`` in a message: a path as given, a URL redacted."""
    text = os.fspath(target) if isinstance(target, os.PathLike) else target
    return redact(text) if isinstance(text, str) and looks_like_url(text) else str(text)


def default_location() -> str:
    """Where executions live when nothing is given: ``$DELITE_DATA_DIR`` (a path or a URL), else ``./data``.

    A path is made absolute now (a later ``chdir`` does not move it); a URL is returned as written.
    """
    value = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    if looks_like_url(value):
        return value
    return os.path.abspath(value)


def open_store(
    target: str | os.PathLike[str], *, durability: Durability | str = Durability.FULL, keys: Keyring | None = None
) -> Store:
    """Open the store that ``target`` names: a path is a data directory, a ``postgresql://`` URL a database.

    - A path (``str`` or ``os.PathLike``) opens a :class:`~delite.store.FileStore` there (nothing is created
      until the first write).
    - ``postgresql://`` or ``postgres://`` (any libpq URL: ``postgresql://user@host:5432/db?sslmode=require``)
      opens a PostgreSQL store; it needs the ``postgres`` extra (``pip install "delite-agents[postgres]"``).
    - Anything else written as a URL (``mysql://``, ``s3://``, ``file:``) is refused.

    The caller owns the store it gets: close it (``store.close()``) when done. ``Agent``, ``Runtime`` and
    ``DataDir`` call this for the target they are given and close what they opened.

    With keys (``keys``, else ``DELITE_ENCRYPTION_KEYS`` or the key file ``DELITE_ENCRYPTION_KEY_FILE`` names)
    the store is wrapped in a :class:`~delite.store.SealedStore`: every record is sealed at rest, and a record
    in plain text is refused (see ``docs/security.md``).

    Args:
        target: a data directory's path, or a PostgreSQL URL.
        durability: the durability mode (see :class:`~delite.log.Durability`).
        keys: the keys to seal and open records with; None takes them from the environment (none: no sealing).

    Raises:
        MissingExtraError: a PostgreSQL URL, and psycopg is not installed (a :class:`UsageError`); or keys,
            and the ``encryption`` extra is not installed.
        UsageError: a URL of another kind, or a ``target`` that is neither a path nor a URL. Messages show
            a URL with its password hidden (see :func:`redact`).
    """
    if keys is None and not keys_configured():  # no sealing: the sealing layer is not even imported
        return _open_plain(target, durability)
    from delite.store._sealed import Keyring, SealedStore  # noqa: PLC0415

    ring = Keyring.from_env() if keys is None else keys
    store = _open_plain(target, durability)
    if ring is None:
        return store
    try:
        return SealedStore(store, ring)
    except UsageError:
        store.close()
        raise


def check_key_file_apart(key_file: str, store: Store) -> None:
    """Refuse a key file kept inside the data directory it protects (a copy of the data would carry the key).

    Raises:
        UsageError: ``key_file`` is in the store's data directory (or one of its folders).
    """
    root = store_location(store)
    if root is None or is_postgres_url(root):
        return
    data, key = os.path.realpath(root), os.path.realpath(key_file)
    if os.path.commonpath([data, key]) == data:
        raise UsageError(
            f"the key file {key_file!r} is inside the data directory {root!r}: keep the keys apart from the data "
            "they protect (anyone with a copy of the directory would have them)"
        )


def _open_plain(target: str | os.PathLike[str], durability: Durability | str) -> Store:
    if isinstance(target, os.PathLike) and not isinstance(target, bytes):
        from delite.store._file import FileStore  # noqa: PLC0415 - filelock only when a file store is opened

        return FileStore(target, durability=durability)
    if not isinstance(target, str):
        raise UsageError(f"a store is named by a path or a URL (str), not {type(target).__name__}: give {SUPPORTED}")
    if is_postgres_url(target):
        return _open_postgres(target, durability)
    if looks_like_url(target):
        scheme = target.partition(":")[0]
        raise UsageError(f"cannot open {redact(target)!r}: {scheme}: is not a store delite knows; give {SUPPORTED}")
    from delite.store._file import FileStore  # noqa: PLC0415

    return FileStore(target, durability=durability)


def _open_postgres(url: str, durability: Durability | str) -> Store:
    if "://" not in url:
        raise UsageError(f"cannot open {redact(url)!r}: a PostgreSQL URL starts with postgresql://; give {SUPPORTED}")
    module = postgres_module()
    with without_secrets(url):
        store: Store = module.PostgresStore(url, durability=durability)
    return store


@contextlib.contextmanager
def without_secrets(url: str) -> Iterator[None]:
    """Re-raise a usage or store error raised in the block without any secret part of ``url`` in its message.

    libpq quotes the part of a URL it cannot parse, password and all; nothing of that text may get out.
    """
    try:
        yield
    except (UsageError, StoreError) as e:
        hidden = _scrub(str(e), url)
        if hidden == str(e):
            raise
        if isinstance(e, UsageError):
            raise UsageError(hidden) from None
        raise StoreError(_scrub(e.message, url), e.path) from None


def _secrets(url: str) -> list[str]:
    """The secret parts of a URL as written and percent-decoded: the password and secret query values."""
    found: list[str] = []
    start = url.find("://")
    if start >= 0:
        rest = url[start + 3 :]
        userinfo = rest[: rest.rfind("@")] if "@" in rest else ""
        if ":" in userinfo:
            found.append(userinfo.partition(":")[2])
    found.extend(m.group(0).partition("=")[2] for m in re.finditer(_HIDDEN_VALUE, url))
    import urllib.parse  # noqa: PLC0415 - only for URLs (a path opens without it)

    out = [*found, *(urllib.parse.unquote(f) for f in found)]
    return sorted({f for f in out if f}, key=len, reverse=True)


def _scrub(text: str, url: str) -> str:
    """``text`` with every secret part of ``url`` replaced by ``***``."""
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def postgres_module() -> Any:
    """``delite.store._postgres``, imported now; :class:`MissingExtraError` when the ``postgres`` extra is missing."""
    try:
        for extra in ("psycopg", "psycopg_pool"):  # the extra, imported only for a PostgreSQL URL
            importlib.import_module(extra)
    except ImportError as e:
        raise MissingExtraError("postgres", "a PostgreSQL store (a postgresql:// URL)") from e
    try:
        return importlib.import_module("delite.store._postgres")
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.startswith(("delite.store._postgres", "psycopg")):
            raise MissingExtraError("postgres", "a PostgreSQL store (a postgresql:// URL)") from e
        raise


def store_location(store: Store) -> str | None:
    """Where a store keeps its executions, for comparing stores (None for a store in memory).

    A data directory's real path, or a database's URL without its password (``postgresql://user@host:port/db``).
    """
    root: object = getattr(getattr(store, "layout", None), "root", None)
    if isinstance(root, str | os.PathLike):
        return os.path.realpath(root)
    where = getattr(store, "where", None)
    return where if isinstance(where, str) and "://" in where else None


def same_location(store: Store, target: str | os.PathLike[str]) -> bool:
    """Whether ``store`` is the store ``target`` names (the same data directory, or the same database URL)."""
    root = getattr(getattr(store, "layout", None), "root", None)
    if isinstance(target, str) and looks_like_url(target):
        where = getattr(store, "where", None)  # a PostgreSQL store: postgresql://user@host:port/dbname
        if not is_postgres_url(target) or not isinstance(where, str):
            return False
        try:
            connect = importlib.import_module("delite.store._postgres._connect")
            return bool(where == connect.redact(connect.split_url(target)[0]))
        except (ImportError, UsageError):
            return False
    return root is not None and os.path.realpath(root) == os.path.realpath(os.fspath(target))
