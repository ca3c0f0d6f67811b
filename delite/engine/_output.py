"""Structured output: ``agent.run(text, output_type=T)`` returns the final answer validated as a ``T``.

``T`` is a msgspec ``Struct``, a dataclass or a ``TypedDict`` (or any other type msgspec converts to and
from JSON). The execution records the type's JSON schema and an instruction for the model; the model's final
answer is parsed as JSON and converted to ``T``. An answer that does not match is recorded
(``output-rejected``) and the model is asked to correct it, up to a limit; then the run fails with
:class:`~delite.errors.StructuredOutputValidationError`. The validated value is recorded with the answer
(``execution-completed.output``, as JSON), so it survives a resume from the log.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from delite.errors import UsageError
from delite.providers._base import OUTPUT_RETRY_PREFIX

__all__ = ["OutputSpec"]

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class OutputSpec:
    """An output type with its JSON schema, its instruction to the model and its correction limit."""

    def __init__(self, output_type: Any, *, retries: int = 2) -> None:
        """Check that msgspec can build a schema for ``output_type``."""
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise UsageError("output_retries must be 0 or more")
        try:
            schema = msgspec.json.schema(output_type)
        except (TypeError, ValueError) as e:
            raise UsageError(f"output_type {output_type!r} is not supported: {e}") from e
        self.type = output_type
        self.retries = retries
        self.schema: dict[str, Any] = schema
        self.name = getattr(output_type, "__name__", str(output_type))
        import json  # noqa: PLC0415 - the stdlib's json (and its regexes): only for a structured output

        self.prompt = (
            "When you give your final answer, reply with a single JSON value and nothing else (no prose, no "
            f"code fence), matching this JSON schema:\n{json.dumps(schema, sort_keys=True)}"
        )

    def parse(self, text: str) -> Any:
        """The answer as JSON values of the output type; ``ValueError`` says why it does not match."""
        last: Exception | None = None
        for candidate in _candidates(text):
            try:
                value = msgspec.json.decode(candidate, type=self.type, strict=False)
            except msgspec.ValidationError as e:
                raise ValueError(str(e)) from None  # valid JSON of the wrong shape: say what is wrong
            except msgspec.DecodeError as e:
                last = e
                continue
            return msgspec.to_builtins(value, str_keys=True)
        raise ValueError(f"the answer is not JSON ({last})" if last else "the answer is empty")

    def convert(self, value: Any) -> Any:
        """A recorded output (JSON values) as the output type."""
        return msgspec.convert(value, type=self.type, strict=False)

    def correction(self, error: str) -> str:
        """What the model is told when its answer did not match."""
        return (
            f"{OUTPUT_RETRY_PREFIX} ({error}). Reply again with only a JSON value matching the schema you were given."
        )

    def matches(self, schema: dict[str, Any] | None) -> bool:
        """Whether ``schema`` (as recorded by an execution) is this type's."""
        return schema == self.schema


def _candidates(text: str) -> list[str]:
    """The answer itself, then the inside of a code fence, then the span from the first brace to the last."""
    out = [text.strip()]
    fenced = _FENCE.search(text)
    if fenced:
        out.append(fenced.group(1).strip())
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if 0 <= start < end:
            out.append(text[start : end + 1])
    return [c for c in dict.fromkeys(out) if c]
