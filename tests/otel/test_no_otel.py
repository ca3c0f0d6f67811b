"""Without OpenTelemetry: importing delite never imports it, and instrument() still writes the log lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = str(Path(__file__).parent)

BLOCK = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Block())
"""


def run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path
    )


def test_importing_delite_never_imports_opentelemetry(tmp_path: Path) -> None:
    code = (
        "import sys, delite, delite.telemetry, delite_cli.main\n"
        "from delite import Agent, ScriptedProvider\n"
        "Agent('./data', provider=ScriptedProvider(['hi'])).run('x')\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = run(code, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_without_the_api_spans_are_a_no_op_and_log_lines_still_come(tmp_path: Path) -> None:
    code = BLOCK + (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s', stream=sys.stdout)\n"
        "from delite import Agent, ScriptedProvider, telemetry\n"
        "inst = telemetry.instrument()\n"
        "assert inst.tracing is False, inst\n"
        "r = Agent('./data', provider=ScriptedProvider(['hi'])).run('x')\n"
        "assert r.answer == 'hi' and inst.errors == 0, inst\n"
        "try:\n"
        "    telemetry.instrument(tracer_provider=object())\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n"
        "print(telemetry.otlp_json('./data', r.execution_id)['resourceSpans'][0]['scopeSpans'][0]['spans'][0]['name'])\n"
    )
    out = run(code, tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("delite ")] == [
        "execution_started",
        "model_responded",
        "execution_completed",
    ]
    assert lines[-2:] == ["UsageError", "invoke_agent default"]
