"""The HTML of ``delite serve``: the list, an execution (its timeline, as the HTML export draws it), usage, login.

Every value from a log (and every value a request brings back, such as search text) goes through the HTML
export's escaping: control and invisible characters shown as escapes, then ``html.escape``. The pages carry
no inline script or style: the timeline's bars are SVG rectangles (attributes, not styles), behaviour is in
``static/serve.js``, and the Content-Security-Policy forbids everything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from delite_cli import _format as f
from delite_cli._html import (
    _card,
    _cards,
    _Drawing,
    _e,
    _json,
    _llm_table,
    _status_class,
    _takeover_note,
    _timeline,
    _tool_table,
    takeovers,
)
from delite_cli._serve._query import STATUSES, Filters, Usage, UsageRow

if TYPE_CHECKING:
    from delite.datadir import Event, ExecutionSummary, Export, Page, ToolCall

__all__ = ["error_page", "execution_page", "list_page", "live_fragment", "login_page", "usage_page"]

RECORDS_SHOWN = 300
"""The most records an execution's page lists (the newest); the JSON export has them all."""


def _layout(title: str, body: str, *, csrf: str = "", where: str = "", nav: bool = True) -> str:
    links = (
        '<nav><a href="/">executions</a><a href="/usage">usage</a><a href="/api/openapi.json">API</a>'
        f'<span class="where">{_e(where)}</span></nav>'
        if nav
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="delite-csrf" content="{_e(csrf)}">
<title>{_e(title)} \u00b7 delite</title>
<link rel="stylesheet" href="/static/base.css"><link rel="stylesheet" href="/static/serve.css">
<script src="/static/serve.js" defer></script></head>
<body><main>{links}
{body}
</main></body></html>
"""


def _href(path: str, pairs: list[tuple[str, str]] | None = None) -> str:
    return _e(path + ("?" + urlencode(pairs) if pairs else ""))


def _exec_link(eid: str, text: str | None = None) -> str:
    return f'<a href="/executions/{_e(quote(eid, safe=""))}">{_e(text if text is not None else eid)}</a>'


def _badge(status: str) -> str:
    return f'<span class="badge {_e(_status_class(status))}" data-status="{_e(status)}">{_e(status)}</span>'


# -- the list ---------------------------------------------------------------------------------------------------


def _filters_form(fl: Filters) -> str:
    options = "".join(f'<option value="{s}"{" selected" if s in fl.statuses else ""}>{s}</option>' for s in STATUSES)

    def field(name: str, label: str, value: str | None, hint: str) -> str:
        return (
            f'<label>{label}<input name="{name}" value="{_e(value or "")}" placeholder="{_e(hint)}"'
            f' autocomplete="off"></label>'
        )

    return (
        '<form class="filters" method="get" action="/">'
        + field("q", "search", fl.q, "id, text or metadata")
        + f'<label>status<select name="status" multiple size="3">{options}</select></label>'
        + field("agent", "agent", fl.agent, "agent id")
        + field("meta", "metadata", fl.meta[0] if fl.meta else None, "KEY=VALUE")
        + field("since", "since", fl.since, "2h, 7d, 2026-01-31")
        + field("until", "until", fl.until, "ISO date")
        + field("parent", "parent", fl.parent, "parent id")
        + f'<input type="hidden" name="limit" value="{fl.limit}">'
        + '<button type="submit">filter</button><a class="button" href="/">clear</a></form>'
    )


def _list_row(s: ExecutionSummary, now: float) -> str:
    subject = " ".join(s.input.split()) or "(no input)"
    waiting = f" &middot; waiting for {_e(s.suspend_reason.kind)}" if s.suspend_reason is not None else ""
    parent = f" &middot; sub-agent of {_exec_link(s.parent_id)}" if s.parent_id else ""
    meta = ", ".join(f"{k}={v}" for k, v in s.metadata.items())
    return (
        f'<tr class="execution" data-id="{_e(s.id)}"><td>{_exec_link(s.id)}<div class="note">{_e(f.cut(subject, 90))}'
        f"{waiting}{parent}</div></td><td>{_e(s.agent_id)}</td><td>{_badge(s.status)}</td>"
        f'<td class="num">{s.steps}</td><td class="num">{_e(f.number(s.tokens.total))}</td>'
        f'<td class="num">{_e(f.cost(s.cost))}</td><td><small>{_e(f.cut(meta, 60))}</small></td>'
        f'<td class="num" title="{_e(f.timestamp(s.created_at))}">{_e(f.age(s.created_at, now))}</td></tr>'
    )


def list_page(page: Page, fl: Filters, *, now: float, csrf: str, where: str) -> str:
    """The executions page: filters, search, one page of the listing and paging links."""
    rows = "".join(_list_row(s, now) for s in page.items)
    head = (
        "<tr><th>execution</th><th>agent</th><th>status</th><th class='num'>steps</th><th class='num'>tokens</th>"
        "<th class='num'>cost</th><th>metadata</th><th class='num'>age</th></tr>"
    )
    first, last = page.offset + 1, page.offset + len(page.items)
    shown = f"{first}-{last} of {page.total}" if page.items else f"none of {page.total}"
    links = []
    if page.offset > 0:
        links.append(f'<a rel="prev" href="{_href("/", fl.query(offset=max(page.offset - fl.limit, 0)))}">newer</a>')
    if page.next_offset is not None:
        links.append(f'<a rel="next" href="{_href("/", fl.query(offset=page.next_offset))}">older</a>')
    table = f'<table class="executions">{head}{rows}</table>' if rows else '<p class="sub">No executions match.</p>'
    body = (
        f'<h1>Executions</h1>{_filters_form(fl)}<div class="sub" id="shown">{_e(shown)}'
        f' &middot; <a href="{_href("/usage", fl.query(offset=0, limit=None))}">usage of these</a></div>'
        f'{table}<div class="paging">{" ".join(links)}</div>'
    )
    return _layout("executions", body, csrf=csrf, where=where)


# -- one execution ------------------------------------------------------------------------------------------------

_W = 1000.0  # the SVG tracks' width in user units; the CSS stretches them to the column


def _rect(kind: str, left: float, width: float, title: str) -> str:
    x = min(max(left, 0.0), 100.0) * _W / 100
    w = max(min(width, 100.0) * _W / 100, 3.0)
    return f'<rect class="{kind}" x="{x:.1f}" y="3" width="{w:.1f}" height="16"><title>{_e(title)}</title></rect>'


def _track(rects: list[str]) -> str:
    return f'<svg class="track" viewBox="0 0 {_W:.0f} 22" preserveAspectRatio="none">{"".join(rects)}</svg>'


_SERVE = _Drawing(
    bar=_rect,
    track=_track,
    pause_track=lambda kind: _track([_rect("paused", 0, 100, kind)]),
    pause_class="row pause",
    legend=(
        '<div class="legend"><span><i class="model"></i>model call</span><span><i class="tool"></i>tool call</span>'
        '<span><i class="error"></i>failed or rejected</span><span><i class="paused"></i>paused</span>'
        '<span><i class="crash"></i>a process crashed, another resumed</span></div>'
    ),
)
"""The export's timeline drawn with SVG rectangles styled by class (``static/serve.css``), no inline style."""


def _call_box(tc: ToolCall | None, call_id: str) -> str:
    if tc is None:
        return f'<div class="call"><b>{_e(call_id)}</b> <span class="note">(a sub-agent\'s call)</span></div>'
    return f'<div class="call"><b>{_e(tc.name)}</b> <code>{_e(tc.call_id)}</code><pre>{_json(tc.arguments)}</pre></div>'


def _action_form(action: str, fields: str, button: str, *, cls: str = "") -> str:
    return (
        f'<form class="action {cls}" data-action="{_e(action)}">{fields}'
        f'<button type="submit">{_e(button)}</button></form>'
    )


def _actions(export: Export, pending: list[str], *, has_agent: bool, advancing: bool, failure: str | None) -> str:
    d = export.execution
    calls = {t.call_id: t for t in export.tool_calls}
    reason = d.suspend_reason
    parts: list[str] = []
    if advancing:
        parts.append('<p class="advancing">This server is advancing the execution now.</p>')
    if failure:
        parts.append(f'<p class="error">The last advance by this server failed: {_e(failure)}</p>')
    if reason is not None and d.status.startswith(("waiting", "suspended")):
        kind = reason.kind
        parts.append(f'<h2>Waiting for {_e(kind.replace("_", " "))}</h2><div class="text">{_e(str(reason))}</div>')
        if kind in ("approval", "contract"):
            for cid in pending:
                box = _call_box(calls.get(cid), cid)
                hidden = f'<input type="hidden" name="call" value="{_e(cid)}">'
                reason_field = '<input name="reason" placeholder="reason (optional)" autocomplete="off">'
                parts.append(
                    f'<div class="pending">{box}<div class="buttons">'
                    + _action_form("approve", hidden + reason_field, "approve", cls="approve")
                    + _action_form("reject", hidden + reason_field, "reject", cls="reject")
                    + "</div></div>"
                )
        elif kind == "human_input":
            question = next((t.question for t in d.pending_calls if t.question), None) or reason.question or ""
            parts.append(
                f'<div class="pending"><p class="question">{_e(question)}</p>'
                + _action_form("input", '<textarea name="text" rows="3" required></textarea>', "answer")
                + "</div>"
            )
        elif kind == "client_tool":
            fields = "".join(
                f'<label>{_e(cid)} result (JSON)<textarea name="result:{_e(cid)}" rows="2" required></textarea></label>'
                + _call_box(calls.get(cid), cid)
                for cid in pending
            )
            parts.append(f'<div class="pending">{_action_form("tool-results", fields, "submit results")}</div>')
        elif kind == "in_doubt":
            for cid in pending:
                hidden = f'<input type="hidden" name="call_id" value="{_e(cid)}">'
                parts.append(
                    f'<div class="pending">{_call_box(calls.get(cid), cid)}<div class="buttons">'
                    + _action_form(
                        "resolve", hidden + '<input name="result" placeholder="result as JSON" required>', "it did act"
                    )
                    + _action_form(
                        "resolve", hidden + '<input name="error" placeholder="error text" required>', "it failed"
                    )
                    + _action_form("resolve", hidden + '<input type="hidden" name="rerun" value="1">', "run it again")
                    + "</div></div>"
                )
        if not has_agent and kind in ("approval", "contract", "human_input", "client_tool", "in_doubt"):
            parts.append(
                '<p class="note who">This server records answers only (it was started without --agent). The execution '
                "then waits until your application resumes it (<code>agent.resume(id)</code>), a worker takes it on, "
                f"or someone runs <code>delite resume {_e(d.id)} --agent MODULE:FACTORY</code>.</p>"
            )
    ops: list[str] = []
    terminal = d.status in ("completed", "cancelled")
    if has_agent and not terminal and not advancing and d.status in ("failed", "running", "suspended"):
        ops.append(_action_form("resume", "", "resume"))
    if not terminal and d.status not in ("unreadable", "empty"):
        ops.append(
            _action_form(
                "cancel",
                '<input name="reason" placeholder="reason" value="cancelled by operator">',
                "cancel",
                cls="danger",
            )
        )
    if d.status not in ("unreadable", "empty"):
        ops.append(
            _action_form(
                "fork",
                f'<input name="at" type="number" min="0" max="{d.steps}" value="{d.steps}" required>'
                '<input name="id" placeholder="new id (optional)" autocomplete="off">',
                "fork at step",
            )
        )
    parts.append(f'<div class="ops">{"".join(ops)}</div>')
    return "".join(parts)


def live_fragment(
    export: Export,
    *,
    children: list[ExecutionSummary],
    pending: list[str],
    has_agent: bool,
    advancing: bool,
    failure: str | None,
) -> str:
    """The parts of an execution's page that change as it runs (replaced in place by the page's script)."""
    d = export.execution
    cards = _cards(export, _card(str(d.resumes), "resumes"))
    marks = {t.resumed.seq: _takeover_note(t) for t in takeovers(export.events)}
    crashes = "".join(marks.values())
    sub = ""
    if children:
        items = "".join(
            f"<li>{_exec_link(c.id)} {_badge(c.status)} <span class='note'>{_e(c.agent_id)} &middot; "
            f"call {_e(c.parent_call or '-')} &middot; {_e(f.cost(c.cost))}</span></li>"
            for c in children
        )
        sub = f'<h2>Sub-agents</h2><ul class="children">{items}</ul>'
    events = export.events[-RECORDS_SHOWN:]
    skipped = len(export.events) - len(events)
    more = f'<p class="note">{skipped} earlier records are in the JSON export.</p>' if skipped else ""
    records = "".join(_record(e, marks) for e in events)
    error = f'<h2>Error</h2><div class="text error">{_e(d.error)}</div>' if d.error else ""
    return (
        f'<div id="live" data-status="{_e(d.status)}" data-records="{len(export.events)}">'
        f'<div class="status-line">{_badge(d.status)} <span class="note">updated {_e(f.timestamp(d.updated_at))}'
        f"</span></div>"
        f'<div class="cards">{cards}</div>'
        f'<section id="actions">{_actions(export, pending, has_agent=has_agent, advancing=advancing, failure=failure)}'
        "</section>"
        f'<h2>Answer</h2><div class="text answer">{_e(d.answer if d.answer is not None else "-")}</div>{error}'
        f'<h2 id="timeline">Timeline</h2>{_timeline(export, _SERVE)}'
        f"{'<h2>Crashes and resumes</h2>' + crashes if crashes else ''}{sub}"
        f"<h2>LLM calls</h2>{_llm_table(export)}<h2>Tool calls</h2>{_tool_table(export.tool_calls)}"
        f'<h2>Records</h2>{more}<div class="records">{records}</div></div>'
    )


def _record(e: Event, marks: dict[int, str]) -> str:
    return (
        f'{marks.get(e.seq, "")}<details data-seq="{e.seq}"><summary>#{e.seq} {_e(e.kind)} &middot; '
        f"{_e(f.timestamp(e.at))}</summary><pre>{_json(e.record)}</pre></details>"
    )


def execution_page(export: Export, *, live: str, csrf: str, where: str) -> str:
    """An execution's page: what does not change, and the live fragment."""
    d = export.execution
    links = []
    if d.parent_id:
        links.append(f"sub-agent of {_exec_link(d.parent_id)} (call {_e(d.parent_call or '-')})")
    if d.forked_from:
        links.append(f"forked from {_exec_link(d.forked_from)} at step {d.fork_step}")
    subject = " ".join(str(d.input).split()) or "(no input)"
    body = (
        f'<article class="execution" data-id="{_e(d.id)}"><h1>{_e(d.id)}</h1>'
        f'<div class="sub">agent {_e(d.agent_id)} &middot; models {_e(", ".join(d.models) or "-")} &middot; created '
        f"{_e(f.timestamp(d.created_at))}{' &middot; ' if links else ''}{' &middot; '.join(links)}"
        f' &middot; <a href="/api/executions/{_e(quote(d.id, safe=""))}/export">JSON export</a></div>'
        f'<div id="flash" role="status"></div>'
        f'<h2>Input</h2><div class="text input">{_e(d.input)}</div>'
        f'<div class="metadata note">metadata: {_e(f.json_text(d.metadata, indent=0))}</div>'
        f"{live}</article>"
    )
    return _layout(f.cut(subject, 60), body, csrf=csrf, where=where)


# -- usage, login, errors -----------------------------------------------------------------------------------------


def _usage_table(label: str, rows: list[UsageRow], total: UsageRow) -> str:
    def row(r: UsageRow, tag: str = "td") -> str:
        unpriced = f" (+{r.unpriced} unpriced)" if r.unpriced else ""
        return (
            f"<tr><{tag}>{_e(r.key)}</{tag}><td class='num'>{r.executions}</td><td class='num'>{r.steps}</td>"
            f"<td class='num'>{r.llm_calls}</td><td class='num'>{r.tool_calls}</td>"
            f"<td class='num'>{_e(f.number(r.input_tokens))}</td><td class='num'>{_e(f.number(r.output_tokens))}</td>"
            f"<td class='num'>{_e(f.number(r.total_tokens))}</td>"
            f"<td class='num'>${_e(str(r.cost))}{_e(unpriced)}</td></tr>"
        )

    head = (
        f"<tr><th>{label}</th><th class='num'>executions</th><th class='num'>steps</th><th class='num'>LLM calls</th>"
        "<th class='num'>tool calls</th><th class='num'>input tok</th><th class='num'>output tok</th>"
        "<th class='num'>tokens</th><th class='num'>cost</th></tr>"
    )
    return f"<table class='usage'>{head}{''.join(row(r) for r in rows)}{row(total, 'th')}</table>"


def usage_page(u: Usage, fl: Filters, *, csrf: str, where: str) -> str:
    """Usage and cost per agent and per day."""
    form = _filters_form(fl).replace('action="/"', 'action="/usage"')
    body = (
        f"<h1>Usage and cost</h1>{form}"
        f"<h2>Per agent</h2>{_usage_table('agent', u.agents, u.total)}"
        f"<h2>Per day (UTC)</h2>{_usage_table('day', u.days, u.total)}"
        "<p class='note'>Costs are as the providers reported them; executions with a call of unknown price are "
        "counted as unpriced, never guessed.</p>"
    )
    return _layout("usage", body, csrf=csrf, where=where)


def login_page(*, failed: bool) -> str:
    """Asks for the token the server printed when it started."""
    bad = '<p class="error">That token is not right.</p>' if failed else ""
    body = (
        f"<h1>delite serve</h1>{bad}<p>Give the token printed by <code>delite serve</code> when it started "
        "(or the value of DELITE_SERVE_TOKEN).</p>"
        '<form method="post" action="/login" class="login"><input type="password" name="token" required '
        'autocomplete="current-password"><button type="submit">open</button></form>'
    )
    return _layout("log in", body, nav=False)


def error_page(status: int, kind: str, message: str, *, csrf: str = "", where: str = "") -> str:
    """An error, shown as text."""
    body = f'<h1>{status}: {_e(kind)}</h1><div class="text error">{_e(message)}</div><p><a href="/">executions</a></p>'
    return _layout(f"{status} {kind}", body, csrf=csrf, where=where)


def as_pairs(items: Any) -> list[tuple[str, str]]:
    """A query string's pairs, as lists of tuples."""
    return [(str(k), str(v)) for k, v in items]
