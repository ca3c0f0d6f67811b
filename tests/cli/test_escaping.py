"""Model and tool content is untrusted: every view prints it escaped, never as terminal codes or markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import scenario_agent

from delite_cli._safe import clean, clean_json

BOTH_STORES = True  # what the views print does not depend on where the records are kept
HOSTILE = scenario_agent.HOSTILE
RAW = ("\x1b", "\x07", "\u202e", "\u202c", "\x9b", "\U000e0041")


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def assert_inert(text: str) -> None:
    for ch in RAW:
        assert ch not in text, repr(ch)
    assert "\U0001f604" not in text  # :smile: stays text, not an emoji


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["inspect", "hostile-1"],
        ["steps", "hostile-1"],
        ["events", "hostile-1", "--full"],
        ["tail", "hostile-1"],
        ["export", "hostile-1", "--format", "html"],
    ],
)
def test_human_views_escape_hostile_content(run, built: Path, args: list[str]) -> None:
    r = run(*args, "--data-dir", built)
    assert r.exit_code == 0, r.output
    assert_inert(r.output)
    if args[0] == "export":
        assert "<script>document.title" not in r.stdout
        assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in r.stdout
        assert "Content-Security-Policy" in r.stdout and "default-src 'none'" in r.stdout
        assert "\\x1b[31mRED\\x1b[0m \\x1b]0;pwned\\x07" in r.stdout
    elif args[0] in ("events", "tail"):  # records are shown as JSON, where ESC is \u001b
        assert "\\u001b[31mRED\\u001b[0m" in r.stdout
        assert "[bold red]markup[/bold red]" in r.stdout  # rich markup is printed, not applied
        assert "\\u202eevil\\u202c" in r.stdout
    elif args[0] == "inspect":
        assert "\\x1b[31mRED\\x1b[0m" in r.stdout  # shown as visible escapes
        assert "[bold red]markup[/bold red]" in r.stdout
    elif args[0] == "status":
        assert "hostile \\x1b[31mRED" in r.stdout


def test_inspect_shows_the_whole_hostile_answer_escaped(run, built: Path) -> None:
    out = run("inspect", "hostile-1", "--data-dir", built).stdout
    flat = " ".join(line.strip() for line in out.splitlines())
    assert "\\x1b]0;pwned\\x07" in flat and ":smile:" in flat


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--json"],
        ["inspect", "hostile-1", "--json"],
        ["steps", "hostile-1", "--json"],
        ["events", "hostile-1", "--json"],
        ["events", "hostile-1", "--nl"],
        ["export", "hostile-1"],
        ["export", "hostile-1", "--nl"],
        ["tail", "hostile-1", "--json"],
    ],
)
def test_json_output_is_escaped_and_round_trips(run, built: Path, args: list[str]) -> None:
    r = run(*args, "--data-dir", built)
    assert r.exit_code == 0, r.output
    assert_inert(r.stdout)
    assert "\x7f" not in r.stdout
    if "--nl" in args or args[0] == "tail":
        docs = [json.loads(line) for line in r.stdout.splitlines()]
    else:
        docs = [json.loads(r.stdout)]
    assert any(HOSTILE in s for s in strings(docs))  # the exact content survives the escaping


def test_error_messages_escape_what_the_user_or_the_log_supplied(run, data: Path) -> None:
    r = run("approve", "approve-1", "\x1b[2J\x1b]0;x\x07", "--data-dir", data)
    assert r.exit_code == 2
    assert_inert(r.stderr)
    assert "\\x1b[2J" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run("resolve", "doubt-1", "c1.0", "--error", HOSTILE, "--data-dir", data)
    assert r.exit_code == 0
    out = run("inspect", "doubt-1", "--data-dir", data).output
    assert_inert(out)


def test_clean_escapes_controls_and_invisible_format_characters() -> None:
    assert clean("a\x1b[1mb\x07\x00\x7f\x85\x9b") == "a\\x1b[1mb\\x07\\x00\\x7f\\x85\\x9b"
    assert clean("\u202e\u2066\u200b\ufeff\U000e0041") == "\\u202e\\u2066\\u200b\\ufeff\\U000e0041"
    assert clean("line 1\nline 2\tx") == "line 1\nline 2\tx"
    assert clean("line 1\nline 2\tx", newlines=False) == "line 1\\nline 2\\tx"
    assert clean("caf\u00e9 \u65e5\u672c \U0001f600") == "caf\u00e9 \u65e5\u672c \U0001f600"  # ordinary text untouched


def test_clean_json_keeps_json_valid() -> None:
    value = {"k\u202e": ["\x7f\x9b\u2028", "\U000e0041", "ok \u00e9"]}
    text = clean_json(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert all(ch not in text for ch in ("\x7f", "\x9b", "\u2028", "\u202e", "\U000e0041"))
    assert "\u00e9" in text
