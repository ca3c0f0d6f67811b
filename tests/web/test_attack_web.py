"""The example app under attack (issue 10, items 2, 7 and 11): decisions are real bools, one answer per call,
every refused answer a 4xx with a JSON error and nothing recorded, and the app leaves its data directory healthy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_web_example import get, post, raw_post, server

from delite_cli.main import cli

__all__ = ["server"]


def _waiting(server: str, flow: str = "refund") -> tuple[str, dict[str, Any]]:
    status, run = post(f"{server}/runs", {"text": "refund order 42", "flow": flow})
    assert status == 200, run
    return run["execution_id"], run


def test_a_null_decisions_field_beside_a_real_approved_is_the_approval(server: str) -> None:
    eid, run = _waiting(server)
    assert run["status"] == "waiting_approval"
    code, done = post(f"{server}/runs/{eid}/approval", {"approved": False, "decisions": None})
    assert code == 200, done
    assert done["status"] == "completed" and "refunded" not in done["answer"]


@pytest.mark.parametrize(
    "decisions",
    [{"c1.0": 1}, {"c1.0": "true"}, {"c1.0": None}, {"c1.0": [True]}, {"c1.0": {"approved": True}}],
    ids=["one", "str-true", "null", "list", "object"],
)
def test_a_decision_map_of_non_bools_is_a_400_with_nothing_recorded(server: str, decisions: dict[str, Any]) -> None:
    eid, _ = _waiting(server)
    code, error = post(f"{server}/runs/{eid}/approval", {"decisions": decisions})
    assert code == 400, error
    assert get(f"{server}/runs/{eid}")[1]["status"] == "waiting_approval"


def test_answers_to_an_ended_or_otherwise_waiting_run_are_409(server: str) -> None:
    eid, run = _waiting(server)
    call_id = run["suspend_reason"]["calls"][0]["id"]
    code, done = post(f"{server}/runs/{eid}/approval", {"approved": False})
    assert code == 200 and done["status"] == "completed"
    for path, body in [
        ("approval", {"approved": True}),
        ("approval", {"decisions": {call_id: True}}),
        ("tool-results", {"results": {call_id: "x"}}),
        ("input", {"text": "hello"}),
    ]:
        code, error = post(f"{server}/runs/{eid}/{path}", body)
        assert code == 409, (path, error)
        assert "Error" in error["error"]
    # a run waiting for approval refuses the other kinds of answer with 409 too
    other, _ = _waiting(server)
    for path, body in [("tool-results", {"results": {call_id: "x"}}), ("input", {"text": "hello"})]:
        code, error = post(f"{server}/runs/{other}/{path}", body)
        assert code == 409, (path, error)
    assert get(f"{server}/runs/{other}")[1]["status"] == "waiting_approval"


def test_the_app_leaves_its_data_directory_healthy(server: str, tmp_path: Path) -> None:
    eid, _ = _waiting(server)
    assert post(f"{server}/runs/{eid}/approval", {"approved": True})[0] == 200
    result = CliRunner().invoke(cli, ["health", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output


def test_a_body_with_a_key_given_twice_is_a_400_with_nothing_recorded(server: str) -> None:
    _, run = post(f"{server}/runs", {"text": "cancel my order", "flow": "confirm"})
    eid = run["execution_id"]
    assert run["status"] == "waiting_client_tool"
    call_id = run["suspend_reason"]["calls"][0]["id"]
    data = f'{{"results": {{"{call_id}": "yes", "{call_id}": "no"}}}}'.encode()
    code, error = raw_post(f"{server}/runs/{eid}/tool-results", data)
    assert code == 400 and "twice" in error["message"], error
    assert get(f"{server}/runs/{eid}")[1]["status"] == "waiting_client_tool"
