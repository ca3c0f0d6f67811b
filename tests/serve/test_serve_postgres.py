"""``delite serve --data-dir postgresql://...``: the real command over a PostgreSQL store.

The server is its own process (``python -m delite_cli serve``) on a throwaway database (the ``pg_url``
fixture), with the CLI's scenario agent. The API lists, filters, searches and pages; a plain HTTP client
follows the event stream and resumes it from ``Last-Event-ID``; two approvals at once have one winner; an
answer is advanced to the end; and a browser answers a question and watches the execution complete.
"""

from __future__ import annotations

import http.client
import json
import os
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
from cdp import Browser, chromium
from conftest import TOKEN, populate

pytestmark = pytest.mark.timeout(180)

CLI = Path(__file__).resolve().parents[1] / "cli"


class PgServed:
    """``delite serve`` over a PostgreSQL URL in a process of its own, and a bearer-token client for it."""

    def __init__(self, url: str, *, agent: bool) -> None:
        env = {**os.environ, "DELITE_SERVE_TOKEN": TOKEN, "PYTHONPATH": os.pathsep.join([str(CLI), *sys.path])}
        args = [sys.executable, "-m", "delite_cli", "serve", "--data-dir", url, "--port", "0"]
        if agent:
            args += ["--agent", "scenario_agent:build"]
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.first = self.proc.stdout.readline()
        assert " on http://127.0.0.1:" in self.first, self.first + (self.proc.stderr.read() if self.proc.stderr else "")
        self.base = self.first.split(" on ", 1)[1].strip().rstrip("/")
        self.port = int(self.base.rsplit(":", 1)[1])

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=15) as r:  # noqa: S310 - a loopback URL
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            with e:
                return e.code, json.load(e)

    def wait_status(self, eid: str, status: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            _, got = self.call("GET", f"/api/executions/{eid}")
            if got["execution"]["status"] == status and not got["advancing"]:
                return dict(got)
            assert time.monotonic() < deadline, got["execution"]["status"]
            time.sleep(0.1)


@pytest.fixture
def pg_data(pg_url: str) -> str:
    populate(pg_url)
    return pg_url


@pytest.fixture
def pg_served(pg_data: str) -> Iterator[PgServed]:
    s = PgServed(pg_data, agent=True)
    yield s
    err = s.stop()
    assert "Traceback" not in err, err


def _events(port: int, path: str, last: str | None, until: str) -> list[tuple[str, str]]:
    """``(event, id)`` pairs read from the stream by a plain HTTP client, up to the first ``until`` event."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"authorization": f"Bearer {TOKEN}", "accept": "text/event-stream"}
    if last is not None:
        headers["last-event-id"] = last
    conn.request("GET", path, headers=headers)
    reply = conn.getresponse()
    assert reply.status == 200 and reply.getheader("content-type", "").startswith("text/event-stream")
    found: list[tuple[str, str]] = []
    kind, ident = "", ""
    try:
        while True:
            line = reply.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("id: "):
                ident = line[4:]
            elif line == "" and kind:
                found.append((kind, ident))
                if kind == until:
                    return found
                kind, ident = "", ""
    finally:
        conn.close()


def test_the_api_on_postgresql(pg_served: PgServed, pg_url: str) -> None:
    assert "postgresql://" in pg_served.first
    password = pg_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert not password or password not in pg_served.first  # the URL is shown redacted

    status, page = pg_served.call("GET", "/api/executions?status=waiting_approval")
    assert status == 200 and {e["id"] for e in page["items"]} == {"approve-1", "approve-2"}
    _, page = pg_served.call("GET", "/api/executions?limit=3&offset=3")
    assert page["total"] == 8 and len(page["items"]) == 3
    _, page = pg_served.call("GET", "/api/executions?meta=thread_id=t-2")
    assert [e["id"] for e in page["items"]] == ["approve-1"]
    _, page = pg_served.call("GET", "/api/executions?q=INVOICE")
    assert [e["id"] for e in page["items"]] == ["approve-1"]
    status, body = pg_served.call("GET", "/api/executions/nope")
    assert status == 404 and body["error"]["type"] == "ExecutionNotFoundError"
    _, usage = pg_served.call("GET", "/api/usage")
    assert usage["total"]["executions"] == 8 and [r["key"] for r in usage["agents"]] == ["ops"]

    # two approvals at once: one wins, the other is told so, and the winner's answer is advanced to the end
    results: list[tuple[int, Any]] = []
    barrier = threading.Barrier(2)

    def approve() -> None:
        barrier.wait()
        results.append(pg_served.call("POST", "/api/executions/approve-1/approve", {"reason": "checked"}))

    threads = [threading.Thread(target=approve) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in results) == [200, 409], results
    lost = next(b for s, b in results if s == 409)
    assert lost["error"]["type"] in ("AlreadyDecidedError", "ExecutionAlreadyClaimedError")
    done = pg_served.wait_status("approve-1", "completed")
    assert done["execution"]["answer"] == "Paid."

    # the stream from a plain HTTP client: every record, then resumed after the one it saw last
    every = _events(pg_served.port, "/api/executions/approve-1/stream", None, "end")
    records = [i for k, i in every if k == "record"]
    assert records == [str(n) for n in range(1, len(records) + 1)] and every[-1][0] == "end"
    rest = _events(pg_served.port, "/api/executions/approve-1/stream", records[2], "end")
    assert [i for k, i in rest if k == "record"] == records[3:]


def test_a_browser_answers_on_postgresql(pg_served: PgServed, tmp_path: Path) -> None:
    if chromium() is None:
        pytest.skip("needs Debian's chromium (installed by .ci/run)")
    browser = Browser()
    try:
        page = browser.page()
        page.goto(f"{pg_served.base}/executions/input-1?token={TOKEN}")
        page.wait_for("!!document.querySelector('form[data-action=input] textarea')")
        page.js("window.sameDocument = 'yes'")
        page.type("form[data-action=input] textarea", "Lisbon")
        page.click("form[data-action=input] button")
        page.wait_for("document.querySelector('#live').dataset.status === 'completed'")
        assert page.js("window.sameDocument") == "yes"  # followed live, never reloaded
        assert page.js("document.querySelector('.text.answer').textContent") == "Booked Lisbon."
        png = page.screenshot()
        (tmp_path / "postgres.png").write_bytes(png)
        assert len(png) > 5000
        assert page.events("Runtime.exceptionThrown") == []
    finally:
        browser.close()
