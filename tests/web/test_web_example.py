"""The example web app, served by uvicorn on 127.0.0.1 in a child process, driven by a real HTTP client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.web.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "info",
        ],
        cwd=ROOT,
        env={**os.environ, "DELITE_DATA_DIR": str(tmp_path / "data")},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    url = None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        match = re.search(r"running on (http://127\.0\.0\.1:\d+)", line, re.IGNORECASE)
        if match:
            url = match.group(1)
            break
        if not line and proc.poll() is not None:
            break
    assert url, "".join(lines)
    drain = threading.Thread(target=proc.stderr.read, daemon=True)  # keep draining the log
    drain.start()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        drain.join(timeout=10)
        proc.stderr.close()


def post(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body or {}).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"}, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - loopback only
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_approval_flow_and_concurrent_approvals(server: str) -> None:
    status, run = post(f"{server}/runs", {"text": "refund order 42", "flow": "refund"})
    assert status == 200 and run["status"] == "waiting_approval"
    eid = run["execution_id"]
    assert run["suspend_reason"]["calls"][0]["name"] == "refund"

    results: list[tuple[int, dict[str, Any]]] = []
    barrier = threading.Barrier(2)

    def approve() -> None:
        barrier.wait()
        results.append(post(f"{server}/runs/{eid}/approval", {"approved": True}))

    threads = [threading.Thread(target=approve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(code for code, _ in results)
    assert codes == [200, 409], results
    ok = next(body for code, body in results if code == 200)
    assert ok["status"] == "completed" and "refunded" in ok["answer"]
    assert get(f"{server}/runs/{eid}")[1]["status"] == "completed"


def test_client_tool_input_cancel_and_error_mapping(server: str) -> None:
    _, run = post(f"{server}/runs", {"text": "cancel my order", "flow": "confirm"})
    eid = run["execution_id"]
    assert run["status"] == "waiting_client_tool"
    call_id = run["suspend_reason"]["calls"][0]["id"]
    assert post(f"{server}/runs/{eid}/tool-results", {"results": {"nope": 1}})[0] == 400
    assert post(f"{server}/runs/{eid}/input", {"text": "x"})[0] == 409
    code, done = post(f"{server}/runs/{eid}/tool-results", {"results": {call_id: "yes"}})
    assert code == 200 and done["answer"] == "Done: yes"

    _, ask = post(f"{server}/runs", {"text": "help", "flow": "clarify"})
    assert ask["status"] == "waiting_human_input" and ask["suspend_reason"]["question"] == "Which order?"
    assert post(f"{server}/runs/{ask['execution_id']}/input", {"text": "42"})[1]["answer"] == "Done: 42"

    _, pending = post(f"{server}/runs", {"text": "refund", "flow": "refund"})
    code, cancelled = post(f"{server}/runs/{pending['execution_id']}/cancel")
    assert code == 200 and cancelled["status"] == "cancelled"
    assert post(f"{server}/runs/{pending['execution_id']}/approval", {"approved": True})[0] == 409

    assert get(f"{server}/runs/does-not-exist") == (
        404,
        {"error": "ExecutionNotFoundError", "message": "execution 'does-not-exist' not found"},  # no server path
    )
    assert get(f"{server}/runs/bad..id")[0] == 400


def test_idempotency_key_over_http(server: str) -> None:
    _, first = post(f"{server}/runs", {"text": "refund", "flow": "refund", "idempotency_key": "req-7"})
    _, again = post(f"{server}/runs", {"text": "refund", "flow": "refund", "idempotency_key": "req-7"})
    assert first["execution_id"] == again["execution_id"]
    code, conflict = post(f"{server}/runs", {"text": "other", "flow": "refund", "idempotency_key": "req-7"})
    assert code == 409 and conflict["error"] == "IdempotencyConflictError"


def race(url: str, bodies: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """POST every body to ``url`` at the same moment, from one thread each."""
    results: list[tuple[int, dict[str, Any]]] = []
    barrier = threading.Barrier(len(bodies))

    def send(body: dict[str, Any]) -> None:
        barrier.wait()
        results.append(post(url, body))

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


STATE_ERRORS = {
    "AlreadyDecidedError",
    "ExecutionAlreadyClaimedError",
    "ExecutionAlreadyTerminalError",
    "ExecutionNotSuspendedError",
    "SuspendKindMismatchError",
}


def test_racing_client_results_and_answers_get_one_200_and_409s(server: str) -> None:
    """Every kind of answer over HTTP: one request wins, every other one gets 409 with a state error."""
    for flow, path, bodies in [
        ("confirm", "tool-results", [{"results": {"c1.0": f"answer {i}"}} for i in range(3)]),
        ("clarify", "input", [{"text": f"order {i}"} for i in range(3)]),
        ("refund", "approval", [{"approved": True}, {"approved": False}, {"decisions": {"c1.0": True}}]),
    ]:
        _, run = post(f"{server}/runs", {"text": "go", "flow": flow})
        eid = run["execution_id"]
        assert run["suspend_reason"]["calls"][0]["id"] == "c1.0"
        results = race(f"{server}/runs/{eid}/{path}", bodies)
        codes = sorted(code for code, _ in results)
        assert codes == [200, 409, 409], results
        assert all(body["error"] in STATE_ERRORS for code, body in results if code == 409), results
        done = next(body for code, body in results if code == 200)
        assert done["status"] == "completed"
        assert get(f"{server}/runs/{eid}")[1]["answer"] == done["answer"]


def raw_post(url: str, data: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"}, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - loopback only
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_malformed_requests_get_400_with_a_json_error_and_change_nothing(server: str, tmp_path: Path) -> None:
    _, run = post(f"{server}/runs", {"text": "refund order 42", "flow": "refund"})
    eid = run["execution_id"]
    bodies: list[tuple[str, bytes]] = [
        ("/runs", b"{not json"),
        ("/runs", b""),
        ("/runs", b"\xff\xfe"),
        ("/runs", b"[1, 2]"),
        ("/runs", b'"text"'),
        ("/runs", b"{}"),
        ("/runs", b'{"text": 5}'),
        ("/runs", b'{"text": "x", "flow": "no-such-flow"}'),
        ("/runs", b'{"text": "x", "history": "not a list"}'),
        ("/runs", b'{"text": "x", "model": 3}'),
        (f"/runs/{eid}/approval", b"{}"),
        (f"/runs/{eid}/approval", b"null"),
        (f"/runs/{eid}/approval", b'{"decisions": [1]}'),
        (f"/runs/{eid}/tool-results", b"{}"),
        (f"/runs/{eid}/tool-results", b'{"results": [1, 2]}'),
        (f"/runs/{eid}/input", b'{"answer": "x"}'),
        (f"/runs/{eid}/input", b"{oops"),
    ]
    for path, data in bodies:
        code, body = raw_post(server + path, data)
        assert code == 400, (path, data, code, body)
        assert body["error"] == "BadRequestError" and body["message"], (path, data, body)
    # Nothing was started or changed by any of them.
    assert [p.stem for p in (tmp_path / "data" / "executions").glob("*.log")] == [eid]
    code, shown = get(f"{server}/runs/{eid}")
    assert code == 200 and shown["status"] == "waiting_approval"
    code, listed = post(f"{server}/runs/{eid}/approval", {"approved": True})
    assert code == 200 and listed["status"] == "completed"
