"""Telemetry: OpenTelemetry GenAI spans and metrics as a projection of the log (see ``docs/observability.md``).

Nothing in this package imports ``opentelemetry`` at import time: :mod:`delite._telemetry._live` does, and it
is imported only when :func:`delite.telemetry.instrument` is called. The projection
(:mod:`delite._telemetry._projection`) and the offline OTLP/JSON export (:mod:`delite._telemetry._otlp`) need
no OpenTelemetry package at all.
"""

from __future__ import annotations
