"""Sub-agents: a tool runs another agent; the child is linked, resumable, cancellable and its pauses pause the parent."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from _stores import log_size, store_at

from delite import Agent, DataDir, ScriptedProvider, Status, adelegate, current_call, delegate, tool
from delite.errors import DelegationDepthExceededError, InvalidToolResultError, UsageError
from delite.log.records import ChildSuspended, ExecutionCancelled, ToolFinished, ToolStarted
from delite.providers import call


@pytest.fixture
def data_dir(any_data_dir: Any) -> Any:
    """Every test here runs on the file store and on PostgreSQL (the files_only ones on files alone)."""
    return any_data_dir


def last_tool(messages: list[dict[str, Any]]) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "tool")


class Team:
    """A parent agent whose tool ``ask`` delegates to a child agent with a gated tool ``transfer``."""

    def __init__(self, data_dir: Path, *, child_script: list[Any] | None = None, parent_tools: Any = None) -> None:
        self.data_dir = data_dir
        self.ran: list[str] = []
        self.asked: list[int] = []
        ran = self.ran

        @tool(requires_confirmation=True)
        def transfer(amount: int) -> str:
            """Move money (a human approves it)."""
            ran.append(f"transfer {amount} {current_call().idempotency_key}")
            return f"moved {amount}"

        @tool(target="client")
        def read_cell(cell: str) -> str:
            """The user's spreadsheet."""
            raise AssertionError

        self.child_tools = [transfer, read_cell]
        self.child_script = child_script or [call("transfer", amount=5), lambda m: "child: " + last_tool(m)]
        team = self

        @tool
        def ask(task: str) -> str:
            """Delegate a task to the child agent."""
            team.asked.append(current_call().attempt)
            return delegate(team.child(), task).answer or ""

        self.parent_tools = parent_tools or [ask]

    def child(self) -> Agent:
        return Agent(
            self.data_dir, agent_id="child", provider=ScriptedProvider(self.child_script), tools=self.child_tools
        )

    def parent(self) -> Agent:
        script = ScriptedProvider([call("ask", task="pay 5"), lambda m: "parent: " + last_tool(m)])
        return Agent(self.data_dir, agent_id="parent", provider=script, tools=self.parent_tools)


def test_the_child_is_linked_to_the_parents_call_and_listed(data_dir: Path) -> None:
    @tool
    def double(x: int) -> int:
        """Double."""
        return 2 * x

    helper = Agent(
        data_dir, agent_id="helper", provider=ScriptedProvider([call("double", x=4), last_tool]), tools=[double]
    )

    @tool
    def research(topic: str) -> str:
        """Two sub-agents: one with delegate, one with a plain run."""
        a = delegate(helper, f"first {topic}")
        b = helper.run(f"second {topic}")  # a plain run inside a tool is a sub-agent too
        return f"{a.answer}+{b.answer}"

    parent = Agent(data_dir, provider=ScriptedProvider([call("research", topic="t"), last_tool]), tools=[research])
    r = parent.run("go", execution_id="root")
    assert r.answer == "8+8"
    store = store_at(data_dir)
    assert sorted(store.list_ids()) == ["root", "root:c1.0", "root:c1.0:2"]
    child = helper.get("root:c1.0")
    assert (child.parent_id, child.parent_call, child.depth, child.agent_id) == ("root", "c1.0", 1, "helper")
    assert helper.get("root:c1.0:2").input == "second t"
    data = DataDir(data_dir)
    assert [s.id for s in data.children("root")] == ["root:c1.0", "root:c1.0:2"]
    assert data.list(parent="root").total == 2 and data.list(parent="root:c1.0").total == 0
    assert data.execution("root:c1.0").detail.parent_call == "c1.0"


def test_delegate_outside_a_tool_is_a_usage_error(data_dir: Path) -> None:
    agent = Agent(data_dir, provider=ScriptedProvider(["x"]))
    with pytest.raises(UsageError, match="inside a tool"):
        delegate(agent, "hi")


def test_the_delegation_depth_is_limited(data_dir: Path) -> None:
    depths: list[int] = []
    box: dict[str, Agent] = {}

    @tool
    def recurse(n: int) -> str:
        """Delegate to the same agent again."""
        depths.append(current_call().depth)
        return delegate(box["a"], f"level {n + 1}").answer or ""

    script = ScriptedProvider([call("recurse", n=0), last_tool])
    box["a"] = agent = Agent(data_dir, provider=script, tools=[recurse], max_delegation_depth=2)
    r = agent.run("go", execution_id="d")
    assert depths == [0, 1, 2]
    assert r.answer == "Error: DelegationDepthExceededError: delegation depth 3 exceeds the limit of 2"
    assert store_at(data_dir).list_ids() == ["d", "d:c1.0", "d:c1.0:c1.0"]
    with pytest.raises(UsageError):
        Agent(data_dir, provider=script, max_delegation_depth=-1)
    assert DelegationDepthExceededError(3, 2).http_status == 409


def test_a_childs_suspension_suspends_the_parent_and_is_answered_through_it(data_dir: Path) -> None:
    team = Team(data_dir)
    r = team.parent().run("go", execution_id="p")
    assert r.status is Status.WAITING_APPROVAL and team.ran == []
    assert r.suspend_reason is not None and r.suspend_reason.confirmation_ids == ["p:c1.0/c1.0"]
    assert r.suspend_reason.calls[0].name == "transfer" and r.suspend_reason.calls[0].arguments == {"amount": 5}
    assert team.child().get("p:c1.0").status is Status.WAITING_APPROVAL
    records = store_at(data_dir).read("p").records
    assert [x.child_id for x in records if isinstance(x, ChildSuspended)] == ["p:c1.0"]
    view = DataDir(data_dir).execution("p").detail
    assert [(c.call_id, c.status, c.child_id) for c in view.pending_calls] == [("c1.0", "waiting_child", "p:c1.0")]

    size = log_size(data_dir, "p")
    assert team.parent().resume("p").status is Status.WAITING_APPROVAL  # nothing new: the log is unchanged
    assert log_size(data_dir, "p") == size and team.asked == [1]

    with pytest.raises(InvalidToolResultError):
        team.parent().decide("p", {"p:c1.0/c9.9": True})
    done = team.parent().submit_approval("p", approved=True)
    assert done.answer == "parent: child: moved 5"
    assert team.ran == ["transfer 5 p:c1.0:c1.0"] and team.asked == [1, 2]
    assert team.child().get("p:c1.0").status is Status.COMPLETED


def test_answering_the_child_directly_then_resuming_the_parent(data_dir: Path) -> None:
    team = Team(data_dir)
    team.parent().run("go", execution_id="p")
    assert team.child().submit_approval("p:c1.0", approved=True).answer == "child: moved 5"
    assert team.parent().get("p").status is Status.WAITING_APPROVAL  # the parent is resumed by whoever owns it
    assert team.parent().resume("p").answer == "parent: child: moved 5"
    assert len(team.ran) == 1  # the child's completed work was not redone when the parent's call ran again


def test_rejection_client_results_and_input_route_to_the_child(data_dir: Path) -> None:
    script = [
        call("transfer", amount=7),
        call("read_cell", cell="B2"),
        call("ask_human", question="Which account?"),
        lambda m: "child: " + " / ".join(x["content"] for x in m if x["role"] == "tool"),
    ]
    team = Team(data_dir, child_script=script)
    parent = team.parent
    r = parent().run("go", execution_id="p")
    r = parent().submit_approval("p", approved=False, rejection_reason="no")
    assert r.status is Status.WAITING_CLIENT_TOOL and r.suspend_reason is not None
    assert r.suspend_reason.confirmation_ids == ["p:c1.0/c2.0"]
    r = parent().submit_tool_results("p", {"p:c1.0/c2.0": "42"})
    assert r.status is Status.WAITING_HUMAN_INPUT and r.suspend_reason is not None
    assert r.suspend_reason.question == "Which account?"
    done = parent().submit_input("p", "savings")
    assert done.answer == "parent: child: Error: the call was rejected by a human: no / 42 / savings"
    assert team.ran == []


def test_cancelling_a_waiting_parent_cancels_the_child(data_dir: Path) -> None:
    team = Team(data_dir)
    team.parent().run("go", execution_id="p")
    assert team.parent().cancel("p").status is Status.CANCELLED
    assert team.child().get("p:c1.0").status is Status.CANCELLED


def test_a_running_child_stops_when_its_parent_is_cancelled(data_dir: Path) -> None:
    box: dict[str, Any] = {}
    steps: list[int] = []

    @tool
    def work(i: int) -> str:
        """A child step; the second one has the parent cancelled from another thread."""
        steps.append(i)
        if i == 1:
            t = threading.Thread(target=box["parent"].cancel, args=("p",))
            t.start()
            t.join()
        return "ok"

    child = Agent(data_dir, agent_id="child", provider=ScriptedProvider.tool_loop(5, "work"), tools=[work])

    @tool
    def ask(task: str) -> str:
        """Delegate."""
        return str(delegate(child, task).status)

    box["parent"] = parent = Agent(
        data_dir, provider=ScriptedProvider([call("ask", task="work"), last_tool]), tools=[ask]
    )
    r = parent.run("go", execution_id="p")
    assert r.status is Status.CANCELLED and steps == [0, 1]
    child_records = store_at(data_dir).read("p:c1.0").records
    assert isinstance(child_records[-1], ExecutionCancelled)
    assert child_records[-1].reason == "a parent execution was cancelled"
    assert not store_at(data_dir).cancel_requested("p")


class Died(BaseException):
    """Stands in for the process dying."""


def test_after_a_crash_the_parents_retry_continues_the_same_child(data_dir: Path) -> None:
    ran: list[tuple[int, int]] = []
    crash = {"armed": True}

    @tool
    def step(i: int) -> str:
        """A child step with a side effect; the process dies in the third one, the first time."""
        ran.append((i, current_call().attempt))
        if i == 2 and crash["armed"]:
            crash["armed"] = False
            raise Died
        return f"s{i}"

    def child() -> Agent:
        return Agent(data_dir, agent_id="child", provider=ScriptedProvider.tool_loop(4, "step"), tools=[step])

    @tool
    def ask(task: str) -> str:
        """Delegate."""
        return delegate(child(), task).answer or ""

    def parent() -> Agent:
        return Agent(data_dir, provider=ScriptedProvider([call("ask", task="steps"), last_tool]), tools=[ask])

    with pytest.raises(Died):
        parent().run("go", execution_id="p")
    assert parent().run("go", execution_id="p").answer == "done"
    # The child's finished steps ran once; only the one in flight ran again, as a retry.
    assert ran == [(0, 1), (1, 1), (2, 1), (2, 2), (3, 1)]
    parent_starts = [x.attempt for x in store_at(data_dir).read("p").records if isinstance(x, ToolStarted)]
    assert parent_starts == [1, 2]
    child_results = [x for x in store_at(data_dir).read("p:c1.0").records if isinstance(x, ToolFinished)]
    assert [x.result for x in child_results] == ["s0", "s1", "s2", "s3"]


def test_async_tools_delegate_with_adelegate(data_dir: Path) -> None:
    team = Team(data_dir)

    @tool
    async def ask(task: str) -> str:
        """Delegate from an async tool."""
        return (await adelegate(team.child(), task)).answer or ""

    team.parent_tools = [ask]

    async def main() -> None:
        r = await team.parent().arun("go", execution_id="p")
        assert r.status is Status.WAITING_APPROVAL
        assert r.suspend_reason is not None and r.suspend_reason.confirmation_ids == ["p:c1.0/c1.0"]
        done = await team.parent().asubmit_approval("p", approved=True)
        assert done.answer == "parent: child: moved 5"

    asyncio.run(main())
    assert len(team.ran) == 1
