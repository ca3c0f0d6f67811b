"""The ``delite`` command. Subcommands import what they need when they run, so startup stays fast.

Each command is a thin wrapper: it parses options and calls a renderer in ``_read`` or ``_operate``, which
call delite's public API (``delite.DataDir`` to read, ``delite.Agent`` to act).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from delite import __version__
from delite_cli._errors import handle_errors
from delite_cli._target import STATUSES, Target, with_target

F = TypeVar("F", bound=Callable[..., Any])


class OrderedGroup(click.Group):
    """A group that lists commands in the order they were added."""

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: ARG002
        """Commands in definition order."""
        return list(self.commands)


def data_dir_option(fn: F) -> F:
    """``--data-dir``, also from ``DELITE_DATA_DIR``."""
    return click.option(
        "--data-dir",
        metavar="PATH|URL",
        envvar="DELITE_DATA_DIR",
        show_envvar=True,
        default="./data",
        show_default=True,
        help="The data directory, or a postgresql:// URL (the postgres extra; its password is never shown).",
    )(fn)


def key_file_option(fn: F) -> F:
    """``--key-file``: the encryption keys (else ``DELITE_ENCRYPTION_KEYS`` or ``DELITE_ENCRYPTION_KEY_FILE``)."""
    return click.option(
        "--key-file",
        metavar="FILE",
        help="Encryption keys, one id:base64key per line, the newest last (else DELITE_ENCRYPTION_KEYS or "
        "DELITE_ENCRYPTION_KEY_FILE); records are read through them. Keep it away from the data.",
    )(fn)


def json_option(fn: F) -> F:
    """``--json``: machine-readable output."""
    return click.option("--json", "json_", is_flag=True, help="Print JSON instead of the human view.")(fn)


def on_store(fn: F) -> F:
    """What every command on a store has: ``--data-dir``, ``--json``, errors as exit codes, the store and id resolved.

    Put it last (nearest the function): the command's own options come before ``--data-dir`` in its help.
    """
    return data_dir_option(key_file_option(json_option(handle_errors(with_target(fn)))))


def agent_option(fn: F) -> F:
    """``--agent MODULE:FACTORY``, also from ``DELITE_AGENT``."""
    return click.option(
        "--agent",
        "agent_spec",
        metavar="MODULE:FACTORY",
        envvar="DELITE_AGENT",
        show_envvar=True,
        help="Your Agent, or a function taking the data directory and returning one. With it the command "
        "continues the run; without it the command only records (resume later).",
    )(fn)


ID = click.argument("ident", metavar="ID")


@click.group(cls=OrderedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="delite")
def cli() -> None:
    """delite: durable, crash-recoverable agent executions on local files or PostgreSQL.

    Read and verify a data directory or a database (status, inspect, steps, events, export, health, tail),
    answer suspended executions (approve, reject, submit-input, submit-tool-results, resolve), resume, cancel
    or fork them, run workers that take on what your agents enqueue (worker), move executions between stores
    (copy, migrate), or serve all of it in a browser and over HTTP (serve). IDs may be given by any unique
    prefix or suffix. Every command but serve takes --json. Exit codes: 0 success, 1 failure (or problems
    found by health), 2 usage error.
    """


# -- reading ------------------------------------------------------------------------------------------------------


@cli.command()
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES), help="Only this status (repeatable).")
@click.option("--agent", help="Only executions of this agent id.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Only executions with this metadata (repeatable).")
@click.option("--since", metavar="WHEN", help="Created at or after WHEN: 30m, 2h, 7d ago, or an ISO date (UTC).")
@click.option("--until", metavar="WHEN", help="Created before WHEN.")
@click.option("--parent", metavar="ID", help="Only the sub-agents' executions that this execution started.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="At most this many.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip this many first (paging).")
@on_store
def status(
    *,
    target: Target,
    statuses: tuple[str, ...],
    agent: str | None,
    meta: tuple[str, ...],
    since: str | None,
    until: str | None,
    parent: str | None,
    limit: int,
    offset: int,
    json_: bool,
) -> None:
    """List executions, newest first: id, agent, status, steps, tokens, cost, age."""
    from delite_cli._read import run_status

    run_status(
        target,
        statuses=statuses,
        agent=agent,
        meta=meta,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
        json_=json_,
        parent=parent,
    )


@cli.command()
@ID
@on_store
def inspect(*, execution_id: str, target: Target, json_: bool) -> None:
    """Show one execution in depth: configuration, suspension, totals, last error."""
    from delite_cli._read import run_inspect

    run_inspect(target, execution_id, json_=json_)


@cli.command()
@ID
@on_store
def steps(*, execution_id: str, target: Target, json_: bool) -> None:
    """Show the timeline: one row per step with durations, tool calls, tokens and cost."""
    from delite_cli._read import run_steps

    run_steps(target, execution_id, json_=json_)


@cli.command()
@ID
@click.option("--kind", "kinds", multiple=True, help="Only records of this kind, e.g. tool-finished (repeatable).")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only records after this sequence number.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many records.")
@click.option("--full", is_flag=True, help="Do not cut long records.")
@click.option("--nl", is_flag=True, help="Print NDJSON: one JSON record per line.")
@on_store
def events(
    *,
    execution_id: str,
    target: Target,
    kinds: tuple[str, ...],
    after: int,
    limit: int | None,
    full: bool,
    nl: bool,
    json_: bool,
) -> None:
    """Print the raw log records, decoded, in order."""
    from delite_cli._read import run_events

    run_events(target, execution_id, kinds=kinds, after=after, limit=limit, full=full, json_=json_, nl=nl)


@cli.command()
@ID
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "ndjson", "html", "otlp-json"]),
    default="json",
    show_default=True,
    help="JSON (schema delite-export/1), NDJSON (one typed object per line), a self-contained HTML page, or "
    "otlp-json: OpenTelemetry spans a collector accepts (see docs/observability.md).",
)
@click.option("--nl", is_flag=True, help="Same as --format ndjson.")
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@on_store
def export(*, execution_id: str, target: Target, fmt: str, nl: bool, output: str | None, json_: bool) -> None:
    """Export the whole execution: summary, steps, LLM calls, tool calls, pauses and records.

    The JSON schema is documented in docs/export-format.md. --json is the same as --format json.
    """
    from delite_cli._read import run_export

    if nl and json_:
        raise click.UsageError("give --nl or --json, not both")
    run_export(target, execution_id, fmt="ndjson" if nl else "json" if json_ else fmt, output=output)


@cli.command()
@click.option(
    "--repair",
    is_flag=True,
    help="Rebuild what is derived: the listing index, and drop stale snapshots and fold checkpoints. Logs are "
    "never modified.",
)
@on_store
def health(*, target: Target, repair: bool, json_: bool) -> None:
    """Verify every checksum of every log; report torn tails, damage, bad entries, loose permissions, drift.

    Exit 0 when healthy; 1 when the data directory does not exist or has no executions folder (delite never
    wrote there: a wrong --data-dir), when a log is damaged, unreadable, not a regular file, hard-linked,
    owned by another user or has a torn tail, when files or folders are open to other users (delite makes
    them 0600/0700), when a terminal record's tally disagrees with its log, or when a snapshot or an index
    entry disagrees with its unchanged log; 2 on a usage
    error. Other findings about derived files (an index, snapshots or fold checkpoints out of date) are
    reported but do not fail the check: they are never trusted over the logs and are rebuilt from them as
    needed.
    """
    from delite_cli._read import run_health

    click.get_current_context().exit(run_health(target, repair=repair, json_=json_))  # returned when embedded


@cli.command()
@ID
@click.option("-n", "--lines", type=click.IntRange(min=0), default=10, show_default=True, help="Records to show first.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new records until the execution completes.")
@click.option("--poll", type=click.FloatRange(min=0.01), default=0.25, show_default=True, help="Seconds between looks.")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=None, help="With -f, stop after this many idle seconds."
)
@on_store
def tail(
    *, execution_id: str, target: Target, lines: int, follow: bool, poll: float, timeout: float | None, json_: bool
) -> None:
    """Print the last records of an execution; with -f, follow new ones live (--json: one per line)."""
    from delite_cli._read import run_tail

    run_tail(target, execution_id, lines=lines, follow=follow, poll=poll, timeout=timeout, json_=json_)


# -- operating ----------------------------------------------------------------------------------------------------


def _decision_command(name: str, *, approve: bool, every_help: str, reason_help: str, doc: str) -> click.Command:
    """``approve`` and ``reject``: the same command but for the decision it records."""

    @cli.command(name, help=doc)
    @ID
    @click.argument("call_ids", nargs=-1, metavar="[CALL_ID]...")
    @click.option("--all", "every", is_flag=True, help=every_help)
    @click.option("--reason", help=reason_help)
    @agent_option
    @on_store
    def command(
        *,
        execution_id: str,
        call_ids: tuple[str, ...],
        target: Target,
        every: bool,
        reason: str | None,
        agent_spec: str | None,
        json_: bool,
    ) -> None:
        from delite_cli._operate import run_decide

        run_decide(
            target,
            execution_id,
            call_ids,
            approve=approve,
            every=every,
            reason=reason,
            agent_spec=agent_spec,
            json_=json_,
        )

    return command


approve = _decision_command(
    "approve",
    approve=True,
    every_help="Approve every pending call.",
    reason_help="Why (recorded with the decision).",
    doc="Approve pending calls (or override a contract). With one pending call, CALL_ID may be left out.",
)
reject = _decision_command(
    "reject",
    approve=False,
    every_help="Reject every pending call.",
    reason_help="Why (recorded, and shown to the model).",
    doc="Reject pending calls: they never run and the model is told why.",
)


@cli.command("submit-input")
@ID
@click.argument("text")
@agent_option
@on_store
def submit_input(*, execution_id: str, text: str, target: Target, agent_spec: str | None, json_: bool) -> None:
    """Answer the question an execution waits on (TEXT, or - to read it from stdin)."""
    from delite_cli._operate import run_submit_input

    run_submit_input(target, execution_id, text, agent_spec=agent_spec, json_=json_)


@cli.command("submit-tool-results")
@ID
@click.argument("source", metavar="[FILE]", default="-")
@agent_option
@on_store
def submit_tool_results(*, execution_id: str, source: str, target: Target, agent_spec: str | None, json_: bool) -> None:
    """Give the results of pending client tool calls: a JSON object {"CALL_ID": result} from FILE or stdin."""
    from delite_cli._operate import run_submit_tool_results

    run_submit_tool_results(target, execution_id, source, agent_spec=agent_spec, json_=json_)


@cli.command()
@ID
@click.argument("call_id")
@click.option("--result", metavar="JSON", help="The call's result, as JSON (it did act).")
@click.option("--result-file", metavar="FILE", help="The call's result, as JSON read from FILE (- for stdin).")
@click.option("--error", metavar="TEXT", help="Record the call as failed with this error (it did not act).")
@click.option("--rerun", is_flag=True, help="Run the call again (with the same idempotency key).")
@agent_option
@on_store
def resolve(
    *,
    execution_id: str,
    call_id: str,
    target: Target,
    result: str | None,
    result_file: str | None,
    error: str | None,
    rerun: bool,
    agent_spec: str | None,
    json_: bool,
) -> None:
    """Settle an in-doubt tool call: the process died inside it, so say what happened."""
    from delite_cli._operate import run_resolve

    run_resolve(
        target,
        execution_id,
        call_id,
        result=result,
        result_file=result_file,
        error=error,
        rerun=rerun,
        agent_spec=agent_spec,
        json_=json_,
    )


@cli.command()
@ID
@agent_option
@click.option("--model", help="Use this model for the remaining calls.")
@on_store
def resume(*, execution_id: str, target: Target, agent_spec: str | None, model: str | None, json_: bool) -> None:
    """Continue an execution with your agent (--agent is required: the model and tools live in your code)."""
    from delite_cli._operate import run_resume

    run_resume(target, execution_id, agent_spec=agent_spec, model=model, json_=json_)


@cli.command()
@ID
@click.option("--reason", default="cancelled by operator", show_default=True, help="Recorded with the cancellation.")
@on_store
def cancel(*, execution_id: str, target: Target, reason: str, json_: bool) -> None:
    """Cancel an execution; one that another process is advancing stops at its next step boundary."""
    from delite_cli._operate import run_cancel

    run_cancel(target, execution_id, reason=reason, json_=json_)


@cli.command()
@ID
@click.option("--at", "at", type=click.IntRange(min=0), required=True, help="Keep steps 1 to STEP (0: only the input).")
@click.option("--id", "new_id", help="The new execution's id (default: a new generated id).")
@on_store
def fork(*, execution_id: str, target: Target, at: int, new_id: str | None, json_: bool) -> None:
    """Start a new execution from the first STEP steps of another, linked to it (forked_from)."""
    from delite_cli._operate import run_fork

    run_fork(target, execution_id, at=at, new_id=new_id, json_=json_)


@cli.command()
@click.argument("idents", nargs=-1, metavar="[ID]...")
@click.option("--all", "every", is_flag=True, help="Every execution of the store.")
@on_store
def rekey(*, idents: tuple[str, ...], every: bool, target: Target, json_: bool) -> None:
    """Seal the named executions (or --all) again under the newest key; plain-text ones get sealed.

    Needs the keys (--key-file, DELITE_ENCRYPTION_KEYS or DELITE_ENCRYPTION_KEY_FILE): the old ones to open
    the records, the newest last to seal them. Each execution is rewritten whole or not at all (a new log
    renamed over the old; one transaction on PostgreSQL), so a crash leaves the old records or the new ones.
    An execution a process is advancing is refused (exit 1); run it again once it is released. Then the
    old key can be dropped.
    """
    from delite_cli._stores import run_rekey

    run_rekey(target, idents, every=every, json_=json_)


# -- retention ----------------------------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--older-than",
    required=True,
    metavar="DURATION",
    help="Delete executions whose last record is older than this: 30d, 12h, 90m, 1w (units s, m, h, d, w).",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS[,STATUS]",
    help="Only these statuses (default: completed,failed,cancelled; others need --force).",
)
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@click.option("--force", is_flag=True, help="Also delete unfinished executions, and those a live process holds.")
@on_store
def gc(*, target: Target, older_than: str, statuses: tuple[str, ...], dry_run: bool, force: bool, json_: bool) -> None:
    """Delete old finished executions with their derived files, index entries, keys and cancel requests.

    Each execution is removed whole or not at all: a crash in the middle leaves none half-deleted. Running
    and suspended executions are never deleted without --force; one a live process holds is left and listed.
    Forks of a deleted execution are copies and stay (they are listed), as do backups and `delite copy`
    copies. Exit 0 when done (even if some were left), 2 for a bad duration or status.
    """
    from delite_cli._retention import run_gc

    run_gc(target, older_than=older_than, statuses=statuses, dry_run=dry_run, force=force, json_=json_)


@cli.command()
@ID
@click.option("--children", is_flag=True, help="Also delete its sub-agents' executions (and theirs).")
@click.option("--force", is_flag=True, help="Delete even if it is running or suspended, or a live process holds it.")
@on_store
def delete(*, execution_id: str, target: Target, children: bool, force: bool, json_: bool) -> None:
    """Erase one execution: its log, derived files, index entry, idempotency keys and cancel request.

    Every execution concerned is checked before anything is removed: a running or suspended one (or one a
    live process holds) is refused without --force (exit 1, nothing removed). Forks are copies and stay
    (they are listed), as do backups and `delite copy` copies.
    """
    from delite_cli._retention import run_delete

    run_delete(target, execution_id, children=children, force=force, json_=json_)


# -- across stores ------------------------------------------------------------------------------------------------


@cli.command()
@click.option("--apply", "apply_", is_flag=True, help="Apply the pending migrations (in order, one at a time).")
@data_dir_option
@json_option
@handle_errors
def migrate(*, data_dir: str, apply_: bool, json_: bool) -> None:
    """Show a PostgreSQL store's schema migrations (number, name, applied); --apply applies the pending ones.

    A store's schema is created and migrated on first use anyway; this shows where a database stands, and
    migrates it ahead of a deploy. Migrations are serialised: several processes migrating at once apply each
    step once. On a data directory there is nothing to migrate (it says so and exits 0).
    """
    from delite_cli._stores import run_migrate

    run_migrate(data_dir, click.get_current_context().obj, apply=apply_, json_=json_)


@cli.command()
@click.argument("source", metavar="SRC")
@click.argument("destination", metavar="DST")
@click.argument("idents", nargs=-1, metavar="[ID]...")
@json_option
@handle_errors
def copy(*, source: str, destination: str, idents: tuple[str, ...], json_: bool) -> None:
    """Copy executions from SRC to DST (each a data directory or a postgresql:// URL): the named ones, or all.

    Records move as their stored bytes, so payloads and checksums are identical in both stores; each copy is
    read back and compared with the source before it counts. A named execution takes its sub-agents'
    executions along. An execution is created whole or not at all, one already in DST with the same records
    is "already present", and one in DST with other records is never overwritten (it fails), so a copy that
    was interrupted is finished by running it again. Idempotency keys and pending cancel requests go along.
    An execution a live process is advancing is not copied (stop or drain its workers first). Exit 0 when
    every execution is copied or present; else the code of the first failure's error (1, or 2 for usage).
    """
    from delite_cli._stores import run_copy

    run_copy(source, destination, idents, json_=json_)


@cli.command()
@click.option(
    "--agent",
    "agent_specs",
    multiple=True,
    required=True,
    metavar="MODULE:FACTORY",
    envvar="DELITE_AGENT",
    show_envvar=True,
    help="An agent to serve: your Agent, or a function taking the data directory and returning one "
    "(repeatable; each needs its own agent_id).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=10_000),
    default=4,
    show_default=True,
    help="How many executions advance at once in this process.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.01, max=3600),
    default=1.0,
    show_default=True,
    help="Seconds between looks for work when nothing wakes the worker earlier.",
)
@on_store
def worker(*, target: Target, agent_specs: tuple[str, ...], concurrency: int, poll: float, json_: bool) -> None:
    """Keep taking on the runnable executions of your agents, until SIGTERM or Ctrl-C.

    Runnable: new ones (agent.enqueue), ones whose owner died, and suspended ones whose every pending call
    has its answer (recorded by any process: `delite approve` without --agent, say). Never a fork nobody
    resumed, a suspension still waiting, or a sub-agent's execution (its parent continues it). Many workers
    (processes sharing the data directory) may serve the same agents: each execution is claimed by one.
    Prints a line per execution taken and per outcome (--json: one JSON object per line, then a last
    "stopped" line with the counts). SIGTERM or SIGINT drains: nothing new is taken, each run finishes the
    model or tool call in flight, records it, stops at that step boundary and lets go of its execution;
    a second signal exits at once. Exit codes: 0 drained, nothing left running; 3 drained, some executions
    stopped at a step boundary and left running for other workers; 4 a second signal ended the drain;
    1 failure; 2 usage error.
    """
    from delite_cli._worker import run_worker

    click.get_current_context().exit(run_worker(target, agent_specs, concurrency=concurrency, poll=poll, json_=json_))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen here (loopback: this machine only).")
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True, help="Port (0: any free one).")
@agent_option
@data_dir_option
@handle_errors
@with_target
def serve(*, target: Target, host: str, port: int, agent_spec: str | None) -> None:
    """Serve a web app and a JSON API (/api) to see every execution and act on it (needs the web extra).

    Every request needs the token printed at start (or DELITE_SERVE_TOKEN): open the printed URL once in a
    browser, or send Authorization: Bearer TOKEN. With --agent the server advances executions after an answer;
    without it answers are recorded and your application resumes them. See docs/how-to/serve.md.
    """
    import os

    try:
        from delite_cli._serve import serve as run_server
    except ImportError as e:
        raise click.UsageError(f'delite serve needs the web extra: pip install "delite-agents[web]" ({e})') from e
    from delite_cli._operate import load_agent

    agent = load_agent(agent_spec, target) if agent_spec else None
    try:
        run_server(target, host=host, port=port, agent=agent, token=os.environ.get("DELITE_SERVE_TOKEN"))
    finally:
        if agent is not None:
            agent.close()


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to keep the demo's data (default: a new temporary directory).",
)
@click.option("--steps", type=click.IntRange(2, 50), default=6, show_default=True, help="Tool steps in the run.")
@click.option(
    "--model",
    metavar="VENDOR:MODEL",
    default="scripted",
    show_default=True,
    help="The model: the offline scripted one, or a real one such as openai:gpt-4o-mini or "
    "anthropic:claude-haiku-4-5 (uses its API key from the environment, and costs a fraction of a cent). "
    "API keys in the environment are never used unless this asks for them.",
)
def demo(data_dir: str | None, steps: int, model: str) -> None:
    """Run a tool-using agent, SIGKILL it mid-run, and resume it by id in a new process.

    Offline by default. It ends by printing the commands that inspect the execution it made. A failure is
    one line on stderr. Exit codes: 0 every order charged exactly once, 1 the demo failed (a model or
    network error, a crashed worker, a check that did not hold), 2 usage error (a bad --model, a missing API
    key or SDK, a data directory that cannot be created), 130 interrupted.
    """
    from delite_cli.demo import run_demo

    click.get_current_context().exit(run_demo(data_dir, steps, model))


def main() -> None:
    """Entry point of the ``delite`` script."""
    cli()
