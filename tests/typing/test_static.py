"""The library and the CLI are ruff-clean and pass mypy --strict; a user's typed script type-checks against the
installed package (the README's install must be visible to type checkers, not only to the interpreter)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A user's script as the README and the seeds write it: no asserts or casts needed for a suspended response.
USER_SCRIPT = """
from __future__ import annotations

from delite import Agent, Budget, Response, ScriptedProvider, current_idempotency_key, tool
from delite.providers import call


@tool(description="Refund an order", requires_confirmation=True)
def refund(order_id: int) -> str:
    key: str | None = current_idempotency_key()
    return f"refunded {order_id} ({key})"


def main(data_dir: str) -> str:
    model = ScriptedProvider([call("refund", order_id=1), "ok"])
    with Agent(data_dir, provider=model, tools=[refund]) as agent:
        agent.budget = Budget(max_llm_calls=10)
        r: Response = agent.run("Refund order 1")
        if r.suspend_reason is not None and r.suspend_reason.confirmation_id is not None:
            agent.approve(r.execution_id, r.suspend_reason.confirmation_id)
            r = agent.resume(r.execution_id)
        return r.answer or ""
"""


def _run(*cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def test_ruff_clean() -> None:
    # Through the interpreter: ruff is in the test extra, so a missing ruff fails here instead of skipping.
    out = _run(sys.executable, "-m", "ruff", "check", "--quiet", ".", cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_strict() -> None:
    out = _run(sys.executable, "-m", "mypy", cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_users_typed_script_passes_mypy_strict(tmp_path: Path) -> None:
    # Outside the checkout, so mypy finds delite only through the installed distribution (its .pth and py.typed).
    (tmp_path / "user.py").write_text(textwrap.dedent(USER_SCRIPT))
    out = _run(sys.executable, "-m", "mypy", "--strict", "--no-incremental", "user.py", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
