"""Bad-input torture: throw wrong types, unencodable text and malformed provider turns at delite, check invariants.

A standalone script, the input-side companion of ``torture.py`` (which kills processes):

    python benchmarks/torture_inputs.py --trials 2000     # a summary table
    python benchmarks/torture_inputs.py --trials 200 --json   # as JSON
    python benchmarks/torture_inputs.py --smoke            # or --quick; CI: 40 trials, seed 7

Each trial takes a fresh execution that waits for an approval, in one shared data directory, and does one
thing to it with a value drawn from a palette of bad (and a few good) values: a public method with that value
as one argument (``cancel(reason=...)``, ``submit_approval(approved=...)``, ``run(history=...)``,
``Agent(prompt=...)``...), or a new run whose provider returns that value as its turn. Invariants, each breach
reported (the exit status is 1 if there is one):

* nothing but a :class:`~delite.errors.DeliteError` escapes (no ``TypeError`` or ``UnicodeEncodeError``);
* a refused call wrote nothing: every log, key and signal file is byte for byte what it was;
* a malformed turn never leaves its run ``running``: it completes (the turn was understood) or is failed,
  after no more model calls for the step than the retry policy's attempts;
* every execution reads back, and ``delite status --json`` lists all of them, none ``unreadable``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from delite import Agent, RetryPolicy, ScriptedProvider, tool  # noqa: E402
from delite.errors import DeliteError, UsageError  # noqa: E402
from delite.providers._base import ModelTurn, ProviderCall  # noqa: E402
from delite.providers._scripted import call  # noqa: E402
from delite.state._model import Status  # noqa: E402
from delite.store import FileStore  # noqa: E402
from delite.store._ids import new_execution_id  # noqa: E402

ATTEMPTS = 2


def _values() -> list[Any]:
    return [
        None,
        0,
        1,
        0.0,
        float("nan"),
        float("inf"),
        True,
        False,
        "",
        "false",
        "no",
        "fine text",
        "lone \udc80 surrogate",
        "\ud800",
        b"bytes",
        bytearray(b"x"),
        [],
        ["text"],
        ("tuple",),
        {},
        {"k": {1, 2}},
        {1: "int key"},
        {"k": object()},
        {"k": float("nan")},
        {"k\udc80": "surrogate key"},
        {"role": 5, "content": "x"},
        [{"role": "user", "content": 5}],
        [{"role": "user", "content": "fine"}],
        object(),
        2**80,
    ]


def _turns() -> list[Any]:
    return [
        {"content": 5},
        {"content": {"text": "a dict"}},
        {"content": [{"type": "text", "text": "blocks"}]},
        {"content": [{"type": "image", "source": {}}]},
        {"content": [{"type": "text", "text": 7}]},
        {"content": "ok", "model": 5},
        {"content": "ok", "usage": "lots"},
        {"content": "ok", "usage": {"input_tokens": "3"}},
        {"content": "lone \udc80"},
        {"content": "ok", "tool_calls": [{"name": "echo"}]},
        {"content": "ok", "tool_calls": [{"id": 5, "name": "echo"}]},
        {"content": "ok", "tool_calls": {"name": "echo"}},
        {"content": "ok", "raw_usage": "x"},
        {"choices": [{"message": {"role": "assistant", "content": "chat"}}], "usage": {"prompt_tokens": 3}},
        {"choices": []},
        {"choices": [{"message": {"content": None}, "finish_reason": "content_filter"}]},
        {"type": "message", "content": [{"type": "tool_use", "name": "echo", "input": {"x": 1}}]},
        {"text": "an unknown shape"},
        {},
        None,
        "a bare string",
        42,
        ModelTurn(content=5),  # type: ignore[arg-type]
        ModelTurn(content="ok", usage={"input_tokens": 2}),  # type: ignore[arg-type]
        ModelTurn(content="ok", model=3),  # type: ignore[arg-type]
        ModelTurn(content="ok", tool_calls=[ProviderCall(id=None, name="echo")]),  # type: ignore[arg-type]
        ModelTurn(content="ok", raw_usage={"k": object()}),
    ]


@tool
def echo(x: Any = None) -> Any:
    """Return x."""
    return x


@tool(requires_confirmation=True)
def pay(amount: int) -> str:
    """Pay."""
    return f"paid {amount}"


CALLS: dict[str, Callable[[Agent, str, Any], Any]] = {
    "cancel(reason)": lambda a, e, v: a.cancel(e, reason=v),
    "approve(reason)": lambda a, e, v: a.approve(e, "c1.0", reason=v),
    "reject(reason)": lambda a, e, v: a.reject(e, "c1.0", reason=v),
    "approve(confirmation_id)": lambda a, e, v: a.approve(e, v),
    "submit_approval(approved)": lambda a, e, v: a.submit_approval(e, approved=v),
    "submit_approval(decisions)": lambda a, e, v: a.submit_approval(e, decisions={"c1.0": v}),
    "submit_approval(rejection_reason)": lambda a, e, v: a.submit_approval(e, approved=False, rejection_reason=v),
    "resolve(error)": lambda a, e, v: a.resolve(e, "c1.0", error=v),
    "resolve(result)": lambda a, e, v: a.resolve(e, "c1.0", result=v),
    "submit_tool_results": lambda a, e, v: a.submit_tool_results(e, {"c1.0": v}),
    "submit_input": lambda a, e, v: a.submit_input(e, v),
    "resume(model)": lambda a, e, v: a.resume(e, model=v),
    "run(text)": lambda a, e, v: a.run(v),
    "run(model)": lambda a, e, v: a.run("hi", model=v),
    "run(history)": lambda a, e, v: a.run("hi", history=v),
    "run(metadata)": lambda a, e, v: a.run("hi", metadata=v),
    "run(idempotency_key)": lambda a, e, v: a.run("hi", idempotency_key=v),
    "run(execution_id)": lambda a, e, v: a.run("hi", execution_id=v),
    "Agent(prompt)": lambda a, e, v: Agent(store=a.store, provider=a.provider, prompt=v, tools=[pay]).run("hi"),
    "Agent(agent_id)": lambda a, e, v: Agent(store=a.store, provider=a.provider, agent_id=v, tools=[pay]).run("hi"),
}


def written(data_dir: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for sub in ("executions", "keys", "signals"):
        folder = data_dir / sub
        if folder.is_dir():
            for name in sorted(os.listdir(folder)):
                out[f"{sub}/{name}"] = (folder / name).read_bytes()
    return out


def _trial_call(data_dir: Path, rng: random.Random, counts: collections.Counter[str], breaches: list[str]) -> None:
    name = rng.choice(sorted(CALLS))
    value = rng.choice(_values())
    agent = Agent(data_dir, provider=ScriptedProvider([call("pay", amount=5), "done"]), tools=[pay])
    eid = agent.run("pay five").execution_id
    before = written(data_dir)
    try:
        CALLS[name](agent, eid, value)
    except UsageError:
        counts["refused: UsageError"] += 1
    except DeliteError as e:
        counts[f"refused: {type(e).__name__}"] += 1
    except Exception as e:  # noqa: BLE001 - this is the breach being looked for
        breaches.append(f"{name} with {value!r:.60}: {type(e).__name__}: {e}")
        return
    else:
        counts["accepted and recorded"] += 1
        return
    if written(data_dir) != before:
        breaches.append(f"{name} with {value!r:.60}: refused, but the data directory changed")


def _trial_turn(data_dir: Path, rng: random.Random, counts: collections.Counter[str], breaches: list[str]) -> None:
    value = rng.choice(_turns())
    first = 0

    def provider(messages: list[dict[str, Any]], tools: list[dict[str, Any]], model: str | None) -> Any:
        nonlocal first
        if any(m.get("role") == "assistant" for m in messages):
            return {"content": "done"}
        first += 1
        return value

    retry = RetryPolicy(max_attempts=ATTEMPTS, base_delay=0)
    agent = Agent(data_dir, provider=provider, tools=[echo], human_input_tool=None, retry=retry)
    eid = new_execution_id()
    try:
        agent.run("hi", execution_id=eid)
    except DeliteError as e:
        counts[f"turn refused: {type(e).__name__}"] += 1
    except Exception as e:  # noqa: BLE001 - this is the breach being looked for
        breaches.append(f"turn {value!r:.60}: {type(e).__name__}: {e}")
        return
    else:
        counts["turn understood"] += 1
    status = agent.get(eid).status
    if status not in (Status.COMPLETED, Status.FAILED):
        breaches.append(f"turn {value!r:.60}: the run was left {status.value}")
    if first > ATTEMPTS:
        breaches.append(f"turn {value!r:.60}: the model was called {first} times for one step")


def _status_check(data_dir: Path, breaches: list[str]) -> int:
    done = subprocess.run(
        [sys.executable, "-m", "delite_cli", "status", "--data-dir", str(data_dir), "--json", "--limit", "100000"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if done.returncode != 0:
        breaches.append(f"delite status exited {done.returncode}: {done.stderr.strip()[:300]}")
        return 0
    rows = json.loads(done.stdout)["executions"]
    ids = set(FileStore(data_dir).list_ids())
    shown = {r["id"]: r["status"] for r in rows}
    if set(shown) != ids:
        breaches.append(f"delite status lists {len(shown)} executions of {len(ids)}")
    breaches.extend(f"execution {eid} is shown {s}" for eid, s in shown.items() if s == "unreadable")
    for eid in ids:
        try:
            Agent(data_dir).get(eid)
        except DeliteError as e:
            breaches.append(f"execution {eid} does not read back: {e}")
    return len(ids)


def torture(trials: int, *, seed: int, root: str) -> dict[str, Any]:
    """Run ``trials`` trials in one data directory under ``root``; the counts and every breach."""
    rng = random.Random(seed)
    data_dir = Path(root) / "data"
    counts: collections.Counter[str] = collections.Counter()
    breaches: list[str] = []
    for _ in range(trials):
        trial = _trial_turn if rng.random() < 0.4 else _trial_call
        trial(data_dir, rng, counts, breaches)
    executions = _status_check(data_dir, breaches)
    return {"trials": trials, "seed": seed, "executions": executions, "counts": dict(counts), "breaches": breaches}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, default=2000, help="how many bad inputs to try")
    parser.add_argument("--smoke", "--quick", action="store_true", help="CI's smoke run: 40 trials, seed 7")
    parser.add_argument("--seed", type=int, default=None, help="seed (random by default)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON to PATH (the table is still printed)")
    args = parser.parse_args(argv)
    trials = 40 if args.smoke else args.trials
    seed = args.seed if args.seed is not None else (7 if args.smoke else random.SystemRandom().randrange(2**32))
    root = tempfile.mkdtemp(prefix="delite-inputs-")
    try:
        result = torture(trials, seed=seed, root=root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["smoke"] = bool(args.smoke)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['trials']} trials (seed {seed}), {result['executions']} executions:")
        for key, n in sorted(result["counts"].items()):
            print(f"  {n:6d}  {key}")
        print(f"breaches: {len(result['breaches'])}")
        for b in result["breaches"][:50]:
            print(f"  {b}")
    return 1 if result["breaches"] else 0


if __name__ == "__main__":
    sys.exit(main())
