"""The JSON API of ``delite serve`` on every store: reads, actions with the engine's race semantics, the
error-to-status mapping of docs/reference/errors.md, the event stream, and who may call it."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import scenario_agent
from conftest import TOKEN, Server

from delite import Agent, ScriptedProvider, delegate, tool
from delite.providers import call
from delite.store import Store
from delite_cli._serve import ServeConfig
from delite_cli._serve._app import CSP
from delite_cli._target import Target


def test_list_filters_paging_and_search(recorder: Server) -> None:
    page = recorder.get("/api/executions").json()
    ids = {e["id"] for e in page["items"]}
    assert ids >= {"done-1", "approve-1", "approve-2", "client-1", "input-1", "doubt-1", "failed-1", "hostile-1"}
    assert page["total"] == len(page["items"]) == 8

    waiting = recorder.get("/api/executions?status=waiting").json()
    assert {e["id"] for e in waiting["items"]} == {"approve-1", "approve-2", "client-1", "input-1", "doubt-1"}
    both = recorder.get("/api/executions?status=completed&status=failed").json()
    assert {e["id"] for e in both["items"]} == {"done-1", "failed-1", "hostile-1"}
    meta = recorder.get("/api/executions?meta=thread_id=t-2").json()
    assert [e["id"] for e in meta["items"]] == ["approve-1"]
    assert [e["id"] for e in recorder.get("/api/executions?meta=user=7").json()["items"]] == ["done-1"]
    assert recorder.get("/api/executions?agent=nobody").json()["total"] == 0
    assert recorder.get("/api/executions?since=1h").json()["total"] == 8
    assert recorder.get("/api/executions?until=2000-01-01").json()["total"] == 0

    first = recorder.get("/api/executions?limit=3").json()
    second = recorder.get("/api/executions?limit=3&offset=3").json()
    assert len(first["items"]) == len(second["items"]) == 3 and first["total"] == 8
    assert not {e["id"] for e in first["items"]} & {e["id"] for e in second["items"]}

    # search: by id (a unique piece of one), by text in the input, by metadata
    assert [e["id"] for e in recorder.get("/api/executions?q=doubt").json()["items"]] == ["doubt-1"]
    assert [e["id"] for e in recorder.get("/api/executions?q=TRIP").json()["items"]] == ["input-1"]
    assert [e["id"] for e in recorder.get("/api/executions?q=t-2").json()["items"]] == ["approve-1"]
    assert recorder.get("/api/executions?q=nothing-like-this").json()["total"] == 0


@pytest.mark.parametrize(
    "query",
    ["status=bogus", "since=yesterday", "meta=novalue", "limit=-1", "limit=100000", "offset=x", "limit=1&limit=2"],
)
def test_bad_filters_are_400(recorder: Server, query: str) -> None:
    r = recorder.get(f"/api/executions?{query}")
    assert r.status == 400, r.text
    assert r.json()["error"]["type"] == "UsageError"


def test_reads_of_one_execution(recorder: Server) -> None:
    got = recorder.get("/api/executions/approve-1").json()
    assert got["execution"]["status"] == "waiting_approval" and got["pending"] == ["c1.0"]
    assert got["advancing"] is False
    export = recorder.get("/api/executions/approve-1/export").json()
    assert export["format"] == "delite-export/1" and export["execution"]["id"] == "approve-1"
    events = recorder.get("/api/executions/done-1/events?after=2").json()
    assert [e["seq"] for e in events] == list(range(3, len(events) + 3))
    assert events[-1]["kind"] == "execution-completed"
    # a unique suffix names one execution, as in the CLI
    assert recorder.get("/api/executions/nt-1").json()["execution"]["id"] == "client-1"


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/api/executions/nope-nope", 404, "ExecutionNotFoundError"),
        ("/api/executions/approve", 400, "AmbiguousExecutionIdError"),
        ("/api/executions/a%20b", 400, "InvalidExecutionIdError"),
        ("/api/executions/done-1/events?after=-3", 400, "UsageError"),
        ("/api/nothing", 404, "NotFound"),
    ],
)
def test_errors_map_to_statuses(recorder: Server, path: str, status: int, kind: str) -> None:
    r = recorder.get(path)
    assert r.status == status, r.text
    assert r.json()["error"]["type"] == kind and r.json()["error"]["status"] == status


def test_approve_without_agent_records_and_says_who_advances(recorder: Server) -> None:
    r = recorder.post("/api/executions/approve-1/approve", {"reason": "ok by me"})
    assert r.status == 200, r.text
    body = r.json()
    assert body["calls"] == ["c1.0"] and body["advancing"] is False
    assert body["status"] == "waiting_approval" and "delite resume approve-1 --agent" in body["note"]
    export = recorder.get("/api/executions/approve-1/export").json()
    decision = export["tool_calls"][0]["decision"]
    assert decision["approved"] is True and decision["reason"] == "ok by me"

    again = recorder.post("/api/executions/approve-1/reject", {"reason": "no"})
    assert again.status == 409 and again.json()["error"]["type"] == "AlreadyDecidedError"


def test_approve_with_agent_advances_to_the_end(advancer: Server) -> None:
    r = advancer.post("/api/executions/approve-1/approve", {})
    assert r.status == 200 and r.json()["advancing"] is True, r.text
    got = advancer.wait_status("approve-1", "completed")
    assert got["execution"]["answer"] == "Paid."
    lost = advancer.post("/api/executions/approve-1/approve", {})
    assert lost.status == 409
    assert lost.json()["error"]["type"] in {"AlreadyDecidedError", "ExecutionAlreadyTerminalError"}


def test_two_calls_need_names_or_all(advancer: Server) -> None:
    r = advancer.post("/api/executions/approve-2/approve", {})
    assert r.status == 400 and "name them" in r.json()["error"]["message"]
    assert advancer.post("/api/executions/approve-2/approve", {"calls": ["c1.9"]}).status == 400
    one = advancer.post("/api/executions/approve-2/approve", {"calls": ["c1.0"]}).json()
    assert one["advancing"] is False and one["note"] == "recorded; the execution still waits on other answers"
    rest = advancer.post("/api/executions/approve-2/reject", {"all": True, "reason": "once is enough"}).json()
    assert rest["calls"] == ["c1.1"] and rest["advancing"] is True
    assert advancer.wait_status("approve-2", "completed")["execution"]["answer"] == "Paid both."


def test_one_winner_of_many_approvers_at_once(advancer: Server) -> None:
    results: list[int] = []
    barrier = threading.Barrier(6)

    def approve() -> None:
        barrier.wait()
        results.append(advancer.post("/api/executions/approve-1/approve", {"reason": "me"}).status)

    threads = [threading.Thread(target=approve) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 5, results
    advancer.wait_status("approve-1", "completed")
    export = advancer.get("/api/executions/approve-1/export").json()
    assert sum(e["kind"] == "decision-recorded" for e in export["events"]) == 1


_HOLDER = """
import os, sys, time
from delite.store import FileStore
stop = sys.argv[2]
with FileStore(sys.argv[1]).claim("approve-1"):
    print("held", flush=True)
    while not os.path.exists(stop):
        time.sleep(0.01)
"""


@pytest.mark.parametrize("store_kind", ["file"])
def test_an_answered_execution_advances_after_another_claim_lets_go(advancer: Server, tmp_path: Path) -> None:
    """A claim in the way when the advance starts (a loser's, a second server's) delays it, never drops it."""
    agent = scenario_agent.build(str(tmp_path / "data"))
    try:
        pending = agent.get("approve-1").suspend_reason
        assert pending is not None
        agent.approve("approve-1", pending.confirmation_ids[0])  # recorded, not advanced
    finally:
        agent.close()
    stop = tmp_path / "stop"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "data"), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        operator = advancer.config.operator
        operator._start("approve-1")
        time.sleep(0.5)
        assert operator.advancing("approve-1")  # still trying while the claim is held
    finally:
        stop.touch()
        holder.communicate(timeout=30)
    got = advancer.wait_status("approve-1", "completed")
    assert got["execution"]["answer"] and operator.failures == {}


def test_answer_client_results_and_in_doubt(advancer: Server) -> None:
    assert advancer.post("/api/executions/input-1/input", {"text": "Lisbon"}).status == 200
    assert advancer.wait_status("input-1", "completed")["execution"]["answer"] == "Booked Lisbon."
    assert advancer.post("/api/executions/input-1/input", {"text": "Rome"}).status == 409

    assert advancer.post("/api/executions/client-1/tool-results", {"results": {"c9.9": "x"}}).status == 400
    assert advancer.post("/api/executions/client-1/tool-results", {"results": {"c1.0": "Oslo"}}).status == 200
    assert advancer.wait_status("client-1", "completed")["execution"]["answer"] == "You are in Oslo."

    wrong = advancer.post("/api/executions/failed-1/input", {"text": "hello"})
    assert wrong.status == 409 and wrong.json()["error"]["type"] == "ExecutionNotSuspendedError"
    assert advancer.post("/api/executions/approve-1/input", {"text": "hi"}).json()["error"]["type"] == (
        "SuspendKindMismatchError"
    )


def test_bad_bodies_are_400(recorder: Server) -> None:
    for body in (
        {"calls": "c1.0"},
        {"all": "yes"},
        {"unknown": 1},
        {"reason": 5},
    ):
        r = recorder.post("/api/executions/approve-1/approve", body)
        assert r.status == 400 and r.json()["error"]["type"] == "UsageError", (body, r.text)
    assert recorder.post("/api/executions/approve-1/approve", raw=b"[1]").status == 400
    conn = http.client.HTTPConnection("127.0.0.1", recorder.port, timeout=10)
    conn.putrequest("POST", "/api/executions/input-1/input")  # a body over the limit is refused before it is read
    for key, value in {"authorization": f"Bearer {TOKEN}", "content-length": str(9 << 20)}.items():
        conn.putheader(key, value)
    conn.endheaders()
    too_big = conn.getresponse()
    assert too_big.status == 413 and "over" in json.loads(too_big.read())["error"]["message"]
    conn.close()
    assert recorder.post("/api/executions/approve-1/approve", raw=b"{nope").status == 400
    dup = recorder.post("/api/executions/client-1/tool-results", raw=b'{"results": {"c1.0": 1, "c1.0": 2}}')
    assert dup.status == 400 and "twice" in dup.json()["error"]["message"]
    assert recorder.post("/api/executions/doubt-1/resolve", {"call_id": "c1.0"}).status == 400
    assert (
        recorder.post("/api/executions/doubt-1/resolve", {"call_id": "c1.0", "error": "x", "rerun": True}).status == 400
    )
    assert recorder.post("/api/executions/done-1/fork", {"at": "1"}).status == 400
    assert recorder.post("/api/executions/done-1/nothing", {}).status == 404
    # nothing of it was recorded
    assert recorder.get("/api/executions/approve-1").json()["pending"] == ["c1.0"]


def test_resolve_cancel_fork_and_resume(advancer: Server, recorder: Server) -> None:
    # doubt-1 crashed inside a tool that is not safe to repeat: it waits for an operator to say what happened
    assert advancer.get("/api/executions/doubt-1").json()["execution"]["status"] == "suspended"
    settled = advancer.post("/api/executions/doubt-1/resolve", {"call_id": "c1.0", "result": "moved 100"})
    assert settled.status == 200 and settled.json()["advancing"] is True
    assert advancer.wait_status("doubt-1", "completed")["execution"]["answer"] == "Transferred."
    assert advancer.post("/api/executions/doubt-1/resolve", {"call_id": "c1.0", "rerun": True}).status == 409

    cancelled = recorder.post("/api/executions/input-1/cancel", {"reason": "no longer needed"}).json()
    assert cancelled["status"] == "cancelled" and cancelled["cancel_pending"] is False
    assert recorder.post("/api/executions/input-1/input", {"text": "late"}).status == 409

    forked = recorder.post("/api/executions/done-1/fork", {"at": 1, "id": "done-1-fork"})
    assert forked.status == 201 and forked.json()["execution_id"] == "done-1-fork"
    assert recorder.post("/api/executions/done-1/fork", {"at": 1, "id": "done-1-fork"}).status == 409
    assert recorder.post("/api/executions/done-1/fork", {"at": 9}).status == 400
    no_agent = recorder.post("/api/executions/done-1-fork/resume", {})
    assert no_agent.status == 400 and "--agent" in no_agent.json()["error"]["message"]
    resumed = advancer.post("/api/executions/done-1-fork/resume", {})
    assert resumed.status == 200 and resumed.json()["advancing"] is True
    assert advancer.wait_status("done-1-fork", "completed")["execution"]["answer"] == "The sum is 5."


def test_usage_per_agent_and_day(recorder: Server) -> None:
    u = recorder.get("/api/usage").json()
    assert [r["key"] for r in u["agents"]] == ["ops"]
    ops = u["agents"][0]
    assert ops["executions"] == 8 == u["total"]["executions"] and len(u["days"]) == 1
    assert float(ops["cost"]) == pytest.approx(0.0015 * ops["llm_calls"])
    assert ops["total_tokens"] == u["days"][0]["total_tokens"] > 0
    searched = recorder.get("/api/usage?q=invoice").json()
    assert searched["total"]["executions"] == 1 and searched["total"]["cost"] == "0.0015"
    assert recorder.get("/api/usage?status=completed").json()["total"]["executions"] == 2


def _stream(server: Server, path: str, headers: dict[str, str], *, until: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers={"authorization": f"Bearer {TOKEN}", **headers})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("content-type", "").startswith("text/event-stream")
    got = b""
    while until.encode() not in got:
        chunk = r.read1(65536)
        assert chunk, got
        got += chunk
    conn.close()
    return got.decode()


def _ids(text: str) -> list[int]:
    return [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]


def test_event_stream_resumes_after_last_event_id(recorder: Server) -> None:
    whole = _stream(recorder, "/api/executions/done-1/stream", {}, until="event: end")
    seqs = _ids(whole)
    assert seqs[:-1] == list(range(1, len(seqs))) and seqs[-1] == seqs[-2]  # the end event repeats the last id
    records = [json.loads(line[6:]) for line in whole.splitlines() if line.startswith('data: {"seq"')]
    assert records[0]["kind"] == "execution-started" and records[-1]["kind"] == "execution-completed"
    later = _stream(recorder, "/api/executions/done-1/stream", {"last-event-id": "3"}, until="event: end")
    assert _ids(later)[0] == 4 and _ids(later)[:-1] == seqs[3:-1]
    at_end = _stream(recorder, "/api/executions/done-1/stream", {"last-event-id": str(seqs[-1])}, until="event: end")
    assert "event: record" not in at_end
    bad = recorder.get("/api/executions/done-1/stream", headers={"last-event-id": "x"})
    assert bad.status == 400


def test_the_stream_follows_a_running_execution(advancer: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", advancer.port, timeout=15)
    conn.request("GET", "/api/executions/approve-1/stream", headers={"authorization": f"Bearer {TOKEN}"})
    r = conn.getresponse()
    first = ""
    while "execution-suspended" not in first:  # the records so far, up to the suspension
        chunk = r.read1(65536)
        assert chunk, first
        first += chunk.decode()
    time.sleep(0.3)
    assert advancer.post("/api/executions/approve-1/approve", {}).status == 200
    got = first
    while "event: end" not in got:
        chunk = r.read1(65536)
        assert chunk
        got += chunk.decode()
    assert "decision-recorded" in got and "execution-completed" in got
    conn.close()


def _team(where: str | Store) -> Agent:
    """A manager that delegates to an accountant, whose payment needs an approval."""
    store = where if isinstance(where, Store) else None
    data = None if store is not None else where

    @tool(requires_confirmation=True)
    def pay(invoice: str) -> str:
        """Pay."""
        return f"paid {invoice}"

    child = Agent(
        data,
        store=store,
        agent_id="accountant",
        provider=ScriptedProvider([call("pay", invoice="I-1"), "paid"]),
        tools=[pay],
    )

    @tool
    def settle(invoice: str) -> str:
        """Delegate."""
        return delegate(child, f"settle {invoice}").answer or ""

    return Agent(
        data,
        store=store,
        agent_id="manager",
        provider=ScriptedProvider([call("settle", invoice="I-1"), "ok"]),
        tools=[settle],
    )


def test_sub_agents_are_linked_both_ways(target: Target) -> None:
    _team(target.factory_argument).run("settle I-1", execution_id="m")
    s = Server(ServeConfig(target, TOKEN, where=target.where))
    try:
        parent = s.get("/api/executions/m").json()
        assert [c["id"] for c in parent["children"]] == ["m:c1.0"]
        kid = s.get("/api/executions/m:c1.0").json()
        assert kid["execution"]["parent_id"] == "m" and kid["execution"]["parent_call"] == "c1.0"
        assert [e["id"] for e in s.get("/api/executions?parent=m").json()["items"]] == ["m:c1.0"]
        page = s.get("/executions/m").text
        assert 'href="/executions/m%3Ac1.0"' in page
        assert 'href="/executions/m"' in s.get("/executions/m%3Ac1.0").text
        # approving the child's call through the parent, as the CLI does: recorded in the child's log
        assert s.post("/api/executions/m/approve", {"calls": ["m:c1.0/c1.0"]}).json()["advancing"] is False
        assert s.get("/api/executions/m:c1.0/export").json()["tool_calls"][0]["decision"]["approved"] is True
    finally:
        s.stop()


def test_an_answer_through_the_parent_advances_the_parent(target: Target) -> None:
    """With the agent, once the sub-agent's call has its answer, the server advances the parent (and so the child)."""
    where = target.factory_argument
    manager = _team(where)
    manager.run("settle I-1", execution_id="m")
    s = Server(ServeConfig(target, TOKEN, agent=_team(where), where=target.where))
    try:
        assert s.get("/api/executions/m").json()["pending"] == ["m:c1.0/c1.0"]
        approved = s.post("/api/executions/m/approve", {})
        assert approved.status == 200 and approved.json()["advancing"] is True, approved.text
        assert s.wait_status("m", "completed")["execution"]["answer"] == "ok"
        assert s.get("/api/executions/m:c1.0").json()["execution"]["status"] == "completed"
    finally:
        s.stop()


# -- who may ------------------------------------------------------------------------------------------------------


def test_the_token_is_needed(recorder: Server) -> None:
    assert recorder.get("/api/executions", auth=False).status == 401
    wrong = {"authorization": "Bearer " + "x" * 30}
    assert recorder.get("/api/executions", auth=False, headers=wrong).status == 401
    assert recorder.post("/api/executions/approve-1/approve", {}, auth=False).status == 401
    assert recorder.get("/", auth=False).status == 401
    assert recorder.get("/?token=wrong-wrong-wrong-wrong", auth=False).status == 401
    assert recorder.get("/executions/approve-1", auth=False).status == 401
    # the schema and the static files are public; they hold no data
    assert recorder.get("/api/openapi.json", auth=False).status == 200
    assert recorder.get("/static/serve.js", auth=False).status == 200
    assert recorder.get("/api/executions/approve-1").json()["pending"] == ["c1.0"]


def _login(server: Server) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", f"/?token={TOKEN}&status=waiting")
    resp = conn.getresponse()
    assert resp.status == 303 and resp.getheader("location") == "/?status=waiting"
    cookie = resp.getheader("set-cookie", "")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    conn.close()
    return cookie.split(";")[0]


def test_a_cookie_needs_the_csrf_header_and_this_origin(recorder: Server) -> None:
    cookie = _login(recorder)
    page = recorder.get("/", auth=False, headers={"cookie": cookie})
    assert page.status == 200
    csrf = recorder.config.csrf
    assert f'<meta name="delite-csrf" content="{csrf}">' in page.text
    path = "/api/executions/approve-1/approve"
    forged = recorder.post(path, {}, auth=False, headers={"cookie": cookie})
    assert forged.status == 403
    cross = {"cookie": cookie, "x-delite-csrf": csrf, "origin": "http://evil.example"}
    assert recorder.post(path, {}, auth=False, headers=cross).status == 403
    site = {"cookie": cookie, "x-delite-csrf": csrf, "sec-fetch-site": "cross-site"}
    assert recorder.post(path, {}, auth=False, headers=site).status == 403
    assert recorder.post(path, {}, auth=False, headers={"cookie": cookie, "x-delite-csrf": "0" * 64}).status == 403
    assert recorder.get("/api/executions/approve-1").json()["pending"] == ["c1.0"]  # nothing recorded
    good = {"cookie": cookie, "x-delite-csrf": csrf, "origin": recorder.base}
    assert recorder.post(path, {}, auth=False, headers=good).status == 200


def test_login_form(recorder: Server) -> None:
    form = {"content-type": "application/x-www-form-urlencoded"}
    bad = recorder.request("POST", "/login", raw=b"token=nope", auth=False, headers=form)
    assert bad.status == 401 and "not right" in bad.text
    cross = recorder.request(
        "POST", "/login", raw=f"token={TOKEN}".encode(), auth=False, headers={**form, "origin": "http://evil.example"}
    )
    assert cross.status == 403


def _post_login(server: Server, parts: list[bytes], headers: dict[str, str]) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", "/login")
        for key, value in {"content-type": "application/x-www-form-urlencoded", **headers}.items():
            conn.putheader(key, value)
        conn.endheaders()
        for part in parts:
            conn.send(part)
        reply = conn.getresponse()
        return reply.status, reply.read().decode()
    finally:
        conn.close()


def test_the_login_form_never_holds_a_big_body(recorder: Server) -> None:
    # Before the token is checked, anyone who can reach the port can post to /login: a body over 4 KiB is a 413,
    # dropped as it arrives (the form was read whole into memory before being cut to 4 KiB).
    chunk = b"token=" + b"x" * (1 << 20)
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(8)] + [b"0\r\n\r\n"]
    status, text = _post_login(recorder, parts, {"transfer-encoding": "chunked"})
    assert status == 413 and "token" in text, status
    # a length of 1 GiB declared and 64 KiB sent: answered once the client pauses, not after a gigabyte
    status, _ = _post_login(recorder, [b"x" * (64 << 10)], {"content-length": str(1 << 30)})
    assert status == 413
    # the right token with too much after it: still refused; the right token alone: in
    body = f"token={TOKEN}&".encode()
    status, _ = _post_login(recorder, [body + b"x" * 5000], {"content-length": str(len(body) + 5000)})
    assert status == 413
    status, _ = _post_login(recorder, [body], {"content-length": str(len(body))})
    assert status == 303


def test_every_response_has_the_security_headers(recorder: Server) -> None:
    for path, auth in [
        ("/", True),
        ("/", False),
        ("/api/executions", True),
        ("/static/serve.css", False),
        ("/api/nothing", True),
        ("/executions/done-1", True),
    ]:
        r = recorder.get(path, auth=auth)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP


def test_openapi_documents_every_route_and_the_error_statuses(recorder: Server) -> None:
    doc = recorder.get("/api/openapi.json", auth=False).json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for action in ("approve", "reject", "input", "tool-results", "resolve", "resume", "cancel", "fork"):
        op = paths[f"/api/executions/{{id}}/{action}"]["post"]
        assert {"400", "401", "403", "404", "409"} <= set(op["responses"]), action
    assert "409" in paths["/api/executions/{id}/approve"]["post"]["responses"]
    assert {"/api/executions", "/api/usage", "/api/executions/{id}/stream"} <= set(paths)
    for path, operations in paths.items():  # every documented route is served
        for method in operations:
            r = recorder.request(method.upper(), path.replace("{id}", "done-1"), {} if method == "post" else None)
            assert r.status != 404, (method, path, r.text)


def test_pages_escape_hostile_content(recorder: Server) -> None:
    page = recorder.get("/executions/hostile-1").text
    assert "<script>document.title" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "\x1b" not in page and "\u202e" not in page and "\\u202e" in page
    listing = recorder.get("/?q=%3Cscript%3Ealert(1)%3C/script%3E").text
    assert "<script>alert(1)" not in listing and "&lt;script&gt;alert(1)" in listing
    assert page.count("<script") == 1 and '<script src="/static/serve.js" defer></script>' in page
