"""A claim reads a log without a snapshot a chunk at a time and repairs a torn tail exactly as a whole read does."""

from __future__ import annotations

from pathlib import Path

import pytest

from delite import Agent, FileStore, ScriptedProvider, tool
from delite.errors import LogCorruptError
from delite.log import _reader, parse_log

STEPS = 12


@tool
def bump(i: int) -> dict:
    """Count."""
    return {"n": i + 1}


@pytest.fixture
def chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks far smaller than a frame, so every frame crosses a chunk boundary."""
    monkeypatch.setattr(_reader, "CHUNK_SIZE", 5)


def finished_log(data_dir: Path) -> Path:
    with Agent(data_dir, provider=ScriptedProvider.tool_loop(STEPS, "bump"), tools=[bump]) as a:
        assert a.run("go", execution_id="e1").status == "completed"
    return data_dir / "executions" / "e1.log"


@pytest.mark.usefixtures("chunked")
def test_a_torn_tail_is_cut_off_as_the_whole_read_cuts_it(data_dir: Path) -> None:
    log = finished_log(data_dir)
    data = log.read_bytes()
    whole = parse_log(data)
    torn = data[: whole.offsets[-1] + 7]  # the last frame cut in its header... then its payload
    for cut in (torn, data[: whole.offsets[-1] + 20]):
        log.write_bytes(cut)
        expected = parse_log(cut)
        with FileStore(data_dir).claim("e1") as claimed:
            assert claimed.records == expected.records
            assert claimed.torn == expected.torn
            assert claimed.torn is not None
        assert log.stat().st_size == expected.end  # repaired: the torn bytes are gone
        log.write_bytes(data)


@pytest.mark.usefixtures("chunked")
def test_damage_before_the_tail_is_refused_and_the_log_left_alone(data_dir: Path) -> None:
    log = finished_log(data_dir)
    data = bytearray(log.read_bytes())
    offset = parse_log(bytes(data)).offsets[3]
    data[offset + 20] ^= 0x01
    log.write_bytes(bytes(data))
    with pytest.raises(LogCorruptError) as caught:
        FileStore(data_dir).claim("e1")
    assert caught.value.offset == offset
    assert log.read_bytes() == bytes(data)


@pytest.mark.usefixtures("chunked")
def test_the_read_path_streams_the_same_records(data_dir: Path) -> None:
    log = finished_log(data_dir)
    got = FileStore(data_dir).read("e1")
    assert list(got.records) == parse_log(log.read_bytes()).records
