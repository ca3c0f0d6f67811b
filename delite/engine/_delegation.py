"""Sub-agents: a tool that runs another agent, with the child execution linked to the parent's call.

Inside a tool, ``delegate(agent, text)`` (or a plain ``agent.run(text)`` with no ``execution_id``) runs the
other agent as a *sub-agent*:

* its execution id is derived from the parent's call (``<parent>:<call id>``, then ``...:2``, ``...:3`` for
  further delegations from the same call, or ``...:<key>`` with ``key=``), so when the parent's call runs
  again after a crash it continues the same child, whose completed steps are not redone;
* it records its parent (``parent_id``, ``parent_call``) and its depth, which the read API and the
  ``delite`` command show; ``max_delegation_depth`` bounds the depth;
* it stops when the parent (or any execution above it) is cancelled;
* when it suspends, the parent suspends too: the parent's call waits on the child, and the parent's
  suspension lists the child's pending calls with ids ``<child id>/<call id>``. Answer them through the
  parent (``parent_agent.submit_approval(parent_id, ...)``, ``rt.signal(parent_id, ...)``): the answer is
  recorded in the child's log and the parent resumes, running the tool again, which continues the child.
  Answering the child directly also works; then resume the parent (a :class:`~delite.Runtime` does it).

A delegating tool runs again when its parent resumes after the child was answered, so keep side effects
out of the tool body around ``delegate`` (put them in the child's tools, where they are recorded once).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from delite.engine._effects import Steps
from delite.engine._operations import Link
from delite.engine._twins import entry, twin
from delite.errors import DelegationDepthExceededError, UsageError
from delite.store._ids import plain_sub_agent_id, sub_agent_id, validate_execution_id
from delite.tools._base import active_call

if TYPE_CHECKING:
    from delite.engine._agent import Agent
    from delite.engine._response import Response

__all__ = ["adelegate", "delegate", "link_for"]


def link_for(agent: Agent, key: str | None = None) -> Link | None:
    """The link of a sub-agent run started now, inside a tool; None outside one.

    Raises:
        DelegationDepthExceededError: the child would be deeper than the parent's or the child agent's
            ``max_delegation_depth`` allows.
    """
    ctx = active_call()
    if ctx is None:
        return None
    depth = ctx.depth + 1
    limit = min(ctx.max_depth, agent.max_delegation_depth)
    if depth > limit:
        raise DelegationDepthExceededError(depth, limit)
    if key is not None:
        if not isinstance(key, str) or not key or "/" in key:
            raise UsageError("a delegation key must be a non-empty string without '/'")
        child = f"{plain_sub_agent_id(ctx.execution_id, ctx.call_id)}:{key}"
    else:
        child = plain_sub_agent_id(ctx.execution_id, ctx.call_id, len(ctx.delegations) + 1)
    child = sub_agent_id(child)  # deep trees of long ids: a stable digest instead
    validate_execution_id(child)
    ctx.delegations.append(child)
    return Link(
        child_id=child,
        parent_id=ctx.execution_id,
        parent_call=ctx.call_id,
        depth=depth,
        lineage=ctx.lineage,
        max_depth=limit,
    )


def _delegate(
    agent: Agent,
    text: str,
    *,
    key: str | None = None,
    history: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    model: str | None = None,
    output_type: Any = None,
) -> Steps[Response]:
    """Run ``agent`` on ``text`` as a sub-agent of the tool call running now, and return its response.

    Call it inside a tool (``adelegate`` in an ``async def`` tool: the child runs on the event loop). If the
    child suspends, this raises :class:`~delite.errors.DelegationSuspended`, which the engine turns into the
    parent's suspension (see the module docstring); leave it uncaught.

    Args:
        agent: the agent to run (its own tools, prompt, provider).
        text: the child's input.
        key: names this delegation among several from the same call (default: their order).
        history: earlier chat turns for the child.
        metadata: JSON stored with the child execution.
        model: a model override for the child's calls.
        output_type: validate the child's answer as this type (``response.output``).

    Raises:
        DelegationDepthExceededError: the child would be too deep.
        UsageError: not inside a tool.
    """
    link = link_for(agent, key)
    if link is None:
        raise UsageError("delegate() runs a sub-agent from inside a tool; outside one, call agent.run()")
    spec = agent._output(output_type)  # noqa: SLF001 - the engine's own operation
    return agent._run_op(  # noqa: SLF001
        text,
        execution_id=None,
        history=history,
        metadata=metadata,
        model=model,
        idempotency_key=None,
        output=spec,
        link=link,
    )


delegate = entry(_delegate)
adelegate = twin(_delegate)
