"""The read commands: status, inspect, steps, events, export, health and tail.

Each calls ``delite.DataDir`` over the command's store (see :mod:`delite_cli._target`) and renders what it
returns.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from delite_cli import _format as f
from delite_cli._errors import CliError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from delite.datadir import Event, ExecutionDetail, ExecutionSummary, ExecutionView, Step, ToolCall
    from delite_cli._target import Target

__all__ = [
    "parse_meta",
    "parse_time",
    "run_events",
    "run_export",
    "run_health",
    "run_inspect",
    "run_status",
    "run_steps",
    "run_tail",
]


def open_execution(target: Target, execution_id: str, *, content: bool = False) -> ExecutionView:
    """Read the execution (its id resolved already, see :func:`~delite_cli._target.with_target`).

    Its records sealed at rest and no key configured: ``content`` (a command that shows the input, the answer,
    what was said and done) raises :class:`~delite.errors.UnknownKeyError`, since showing the shells as the
    execution would pass blanks off as its content; otherwise a note on stderr says what is left out.

    Raises:
        UnknownKeyError: ``content``, and the records are sealed under a key this command was not given.
    """
    view = target.data.execution(execution_id)
    sealed = _sealed_under(view)
    if sealed is not None:
        how = "give --key-file, or set DELITE_ENCRYPTION_KEYS or DELITE_ENCRYPTION_KEY_FILE"
        if content:
            from delite.errors import UnknownKeyError

            raise UnknownKeyError(
                execution_id, 0, f"its records are sealed at rest (key {sealed!r}) and no key was given: {how}"
            )
        f.console(stderr=True).print(
            f.text(f"execution {execution_id}: records sealed at rest, shown without their content ({how})", "dim")
        )
    return view


def _sealed_under(view: ExecutionView) -> str | None:
    """The key id of the execution's first record still sealed (read with no key), else None."""
    from delite.log.records import SealedRecord

    return next((r.key_id for r in view.records if isinstance(r, SealedRecord)), None)


@contextmanager
def progress(label: str) -> Iterator[Any]:
    """A progress callback that draws a bar on stderr when it is a terminal and the work is long."""
    if not f.is_tty():
        yield None
        return
    from rich.progress import Progress

    with Progress(console=f.console(stderr=True), transient=True) as bar:
        task = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if total < 200:
                return
            if task is None:
                task = bar.add_task(label, total=total)
            bar.update(task, completed=done)

        yield update


# -- parsing options --------------------------------------------------------------------------------------------

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str | None, *, now: float | None = None) -> float | None:
    """``30m``, ``2h``, ``7d`` (that long ago), or an ISO 8601 date or time (UTC unless it has an offset)."""
    if value is None:
        return None
    m = _RELATIVE.match(value.strip())
    if m:
        return (time.time() if now is None else now) - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration like 30m, 2h, 7d nor an ISO date") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def parse_meta(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that is valid JSON (a number, true, "quoted") is matched as that value.

    A VALUE that is not JSON at all is matched as the string it is. One that is JSON the CLI cannot take
    (nested too deeply, a key given twice) or a pair that is not UTF-8 is refused, not matched as a string
    it was never meant to be.

    Raises:
        click.BadParameter: a pair is not ``KEY=VALUE``, or not UTF-8, or its VALUE cannot be taken.
    """
    from delite_cli._operate import BadInputError, decode_json, utf8

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{f.cut(pair, 60)!r} is not KEY=VALUE", param_hint="--meta")
        try:
            utf8(pair)
            out[key] = decode_json(raw)
        except BadInputError as e:
            if not e.syntax:
                raise click.BadParameter(f"{f.cut(pair, 60)!r}{e.tail}", param_hint="--meta") from None
            out[key] = raw
    return out


# -- status -----------------------------------------------------------------------------------------------------


def run_status(
    target: Target,
    *,
    statuses: tuple[str, ...],
    agent: str | None,
    meta: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int,
    offset: int,
    json_: bool,
    parent: str | None = None,
) -> None:
    """List executions, newest first."""
    data = target.data
    with progress("indexing logs") as update:
        page = data.list(
            status=list(statuses) or None,
            agent=agent,
            metadata=parse_meta(meta),
            since=parse_time(since),
            until=parse_time(until),
            limit=limit,
            offset=offset,
            progress=update,
            parent=data.resolve(parent) if parent else None,
        )
    if json_:
        f.echo_json(
            {
                "executions": page.items,
                "total": page.total,
                "offset": page.offset,
                "limit": page.limit,
                "next_offset": page.next_offset,
            }
        )
        return
    out = f.console()
    if not page.items:
        if page.total:
            out.print(f.text(f"No executions on this page: {page.total} match, from --offset 0.", "dim"))
            return
        data_dir = target.directory
        if data_dir is not None and not os.path.isdir(data_dir):
            out.print(f.text(f"No executions exist in {os.path.abspath(data_dir)}: that directory does not exist."))
            return
        where = "match these filters" if (statuses or agent or meta or since or until or parent) else "exist"
        missing = data_dir is not None and not _has_executions_folder(data_dir)
        hint = " (it has no executions folder: is it the data directory?)" if missing else ""
        out.print(f.text(f"No executions {where} in {target.where}{hint}.", "dim"))
        return
    from rich.table import Table

    wide = out.width >= 100
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2 if wide else 1, 0, 0))
    table.add_column("ID", no_wrap=True, min_width=min(max(len(s.id) for s in page.items), 40))
    table.add_column("AGENT", no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("STATUS", no_wrap=True, min_width=max(len(s.status) for s in page.items))
    for name in ("STEPS", "TOKENS", "COST", "AGE"):
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    if wide:
        table.add_column("INPUT", overflow="ellipsis", no_wrap=True, max_width=max(out.width - 100, 20))
    now = time.time()
    for s in page.items:
        cells: list[str | Text] = [
            f.text(s.id),
            f.text(s.agent_id, newlines=False, limit=20),
            f.text(s.status, f.status_style(s.status)),
            str(s.steps),
            f.number(s.tokens.total),
            f.cost(s.cost),
            f.age(s.created_at, now),
        ]
        if wide:
            cells.append(f.text(s.input, newlines=False, limit=200))
        table.add_row(*cells)
    out.print(table)
    for s in page.items:
        if s.status == "unreadable" and s.damage:  # the reason, on a line of its own whatever the width
            out.print(f.text(f"{s.id}: {s.damage}", "red", newlines=False, limit=400))
    shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.offset else str(len(page.items))
    footer = f"{shown} of {page.total} executions, newest first"
    if page.next_offset is not None:
        footer += f" (next page: --offset {page.next_offset})"
    out.print(f.text(footer, "dim"))


# -- inspect ----------------------------------------------------------------------------------------------------


def _call_line(tc: ToolCall) -> str:
    args = f.json_text(tc.arguments, indent=0)
    line = f"{tc.call_id}  {tc.name}({f.cut(args, 160)})"
    if tc.decision is not None:
        line += "  [approved" if tc.decision.approved else "  [rejected"
        line += ": recorded, runs on resume]" if tc.decision.approved else ": recorded]"
    elif tc.human_input is not None:
        line += "  [answered: recorded, used on resume]"
    return line


def _next_steps(d: ExecutionDetail) -> list[str]:
    reason = d.suspend_reason
    if reason is None:
        if d.status == "failed":
            return [f"delite resume {d.id} --agent MODULE:FACTORY"]
        return []
    first = reason.calls[0].call_id if reason.calls else "CALL_ID"
    kind = reason.kind
    if kind in ("approval", "contract"):
        return [f"delite approve {d.id} {first}", f"delite reject {d.id} {first} --reason TEXT"]
    if kind == "client_tool":
        return [f'delite submit-tool-results {d.id} results.json   # {{"{first}": ...}}']
    if kind == "human_input":
        return [f"delite submit-input {d.id} TEXT"]
    if kind == "in_doubt":
        return [f"delite resolve {d.id} {first} --result JSON", f"delite resolve {d.id} {first} --rerun"]
    return [f"delite resume {d.id} --agent MODULE:FACTORY"]


_WAITING_FOR = {
    "approval": "waiting for a human to approve or reject",
    "client_tool": "waiting for the client's tool results",
    "human_input": "waiting for a human's answer",
}


def _children(target: Target, d: ExecutionDetail) -> list[ExecutionSummary]:
    """The sub-agents' executions of ``d`` (only looked up when a log's name says there may be some)."""
    data = target.data
    if not any(tc.child_id for tc in d.pending_calls) and not any(i.startswith(d.id + ":") for i in data.ids()):
        return []
    return data.children(d.id)


def run_inspect(target: Target, execution_id: str, *, json_: bool) -> None:
    """Show one execution in depth."""
    d = open_execution(target, execution_id, content=True).detail
    if json_:
        f.echo_json(d)
        return
    from rich.table import Table

    out = f.console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(label: str, value: Any) -> None:
        grid.add_row(label, value if not isinstance(value, str) else f.text(value))

    row("Execution", d.id)
    row("Status", f.text(d.status, f.status_style(d.status)))
    row("Agent", f.text(d.agent_id))
    row("Created", f"{f.timestamp(d.created_at)} ({f.age(d.created_at)} ago)")
    row("Updated", f"{f.timestamp(d.updated_at)} ({f.age(d.updated_at)} ago)")
    row("Input", f.text(d.input, limit=2000))
    row("Answer", f.text(d.answer if d.answer is not None else "-", limit=2000))
    row("Models", f.text(", ".join(d.models) or d.model or "-"))
    calls = f"{f.plural(d.llm_calls, 'LLM call')}, {f.plural(d.tool_calls, 'tool call')}"
    if d.model_failures:
        calls += f", {f.plural(d.model_failures, 'failed model attempt')}"
    row("Steps", f"{d.steps} ({calls})")
    t = d.tokens
    detail = f"{f.number(t.input)} in, {f.number(t.output)} out"
    if t.cached_input or t.cache_write:
        detail += f", {f.number(t.cached_input)} cached, {f.number(t.cache_write)} cache write"
    if t.reasoning:
        detail += f", {f.number(t.reasoning)} reasoning"
    row("Tokens", f"{f.number(t.total)} ({detail})" + ("" if t.known else ", incomplete"))
    row("Cost", f.cost(d.cost) if d.cost is not None else "unknown (a provider reported no price)")
    row("Time", f"model {f.duration_ms(d.model_ms)}, tools {f.duration_ms(d.tool_ms)}, wall {f.duration_ms(d.wall_ms)}")
    if d.resumes:
        row("Resumes", str(d.resumes))
    if d.metadata:
        row("Metadata", f.text(f.json_text(d.metadata, indent=0)))
    c = d.config
    tools = ", ".join(ts.name for ts in c.tools) or "none"
    config = f"provider {c.provider or '-'}, model {c.model or '-'}, tools: {tools}"
    row("Config", f.text(config))
    if c.prompt:
        row("Prompt", f.text(c.prompt, limit=500))
    if d.idempotency_key:
        row("Idem. key", f.text(d.idempotency_key))
    if d.parent_id:
        row("Parent", f.text(f"{d.parent_id} (call {d.parent_call or '?'}, depth {d.depth})"))
    children = _children(target, d)
    if children:
        row(
            "Sub-agents",
            f.text("\n".join(f"{c.id}  {c.agent_id}  {c.status}  (call {c.parent_call})" for c in children)),
        )
    if d.forked_from:
        row("Forked from", f.text(f"{d.forked_from} at step {d.fork_step}"))
    log = f"{f.size(d.log_bytes)}, {d.records} records"
    if d.torn_tail is not None:
        log += f"; torn tail at byte {d.torn_tail.offset} ({d.torn_tail.reason}), cut off on the next resume"
    row("Log", log)
    if d.suspend_reason is not None:
        r = d.suspend_reason
        lines = [f"{r.kind}: {r.message or r.question or _WAITING_FOR.get(r.kind, 'waiting')}"]
        lines.extend(f"  {_call_line(tc)}" for tc in d.pending_calls if tc.call_id in r.confirmation_ids)
        lines.extend(
            f"  {c.call_id}  {c.name}({f.json_text(c.arguments, indent=0)})" for c in r.calls if "/" in c.call_id
        )
        row("Suspended", f.text("\n".join(lines), "yellow"))
    elif d.pending_calls:
        row("Open calls", f.text("\n".join(_call_line(tc) + f"  [{tc.status}]" for tc in d.pending_calls)))
    if d.error:
        row("Error", f.text(d.error, "red", limit=2000))
    if d.last_error is not None and d.last_error.message != d.error:
        e = d.last_error
        where = f"step {e.step}" if e.step else ""
        if e.call_id:
            where += f", call {e.call_id}"
        row("Last error", f.text(f"{e.source} ({where.strip(', ')}): {e.message}", "red", limit=2000))
    nxt = _next_steps(d)
    if nxt:
        row("Next", f.text("\n".join(nxt), "dim"))
    out.print(grid)


# -- steps ------------------------------------------------------------------------------------------------------


def _tools_cell(step: Step) -> str:
    parts = [f"{tc.name} {tc.status}" + (f" x{tc.attempts}" if tc.attempts > 1 else "") for tc in step.tool_calls]
    return ", ".join(parts) if parts else "(answer)"


def run_steps(target: Target, execution_id: str, *, json_: bool) -> None:
    """Show the timeline, one row per step."""
    view = open_execution(target, execution_id)
    steps = view.steps
    if json_:
        f.echo_json({"execution_id": view.execution_id, "steps": steps, "pauses": view.pauses})
        return
    out = f.console()
    if not steps:
        out.print(f.text(f"Execution {view.execution_id} has no completed step yet.", "dim"))
        return
    from rich.table import Table

    origin = min(view.detail.created_at, steps[0].started_at)
    wide = out.width >= 100
    table = Table(box=None, pad_edge=False, header_style="bold", padding=(0, 2 if wide else 1, 0, 0))
    table.add_column("STEP", justify="right", no_wrap=True, min_width=4)
    table.add_column("AT", justify="right", no_wrap=True, min_width=7)
    table.add_column("MODEL", no_wrap=True, overflow="ellipsis", max_width=24 if wide else 14)
    table.add_column("MODEL TIME", justify="right", no_wrap=True, min_width=10)
    table.add_column("TOOL CALLS", overflow="ellipsis", no_wrap=True, min_width=10)
    table.add_column("TOOL TIME", justify="right", no_wrap=True, min_width=9)
    table.add_column("TOKENS", justify="right", no_wrap=True, min_width=6)
    table.add_column("COST", justify="right", no_wrap=True, min_width=7)
    for s in steps:
        table.add_row(
            str(s.step),
            "+" + f.duration_ms(max(s.started_at - origin, 0.0) * 1000),
            f.text(s.model or "-", newlines=False, limit=24),
            f.duration_ms(s.model_ms) + (f" ({s.attempts} tries)" if s.attempts > 1 else ""),
            f.text(_tools_cell(s), newlines=False),
            f.duration_ms(s.tool_ms) if s.tool_calls else "-",
            f.number(s.tokens.total),
            f.cost(s.cost),
        )
    out.print(table)
    for p in view.pauses:
        until = f"for {f.duration_ms((p.ended_at - p.at) * 1000)}" if p.ended_at else "still waiting"
        out.print(f.text(f"paused after step {p.step}: {p.reason} ({until})", "yellow", newlines=False, limit=300))


# -- events and tail --------------------------------------------------------------------------------------------


_BODY_INDENT = " " * 7


def _event_lines(e: Event, origin: float, *, full: bool, width: int) -> list[Text]:
    """One record as terminal lines no wider than ``width``.

    On one line when it fits, else its header (sequence, time, kind) and then its body, indented and
    wrapped. Nothing of the body is dropped beyond the usual cut (240 characters, none with ``--full``).
    """
    from rich.cells import cell_len
    from rich.text import Text

    fields = {k: v for k, v in e.record.items() if k not in ("kind", "at")}
    body = f.json_text(fields, indent=0)
    if not full:
        body = f.cut(body, 240)
    line = Text()
    line.append(f"{e.seq:>5}  ", style="dim")
    line.append(f"+{max(e.at - origin, 0.0):.3f}s".rjust(10) + "  ", style="dim")
    line.append(f.text(e.kind, "bold", newlines=False))
    shown = f.text(body, newlines=False)
    if cell_len(line.plain) + 2 + cell_len(shown.plain) <= width:
        line.append("  ")
        line.append(shown)
        return [line]
    return [line, *(Text(_BODY_INDENT + piece) for piece in f.wrap(shown.plain, width - len(_BODY_INDENT)))]


def _print_events(out: Console, events: list[Event], origin: float, *, full: bool) -> None:
    for e in events:
        for line in _event_lines(e, origin, full=full, width=out.width):
            out.print(line, soft_wrap=True)


def run_events(
    target: Target,
    execution_id: str,
    *,
    kinds: tuple[str, ...],
    after: int,
    limit: int | None,
    full: bool,
    json_: bool,
    nl: bool,
) -> None:
    """Print the raw records, decoded, in order."""
    view = open_execution(target, execution_id)
    events = [e for e in view.events if e.seq > after and (not kinds or e.kind in kinds)]
    if limit is not None:
        events = events[:limit]
    if nl:
        for e in events:
            click.echo(f.json_text(e, indent=0))
        return
    if json_:
        f.echo_json({"execution_id": view.execution_id, "events": events})
        return
    origin = min((e.at for e in view.events), default=0.0)
    _print_events(f.console(), events, origin, full=full)


def run_tail(
    target: Target, execution_id: str, *, lines: int, follow: bool, poll: float, timeout: float | None, json_: bool
) -> None:
    """Print the last records; with ``follow``, keep printing new ones until the execution ends."""
    data = target.data
    eid = execution_id
    view = open_execution(target, eid)
    events = view.events
    start = max(len(events) - lines, 0)
    origin = min((e.at for e in events), default=0.0)
    out = None if json_ else f.console()
    stream = (
        data.follow(eid, start=start, poll=poll, timeout=timeout, until_done=True) if follow else iter(events[start:])
    )
    try:
        for e in stream:
            if out is None:
                click.echo(f.json_text(e, indent=0))
            else:
                for line in _event_lines(e, origin, full=False, width=out.width):
                    out.print(line, soft_wrap=True)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return


# -- export -----------------------------------------------------------------------------------------------------


def run_export(target: Target, execution_id: str, *, fmt: str, output: str | None) -> None:
    """Write the whole execution as JSON, NDJSON, HTML, or OTLP/JSON spans (with its sub-agents)."""
    view = open_execution(target, execution_id, content=True)
    if fmt == "otlp-json":
        from delite._telemetry._names import capture_content_from_env
        from delite.telemetry import otlp_json

        body = f.json_text(otlp_json(target.data, execution_id, capture_content=capture_content_from_env())) + "\n"
        _write_export(body, output)
        return
    export = view.export()
    if fmt == "json":
        body = f.json_text(export) + "\n"
    elif fmt == "ndjson":
        lines = [f.json_text({"type": "execution", "format": export.format, "data": export.execution}, indent=0)]
        for kind, items in (
            ("step", export.steps),
            ("llm_call", export.llm_calls),
            ("tool_call", export.tool_calls),
            ("pause", export.pauses),
            ("event", export.events),
        ):
            lines.extend(f.json_text({"type": kind, "data": item}, indent=0) for item in items)
        body = "\n".join(lines) + "\n"
    else:
        from delite_cli._html import render_html

        body = render_html(export)
    _write_export(body, output)


def _write_export(body: str, output: str | None) -> None:
    if output is None or output == "-":
        click.echo(body, nl=False)
        return
    try:
        # the export holds every prompt, answer and tool result: a file it creates is private (0600) whatever
        # the umask, like the logs it was read from; an existing file keeps the mode its owner gave it
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
    except OSError as e:
        raise CliError(f"cannot write {output}: {e.strerror}") from e
    click.echo(f"wrote {output} ({f.size(len(body.encode()))})", err=True)


# -- health -----------------------------------------------------------------------------------------------------


def run_health(target: Target, *, repair: bool, json_: bool) -> int:
    """Verify every log; returns the exit code (0 healthy, 1 problems)."""
    data = target.data
    with progress("verifying logs") as update:
        report = data.health(repair=repair, progress=update)
    if json_:
        f.echo_json(
            {
                "healthy": report.healthy,
                "data_dir": str(data.path) if data.path is not None else None,
                "logs": report.logs,
                "bytes": report.bytes,
                "records": report.records,
                "seconds": report.seconds,
                "mb_per_second": round(report.mb_per_second, 3),
                "repaired": report.repaired,
                "problems": report.problems,
            }
        )
        return 0 if report.healthy else 1
    gone = [p for p in report.problems if p.kind in ("missing", "not-a-directory")]
    if gone:  # nothing to verify: one error line, never "Healthy"
        raise CliError(f"{gone[0].detail}; nothing to check (see --data-dir)", kind="HealthError")
    never_written = target.directory is not None and not _has_executions_folder(target.directory)
    if not report.logs and never_written:  # a directory delite never wrote to
        raise CliError(
            f"{data.path} holds no executions (no executions folder): is it the data directory? nothing to check "
            "(see --data-dir)",
            kind="HealthError",
        )
    out = f.console()
    rate = f" ({report.mb_per_second:.0f} MB/s)" if report.seconds > 0 and report.bytes else ""
    out.print(
        f.text(
            f"Checked {report.logs} logs, {f.number(report.records)} records, {f.size(report.bytes)} "
            f"in {report.seconds:.2f}s{rate}."
        )
    )
    if repair and data.path is None:  # a store that is not a data directory keeps nothing derived
        out.print(f.text("This store keeps nothing derived to rebuild (--repair changes nothing here).", "dim"))
    styles = {"error": "red", "warning": "yellow", "derived": "dim"}
    for p in report.problems:
        where = p.execution_id or "-"
        at = f" at byte {p.offset}" if p.offset is not None else ""
        out.print(f.text(f"{p.severity:<7} {p.kind:<18} {where}{at}: {p.detail}", styles.get(p.severity)))
    if report.repaired:
        out.print(f.text("Rebuilt the index from the logs.", "green"))
    if report.healthy:
        out.print(f.text("Healthy.", "green"))
    else:
        bad = sum(1 for p in report.problems if p.severity != "derived")
        out.print(f.text(f"{bad} problem(s) found.", "red"))
    return 0 if report.healthy else 1


def _has_executions_folder(data_dir: str) -> bool:
    """Whether delite ever wrote an execution here (a wrong --data-dir usually has no executions folder)."""
    from delite.store._layout import Layout

    return os.path.isdir(Layout(data_dir).executions)
