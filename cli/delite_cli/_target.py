"""Where a command's executions live: every command gets its store, and its execution id, from here.

A store is named by ``--data-dir`` (or ``DELITE_DATA_DIR``): a data directory's path (a file store) or a
``postgresql://`` URL (a PostgreSQL store), opened by :func:`delite.store.open_store`. A caller that embeds
the CLI (the test suites do) may instead pass any :class:`~delite.store.Store` as click's ``obj``
(``cli.main(args, obj=store)``, ``CliRunner().invoke(cli, args, obj=store)``); every command then reads and
acts on that store. A URL is only ever shown redacted (its password hidden): see :attr:`Target.where`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from delite import Agent
    from delite.datadir import DataDir
    from delite.store import Store

__all__ = ["STATUSES", "Target", "open_target", "with_target"]

STATUSES = (
    "running",
    "waiting",
    "waiting_approval",
    "waiting_client_tool",
    "waiting_human_input",
    "suspended",
    "completed",
    "failed",
    "cancelled",
    "unreadable",
    "empty",
)
"""The statuses a listing filters on (``delite list --status``, ``delite serve``'s filters): an execution's
:class:`~delite.state.Status`, ``waiting`` for any of the three waits, ``unreadable`` and ``empty``."""

F = TypeVar("F", bound=Callable[..., Any])


class Target:
    """The store one command works on: ``--data-dir`` (``data_dir``: a path or a URL), or a store given to the CLI."""

    def __init__(self, *, data_dir: str | None = None, store: Store | None = None, key_file: str | None = None) -> None:
        """Name a data directory or a URL, or wrap a store (exactly one of them); ``key_file``: ``--key-file``."""
        if (data_dir is None) == (store is None):
            raise ValueError("a target is a data directory or a store, not both or neither")
        self.data_dir = data_dir
        self.store = store
        self.key_file = key_file
        self._data: DataDir | None = None
        self._opened: Store | None = None

    @property
    def directory(self) -> str | None:
        """The data directory when ``--data-dir`` names one (not a URL, not a store given to the CLI), else None."""
        from delite.store._open import looks_like_url

        if self.data_dir is None or looks_like_url(self.data_dir):
            return None
        return self.data_dir

    @property
    def where(self) -> str:
        """The place, for messages: the data directory's path, the URL with its password hidden, or the store."""
        from delite.store._open import describe

        return describe(self.data_dir) if self.data_dir is not None else repr(self.store)

    @property
    def data(self) -> DataDir:
        """The read side over the store (one per command)."""
        if self._data is None:
            from delite.datadir import DataDir

            if self.store is None and self.key_file is not None:
                from delite.store import Keyring, open_store

                self._opened = open_store(str(self.data_dir), keys=Keyring.from_file(self.key_file))
                self._data = DataDir(self._opened)
            else:
                self._data = DataDir(self.store if self.store is not None else str(self.data_dir))
        return self._data

    def resolve(self, ident: str) -> str:
        """The full id of the one execution that ``ident`` names (an id, or a unique prefix or suffix)."""
        return self.data.resolve(ident)

    def agent(self) -> Agent:
        """An agent with no model or tools over this store: it records decisions and submissions."""
        from delite import Agent

        return Agent(store=self.store if self.store is not None else self.data.store)  # borrowed: closed by close()

    def uses(self, agent: Agent) -> bool:
        """Whether ``agent`` works on this store (an application's agent given by ``--agent``)."""
        from delite.store._open import same_location

        if self.store is not None:
            return agent.store is self.store
        return same_location(agent.store, str(self.data_dir))

    @property
    def factory_argument(self) -> str | Store:
        """What an ``--agent`` factory is called with: ``--data-dir`` as given (a path or a URL), or the store."""
        return self.store if self.store is not None else str(self.data_dir)

    def close(self) -> None:
        """Close what this target opened (a store given to the CLI is its caller's, and stays open)."""
        if self._data is not None:
            self._data.close()
        if self._opened is not None:
            self._opened.close()


def open_target(data_dir: str | None, obj: object = None, key_file: str | None = None) -> Target:
    """The one place a command's store comes from: a store object the CLI was given, else ``--data-dir``.

    Nothing is opened yet: the store is opened (a URL's database connected to) when the command first reads.
    """
    from delite.store import Store

    if isinstance(obj, Store):
        return Target(store=obj)
    return Target(data_dir=data_dir if data_dir is not None else "./data", key_file=key_file)


def with_target(fn: F) -> F:
    """Give a command ``target`` (from ``--data-dir`` or the CLI's store) in place of ``data_dir``.

    When the command takes an execution id argument (``ident``), it is resolved here, once, and passed as
    ``execution_id``. Goes below :func:`~delite_cli._errors.handle_errors`, so a failure to resolve is shown
    like any other error.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key_file = kwargs.pop("key_file", None)
        target = open_target(kwargs.pop("data_dir", None), click.get_current_context().obj, key_file)
        try:
            if "ident" in kwargs:
                kwargs["execution_id"] = target.resolve(kwargs.pop("ident"))
            return fn(*args, target=target, **kwargs)
        finally:
            target.close()

    return wrapper  # type: ignore[return-value]
