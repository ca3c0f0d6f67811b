"""One workload, implemented for delite and for each peer; run by bench_compare.py, one fresh process per call.

Usage: python workloads.py IMPL COMMAND DATA_DIR N

IMPL is delite, dbos, langgraph or dendrux; delite-once is delite with the tool declared ``retry_in_doubt=False``
(a call in doubt after a crash waits for an operator, who checks the side file). COMMAND is:

  run     start a new execution of N steps and run it to the end
  resume  continue the execution in DATA_DIR (after a crash), or return a finished one's result

One step is one scripted model call (it asks for the tool with the step's number, and after N steps answers)
and one call of a trivial tool that appends the step's number to DATA_DIR/side.txt, so a tool that runs twice
shows as a repeated line. Every peer runs with its own SQLite store and its default sync settings (fsync on);
LangGraph keeps the usual message history in its state and checkpoints with ``durability="sync"``.

Prints ``ready`` once imported and set up (the driver may kill the process after it), then one JSON line:
``{"seconds": time inside the run or resume call, "import_seconds": ..., "answer": ...}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parents[2]
EID = "bench"
TEXT = "run the loop"
EXTRA: dict[str, Any] = {}  # more to report, beside the time and the answer


def side_effect(data_dir: str, i: int, key: str = "") -> None:
    """One line per tool run: the step's number, and the idempotency key where the library gives one."""
    with open(os.path.join(data_dir, "side.txt"), "a") as f:
        f.write(f"{i} {key}\n" if key else f"{i}\n")


def ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


# -- delite ------------------------------------------------------------------------------------------------------


def run_delite(command: str, data_dir: str, n: int, *, once: bool = False) -> tuple[float, float, Any]:
    sys.path.insert(0, str(ROOT))
    from delite import Agent, ScriptedProvider, current_idempotency_key, tool  # noqa: PLC0415

    imported = time.perf_counter() - T0

    @tool
    def append(i: int) -> str:
        """Append the step's number to the side file."""
        side_effect(data_dir, i, current_idempotency_key())
        return "ok"

    @tool("append", retry_in_doubt=False)
    def append_once(i: int) -> str:
        """Append the step's number to the side file (never retried blindly: a human decides)."""
        side_effect(data_dir, i, current_idempotency_key())
        return "ok"

    tools = [append_once] if once else [append]
    agent = Agent(data_dir, provider=ScriptedProvider.tool_loop(n, "append"), tools=tools)
    ready()
    started = time.perf_counter()
    response = agent.run(TEXT, execution_id=EID)
    while response.status == "suspended" and response.suspend_reason.kind == "in_doubt":
        # The operator looks at the outside world (the side file) and supplies the result, or asks for a re-run.
        call_id = response.suspend_reason.confirmation_ids[0]
        EXTRA["in_doubt"] = EXTRA.get("in_doubt", 0) + 1
        side = Path(data_dir, "side.txt")
        acted = side.exists() and any(line.endswith(f":{call_id}") for line in side.read_text().splitlines())
        settle: dict[str, Any] = {"result": "ok"} if acted else {"rerun": True}
        response = agent.resolve(EID, call_id, **settle)
    return time.perf_counter() - started, imported, response.answer


def run_delite_once(command: str, data_dir: str, n: int) -> tuple[float, float, Any]:
    return run_delite(command, data_dir, n, once=True)


# -- DBOS ----------------------------------------------------------------------------------------------------------


def run_dbos(command: str, data_dir: str, n: int) -> tuple[float, float, Any]:
    from dbos import DBOS, SetWorkflowID  # noqa: PLC0415

    imported = time.perf_counter() - T0
    DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{data_dir}/dbos.sqlite"})

    @DBOS.step()
    def model(messages: list[dict[str, Any]]) -> dict[str, Any]:
        done = sum(m["role"] == "tool" for m in messages)
        if done < n:
            return {"role": "assistant", "tool_calls": [{"name": "append", "arguments": {"i": done}}]}
        return {"role": "assistant", "content": "done"}

    @DBOS.step()
    def append(i: int) -> str:
        side_effect(data_dir, i)
        return "ok"

    @DBOS.workflow()
    def agent(text: str) -> str:
        messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
        while True:
            reply = model(messages)
            messages.append(reply)
            if not reply.get("tool_calls"):
                return str(reply["content"])
            for call in reply["tool_calls"]:
                messages.append({"role": "tool", "content": append(call["arguments"]["i"])})

    DBOS.launch()
    ready()
    started = time.perf_counter()
    with SetWorkflowID(EID):
        answer = agent(TEXT)
    seconds = time.perf_counter() - started
    DBOS.destroy()
    return seconds, imported, answer


# -- LangGraph -----------------------------------------------------------------------------------------------------


def run_langgraph(command: str, data_dir: str, n: int) -> tuple[float, float, Any]:
    import sqlite3  # noqa: PLC0415

    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: PLC0415
    from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: PLC0415
    from langgraph.graph import END, START, MessagesState, StateGraph  # noqa: PLC0415

    imported = time.perf_counter() - T0

    def model(state: Any) -> dict[str, Any]:
        done = sum(isinstance(m, ToolMessage) for m in state["messages"])
        if done < n:
            call = {"name": "append", "args": {"i": done}, "id": f"call_{done}"}
            return {"messages": [AIMessage(content="", tool_calls=[call])]}
        return {"messages": [AIMessage(content="done")]}

    def tools(state: Any) -> dict[str, Any]:
        out = []
        for call in state["messages"][-1].tool_calls:  # type: ignore[union-attr]
            side_effect(data_dir, call["args"]["i"])
            out.append(ToolMessage(content="ok", tool_call_id=call["id"]))
        return {"messages": out}

    def route(state: Any) -> str:
        return "tools" if state["messages"][-1].tool_calls else END  # type: ignore[union-attr]

    builder = StateGraph(MessagesState)
    builder.add_node("model", model)
    builder.add_node("tools", tools)
    builder.add_edge(START, "model")
    builder.add_conditional_edges("model", route, ["tools", END])
    builder.add_edge("tools", "model")
    conn = sqlite3.connect(os.path.join(data_dir, "langgraph.sqlite"), check_same_thread=False)
    graph = builder.compile(checkpointer=SqliteSaver(conn))
    config: Any = {"configurable": {"thread_id": EID}, "recursion_limit": 10 * n + 100}
    ready()
    started = time.perf_counter()
    if command == "run" or not graph.get_state(config).values:
        # Killed before its first checkpoint: nothing was kept, so the run starts over from its input.
        state = graph.invoke({"messages": [HumanMessage(TEXT)]}, config, durability="sync")
    else:
        state = graph.invoke(None, config, durability="sync")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, imported, state["messages"][-1].content


# -- dendrux -------------------------------------------------------------------------------------------------------


def run_dendrux(command: str, data_dir: str, n: int) -> tuple[float, float, Any]:
    import asyncio  # noqa: PLC0415

    from dendrux import Agent, tool  # noqa: PLC0415
    from dendrux.llm.base import LLMProvider  # noqa: PLC0415
    from dendrux.types import LLMResponse, ToolCall  # noqa: PLC0415

    imported = time.perf_counter() - T0

    class Scripted(LLMProvider):
        @property
        def model(self) -> str:
            return "scripted"

        async def complete(self, messages: list[Any], tools: Any = None, **kwargs: Any) -> LLMResponse:
            done = sum(getattr(m, "role", None) is not None and str(m.role).lower().endswith("tool") for m in messages)
            if done < n:
                return LLMResponse(text=None, tool_calls=[ToolCall("append", {"i": done})])
            return LLMResponse(text="done")

    @tool()
    async def append(i: int) -> str:
        """Append the step's number to the side file."""
        side_effect(data_dir, i)
        return "ok"

    agent = Agent(
        provider=Scripted(),
        prompt="bench",
        tools=[append],
        max_iterations=n + 5,
        database_url=f"sqlite+aiosqlite:///{data_dir}/dendrux.sqlite",
    )
    ready()

    async def go() -> tuple[float, Any]:
        started = time.perf_counter()
        result = await agent.run(TEXT)
        return time.perf_counter() - started, getattr(result, "answer", None)

    if command != "run":
        raise SystemExit("dendrux cannot resume a crashed run (a sweep marks it failed; retry starts a new run)")
    seconds, answer = asyncio.run(go())
    return seconds, imported, answer


IMPLS = {
    "delite": run_delite,
    "delite-once": run_delite_once,
    "dbos": run_dbos,
    "langgraph": run_langgraph,
    "dendrux": run_dendrux,
}


def main() -> int:
    impl, command, data_dir, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    os.makedirs(data_dir, exist_ok=True)
    seconds, imported, answer = IMPLS[impl](command, data_dir, n)
    print(json.dumps({"seconds": seconds, "import_seconds": imported, "answer": answer, **EXTRA}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
