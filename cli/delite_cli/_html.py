"""``delite export --format html``: one self-contained page that shows an execution's timeline.

No script and no external resource: the page is plain HTML and CSS, with a Content-Security-Policy that
forbids scripts, so even content that slipped past escaping could not run. Every value from the log has its
control and invisible characters shown as escapes (the page may be printed on a terminal) and then goes
through ``html.escape``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from delite_cli import _format as f
from delite_cli._safe import clean

if TYPE_CHECKING:
    from collections.abc import Callable

    from delite.datadir import Event, Export, Pause, Step, ToolCall

__all__ = ["render_html"]

_CSS = """
:root { --fg:#1d232a; --dim:#6b7682; --line:#e3e7eb; --model:#4f7cff; --tool:#1fa37a; --err:#d64545;
  --pause:#f0b429; --bg:#fbfcfd; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
  background: var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 20px; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.sub { color: var(--dim); margin-bottom: 16px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600;
  background: #e8ecf0; vertical-align: middle; }
.badge.completed { background: #d7f5e7; color: #11643f; } .badge.failed, .badge.unreadable { background: #fde2e2;
  color: #9b1c1c; } .badge.waiting, .badge.suspended { background: #fff1c7; color: #7a5200; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
.card b { display: block; font-size: 18px; } .card span { color: var(--dim); font-size: 12px; }
.text { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px;
  white-space: pre-wrap; word-break: break-word; max-height: 240px; overflow: auto; }
.timeline { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
.row { display: grid; grid-template-columns: 56px 1fr 90px 80px; gap: 8px; align-items: center;
  padding: 4px 0; border-bottom: 1px solid var(--line); }
.row:last-child { border-bottom: 0; } .row.head { color: var(--dim); font-size: 12px; }
.track { position: relative; height: 22px; background: #f3f5f7; border-radius: 4px; overflow: hidden; }
.bar { position: absolute; top: 3px; height: 16px; border-radius: 3px; min-width: 3px; }
.bar.model { background: var(--model); } .bar.tool { background: var(--tool); } .bar.error { background: var(--err); }
.bar.pending { background: repeating-linear-gradient(45deg, #c9d1d9, #c9d1d9 4px, #eef1f4 4px, #eef1f4 8px); }
.note { color: var(--dim); font-size: 12px; margin-top: 2px; }
.bar.paused { background: var(--pause); opacity: .55; }
.timeline + .timeline { margin-top: 8px; }
.pause { display: grid; grid-template-columns: 56px 1fr 90px 80px; gap: 8px; padding: 4px 0; border-bottom: 1px solid
  var(--line); } .pause .track { background: repeating-linear-gradient(45deg, var(--pause), var(--pause) 6px,
  #fff6da 6px, #fff6da 12px); height: 14px; }
.takeover { margin: 6px 0; padding: 6px 10px; border-left: 4px solid var(--err); background: #fdf0f0; }
.takeover.clean { border-left-color: var(--pause); background: #fff8e6; }
.bar.crash { background: var(--err); width: 2px !important; min-width: 2px; top: 0; height: 22px; }
.legend span { display: inline-block; margin-right: 14px; color: var(--dim); font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--dim); font-weight: 600; }
td pre, details pre { margin: 0; white-space: pre-wrap; word-break: break-word; font-size: 12px; }
details summary { cursor: pointer; color: var(--dim); }
.ok { color: #11643f; } .error, .rejected { color: var(--err); } .pending, .started { color: #7a5200; }
footer { color: var(--dim); font-size: 12px; margin-top: 32px; }
"""


def _e(value: Any) -> str:
    """Escape for HTML, after showing control and invisible characters as visible escapes."""
    return html.escape(clean(value), quote=True)


def _json(value: Any) -> str:
    return _e(f.json_text(value, indent=2))


def _status_class(status: str) -> str:
    if status.startswith("waiting"):
        return "waiting"
    return status if status.isidentifier() else ""


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


@dataclass(frozen=True)
class _Drawing:
    """How a timeline's tracks and bars are drawn; the rows, their order and their scales are the same everywhere.

    The export draws bars as absolutely placed ``div`` elements with inline styles (its page carries its own CSS);
    ``delite serve``, whose pages allow no inline style, draws them as SVG rectangles styled by class.
    ``bar(kind, left, width, title)`` takes ``left`` and ``width`` in percent of the track; ``track(bars)``
    wraps a row's bars; ``pause_track(kind)`` is a pause row's track; ``pause_class`` the pause row's class.
    """

    bar: Callable[[str, float, float, str], str]
    track: Callable[[list[str]], str]
    pause_track: Callable[[str], str]
    pause_class: str
    legend: str


def _cards(export: Export, *more: str) -> str:
    """The execution's counts, totals and times as cards, then ``more`` cards."""
    d = export.execution
    return "".join(
        [
            _card(str(d.steps), "steps"),
            _card(str(d.llm_calls), "LLM calls"),
            _card(str(d.tool_calls), "tool calls"),
            _card(f.number(d.tokens.total), "tokens"),
            _card(f.cost(d.cost), "cost"),
            _card(f.duration_ms(d.wall_ms), "wall time"),
            _card(f.duration_ms(d.model_ms), "model time"),
            _card(f.duration_ms(d.tool_ms), "tool time"),
            _card(str(len(export.pauses)), "pauses"),
            *more,
        ]
    )


def _bar(kind: str, left: float, width: float, title: str) -> str:
    return f'<div class="bar {kind}" style="left:{left:.3f}%;width:{max(width, 0.4):.3f}%" title="{_e(title)}"></div>'


_EXPORT = _Drawing(
    bar=_bar,
    track=lambda bars: f'<div class="track">{"".join(bars)}</div>',
    pause_track=lambda kind: f'<div class="track" title="{_e(kind)}"></div>',
    pause_class="pause",
    legend=(
        '<div class="legend"><span><i style="background:var(--model)"></i>model call</span>'
        '<span><i style="background:var(--tool)"></i>tool call</span>'
        '<span><i style="background:var(--err)"></i>failed or rejected</span>'
        '<span><i style="background:var(--pause)"></i>paused</span>'
        '<span><i style="background:var(--err);width:3px"></i>a process crashed, another resumed</span></div>'
    ),
)


def _step_row(step: Step, scale: float, draw: _Drawing) -> str:
    """One step: its model call, then its tool calls, back to back, scaled to the busiest step."""
    offset = step.model_ms
    model_title = f"model {step.model or ''}: {f.duration_ms(step.model_ms)}"
    bars = [draw.bar("model", 0.0, step.model_ms / scale * 100, model_title)]
    for tc in step.tool_calls:
        title = f"{tc.name} ({tc.status}): {f.duration_ms(tc.duration_ms)}"
        if tc.duration_ms is None:
            bars.append(draw.bar("pending" if tc.status != "error" else "error", offset / scale * 100, 1.0, title))
            continue
        kind = "tool" if tc.status == "ok" else "error"
        bars.append(draw.bar(kind, offset / scale * 100, tc.duration_ms / scale * 100, title))
        offset += tc.duration_ms
    names = ", ".join(f"{tc.name} {tc.status}" for tc in step.tool_calls) or "answer"
    timing = f"{f.duration_ms(step.model_ms)} model, {f.duration_ms(step.tool_ms)} tools"
    return (
        f'<div class="row step"><div>#{step.step}</div><div>{draw.track(bars)}'
        f'<div class="note">{_e(f.cut(names, 140))} &middot; {_e(timing)}</div></div>'
        f'<div class="num">{_e(f.number(step.tokens.total))} tok</div>'
        f'<div class="num">{_e(f.cost(step.cost))}</div></div>'
    )


def _pause_row(p: Pause, draw: _Drawing) -> str:
    until = f.duration_ms((p.ended_at - p.at) * 1000) if p.ended_at else "still waiting"
    return (
        f'<div class="{draw.pause_class}"><div class="note">pause</div><div>{draw.pause_track(p.kind)}'
        f'<div class="note">paused after step {p.step}: {_e(f.cut(str(p.reason), 200))} ({_e(until)})</div>'
        "</div><div></div><div></div></div>"
    )


# Records a process writes while it advances the execution; after one of them, the process had not stopped.
_ADVANCING = {
    "execution-started",
    "execution-resumed",
    "model-responded",
    "model-call-failed",
    "tool-started",
    "tool-finished",
    "output-rejected",
    "input-requested",
}
# Records after which the process let go of the execution on purpose.
_STOPPED = {"execution-suspended", "execution-failed", "execution-cancelled", "execution-completed"}


@dataclass(frozen=True)
class Takeover:
    """A process took the execution over (an ``execution-resumed`` record) after the one before had stopped.

    ``crashed``: the previous process stopped mid-run, with no suspension, failure or end recorded (killed,
    crashed, or shut down between steps); ``last`` is its last record, ``in_doubt`` the tool calls it had
    started and not finished.
    """

    resumed: Event
    last: Event | None
    crashed: bool
    in_doubt: tuple[str, ...]


def takeovers(events: list[Event]) -> list[Takeover]:
    """Where another process took over, and whether the previous one crashed; from the records alone."""
    found: list[Takeover] = []
    stopped = False
    last_advancing: Event | None = None
    open_calls: dict[str, None] = {}
    for e in events:
        if e.kind == "execution-resumed":
            found.append(Takeover(e, last_advancing, not stopped, tuple(open_calls)))
            open_calls = {}
        if e.kind == "tool-started":
            open_calls[str(e.record.get("call_id"))] = None
        elif e.kind == "tool-finished":
            open_calls.pop(str(e.record.get("call_id")), None)
        if e.kind in _ADVANCING:
            stopped = False
            last_advancing = e
        elif e.kind in _STOPPED:
            stopped = True
    return found


def _takeover_note(t: Takeover) -> str:
    pid = t.resumed.record.get("pid")
    by = f"process {pid}" if pid else "another process"
    if not t.crashed:
        return f'<div class="takeover clean">&#8635; resumed by {_e(by)} (record #{t.resumed.seq})</div>'
    after = f" after record #{t.last.seq} ({_e(t.last.kind)})" if t.last is not None else ""
    doubt = f"; tool calls in doubt: {_e(', '.join(t.in_doubt))}" if t.in_doubt else ""
    return (
        f'<div class="takeover crash">&#9888; the process stopped here{after} without finishing: crashed, '
        f"killed or shut down{doubt}. &#8635; {_e(by)} resumed it (record #{t.resumed.seq}).</div>"
    )


def _overview(export: Export, draw: _Drawing) -> str:
    """The whole execution on one wall-clock track: model calls, tool calls and pauses where they happened."""
    times = [e.at for e in export.events]
    if not times:
        return ""
    origin, end = min(times), max(times)
    span = max(end - origin, 1e-6)

    def pos(at: float) -> float:
        return (at - origin) / span * 100

    bars = []
    for p in export.pauses:
        stop = p.ended_at if p.ended_at is not None else end
        bars.append(draw.bar("paused", pos(p.at), pos(stop) - pos(p.at), f"paused: {p.reason}"))
    for c in export.llm_calls:
        kind = "model" if c.ok else "error"
        bars.append(draw.bar(kind, pos(c.at - c.duration_ms / 1000), c.duration_ms / 10 / span, f"step {c.step} model"))
    for tc in export.tool_calls:
        if tc.started_at is not None and tc.finished_at is not None:
            kind = "tool" if tc.status == "ok" else "error"
            bars.append(draw.bar(kind, pos(tc.started_at), pos(tc.finished_at) - pos(tc.started_at), tc.name))
    bars.extend(
        draw.bar("crash", pos(t.resumed.at), 0.0, f"crash; resumed at record #{t.resumed.seq}")
        for t in takeovers(export.events)
        if t.crashed
    )
    return (
        f'<div class="timeline"><div class="row overview"><div>all</div><div>{draw.track(bars)}'
        f'<div class="note">wall clock, {_e(f.duration_ms(span * 1000))} from first to '
        "last record</div></div><div></div><div></div></div></div>"
    )


def _timeline(export: Export, draw: _Drawing = _EXPORT) -> str:
    """The legend, the wall-clock overview, then one row per step with the pauses between them."""
    steps = export.steps
    if not steps:
        return '<div class="timeline note">No completed step yet.</div>'
    scale = max(s.model_ms + s.tool_ms for s in steps) or 1.0
    pauses_after: dict[int, list[Pause]] = {}
    for p in export.pauses:
        pauses_after.setdefault(p.step, []).append(p)
    head = (
        '<div class="row head"><div>step</div><div>model call, then tool calls (the busiest step is full width)'
        '</div><div class="num">tokens</div><div class="num">cost</div></div>'
    )
    rows = [head]
    rows.extend(_pause_row(p, draw) for p in pauses_after.get(0, []))
    for s in steps:
        rows.append(_step_row(s, scale, draw))
        rows.extend(_pause_row(p, draw) for p in pauses_after.get(s.step, []))
    return f'{draw.legend}{_overview(export, draw)}<div class="timeline">{"".join(rows)}</div>'


def _tool_table(calls: list[ToolCall]) -> str:
    if not calls:
        return '<p class="sub">No tool calls.</p>'
    rows = []
    for tc in calls:
        outcome = tc.error if tc.error is not None else tc.result
        decision = ""
        if tc.decision is not None:
            decision = "approved" if tc.decision.approved else "rejected"
            if tc.decision.reason:
                decision += f": {tc.decision.reason}"
        rows.append(
            f"<tr><td>{_e(tc.call_id)}</td><td>{_e(tc.name)}</td><td class='{_e(tc.status)}'>{_e(tc.status)}</td>"
            f"<td><details><summary>arguments</summary><pre>{_json(tc.arguments)}</pre></details>"
            f"<details><summary>{'error' if tc.error is not None else 'result'}</summary><pre>{_json(outcome)}</pre>"
            f"</details></td><td class='num'>{_e(f.duration_ms(tc.duration_ms))}</td>"
            f"<td class='num'>{tc.retries}</td><td>{_e(decision)}</td><td><small>{_e(tc.idempotency_key or '-')}"
            "</small></td></tr>"
        )
    head = (
        "<tr><th>call</th><th>tool</th><th>status</th><th>arguments / outcome</th><th>time</th><th>retries</th>"
        "<th>decision</th><th>idempotency key</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _llm_table(export: Export) -> str:
    if not export.llm_calls:
        return '<p class="sub">No model calls.</p>'
    rows = []
    for c in export.llm_calls:
        tokens = f.number(c.tokens.total) if c.tokens is not None else "-"
        outcome = "ok" if c.ok else f"failed: {c.error or ''}"
        rows.append(
            f"<tr><td>{c.step}</td><td>{c.attempt}</td><td>{_e(c.model or '-')}</td>"
            f"<td class='{'ok' if c.ok else 'error'}'>{_e(f.cut(outcome, 300))}</td>"
            f"<td class='num'>{_e(f.duration_ms(c.duration_ms))}</td><td class='num'>{_e(tokens)}</td>"
            f"<td class='num'>{_e(f.cost(c.cost))}</td></tr>"
        )
    head = (
        "<tr><th>step</th><th>attempt</th><th>model</th><th>outcome</th><th>time</th><th>tokens</th><th>cost</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def render_html(export: Export) -> str:
    """The page for one execution's export."""
    d = export.execution
    badge = f'<span class="badge {_e(_status_class(d.status))}">{_e(d.status)}</span>'
    cards = _cards(export)
    suspension = ""
    if d.suspend_reason is not None:
        suspension = f'<h2>Waiting</h2><div class="text">{_e(str(d.suspend_reason))}</div>'
    error = f'<h2>Error</h2><div class="text error">{_e(d.error)}</div>' if d.error else ""
    forked = f" &middot; forked from {_e(d.forked_from)} at step {d.fork_step}" if d.forked_from else ""
    marks = {t.resumed.seq: _takeover_note(t) for t in takeovers(export.events)}
    events = "".join(
        f"{marks.get(e.seq, '')}<details><summary>#{e.seq} {_e(e.kind)} &middot; {_e(f.timestamp(e.at))}</summary>"
        f"<pre>{_json(e.record)}</pre></details>"
        for e in export.events
    )
    crashes = sum(1 for t in takeovers(export.events) if t.crashed)
    takeover_list = "".join(marks.values())
    processes = f"<h2>Crashes and resumes</h2>{takeover_list}" if takeover_list else ""
    crashed = f" &middot; {crashes} crash{'es' if crashes != 1 else ''}, resumed" if crashes else ""
    subject = " ".join(str(d.input).split()) or "(no input)"
    title = f"{f.cut(subject, 70)} \u00b7 {d.agent_id} \u00b7 delite {d.id}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="delite {_e(export.delite_version)} ({_e(export.format)})">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body><main>
<h1>{_e(d.id)} {badge}</h1>
<div class="sub">agent {_e(d.agent_id)} &middot; models {_e(", ".join(d.models) or "-")} &middot; created
{_e(f.timestamp(d.created_at))} &middot; updated {_e(f.timestamp(d.updated_at))}{forked}{crashed}</div>
<div class="cards">{cards}</div>
<h2>Input</h2><div class="text">{_e(d.input)}</div>
<h2>Answer</h2><div class="text">{_e(d.answer if d.answer is not None else "-")}</div>
{suspension}{error}
<h2 id="timeline">Timeline</h2>{_timeline(export)}
{processes}
<h2>LLM calls</h2>{_llm_table(export)}
<h2>Tool calls</h2>{_tool_table(export.tool_calls)}
<h2>Records</h2>{events}
<footer>Exported by delite {_e(export.delite_version)} in format {_e(export.format)}. Content from models and tools is
shown as text.</footer>
</main></body></html>
"""
