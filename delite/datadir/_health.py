"""Verify any store through the seam: every execution readable, decoded, folded, named right, and listed.

The file store checks more on its own class (checksums byte by byte, torn tails, foreign files, permissions,
snapshots, the SQLite index: :meth:`delite.store.FileStore.health`); ``DataDir.health`` uses that one when
the store is a file store.
"""

from __future__ import annotations

import time

from delite.errors import (
    ExecutionNotFoundError,
    LogCorruptError,
    LogIdentityError,
    StoreError,
    UnsupportedFormatError,
)
from delite.store._base import Store
from delite.store._derive import check_records
from delite.store._query import Progress
from delite.store._records import FramedRange
from delite.store._views import ExecutionSummary, HealthReport, Problem, many

__all__ = ["check_store_health"]

# What a listing must agree with the logs on (``log_bytes`` and ``torn`` are left out: a store may not know them).
_COMPARED = ("status", "agent_id", "created_at", "updated_at", "steps", "records", "parent_id", "forked_from")


def _check_one(store: Store, eid: str, problems: list[Problem]) -> tuple[int, int, ExecutionSummary | None]:
    """Read and fold one execution; append what is wrong. Returns ``(bytes, records, summary)``."""
    try:
        read = store.read(eid)
    except ExecutionNotFoundError:
        return 0, 0, None  # removed since it was listed
    except LogCorruptError as e:
        offset = e.offset if e.offset >= 0 else None
        problems.append(Problem(kind="corrupt", severity="error", execution_id=eid, offset=offset, detail=e.reason))
        return 0, 0, None
    except UnsupportedFormatError as e:
        problems.append(Problem(kind="unsupported-format", severity="error", execution_id=eid, detail=e.message))
        return 0, 0, None
    except LogIdentityError as e:
        problems.append(Problem(kind="id-mismatch", severity="error", execution_id=eid, detail=str(e)))
        return 0, 0, None
    except StoreError as e:
        problems.append(Problem(kind="unreadable", severity="error", execution_id=eid, detail=f"cannot read: {e}"))
        return 0, 0, None
    records = read.records
    framed = read if isinstance(read, FramedRange) else None
    size = framed.size if framed is not None else 0
    torn = framed is not None and framed.torn is not None
    offsets = framed.offsets if framed is not None else None
    if not records:
        detail = "the execution holds no record: the process stopped while creating it; nothing ran"
        problems.append(Problem(kind="empty", severity="warning", execution_id=eid, detail=detail))
    found, summary = check_records(eid, records, offsets, log_bytes=size, torn=torn)
    problems.extend(found)
    return size, len(records), summary


def _check_listing(store: Store, ids: list[str], expected: dict[str, ExecutionSummary]) -> list[Problem]:
    """Compare the store's listing with the ids it holds and the summaries just derived from the records."""
    listed = {s.id: s for s in store.list_executions(limit=None).items}
    missing = sorted(set(ids) - set(listed))
    orphaned = sorted(set(listed) - set(ids))
    wrong = sorted(
        eid
        for eid, summary in expected.items()
        if eid in listed and any(getattr(listed[eid], f) != getattr(summary, f) for f in _COMPARED)
    )
    problems = []
    for kind, found, what in (
        ("index-missing", missing, "executions the listing leaves out"),
        ("index-orphaned", orphaned, "listed executions that do not exist"),
        ("index-mismatch", wrong, "listed executions that disagree with their records"),
    ):
        if found:
            problems.append(many(kind, "warning", found, what))
    return problems


def check_store_health(store: Store, *, progress: Progress | None = None) -> HealthReport:
    """Verify every execution of ``store`` through the store interfaces; nothing is written."""
    started = time.perf_counter()
    ids = store.list_ids()
    problems: list[Problem] = []
    expected: dict[str, ExecutionSummary] = {}
    total_bytes = 0
    total_records = 0
    for done, eid in enumerate(ids, start=1):
        size, count, summary = _check_one(store, eid, problems)
        total_bytes += size
        total_records += count
        if summary is not None:
            expected[eid] = summary
        if progress is not None and (done % 200 == 0 or done == len(ids)):
            progress(done, len(ids))
    problems.extend(_check_listing(store, ids, expected))
    return HealthReport.of(problems, logs=len(ids), size=total_bytes, records=total_records, started=started)
