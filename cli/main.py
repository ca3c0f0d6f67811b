"""The ``delite`` command. Subcommands import what they need when they run, so ``--help`` stays fast."""

from __future__ import annotations

import click

from delite._version import __version__


class OrderedGroup(click.Group):
    """A group that lists commands in the order they were added."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002
        """Commands in definition order."""
        return list(self.commands)


@click.group(cls=OrderedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="delite")
def cli() -> None:
    """delite: durable, crash-recoverable agent executions on local files."""


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to keep the demo's data (default: a new temporary directory).",
)
@click.option("--steps", type=click.IntRange(2, 50), default=6, show_default=True, help="Tool steps in the run.")
def demo(data_dir: str | None, steps: int) -> None:
    """Run a tool-using agent, SIGKILL it mid-run, and resume it by id in a new process."""
    from delite_cli.demo import run_demo

    raise SystemExit(run_demo(data_dir, steps))


def main() -> None:
    """Entry point of the ``delite`` script."""
    cli()
