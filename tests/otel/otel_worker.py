"""A worker process for the telemetry tests: runs a scenario with tracing to a file of spans.

Usage: python otel_worker.py DATA_DIR SCENARIO EXECUTION_ID SPANS_FILE

Scenarios: ``crash`` (the payer agent; with ``DELITE_TEST_DIE=1`` it SIGKILLs itself inside ``charge``),
``approval`` (the refunder agent, which stops for an approval), ``nap`` (a tool that sleeps a minute, in a
process that turns SIGTERM into ``SystemExit`` as servers do). Prints the response's status.
"""

from __future__ import annotations

import signal
import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

sys.path.insert(0, __file__.rpartition("/")[0])

from otel_scenario import FileExporter, approval_agent, crash_agent, napping_agent

from delite.telemetry import instrument


def main() -> None:
    data_dir, scenario, eid, spans = sys.argv[1:5]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter(spans)))
    instrument(tracer_provider=provider)
    if scenario == "nap":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        agent = napping_agent(data_dir)
    else:
        agent = crash_agent(data_dir) if scenario == "crash" else approval_agent(data_dir)
    response = agent.run("go", execution_id=eid)
    provider.shutdown()
    print(response.status)


if __name__ == "__main__":
    main()
