"""Every attribute, span, event and metric name delite emits, in one place, versioned.

The OpenTelemetry GenAI conventions are in "Development" and still rename things. delite emits the names of
:data:`SEMCONV_VERSION` by default, and the newest ones (:data:`LATEST_SEMCONV_VERSION`) when
``OTEL_SEMCONV_STABILITY_OPT_IN`` lists ``gen_ai_latest_experimental``, as the contrib instrumentations do.
Names that exist in no convention (cost, execution ids, segments) live under delite's own ``delite.``
namespace and do not change with the switch. ``tests/otel/test_names.py`` pins both sets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "LATEST_SEMCONV_VERSION",
    "OPT_IN_ENV",
    "OPT_IN_VALUE",
    "SEMCONV_VERSION",
    "Names",
    "names",
]

SEMCONV_VERSION = "1.36.0"
"""The GenAI conventions release whose names are emitted by default."""
LATEST_SEMCONV_VERSION = "1.38.0"
"""The newest GenAI conventions release whose names are emitted with the opt-in switch."""
OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
OPT_IN_VALUE = "gen_ai_latest_experimental"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# -- names that are the same in both versions -------------------------------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_ID = "gen_ai.response.id"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CONVERSATION_ID = "gen_ai.conversation.id"
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
OUTPUT_TYPE = "gen_ai.output.type"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_TYPE = "gen_ai.tool.type"
ERROR_TYPE = "error.type"
TOKEN_TYPE = "gen_ai.token.type"  # noqa: S105 - an attribute name, not a secret
# content, only with content capture on
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"

# -- operation names and span names -----------------------------------------------------------------------------
OP_CHAT = "chat"
OP_INVOKE_AGENT = "invoke_agent"
OP_EXECUTE_TOOL = "execute_tool"
RECORD_SPAN = "delite.record"
"""A record written outside any advance (an answer recorded without continuing, a cancel of a waiting run)."""

# -- delite's own namespace --------------------------------------------------------------------------------------
EXECUTION_ID = "delite.execution.id"
PARENT_EXECUTION_ID = "delite.execution.parent_id"
EXECUTION_STATUS = "delite.execution.status"
SEGMENT_RESUMED = "delite.segment.resumed"
SEQUENCE = "delite.record.sequence"
RECORD_KIND = "delite.record.kind"
STEP = "delite.step"
ATTEMPT = "delite.attempt"
COST = "delite.cost.usd"
COST_KNOWN = "delite.cost.known"
TOOL_SOURCE = "delite.tool.source"
TOOL_OUTCOME = "delite.tool.outcome"
CHILD_ID = "delite.child.execution_id"
SUSPEND_KIND = "delite.suspend.kind"
SUSPEND_CALLS = "delite.suspend.call_ids"
SUSPEND_LIMIT = "delite.suspend.limit"
MESSAGE = "delite.message"
DECISION_APPROVED = "delite.decision.approved"
DRIFT_CHANGES = "delite.drift.changes"
DRIFT_POLICY = "delite.drift.policy"
CANCEL_REASON = "delite.cancel.reason"

# -- span events -------------------------------------------------------------------------------------------------
EVENT_SUSPENDED = "delite.suspended"
EVENT_BUDGET_STOP = "delite.budget_stop"
EVENT_CONTRACT_REFUSAL = "delite.contract_refusal"
EVENT_IN_DOUBT = "delite.in_doubt"
EVENT_IN_DOUBT_RETRY = "delite.in_doubt_retry"
EVENT_IN_DOUBT_RESOLVED = "delite.in_doubt_resolved"
EVENT_DECISION = "delite.decision"
EVENT_INPUT_REQUESTED = "delite.input_requested"
EVENT_INPUT_SUBMITTED = "delite.input_submitted"
EVENT_TOOL_RESULT = "delite.tool_result"
EVENT_DRIFT = "delite.drift_accepted"
EVENT_OUTPUT_REJECTED = "delite.output_rejected"
EVENT_CHILD_SUSPENDED = "delite.child_suspended"
EVENT_COMPLETED = "delite.completed"
EVENT_FAILED = "delite.failed"
EVENT_CANCELLED = "delite.cancelled"

# -- metrics -----------------------------------------------------------------------------------------------------
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"  # noqa: S105 - a metric name, not a secret
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_EXECUTIONS = "delite.executions"
METRIC_SUSPENSIONS_WAITING = "delite.suspensions.waiting"
METRIC_IN_DOUBT = "delite.tool.in_doubt"
METRIC_COST = "delite.cost"

LOGGER = "delite"
"""The :mod:`logging` logger that gets one structured line per step."""


@dataclass(frozen=True)
class Names:
    """The names that differ between convention versions.

    Attributes:
        version: the conventions release these names come from.
        provider: the attribute naming the model provider (``gen_ai.system`` before 1.37).
        cache_read_tokens: cached input tokens read.
        cache_write_tokens: input tokens written to the provider's cache.
        reasoning_tokens: output tokens spent on reasoning.
    """

    version: str
    provider: str
    cache_read_tokens: str
    cache_write_tokens: str
    reasoning_tokens: str


DEFAULT = Names(
    version=SEMCONV_VERSION,
    provider="gen_ai.system",
    cache_read_tokens="delite.usage.cached_input_tokens",
    cache_write_tokens="delite.usage.cache_write_tokens",
    reasoning_tokens="delite.usage.reasoning_tokens",
)
LATEST = Names(
    version=LATEST_SEMCONV_VERSION,
    provider="gen_ai.provider.name",
    cache_read_tokens="gen_ai.usage.cache_read.input_tokens",
    cache_write_tokens="gen_ai.usage.cache_creation.input_tokens",
    reasoning_tokens="gen_ai.usage.reasoning.output_tokens",
)


def names(opt_in: str | None = None) -> Names:
    """The names to emit: :data:`LATEST` when ``opt_in`` (default: the environment's switch) asks for them."""
    value = os.environ.get(OPT_IN_ENV, "") if opt_in is None else opt_in
    wanted = {part.strip() for part in value.split(",")}
    return LATEST if OPT_IN_VALUE in wanted else DEFAULT


def capture_content_from_env() -> bool:
    """Whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` turns content capture on."""
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in ("1", "true", "yes", "on")
