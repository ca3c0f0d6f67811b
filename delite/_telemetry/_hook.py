"""The one point where telemetry meets the engine: a store whose logs report each append after it is written.

:func:`observe` wraps a store when :func:`delite.telemetry.instrument` is in effect; the engine calls it for
every claim it makes (``delite.engine._effects.Claim``), so an agent built before ``instrument()`` is observed
too, and ``agent.store`` is always the store the agent was given. The wrapper's :meth:`ObservedLog.append`
writes first, then tells the observer; the observer catches and counts every exception of its own (fail
open), so telemetry never breaks, retries or delays a run. A replayed step appends nothing, so it reports nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from delite.log.records import AnyRecord, Record
from delite.state._outcome import Outcome
from delite.store._base import ExecutionLog, Store

__all__ = ["ObservedLog", "ObservedStore", "Observer", "active", "caller_context", "observe", "set_active", "within"]


class Observer(Protocol):
    """What the wrapper tells: a claim creating an execution, each append, each release."""

    enabled: bool

    def claiming(self) -> object | None:
        """The caller's tracing context, taken when a claim is made (the claim runs in the caller's context)."""

    def creating(self, records: list[Record]) -> tuple[list[Record], object | None]:
        """The records a claim will create the execution with (maybe changed) and a token for the claim."""

    def appended(self, log: ObservedLog, before: int, records: Sequence[Record]) -> None:
        """Records were written to ``log`` after sequence ``before``."""

    def released(self, log: ObservedLog) -> None:
        """The claim ended."""

    def dropped(self, token: object) -> None:
        """A token from :meth:`creating` whose claim found the execution already there."""

    def enter(self, context: object | None) -> object | None:
        """Make ``context`` (from :meth:`claiming`) current in this thread or task; a token for :meth:`leave`."""

    def leave(self, token: object | None) -> None:
        """Undo :meth:`enter`."""


_active: list[Observer] = []


def active() -> Observer | None:
    """The observer in effect, if any."""
    return _active[0] if _active else None


def set_active(observer: Observer | None) -> None:
    """Put ``observer`` in effect (None: none)."""
    _active.clear()
    if observer is not None:
        _active.append(observer)


def caller_context() -> object | None:
    """The caller's tracing context, for work it hands to another thread (a Runtime's loop); None when off."""
    observer = active()
    return observer.claiming() if observer is not None and observer.enabled else None


@contextlib.contextmanager
def within(context: object | None) -> Iterator[None]:
    """Run the block in ``context`` (from :func:`caller_context`), so the claims it makes have that parent."""
    observer = active()
    if context is None or observer is None:
        yield
        return
    token = observer.enter(context)
    try:
        yield
    finally:
        observer.leave(token)


def observe(store: Store) -> Store:
    """``store``, wrapped so that its appends are observed when telemetry is on; else ``store`` itself."""
    observer = active()
    if observer is None or isinstance(store, ObservedStore):
        return store
    wrapper: Any = ObservedStore  # its store methods are filled in below, which a type checker cannot see
    observed: Store = wrapper(store, observer)
    return observed


class ObservedLog(ExecutionLog):
    """A claimed log whose appends are reported to the observer once they are written."""

    def __init__(self, inner: ExecutionLog, observer: Observer, token: object | None, caller: object | None) -> None:
        """Wrap ``inner``; ``token``: the observer's state for a creating claim; ``caller``: the claim's context."""
        self._inner = inner
        self._observer = observer
        self.execution_id = inner.execution_id
        self.token = token
        self.caller = caller

    @property
    def records(self) -> list[AnyRecord]:
        """The records the claim read."""
        return self._inner.records

    @records.setter
    def records(self, value: list[AnyRecord]) -> None:
        self._inner.records = value

    @property
    def created(self) -> bool:
        """Whether the claim created the execution."""
        return self._inner.created

    @created.setter
    def created(self, value: bool) -> None:
        self._inner.created = value

    @property
    def outcome(self) -> Outcome | None:
        """The outcome the store kept for the log, if any."""
        return self._inner.outcome

    @outcome.setter
    def outcome(self, value: Outcome | None) -> None:
        self._inner.outcome = value

    @property
    def head(self) -> int:
        """The inner log's head."""
        return self._inner.head

    def waits(self, *, barrier: bool) -> bool:
        """As the inner log: observing an append adds no wait, so the async driver hops no more than without."""
        return self._inner.waits(barrier=barrier)

    def append(self, records: Sequence[Record], *, barrier: bool = False, expected: int | None = None) -> None:
        """Append through the inner log; once written, tell the observer (which never raises)."""
        before = self._inner.head
        self._inner.append(records, barrier=barrier, expected=expected)
        if self._observer.enabled:
            self._observer.appended(self, before, records)

    def release(self) -> None:
        """Release the inner claim, then tell the observer (even a turned-off one ends the spans it started)."""
        self._inner.release()
        self._observer.released(self)

    def save_outcome(self, outcome: Outcome) -> None:
        """Offer the outcome to the inner log."""
        self._inner.save_outcome(outcome)

    def digest_after(self, records: Sequence[Record]) -> str | None:
        """As the inner log (the records are appended to it unchanged)."""
        return self._inner.digest_after(records)

    def __getattr__(self, name: str) -> Any:
        """Anything else a store's own log class has (``torn``...), from the inner log."""
        return getattr(self._inner, name)


class ObservedStore(Store):
    """A store that hands out :class:`ObservedLog` claims; every other call goes to the wrapped store."""

    def __init__(self, inner: Store, observer: Observer) -> None:
        """Wrap ``inner``."""
        self._inner = inner
        self._observer = observer

    @property
    def inner(self) -> Store:
        """The wrapped store."""
        return self._inner

    def claim(self, execution_id: str, *, create: Sequence[Record] | None = None, timeout: float = 0.0) -> ExecutionLog:
        """Claim through the wrapped store; a creating claim first lets the observer add the trace context."""
        token: object | None = None
        observer = self._observer
        caller = observer.claiming() if observer.enabled else None
        if create and observer.enabled:
            create, token = observer.creating(list(create))
        try:
            log = self._inner.claim(execution_id, create=create, timeout=timeout)
        except BaseException:
            if token is not None:
                observer.dropped(token)
            raise
        if token is not None and not log.created:
            observer.dropped(token)
            token = None
        return ObservedLog(log, observer, token, caller)

    def __getattr__(self, name: str) -> Any:
        """Attributes of the wrapped store's own class (``layout``, ``durability``...)."""
        return getattr(self._inner, name)


def _delegate(name: str) -> Callable[..., Any]:
    def method(self: ObservedStore, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, name)(*args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"The wrapped store's ``{name}``."
    return method


# Every public method of the store interfaces goes to the wrapped store as it is (its own, maybe faster,
# versions of the ones the interfaces build from others included); only ``claim`` is observed.
for _name in sorted(n for n in dir(Store) if not n.startswith("_") and callable(getattr(Store, n))):
    if _name not in ("claim", "inner"):
        setattr(ObservedStore, _name, _delegate(_name))
ObservedStore.__abstractmethods__ = frozenset()
