"""``delite worker``: a process that keeps taking on the runnable executions of the application's agents.

It builds each ``--agent MODULE:FACTORY`` (as ``delite resume`` does), hosts them in a :class:`~delite.Runtime`
and calls :meth:`~delite.Runtime.work` until SIGTERM or SIGINT: the first one drains (nothing new is taken,
each run stops at its next step boundary and lets go of its execution), a second one exits at once (the
claims die with the process; the runs are continued by other workers as after a crash).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from delite_cli import _format as f
from delite_cli._errors import CliError
from delite_cli._operate import load_agent

if TYPE_CHECKING:
    from delite import Agent
    from delite.runtime import WorkEvent, WorkReport
    from delite_cli._target import Target

__all__ = ["DRAINED", "FORCED", "LEFT", "run_worker"]

DRAINED = 0
"""Exit code: stopped, and every execution taken reached an end or a suspension (nothing left for others)."""
LEFT = 3
"""Exit code: drained, and some executions were stopped at a step boundary, ``running``, for other workers."""
FORCED = 4
"""Exit code: a second signal ended the process during the drain (runs in flight are continued elsewhere)."""


class _Printer:
    """Prints the worker's events, one line each (a JSON object with ``--json``), from any thread."""

    def __init__(self, *, json_: bool) -> None:
        self.json = json_
        self.lock = threading.Lock()

    def line(self, payload: dict[str, Any], human: str, style: str | None = None) -> None:
        with self.lock:
            if self.json:
                click.echo(json.dumps(payload, ensure_ascii=True, separators=(",", ":")))
            else:
                f.console().print(f.text(f"{time.strftime('%H:%M:%S')} {human}", style, newlines=False))
            sys.stdout.flush()

    def event(self, e: WorkEvent) -> None:
        payload = {
            "event": e.event,
            "execution_id": e.execution_id,
            "agent_id": e.agent_id,
            "status": e.status,
            "error": e.error,
            "at": e.at,
        }
        human = f"{e.event} {e.execution_id} (agent {e.agent_id})"
        if e.error:
            human += f": {e.error}"
        self.line(payload, human, f.status_style(e.status) if e.status else None)


def _load(specs: tuple[str, ...], target: Target) -> list[Agent]:
    agents: list[Agent] = []
    seen: dict[str, str] = {}
    for spec in specs:
        agent = load_agent(spec, target)
        if agent.agent_id in seen:
            raise CliError(
                f"--agent {spec} and --agent {seen[agent.agent_id]} both build agent_id {agent.agent_id!r}: "
                "each agent a worker serves needs an id of its own",
                kind="UsageError",
                exit_code=2,
            )
        seen[agent.agent_id] = spec
        agents.append(agent)
    return agents


def _summary(report: WorkReport, code: int) -> tuple[dict[str, Any], str]:
    counts = {
        "taken": report.taken,
        "completed": report.completed,
        "suspended": report.suspended,
        "failed": report.failed,
        "cancelled": report.cancelled,
        "left": report.left,
        "errors": report.errors,
    }
    human = (
        f"worker stopped: took {f.plural(report.taken, 'execution')}; {report.completed} completed, "
        f"{report.suspended} suspended, {report.failed} failed, {report.cancelled} cancelled, "
        f"{report.errors} could not be advanced; "
        + (
            f"{report.left} left running at a step boundary for other workers"
            if report.left
            else "nothing left running"
        )
    )
    return {"event": "stopped", **counts, "exit_code": code}, human


def run_worker(target: Target, specs: tuple[str, ...], *, concurrency: int, poll: float, json_: bool) -> int:
    """Serve the agents until a signal; the exit code (:data:`DRAINED`, :data:`LEFT` or :data:`FORCED`)."""
    from delite import Runtime

    if not specs:
        raise CliError("give at least one --agent MODULE:FACTORY to serve", kind="UsageError", exit_code=2)
    if target.directory is not None:  # a file in the way is no passing fault: said once, not retried every poll
        from delite.store._layout import Layout
        from delite.store._listing import has_executions

        has_executions(Layout(target.directory))
    agents = _load(specs, target)
    printer = _Printer(json_=json_)
    rt = Runtime(store=agents[0].store, workers=max(8, 2 * concurrency), recover=False)
    for agent in agents:
        rt.join(agent)
    report_holder: dict[str, WorkReport] = {}
    # The handler only queues the signal (SimpleQueue.put is reentrant): it runs in the main thread wherever that
    # thread was, maybe inside the printer's lock or a write to stdout, so the printing and the draining are
    # done by a thread of their own.
    received: queue.SimpleQueue[int] = queue.SimpleQueue()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.put(signum)

    def handle_signals() -> None:
        name = signal.Signals(received.get()).name
        printer.line(
            {"event": "draining", "signal": name},
            f"{name}: draining (nothing new is taken; runs stop at their next step boundary; again to exit now)",
            "yellow",
        )
        rt.stop_working()
        name = signal.Signals(received.get()).name
        printer.line({"event": "forced", "signal": name, "exit_code": FORCED}, f"{name} again: exiting now", "red")
        os._exit(FORCED)

    threading.Thread(target=handle_signals, name="delite-worker-signals", daemon=True).start()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    ids = [a.agent_id for a in agents]
    printer.line(
        {
            "event": "started",
            "pid": os.getpid(),
            "agents": ids,
            "concurrency": concurrency,
            "poll": poll,
            "store": target.where,
        },
        f"worker {os.getpid()} serving {', '.join(ids)} on {target.where} "
        f"(concurrency {concurrency}, poll {poll:g} s); SIGTERM or Ctrl-C drains",
        "bold",
    )
    try:
        report_holder["report"] = rt.work(*agents, concurrency=concurrency, poll=poll, on_event=printer.event)
    finally:
        rt.close()
        for agent in agents:
            agent.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    report = report_holder["report"]
    code = DRAINED if report.clean else LEFT
    payload, human = _summary(report, code)
    printer.line(payload, human, "green" if code == DRAINED else "yellow")
    return code
