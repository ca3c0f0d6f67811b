"""What the engine asks of the outside world, and the driver that does it with plain blocking calls.

Every operation of an :class:`~delite.Agent` (run, resume, submit, cancel...) and the agent loop itself are
written once, as generators that make every decision and *yield an effect* wherever the outside world is
touched: a log append, a claim, a model call, a tool call, a back-off sleep. A driver performs the effect
and sends its result back in (or throws its exception in). :func:`drive` is the sync driver: it performs
each effect in the calling thread. :func:`delite.engine._aio.adrive` is the async one: it awaits at the
same edges, runs blocking calls in threads and async tools and providers on the event loop. The two differ
in nothing else, so the sync and async APIs have the same semantics by construction.
"""

from __future__ import annotations

import contextvars
import queue
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from delite._telemetry._hook import observe
from delite.engine._sink import current_sink, sink_var
from delite.log.records import Record
from delite.store._base import ExecutionLog, Store
from delite.tools._base import DelegationSuspended, Tool, ToolCallContext, call_var

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from delite.providers._base import AnyProvider

__all__ = [
    "STOP_REQUESTED",
    "TOOL_THREADS",
    "Append",
    "Ask",
    "Claim",
    "Cursor",
    "Effect",
    "Invocation",
    "Io",
    "NextResult",
    "Sleep",
    "StartCalls",
    "Steps",
    "ToolOutcome",
    "ask",
    "call_tool",
    "drive",
    "tool_body",
]

T = TypeVar("T")

STOP_REQUESTED: ContextVar[Callable[[], bool] | None] = ContextVar("delite_stop_requested", default=None)
"""Set by a host (the :class:`~delite.Runtime`) to ask the runs it starts to stop at their next step boundary.

A run that sees the predicate true writes what it has buffered and returns, leaving the execution
``running`` for the next process to continue; it is not a cancellation. Tool bodies do not see it, so a
sub-agent running inside a tool finishes its work (the tool call is one step of its parent).
"""


class Effect:
    """Base of the effects an operation yields to its driver."""

    __slots__ = ()


Steps = Generator[Effect, Any, T]
"""An operation: a generator of effects that returns ``T``."""


class Cursor(Generic[T]):
    """An operation as a driver walks it: the next effect, then the effect's outcome handed back.

    A driver sets :attr:`value` (what the effect returned) or :attr:`error` (what it raised, thrown into the
    operation, which decides) before asking for the next effect.
    """

    __slots__ = ("error", "result", "steps", "value")

    def __init__(self, steps: Steps[T], value: Any = None) -> None:
        """Start at ``steps``' next effect, sending it ``value``."""
        self.steps = steps
        self.value: Any = value
        self.error: BaseException | None = None
        self.result: T

    def next(self) -> Effect | None:
        """The operation's next effect, or None once it returned (its value is then :attr:`result`).

        An exception the operation raises (an error thrown in that it did not handle, say) propagates.
        """
        steps = self.steps
        try:
            effect = steps.send(self.value) if self.error is None else steps.throw(self.error)
        except StopIteration as stop:
            self.result = stop.value
            return None
        self.value = self.error = None
        return effect


class Io(Effect):
    """A blocking call on the store or the file system (not a log append): ``fn(*args)``.

    The async driver runs it in delite's I/O threads and lets it finish even if the caller is cancelled.
    """

    __slots__ = ("args", "fn")

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        """Describe the call."""
        self.fn = fn
        self.args = args


class Claim(Effect):
    """Claim an execution (creating it from ``create`` if missing). The driver releases it when the operation ends."""

    __slots__ = ("create", "execution_id", "store")

    def __init__(self, store: Store, execution_id: str, create: Sequence[Record] | None = None) -> None:
        """Describe the claim; with telemetry on (now, whenever the agent was built) the claim is observed."""
        self.store = observe(store)
        self.execution_id = execution_id
        self.create = create

    def perform(self) -> ExecutionLog:
        """Make the claim; a sealed execution claimed with no key is released and refused.

        Raises:
            PlaintextRecordError: the execution's records are sealed and the store has no key to open them.
        """
        log = self.store.claim(self.execution_id, create=self.create)
        if log.outcome is None:
            from delite.store._keys import refuse_sealed  # noqa: PLC0415 - only once a log is claimed

            try:
                refuse_sealed(self.execution_id, log.first_record())
            except BaseException:
                log.release()
                raise
        return log


class Append(Effect):
    """Append records to a claimed log in one write (see :meth:`ExecutionLog.append`).

    ``ahead``: a hint that the operation starts one sync tool body right after it (:func:`one_sync_body`), so
    a driver may make the append and the body in one thread hop. Drivers are free to ignore it.
    """

    __slots__ = ("ahead", "barrier", "log", "records")

    def __init__(self, log: ExecutionLog, records: list[Record], *, barrier: bool, ahead: bool = False) -> None:
        """Describe the append."""
        self.log = log
        self.records = records
        self.barrier = barrier
        self.ahead = ahead


class Ask(Effect):
    """One model call: ``provider(messages, tools, model)``, streamed to ``on_text`` when it is set and can be."""

    __slots__ = ("messages", "model", "on_text", "provider", "tools")

    def __init__(
        self,
        provider: AnyProvider,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        model: str | None,
        on_text: Callable[[str], None] | None,
    ) -> None:
        """Describe the call."""
        self.provider = provider
        self.messages = messages
        self.tools = tools
        self.model = model
        self.on_text = on_text


class Sleep(Effect):
    """Wait before a retry; ``sleep`` is the blocking sleep the sync driver uses (a seam for tests)."""

    __slots__ = ("seconds", "sleep")

    def __init__(self, seconds: float, sleep: Callable[[float], None] = time.sleep) -> None:
        """Describe the wait."""
        self.seconds = seconds
        self.sleep = sleep


class Invocation:
    """One tool body to run: its position in the batch, the tool, validated arguments and the call's context."""

    __slots__ = ("arguments", "context", "index", "tool")

    def __init__(self, index: int, tool: Tool, arguments: dict[str, Any], context: ToolCallContext) -> None:
        """Describe the body to run."""
        self.index = index
        self.tool = tool
        self.arguments = arguments
        self.context = context


class ToolOutcome:
    """What a tool body came to: a value, or the exception it raised (an ``Exception`` or a delegation signal)."""

    __slots__ = ("duration_ms", "error", "index", "value")

    def __init__(
        self, index: int, *, value: Any = None, error: BaseException | None = None, duration_ms: float = 0.0
    ) -> None:
        """Describe the outcome."""
        self.index = index
        self.value = value
        self.error = error
        self.duration_ms = duration_ms


class StartCalls(Effect):
    """Start tool bodies: one runs when its result is asked for; several run at once, in threads or tasks."""

    __slots__ = ("invocations",)

    def __init__(self, invocations: list[Invocation]) -> None:
        """Describe the batch."""
        self.invocations = invocations


def one_sync_body(invocations: list[Invocation]) -> bool:
    """Whether a batch is a single body that runs in a thread under the async API (a sync tool's)."""
    if len(invocations) != 1:
        return False
    tool = invocations[0].tool
    return not (tool.is_async and tool.fn is not None)


class NextResult(Effect):
    """The outcomes of the started batch's bodies that ended since last asked.

    The driver sends back a non-empty list of :class:`ToolOutcome`, in the order the calls were asked for.
    """

    __slots__ = ()


NEXT_RESULT = NextResult()


class _ToolBody:
    __slots__ = ("context", "sink", "stop", "token")

    def __init__(self, context: ToolCallContext) -> None:
        self.context = context

    def __enter__(self) -> None:
        self.sink = sink_var.set(None) if current_sink() is not None else None
        self.stop = STOP_REQUESTED.set(None) if STOP_REQUESTED.get() is not None else None
        self.token = call_var.set(self.context)

    def __exit__(self, *exc: object) -> None:
        call_var.reset(self.token)
        if self.stop is not None:
            STOP_REQUESTED.reset(self.stop)
        if self.sink is not None:
            sink_var.reset(self.sink)


def tool_body(context: ToolCallContext) -> AbstractContextManager[None]:
    """The context a tool body runs in: its call is current, and the run's stream and stop request are not.

    A sub-agent the body starts is a run of its own: it must not report into its parent's stream, and it
    finishes even when its parent's host is shutting down (the call is one step of the parent).
    """
    return _ToolBody(context)


def call_tool(inv: Invocation) -> ToolOutcome:
    """Run a tool body in this thread with its call context; an exception it raises becomes the outcome.

    A ``BaseException`` other than a delegation signal (``KeyboardInterrupt``, ``SystemExit``) is not an
    outcome: it propagates, as a crash would.
    """
    started = time.perf_counter()
    with tool_body(inv.context):
        try:
            value = inv.tool.invoke(inv.arguments)
        except (Exception, DelegationSuspended) as e:  # noqa: BLE001 - recorded and shown to the model
            return ToolOutcome(inv.index, error=e, duration_ms=ms_since(started))
    return ToolOutcome(inv.index, value=value, duration_ms=ms_since(started))


def ms_since(started: float) -> float:
    """Milliseconds since ``started`` (a ``perf_counter`` reading), to the microsecond."""
    return round((time.perf_counter() - started) * 1000, 3)


def ask(effect: Ask) -> Any:
    """Make a model call in this thread: streamed to ``on_text`` when it is set and the provider can stream.

    The one sync call of a provider: :func:`drive` makes it, and the async API in a worker thread.
    """
    provider = effect.provider
    on_text = effect.on_text
    if on_text is not None:
        stream = getattr(provider, "stream", None)
        if callable(stream):
            return stream(effect.messages, effect.tools, effect.model, on_text=on_text)
    return provider(effect.messages, effect.tools, effect.model)


TOOL_THREADS = 32
"""Most threads the sync API runs the tool bodies of one turn in; a wider turn queues the rest."""


class _Batch:
    """The tool bodies of one StartCalls: one runs inline when asked for; several run in a bounded pool.

    Each body that ends puts its future on a queue, so taking the next outcomes costs nothing per body
    still running (a turn of n calls is O(n), not O(n²)).
    """

    def __init__(self, invocations: list[Invocation]) -> None:
        self.single: Invocation | None = None
        self.pool: ThreadPoolExecutor | None = None
        self.done: queue.SimpleQueue[Future[ToolOutcome]] = queue.SimpleQueue()
        if len(invocations) == 1:
            self.single = invocations[0]
            return
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - importing it costs ~8 ms at startup

        self.pool = pool = ThreadPoolExecutor(
            max_workers=min(len(invocations), TOOL_THREADS), thread_name_prefix="delite-tool"
        )
        put = self.done.put
        try:
            for inv in invocations:
                context = contextvars.copy_context()  # each body enters its own copy
                pool.submit(context.run, call_tool, inv).add_done_callback(put)
        except BaseException:  # no thread could be started: the bodies already started end first
            self.close()
            raise

    def next(self) -> list[ToolOutcome]:
        """The outcomes of the bodies that ended since last asked (at least one), in the order asked for."""
        single = self.single
        if single is not None:
            self.single = None
            return [call_tool(single)]
        done = self.done
        ended = [done.get()]
        while not done.empty():
            ended.append(done.get_nowait())
        outcomes = [f.result() for f in ended]  # a crash in a body (KeyboardInterrupt) propagates from here
        outcomes.sort(key=_by_index)
        return outcomes

    def close(self) -> None:
        if self.pool is not None:
            # Let bodies still running finish; bodies not started yet never start (their calls stay in doubt,
            # as after a crash: this happens only when the run stops with bodies in flight).
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _by_index(outcome: ToolOutcome) -> int:
    return outcome.index


def drive(steps: Steps[T]) -> T:
    """Run an operation to its end in this thread, performing each effect as it is yielded.

    Claims the operation took are released when it ends, however it ends.
    """
    claims: list[ExecutionLog] = []
    batch: _Batch | None = None
    op = Cursor(steps)
    try:
        while (effect := op.next()) is not None:
            try:
                match effect:
                    case Append():
                        effect.log.append(effect.records, barrier=effect.barrier)
                    case Ask():
                        op.value = ask(effect)
                    case Io():
                        op.value = effect.fn(*effect.args)
                    case NextResult():
                        assert batch is not None
                        op.value = batch.next()
                    case StartCalls():
                        if batch is not None:
                            batch.close()
                        batch = _Batch(effect.invocations)
                    case Claim():
                        log = effect.perform()
                        claims.append(log)
                        op.value = log
                    case Sleep():
                        effect.sleep(effect.seconds)
                    case _:  # pragma: no cover - every effect is handled above
                        op.error = TypeError(f"unknown effect {effect!r}")
            except BaseException as e:  # noqa: BLE001 - thrown into the operation, which decides
                op.error = e
        return op.result
    finally:
        if batch is not None:
            batch.close()
        for log in reversed(claims):
            log.release()
