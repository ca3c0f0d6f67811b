"""docs/log-format.md is a contract: its record tables must name exactly the kinds and fields the code has."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec
import pytest

from delite.log import records
from delite.log._framing import FORMAT, FRAME_HEADER_SIZE, HEADER, MAX_RECORD_SIZE

DOC = Path(__file__).resolve().parents[2] / "docs" / "log-format.md"
SECTION = re.compile(r"^#{3,4} `([A-Za-z-]+)`\n(.*?)(?=^#{2,4} |\Z)", re.DOTALL | re.MULTILINE)
ROW = re.compile(r"^\| `(\w+)` \|", re.MULTILINE)
NESTED = [
    "Usage",
    "Tally",
    "RecordedToolCall",
    "ConfigFingerprint",
    "ToolSpec",
    "SuspendReason",
    "PendingCall",
    "MCPToolEntry",
]


def documented() -> dict[str, list[str]]:
    return {name: ROW.findall(body) for name, body in SECTION.findall(DOC.read_text())}


def fields(cls: type[msgspec.Struct]) -> list[str]:
    return [f for f in cls.__struct_fields__ if f != "at"]  # ``at`` is documented once, for every record


def test_every_record_kind_is_documented_and_nothing_else() -> None:
    kinds = {t.__struct_config__.tag for t in typing.get_args(records.AnyRecord)}
    doc = {name for name in documented() if "-" in name or name.islower()}
    assert doc == kinds


@pytest.mark.parametrize("cls", typing.get_args(records.AnyRecord), ids=lambda c: c.__struct_config__.tag)
def test_record_fields_match_the_doc(cls: type[msgspec.Struct]) -> None:
    assert documented()[cls.__struct_config__.tag] == fields(cls)


@pytest.mark.parametrize("name", NESTED)
def test_nested_fields_match_the_doc(name: str) -> None:
    assert documented()[name] == fields(getattr(records, name))


def test_constants_match_the_doc() -> None:
    text = DOC.read_text()
    assert FORMAT == "delite-log/1" and len(HEADER) == 13
    assert f"# Log format `{FORMAT}`" in text
    assert FRAME_HEADER_SIZE == 12 and "fewer than 12 bytes remain" in text
    assert MAX_RECORD_SIZE == 64 * 1024 * 1024 and "64 MiB" in text
