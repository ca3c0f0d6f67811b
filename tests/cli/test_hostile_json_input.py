"""JSON and text a user gives the CLI (a file, stdin, an argument) that it cannot read is a usage error.

Nested too deeply for the parser, not UTF-8, a key given twice, NaN: exit 2, one line on stderr that names
the input and says what is wrong (JSON with ``--json``), never a traceback, and nothing written to the log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from delite import DataDir

DEEP = "[" * 100_000 + "]" * 100_000  # far past the recursion limit of Python's json
DEEP_ARG = "[" * 5_000 + "]" * 5_000  # the same, short enough for one argument (Linux takes 128 KiB)
LATIN1 = '{"c1.0": "caf\u00e9"}'.encode("latin-1")  # 0xE9, not UTF-8


def log_bytes(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((data / "executions").iterdir())}


def delite(
    *args: str | bytes, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "delite_cli", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def error_line(done: subprocess.CompletedProcess[bytes]) -> str:
    """The one ``error:`` line of a usage error (exit 2) on stderr, with nothing on stdout."""
    err = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    assert done.returncode == 2, err
    assert done.stdout == b""
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.strip()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "deep": ('{"c1.0": ' + DEEP + "}").encode(),
        "latin1": LATIN1,
        "twice": b'{"c1.0": 1, "c1.0": 2}',
    }
    out = {}
    for name, raw in paths.items():
        out[name] = tmp_path / f"{name}.json"
        out[name].write_bytes(raw)
    return out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("deep", " is nested too deeply to read as JSON"),
        ("latin1", " is not UTF-8 text (byte 0xe9 at offset 13)"),
        ("twice", ": the key 'c1.0' is given twice"),
    ],
)
def test_tool_results_file_or_stdin_that_cannot_be_read(
    data: Path, files: dict[str, Path], name: str, expected: str
) -> None:
    before = log_bytes(data)
    path = files[name]
    line = error_line(delite("submit-tool-results", "client-1", str(path), "--data-dir", str(data)))
    assert line == f"error: tool results from {path}{expected}"
    line = error_line(delite("submit-tool-results", "client-1", "-", "--data-dir", str(data), stdin=path.read_bytes()))
    assert line == f"error: tool results from -{expected}"
    # the same file as an in-doubt call's result
    line = error_line(delite("resolve", "doubt-1", "c1.0", "--result-file", str(path), "--data-dir", str(data)))
    assert line == f"error: the result from {path}{expected}"
    assert log_bytes(data) == before


def test_stdin_is_read_as_utf8_whatever_the_locale(data: Path) -> None:
    """Python decodes stdin strictly under most UTF-8 locales (a UnicodeDecodeError where it is not UTF-8) and
    with surrogateescape under C.UTF-8 (lone surrogates): the CLI reads the bytes itself, so both are the same
    usage error."""
    before = log_bytes(data)
    for errors in ("strict", "surrogateescape"):
        env = {"PYTHONIOENCODING": f"utf-8:{errors}"}
        done = delite("submit-input", "input-1", "-", "--data-dir", str(data), stdin=b"Lisbon \xff", env=env)
        assert error_line(done) == "error: the input from - is not UTF-8 text (byte 0xff at offset 7)"
        done = delite("submit-tool-results", "client-1", "--data-dir", str(data), stdin=LATIN1, env=env)
        assert error_line(done) == "error: tool results from - is not UTF-8 text (byte 0xe9 at offset 13)"
    assert log_bytes(data) == before


def test_result_argument_that_cannot_be_read(data: Path) -> None:
    before = log_bytes(data)
    cases = {
        DEEP_ARG: "error: --result is nested too deeply to read as JSON",
        b'"caf\xe9"': "error: --result is not UTF-8 text (at character 4)",  # Latin-1 bytes in argv
        '{"a": 1, "a": 2}': "error: --result: the key 'a' is given twice",
        "NaN": "error: --result is not valid JSON: NaN is not a JSON number (quote a string as '\"text\"')",
    }
    for given, expected in cases.items():
        assert error_line(delite("resolve", "doubt-1", "c1.0", "--result", given, "--data-dir", str(data))) == expected
    assert log_bytes(data) == before
    assert DataDir(data).execution("doubt-1").detail.status == "suspended"


def test_meta_value_that_cannot_be_read(data: Path) -> None:
    """A ``--meta`` VALUE that is not JSON at all is matched as a string; one that is JSON the CLI cannot take,
    or is not UTF-8, is a bad option value (exit 2, as ``--meta novalue`` is), never a traceback."""
    cases = {
        "k=" + DEEP_ARG: "is nested too deeply to read as JSON",
        b"k=caf\xe9": "is not UTF-8 text (at character 5)",
        'k={"a": 1, "a": 2}': ": the key 'a' is given twice",
    }
    for given, expected in cases.items():
        done = delite("status", "--meta", given, "--data-dir", str(data))
        err = done.stderr.decode("utf-8", "replace")
        assert done.returncode == 2 and "Traceback" not in err, err
        assert "Invalid value for --meta: 'k=" in err and expected in err, err
        done = delite("status", "--meta", given, "--data-dir", str(data), "--json")
        assert done.returncode == 2
        assert expected in json.loads(done.stderr)["error"]["message"]
    # not JSON at all: matched as the string it is (NaN is no JSON number, so the string "NaN")
    for given in ("thread_id=t-1", "k=NaN", "k=[1,"):
        done = delite("status", "--meta", given, "--data-dir", str(data), "--json")
        assert done.returncode == 0, done.stderr
    ids = [
        e["id"]
        for e in json.loads(delite("status", "--meta", "thread_id=t-1", "--data-dir", str(data), "--json").stdout)[
            "executions"
        ]
    ]
    assert ids == ["done-1"]


def test_usage_errors_are_json_with_json(data: Path, files: dict[str, Path]) -> None:
    """With ``--json`` every error is one JSON object on stderr, those the commands raise themselves too."""
    for args in (
        ["submit-tool-results", "client-1", str(files["deep"])],
        ["submit-tool-results", "client-1", str(files["latin1"])],
        ["resolve", "doubt-1", "c1.0", "--result", "{"],
        ["resolve", "doubt-1", "c1.0"],  # no outcome given
        ["submit-tool-results", "client-1", str(files["deep"].parent / "missing.json")],
    ):
        done = delite(*args, "--data-dir", str(data), "--json")
        assert done.returncode == 2, done.stderr
        error = json.loads(done.stderr)["error"]
        assert error["type"] == "UsageError" and error["message"], error


def test_a_byte_order_mark_is_no_content(data: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_bytes(b'\xef\xbb\xbf{"c1.0": {"city": "Lisbon"}}')  # as some editors save UTF-8
    done = delite("submit-tool-results", "client-1", str(results), "--data-dir", str(data), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["action"] == "submitted c1.0"
