"""Verify a data directory: every checksum of every log, torn tails, records that do not fold.

Also compared with the logs: what is derived from them, the listing index and the snapshots of finished
executions.
"""

from __future__ import annotations

import contextlib
import os
import time

from delite.datadir.derive import fold_checked
from delite.datadir.directory import Progress
from delite.datadir.index import ListingIndex, check_index, scan_logs
from delite.datadir.views import HealthReport, Problem
from delite.errors import LogCorruptError, UnsupportedFormatError
from delite.log.reader import parse_log
from delite.log.records import ExecutionStarted
from delite.store.layout import Layout
from delite.store.snapshot import load as load_snapshot

__all__ = ["check_health"]


def _check_log(eid: str, path: str, problems: list[Problem], snapshot: str, stale: list[str]) -> tuple[int, int]:
    """Verify one log; append what is wrong. Returns ``(bytes, records)``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        problems.append(
            Problem(kind="unreadable", severity="error", execution_id=eid, path=path, detail=f"cannot read: {e}")
        )
        return 0, 0
    if os.path.exists(snapshot) and load_snapshot(snapshot, data) is None:
        stale.append(eid)
    try:
        contents = parse_log(data, path=path)
    except LogCorruptError as e:
        problems.append(
            Problem(kind="corrupt", severity="error", execution_id=eid, path=path, offset=e.offset, detail=e.reason)
        )
        return len(data), 0
    except UnsupportedFormatError as e:
        problems.append(
            Problem(kind="unsupported-format", severity="error", execution_id=eid, path=path, detail=e.message)
        )
        return len(data), 0
    if contents.torn is not None:
        t = contents.torn
        detail = f"{t.reason} ({t.length} bytes); it is cut off when the execution is next claimed"
        problems.append(
            Problem(kind="torn-tail", severity="warning", execution_id=eid, path=path, offset=t.offset, detail=detail)
        )
    records = contents.records
    if not records and contents.torn is None:
        detail = "the log holds no record: the process stopped while creating it; nothing ran"
        problems.append(Problem(kind="empty", severity="warning", execution_id=eid, path=path, detail=detail))
    if records and not isinstance(records[0], ExecutionStarted):
        problems.append(
            Problem(
                kind="inconsistent",
                severity="error",
                execution_id=eid,
                path=path,
                offset=contents.offsets[0],
                detail="the first record is not execution-started",
            )
        )
        return len(data), len(records)
    if records and isinstance(records[0], ExecutionStarted) and records[0].execution_id != eid:
        problems.append(
            Problem(
                kind="id-mismatch",
                severity="error",
                execution_id=eid,
                path=path,
                offset=contents.offsets[0],
                detail=f"the log names execution {records[0].execution_id!r}",
            )
        )
    try:
        fold_checked(records, contents.offsets, path=path)
    except LogCorruptError as e:
        problems.append(
            Problem(
                kind="inconsistent",
                severity="error",
                execution_id=eid,
                path=path,
                offset=e.offset if e.offset >= 0 else None,
                detail=e.reason,
            )
        )
    return len(data), len(records)


def check_health(layout: Layout, *, repair: bool = False, progress: Progress | None = None) -> HealthReport:
    """Verify every log under ``layout`` and compare what is derived with them.

    With ``repair``, rebuild the listing index and delete snapshots that no longer match their log (or whose
    log is gone). Without it nothing is written. Logs are never modified: a torn tail is cut off by the next
    claim of its execution (a resume), which is also when it is safe to do so. A data directory that does
    not exist (or is not a directory) is not healthy: its one problem says so (``missing``,
    ``not-a-directory``), and nothing is created.
    """
    started = time.perf_counter()
    root = os.path.abspath(layout.root)
    if not os.path.isdir(root):
        exists = os.path.exists(root)
        kind, what = ("not-a-directory", "is not a directory") if exists else ("missing", "does not exist")
        problem = Problem(kind=kind, severity="error", path=root, detail=f"the data directory {root} {what}")
        return HealthReport(healthy=False, problems=[problem])
    logs = scan_logs(layout)
    problems: list[Problem] = []
    total_bytes = 0
    total_records = 0
    ids = sorted(logs)
    stale: list[str] = []
    for done, eid in enumerate(ids, start=1):
        size, count = _check_log(eid, layout.log(eid), problems, layout.snapshot(eid), stale)
        total_bytes += size
        total_records += count
        if progress is not None and (done % 200 == 0 or done == len(ids)):
            progress(done, len(ids))
    problems.extend(check_index(layout, logs))
    snapshots = os.path.dirname(layout.snapshot("x"))
    try:
        orphaned = sorted(n[:-5] for n in os.listdir(snapshots) if n.endswith(".snap") and n[:-5] not in logs)
    except FileNotFoundError:
        orphaned = []
    for kind, found, what in (
        ("snapshot-stale", stale, "snapshots that no longer match their log (a miss, rewritten when a run ends)"),
        ("snapshot-orphaned", orphaned, "snapshots whose log is gone"),
    ):
        if found:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            problems.append(Problem(kind=kind, severity="derived", detail=f"{len(found)} {what}: {shown}"))
    repaired = False
    if repair and os.path.isdir(layout.executions):
        for eid in (*stale, *orphaned):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(layout.snapshot(eid))
        index = ListingIndex.open(layout)
        try:
            index.rebuild()
            repaired = not index.in_memory
        finally:
            index.close()
        if repaired:
            problems = [p for p in problems if p.severity != "derived"]
    seconds = time.perf_counter() - started
    healthy = not any(p.severity in ("error", "warning") for p in problems)
    return HealthReport(
        healthy=healthy,
        logs=len(ids),
        bytes=total_bytes,
        records=total_records,
        seconds=round(seconds, 6),
        problems=problems,
        repaired=repaired,
    )
