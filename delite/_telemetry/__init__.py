"""Telemetry: OpenTelemetry GenAI spans and metrics as a projection of the log (see ``docs/observability.md``).

The modules: ``_names`` (every name emitted, versioned), ``_projection`` (records to spans, one function for
live and offline), ``_hook`` (the store wrapper that is the engine's one hook), ``_observer`` (the live
observer: spans, metrics, log lines, fail open), ``_otel`` (the OpenTelemetry API side) and ``_otlp`` (the
offline OTLP/JSON export). Only ``_otel`` imports ``opentelemetry``, and only :func:`delite.telemetry.instrument`
imports ``_otel``, when the API is installed.
"""

from __future__ import annotations
