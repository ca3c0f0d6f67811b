"""The keyword arguments of a run, typed once for every entry point that forwards them.

``Agent.run`` spells them out; ``arun``, ``stream``, ``stream_events``, ``astream``, ``astream_events`` and
``Runtime.go`` take ``**options: Unpack[RunOptions]`` (PEP 692), so a type checker checks each keyword's
name and type at every one of them, and the set of options is written in one place.
"""

from typing import Any, TypedDict

__all__ = ["RUN_ARGS", "RUN_OPTIONS", "History", "Metadata", "RunArgs", "RunOptions"]

History = list[dict[str, Any]]
"""Earlier chat turns the application owns (OpenAI chat shape)."""

Metadata = dict[str, Any]
"""JSON stored with an execution."""


class RunArgs(TypedDict, total=False):
    """The options of ``Agent.run`` other than ``output_type`` (see :meth:`delite.Agent.run`)."""

    execution_id: str | None
    history: History | None
    metadata: Metadata | None
    model: str | None
    idempotency_key: str | None


class RunOptions(RunArgs, total=False):
    """Every option of ``Agent.run``: :class:`RunArgs` and ``output_type``."""

    output_type: Any


RUN_OPTIONS = frozenset(RunOptions.__optional_keys__)
"""The names of the options, to refuse an unknown keyword before anything is done."""

RUN_ARGS = frozenset(RunArgs.__optional_keys__)
"""The names of the options other than ``output_type``."""
