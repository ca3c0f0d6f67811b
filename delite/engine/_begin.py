"""Split an operation at its first claim: the start is made here and now, the rest by any driver later.

:class:`~delite.Runtime` uses it so that ``rt.go()`` returns only once the execution exists on disk: the
operation is driven synchronously, in the caller's thread, through its store calls up to and including the
claim that creates the log (``ExecutionStarted`` written with the store's durability mode), and what is left
is handed to the async driver in the runtime's event loop. The claim taken here travels with the rest and is
released when the rest ends, however it ends.
"""

from __future__ import annotations

from typing import Any, TypeVar

from delite.engine._effects import Claim, Cursor, Io, Steps
from delite.store._base import ExecutionLog

__all__ = ["Begun", "begin"]

T = TypeVar("T")


class Begun:
    """An operation driven through its first claim: ``log`` is held; :meth:`rest` continues from there."""

    __slots__ = ("_done", "_steps", "log")

    def __init__(self, steps: Steps[Any], log: ExecutionLog) -> None:
        """Hold the suspended operation and the claim it took."""
        self._steps = steps
        self._done = False
        self.log = log

    def rest(self) -> Steps[Any]:
        """The rest of the operation, for any driver (once); the claim is released when it ends."""
        if self._done:
            raise RuntimeError("the rest of this operation was already taken")
        self._done = True
        return _carry_on(self._steps, self.log)

    def abandon(self) -> None:
        """Give up the rest (it never runs) and release the claim; the execution stays as it was written."""
        self._done = True
        try:
            self._steps.close()
        finally:
            self.log.release()


def begin(steps: Steps[T]) -> Begun:
    """Drive ``steps`` in this thread through its first :class:`Claim` (performing the store calls before it).

    Only :class:`Io` and :class:`Claim` effects may come first; anything else is a programming error. An
    error raised by the operation before its claim is raised here, and nothing is held.
    """
    op = Cursor(steps)
    while True:
        effect = op.next()
        if effect is None:  # pragma: no cover - the operations claim before they return
            raise RuntimeError("the operation returned before it claimed its execution")
        if isinstance(effect, Claim):
            try:
                log = effect.perform()
            except BaseException as e:  # noqa: BLE001 - thrown into the operation, which decides
                op.error = e
                continue
            return Begun(steps, log)
        if not isinstance(effect, Io):  # pragma: no cover - the operations claim before anything else
            steps.close()
            raise TypeError(f"an operation must claim before {effect!r}")
        try:
            op.value = effect.fn(*effect.args)
        except BaseException as e:  # noqa: BLE001 - thrown into the operation, which decides
            op.error = e


def _carry_on(steps: Steps[T], log: ExecutionLog) -> Steps[T]:
    """Delegate to ``steps`` (suspended at its claim, which ``log`` answers), then release ``log``."""
    op = Cursor(steps, log)
    try:
        while (effect := op.next()) is not None:
            try:
                op.value = yield effect
            except GeneratorExit:
                raise
            except BaseException as e:  # noqa: BLE001 - thrown into the operation, as the driver does
                op.error = e
    except GeneratorExit:
        steps.close()
        log.release()
        raise
    except BaseException:
        yield Io(log.release)
        raise
    yield Io(log.release)
    return op.result
