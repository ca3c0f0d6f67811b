"""One agent configuration for every CLI test scenario, importable by ``delite ... --agent``.

The model is scripted per scenario: the provider picks the script by the execution's input text, so a single
agent (one configuration fingerprint) can start, and later resume, every kind of execution.
"""

from __future__ import annotations

from typing import Any

from delite import Agent, ScriptedProvider, Usage, tool
from delite.providers import call
from delite.store import Store

HOSTILE = "\x1b[31mRED\x1b[0m \x1b]0;pwned\x07 [bold red]markup[/bold red] :smile: \u202eevil\u202c <script>document.title='pwned'</script>"

SCRIPTS: dict[str, list[Any]] = {
    "add 2 and 3": [call("add", a=2, b=3), lambda m: f"The sum is {m[-1]['content']}."],
    "pay the invoice": [call("pay", amount=42.5), "Paid."],
    "where am I": [call("locate"), lambda m: f"You are in {m[-1]['content']}."],
    "book a trip": [call("ask_human", question="Which city?"), lambda m: f"Booked {m[-1]['content']}."],
    "transfer funds": [call("transfer", amount=100), "Transferred."],
    "give up": [call("add", a=1, b=1)],  # no second reply: the model fails
    "hostile " + HOSTILE: [call("echo", text=HOSTILE), HOSTILE + " done"],
    "pay twice": [
        {"tool_calls": [{"name": "pay", "arguments": {"amount": 1}}, {"name": "pay", "arguments": {"amount": 2}}]},
        "Paid both.",
    ],
    "count to three": [call("add", a=0, b=1), call("add", a=1, b=1), call("add", a=2, b=1), "Three."],
}

CRASH = {"transfer": False}


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool(requires_confirmation=True)
def pay(amount: float) -> str:
    """Pay an invoice (needs a human's approval)."""
    return f"paid {amount}"


@tool(target="client")
def locate() -> str:
    """The user's location, found by the client."""
    return ""


@tool(retry_in_doubt=False)
def transfer(amount: int) -> str:
    """Move money; not safe to repeat, so a crash inside it needs an operator."""
    if CRASH["transfer"]:
        CRASH["transfer"] = False
        raise KeyboardInterrupt  # stands in for the process dying inside the tool
    return f"moved {amount}"


@tool
def echo(text: str) -> str:
    """Say it back."""
    return text


class ScenarioModel:
    """Replies from the script named by the conversation's first user message."""

    name = "scenario"

    def __call__(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        first = next(m["content"] for m in messages if m["role"] == "user")
        usage = Usage(input_tokens=10 * len(messages), output_tokens=5, cost="0.0015")
        return ScriptedProvider(SCRIPTS[first], model="scripted-large", usage=usage)(messages, tools, model)


def build(where: str | Store) -> Agent:
    """The factory ``delite --agent scenario_agent:build`` calls: with the data directory, or the CLI's store."""
    return Agent(
        None if isinstance(where, Store) else where,
        store=where if isinstance(where, Store) else None,
        provider=ScenarioModel(),
        tools=[add, pay, locate, transfer, echo],
        agent_id="ops",
        prompt="You are a test agent.",
        durability="off",
    )
