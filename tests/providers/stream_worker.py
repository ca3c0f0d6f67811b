"""A worker process for the SIGKILL test: streams a tool-using run against the fake server.

Usage: python stream_worker.py API BASE_URL DATA_DIR EXECUTION_ID

Prints each text chunk as it arrives, then one JSON line with the answer. The tool appends its idempotency
key to DATA_DIR/ledger.txt, so the test can count how often it really ran.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from delite import Agent, RetryPolicy, current_idempotency_key, tool
from delite.providers import Anthropic, OpenAI, OpenAIResponses

CLASSES = {
    "chat": (OpenAI, "gpt-4o-mini"),
    "responses": (OpenAIResponses, "gpt-4o-mini"),
    "messages": (Anthropic, "claude-haiku-4-5"),
}


def main() -> int:
    api, base_url, data_dir, eid = sys.argv[1:5]
    ledger = Path(data_dir) / "ledger.txt"

    @tool(description="Get the weather for a city")
    def get_weather(city: str) -> dict[str, Any]:
        with ledger.open("a") as f:
            f.write(current_idempotency_key() + "\n")
        return {"city": city, "temp_c": 18}

    cls, model = CLASSES[api]
    provider = cls(model, api_key="test-key", base_url=base_url, client_options={"_strict_response_validation": True})
    agent = Agent(data_dir, provider=provider, tools=[get_weather], retry=RetryPolicy(base_delay=0.01))
    stream = agent.stream("Weather in Paris?", execution_id=eid)
    for chunk in stream:
        print(json.dumps({"chunk": chunk}), flush=True)
    assert stream.response is not None
    print(json.dumps({"answer": stream.response.answer, "status": stream.response.status.value}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
