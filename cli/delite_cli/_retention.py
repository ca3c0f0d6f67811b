"""``delite gc`` and ``delite delete``: retention and erasure, through ``DataDir.gc`` and ``DataDir.delete``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from delite_cli import _format as f

if TYPE_CHECKING:
    from delite.datadir import RetentionReport
    from delite_cli._target import Target


def _statuses(values: tuple[str, ...]) -> list[str] | None:
    """``--status a,b --status c`` as one list (None: the default, finished executions)."""
    out = [s.strip() for value in values for s in value.split(",") if s.strip()]
    return out or None


def run_gc(
    target: Target, *, older_than: str, statuses: tuple[str, ...], dry_run: bool, force: bool, json_: bool
) -> None:
    """Delete the old finished executions (or, with --dry-run, show which would be deleted)."""
    report = target.data.gc(older_than, statuses=_statuses(statuses), dry_run=dry_run, force=force)
    if json_:
        f.echo_json(report.to_json())
        return
    _show(report, verb="would delete" if dry_run else "deleted")


def run_delete(target: Target, execution_id: str, *, children: bool, force: bool, json_: bool) -> None:
    """Erase one execution (and its sub-agents' executions with --children)."""
    report = target.data.delete(execution_id, children=children, force=force)
    if json_:
        f.echo_json(report.to_json())
        return
    _show(report, verb="deleted")


def _show(report: RetentionReport, *, verb: str) -> None:
    out = f.console()
    for d in report.deleted:
        size = f" {f.size(d.bytes)}" if d.bytes else ""
        out.print(f.text(f"{verb} {d.id} ({d.status}){size}", "dim"))
    freed = f", {f.size(report.bytes)}" if report.bytes else ""
    out.print(f.text(f"{verb} {f.plural(report.executions, 'execution')}{freed}", "green"))
    for r in report.refused:
        out.print(f.text(f"left {r.id} ({r.status}): {r.reason}", "yellow"))
    if report.children:
        left = ", ".join(report.children)
        out.print(f.text(f"sub-agents' executions left in place (delete them with --children): {left}", "yellow"))
    if report.forks:
        out.print(
            f.text(f"forks left in place (copies; delete them too if needed): {', '.join(report.forks)}", "yellow")
        )
