"""What a model call cost, in ``Decimal`` dollars, from a price table shipped as package data.

The table (``delite/providers/prices.toml``) maps a vendor and a model id to per-million-token rates for
each disjoint usage bucket delite records. Cost is ``sum(tokens * rate) / 1e6`` computed in ``Decimal``, so
sums over long runs do not drift. A model the table does not know gets no cost (``None``) and an
:class:`UnknownPriceWarning`: never a guess.

Override or extend the table per provider (``OpenAI(..., prices=table)``), or for the whole process by
pointing ``DELITE_PRICES`` at a TOML file in the same format; its entries replace shipped ones with the
same vendor and model id.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tomllib
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from typing import Any

import msgspec

from delite.errors import UsageError
from delite.log.records import Usage

__all__ = ["LongContext", "ModelPrice", "PriceTable", "UnknownPriceWarning", "format_cost"]

_MILLION = Decimal(1_000_000)
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}|-\d{8}|-latest")
_RATE_KEYS = ("input", "output", "cached_input", "cache_write", "cache_write_1h")


class UnknownPriceWarning(UserWarning):
    """A model call's cost is unknown because the price table has no entry for its model."""


class LongContext(msgspec.Struct, frozen=True, kw_only=True):
    """Rates that replace the base ones when a call's prompt tokens exceed ``threshold``."""

    threshold: int
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True):
    """One table entry: US dollars per million tokens of each bucket.

    Absent bucket rates fall back: ``cached_input`` and ``cache_write`` to ``input`` (OpenAI bills cache
    writes as plain input), ``cache_write_1h`` to ``cache_write``.
    """

    vendor: str
    model: str
    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    valid_from: date | None = None
    long_context: LongContext | None = None

    def rank(self, model: str) -> tuple[int, int] | None:
        """How well this entry matches ``model``: exact beats snapshot or wildcard prefix, longer beats shorter."""
        pattern = self.model
        if pattern.endswith("*"):
            stem = pattern[:-1]
            return (0, len(stem)) if model.startswith(stem) else None
        if model == pattern:
            return (1, len(pattern))
        if model.startswith(pattern) and _SNAPSHOT.fullmatch(model, len(pattern)):
            return (0, len(pattern))
        return None

    def cost(self, usage: Usage, *, cache_write_1h: int = 0) -> Decimal:
        """The cost of ``usage`` (of which ``cache_write_1h`` cache-write tokens had the one-hour TTL)."""
        rates: ModelPrice | LongContext = self
        prompt = usage.input_tokens + usage.cached_input_tokens + usage.cache_write_tokens
        if self.long_context is not None and prompt > self.long_context.threshold:
            rates = self.long_context
        cached = rates.cached_input if rates.cached_input is not None else rates.input
        write = rates.cache_write if rates.cache_write is not None else rates.input
        write_1h = rates.cache_write_1h if rates.cache_write_1h is not None else write
        long_writes = min(max(cache_write_1h, 0), usage.cache_write_tokens)
        total = (
            usage.input_tokens * rates.input
            + usage.cached_input_tokens * cached
            + (usage.cache_write_tokens - long_writes) * write
            + long_writes * write_1h
            + usage.output_tokens * rates.output
        )
        return total / _MILLION


def format_cost(cost: Decimal) -> str:
    """A cost as the plain decimal string stored in :class:`~delite.log.records.Usage` (never exponent form)."""
    return format(cost.normalize(), "f")


def _entry(data: Mapping[str, Any]) -> ModelPrice:
    def rates(d: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (str(v) if k in _RATE_KEYS and isinstance(v, (int, float)) else v) for k, v in d.items()}

    fixed = rates(data)
    if isinstance(fixed.get("long_context"), Mapping):
        fixed["long_context"] = rates(fixed["long_context"])
    try:
        return msgspec.convert(fixed, ModelPrice)
    except msgspec.ValidationError as e:
        raise UsageError(f"invalid price table entry {dict(data)!r}: {e}") from e


class PriceTable:
    """Per-million-token rates by vendor and model id; see the module docstring for matching rules.

    Example::

        table = PriceTable.default().extend([{"vendor": "openai", "model": "llama3.2", "input": 0, "output": 0}])
        OpenAI("llama3.2", base_url="http://localhost:11434/v1", prices=table)
    """

    def __init__(self, entries: Iterable[ModelPrice | Mapping[str, Any]] = (), *, version: str = "custom") -> None:
        """Build from entries (``ModelPrice`` objects or dicts in the TOML file's shape)."""
        self.entries: tuple[ModelPrice, ...] = tuple(e if isinstance(e, ModelPrice) else _entry(e) for e in entries)
        self.version = version

    @classmethod
    def from_toml(cls, text: str) -> PriceTable:
        """Parse a table in the shipped file's format (``version`` and a list of ``[[price]]`` entries)."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"invalid price table: {e}") from e
        return cls(data.get("price", []), version=str(data.get("version", "custom")))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriceTable:
        """Read a TOML price table from a file."""
        with open(path, encoding="utf-8") as f:
            return cls.from_toml(f.read())

    @classmethod
    def default(cls) -> PriceTable:
        """The shipped table, extended by the file ``DELITE_PRICES`` names, if set."""
        return _default_table(os.environ.get("DELITE_PRICES") or None)

    def extend(self, other: PriceTable | Iterable[ModelPrice | Mapping[str, Any]]) -> PriceTable:
        """A new table with ``other``'s entries; they replace this table's entries for the same vendor and model."""
        extra = other if isinstance(other, PriceTable) else PriceTable(other)
        replaced = {(e.vendor, e.model) for e in extra.entries}
        kept = [e for e in self.entries if (e.vendor, e.model) not in replaced]
        return PriceTable([*kept, *extra.entries], version=f"{self.version}+{extra.version}")

    def lookup(self, vendor: str, model: str, *, on: date | None = None) -> ModelPrice | None:
        """The entry that prices ``model`` on day ``on`` (today when omitted), or None."""
        day = on or datetime.now(UTC).date()
        best: tuple[tuple[int, int], date, ModelPrice] | None = None
        for entry in self.entries:
            if entry.vendor != vendor:
                continue
            rank = entry.rank(model)
            if rank is None:
                continue
            since = entry.valid_from or date.min
            if since > day:
                continue
            if best is None or (rank, since) > (best[0], best[1]):
                best = (rank, since, entry)
        return best[2] if best else None

    def cost(self, vendor: str, model: str, usage: Usage, *, cache_write_1h: int = 0) -> Decimal | None:
        """The cost of ``usage`` for ``model``, or None when the table has no price for it."""
        entry = self.lookup(vendor, model)
        return None if entry is None else entry.cost(usage, cache_write_1h=cache_write_1h)

    def price(self, vendor: str, model: str | None, usage: Usage, *, cache_write_1h: int = 0) -> Usage:
        """``usage`` with its cost and this table's version filled in; warns when the model is unknown."""
        cost = self.cost(vendor, model, usage, cache_write_1h=cache_write_1h) if model else None
        if cost is None:
            # Warnings made errors (-W error) must not lose a turn that was already paid for.
            with contextlib.suppress(UnknownPriceWarning):
                warnings.warn(
                    f"no price for {vendor} model {model!r}: its cost is unknown (extend the price table to fix it)",
                    UnknownPriceWarning,
                    stacklevel=2,
                )
            return msgspec.structs.replace(usage, cost=None)
        return msgspec.structs.replace(usage, cost=format_cost(cost), price_version=self.version)

    def __repr__(self) -> str:
        """The version and the number of entries."""
        return f"PriceTable(version={self.version!r}, entries={len(self.entries)})"


@functools.lru_cache(maxsize=4)
def _default_table(override: str | None) -> PriceTable:
    text = resources.files("delite.providers").joinpath("prices.toml").read_text(encoding="utf-8")
    table = PriceTable.from_toml(text)
    return table.extend(PriceTable.load(override)) if override else table
