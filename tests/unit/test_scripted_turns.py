"""The scripted provider's turn lookup: linear over a run, and always the answer of the whole scan.

The provider remembers the conversations it saw, so a call that extends one reads only the new messages.
These tests hold it to the whole scan (:func:`_turn_index` from the start) whatever the lists it is given:
the engine's copies, a caller's own list appended to and edited, lists that share message objects, many
conversations at once, and a fresh provider (a resumed process) on a long conversation.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from delite import Agent, ScriptedProvider, tool
from delite.providers._base import OUTPUT_RETRY_PREFIX
from delite.providers._scripted import MEMO_SIZE, _turn_index

SCRIPT = [f"r{i}" for i in range(400)]


def answer(provider: ScriptedProvider, messages: list[dict[str, Any]]) -> int:
    """The turn index the provider answered with (its reply ``r<k>``)."""
    content = provider(messages, [], None).content
    assert content is not None
    return int(content[1:])


def scanned(messages: list[dict[str, Any]]) -> int:
    """The turn index by the plain scan: back from the end to the last user message that is not a retry."""
    count = 0
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if not (isinstance(content, str) and content.startswith(OUTPUT_RETRY_PREFIX)):
                return count
        elif message.get("role") == "assistant":
            count += 1
    return count


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["user", "assistant", "tool", "system", "retry", None]), max_size=60), st.data())
def test_the_turn_index_is_the_plain_scans(roles: list[str | None], data: st.DataObject) -> None:
    messages = [_message(r) if r is not None else {"content": "no role"} for r in roles]
    assert _turn_index(messages) == scanned(messages)
    start = data.draw(st.integers(0, len(messages)))
    before = data.draw(st.integers(0, 5))
    tail = scanned(messages[start:])
    has_user = any(
        m.get("role") == "user" and not str(m.get("content")).startswith(OUTPUT_RETRY_PREFIX) for m in messages[start:]
    )
    assert _turn_index(messages, start, before) == (tail if has_user else tail + before)


class Counted(dict[str, Any]):
    """A message that counts how often the provider looks into it."""

    reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        Counted.reads += 1
        return super().get(key, default)


def test_a_long_run_reads_each_message_a_bounded_number_of_times() -> None:
    provider = ScriptedProvider(SCRIPT)
    conversation: list[dict[str, Any]] = [Counted(role="system", content="s"), Counted(role="user", content="go")]
    Counted.reads = 0
    steps = 300
    for step in range(steps):
        assert answer(provider, list(conversation)) == step  # a copy per call, as the engine passes
        conversation.append(Counted(role="assistant", content=None, tool_calls=[]))
        conversation.append(Counted(role="tool", content="ok", tool_call_id=f"call_{step}_0"))
    # The whole scan on every call reads ~2 * steps**2 / 2 = 90,000 times; remembered, each message once.
    assert Counted.reads <= 3 * len(conversation)


def test_a_fresh_provider_answers_a_long_conversation_as_the_one_that_saw_it_grow() -> None:
    conversation: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    grown = ScriptedProvider(SCRIPT)
    for _ in range(150):
        answer(grown, conversation)
        conversation += [{"role": "assistant", "content": "a"}, {"role": "tool", "content": "t"}]
    assert answer(grown, conversation) == answer(ScriptedProvider(SCRIPT), conversation) == 150


def test_an_edited_list_is_scanned_again() -> None:
    provider = ScriptedProvider(SCRIPT)
    user = {"role": "user", "content": "go"}
    turn = {"role": "assistant", "content": "a"}
    messages = [user, turn, {"role": "tool", "content": "t"}, turn]
    assert answer(provider, messages) == 2
    messages.insert(2, {"role": "user", "content": "again"})  # the same list, edited before its end
    assert answer(provider, messages) == 1
    messages[2] = {"role": "user", "content": OUTPUT_RETRY_PREFIX + " fix it"}  # a retry prompt is no boundary
    assert answer(provider, messages) == 2
    assert answer(provider, [user, turn]) == 1  # shorter than what was remembered
    assert answer(provider, [turn, turn, turn]) == 3  # no user message at all


def test_lists_that_share_their_first_message_do_not_borrow_each_others_count() -> None:
    provider = ScriptedProvider(SCRIPT)
    user = {"role": "user", "content": "go"}
    turn = {"role": "assistant", "content": "a"}
    assert answer(provider, [user, turn, turn]) == 2
    assert answer(provider, [user, {"role": "user", "content": "other"}, turn]) == 1
    assert answer(provider, [user, turn, turn, turn]) == 3


def test_more_conversations_than_are_remembered() -> None:
    provider = ScriptedProvider(SCRIPT)
    conversations = [[{"role": "user", "content": str(i)}] for i in range(MEMO_SIZE + 5)]
    for step in range(3):
        for conversation in conversations:
            assert answer(provider, conversation) == step
            conversation.append({"role": "assistant", "content": "a"})


ROLES = st.sampled_from(["user", "assistant", "tool", "system", "retry"])
OPS = st.lists(
    st.tuples(
        st.sampled_from(["append", "insert", "delete", "replace", "share", "ask", "ask_copy"]),
        st.integers(0, 2),  # which conversation
        st.integers(0, 50),  # where
        ROLES,
    ),
    max_size=80,
)


def _message(role: str) -> dict[str, Any]:
    if role == "retry":
        return {"role": "user", "content": f"{OUTPUT_RETRY_PREFIX} try again"}
    return {"role": role, "content": role}


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_any_sequence_of_lists_gets_the_whole_scans_answer(ops: list[tuple[str, int, int, str]]) -> None:
    provider = ScriptedProvider(SCRIPT)
    pool: list[dict[str, Any]] = [{"role": "user", "content": "first"}]
    conversations: list[list[dict[str, Any]]] = [[pool[0]], [pool[0]], []]
    for op, which, where, role in ops:
        conversation = conversations[which]
        at = where % (len(conversation) + 1)
        if op == "append":
            message = _message(role)
            pool.append(message)
            conversation.append(message)
        elif op == "insert":
            conversation.insert(at, _message(role))
        elif op == "delete" and conversation:
            del conversation[at % len(conversation)]
        elif op == "replace" and conversation:
            conversation[at % len(conversation)] = _message(role)
        elif op == "share":
            conversation.append(pool[where % len(pool)])  # a message object another list holds too
        elif op in ("ask", "ask_copy"):
            given_list = list(conversation) if op == "ask_copy" else conversation
            assert answer(provider, given_list) == scanned(list(conversation))


class Stop(BaseException):
    """Stands for the process dying inside a tool body (it propagates, leaving the call in doubt)."""


STOP_AT: list[int] = []
RAN: list[int] = []


@tool
def step(i: int) -> dict[str, int]:
    """A trivial tool that stops the run once at the step in ``STOP_AT``."""
    RAN.append(i)
    if i in STOP_AT:
        STOP_AT.clear()
        raise Stop
    return {"ok": i}


def test_one_provider_runs_executions_in_turn_and_a_fresh_one_recovers_a_stopped_run(tmp_path: Any) -> None:
    provider = ScriptedProvider.tool_loop(40, "step")
    with Agent(tmp_path, provider=provider, tools=[step]) as agent:
        assert agent.run("a", execution_id="e1").answer == "done"
        STOP_AT.append(25)
        RAN.clear()
        with contextlib.suppress(Stop):
            agent.run("b", execution_id="e2")
        assert list(range(26)) == RAN
        assert agent.run("c", execution_id="e3").answer == "done"  # the same provider, another conversation
        RAN.clear()
    with Agent(tmp_path, provider=ScriptedProvider.tool_loop(40, "step"), tools=[step]) as agent:
        response = agent.resume("e2")  # nothing remembered: the whole scan picks the reply after step 25
    assert response.answer == "done"
    assert list(range(25, 40)) == RAN  # the call in doubt once more, then each later step once
