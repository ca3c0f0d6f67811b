"""Every code snippet of the user's seed README ("durable"), run as written with only the package name changed.

Each snippet runs as a script in a child process, through the real openai/anthropic SDKs against the fake server
(``OPENAI_BASE_URL``/``ANTHROPIC_BASE_URL``, which the SDKs honour; no SDK method is mocked). The seed's text is
kept verbatim in ``SEED_*`` constants (``durable`` becomes ``delite`` and nothing else); what a snippet leaves to
its context (an ``agent``, a ``stripe`` client, ``send_slack_notification``) is a prelude, and checks are added
after it. The two places where the seed's text cannot run at all are named where they are replaced: the
Runtime snippet's ``...`` (a placeholder for the agent's options, and a SyntaxError after keyword arguments)
and the ``exec_id``/``confirmation_id`` its last line takes from the suspension the callback reports.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakellm import Call, FakeLLM, Script, Tokens, Turn


def seed(text: str) -> str:
    """The seed's text with only the package name changed."""
    return re.sub(r"\b(from|import) durable\b", r"\1 delite", textwrap.dedent(text).strip("\n")) + "\n"


SEED_QUICK_START = seed("""
from durable import Agent, tool
from durable.providers import OpenAI

@tool("get_weather", description="Get weather for a location")
def get_weather(location: str) -> dict:
    return {"temp": 72, "conditions": "sunny", "location": location}

with Agent("./data") as agent:
    agent.add_tool(get_weather)
    agent.set_llm(OpenAI())
    response = agent.run("What's the weather in San Francisco?")
    print(response)
""")

SEED_CRASH_RECOVERY = seed("""
# First run — everything executes and is persisted
response = agent.run("Process order #123")
execution_id = response.execution_id

# Process crashes. On restart, pass the same execution_id:
response = agent.run("Process order #123", execution_id=execution_id)
# All completed steps return cached results. No re-execution.
""")

SEED_HITL_TOOL = seed("""
@tool("transfer_funds", description="Transfer money", requires_confirmation=True)
def transfer_funds(from_acct: str, to_acct: str, amount: float) -> dict:
    return {"status": "transferred", "amount": amount}
""")

SEED_HITL_RUN = seed("""
response = agent.run("Transfer $5000 from checking to savings")
""")

SEED_HITL_APPROVE = seed("""
# response.is_suspended == True
# The tool has NOT executed. Human reviews and approves:
agent.approve(response.execution_id, response.suspend_reason.confirmation_id)
response = agent.resume(response.execution_id)
# Now the transfer executes
""")

SEED_CONTRACTS = seed("""
@agent.contract("max-charge")
def check_charge(step_name, args):
    if "charge" in step_name and args.get("amount", 0) > 1000:
        raise ValueError("Charges over $1000 need VP approval")

response = agent.run("Charge $5000")
# response.is_suspended == True — the tool never executed
""")

SEED_BUDGET = seed("""
from durable import Budget

agent.budget = Budget(max_dollars=2.00, max_llm_calls=10)
response = agent.run("Research this topic thoroughly")

if response.is_suspended:
    print(f"Budget exhausted: {response.suspend_reason}")
    # All completed work is preserved. Increase budget and resume.
""")

SEED_RUNTIME = seed("""
from durable import Runtime, Agent

rt = Runtime("./data")
researcher = Agent("./data", runtime=rt, agent_id="researcher", ...)
writer = Agent("./data", runtime=rt, agent_id="writer", ...)

# Non-blocking spawn
rt.go(researcher, "Research the topic")
rt.go(writer, "Write the report")

# Lifecycle callbacks
@rt.on_complete
def done(agent_id, exec_id, response):
    print(f"{agent_id} finished")

@rt.on_suspend
def paused(agent_id, exec_id, reason):
    send_slack_notification(f"Approval needed: {reason}")
""")

SEED_RUNTIME_SIGNAL = seed("""
# Signals trigger auto-resume
rt.signal(exec_id, confirmation_id, True)
""")

SEED_IDEMPOTENCY = seed("""
from durable.agent import current_idempotency_key

@tool("charge", description="Charge payment")
def charge(customer_id: str, amount: float) -> dict:
    stripe.PaymentIntent.create(
        amount=int(amount * 100),
        customer=customer_id,
        idempotency_key=current_idempotency_key(),
    )
    return {"status": "charged"}
""")

SEED_PROVIDER_IMPORTS = [seed("from durable.providers import OpenAI"), seed("from durable.providers import Anthropic")]

SEED_STREAMING = seed("""
for chunk in agent.stream("Tell me a story"):
    print(chunk, end="", flush=True)
""")

SEED_CLI = """
delite status --data-dir ./data                    # list all executions
delite inspect <execution-id> --data-dir ./data    # detailed view
delite steps <execution-id> --data-dir ./data      # step timeline
delite events <execution-id> --data-dir ./data     # raw event log
delite export <execution-id> --data-dir ./data     # JSON export
delite health --data-dir ./data                    # storage health
"""

# -- the context the snippets assume ---------------------------------------------------------------------------

# An agent on the default OpenAI provider, as the Quick Start builds it (outside a `with`, as the later snippets
# use it), and a tool that leaves a line in ran.txt each time its body runs.
PRELUDE_AGENT = """
from pathlib import Path

from delite import Agent, tool
from delite.providers import OpenAI


def ran(line: str) -> None:
    with open("ran.txt", "a") as f:
        f.write(line + "\\n")


@tool("process_order", description="Process an order")
def process_order(order: str) -> dict:
    ran(f"process_order {order}")
    return {"order": order, "status": "processed"}


agent = Agent("./data")
agent.add_tool(process_order)
agent.set_llm(OpenAI())
"""


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    s = FakeLLM().start()
    yield s
    s.stop()


@pytest.fixture
def fake(server: FakeLLM) -> FakeLLM:
    server.load(Script())
    return server


def run_script(
    tmp_path: Path, fake: FakeLLM, *parts: str, turns: list[Turn], args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the parts as one script in ``tmp_path`` (its ./data), the SDKs pointed at the fake server."""
    fake.load(Script(turns=turns))
    script = tmp_path / "snippet.py"
    script.write_text("\n".join(textwrap.dedent(p) for p in parts))
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "OPENAI_BASE_URL": fake.url + "/v1",
        "ANTHROPIC_BASE_URL": fake.url,
        "PYTHONWARNINGS": "error",  # a warning in a snippet is a failure too
    }
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0 and out.stderr == "", out.stdout + out.stderr
    return out.stdout


def ran(tmp_path: Path) -> list[str]:
    f = tmp_path / "ran.txt"
    return f.read_text().splitlines() if f.exists() else []


def test_quick_start(tmp_path: Path, fake: FakeLLM) -> None:
    turns = [
        Turn(calls=[Call(name="get_weather", arguments={"location": "San Francisco"}, id="call_1")]),
        Turn(text="It is 72F and sunny in San Francisco."),
    ]
    out = ok(run_script(tmp_path, fake, SEED_QUICK_START, turns=turns))
    assert out == "It is 72F and sunny in San Francisco.\n"
    first, second = fake.requests
    assert first["body"]["model"] == "gpt-4o-mini"  # OpenAI() with no arguments: the documented default
    assert "get_weather" in [t["function"]["name"] for t in first["body"]["tools"]]
    tool_result = second["body"]["messages"][-1]
    assert tool_result["role"] == "tool" and json.loads(tool_result["content"])["temp"] == 72
    assert len(list((tmp_path / "data" / "executions").glob("*.log"))) == 1


def test_crash_recovery_returns_cached_results(tmp_path: Path, fake: FakeLLM) -> None:
    turns = [Turn(calls=[Call(name="process_order", arguments={"order": "#123"})]), Turn(text="Order #123 done.")]
    check = "print(response.answer, response.status)\n"
    out = ok(run_script(tmp_path, fake, PRELUDE_AGENT, SEED_CRASH_RECOVERY, check, turns=turns))
    assert out == "Order #123 done. completed\n"
    assert ran(tmp_path) == ["process_order #123"]  # once, though the seed runs the execution twice
    assert len(fake.requests) == 2  # the second run called no model


def test_crash_recovery_across_processes(tmp_path: Path, fake: FakeLLM) -> None:
    # The seed's two halves in two processes: the id from the first, the second only replays.
    turns = [Turn(calls=[Call(name="process_order", arguments={"order": "#123"})]), Turn(text="Order #123 done.")]
    first_half, second_half = SEED_CRASH_RECOVERY.split("# Process crashes.")
    out = ok(run_script(tmp_path, fake, PRELUDE_AGENT, first_half, "print(execution_id)", turns=turns))
    eid = out.strip()
    again = f"execution_id = {eid!r}\n# Process crashes." + second_half + "print(response.answer)\n"
    out = ok(run_script(tmp_path, fake, PRELUDE_AGENT, again, turns=turns))
    assert out == "Order #123 done.\n" and ran(tmp_path) == ["process_order #123"]
    assert len(fake.requests) == 0  # load() cleared the recorded requests: the second process asked no model


def test_human_in_the_loop(tmp_path: Path, fake: FakeLLM) -> None:
    turns = [
        Turn(
            calls=[
                Call(name="transfer_funds", arguments={"from_acct": "checking", "to_acct": "savings", "amount": 5000})
            ]
        ),
        Turn(text="Transferred $5000."),
    ]
    # Not in the seed: the seed defines the tool but never hands it to the agent.
    glue = "agent.add_tool(transfer_funds)\n"
    # The seed's comment `# response.is_suspended == True`, checked, and the tool not run yet.
    check_suspended = "assert response.is_suspended and response.suspend_reason.kind == 'approval', response\n"
    check_done = "print(response.status, response.answer)\n"
    out = run_script(
        tmp_path,
        fake,
        PRELUDE_AGENT,
        SEED_HITL_TOOL,
        glue,
        SEED_HITL_RUN,
        check_suspended,
        SEED_HITL_APPROVE,
        check_done,
        turns=turns,
    )
    assert ok(out) == "completed Transferred $5000.\n"
    tool_result = fake.requests[-1]["body"]["messages"][-1]
    assert json.loads(tool_result["content"]) == {"status": "transferred", "amount": 5000}


def test_contract_stops_the_tool(tmp_path: Path, fake: FakeLLM) -> None:
    prelude = (
        PRELUDE_AGENT
        + """

@tool("charge", description="Charge a card")
def charge(amount: float) -> dict:
    ran(f"charge {amount}")
    return {"charged": amount}


agent.add_tool(charge)
"""
    )
    turns = [Turn(calls=[Call(name="charge", arguments={"amount": 5000})]), Turn(text="Charged.")]
    check = "print(response.is_suspended, response.suspend_reason.kind)\nprint(response.suspend_reason)\n"
    out = ok(run_script(tmp_path, fake, prelude, SEED_CONTRACTS, check, turns=turns))
    first, reason = out.splitlines()
    assert first == "True contract"
    assert "Charges over $1000 need VP approval" in reason and "max-charge" in reason
    assert ran(tmp_path) == []  # the tool never executed
    assert len(fake.requests) == 1


def test_budget_llm_calls_then_increase_and_resume(tmp_path: Path, fake: FakeLLM) -> None:
    # A model that keeps calling a tool: the 10-call limit stops it; raising the limit lets it finish.
    turns = [Turn(calls=[Call(name="process_order", arguments={"order": str(i)})]) for i in range(12)]
    turns.append(Turn(text="Research done."))
    after = """
print("kind:", response.suspend_reason.kind, response.suspend_reason.limit)
agent.budget = Budget(max_dollars=2.00, max_llm_calls=20)
print("resumed:", agent.resume(response.execution_id).answer)
"""
    out = ok(run_script(tmp_path, fake, PRELUDE_AGENT, SEED_BUDGET, after, turns=turns))
    lines = out.splitlines()
    assert lines[0].startswith("Budget exhausted: ") and "max_llm_calls" in lines[0]
    assert "SuspendReason(" not in lines[0]  # readable, not a repr
    assert lines[1:] == ["kind: budget max_llm_calls", "resumed: Research done."]
    assert ran(tmp_path) == [f"process_order {i}" for i in range(12)]  # completed work kept, none redone


def test_budget_dollars_on_a_priced_model(tmp_path: Path, fake: FakeLLM) -> None:
    # gpt-4o-mini is in the price table: 20M input tokens cost $3, over the $2 limit after the first call.
    turns = [
        Turn(calls=[Call(name="process_order", arguments={"order": "1"})], tokens=Tokens(input=20_000_000)),
        Turn(text="never reached"),
    ]
    out = ok(run_script(tmp_path, fake, PRELUDE_AGENT, SEED_BUDGET, turns=turns))
    assert out.startswith("Budget exhausted: ") and "max_dollars" in out and "reached" in out
    assert len(fake.requests) == 1


def test_budget_with_an_unknown_cost_says_so(tmp_path: Path, fake: FakeLLM) -> None:
    # A model the price table does not know: never "max_dollars reached", the cost is said to be unknown.
    prelude = PRELUDE_AGENT.replace("OpenAI()", 'OpenAI("my-local-model")')
    turns = [Turn(calls=[Call(name="process_order", arguments={"order": "1"})]), Turn(text="done")]
    out = ok(run_script(tmp_path, fake, prelude, SEED_BUDGET, turns=turns))
    assert out.startswith("Budget exhausted: ") and "unknown" in out and "reached" not in out


# The Runtime snippet's `...` replaced by the agents' options (the only change to its text), the writer's tool
# needing approval so that its `paused` callback has something to report.
RUNTIME_PRELUDE = """
import queue

from delite import tool
from delite.providers import OpenAI

notifications: queue.Queue[str] = queue.Queue()


def send_slack_notification(text: str) -> None:
    notifications.put(text)


@tool("publish", description="Publish the report", requires_confirmation=True)
def publish(title: str) -> str:
    return f"published {title}"
"""

RUNTIME_OPTIONS = "provider=OpenAI(), tools=[publish]"

# Not in the seed: its last line uses the exec_id and confirmation_id that the `paused` callback was given.
RUNTIME_FIND_SUSPENDED = """
import sys

message = notifications.get(timeout=60)
sys.stdout.write(f"<{message}>\\n")  # one write: the callbacks print from another thread
from delite import DataDir
[summary] = DataDir("./data").list(status="waiting_approval")
exec_id = summary.id
confirmation_id = writer.response(exec_id).suspend_reason.confirmation_id
"""


def test_runtime_snippet(tmp_path: Path, fake: FakeLLM) -> None:
    # Both agents get the same conversation script: the researcher's model answers; the writer's model asks
    # for `publish`, which needs approval. (The fake server answers by the conversation's shape, so the
    # researcher, which has the same tool, is told to publish too: its prompt differs, see below.)
    runtime = SEED_RUNTIME.replace("...", RUNTIME_OPTIONS)
    assert runtime.count(RUNTIME_OPTIONS) == 2
    runtime = runtime.replace(
        'researcher = Agent("./data", runtime=rt, agent_id="researcher", provider=OpenAI(), tools=[publish])',
        'researcher = Agent("./data", runtime=rt, agent_id="researcher", provider=OpenAI())',
    )
    turns = [Turn(calls=[Call(name="publish", arguments={"title": "Report"})]), Turn(text="All done.")]
    wait_all = "sys.stdout.write(f'<answer: {rt.wait(exec_id).answer}>\\n')\nrt.shutdown()\n"
    out = ok(
        run_script(
            tmp_path, fake, RUNTIME_PRELUDE, runtime, RUNTIME_FIND_SUSPENDED, SEED_RUNTIME_SIGNAL, wait_all, turns=turns
        )
    )
    # The callbacks print from the runtime's thread, so lines may interleave with the script's own output.
    assert "researcher finished" in out and "writer finished" in out
    approval = re.search(r"<Approval needed: (.*?)>", out)
    assert approval is not None and "publish" in approval.group(1) and "SuspendReason(" not in out
    assert "<answer: All done.>" in out


def test_runtime_snippet_as_a_script_leaves_its_runs_on_disk(tmp_path: Path, fake: FakeLLM) -> None:
    # Run as a script with no wait or shutdown: both starts are on disk when it exits, and it says so.
    runtime = SEED_RUNTIME.replace("...", "provider=OpenAI()")
    turns = [Turn(text="done", faults=[])]
    out = run_script(tmp_path, fake, RUNTIME_PRELUDE, runtime, turns=turns)
    assert out.returncode == 0, out.stderr
    logs = list((tmp_path / "data" / "executions").glob("*.log"))
    assert len(logs) == 2
    for line in out.stderr.splitlines():  # the only thing it may say: runs still in flight, and their fate
        assert line.startswith("delite: the process exits with") and "resumes" in line, out.stderr


def test_idempotency_key_reaches_the_payment_api(tmp_path: Path, fake: FakeLLM) -> None:
    prelude = (
        PRELUDE_AGENT
        + """

class _PaymentIntent:
    calls: list[dict] = []

    @classmethod
    def create(cls, **kwargs):
        cls.calls.append(kwargs)


class stripe:  # a stand-in for the stripe module: records what it is sent
    PaymentIntent = _PaymentIntent
"""
    )
    after = """
agent.add_tool(charge)
response = agent.run("Charge customer cus_1 $12.50")
again = agent.run("Charge customer cus_1 $12.50", execution_id=response.execution_id)
[sent] = stripe.PaymentIntent.calls
print(response.answer, sent["amount"], sent["customer"], bool(sent["idempotency_key"]))
"""
    turns = [Turn(calls=[Call(name="charge", arguments={"customer_id": "cus_1", "amount": 12.5})]), Turn(text="ok")]
    out = ok(run_script(tmp_path, fake, prelude, SEED_IDEMPOTENCY, after, turns=turns))
    assert out == "ok 1250 cus_1 True\n"


@pytest.mark.parametrize("which", [0, 1], ids=["OpenAI", "Anthropic"])
def test_provider_table_imports_with_no_arguments(tmp_path: Path, fake: FakeLLM, which: int) -> None:
    name = ["OpenAI", "Anthropic"][which]
    use = f"""
from delite import Agent
with Agent("./data", provider={name}()) as agent:
    print(agent.run("hi").answer)
"""
    out = ok(run_script(tmp_path, fake, SEED_PROVIDER_IMPORTS[which], use, turns=[Turn(text="hello")]))
    assert out == "hello\n"
    assert fake.requests[0]["body"]["model"] == ["gpt-4o-mini", "claude-haiku-4-5"][which]


def test_provider_table_custom_callable(tmp_path: Path, fake: FakeLLM) -> None:
    # "Custom: any callable (messages, tools, model) -> dict", including an OpenAI chat-completion-shaped dict
    # and tool calls without ids.
    script = '''
from delite import Agent, tool


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def my_model(messages, tools, model):
    if messages[-1]["role"] == "user":
        return {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}
    return {"choices": [{"message": {"role": "assistant", "content": f"2 + 3 = {messages[-1]['content']}"}}]}


with Agent("./data", provider=my_model, tools=[add]) as agent:
    print(agent.run("What is 2 + 3?").answer)
'''
    assert ok(run_script(tmp_path, fake, script, turns=[])) == "2 + 3 = 5\n"


def test_custom_callable_with_an_unrecognised_answer_is_a_provider_error(tmp_path: Path, fake: FakeLLM) -> None:
    script = """
from delite import Agent
from delite.errors import ProviderError

agent = Agent("./data", provider=lambda messages, tools, model: {"choices": []})
try:
    r = agent.run("hi")
    print("status:", r.status, repr(r.answer), r.error)
except ProviderError as e:
    print("ProviderError:", e)
"""
    out = ok(run_script(tmp_path, fake, script, turns=[]))
    assert out.startswith("ProviderError: ") and "choices" in out, out  # never silently an empty answer


@pytest.mark.parametrize("api", ["OpenAI", "Anthropic"])
def test_streaming(tmp_path: Path, fake: FakeLLM, api: str) -> None:
    prelude = f"""
from delite import Agent
from delite.providers import {api}

agent = Agent("./data", provider={api}())
"""
    out = ok(
        run_script(tmp_path, fake, prelude, SEED_STREAMING, turns=[Turn(text="Once upon a time, a tool ran once.")])
    )
    assert out == "Once upon a time, a tool ran once."
    assert fake.requests[0]["body"].get("stream") is True


def test_cli_commands_as_listed(tmp_path: Path, fake: FakeLLM) -> None:
    turns = [
        Turn(calls=[Call(name="get_weather", arguments={"location": "San Francisco"})]),
        Turn(text="Sunny."),
    ]
    ok(run_script(tmp_path, fake, SEED_QUICK_START, turns=turns))
    [log] = (tmp_path / "data" / "executions").glob("*.log")
    eid = log.stem
    delite = Path(sys.executable).with_name("delite")
    assert delite.exists(), "the delite command is installed next to the interpreter"
    outputs = {}
    for line in SEED_CLI.strip().splitlines():
        command = line.split("#", 1)[0].split()
        assert command[0] == "delite"
        argv = [str(delite), *(eid if a == "<execution-id>" else a for a in command[1:])]
        out = subprocess.run(
            argv,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "COLUMNS": "80"},
        )
        assert out.returncode == 0 and out.stderr == "", (line, out.stdout, out.stderr)
        assert out.stdout.strip(), line
        outputs[command[1]] = out.stdout
    assert eid in outputs["status"] and "completed" in outputs["status"]
    assert "get_weather" in outputs["steps"] and "get_weather" in outputs["events"]
    exported = json.loads(outputs["export"])  # "JSON export": the default format is JSON
    assert json.dumps(exported).count(eid) >= 1
    for name, text in outputs.items():
        assert max(len(line) for line in text.splitlines()) <= 80 or name == "export", (name, text)


# -- the dendrux seeds: the API names their users expect ---------------------------------------------------------

# The dendrux error route (002), its imports renamed by the table in docs/reference/errors.md ("Coming from
# dendrux"), `await agent.submit_approval(...)` spelled `asubmit_approval` (delite's async twin), and the FastAPI
# pieces (`router`, `authorize`, `HTTPException`) replaced by a plain function that returns (status, body).
DENDRUX_ROUTE = """
import asyncio
import sys

from delite import Agent, tool
from delite.errors import (
    ExecutionStateError, ExecutionNotFoundError, UsageError,
)
from delite.providers import Anthropic


@tool("refund", description="Refund an order", requires_confirmation=True)
def refund(order_id: int) -> str:
    return f"refunded {order_id}"


agent = Agent(provider=Anthropic(), tools=[refund])  # the default data directory, ./data


async def approval_route(run_id: str, body: dict):
    try:
        result = await agent.asubmit_approval(
            run_id, approved=body["approved"], rejection_reason=body.get("rejection_reason"),
        )
    except ExecutionNotFoundError:
        return 404, "run not found"
    except ExecutionStateError as e:  # every dendrux 409 (not paused, wrong pause, claimed, terminal)
        return 409, type(e).__name__
    except UsageError as e:
        return 400, str(e)
    return 200, {"status": result.status.value, "answer": result.answer}


async def main() -> None:
    paused = await agent.arun("Refund order 42")
    print(paused.status.value)
    print(await approval_route("01JX0000000000000000000000", {"approved": True}))
    print(await approval_route(paused.execution_id, {"approved": True}))
    print(await approval_route(paused.execution_id, {"approved": True}))


asyncio.run(main())
"""


def test_dendrux_error_route_shape(tmp_path: Path, fake: FakeLLM) -> None:
    turns = [Turn(calls=[Call(name="refund", arguments={"order_id": 42})]), Turn(text="Refunded order 42.")]
    out = ok(run_script(tmp_path, fake, DENDRUX_ROUTE, turns=turns)).splitlines()
    assert out[0] == "waiting_approval"
    assert out[1] == "(404, 'run not found')"
    assert out[2] == "(200, {'status': 'completed', 'answer': 'Refunded order 42.'})"
    assert out[3].startswith("(409, '") and "Error" in out[3]


def test_the_dendrux_to_delite_error_table_names_real_classes() -> None:
    import delite
    from delite import errors

    table = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "errors.md").read_text()
    section = table.split("## Coming from dendrux", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) >= 10
    for row in rows:
        dendrux_name, delite_cell = row.split("|")[1:3]
        for name in re.findall(r"`(\w+Error)`", delite_cell):
            if name in ("LookupError", "ValueError"):  # "(also a `LookupError`)": the builtin base
                continue
            cls = getattr(errors, name)
            assert getattr(delite, name) is cls, f"{name} ({dendrux_name.strip()}) is importable from delite"


# 001's shortcut for simple scripts, with the delite async spelling (`arun`) and no data directory given.
DENDRUX_RECIPE = """
import asyncio

from delite import Agent


async def main() -> None:
    async with Agent(provider="anthropic:claude-haiku-4-5", prompt="...") as agent:
        print((await agent.arun("hi")).answer)
        r = await agent.arun("hi again", history=[], metadata={"thread_id": "t1"}, model="claude-opus-4-1")
        print(r.answer)


asyncio.run(main())
"""


def test_dendrux_recipe_string_shape(tmp_path: Path, fake: FakeLLM) -> None:
    out = ok(run_script(tmp_path, fake, DENDRUX_RECIPE, turns=[Turn(text="hello")]))
    assert out == "hello\nhello\n"
    assert [r["body"]["model"] for r in fake.requests] == ["claude-haiku-4-5", "claude-opus-4-1"]
    assert fake.requests[0]["body"]["system"] in ("...", [{"type": "text", "text": "..."}])
    assert len(list((tmp_path / "data" / "executions").glob("*.log"))) == 2


# 004: a run pauses in one process and a different process resumes it with submit_approval(run_id, approved=True).
DENDRUX_PAUSE = """
import sys

from delite import Agent, tool
from delite.providers import OpenAI


@tool("refund", description="Refund an order", requires_confirmation=True)
def refund(order_id: int) -> str:
    with open("refunds.txt", "a") as f:
        f.write(f"{order_id}\\n")
    return f"refunded {order_id}"


agent = Agent(provider=OpenAI(), tools=[refund])
if sys.argv[1] == "start":
    r = agent.run("Refund order 42")
    print(r.status, r.execution_id)
else:
    r = agent.submit_approval(sys.argv[2], approved=True)
    print(r.status, r.answer)
"""


def test_dendrux_pause_in_one_process_resume_in_another(tmp_path: Path, fake: FakeLLM) -> None:
    turns = [Turn(calls=[Call(name="refund", arguments={"order_id": 42})]), Turn(text="Refunded.")]
    status, run_id = ok(run_script(tmp_path, fake, DENDRUX_PAUSE, turns=turns, args=("start",))).split()
    assert status == "waiting_approval" and not (tmp_path / "refunds.txt").exists()
    out = ok(run_script(tmp_path, fake, DENDRUX_PAUSE, turns=turns, args=("approve", run_id)))
    assert out == "completed Refunded.\n" and (tmp_path / "refunds.txt").read_text() == "42\n"
