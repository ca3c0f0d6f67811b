"""Verify a data directory: every checksum of every log, torn tails, records that do not fold.

Also compared with the logs: what is derived from them, the listing index, the snapshots of finished
executions and the fold checkpoints of unfinished ones. And checked: entries that are not usable logs
(links, directories, FIFOs, files that cannot be read or that another user owns), and files or directories
that others may read or write.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time

from delite.errors import LogCorruptError, UnsupportedFormatError
from delite.log._os import open_regular, read_regular
from delite.log._reader import parse_log
from delite.log.records import AnyRecord, ExecutionCancelled, ExecutionCompleted
from delite.state._model import ExecutionState
from delite.state._outcome import outcome, tallied_outcome
from delite.store._checkpoint import SUFFIX as CHECKPOINT
from delite.store._checkpoint import leftovers as checkpoint_leftovers
from delite.store._checkpoint import load as load_checkpoint
from delite.store._derive import checked_state, summary_of_state, summary_of_tally
from delite.store._file_erase import finish_tombstones, tombstones
from delite.store._index import ListingIndex, check_index, scan_logs
from delite.store._layout import Layout
from delite.store._logfile import remove
from delite.store._query import Progress
from delite.store._snapshot import verify as verify_snapshot
from delite.store._tally import verified as verified_tally
from delite.store._views import ExecutionSummary, HealthReport, Problem, many

__all__ = ["check_health", "check_permissions"]

_LOOSE = 0o077  # any access for the group or others
_SHOWN = 5


def _loose(path: str | os.PathLike[str]) -> int | None:
    """The mode of ``path`` if the group or others may use it (a symbolic link is not followed), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(st.st_mode)
    return mode if mode & _LOOSE and not stat.S_ISLNK(st.st_mode) else None


def _not_regular(path: str) -> str:
    try:
        st = os.lstat(path)
    except OSError:
        return ""
    if stat.S_ISREG(st.st_mode):
        return ""
    kinds = {stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO"}
    return kinds.get(stat.S_IFMT(st.st_mode), "not a regular file")


def check_permissions(layout: Layout) -> list[Problem]:
    """A warning for each directory of the data directory, and each folder of files in it, that others may use.

    delite creates directories ``0700`` and files ``0600`` whatever the umask; looser ones come from an
    older delite, another tool or a ``chmod``. Each is named with its mode and the fix. Entries of the
    claims, signals, keys, snapshots and checkpoints folders that are not regular files are named too.
    """
    problems: list[Problem] = []
    folders = (layout.executions, layout.claims, layout.signals, layout.keys, layout.snapshots, layout.checkpoints)
    for d in (layout.root, *folders):
        mode = _loose(d)
        if mode is not None:
            detail = f"directory mode {mode:04o}: others may list or use it; chmod 700 {d}"
            problems.append(Problem(kind="permissions", severity="warning", path=d, detail=detail))
    files: list[tuple[str, int]] = []
    index = layout.index
    for suffix in ("", "-journal", "-wal", "-shm"):
        mode = _loose(index + suffix)
        if mode is not None:
            files.append((index + suffix, mode))
    for d in folders:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            path = os.path.join(d, name)
            if d != layout.executions:
                bad = _not_regular(path)
                if bad:
                    detail = f"{bad} where delite keeps its own files: it is ignored or refused; remove it"
                    problems.append(Problem(kind="bad-entry", severity="warning", path=path, detail=detail))
                    continue
            mode = _loose(path)
            if mode is not None and not os.path.isdir(path):
                files.append((path, mode))
    if files:
        shown = ", ".join(f"{os.path.relpath(p, layout.root)} ({m:04o})" for p, m in files[:_SHOWN])
        more = ", ..." if len(files) > _SHOWN else ""
        detail = (
            f"{len(files)} files readable or writable by others (delite creates them 0600): {shown}{more}; "
            f"chmod -R go-rwx {layout.root}"
        )
        problems.append(Problem(kind="permissions", severity="warning", path=files[0][0], detail=detail))
    return problems


def _check_owner(eid: str, path: str, st: os.stat_result, problems: list[Problem]) -> None:
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        detail = f"owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
        problems.append(Problem(kind="foreign-owner", severity="warning", execution_id=eid, path=path, detail=detail))


def _check_log(
    eid: str,
    path: str,
    problems: list[Problem],
    snapshot: str,
    *,
    checkpoint: str,
    stale_checkpoints: list[str],
    stale: list[str],
    mismatched: list[str],
    expected: dict[str, ExecutionSummary],
) -> tuple[int, int]:
    """Verify one log; append what is wrong. Returns ``(bytes, records)``."""
    try:
        data, st = read_regular(path)
    except OSError as e:
        detail = f"cannot read: {e.strerror or e}"
        problems.append(Problem(kind="unreadable", severity="error", execution_id=eid, path=path, detail=detail))
        with contextlib.suppress(OSError):
            _check_owner(eid, path, os.lstat(path), problems)
        return 0, 0
    if st.st_nlink > 1:
        detail = f"the log has {st.st_nlink} hard links: it is reachable under another name, and is not claimed"
        problems.append(Problem(kind="hard-linked", severity="error", execution_id=eid, path=path, detail=detail))
    _check_owner(eid, path, st, problems)
    if os.path.lexists(snapshot):
        _outcome, why = verify_snapshot(snapshot, data, execution_id=eid)
        if why == "mismatch":
            mismatched.append(eid)
        elif why:
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
    if os.path.lexists(checkpoint) and not _checkpoint_matches(eid, path, checkpoint, contents.records):
        stale_checkpoints.append(eid)
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
    torn = contents.torn is not None
    found, state = checked_state(eid, records, contents.offsets, path=path)
    problems.extend(found)
    if state is not None:
        summary = summary_of_state(eid, records, state, log_bytes=len(data), torn=torn)
        _check_tally(eid, path, data, state=state, summary=summary, problems=problems)
        expected[eid] = summary
    return len(data), len(records)


def _check_tally(
    eid: str, path: str, data: bytes, *, state: ExecutionState, summary: ExecutionSummary, problems: list[Problem]
) -> None:
    """Report a terminal record whose tally matches the log's bytes but not the fold of its records.

    Only a log written by hand gets there (the engine writes the fold's own counts): a claim would answer from
    it, and a listing summarize the log from it. ``state`` and ``summary``: the fold of the log and its summary.
    """
    found = verified_tally(data, eid)
    if found is None:
        return
    at, first, last = found
    listed = summary_of_tally(eid, first, last, log_bytes=len(data))
    if tallied_outcome(first, last) == outcome(state) and listed == summary:
        return
    detail = (
        "the terminal record's tally is bound to the log's bytes but disagrees with the fold of its records "
        "(written by hand?); a finished execution asked for again is answered, and listed, from the tally"
    )
    problems.append(
        Problem(kind="tally-mismatch", severity="error", execution_id=eid, path=path, offset=at, detail=detail)
    )


def _checkpoint_matches(eid: str, path: str, checkpoint: str, records: list[AnyRecord]) -> bool:
    """Whether the fold checkpoint matches the log (a finished log's is stale: it has a snapshot instead)."""
    if records and isinstance(records[-1], ExecutionCompleted | ExecutionCancelled):
        return False
    try:
        fd = open_regular(path)
    except OSError:
        return False
    try:
        return load_checkpoint(checkpoint, fd, eid, log_path=path) is not None
    finally:
        os.close(fd)


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
    stale_checkpoints: list[str] = []
    mismatched: list[str] = []
    expected: dict[str, ExecutionSummary] = {}
    for done, eid in enumerate(ids, start=1):
        size, count = _check_log(
            eid,
            layout.log(eid),
            problems,
            layout.snapshot(eid),
            checkpoint=layout.checkpoint(eid),
            stale_checkpoints=stale_checkpoints,
            stale=stale,
            mismatched=mismatched,
            expected=expected,
        )
        total_bytes += size
        total_records += count
        if progress is not None and (done % 200 == 0 or done == len(ids)):
            progress(done, len(ids))
    problems.extend(check_index(layout, logs, expected=expected))
    problems.extend(check_permissions(layout))
    try:
        orphaned = sorted(n[:-5] for n in os.listdir(layout.snapshots) if n.endswith(".snap") and n[:-5] not in logs)
    except OSError:
        orphaned = []
    try:
        orphaned_checkpoints = sorted(
            n[: -len(CHECKPOINT)]
            for n in os.listdir(layout.checkpoints)
            if n.endswith(CHECKPOINT) and n[: -len(CHECKPOINT)] not in logs
        )
    except OSError:
        orphaned_checkpoints = []
    unfinished_checkpoints = checkpoint_leftovers(layout.checkpoints)
    if mismatched:
        tampered = (
            "snapshots bound to their log's bytes disagree with its records (tampered with?); "
            "ignored, the log is read instead"
        )
        problems.append(many("snapshot-mismatch", "warning", mismatched, tampered))
    unfinished = tombstones(layout)
    if unfinished:
        what = (
            "deletions a crash left half done (those executions are gone); the next deletion or --repair finishes them"
        )
        problems.append(many("deletion-unfinished", "derived", unfinished, what))
    for kind, found, what in (
        ("snapshot-stale", stale, "snapshots that no longer match their log (a miss, rewritten when a run ends)"),
        ("snapshot-orphaned", orphaned, "snapshots whose log is gone"),
        (
            "checkpoint-stale",
            stale_checkpoints,
            "fold checkpoints that do not match their log, or of a finished execution (a miss, never used)",
        ),
        ("checkpoint-orphaned", orphaned_checkpoints, "fold checkpoints whose log is gone"),
        (
            "checkpoint-unfinished",
            sorted(unfinished_checkpoints),
            "fold checkpoints being written, or left half written by a killed process",
        ),
    ):
        if found:
            problems.append(many(kind, "derived", found, what))
    repaired = False
    if repair and os.path.isdir(layout.executions):
        finish_tombstones(layout)
        for eid in (*stale, *mismatched, *orphaned):
            remove(layout.snapshot(eid), "delete a snapshot that does not match its log")
        for eid in (*stale_checkpoints, *orphaned_checkpoints):
            remove(layout.checkpoint(eid), "delete a fold checkpoint that does not match its log")
        for tmps in unfinished_checkpoints.values():
            for tmp in tmps:
                remove(tmp, "delete a half-written fold checkpoint")
        index = ListingIndex.open(layout)
        try:
            index.rebuild()
            repaired = not index.in_memory
        finally:
            index.close()
        if repaired:
            fixed = ("snapshot-mismatch", "index-mismatch", "deletion-unfinished")
            problems = [p for p in problems if p.severity != "derived" and p.kind not in fixed]
    return HealthReport.of(
        problems, logs=len(ids), size=total_bytes, records=total_records, started=started, repaired=repaired
    )
