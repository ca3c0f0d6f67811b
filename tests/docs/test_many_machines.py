"""The README's "Many machines" commands, run for real: two ``delite worker`` processes serving
``examples/fleet/app.py``, executions enqueued, one worker SIGKILLed in the middle of its charges, the other
finishing everything, with the example's ledger of real side effects checked at the end.

On a data directory (several workers on one machine) and on a throwaway PostgreSQL (``pg_url``). Skipped where
the worker command does not exist yet (the fleet work) or the extra is missing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _env(store: str, ledger: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DELITE_", "FLEET_"))}
    env.update(
        DELITE_DATA_DIR=store,
        FLEET_LEDGER=str(ledger),
        FLEET_CHARGE_SECONDS="0.4",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "cli")]),
    )
    return env


def _worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "delite_cli", "worker", "--agent", "examples.fleet.app:build", "--concurrency", "4"]
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _app(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "examples.fleet.app", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ledger(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _many_machines(store: str, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    env = _env(store, ledger)
    first = _worker(env, tmp_path / "worker-1.log")
    second = _worker(env, tmp_path / "worker-2.log")
    try:
        ids = _app(env, "enqueue", "12").split()
        assert len(ids) == 12
        deadline = time.monotonic() + 60
        while not any(e["pid"] == first.pid for e in _ledger(ledger)):  # the first worker is charging
            assert time.monotonic() < deadline, (tmp_path / "worker-1.log").read_text()
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # in the middle of its other charges
        first.wait(timeout=30)
        while "12 of 12 executions completed" not in _app(env, "report"):
            assert time.monotonic() < deadline + 60, _app(env, "report") + (tmp_path / "worker-2.log").read_text()
            time.sleep(0.2)
        report = _app(env, "report")
        assert "36 charges, 0 made twice" in report, report
        entries = _ledger(ledger)
        attempts = Counter(str(e["key"]) for e in entries if e["event"] == "started")
        assert len(attempts) == 36  # three calls per execution, each with its own key
        retried = [k for k, n in attempts.items() if n > 1]
        # only the calls the killed worker was inside ran again (once more each, on the other worker, same key)
        assert 1 <= len(retried) <= 4 and all(attempts[k] == 2 for k in retried)
        assert f"{len(retried)} calls ran again" in report
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, (tmp_path / "worker-2.log").read_text()  # drained, nothing left
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_readme_shows_these_commands() -> None:
    section = README.split("## Many machines", 1)[1].split("\n## ", 1)[0]
    for command in (
        "delite migrate --apply",
        "delite worker --agent examples.fleet.app:build --concurrency 4",
        "python -m examples.fleet.app enqueue 12",
        "kill -9 $W1",
        "python -m examples.fleet.app report",
        "kill $W2",
    ):
        assert command in section, command


def test_many_workers_on_a_data_directory(tmp_path: Path) -> None:
    _many_machines(str(tmp_path / "data"), tmp_path)


def test_many_workers_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    _many_machines(pg_url, tmp_path)
