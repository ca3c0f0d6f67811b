"""The operations a person (or a team's app) performs through ``delite serve``: the CLI's, with its race semantics.

Each answer (a decision, a human's text, client tool results, an in-doubt resolution) is recorded by the
engine's own operation (``Agent.decide``, ``submit_input``, ``submit_tool_results``, ``resolve``) with
``advance=False``: under the execution's claim, one answer per call, so of two people acting at once one wins
and the other gets the engine's :class:`~delite.errors.ExecutionStateError` (409), with nothing recorded.
Then, when the server was given the application's agent (``--agent``) and the execution waits on nobody
any more, the agent advances it in a background thread, exactly as ``agent.resume(id)`` would; the page
follows it live. Without an agent the answer is recorded and the execution waits for whoever runs the
application (``agent.resume(id)``, a worker, or ``delite resume ID --agent MODULE:FACTORY``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from delite.errors import DeliteError, ExecutionAlreadyClaimedError, UsageError
from delite.state._ready import ANSWERABLE, advanceable, answered, unanswered

if TYPE_CHECKING:
    from delite import Agent, Response
    from delite_cli._target import Target

__all__ = ["NO_AGENT_NOTE", "Operator"]

NO_AGENT_NOTE = (
    "recorded; this server has no agent (--agent), so the execution waits until your application resumes it "
    "(agent.resume(id)), a worker takes it on, or someone runs: delite resume {id} --agent MODULE:FACTORY"
)


# How long a background advance keeps trying while another claim is in the way (see Operator._resume).
_CLAIM_PATIENCE = 30.0


class Operator:
    """Performs the operations on one store: records answers, and advances executions when it has the agent."""

    def __init__(self, target: Target, agent: Agent | None) -> None:
        """Act on ``target``; ``agent`` (the application's, from ``--agent``) advances executions when given."""
        self.target = target
        self.agent = agent
        self._recorder = agent if agent is not None else target.agent()
        self._lock = threading.Lock()
        self._advancing: dict[str, threading.Thread] = {}
        self.failures: dict[str, str] = {}
        """The last error of a background advance, per execution (shown on its page)."""

    def close(self) -> None:
        """Wait briefly for background advances, then close the agents this operator opened."""
        with self._lock:
            threads = list(self._advancing.values())
        for t in threads:
            t.join(timeout=5)
        if self.agent is None:
            self._recorder.close()

    # -- advancing ---------------------------------------------------------------------------------------------

    def advancing(self, execution_id: str) -> bool:
        """Whether this server is advancing the execution right now."""
        with self._lock:
            t = self._advancing.get(execution_id)
            return t is not None and t.is_alive()

    def _advance(self, execution_id: str, *, model: str | None = None) -> None:
        agent = self.agent
        assert agent is not None
        try:
            self._resume(agent, execution_id, model)
            self.failures.pop(execution_id, None)
        except DeliteError as e:  # shown on the page; the log says what happened
            self.failures[execution_id] = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - a tool's or model's failure must not kill the server
            self.failures[execution_id] = f"{type(e).__name__}: {e}"
            print(f"delite serve: advancing {execution_id} failed: {e!r}", file=sys.stderr)
        finally:
            with self._lock:
                self._advancing.pop(execution_id, None)

    def _resume(self, agent: Agent, execution_id: str, model: str | None) -> None:
        """Resume; while another claim is in the way and the execution still waits on nobody, try again.

        A claim in the way is most often brief: a person whose answer lost (its refusal takes the claim for an
        instant), or a second server recording an answer. Giving up then would leave an answered execution
        waiting for nobody; when the claimant was really advancing it, it waits on someone again by the time
        the claim is let go, and this stops.
        """
        deadline = time.monotonic() + _CLAIM_PATIENCE
        while True:
            try:
                agent.resume(execution_id, model=model)
            except ExecutionAlreadyClaimedError as e:
                if (
                    e.execution_id != execution_id
                    or time.monotonic() >= deadline
                    or not self._waits_on_nobody(execution_id)
                ):
                    raise
                time.sleep(0.05)
            else:
                return

    def _start(self, execution_id: str, *, model: str | None = None) -> bool:
        with self._lock:
            running = self._advancing.get(execution_id)
            if running is not None and running.is_alive():
                return True
            t = threading.Thread(
                target=self._advance, args=(execution_id,), kwargs={"model": model}, daemon=True, name="delite-serve"
            )
            self._advancing[execution_id] = t
            t.start()
        return True

    def _waits_on_nobody(self, execution_id: str) -> bool:
        """Whether every answer the execution waits for is in, its sub-agents' calls (``child/call``) included."""
        state = self.target.data.execution(execution_id).state
        if advanceable(state):
            return True
        reason = state.suspend_reason
        if state.dormant or not state.status.is_suspended or reason is None or reason.kind not in ANSWERABLE:
            return False
        ids = reason.confirmation_ids
        if not ids or unanswered(state):
            return False
        for cid in ids:
            if "/" in cid:  # a sub-agent's call, answered in the sub-agent's log
                child, call = cid.rsplit("/", 1)
                cs = self.target.data.execution(child).state.calls.get(call)
                if cs is None or not answered(cs, reason.kind):
                    return False
        return True

    def _after_answer(self, execution_id: str) -> bool:
        """Advance the execution in the background if there is an agent and it waits on nobody now."""
        if self.agent is None or not self._waits_on_nobody(execution_id):
            return False
        return self._start(execution_id)

    def _result(self, response: Response, action: str, *, advancing: bool, **extra: Any) -> dict[str, Any]:
        eid = response.execution_id
        note = None
        if not response.status.is_terminal and not advancing:
            if self.agent is None:
                note = NO_AGENT_NOTE.format(id=eid)
            elif response.status.is_suspended:
                note = "recorded; the execution still waits on other answers"
        return {
            "execution_id": eid,
            "action": action,
            "status": response.status.value,
            "advancing": advancing,
            "note": note,
            **extra,
        }

    # -- the operations ----------------------------------------------------------------------------------------

    def pending_decisions(self, execution_id: str) -> list[str]:
        """The calls that still wait for a decision; all the listed ones when none is left (the engine says why)."""
        view = self.target.data.execution(execution_id)
        waiting = view.detail.suspend_reason
        listed = waiting.confirmation_ids if waiting is not None and waiting.kind in ("approval", "contract") else []
        decided = {t.call_id for t in view.tool_calls if t.decision is not None}
        return [c for c in listed if c not in decided] or list(listed)

    def decide(
        self, execution_id: str, calls: list[str] | None, *, approve: bool, every: bool, reason: str | None
    ) -> dict[str, Any]:
        """Approve or reject calls: named ones, every pending one (``every``), or the only pending one."""
        if every and calls:
            raise UsageError("give calls or all, not both")
        ids = list(calls or [])
        if not ids:
            pending = self.pending_decisions(execution_id)
            if len(pending) > 1 and not every:
                raise UsageError(
                    f"execution {execution_id} waits on {len(pending)} calls ({', '.join(pending)}); name them or "
                    "give all"
                )
            ids = pending
        response = self._recorder.decide(
            execution_id, dict.fromkeys(ids, approve), reasons=dict.fromkeys(ids, reason), advance=False
        )
        verb = "approved" if approve else "rejected"
        return self._result(response, f"{verb} {', '.join(ids)}", advancing=self._after_answer(execution_id), calls=ids)

    def submit_input(self, execution_id: str, text: str) -> dict[str, Any]:
        """Answer the question the execution waits on."""
        response = self._recorder.submit_input(execution_id, text, advance=False)
        return self._result(response, "answered", advancing=self._after_answer(execution_id))

    def submit_tool_results(self, execution_id: str, results: Mapping[str, Any]) -> dict[str, Any]:
        """Give the results of pending client tool calls."""
        response = self._recorder.submit_tool_results(execution_id, dict(results), advance=False)
        return self._result(response, f"submitted {', '.join(results)}", advancing=self._after_answer(execution_id))

    def resolve(
        self, execution_id: str, call_id: str, *, result: Any, error: str | None, rerun: bool
    ) -> dict[str, Any]:
        """Settle an in-doubt call: its result, its error, or run it again."""
        response = self._recorder.resolve(execution_id, call_id, result=result, error=error, rerun=rerun, advance=False)
        action = f"{'rerun requested for' if rerun else 'resolved'} {call_id}"
        return self._result(response, action, advancing=self._after_answer(execution_id))

    def resume(self, execution_id: str, *, model: str | None) -> dict[str, Any]:
        """Continue the execution with the application's agent, in the background."""
        if self.agent is None:
            raise UsageError(
                "resuming runs the model and tools, so it needs your agent: start delite serve with "
                "--agent MODULE:FACTORY (or DELITE_AGENT)"
            )
        self.target.data.execution(execution_id)  # not found: 404 now
        self._start(execution_id, model=model)
        status = self.target.data.execution(execution_id).detail.status
        return {"execution_id": execution_id, "action": "resume", "status": status, "advancing": True, "note": None}

    def cancel(self, execution_id: str, *, reason: str) -> dict[str, Any]:
        """Cancel the execution (at its next step boundary if a process is advancing it)."""
        with self.target.agent() as agent:
            response = agent.cancel(execution_id, reason=reason)
        pending = not response.status.is_terminal
        note = "cancel requested: the process advancing it stops at its next step boundary" if pending else None
        return {
            "execution_id": execution_id,
            "action": "cancel",
            "status": response.status.value,
            "advancing": False,
            "cancel_pending": pending,
            "note": note,
        }

    def fork(self, execution_id: str, *, at: int, new_id: str | None) -> dict[str, Any]:
        """Start a new execution from the first ``at`` steps of this one."""
        eid = self.target.data.fork(execution_id, at=at, new_id=new_id)
        return {
            "execution_id": eid,
            "action": "fork",
            "forked_from": execution_id,
            "fork_step": at,
            "status": self.target.data.execution(eid).detail.status,
            "advancing": False,
            "note": f"forked; resume it to continue: delite resume {eid} --agent MODULE:FACTORY",
        }
