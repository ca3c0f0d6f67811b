"""Generate ``docs/cli.md`` from the commands' ``--help``.

Run ``python -m delite_cli._docgen`` to rewrite the page, or ``python -m delite_cli._docgen --check`` to fail
when it is out of date (``tests/docs/test_cli_docs.py`` does the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

from delite_cli.main import cli

__all__ = ["render"]

WIDTH = 100

INTRO = """\
# The `delite` command

<!-- Generated from the commands' --help by `python -m delite_cli._docgen`; do not edit by hand. -->

`delite` reads, verifies and operates a data directory from the terminal. It is a thin layer over the
public Python API: the read commands call `delite.DataDir`, the operating commands call `delite.Agent`.

- **Data directory.** Every command takes `--data-dir` (or `DELITE_DATA_DIR`; default `./data`): a data
  directory's path, or a `postgresql://` URL for a PostgreSQL store (the `postgres` extra; see
  [scale-out.md](scale-out.md)), shown with its password hidden. Every command reads and acts through the
  store interfaces, so a program that embeds the CLI may hand it any `delite.store.Store` instead, as
  click's `obj` (`cli.main(args, obj=store)`); `health` then verifies records and the listing, and the
  byte-level checks are the data directory's. `copy` moves executions between any two stores.
- **IDs.** An execution may be named by any unique prefix or suffix of its id (case-insensitive if nothing
  matches exactly), resolved once, before the command runs. Generated ids begin with their creation time,
  so ids made the same second share their first characters; their last characters are random, so a few of
  those are the shortest unique name. An ambiguous id is a usage error that lists a few matches; an id not
  found names the data directory searched.
- **Output.** Every command takes `--json` (one JSON document on stdout; `events`, `export` and `tail` can
  also write NDJSON). Errors go to stderr as one line, `error: ...` (with `--json`, one JSON object
  `{"error": {"type", "message"}}`).
- **Exit codes.** 0 success; 1 failure (not found, wrong state, damaged log, or problems found by `health`);
  2 usage error (bad option, bad JSON, ambiguous id, unknown call id). The error's class decides (the
  `type` in `--json` errors): every `ExecutionStateError`, the 409 "the state changed under you" family
  (ended, not suspended, waiting for something else, already decided or answered, busy in another
  process), exits 1, so a command that lost a race to another process or to the API is a failure, never
  a usage error. See [errors](reference/errors.md).
- **Untrusted content.** Model output, tool results and arguments are printed escaped: control characters,
  terminal escape sequences and bidirectional overrides are shown as `\\x1b`, `\\u202e`, and rich markup in
  content is printed as text. JSON output escapes the same characters as `\\uXXXX`.
- **Listing is fast.** `status` keeps a derived index, `index.sqlite3`, in the data directory. Each listing
  stats every log and re-reads only those whose size or modification time changed; the index is never
  trusted over the logs, and deleting it loses nothing. `health --repair` rebuilds it.
- **Operating without your code.** The command has no model and no tools, so `approve`, `reject`,
  `submit-input`, `submit-tool-results` and `resolve` only *record* the decision or submission; the run goes
  on when your application resumes it (`agent.resume(id)`). Give `--agent MODULE:FACTORY` (or set
  `DELITE_AGENT`) to let the command build your agent and continue the run itself: `FACTORY` is an `Agent`
  or a function that takes the data directory (a string) and returns one, imported from the current
  directory like `python -m`. `resume` always needs it.
- **Export.** `export` writes the documented JSON schema (see [export-format.md](export-format.md)), NDJSON,
  or a self-contained HTML page with the timeline (no scripts, no external resources).
"""


def _help(command: click.Command, name: str, parent: click.Context | None) -> str:
    ctx = click.Context(
        command,
        info_name=name,
        parent=parent,
        terminal_width=WIDTH,
        max_content_width=WIDTH,
        help_option_names=["-h", "--help"],
    )
    return command.get_help(ctx)


def render() -> str:
    """The whole page."""
    root = click.Context(
        cli, info_name="delite", terminal_width=WIDTH, max_content_width=WIDTH, help_option_names=["-h", "--help"]
    )
    parts = [INTRO, "## delite\n", "```text", _help(cli, "delite", None), "```\n"]
    for name in cli.list_commands(root):
        command = cli.commands[name]
        parts.extend([f"## delite {name}\n", "```text", _help(command, name, root), "```\n"])
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check``, verify) the page; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m delite_cli._docgen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the page is out of date")
    parser.add_argument("--output", default="docs/cli.md", help="the page (default: docs/cli.md)")
    args = parser.parse_args(argv)
    path = Path(args.output)
    text = render()
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is out of date: run python -m delite_cli._docgen", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
