"""One workload, implemented for delite and for each peer; run by bench_compare.py, one fresh process per call.

Usage: python workloads.py IMPL COMMAND DATA_DIR N

IMPL is delite, dbos, langgraph, langgraph-min or dendrux (each on its own SQLite or files in DATA_DIR), or
delite-pg or dbos-pg (the same workload on the PostgreSQL database named by the environment variable
``BENCH_PG_URL``; the side file stays in DATA_DIR); delite-once is delite with the tool declared
``retry_in_doubt=False`` (a call in doubt after a crash waits for an operator, who checks the side file), and
delite-rt is delite whose ``recover`` is a :class:`~delite.Runtime` starting on the data directory (its own
recovery of executions a dead process left running). COMMAND is:

  run      start a new execution of N steps and run it to the end
  resume   continue the execution in DATA_DIR (after a crash), or return a finished one's result
  crash    start a new execution of N steps; the process SIGKILLs itself inside the last step's tool, before
           its side effect (so N - 1 steps are done and the last one is in flight)
  recover  complete the execution a ``crash`` left unfinished, the way each library recovers one: delite
           ``agent.resume(id)`` (delite-rt: a Runtime that finds and resumes it), DBOS ``DBOS.launch()`` (which
           recovers the pending workflows of this executor) then waiting on the workflow's handle, LangGraph
           ``graph.invoke(None, config)`` on the thread with its checkpointer

One step is one scripted model call (it asks for the tool with the step's number, and after N steps answers)
and one call of a trivial tool that appends the step's number to DATA_DIR/side.txt, so a tool that runs twice
shows as a repeated line. Every peer runs with its own SQLite store and its default sync settings (fsync on);
LangGraph checkpoints with ``durability="sync"`` and keeps either the usual message history in its state
(``langgraph``) or only the last message (``langgraph-min``: the model reads the step's number from the tool
message's call id, so nothing else is needed).

Prints ``ready`` once imported and set up (the driver may kill the process after it), then one JSON line:
``{"seconds": time inside the run, resume or recover call, "import_seconds": ..., "answer": ...,
"ready_rss_kb": resident memory at "ready", "peak_rss_kb": the process's peak resident memory (VmHWM)}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parents[2]
EID = "bench"
TEXT = "run the loop"
EXTRA: dict[str, Any] = {}  # more to report, beside the time and the answer
KILL_AT: list[int] = []  # ``crash``: the step whose tool kills the process before its side effect


def memory_kb(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS now, VmHWM the peak so far); 0 where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def side_effect(data_dir: str, i: int, key: str = "") -> None:
    """One line per tool run: the step's number, and the idempotency key where the library gives one."""
    if KILL_AT and i == KILL_AT[0]:
        os.kill(os.getpid(), signal.SIGKILL)  # a crash inside the tool, before it acts
    with open(os.path.join(data_dir, "side.txt"), "a") as f:
        f.write(f"{i} {key}\n" if key else f"{i}\n")


def ready() -> None:
    EXTRA["ready_rss_kb"] = memory_kb("VmRSS")
    sys.stdout.write("ready\n")
    sys.stdout.flush()


# -- delite ------------------------------------------------------------------------------------------------------


def run_delite(
    command: str, data_dir: str, n: int, *, once: bool = False, where: str | None = None
) -> tuple[float, float, Any]:
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
    agent = Agent(where or data_dir, provider=ScriptedProvider.tool_loop(n, "append"), tools=tools)
    ready()
    started = time.perf_counter()
    response = agent.resume(EID) if command == "recover" else agent.run(TEXT, execution_id=EID)
    while response.status == "suspended" and response.suspend_reason.kind == "in_doubt":
        # The operator looks at the outside world (the side file) and supplies the result, or asks for a re-run.
        call_id = response.suspend_reason.confirmation_ids[0]
        EXTRA["in_doubt"] = EXTRA.get("in_doubt", 0) + 1
        side = Path(data_dir, "side.txt")
        acted = side.exists() and any(line.endswith(f":{call_id}") for line in side.read_text().splitlines())
        settle: dict[str, Any] = {"result": "ok"} if acted else {"rerun": True}
        response = agent.resolve(EID, call_id, **settle)
    return time.perf_counter() - started, imported, response.answer


def pg_url() -> str:
    """The PostgreSQL database of a ``-pg`` run (a fresh one per run, made by the driver)."""
    url = os.environ.get("BENCH_PG_URL", "")
    if not url.startswith(("postgresql://", "postgres://")):
        raise SystemExit("the -pg workloads need BENCH_PG_URL=postgresql://... (a fresh database)")
    return url


def run_delite_pg(command: str, data_dir: str, n: int) -> tuple[float, float, Any]:
    """delite on PostgreSQL: the agent's first argument is the URL (durability ``full``: a commit per step)."""
    return run_delite(command, data_dir, n, where=pg_url())


def run_delite_once(command: str, data_dir: str, n: int) -> tuple[float, float, Any]:
    return run_delite(command, data_dir, n, once=True)


def run_delite_rt(command: str, data_dir: str, n: int) -> tuple[float, float, Any]:
    """``recover`` through a Runtime: starting it finds the execution a dead process left running and resumes it."""
    if command != "recover":
        return run_delite(command, data_dir, n)
    sys.path.insert(0, str(ROOT))
    from delite import Agent, Runtime, ScriptedProvider, current_idempotency_key, tool  # noqa: PLC0415

    imported = time.perf_counter() - T0

    @tool
    def append(i: int) -> str:
        """Append the step's number to the side file."""
        side_effect(data_dir, i, current_idempotency_key())
        return "ok"

    rt = Runtime(data_dir)
    Agent(data_dir, runtime=rt, provider=ScriptedProvider.tool_loop(n, "append"), tools=[append])
    ready()
    started = time.perf_counter()
    rt.start()
    if rt.recovered != [EID]:
        raise SystemExit(f"the runtime recovered {rt.recovered!r}, not [{EID!r}]")
    response = rt.wait(EID, timeout=600)
    seconds = time.perf_counter() - started
    rt.shutdown()
    return seconds, imported, response.answer


# -- DBOS ----------------------------------------------------------------------------------------------------------


def run_dbos(command: str, data_dir: str, n: int, *, database: str | None = None) -> tuple[float, float, Any]:
    from dbos import DBOS, SetWorkflowID  # noqa: PLC0415

    imported = time.perf_counter() - T0
    DBOS(config={"name": "bench", "system_database_url": database or f"sqlite:///{data_dir}/dbos.sqlite"})

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

    if command == "recover":
        # DBOS's own path: launch() finds this executor's pending workflows and recovers them in a thread.
        ready()
        started = time.perf_counter()
        DBOS.launch()
        EXTRA["launch_seconds"] = time.perf_counter() - started
        answer: Any = DBOS.retrieve_workflow(EID).get_result(polling_interval_sec=0.005)  # our wait adds no poll delay
        seconds = time.perf_counter() - started
        DBOS.destroy()
        return seconds, imported, answer
    DBOS.launch()
    ready()
    started = time.perf_counter()
    with SetWorkflowID(EID):
        answer = agent(TEXT)
    seconds = time.perf_counter() - started
    DBOS.destroy()
    return seconds, imported, answer


def run_dbos_pg(command: str, data_dir: str, n: int) -> tuple[float, float, Any]:
    """DBOS with its system database on PostgreSQL (where DBOS is meant to run)."""
    return run_dbos(command, data_dir, n, database=pg_url())


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
    if command in ("run", "crash") or not graph.get_state(config).values:
        # Killed before its first checkpoint: nothing was kept, so the run starts over from its input.
        state = graph.invoke({"messages": [HumanMessage(TEXT)]}, config, durability="sync")
    else:
        state = graph.invoke(None, config, durability="sync")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, imported, state["messages"][-1].content


def run_langgraph_min(command: str, data_dir: str, n: int) -> tuple[float, float, Any]:
    """LangGraph with minimal state: only the last message, overwritten at every node (no history kept)."""
    import sqlite3  # noqa: PLC0415
    from typing import TypedDict  # noqa: PLC0415

    from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage  # noqa: PLC0415
    from langgraph.checkpoint.sqlite import SqliteSaver  # noqa: PLC0415
    from langgraph.graph import END, START, StateGraph  # noqa: PLC0415

    imported = time.perf_counter() - T0

    State = TypedDict("State", {"message": AnyMessage})  # noqa: UP013 - a class body's annotation would be a string

    def model(state: Any) -> dict[str, Any]:
        last = state["message"]
        done = int(last.tool_call_id.rpartition("_")[2]) + 1 if isinstance(last, ToolMessage) else 0
        if done < n:
            call = {"name": "append", "args": {"i": done}, "id": f"call_{done}"}
            return {"message": AIMessage(content="", tool_calls=[call])}
        return {"message": AIMessage(content="done")}

    def tools(state: Any) -> dict[str, Any]:
        call = state["message"].tool_calls[0]
        side_effect(data_dir, call["args"]["i"])
        return {"message": ToolMessage(content="ok", tool_call_id=call["id"])}

    def route(state: Any) -> str:
        return "tools" if state["message"].tool_calls else END

    builder = StateGraph(State)
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
    if command in ("run", "crash") or not graph.get_state(config).values:
        state = graph.invoke({"message": HumanMessage(TEXT)}, config, durability="sync")
    else:
        state = graph.invoke(None, config, durability="sync")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds, imported, state["message"].content


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
    "delite-rt": run_delite_rt,
    "dbos": run_dbos,
    "delite-pg": run_delite_pg,
    "dbos-pg": run_dbos_pg,
    "langgraph": run_langgraph,
    "langgraph-min": run_langgraph_min,
    "dendrux": run_dendrux,
}


def main() -> int:
    impl, command, data_dir, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    os.makedirs(data_dir, exist_ok=True)
    if command == "crash":
        KILL_AT.append(n - 1)
    seconds, imported, answer = IMPLS[impl](command, data_dir, n)
    EXTRA["peak_rss_kb"] = memory_kb("VmHWM")
    print(json.dumps({"seconds": seconds, "import_seconds": imported, "answer": answer, **EXTRA}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
