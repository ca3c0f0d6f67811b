"""Derive the read API's views from an execution's records: pure functions, no I/O."""

from __future__ import annotations

import io
from typing import Any

import msgspec

from delite.errors import LogCorruptError, StoreError
from delite.log._framing import TornTail
from delite.log._reader import parse_log, parse_stream
from delite.log._shell import unsealed_shell
from delite.log.records import (
    AnyRecord,
    DecisionRecorded,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ModelCallFailed,
    ModelResponded,
    ToolFinished,
    ToolStarted,
    Usage,
)
from delite.state._fold import apply, fold, fold_summary
from delite.state._model import CallState, ExecutionState, Status, Totals
from delite.state._ready import advanceable
from delite.store._views import (
    Decision,
    Event,
    ExecutionDetail,
    ExecutionSummary,
    LastError,
    LlmCall,
    Pause,
    Problem,
    Step,
    Tokens,
    ToolCall,
    TornInfo,
)

__all__ = [
    "PREVIEW_CHARS",
    "Derived",
    "check_records",
    "event",
    "events",
    "fold_checked",
    "summarize",
    "summary_of_log",
    "summary_of_state",
    "unreadable",
]

PREVIEW_CHARS = 500


_FOLD_ERRORS = (LogCorruptError, KeyError, TypeError, ValueError, AttributeError)


def fold_checked(
    records: list[AnyRecord], offsets: list[int] | None = None, *, path: str = "", summary: bool = False
) -> ExecutionState:
    """Fold the records; a record that does not fold raises :class:`LogCorruptError` naming its byte offset.

    Records that pass their checksums can still be inconsistent (a result for a call never made) when a log
    was not written by delite; that is damage too, and it is reported where it is. With ``summary``, the
    summary fold (:func:`~delite.state._fold.fold_summary`: every record checked, the conversation left out),
    for a listing or a health check, never to continue from.
    """
    try:
        return fold_summary(records) if summary else fold(records)
    except _FOLD_ERRORS:
        pass
    state = ExecutionState()
    for i, record in enumerate(records):
        try:
            apply(state, record)
        except _FOLD_ERRORS as e:
            reason = e.reason if isinstance(e, LogCorruptError) else f"{type(e).__name__}: {e}"
            offset = offsets[i] if offsets is not None and i < len(offsets) else -1
            raise LogCorruptError(
                path, offset, f"record {i + 1} ({type(record).__name__}) does not fold: {reason}"
            ) from e
    # Every record applied one by one: only the summary fold refused them, so the full fold's state stands (a
    # listing or a health check never fails over a difference between the two folds).
    return state


def _tokens(u: Usage | Totals, *, known: bool) -> Tokens:
    return Tokens(
        input=u.input_tokens,
        output=u.output_tokens,
        cached_input=u.cached_input_tokens,
        cache_write=u.cache_write_tokens,
        reasoning=u.reasoning_tokens,
        total=u.total_tokens,
        known=known,
    )


def _preview(text: str | None) -> str | None:
    if text is None or len(text) <= PREVIEW_CHARS:
        return text
    return text[: PREVIEW_CHARS - 1] + "\u2026"


def _status(state: ExecutionState, records: list[AnyRecord]) -> str:
    return state.status.value if records else "empty"


def _error(state: ExecutionState) -> str | None:
    if state.error_type is None and state.error_message is None:
        return None
    if state.status.value != "failed":
        return None
    return f"{state.error_type}: {state.error_message}" if state.error_type else state.error_message


def _summary_fields(
    execution_id: str, records: list[AnyRecord], state: ExecutionState, *, log_bytes: int, torn: bool
) -> dict[str, Any]:
    t = state.totals
    first = unsealed_shell(records[0]) if records else None
    started = first if isinstance(first, ExecutionStarted) else None
    return {
        "id": execution_id,  # the id the log is found by (health reports a log naming another)
        "agent_id": state.agent_id,
        "status": _status(state, records),
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "input": state.input,
        "answer": state.answer,
        "models": state.models(),
        "steps": state.steps,
        "llm_calls": t.llm_calls,
        "tool_calls": state.calls_count(),
        "tokens": _tokens(t, known=t.usage_known),
        "cost": str(t.cost) if t.cost_known else None,
        "metadata": state.metadata,
        "suspend_reason": state.suspend_reason if state.status.is_suspended else None,
        "error": _error(state),
        "parent_id": state.parent_id,
        "parent_call": state.parent_call,
        "forked_from": started.forked_from if started is not None else None,
        "fork_step": started.fork_step if started is not None else None,
        "records": state.records,
        "log_bytes": log_bytes,
        "torn": torn,
        "advanceable": bool(records) and advanceable(state),
    }


def summary_of_state(
    execution_id: str, records: list[AnyRecord], state: ExecutionState, *, log_bytes: int, torn: bool
) -> ExecutionSummary:
    """The listing summary of records already folded into ``state`` (input and answer cut to :data:`PREVIEW_CHARS`)."""
    fields = _summary_fields(execution_id, records, state, log_bytes=log_bytes, torn=torn)
    fields["input"] = _preview(fields["input"])
    fields["answer"] = _preview(fields["answer"])
    return ExecutionSummary(**fields)


def summary_of_tally(
    execution_id: str, first: ExecutionStarted, last: ExecutionCompleted | ExecutionCancelled, *, log_bytes: int
) -> ExecutionSummary | None:
    """The listing summary of a finished log from its first record and the tally of its last, else None.

    Equal to :func:`summary_of_log` of the whole log when the tally is the one the engine wrote for it: the
    caller checks its hash against the log's bytes first (see :mod:`delite.store._tally`).
    """
    tally = last.tally
    if tally is None:
        return None
    completed = last if isinstance(last, ExecutionCompleted) else None
    usage = tally.usage
    return ExecutionSummary(
        id=execution_id,
        agent_id=first.agent_id,
        status=(Status.CANCELLED if completed is None else Status.COMPLETED).value,
        created_at=first.at,
        updated_at=last.at,
        input=_preview(first.input) or "",
        answer=None if completed is None else _preview(completed.answer),
        models=list(tally.models),
        steps=tally.steps,
        llm_calls=tally.llm_calls,
        tool_calls=tally.tool_calls,
        tokens=_tokens(usage, known=usage.known),
        cost=usage.cost,
        metadata=first.metadata,
        parent_id=first.parent_id,
        parent_call=first.parent_call,
        forked_from=first.forked_from,
        fork_step=first.fork_step,
        records=tally.records,
        log_bytes=log_bytes,
    )


def unreadable(execution_id: str, damage: str, *, log_bytes: int) -> ExecutionSummary:
    """The summary of an execution whose log cannot be read."""
    return ExecutionSummary(id=execution_id, status="unreadable", damage=damage, log_bytes=log_bytes)


def summary_of_log(execution_id: str, data: bytes, *, path: str) -> ExecutionSummary:
    """The listing summary of a framed log's bytes; ``unreadable`` (with the reason) when they are damaged.

    The one "read and fold a log for a listing" of the framed stores (the file store's index, the memory
    store): a log whose first record names another execution is unreadable under this id.
    """
    try:
        contents = parse_log(data, path=path)
    except StoreError as e:  # LogCorruptError, UnsupportedFormatError
        return unreadable(execution_id, str(e), log_bytes=len(data))
    torn = contents.torn is not None
    problems, summary = check_records(
        execution_id, contents.records, contents.offsets, log_bytes=len(data), torn=torn, path=path
    )
    if summary is not None:
        return summary
    if not contents.records:  # nothing complete yet: an "empty" execution, listed as such
        return summary_of_state(execution_id, [], ExecutionState(), log_bytes=len(data), torn=torn)
    return unreadable(execution_id, problems[0].detail, log_bytes=len(data))


def summary_of_tail(
    execution_id: str,
    data: bytes,
    start: int,
    state: ExecutionState,
    first: ExecutionStarted,
    *,
    path: str,
    full: bool = False,
) -> ExecutionSummary | None:
    """:func:`summary_of_log` of ``data`` from ``state``, the fold of its first ``start`` bytes.

    ``state`` is a fold checkpoint's that matched those bytes; only the frames after them are folded (onto it:
    with ``full`` by the full fold, so the state can be continued from, else by the summary fold). None unless
    they read and fold cleanly to the end: the caller then reads the whole log, which reports whatever is
    wrong as usual.
    """
    try:
        tail = parse_stream(io.BytesIO(data[start:]).read, path=path, start=start)
        if tail.torn is not None or tail.end != len(data):
            return None
        if full:
            fold(tail.records, state)
        else:
            fold_summary(tail.records, state)
    except (StoreError, *_FOLD_ERRORS):
        return None
    return summary_of_state(execution_id, [first], state, log_bytes=len(data), torn=False)


def summarize(execution_id: str, records: list[AnyRecord]) -> ExecutionSummary:
    """The listing summary of an execution's complete records, as every store lists it.

    What a backend that keeps records (not framed bytes) answers :meth:`~delite.store.ExecutionIndex.query_executions`
    with (filtered and paged by :meth:`~delite.store.ListingQuery.page`, or kept in its own table): no records
    is an ``empty`` execution, records that do not fold (or whose first names another execution) an
    ``unreadable`` one, with the reason in ``damage``.
    """
    problems, summary = check_records(execution_id, records, None, log_bytes=0, torn=False)
    if summary is not None:
        return summary
    if not records:
        return summary_of_state(execution_id, [], ExecutionState(), log_bytes=0, torn=False)
    return unreadable(execution_id, problems[0].detail, log_bytes=0)


def check_records(
    execution_id: str,
    records: list[AnyRecord],
    offsets: list[int] | None,
    *,
    log_bytes: int,
    torn: bool,
    path: str | None = None,
) -> tuple[list[Problem], ExecutionSummary | None]:
    """What is wrong with an execution's complete records, and its summary when nothing is.

    Wrong: the first record is not ``execution-started`` (``inconsistent``), it names another execution
    (``id-mismatch``), or a record does not fold (``inconsistent``, at the record's offset when known). No
    record at all is no problem here (each caller says what an empty log means) and has no summary.
    """
    problems, state = checked_state(execution_id, records, offsets, path=path)
    if state is None:
        return problems, None
    return [], summary_of_state(execution_id, records, state, log_bytes=log_bytes, torn=torn)


def checked_state(
    execution_id: str, records: list[AnyRecord], offsets: list[int] | None, *, path: str | None = None
) -> tuple[list[Problem], ExecutionState | None]:
    """:func:`check_records`' problems, and the summary fold's state when there are none (for a health check)."""
    if not records:
        return [], None
    first = unsealed_shell(records[0])
    at = offsets[0] if offsets else None
    if not isinstance(first, ExecutionStarted):
        detail = "the first record is not execution-started"
        return [_problem("inconsistent", execution_id, path, at, detail)], None
    if first.execution_id != execution_id:
        detail = f"the log names execution {first.execution_id!r}"
        return [_problem("id-mismatch", execution_id, path, at, detail)], None
    try:
        return [], fold_checked(records, offsets, path=path or "", summary=True)
    except LogCorruptError as e:
        return [_problem("inconsistent", execution_id, path, e.offset if e.offset >= 0 else None, e.reason)], None


def _problem(kind: str, execution_id: str, path: str | None, offset: int | None, detail: str) -> Problem:
    return Problem(kind=kind, severity="error", execution_id=execution_id, path=path, offset=offset, detail=detail)


def event(seq: int, record: AnyRecord, offset: int | None) -> Event:
    """One record as an :class:`Event`: its sequence number, byte offset (None without bytes) and fields."""
    data = msgspec.to_builtins(record)
    return Event(seq=seq, offset=offset, kind=data.get("kind", ""), at=record.at, record=data)


def events(records: list[AnyRecord], offsets: list[int] | None) -> list[Event]:
    """Every record as an :class:`Event`, in log order (offsets None: the store keeps no bytes)."""
    if offsets is None:
        return [event(seq, r, None) for seq, r in enumerate(records, start=1)]
    return [event(seq, r, o) for seq, (r, o) in enumerate(zip(records, offsets, strict=True), start=1)]


def _llm_call(r: ModelResponded | ModelCallFailed, usage: Usage | None, **fields: Any) -> LlmCall:
    """One model call attempt as listed: its step, attempt, time and model, what it cost, and ``fields``."""
    tokens = _tokens(usage, known=usage.known) if usage is not None else None
    cost = usage.cost if usage is not None else None
    return LlmCall(step=r.step, attempt=r.attempt, at=r.at, model=r.model, tokens=tokens, cost=cost, **fields)


class Derived:
    """Every view of one execution, derived from its records in one pass over them."""

    def __init__(
        self,
        execution_id: str,
        records: list[AnyRecord],
        offsets: list[int] | None,
        *,
        log_bytes: int,
        torn: TornTail | None,
        path: str = "",
    ) -> None:
        """Fold the records and derive the views (:class:`LogCorruptError` if a record does not fold)."""
        self.execution_id = execution_id
        self.records = records
        self.offsets = offsets
        self.state = state = fold_checked(records, offsets, path=path)
        self._first_start: dict[str, float] = {}
        self._last_start: dict[str, float] = {}
        self._decided_at: dict[str, float] = {}
        self.llm_calls: list[LlmCall] = []
        self.pauses: list[Pause] = []
        self.last_error: LastError | None = None
        self._walk()
        self.tool_calls = [self._tool_call(cs) for cs in state.calls.values()]
        by_step: dict[int, list[ToolCall]] = {}
        for tc in self.tool_calls:
            by_step.setdefault(tc.step, []).append(tc)
        self.steps = [self._step(turn, by_step.get(turn.step, [])) for turn in state.turns]
        torn_info = TornInfo(offset=torn.offset, length=torn.length, reason=torn.reason) if torn else None
        fields = _summary_fields(execution_id, records, state, log_bytes=log_bytes, torn=torn is not None)
        model_ms = sum(c.duration_ms for c in self.llm_calls)
        tool_ms = sum(tc.duration_ms or 0.0 for tc in self.tool_calls)
        times = [r.at for r in records]
        wall_ms = (max(times) - min(times)) * 1000 if times else 0.0
        open_ids = {cs.call.id for cs in state.open_calls()}
        self.detail = ExecutionDetail(
            **fields,
            config=state.config,
            model=state.model,
            idempotency_key=state.idempotency_key,
            depth=state.depth,
            resumes=state.resumes,
            model_failures=state.totals.model_failures,
            model_ms=round(model_ms, 3),
            tool_ms=round(tool_ms, 3),
            wall_ms=round(wall_ms, 3),
            pending_calls=[tc for tc in self.tool_calls if tc.call_id in open_ids],
            last_error=self.last_error,
            torn_tail=torn_info,
        )

    def _walk(self) -> None:
        open_pause: dict[str, Any] | None = None
        step = 0
        for r in self.records:
            if isinstance(r, ModelResponded):
                step = r.step
                self.llm_calls.append(_llm_call(r, r.usage, duration_ms=r.duration_ms, tool_calls=len(r.tool_calls)))
            elif isinstance(r, ModelCallFailed):
                # what a failed attempt that got under way may have cost (a lower bound)
                failed = {"ok": False, "error": r.error, "retryable": r.retryable, "status_code": r.status_code}
                self.llm_calls.append(_llm_call(r, r.usage, **failed))
                self.last_error = LastError(source="model", message=r.error, at=r.at, step=r.step)
            elif isinstance(r, ToolStarted):
                self._first_start.setdefault(r.call_id, r.at)
                self._last_start[r.call_id] = r.at
            elif isinstance(r, ToolFinished):
                if r.error is not None:
                    cs = self.state.calls.get(r.call_id)
                    self.last_error = LastError(
                        source="tool",
                        message=r.error,
                        at=r.at,
                        step=cs.step if cs else None,
                        call_id=r.call_id,
                    )
            elif isinstance(r, DecisionRecorded):
                self._decided_at[r.call_id] = r.at
            elif isinstance(r, ExecutionFailed):
                message = f"{r.error_type}: {r.message}" if r.error_type else r.message
                self.last_error = LastError(source="execution", message=message, at=r.at, step=step or None)
            elif isinstance(r, ExecutionSuspended):
                open_pause = {"kind": r.reason.kind, "at": r.at, "reason": r.reason, "step": step}
                continue
            if open_pause is not None and isinstance(
                r, ExecutionResumed | ExecutionCancelled | ExecutionCompleted | ModelResponded | ToolStarted
            ):
                self.pauses.append(Pause(**open_pause, ended_at=r.at))
                open_pause = None
        if open_pause is not None:
            self.pauses.append(Pause(**open_pause))

    def _tool_call(self, cs: CallState) -> ToolCall:
        f = cs.finished
        if f is not None:
            if f.source == "rejected":
                status = "rejected"
            elif f.error is not None:
                status = "error"
            else:
                status = "ok"
        elif cs.question is not None and cs.human_input is None:
            status = "waiting_input"
        elif cs.rerun_requested:
            status = "rerun_requested"
        elif cs.child_id is not None:
            status = "waiting_child"
        elif cs.attempts > 0:
            status = "started"
        else:
            status = "pending"
        d = cs.decision
        decision = (
            Decision(approved=d.approved, reason=d.reason, at=self._decided_at.get(cs.call.id, d.at))
            if d is not None
            else None
        )
        duration = f.duration_ms if f is not None and f.source == "tool" else None
        return ToolCall(
            call_id=cs.call.id,
            step=cs.step,
            name=cs.call.name,
            arguments=cs.call.arguments,
            status=status,
            result=f.result if f is not None else None,
            error=f.error if f is not None else None,
            source=f.source if f is not None else None,
            started_at=self._first_start.get(cs.call.id),
            finished_at=f.at if f is not None else None,
            duration_ms=duration,
            attempts=cs.attempts,
            retries=max(cs.attempts - 1, 0),
            idempotency_key=cs.idempotency_key or None,
            decision=decision,
            question=cs.question,
            human_input=cs.human_input,
            provider_id=cs.call.provider_id,
            child_id=cs.child_id,
        )

    def _step(self, turn: ModelResponded, calls: list[ToolCall]) -> Step:
        started = turn.at - turn.duration_ms / 1000
        ended = max([turn.at, *(c.finished_at for c in calls if c.finished_at is not None)])
        cost = turn.usage.cost
        return Step(
            step=turn.step,
            model=turn.model,
            started_at=started,
            ended_at=ended,
            model_ms=turn.duration_ms,
            tool_ms=round(sum(c.duration_ms or 0.0 for c in calls), 3),
            wall_ms=round(max(ended - started, 0.0) * 1000, 3),
            attempts=turn.attempt,
            tokens=_tokens(turn.usage, known=turn.usage.known),
            cost=cost,
            content=turn.content,
            tool_calls=calls,
        )

    def events(self) -> list[Event]:
        """Every record as an :class:`Event`."""
        return events(self.records, self.offsets)
