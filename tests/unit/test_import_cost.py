"""``from delite import Agent`` imports nothing heavy until it is used (timings are measured in benchmarks)."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

# Modules that cost milliseconds each and that defining an agent does not need: the async machinery, the
# claim lock, the listing index, the terminal renderer, the vendor SDKs and their HTTP stack, the writer's
# random ids, the SDK-backed providers; and, until a store is opened or a run streamed: the store opener and
# the data directory's layout (pathlib, urllib.parse, ipaddress), the sealing layer, the listing's
# derivation, the stream's event classes, OpenSSL's hashlib, random (a retry's jitter) and the stdlib's json.
HEAVY = (
    "anthropic",
    "asyncio",
    "concurrent.futures",
    "delite.engine._aio",
    "delite.engine._events",
    "delite.engine._streaming",
    "delite.log._shell",
    "delite.providers._anthropic",
    "delite.providers._openai",
    "delite.providers._openai_responses",
    "delite.providers._sdk",
    "delite.store._derive",
    "delite.store._layout",
    "delite.store._open",
    "delite.store._sealed",
    "email",
    "filelock",
    "hashlib",
    "httpx",
    "httpx2",
    "ipaddress",
    "openai",
    "pathlib",
    "random",
    "rich",
    "secrets",
    "socket",
    "sqlite3",
    "ssl",
    "urllib.parse",
)


def _modules(code: str) -> set[str]:
    """The modules loaded once ``code`` ran in a fresh interpreter (the probe itself imports only ``sys``)."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.splitlines()[-1].split())


def _loaded(code: str) -> list[str]:
    modules = _modules(code)
    return sorted(m for m in HEAVY if m in modules)


def test_importing_agent_imports_nothing_heavy() -> None:
    assert _loaded("from delite import Agent, Budget, RetryPolicy, tool") == []


def test_importing_delite_imports_nothing_heavy() -> None:
    assert _loaded("import delite, delite.log.records, delite.providers") == []


def test_import_delite_alone_loads_only_its_own_three_modules() -> None:
    """``import delite`` costs well under a millisecond: not even ``typing`` (about 10 ms with ``re`` and ``enum``)."""
    added = _modules("import delite") - _modules("pass")
    assert added <= {"delite", "delite._lazy", "delite._version", "__future__"}, sorted(added)
    # A name still resolves on first use (and brings what it needs with it).
    assert "delite.engine._agent" in _modules("import delite\ndelite.Agent")


def test_the_heavy_modules_come_when_used() -> None:
    """The lazy names still resolve: a provider and a file store import what they need when asked for."""
    loaded = _loaded("from delite.providers import OpenAI, ScriptedProvider\nfrom delite import FileStore")
    assert "delite.providers._openai" in loaded
    assert "sqlite3" not in loaded and "filelock" not in loaded  # a store opened does not list or fall back


def test_a_run_on_a_file_store_does_not_import_filelock_or_the_sealing_layer() -> None:
    """Claims take ``flock`` directly; filelock is the fallback where flock is missing. No keys: no sealing."""
    ran = _modules(
        "import tempfile\nfrom delite import Agent, ScriptedProvider\n"
        "with Agent(tempfile.mkdtemp(), provider=ScriptedProvider(['hi'])) as a:\n    a.run('hello')"
    )
    assert "delite.store._file" in ran
    assert "filelock" not in ran
    assert "delite.store._sealed" not in ran


def test_the_store_package_imports_its_modules_when_asked() -> None:
    """``import delite.store`` (which importing any store module runs first) loads none of its modules."""
    assert sorted(m for m in _modules("import delite.store") if m.startswith("delite.")) == [
        "delite._lazy",
        "delite._version",
        "delite.store",
    ]


def test_the_store_package_still_exports_every_name() -> None:
    """Every name in ``delite.store.__all__`` resolves, each from the module that defines it."""
    probe = (
        "import delite.store as s\n"
        "missing = [n for n in s.__all__ if getattr(s, n, None) is None]\n"
        "assert not missing, missing\n"
        "assert s.FileStore.__module__ == 'delite.store._file'\n"
        "assert s.summarize.__module__ == 'delite.store._derive'"
    )
    assert "delite.store._derive" in _modules(probe)


def test_opening_and_streaming_import_what_they_need() -> None:
    """An agent that opens its data directory brings the opener and the layout; a stream, the event classes."""
    opened = _modules(
        "import tempfile\nfrom delite import Agent, ScriptedProvider\n"
        "a = Agent(tempfile.mkdtemp(), provider=ScriptedProvider(['hi']))\n"
        "s = a.stream_events('hello')\nprint([type(e).__name__ for e in s])\na.close()"
    )
    for module in ("delite.store._open", "delite.store._layout", "delite.engine._events"):
        assert module in opened


def test_a_run_and_a_resume_on_a_file_store_import_neither_pathlib_nor_hashlib() -> None:
    """The store's paths are strings: pathlib (with urllib.parse and ipaddress) was a third of opening one.

    SHA-256 comes from OpenSSL's ``_hashlib`` directly (``delite.log._digest``): ``hashlib`` builds a table of
    every algorithm and loads ``_blake2``, and ``hmac`` comes with it.
    """
    ran = _modules(
        "import tempfile\nfrom delite import Agent, ScriptedProvider\n"
        "with Agent(tempfile.mkdtemp(), provider=ScriptedProvider(['hi'])) as a:\n"
        "    r = a.run('hello')\n    a.resume(r.execution_id)"
    )
    assert "delite.store._file" in ran
    assert sorted(m for m in ("pathlib", "urllib.parse", "ipaddress", "hashlib", "hmac", "_blake2") if m in ran) == []
    assert "_hashlib" in ran


# Counts the forward references typing makes from string annotations (each one a ``compile``). msgspec resolves
# a type's annotations the first time an encoder or decoder meets it, in every fresh process; a NamedTuple
# resolves its own when defined. msgspec's own import-time probe (a ForwardRef("Foo")) is not delite's.
_FORWARD_REFS = r"""
import sys, typing
made = []
real = typing.ForwardRef.__init__
def spy(self, arg, *args, **kwargs):
    caller = sys._getframe(1)
    if not (caller.f_globals.get("__name__") == "msgspec._utils" and caller.f_code.co_name == "<module>"):
        made.append(arg)
    real(self, arg, *args, **kwargs)
typing.ForwardRef.__init__ = spy
"""

_CRASHING_RUN = r"""
import os, sys
from delite import Agent, ScriptedProvider, tool

@tool
def noop(i: int) -> dict:
    "A step."
    if i == 199:
        os._exit(3)
    return {"ok": i, "pad": "x" * 200}

with Agent(sys.argv[1], provider=ScriptedProvider.tool_loop(200, "noop"), tools=[noop], durability="off") as a:
    a.run("go", execution_id="long")
"""

_RECOVERY = r"""
import os, sys
from delite import Agent, Runtime, ScriptedProvider, tool

@tool
def noop(i: int) -> dict:
    "A step."
    return {"ok": i, "pad": "x" * 200}

data = sys.argv[1]
assert os.listdir(os.path.join(data, "checkpoints")) == ["long.ckpt"]  # the resume starts from a fold checkpoint
rt = Runtime(data)
Agent(data, runtime=rt, provider=ScriptedProvider.tool_loop(200, "noop"), tools=[noop])
rt.start()
assert rt.recovered == ["long"], rt.recovered
assert rt.wait("long", timeout=60).status == "completed"
rt.shutdown()
with Agent(data, provider=ScriptedProvider.tool_loop(200, "noop"), tools=[noop]) as a:
    assert a.resume("long").status == "completed"
print("forward references:", made)
"""


def test_recovering_and_resuming_compile_no_string_annotation(tmp_path: Path) -> None:
    """Import, open, recover from a fold checkpoint through a Runtime, list, resume: no annotation compiled.

    The types msgspec encodes or decodes (records, the folded state, checkpoint and snapshot bodies, the
    listing's summaries) are defined with real annotations; 175 strings compiled at import and 79 more on a
    resume cost about 5 ms of a fresh process before (docs/benchmarks.md).
    """
    data = str(tmp_path / "data")
    crashed = subprocess.run([sys.executable, "-c", _CRASHING_RUN, data], check=False, capture_output=True)
    assert crashed.returncode == 3, crashed.stderr
    out = subprocess.run(
        [sys.executable, "-c", _FORWARD_REFS + _RECOVERY, data], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1] == "forward references: []", out.stdout
