"""``from delite import Agent`` imports nothing heavy until it is used (timings are measured in benchmarks)."""

from __future__ import annotations

import json
import subprocess
import sys

# Modules that cost milliseconds each and that defining an agent does not need: the async machinery, the
# claim lock, the listing index, the terminal renderer, the vendor SDKs and their HTTP stack, the writer's
# random ids, the SDK-backed providers.
HEAVY = (
    "anthropic",
    "asyncio",
    "concurrent.futures",
    "delite.engine._aio",
    "delite.providers._anthropic",
    "delite.providers._openai",
    "delite.providers._openai_responses",
    "delite.providers._sdk",
    "email",
    "filelock",
    "httpx",
    "httpx2",
    "openai",
    "rich",
    "secrets",
    "socket",
    "sqlite3",
    "ssl",
)


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    modules = set(json.loads(out.stdout.splitlines()[-1]))
    return sorted(m for m in HEAVY if m in modules)


def test_importing_agent_imports_nothing_heavy() -> None:
    assert _loaded("from delite import Agent, Budget, RetryPolicy, tool") == []


def test_importing_delite_imports_nothing_heavy() -> None:
    assert _loaded("import delite, delite.log.records, delite.providers") == []


def test_the_heavy_modules_come_when_used() -> None:
    """The lazy names still resolve: a provider and a file store import what they need when asked for."""
    loaded = _loaded("from delite.providers import OpenAI, ScriptedProvider\nfrom delite import FileStore")
    assert "delite.providers._openai" in loaded
    assert "filelock" in loaded
