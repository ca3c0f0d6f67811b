"""The commands across stores: ``migrate`` (a PostgreSQL store's schema) and ``copy`` (executions between stores).

A store is named as for every command: a data directory's path or a ``postgresql://`` URL, shown redacted.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from delite_cli import _format as f
from delite_cli._errors import CliError, exit_code
from delite_cli._target import open_target

if TYPE_CHECKING:
    from delite.store._copy import CopyOutcome, CopyReport
    from delite_cli._target import Target

__all__ = ["run_copy", "run_migrate", "run_rekey"]


def _usage(message: str) -> CliError:
    return CliError(message, kind="UsageError", exit_code=2)


# -- migrate ------------------------------------------------------------------------------------------------------


def run_migrate(data_dir: str | None, obj: object, *, apply: bool, json_: bool) -> None:
    """Show a PostgreSQL store's numbered schema migrations and, with ``apply``, apply the pending ones."""
    from delite.store._open import is_postgres_url, open_store, postgres_module, without_secrets

    target = open_target(data_dir, obj)
    url = target.data_dir if target.data_dir is not None and is_postgres_url(target.data_dir) else None
    if url is None:
        if target.data_dir is not None:
            open_store(target.data_dir).close()  # a URL of another kind: the same error as every command
        message = f"{target.where} has no schema to migrate (only a PostgreSQL store has one): nothing to do"
        if json_:
            f.echo_json({"store": target.where, "migrations": [], "applied": [], "message": message})
        else:
            f.console().print(f.text(message, "dim"))
        return
    module = postgres_module()
    with without_secrets(url):
        applied: list[int] = list(module.migrate(url)) if apply else []
        steps = list(module.migration_status(url))
    rows = [{"number": m.number, "name": m.name, "applied": m.applied} for m in steps]
    if json_:
        f.echo_json({"store": target.where, "migrations": rows, "applied": applied})
        return
    _print_migrations(target, rows, applied, apply=apply)


def _print_migrations(target: Target, rows: list[dict[str, Any]], applied: list[int], *, apply: bool) -> None:
    out = f.console()
    pending = [r for r in rows if not r["applied"] or r["number"] in applied]  # as it stood before this command
    header = f"Schema of {target.where}: {f.plural(len(rows), 'migration')}, {len(pending)} pending."
    out.print(f.text(header, "bold"), soft_wrap=True)
    width = max((len(str(r["number"])) for r in rows), default=1)
    for r in rows:
        state = "applied now" if r["number"] in applied else "applied" if r["applied"] else "pending"
        style = "green" if r["number"] in applied else None if r["applied"] else "yellow"
        out.print(f.text(f"  {r['number']:>{width}}  {r['name']:<40}  {state}", style))
    if apply and not applied:
        out.print(f.text("Nothing to apply: the schema is up to date.", "green"))
    elif applied:
        out.print(f.text(f"Applied {', '.join(map(str, applied))}.", "green"))
    elif pending:
        out.print(f.text("Run again with --apply to apply the pending ones (in order, one at a time).", "dim"))
    else:
        out.print(f.text("Up to date.", "green"))


# -- copy ---------------------------------------------------------------------------------------------------------


def run_copy(source: str, destination: str, idents: tuple[str, ...], *, json_: bool) -> None:
    """Copy executions from one store to another (all of them when no id is given), verified, resumable."""
    from delite.store._copy import Outcome, copy_executions, with_descendants
    from delite.store._open import describe, same_location

    src = open_target(source)
    dst = open_target(destination)
    try:
        if same_location(src.data.store, destination):
            raise _usage(f"SRC and DST are the same store ({src.where}): nothing to copy")
        if src.directory is not None and not os.path.isdir(src.directory):
            what = "is not a directory" if os.path.exists(src.directory) else "does not exist"
            raise CliError(f"{src.where} {what}: nothing to copy (check SRC)", kind="ExecutionNotFoundError")
        ids = [src.resolve(i) for i in idents] if idents else src.data.ids()
        ids = with_descendants(src.data.store, ids) if idents else ids

        def each(done: CopyOutcome) -> None:
            if not json_:
                _print_outcome(done)

        report = copy_executions(src.data.store, dst.data.store, ids, each=each)
    finally:
        src.close()
        dst.close()
    where = {"source": describe(source), "destination": describe(destination)}
    if json_:
        f.echo_json(
            {
                **where,
                "copied": report.ids(Outcome.COPIED),
                "already_present": report.ids(Outcome.PRESENT),
                "failed": [
                    {"execution_id": o.execution_id, "type": type(o.error).__name__, "message": str(o.error)}
                    for o in report.failed
                ],
                "records": report.records,
                "bytes": report.bytes,
                "keys": report.keys,
                "cancels": report.cancels,
            }
        )
    else:
        _print_summary(report, where["source"], where["destination"])
    if report.failed:
        first = report.failed[0]
        assert first.error is not None
        raise CliError(
            f"{len(report.failed)} of {f.plural(len(report.outcomes), 'execution')} not copied; the first, "
            f"{first.execution_id}: {first.error}",
            kind=type(first.error).__name__,
            exit_code=exit_code(first.error),
            as_json=json_,
        )


def _print_outcome(done: CopyOutcome) -> None:
    from delite.store._copy import Outcome

    out = f.console()
    if done.outcome is Outcome.FAILED:
        out.print(f.text(f"failed           {done.execution_id}: {done.error}", "red"))
        return
    extra = []
    if done.key:
        extra.append("idempotency key")
    if done.cancel:
        extra.append("cancel request")
    more = f"; with its {' and '.join(extra)}" if extra else ""
    if done.outcome is Outcome.COPIED:
        line = f"copied           {done.execution_id} ({f.plural(done.records, 'record')}, {f.size(done.bytes)}){more}"
        out.print(f.text(line))
    else:
        out.print(f.text(f"already present  {done.execution_id}{more}", "dim"))


def _print_summary(report: CopyReport, source: str, destination: str) -> None:
    from delite.store._copy import Outcome

    copied, present = len(report.ids(Outcome.COPIED)), len(report.ids(Outcome.PRESENT))
    failed = len(report.failed)
    f.console().print(
        f.text(
            f"From {source} to {destination}: {copied} copied, {present} already present, {failed} failed "
            f"({f.plural(report.records, 'record')}, {f.size(report.bytes)} written; "
            f"{f.plural(report.keys, 'idempotency key')}, {f.plural(report.cancels, 'cancel request')} carried over).",
            "red" if failed else "green",
        ),
        soft_wrap=True,
    )


# -- rekey --------------------------------------------------------------------------------------------------------


def run_rekey(target: Target, idents: tuple[str, ...], *, every: bool, json_: bool) -> None:
    """Seal executions again under the newest key (``delite rekey``); exit 1 if one could not be."""
    from delite.errors import DeliteError
    from delite.store import SealedStore

    if bool(idents) == every:
        raise _usage("name the executions to rekey, or give --all (not both)")
    store = target.data.store
    if not isinstance(store, SealedStore):
        raise _usage(
            "rekey needs the encryption keys: give --key-file, or set DELITE_ENCRYPTION_KEYS or "
            "DELITE_ENCRYPTION_KEY_FILE (the old keys to open, the newest last to seal)"
        )
    ids = store.list_ids() if every else [target.resolve(i) for i in idents]
    rows: list[dict[str, Any]] = []
    failed: DeliteError | None = None
    for eid in ids:
        try:
            n = store.rekey(eid)
        except DeliteError as e:
            failed = failed or e
            rows.append({"id": eid, "resealed": 0, "error": f"{type(e).__name__}: {e}"})
            continue
        rows.append({"id": eid, "resealed": n, "error": None})
    resealed = sum(r["resealed"] for r in rows)
    if json_:
        f.echo_json({"store": target.where, "key": store.keys.current, "executions": rows, "resealed": resealed})
    else:
        out = f.console()
        for r in rows:
            what = r["error"] or (
                f"{f.plural(r['resealed'], 'record')} sealed again" if r["resealed"] else "up to date"
            )
            out.print(f"{r['id']}  {what}", soft_wrap=True)
        key = store.keys.current
        done = f"{f.plural(len(rows), 'execution')}, {f.plural(resealed, 'record')} sealed under key {key!r}."
        out.print(f.text(done, "bold"), soft_wrap=True)
    if failed is not None:
        raise CliError(str(failed), kind=type(failed).__name__, exit_code=exit_code(failed), as_json=json_)
