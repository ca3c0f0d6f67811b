"""The read commands on a data directory made by real runs: human views and --json schemas."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest

from delite import FileStore
from delite.log.records import ExecutionCompleted, ModelResponded

BOTH_STORES = True  # the read commands go through the store seam: the same views on files and in memory

SUMMARY_KEYS = {
    "id", "agent_id", "status", "created_at", "updated_at", "input", "answer", "models", "steps", "llm_calls",
    "tool_calls", "tokens", "cost", "metadata", "suspend_reason", "error", "parent_id", "parent_call", "forked_from",
    "fork_step", "records", "log_bytes", "torn", "damage", "advanceable",
}  # fmt: skip
DETAIL_KEYS = SUMMARY_KEYS | {
    "config", "model", "idempotency_key", "depth", "resumes", "model_failures", "model_ms", "tool_ms", "wall_ms",
    "pending_calls", "last_error", "torn_tail",
}  # fmt: skip
TOKEN_KEYS = {"input", "output", "cached_input", "cache_write", "reasoning", "total", "known"}
TOOL_CALL_KEYS = {
    "call_id", "step", "name", "arguments", "status", "result", "error", "source", "started_at", "finished_at",
    "duration_ms", "attempts", "retries", "idempotency_key", "decision", "question", "human_input", "provider_id",
    "child_id",
}  # fmt: skip
STEP_KEYS = {
    "step", "model", "started_at", "ended_at", "model_ms", "tool_ms", "wall_ms", "attempts", "tokens", "cost",
    "content", "tool_calls",
}  # fmt: skip
LLM_KEYS = {
    "step", "attempt", "at", "model", "ok", "tokens", "cost", "duration_ms", "tool_calls", "error", "retryable",
    "status_code",
}  # fmt: skip
EVENT_KEYS = {"seq", "offset", "kind", "at", "record"}
HEADER = re.compile(r"^ *(\d+) +\+\d+\.\d{3}s  (\S+)")


def record_kinds(stdout: str) -> list[str]:
    """The kinds of the records in the human view of events or tail (a record's body may wrap below it)."""
    return [m.group(2) for m in map(HEADER.match, stdout.splitlines()) if m]


def test_status_lists_every_execution_newest_first(run, built: Path) -> None:
    r = run("status", "--data-dir", built)
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "AGENT", "STATUS", "STEPS"]
    body = [line.split()[0] for line in lines[1:-1]]
    assert body[1:] == ["count-1", "hostile-1", "failed-1", "doubt-1", "input-1", "client-1", "approve-1", "done-1"]
    assert "waiting_approval" in r.stdout and "$0.0030" in r.stdout
    assert lines[-1] == "9 of 9 executions, newest first"


def test_status_json_schema_and_paging(run, built: Path) -> None:
    r = run("status", "--data-dir", built, "--json", "--limit", "3", "--offset", "2")
    assert r.exit_code == 0
    page = json.loads(r.stdout)
    assert set(page) == {"executions", "total", "offset", "limit", "next_offset"}
    assert (page["total"], page["offset"], page["limit"], page["next_offset"]) == (9, 2, 3, 5)
    assert [e["id"] for e in page["executions"]] == ["hostile-1", "failed-1", "doubt-1"]
    for e in page["executions"]:
        assert set(e) == SUMMARY_KEYS
        assert set(e["tokens"]) == TOKEN_KEYS


def test_status_filters(run, built: Path) -> None:
    def ids(*args: str) -> list[str]:
        r = run("status", "--data-dir", built, "--json", *args)
        assert r.exit_code == 0, r.output
        return [e["id"] for e in json.loads(r.stdout)["executions"]]

    assert ids("--status", "waiting") == ["doubt-1", "input-1", "client-1", "approve-1"]
    assert ids("--status", "failed", "--status", "waiting_approval") == ["failed-1", "approve-1"]
    assert ids("--meta", "thread_id=t-2") == ["approve-1"]
    assert ids("--meta", "user=7") == ["done-1"]  # JSON values match as JSON (7 is a number)
    assert ids("--meta", "user=8") == []
    assert len(ids("--agent", "greeter")) == 1
    assert ids("--since", "1h", "--agent", "ops", "--limit", "1") == ["count-1"]
    assert ids("--until", "2000-01-01") == []
    assert len(ids("--since", "2000-01-01T00:00:00+00:00")) == 9


def test_status_past_the_last_page(run, built: Path, store_kind: str) -> None:
    r = run("status", "--data-dir", built, "--offset", "50")
    assert r.exit_code == 0 and r.stdout.strip() == "No executions on this page: 9 match, from --offset 0."
    r = run("status", "--data-dir", built, "--status", "cancelled")
    names = {"file": str(built), "memory": "MemoryStore(9 executions)", "list": "ListStore"}
    where = names[store_kind]  # the message names the store: its directory, or its repr
    assert r.stdout.strip() == f"No executions match these filters in {where}."


@pytest.mark.file_only(reason="about a directory that does not exist")
def test_status_on_a_missing_directory_is_empty_and_creates_nothing(run, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    r = run("status", "--data-dir", missing)
    assert r.exit_code == 0
    assert "No executions exist" in r.stdout
    assert f"{missing}: that directory does not exist" in r.stdout.replace("\n", "")
    assert not missing.exists()


@pytest.mark.file_only(reason="DELITE_DATA_DIR names a directory")
def test_data_dir_from_the_environment(run, built: Path, monkeypatch) -> None:
    monkeypatch.setenv("DELITE_DATA_DIR", str(built))
    r = run("status", "--json", "--limit", "0")
    assert json.loads(r.stdout)["total"] == 9


def test_inspect_human_view(run, built: Path) -> None:
    r = run("inspect", "approve-1", "--data-dir", built)
    assert r.exit_code == 0, r.output
    out = r.stdout
    for expected in (
        "Execution  approve-1",
        "Status     waiting_approval",
        "Input      pay the invoice",
        "1 LLM call, 1 tool call",
        "Cost       $0.0015",
        '{"thread_id":"t-2"}',
        "provider scenario",
        "tools: add, pay, locate, transfer, echo",
        'c1.0  pay({"amount":42.5})',
        "delite approve approve-1 c1.0",
    ):
        assert expected in out, expected


def test_inspect_json_schema(run, built: Path) -> None:
    r = run("inspect", "done-1", "--data-dir", built, "--json")
    d = json.loads(r.stdout)
    assert set(d) == DETAIL_KEYS
    assert d["status"] == "completed" and d["answer"] == "The sum is 5."
    assert d["models"] == ["scripted-large"] and d["steps"] == 2 and d["cost"] == "0.0030"
    assert d["metadata"] == {"thread_id": "t-1", "user": 7}
    assert d["config"]["provider"] == "scenario"
    assert d["pending_calls"] == [] and d["last_error"] is None


def test_inspect_failed_shows_the_error(run, built: Path) -> None:
    r = run("inspect", "failed-1", "--data-dir", built)
    assert "script exhausted" in r.stdout and "delite resume failed-1 --agent" in r.stdout
    d = json.loads(run("inspect", "failed-1", "--data-dir", built, "--json").stdout)
    assert d["last_error"]["source"] == "execution" and "ProviderError" in d["error"]


def test_inspect_by_unique_prefix_and_case(run, built: Path) -> None:
    assert json.loads(run("inspect", "don", "--data-dir", built, "--json").stdout)["id"] == "done-1"
    assert json.loads(run("inspect", "HOST", "--data-dir", built, "--json").stdout)["id"] == "hostile-1"


def test_steps_timeline(run, built: Path) -> None:
    r = run("steps", "count-1", "--data-dir", built)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["STEP", "AT", "MODEL"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4"]
    assert "add ok" in lines[1] and "(answer)" in lines[4] and "$0.0015" in lines[4]
    doubt = run("steps", "doubt-1", "--data-dir", built).stdout
    assert "transfer started" in doubt and "paused after step 1: in_doubt" in doubt and "still waiting" in doubt


def test_steps_json_schema(run, built: Path) -> None:
    d = json.loads(run("steps", "count-1", "--data-dir", built, "--json").stdout)
    assert set(d) == {"execution_id", "steps", "pauses"}
    assert [s["step"] for s in d["steps"]] == [1, 2, 3, 4]
    for s in d["steps"]:
        assert set(s) == STEP_KEYS
    call = d["steps"][0]["tool_calls"][0]
    assert set(call) == TOOL_CALL_KEYS
    assert call["arguments"] == {"a": 0, "b": 1} and call["result"] == 1 and call["status"] == "ok"
    assert call["idempotency_key"] == "count-1:c1.0" and call["retries"] == 0
    paused = json.loads(run("steps", "approve-1", "--data-dir", built, "--json").stdout)["pauses"]
    assert [(p["kind"], p["ended_at"]) for p in paused] == [("approval", None)]


def test_events_human_json_and_ndjson(run, built: Path, store_kind: str) -> None:
    human = run("events", "done-1", "--data-dir", built).stdout
    assert record_kinds(human) == [
        "execution-started",
        "model-responded",
        "tool-started",
        "tool-finished",
        "model-responded",
        "execution-completed",
    ]
    d = json.loads(run("events", "done-1", "--data-dir", built, "--json").stdout)
    assert set(d) == {"execution_id", "events"}
    assert [e["seq"] for e in d["events"]] == [1, 2, 3, 4, 5, 6]
    assert all(set(e) == EVENT_KEYS for e in d["events"])
    # Byte offsets come from a framed log (files, memory); a store of records has none.
    assert d["events"][0]["offset"] == (None if store_kind == "list" else len(b"delite-log/1\n"))
    lines = run("events", "done-1", "--data-dir", built, "--nl", "--kind", "tool-finished").stdout.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["record"]["result"] == 5
    after = run("events", "done-1", "--data-dir", built, "--json", "--after", "4", "--limit", "1").stdout
    assert [e["kind"] for e in json.loads(after)["events"]] == ["model-responded"]


def test_export_json_is_the_documented_schema(run, built: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    r = run("export", "done-1", "--data-dir", built, "-o", out)
    assert r.exit_code == 0 and "wrote" in r.stderr
    d = json.loads(out.read_text())
    assert set(d) == {"format", "delite_version", "execution", "steps", "llm_calls", "tool_calls", "pauses", "events"}
    assert d["format"] == "delite-export/1"
    assert set(d["execution"]) == DETAIL_KEYS
    assert len(d["steps"]) == 2 and len(d["events"]) == 6
    assert all(set(c) == LLM_KEYS for c in d["llm_calls"])
    assert all(set(c) == TOOL_CALL_KEYS for c in d["tool_calls"])
    assert json.loads(run("export", "done-1", "--data-dir", built, "--json").stdout) == d


def test_export_ndjson_lines_are_typed(run, built: Path) -> None:
    lines = [json.loads(x) for x in run("export", "done-1", "--data-dir", built, "--nl").stdout.splitlines()]
    assert lines[0]["type"] == "execution" and lines[0]["format"] == "delite-export/1"
    kinds = [x["type"] for x in lines]
    assert kinds == ["execution", "step", "step", "llm_call", "llm_call", "tool_call"] + ["event"] * 6


def test_events_fit_80_columns_and_keep_their_content(run, data: Path, monkeypatch) -> None:
    from rich.cells import cell_len

    from delite import Agent, ScriptedProvider

    wide = "\u65e5\u672c\u8a9e\u306e\u7b54\u3048 " * 30  # two cells per character
    Agent(data, provider=ScriptedProvider([wide]), agent_id="wide-" + "x" * 40).run(wide, execution_id="wide-1")
    monkeypatch.setenv("COLUMNS", "80")
    for eid in ("done-1", "doubt-1", "approve-1", "hostile-1", "failed-1", "wide-1"):
        records = json.loads(run("events", eid, "--data-dir", data, "--json").stdout)["events"]
        for extra in ([], ["--full"]):
            out = run("events", eid, "--data-dir", data, *extra).stdout
            lines = out.splitlines()
            assert all(cell_len(line) <= 80 for line in lines), [line for line in lines if cell_len(line) > 80]
            assert record_kinds(out) == [e["kind"] for e in records]
            # Each record's body is all there: its lines, joined, hold it (cut at 240 characters without --full).
            bodies: list[str] = []
            for line in lines:
                m = HEADER.match(line)
                if m:
                    bodies.append(line[m.end() :].strip())
                else:
                    bodies[-1] += line.removeprefix(" " * 7)
            for body, e in zip(bodies, records, strict=True):
                fields = {k: v for k, v in e["record"].items() if k not in ("kind", "at")}
                if extra:
                    assert json.loads(body) == json.loads(json.dumps(fields)), eid
                else:
                    assert len(body) <= 240 and (body.endswith("\u2026") or json.loads(body) == fields), eid
    tail = run("tail", "wide-1", "--data-dir", data).stdout
    assert all(cell_len(line) <= 80 for line in tail.splitlines()) and record_kinds(tail)[-1] == "execution-completed"


def test_failed_model_call_is_listed(run, built: Path) -> None:
    d = json.loads(run("export", "failed-1", "--data-dir", built).stdout)
    assert [(c["step"], c["ok"]) for c in d["llm_calls"]] == [(1, True), (2, False)]
    assert "script exhausted" in d["llm_calls"][1]["error"]


def test_tail_prints_the_last_records(run, built: Path) -> None:
    r = run("tail", "done-1", "--data-dir", built, "-n", "2")
    assert record_kinds(r.stdout) == ["model-responded", "execution-completed"]
    lines = run("tail", "done-1", "--data-dir", built, "-n", "1", "--json").stdout.splitlines()
    assert [json.loads(x)["kind"] for x in lines] == ["execution-completed"]


def test_tail_follow_prints_records_as_they_are_appended(data: Path) -> None:
    """A real ``delite tail -f`` process; each record is appended only after the previous one was printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("DELITE_DATA_DIR", "DELITE_AGENT")}
    command = ["tail", "approve-1", "--data-dir", str(data), "-n", "1", "-f", "--poll", "0.01", "--json"]
    follower = subprocess.Popen(
        [sys.executable, "-m", "delite_cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            lines.put(line)
        lines.put(None)  # end of output

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def next_kind() -> str:
        line = lines.get(timeout=60)  # a deadline for a broken follower, never a barrier
        assert line is not None, follower.stderr.read() if follower.stderr else ""
        return json.loads(line)["kind"]

    try:
        assert next_kind() == "execution-suspended"  # the last record there was: the follower is running
        store = FileStore(data, durability="off")
        with store.claim("approve-1") as log:
            log.append([ModelResponded(at=time.time(), step=2, content="late")])
            assert next_kind() == "model-responded"  # printed while the writer still holds the claim
            log.append([ExecutionCompleted(at=time.time(), answer="late")])
            assert next_kind() == "execution-completed"
        assert follower.wait(timeout=60) == 0  # and it stopped by itself, with no --timeout
        reader.join(60)
        assert lines.get(timeout=60) is None  # nothing after the end
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.wait()
        for stream in (follower.stdout, follower.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.file_only(reason="checksums, the SQLite index and its repair are the file store's")
def test_health_of_a_healthy_directory(run, data: Path) -> None:
    r = run("health", "--data-dir", data)
    assert r.exit_code == 0, r.output
    assert "Checked 9 logs" in r.stdout and "Healthy." in r.stdout
    assert "index-missing" in r.stdout  # no listing has built the index yet: reported, not a failure
    d = json.loads(run("health", "--data-dir", data, "--json", "--repair").stdout)
    assert set(d) == {
        "healthy",
        "data_dir",
        "logs",
        "bytes",
        "records",
        "seconds",
        "mb_per_second",
        "repaired",
        "problems",
    }
    assert d["healthy"] is True and d["logs"] == 9 and d["repaired"] is True and d["problems"] == []
    assert (data / "index.sqlite3").exists()


def test_the_command_imports_lazily() -> None:
    code = (
        "import sys, delite_cli.main; "
        "heavy = [m for m in ('delite.engine', 'delite.providers', 'rich', 'sqlite3', 'asyncio') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_health_verifies_every_record_and_the_listing(run, data: Path, store_kind: str) -> None:
    d = json.loads(run("health", "--data-dir", data, "--json").stdout)
    assert d["healthy"] is True and d["logs"] == 9 and d["records"] > 9
    assert d["data_dir"] == (str(data) if store_kind == "file" else None)
    if store_kind == "list":  # records with no bytes to damage: a log whose first record names another execution
        logs = run.store(data).logs
        logs["done-1"][0] = msgspec.structs.replace(logs["done-1"][0], execution_id="someone-else")
        r = run("health", "--data-dir", data, "--json")
        assert r.exit_code == 1
        problems = json.loads(r.stdout)["problems"]
        assert [(p["kind"], p["execution_id"], p["offset"]) for p in problems if p["severity"] == "error"] == [
            ("id-mismatch", "done-1", None)
        ]
        return
    # Flip a bit inside the second record of one log: the same damage, found on either framed store.
    offset = run.data(data).execution("done-1").offsets[1]
    if store_kind == "memory":
        run.store(data).logs["done-1"][offset + 15] ^= 0x20
    else:
        path = data / "executions" / "done-1.log"
        raw = bytearray(path.read_bytes())
        raw[offset + 15] ^= 0x20
        path.write_bytes(bytes(raw))
    r = run("health", "--data-dir", data, "--json")
    assert r.exit_code == 1
    problems = json.loads(r.stdout)["problems"]
    assert [(p["kind"], p["execution_id"], p["offset"]) for p in problems if p["severity"] == "error"] == [
        ("corrupt", "done-1", offset)
    ]
