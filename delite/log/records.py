"""The records of an execution's log: frozen, tagged msgspec Structs.

Rules that keep old logs readable (see ``docs/log-format.md``): a record only ever gains fields, each with a
default; fields are never renamed, reordered into positional form, or retyped; a new kind of record is a new
tag. Records hold JSON values, strings and ids only, never pickles.
"""

from typing import Any, Final

import msgspec

from delite.errors import UsageError

__all__ = [
    "TALLY_VERSION",
    "AnyRecord",
    "ChildSuspended",
    "ConfigFingerprint",
    "DecisionRecorded",
    "DriftAccepted",
    "ExecutionCancelled",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionResumed",
    "ExecutionStarted",
    "ExecutionSuspended",
    "InDoubtResolved",
    "InputRequested",
    "InputSubmitted",
    "MCPCatalogRecorded",
    "MCPToolEntry",
    "ModelCallFailed",
    "ModelResponded",
    "OutputRejected",
    "PendingCall",
    "PlainRecord",
    "Record",
    "RecordedToolCall",
    "SealedRecord",
    "SuspendReason",
    "Tally",
    "ToolFinished",
    "ToolSpec",
    "ToolStarted",
    "Usage",
]


# gc=False: records are trees of JSON values (never part of a reference cycle), so the garbage collector need
# not track them; reading a long log then allocates far fewer tracked objects. Subclasses inherit it.
class Record(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", gc=False):
    """Base of every record. ``at`` is the wall-clock time it was made, in seconds since the epoch."""

    at: float = 0.0


class Usage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Token usage of one model call, in disjoint buckets; ``cost`` is a decimal string in dollars or None."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost: str | None = None
    known: bool = True
    price_version: str | None = None  # the price table that computed ``cost``

    @property
    def total_tokens(self) -> int:
        """Input (all buckets) plus output tokens."""
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens + self.output_tokens


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A tool as the model sees it, plus how delite gates it."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    target: str = "server"
    requires_confirmation: bool = False
    retry_in_doubt: bool = True


class ConfigFingerprint(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The configuration an execution started with, compared on resume to detect drift."""

    prompt: str | None = None
    tools: list[ToolSpec] = msgspec.field(default_factory=list)
    provider: str = ""
    model: str | None = None


class RecordedToolCall(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A tool call the model asked for. ``id`` is delite's (unique in the execution), ``provider_id`` the model's."""

    id: str
    name: str
    arguments: Any = None
    provider_id: str = ""


class PendingCall(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A call an execution is waiting on, as shown in a suspension.

    A call of a sub-agent the execution waits on has a qualified id, ``<child execution id>/<call id>``:
    answering it through the parent records the answer in the child's log.
    """

    call_id: str
    name: str
    arguments: Any = None
    message: str = ""


class SuspendReason(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Why an execution stopped on purpose and what it waits for.

    ``kind`` is one of ``approval``, ``client_tool``, ``human_input``, ``contract``, ``budget``, ``in_doubt``.
    """

    kind: str
    calls: list[PendingCall] = msgspec.field(default_factory=list)
    message: str = ""
    question: str | None = None
    limit: str | None = None
    spent: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def confirmation_id(self) -> str:
        """The first pending call's id (the one to approve, answer or resolve when there is just one).

        Every kind but ``budget`` waits on at least one call. A budget suspension waits on no call, so there is
        nothing to approve: reading this raises :class:`~delite.errors.UsageError` saying what to do instead.
        """
        if not self.calls:
            raise UsageError(
                f"a {self.kind!r} suspension waits on no tool call, so there is nothing to approve "
                f"({self}); change what stopped it (for a budget, raise the limit) and resume"
            )
        return self.calls[0].call_id

    @property
    def confirmation_ids(self) -> list[str]:
        """Every pending call's id."""
        return [c.call_id for c in self.calls]

    def __str__(self) -> str:
        """One line for humans."""
        detail = self.message or self.question or ", ".join(f"{c.name}({c.call_id})" for c in self.calls)
        return f"{self.kind}: {detail}" if detail else self.kind


class ExecutionStarted(Record, frozen=True, kw_only=True, omit_defaults=True, tag="execution-started"):
    """The first record: the input, the app's history, metadata and the configuration fingerprint.

    ``forked_from`` and ``fork_step`` name the execution and step this one was forked from (see
    :meth:`delite.DataDir.fork`); the records after this one were copied from that execution's log, and
    ``fork_resumes`` counts the ``execution-resumed`` records among them (a later one means a process took
    the fork on: until then no process has advanced it, and a Runtime's recovery leaves it alone).
    A sub-agent's execution names its parent (``parent_id``) and the parent's tool call that started it
    (``parent_call``). ``output_schema`` is the JSON schema a structured answer must match, and
    ``output_prompt`` the instruction that tells the model so (sent after the system prompt).
    ``trace_context`` is the W3C trace context (``traceparent``, maybe ``tracestate``) of the span of the
    execution's first advance when telemetry was on (see ``docs/observability.md``): later advances link to it.
    """

    execution_id: str
    agent_id: str = "default"
    input: str = ""
    history: list[dict[str, Any]] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    config: ConfigFingerprint = msgspec.field(default_factory=ConfigFingerprint)
    model: str | None = None
    idempotency_key: str | None = None
    parent_id: str | None = None
    depth: int = 0
    forked_from: str | None = None
    fork_step: int | None = None
    parent_call: str | None = None
    output_schema: dict[str, Any] | None = None
    output_prompt: str | None = None
    fork_resumes: int = 0
    trace_context: dict[str, str] | None = None


class ModelResponded(Record, frozen=True, kw_only=True, omit_defaults=True, tag="model-responded"):
    """One completed model call: its text, its tool calls, its usage and the model that answered.

    ``request_model`` (the model asked for), ``response_id``, ``finish_reasons``, ``server_address`` and
    ``server_port`` describe the call as the provider reported it, when it did (telemetry emits them).
    """

    step: int
    model: str | None = None
    content: str | None = None
    tool_calls: list[RecordedToolCall] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)
    duration_ms: float = 0.0
    attempt: int = 1
    raw_usage: dict[str, Any] | None = None
    request_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = msgspec.field(default_factory=list)
    server_address: str | None = None
    server_port: int | None = None


class ModelCallFailed(Record, frozen=True, kw_only=True, omit_defaults=True, tag="model-call-failed"):
    """A model call attempt that failed; ``retryable`` says whether delite tried again.

    ``usage`` is what the failed attempt may have been billed: None when nothing was (an error status), a
    :class:`Usage` with ``known=False`` when the call got under way (a broken stream, a timeout); its counts
    are then what was seen before the failure, a lower bound.
    """

    step: int
    attempt: int = 1
    error: str = ""
    retryable: bool = False
    model: str | None = None
    status_code: int | None = None
    usage: Usage | None = None


class ToolStarted(Record, frozen=True, kw_only=True, omit_defaults=True, tag="tool-started"):
    """The intent: made durable before the tool's body runs. ``attempt`` > 1 marks a retry of an in-doubt call."""

    call_id: str
    idempotency_key: str = ""
    attempt: int = 1


class ToolFinished(Record, frozen=True, kw_only=True, omit_defaults=True, tag="tool-finished"):
    """A tool call's result or error, made durable before the next model call.

    ``source`` says where the outcome came from: ``tool`` (the body ran), ``client`` (submitted by the
    client), ``operator`` (supplied for an in-doubt call), ``rejected`` (a human said no), ``invalid``
    (unknown tool or arguments that failed validation; no body ran).
    """

    call_id: str
    result: Any = None
    error: str | None = None
    duration_ms: float = 0.0
    source: str = "tool"


class ExecutionSuspended(Record, frozen=True, kw_only=True, omit_defaults=True, tag="execution-suspended"):
    """The execution stopped on purpose; ``reason`` says what it waits for."""

    reason: SuspendReason


class DecisionRecorded(Record, frozen=True, kw_only=True, omit_defaults=True, tag="decision-recorded"):
    """A human's decision on a gated call: approval, rejection, or a contract override."""

    call_id: str
    approved: bool
    reason: str | None = None


class InputSubmitted(Record, frozen=True, kw_only=True, omit_defaults=True, tag="input-submitted"):
    """A human's answer to a clarifying question."""

    call_id: str
    text: str


class InputRequested(Record, frozen=True, kw_only=True, omit_defaults=True, tag="input-requested"):
    """A tool asked a human a question by returning a ``Clarification``; the answer becomes its result."""

    call_id: str
    question: str = ""


class InDoubtResolved(Record, frozen=True, kw_only=True, omit_defaults=True, tag="in-doubt-resolved"):
    """An operator chose to run an in-doubt call again (a supplied result is a ``ToolFinished`` instead)."""

    call_id: str
    action: str = "rerun"


class DriftAccepted(Record, frozen=True, kw_only=True, omit_defaults=True, tag="drift-accepted"):
    """A resume went on despite configuration drift, under the agent's policy; the new fingerprint."""

    changes: list[list[str]] = msgspec.field(default_factory=list)
    config: ConfigFingerprint = msgspec.field(default_factory=ConfigFingerprint)
    policy: str = "allow"


class ExecutionResumed(Record, frozen=True, kw_only=True, omit_defaults=True, tag="execution-resumed"):
    """A process took over an execution that had stopped (suspended, failed, or left by a dead process)."""

    pid: int = 0


class OutputRejected(Record, frozen=True, kw_only=True, omit_defaults=True, tag="output-rejected"):
    """The final answer of ``step`` did not match the requested output type; ``prompt`` asks the model again."""

    step: int
    error: str = ""
    prompt: str = ""


class ChildSuspended(Record, frozen=True, kw_only=True, omit_defaults=True, tag="child-suspended"):
    """The tool call ``call_id`` started a sub-agent execution, ``child_id``, that stopped to wait.

    The call has no result: it waits on the child, and runs again once the child has been answered.
    """

    call_id: str
    child_id: str


TALLY_VERSION: Final = 1
"""The version of the :class:`Tally` this delite writes and believes."""


class Tally(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a finished log comes to, written inside its terminal record: a finished execution read without a fold.

    Derived data, as the engine held it when it wrote the terminal record: ``records`` counts every record of the
    log up to and including the terminal one, ``steps`` the model turns, ``llm_calls`` the model calls answered,
    ``tool_calls`` the tool calls asked for, ``models`` the models that answered (each once, in the order they
    first did), ``usage`` the calls' total (a ``cost`` of None: not known), and ``error_type``/``error_message``
    the last failure the execution was resumed from (None: none). ``log_sha256`` is the SHA-256 of the log file
    as it is with the terminal record written with ``log_sha256`` left out (every byte before the record's frame,
    its header line included, then that frame), or None where the store keeps no such bytes (a database, a
    sealed store). A reader answers from a tally only when that hash matches the log's bytes exactly (see
    ``docs/log-format.md``) and its ``version`` is :data:`TALLY_VERSION`; otherwise, and for logs written before
    tallies existed, it reads and folds the log as always. (A tally that gains a field gets a new version, so an
    older tally's missing field is never read as its default.)
    """

    records: int
    steps: int
    version: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    models: list[str] = msgspec.field(default_factory=list)
    usage: Usage = msgspec.field(default_factory=Usage)
    error_type: str | None = None
    error_message: str | None = None
    log_sha256: str | None = None


class ExecutionCompleted(Record, frozen=True, kw_only=True, omit_defaults=True, tag="execution-completed"):
    """The final answer. Terminal. ``tally``: what the log came to (None in logs written before it existed)."""

    answer: str = ""
    output: Any = None
    tally: Tally | None = None


class ExecutionFailed(Record, frozen=True, kw_only=True, omit_defaults=True, tag="execution-failed"):
    """The run stopped on an error it could not retry. Not final: ``resume`` retries from the last step."""

    error_type: str = ""
    message: str = ""


class ExecutionCancelled(Record, frozen=True, kw_only=True, omit_defaults=True, tag="execution-cancelled"):
    """Cancelled by a caller. Terminal. ``tally``: what the log came to (see :class:`ExecutionCompleted`)."""

    reason: str = ""
    tally: Tally | None = None


class MCPToolEntry(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One tool of an MCP server's catalog, as the server listed it (see :class:`MCPCatalogRecorded`)."""

    name: str
    title: str | None = None
    description: str = ""
    input_schema: dict[str, Any] = msgspec.field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any] = msgspec.field(default_factory=dict)


class MCPCatalogRecorded(Record, frozen=True, kw_only=True, omit_defaults=True, tag="mcp-catalog-recorded"):
    """The tools an MCP server offered when the execution first used it; the model sees these ever after.

    ``server`` is the name the agent gives the server (its tools are offered as ``<server>__<tool>``);
    ``server_name`` and ``server_version`` are what the server said about itself (None when it did not);
    ``tools`` holds only the tools the agent's filter kept.
    """

    server: str = ""
    server_name: str | None = None
    server_version: str | None = None
    protocol_version: str = ""
    tools: list[MCPToolEntry] = msgspec.field(default_factory=list)


PlainRecord = (
    ExecutionStarted
    | ModelResponded
    | ModelCallFailed
    | ToolStarted
    | ToolFinished
    | ExecutionSuspended
    | DecisionRecorded
    | InputSubmitted
    | InputRequested
    | InDoubtResolved
    | DriftAccepted
    | OutputRejected
    | ChildSuspended
    | ExecutionResumed
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionCancelled
    | MCPCatalogRecorded
)


class SealedRecord(Record, frozen=True, kw_only=True, omit_defaults=True, tag="sealed"):
    """A record encrypted at rest: the JSON of a :data:`PlainRecord`, sealed with an AEAD (AES-256-GCM).

    ``sealed`` is the kind of the record inside, ``key_id`` names the key that sealed it, ``nonce`` and
    ``ciphertext`` are the AEAD's (the ciphertext ends with its 16-byte tag). The associated data binds the
    execution id, the record's sequence number and ``sealed``, so a sealed record moved to another execution
    or to another place in its log does not open. ``shell`` is the record with its content taken out (texts,
    arguments, results, the input, the answer): what the stores fold into listings and what ``health`` checks
    without the key. Opening a record checks that its shell is the shell of what it holds. ``at`` is the
    inner record's. See ``docs/security.md``.
    """

    sealed: str
    key_id: str
    nonce: bytes
    ciphertext: bytes
    shell: PlainRecord


AnyRecord = PlainRecord | SealedRecord
