"""A fake LLM server for tests and benchmarks: OpenAI Chat Completions, OpenAI Responses and Anthropic Messages.

It speaks each API's JSON and SSE wire format from a :class:`~fakellm.script.Script` of turns, injects faults
(HTTP errors with retry headers, stalls, dropped connections, early end of stream, malformed JSON, in-band
error events), and records every request. It runs in a thread of the test process (:class:`FakeLLM`) or as a
separate process (:class:`FakeLLMProcess`, ``python -m fakellm``) for crash tests and benchmarks.
"""

from __future__ import annotations

from fakellm.script import Call, Fault, Script, Tokens, Turn
from fakellm.server import FakeLLM, FakeLLMProcess

__all__ = ["Call", "FakeLLM", "FakeLLMProcess", "Fault", "Script", "Tokens", "Turn"]
