"""The price table: disjoint buckets priced in Decimal, exact/snapshot/wildcard matching, dates, long context,
one-hour cache writes, overrides, and no guess for an unknown model."""

from __future__ import annotations

import warnings
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from delite.errors import UsageError
from delite.log.records import Usage
from delite.providers import ModelPrice, PriceTable, UnknownPriceWarning


def table(*entries: dict[str, object]) -> PriceTable:
    return PriceTable(entries, version="t1")


def test_worked_example_from_the_design() -> None:
    # 20 uncached + 100 cached + 20 output at 1.25 / 0.125 / 10 per million tokens.
    t = table({"vendor": "openai", "model": "m", "input": "1.25", "cached_input": "0.125", "output": "10"})
    cost = t.cost("openai", "m", Usage(input_tokens=20, cached_input_tokens=100, output_tokens=20))
    assert cost == Decimal("0.0002375")
    priced = t.price("openai", "m", Usage(input_tokens=20, cached_input_tokens=100, output_tokens=20))
    assert (priced.cost, priced.price_version) == ("0.0002375", "t1")


def test_missing_bucket_rates_fall_back_to_input_and_cache_write() -> None:
    t = table(
        {"vendor": "v", "model": "plain", "input": 2, "output": 4},
        {"vendor": "v", "model": "cache", "input": 1, "output": 5, "cache_write": "1.25", "cache_write_1h": 2},
    )
    usage = Usage(input_tokens=10, cached_input_tokens=10, cache_write_tokens=10, output_tokens=10)
    assert t.cost("v", "plain", usage) == Decimal(10 * 2 + 10 * 2 + 10 * 2 + 10 * 4) / 1_000_000
    # 4 of the 10 cache writes had the one-hour TTL; cached input falls back to the input rate.
    expected = (Decimal(10) + Decimal(10) + 6 * Decimal("1.25") + 4 * Decimal(2) + 50) / 1_000_000
    assert t.cost("v", "cache", usage, cache_write_1h=4) == expected


def test_matching_exact_then_snapshot_then_wildcard_never_a_loose_prefix() -> None:
    t = table(
        {"vendor": "openai", "model": "gpt-4o", "input": 1, "output": 1},
        {"vendor": "openai", "model": "gpt-4o-mini", "input": 2, "output": 2},
        {"vendor": "openai", "model": "ft:*", "input": 3, "output": 3},
        {"vendor": "anthropic", "model": "claude-haiku-4-5", "input": 4, "output": 4},
    )
    assert t.lookup("openai", "gpt-4o").input == 1
    assert t.lookup("openai", "gpt-4o-2024-08-06").input == 1
    assert t.lookup("openai", "gpt-4o-mini-2024-07-18").input == 2
    assert t.lookup("openai", "ft:gpt-4o:acme:v1").input == 3
    assert t.lookup("anthropic", "claude-haiku-4-5-20251001").input == 4
    assert t.lookup("anthropic", "claude-haiku-4-5-latest").input == 4
    assert t.lookup("openai", "gpt-4o-audio-preview") is None  # a different model, not a snapshot
    assert t.lookup("anthropic", "gpt-4o") is None  # vendors are separate


def test_latest_valid_entry_wins() -> None:
    t = table(
        {"vendor": "v", "model": "m", "input": 1, "output": 1, "valid_from": date(2024, 1, 1)},
        {"vendor": "v", "model": "m", "input": 2, "output": 2, "valid_from": "2025-06-01"},
    )
    assert t.lookup("v", "m", on=date(2025, 1, 1)).input == 1
    assert t.lookup("v", "m", on=date(2025, 7, 1)).input == 2
    assert t.lookup("v", "m", on=date(2023, 1, 1)) is None


def test_long_context_rates_apply_above_the_threshold() -> None:
    t = table(
        {
            "vendor": "anthropic",
            "model": "s",
            "input": 3,
            "output": 15,
            "long_context": {"threshold": 200000, "input": 6, "output": "22.5"},
        }
    )
    short = Usage(input_tokens=150_000, cached_input_tokens=50_000, output_tokens=1000)
    long = Usage(input_tokens=150_000, cached_input_tokens=50_001, output_tokens=1000)
    assert t.cost("anthropic", "s", short) == (Decimal(200_000) * 3 + 1000 * 15) / 1_000_000
    assert t.cost("anthropic", "s", long) == (Decimal(200_001) * 6 + Decimal(1000) * Decimal("22.5")) / 1_000_000


def test_unknown_model_gets_no_cost_and_a_warning() -> None:
    t = table({"vendor": "openai", "model": "m", "input": 1, "output": 1})
    with pytest.warns(UnknownPriceWarning, match="'nope'"):
        priced = t.price("openai", "nope", Usage(input_tokens=5))
    assert priced.cost is None and priced.price_version is None and priced.input_tokens == 5
    with pytest.warns(UnknownPriceWarning):
        assert t.price("openai", None, Usage()).cost is None


def test_extend_replaces_entries_for_the_same_model() -> None:
    base = PriceTable.default()
    assert base.lookup("openai", "gpt-4o-mini") is not None
    local = base.extend(
        [
            {"vendor": "openai", "model": "gpt-4o-mini", "input": 0, "output": 0},
            {"vendor": "openai", "model": "llama3.2", "input": 0, "output": 0},
        ]
    )
    assert local.lookup("openai", "gpt-4o-mini").input == 0
    assert local.cost("openai", "llama3.2", Usage(input_tokens=1000, output_tokens=1000)) == 0
    assert local.version == f"{base.version}+custom"
    assert base.lookup("openai", "gpt-4o-mini").input == Decimal("0.15")  # the default is untouched


def test_shipped_table_loads_and_prices_the_documented_models() -> None:
    t = PriceTable.default()
    assert t.version == "2025-11-01"
    for vendor, model in [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-5"),
        ("anthropic", "claude-haiku-4-5"),
        ("anthropic", "claude-sonnet-4-20250514"),
        ("anthropic", "claude-opus-4-1-20250805"),
    ]:
        entry = t.lookup(vendor, model)
        assert isinstance(entry, ModelPrice) and entry.input > 0 and entry.output > 0, model
    haiku = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert t.cost("anthropic", "claude-haiku-4-5", haiku) == Decimal(6)


def test_delite_prices_env_extends_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('version = "mine"\n[[price]]\nvendor = "openai"\nmodel = "local-llm"\ninput = 0.5\noutput = "1"\n')
    monkeypatch.setenv("DELITE_PRICES", str(path))
    t = PriceTable.default()
    assert t.lookup("openai", "local-llm").input == Decimal("0.5")
    assert t.lookup("openai", "gpt-4o") is not None
    assert t.version.endswith("+mine")


def test_bad_tables_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid price table"):
        PriceTable.from_toml("version = [")
    with pytest.raises(UsageError, match="invalid price table entry"):
        PriceTable([{"vendor": "v", "model": "m", "input": "lots"}])


def test_costs_are_plain_decimal_strings() -> None:
    t = table({"vendor": "v", "model": "m", "input": "0.05", "output": "0.4"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        priced = t.price("v", "m", Usage(input_tokens=2))
    assert priced.cost == "0.0000001"  # never "1E-7"


def test_an_unknown_price_never_loses_a_paid_turn_even_under_w_error() -> None:
    t = table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        priced = t.price("openai", "nope", Usage(input_tokens=5))
    assert priced.cost is None and priced.input_tokens == 5
