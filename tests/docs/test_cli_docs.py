"""docs/cli.md is generated from the commands' --help and must be up to date."""

from __future__ import annotations

from pathlib import Path

from delite_cli._docgen import main, render
from delite_cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cli.md"


def test_cli_reference_is_up_to_date() -> None:
    assert PAGE.read_text() == render(), "docs/cli.md is out of date: run python -m delite_cli._docgen"


def test_every_command_is_documented_in_order() -> None:
    text = PAGE.read_text()
    positions = [text.index(f"\n## delite {name}\n") for name in cli.commands]
    assert positions == sorted(positions)
    assert list(cli.commands)[:6] == ["status", "inspect", "steps", "events", "export", "health"]


def test_check_mode_reports_a_stale_page(tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n")
    assert main(["--check", "--output", str(stale)]) == 1
    assert main(["--output", str(stale)]) == 0
    assert main(["--check", "--output", str(stale)]) == 0
