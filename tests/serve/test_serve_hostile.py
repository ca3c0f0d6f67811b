"""``delite serve`` against hostile requests: huge or malformed bodies, hostile ids, cross-site actions with
the bearer token, wrong methods, and a damaged log. Every answer is a status with a JSON error (never a reset
connection or a plain-text 500), and nothing is recorded."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from pathlib import Path

import pytest
from conftest import TOKEN, Server

APPROVE = "/api/executions/approve-1/approve"


def _nothing_recorded(server: Server) -> None:
    assert server.get("/api/executions/approve-1").json()["pending"] == ["c1.0"]


def _send(server: Server, body_parts: list[bytes], headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", APPROVE)
        for key, value in {"authorization": f"Bearer {TOKEN}", "content-type": "application/json", **headers}.items():
            conn.putheader(key, value)
        conn.endheaders()
        for part in body_parts:
            conn.send(part)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


@pytest.mark.parametrize("store_kind", ["file"], indirect=True)
def test_a_huge_body_is_a_413_the_client_can_read(recorder: Server) -> None:
    size = 9 << 20
    status, body = _send(recorder, [b"{" + b" " * (size - 2) + b"}"], {"content-length": str(size)})
    assert status == 413 and body["error"]["type"] == "RequestTooLarge"  # type: ignore[index]
    # sent in chunks, without a length: the same
    chunk = b" " * (1 << 20)
    parts = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)] + [b"0\r\n\r\n"]
    status, body = _send(recorder, parts, {"transfer-encoding": "chunked"})
    assert status == 413, body
    _nothing_recorded(recorder)


@pytest.mark.parametrize("store_kind", ["file"], indirect=True)
def test_malformed_bodies_are_400(recorder: Server) -> None:
    deep = b'{"results": {"c1.0": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    r = recorder.post("/api/executions/client-1/tool-results", raw=deep)
    assert r.status == 400 and "deeply" in r.json()["error"]["message"]
    for raw in (b'{"results": {"c1.0": NaN}}', b'{"results": {"c1.0": Infinity}}', b'{"results": {"c1.0": 1}'):
        r = recorder.post("/api/executions/client-1/tool-results", raw=raw)
        assert r.status == 400 and r.json()["error"]["type"] == "UsageError", r.text
    assert recorder.get("/api/executions/client-1").json()["pending"] == ["c1.0"]


@pytest.mark.parametrize("store_kind", ["file"], indirect=True)
def test_hostile_ids_in_urls(recorder: Server, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for ident in ("..", "../../etc/passwd", "..%2F..%2Fetc", "a" * 5000, "\u202eevil", "é" * 300, "\x00", "a b", "-x"):
        quoted = urllib.parse.quote(ident, safe="%")
        for path in (
            f"/api/executions/{quoted}",
            f"/api/executions/{quoted}/export",
            f"/api/executions/{quoted}/stream",
        ):
            r = recorder.get(path)
            assert r.status in (400, 404) and r.headers["content-type"] == "application/json", (ident[:20], r.text)
            assert len(r.body) < 2000
        r = recorder.post(f"/api/executions/{quoted}/cancel", {})
        assert r.status in (400, 404) and r.json()["error"]["status"] == r.status
        page = recorder.get(f"/executions/{quoted}")
        assert page.status in (400, 404) and page.headers["content-type"].startswith("text/html")
        assert "\u202e" not in page.text and "<script>" not in page.text.replace('<script src="/static/serve.js"', "")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created anywhere


@pytest.mark.parametrize("store_kind", ["file"], indirect=True)
def test_a_cross_site_action_is_refused_with_the_bearer_token_too(recorder: Server) -> None:
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}):
        r = recorder.post(APPROVE, {}, headers=headers)
        assert r.status == 403 and r.json()["error"]["type"] == "Forbidden", headers
    r = recorder.request(
        "POST",
        APPROVE,
        raw=b"reason=forged",
        headers={"origin": "http://evil.example", "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 403
    _nothing_recorded(recorder)
    assert recorder.post(APPROVE, {}, headers={"origin": recorder.base}).status == 200  # this origin: allowed


@pytest.mark.parametrize("store_kind", ["file"], indirect=True)
def test_wrong_methods_answer_json(recorder: Server) -> None:
    for method, path in (("GET", APPROVE), ("PUT", APPROVE), ("DELETE", "/api/executions/approve-1")):
        r = recorder.request(method, path, {} if method == "PUT" else None)
        assert r.status == 405 and r.json()["error"]["status"] == 405, (method, path)
    _nothing_recorded(recorder)


@pytest.mark.parametrize("store_kind", ["file"], indirect=True)
def test_a_damaged_log_is_a_500_everywhere(recorder: Server, tmp_path: Path) -> None:
    log = tmp_path / "data" / "executions" / "done-1.log"
    damaged = bytearray(log.read_bytes())
    damaged[60] ^= 0xFF
    log.write_bytes(bytes(damaged))
    for path in ("", "/export", "/events", "/stream"):
        r = recorder.get(f"/api/executions/done-1{path}")
        assert r.status == 500 and r.json()["error"]["type"] == "LogCorruptError", (path, r.text)
    assert recorder.post("/api/executions/done-1/fork", {"at": 1}).status == 500
    assert recorder.get("/executions/done-1").status == 500
    listing = recorder.get("/api/executions?status=unreadable").json()
    assert [e["id"] for e in listing["items"]] == ["done-1"]  # the list still answers, and names it


def test_openapi_has_unique_operation_ids_and_declares_its_parameters(recorder: Server) -> None:
    doc = recorder.get("/api/openapi.json", auth=False).json()
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "{id}" in path:
                assert any(p["name"] == "id" and p["in"] == "path" for p in op["parameters"]), (method, path)
            if method == "post":
                assert "413" in op["responses"]
    assert "/api/openapi.json" in doc["paths"]
