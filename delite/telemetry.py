"""OpenTelemetry GenAI spans and metrics, live and from the log; one log line per step (``docs/observability.md``).

Live: call :func:`instrument` once at startup. Every :class:`~delite.Agent`, built before or after, reports each
batch of records its executions append: an ``invoke_agent {agent}`` span per advance with ``chat {model}`` and
``execute_tool {tool}`` children, sub-agents under the tool call that delegated, suspensions, decisions, budget
stops, contract refusals, drift, in-doubt retries and cancels as events; the conventions' client metrics and
delite's own; a line per step under the ``delite`` :mod:`logging` logger. Only ``opentelemetry-api`` is used (``pip
install "delite-agents[otel]"``); the application configures the SDK and exporters. Without the API installed, spans
and metrics are no-ops and the log lines still come.

After the fact: :func:`otlp_json` (and ``delite export ID --format otlp-json``) projects a recorded
execution into the same spans, as an OTLP/JSON document a collector accepts.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from delite import _checks as checks
from delite._telemetry import _names as names
from delite._telemetry._hook import active, set_active
from delite._telemetry._observer import LiveObserver, LiveSink, Meter, QuietSink
from delite._telemetry._otlp import SCHEMA_URL, encode, project
from delite._telemetry._projection import Options
from delite.errors import UsageError
from delite.store._base import Store

if TYPE_CHECKING:
    from delite.datadir._directory import DataDir

__all__ = ["Instrumentation", "instrument", "instrumentation", "otlp_json", "uninstrument"]


class Instrumentation:
    """The telemetry :func:`instrument` put in effect.

    Attributes:
        capture_content: whether prompts, answers, tool arguments and results are recorded on spans.
        chat_spans: whether delite emits its own ``chat`` spans and client metrics.
        semconv_version: the GenAI conventions release whose attribute names are emitted.
        tracing: whether the OpenTelemetry API was found (False: spans and metrics are no-ops).
    """

    def __init__(self, observer: LiveObserver, *, tracing: bool) -> None:
        """Wrap the observer :func:`instrument` made."""
        self._observer = observer
        self.capture_content = observer.options.capture_content
        self.chat_spans = observer.options.chat_spans
        self.semconv_version = observer.options.names.version
        self.tracing = tracing

    @property
    def errors(self) -> int:
        """How many exceptions telemetry caught and swallowed (it never lets one reach a run)."""
        return self._observer.errors

    @property
    def last_error(self) -> BaseException | None:
        """The last exception telemetry swallowed, for debugging."""
        return self._observer.last_error

    @property
    def active(self) -> bool:
        """Whether this instrumentation is still reporting (False after :func:`uninstrument`)."""
        return self._observer.enabled

    def __repr__(self) -> str:
        """The options."""
        return (
            f"Instrumentation(tracing={self.tracing}, capture_content={self.capture_content}, "
            f"chat_spans={self.chat_spans}, semconv_version={self.semconv_version!r}, errors={self.errors})"
        )


def instrument(
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    capture_content: bool | None = None,
    chat_spans: bool = True,
    semconv_opt_in: str | None = None,
    logs: bool = True,
) -> Instrumentation:
    """Turn telemetry on for every Agent in this process, built before or after (calling it again replaces it).

    Args:
        tracer_provider: an OpenTelemetry ``TracerProvider`` (default: the global one, through the API's proxy,
            so one set later is used too).
        meter_provider: an OpenTelemetry ``MeterProvider`` (default: the global one).
        capture_content: record prompts, answers, tool arguments and results on spans. Default: the
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` environment variable (off unless ``true``).
            Idempotency keys are never recorded.
        chat_spans: emit delite's own ``chat`` spans and ``gen_ai.client.*`` metrics; turn off when the contrib
            openai or anthropic instrumentation already emits them.
        semconv_opt_in: the value of ``OTEL_SEMCONV_STABILITY_OPT_IN`` to follow (default: the environment);
            ``gen_ai_latest_experimental`` emits the newest attribute names.
        logs: write one line per step to the ``delite`` logger.

    Raises:
        UsageError: an option has the wrong type.
    """
    if capture_content is not None:
        checks.check_flag("capture_content", capture_content)
    checks.check_flag("chat_spans", chat_spans)
    checks.check_flag("logs", logs)
    checks.check_optional_text("semconv_opt_in", semconv_opt_in)
    for label, provider, method in (
        ("tracer_provider", tracer_provider, "get_tracer"),
        ("meter_provider", meter_provider, "get_meter"),
    ):
        if provider is not None and not callable(getattr(provider, method, None)):
            raise UsageError(f"{label} must be an OpenTelemetry {label.title().replace('_', '')}, not {provider!r}")
    options = Options(
        names=names.names(semconv_opt_in),
        capture_content=names.capture_content_from_env() if capture_content is None else capture_content,
        chat_spans=chat_spans,
    )
    schema_url = SCHEMA_URL.format(version=options.names.version)
    sink: LiveSink
    meter: Meter | None
    broken: Exception | None = None
    try:
        from delite._telemetry._otel import OtelMeter, OtelSink  # noqa: PLC0415 - only with the API installed
    except ImportError:
        if tracer_provider is not None or meter_provider is not None:
            raise UsageError(
                "a tracer or meter provider needs opentelemetry-api: pip install 'delite-agents[otel]'"
            ) from None
        sink, meter, tracing = QuietSink(), None, False
    else:
        sink, tracing = OtelSink(tracer_provider, schema_url), True
        try:
            meter = OtelMeter(meter_provider, schema_url)
        except Exception as e:  # noqa: BLE001 - fail open: a broken meter provider costs the metrics, nothing more
            meter, broken = None, e
    uninstrument()
    observer = LiveObserver(sink, meter, options, logs=logs)
    if broken is not None:
        observer.errors, observer.last_error = 1, broken
    set_active(observer)
    return Instrumentation(observer, tracing=tracing)


def instrumentation() -> Instrumentation | None:
    """The instrumentation in effect, or None."""
    observer = active()
    if not isinstance(observer, LiveObserver):
        return None
    return Instrumentation(observer, tracing=not isinstance(observer.sink, QuietSink))


def uninstrument() -> None:
    """Turn telemetry off for every agent (an advance under way still ends the spans it started)."""
    observer = active()
    if observer is not None:
        observer.enabled = False
    set_active(None)


def otlp_json(
    source: Store | DataDir | str | os.PathLike[str],
    execution_id: str,
    *,
    capture_content: bool = False,
    chat_spans: bool = True,
    semconv_opt_in: str | None = None,
    sub_agents: bool = True,
    service_name: str = "delite",
) -> dict[str, Any]:
    """A recorded execution as OTLP/JSON spans (an ``ExportTraceServiceRequest``), the same spans as live.

    Args:
        source: a data directory (a path or a :class:`~delite.DataDir`), a ``postgresql://`` URL or a
            :class:`~delite.store.Store`.
        execution_id: the execution (its full id).
        capture_content: include prompts, answers, tool arguments and results.
        chat_spans: include the ``chat`` spans.
        semconv_opt_in: as for :func:`instrument` (default: the environment).
        sub_agents: include the sub-agents' executions, under the tool calls that started them.
        service_name: the resource's ``service.name``.

    Raises:
        ExecutionNotFoundError: no such execution.
        UsageError: an option has the wrong type.
    """
    checks.check_flag("capture_content", capture_content)
    checks.check_flag("chat_spans", chat_spans)
    checks.check_flag("sub_agents", sub_agents)
    checks.check_optional_text("semconv_opt_in", semconv_opt_in)
    checks.check_text("service_name", service_name)
    checks.check_text("execution_id", execution_id)
    store, owned = _store(source)
    try:
        options = Options(names=names.names(semconv_opt_in), capture_content=capture_content, chat_spans=chat_spans)
        return _otlp_json(store, execution_id, options, sub_agents=sub_agents, service_name=service_name)
    finally:
        if owned:
            store.close()  # opened here from a path or a URL


def _otlp_json(
    store: Store, execution_id: str, options: Options, *, sub_agents: bool, service_name: str
) -> dict[str, Any]:

    def children(eid: str) -> list[str]:
        if not sub_agents:
            return []
        page = store.list_executions(parent=eid, limit=None)
        return [s.id for s in sorted(page.items, key=lambda s: (s.created_at, s.id))]

    sink = project(lambda eid: store.read(eid).records, children, execution_id, options)
    return encode(sink, options.names, service_name=service_name)


def _store(source: object) -> tuple[Store, bool]:
    """The store to read, and whether it was opened here (from a path or a URL) and must be closed."""
    if isinstance(source, Store):
        return source, False
    from delite.datadir._directory import DataDir  # noqa: PLC0415 - the read side, only for a path

    if isinstance(source, DataDir):
        return source.store, False
    if isinstance(source, str | os.PathLike):
        from delite.store._open import open_store  # noqa: PLC0415

        return open_store(source), True
    raise UsageError(f"source must be a data directory, a postgresql:// URL or a Store, not {type(source).__name__}")
