"""A decision over HTTP is a JSON true or false: anything else is a 400 with nothing recorded."""

from __future__ import annotations

import pytest
from test_web_example import get, post, server

__all__ = ["server"]  # the fixture, shared with the example's other tests


@pytest.mark.parametrize(
    "body",
    [{"approved": "false"}, {"approved": 0}, {"approved": 0.0}, {"approved": None}, {"approved": "yes"}, {}],
    ids=["str-false", "zero", "zero-float", "null", "str-yes", "missing"],
)
def test_a_decision_that_is_not_a_bool_is_refused(server: str, body: dict[str, object]) -> None:
    status, run = post(f"{server}/runs", {"text": "refund order 42", "flow": "refund"})
    assert status == 200 and run["status"] == "waiting_approval"
    eid = run["execution_id"]
    call_id = run["suspend_reason"]["calls"][0]["id"]
    code, error = post(f"{server}/runs/{eid}/approval", body)
    assert code == 400, error
    assert error["error"] in {"UsageError", "BadRequestError"}  # the app's body check or delite's own
    code, bad = post(f"{server}/runs/{eid}/approval", {"decisions": {call_id: "no"}})
    assert code == 400 and bad["error"] == "UsageError"
    assert get(f"{server}/runs/{eid}")[1]["status"] == "waiting_approval"  # nothing recorded, nothing ran
    code, done = post(f"{server}/runs/{eid}/approval", {"approved": False})
    assert code == 200 and done["status"] == "completed"
    assert "refunded" not in done["answer"]
