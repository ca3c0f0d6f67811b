"""Deleting executions from a data directory, crash-safe: the log is renamed to a tombstone in one step.

Deleting one execution, under its claim lock (a live owner's lock refuses it unless forced):

1. check it may be deleted (:func:`~delite.store._erase.check_deletable`), reading its log;
2. remove its snapshot and its fold checkpoint (derived: a crash here leaves the whole execution, which reads
   as before);
3. rename ``executions/<id>.log`` to ``executions/<id>.deleting``, the tombstone: one atomic step after
   which the execution is gone for every reader (listings, reads and ``health`` only know ``*.log``);
4. after the directory is synced, remove what was kept for it: the listing index's row, the idempotency key
   files bound to it, its cancel marker, a fold checkpoint written since step 2 (by a live owner of a forced
   deletion), the tombstone itself and the claim lock file.

A crash after step 3 leaves a tombstone and some of step 4's files: nothing that reads as an execution. The
next deletion in the data directory (and ``health --repair``) finishes every tombstone it finds; ``health``
lists them as derived leftovers. If the id was used again in the meantime (a new log under it), finishing its
tombstone removes only the tombstone: the keys and the marker then belong to the new execution.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import TYPE_CHECKING, Self

import msgspec

from delite.errors import ExecutionNotFoundError, StoreError
from delite.log._durability import Durability
from delite.log._os import fsync_dir, read_regular
from delite.store._checkpoint import leftovers as checkpoint_leftovers
from delite.store._derive import summary_of_log
from delite.store._erase import Deleted, check_deletable
from delite.store._ids import is_execution_id
from delite.store._logfile import drop_stray_links, remove

if TYPE_CHECKING:
    from delite.store._claimlock import ClaimLock
    from delite.store._file import FileStore
    from delite.store._layout import Layout

__all__ = ["TOMBSTONE", "Eraser", "finish_tombstones", "tombstones"]

TOMBSTONE = ".deleting"
"""The suffix of a log renamed for deletion (``executions/<id>.deleting``)."""

_BATCH = 256  # executions staged (their claim locks held) before the batch is finished
_binding = msgspec.json.Decoder(dict[str, str])


def tombstones(layout: Layout) -> list[str]:
    """The ids whose deletion a crash left unfinished (a tombstone in ``executions/``), sorted."""
    try:
        names = os.listdir(layout.executions)
    except OSError:
        return []
    return sorted(
        n[: -len(TOMBSTONE)] for n in names if n.endswith(TOMBSTONE) and is_execution_id(n[: -len(TOMBSTONE)])
    )


def key_files(layout: Layout) -> dict[str, list[tuple[str, int]]]:
    """The idempotency key files of the data directory by the execution they bind: ``(path, size)`` each.

    A file that cannot be read or decoded is left out (``health`` reports damaged entries).
    """
    out: dict[str, list[tuple[str, int]]] = {}
    try:
        entries = os.scandir(layout.keys)
    except OSError:
        return out
    with entries:
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            try:
                data, st = read_regular(entry.path)
                bound = _binding.decode(data)["execution_id"]
            except (OSError, msgspec.DecodeError, KeyError):
                continue
            out.setdefault(bound, []).append((entry.path, st.st_size))
    return out


def _size(path: str) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _finish(layout: Layout, eid: str, keys: dict[str, list[tuple[str, int]]]) -> None:
    """Remove what was kept for a deleted execution, then its tombstone (see the module's step 4)."""
    if not os.path.lexists(layout.log(eid)):  # the id was not used again since: these are the deleted one's
        for path, _bytes in keys.pop(eid, []):
            remove(path, "remove an idempotency key of a deleted execution")
        marker = layout.cancel_signal(eid)
        if stat.S_ISREG(_mode(marker)):
            remove(marker, "remove the cancel request of a deleted execution")
        remove(layout.checkpoint(eid), "remove the fold checkpoint of a deleted execution")
    remove(os.path.join(layout.executions, eid + TOMBSTONE), "remove a deleted execution's log")


def _mode(path: str) -> int:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return 0


def _forget(layout: Layout, ids: list[str]) -> None:
    """Drop the listing index's rows of deleted executions, overwriting their content (``secure_delete``).

    The index is derived: when it cannot be opened here, the next listing drops the rows (their logs are gone).
    """
    if not ids or not os.path.exists(layout.index):
        return
    import sqlite3  # noqa: PLC0415 - with the index

    from delite.store._index import ListingIndex  # noqa: PLC0415

    try:
        index = ListingIndex.open(layout)
    except (sqlite3.DatabaseError, StoreError, msgspec.DecodeError):
        return
    try:
        index.forget(ids)
    except sqlite3.DatabaseError:
        pass  # the next listing drops them
    finally:
        index.close()


def finish_tombstones(layout: Layout) -> list[str]:
    """Finish every deletion a crash left half done (see the module); the ids finished."""
    ids = tombstones(layout)
    if ids:
        keys = key_files(layout)
        _forget(layout, ids)
        for eid in ids:
            _finish(layout, eid, keys)
            _drop_lock_file(layout, eid)
    return ids


def _drop_lock_file(layout: Layout, eid: str) -> None:
    """Remove the claim lock file of an id with no log, taking the lock first (left when another holds it)."""
    from delite.store._claimlock import claim_lock, try_take  # noqa: PLC0415 - only when a crash left it half done

    path = layout.claim(eid)
    if not os.path.exists(path) or os.path.lexists(layout.log(eid)):
        return
    lock = claim_lock(path)
    try:
        if not try_take(lock):
            return
    except OSError:
        return
    try:
        if not os.path.lexists(layout.log(eid)):
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        lock.release()


class Eraser:
    """Deletes executions of one file store in batches: stage each (steps 1 to 3), then finish the batch."""

    def __init__(self, store: FileStore, *, force: bool) -> None:
        """Work on ``store``; ``force`` deletes unfinished executions and those a live process holds."""
        self.store = store
        self.layout = store.layout
        self.force = force
        self._keys: dict[str, list[tuple[str, int]]] | None = None
        self._unfinished_checkpoints: dict[str, list[str]] | None = None
        self._staged: list[tuple[str, ClaimLock | None]] = []

    def __enter__(self) -> Self:
        """Finish what an earlier deletion left half done first."""
        finish_tombstones(self.layout)
        return self

    def __exit__(self, *exc: object) -> None:
        """Finish the staged executions (they are deleted already: only their leftovers remain)."""
        self.finish()

    def keys(self) -> dict[str, list[tuple[str, int]]]:
        """The key files by execution, read once per eraser."""
        if self._keys is None:
            self._keys = key_files(self.layout)
        return self._keys

    def delete(self, eid: str) -> Deleted:
        """Stage one execution (deleted for every reader once this returns), finishing the batch when full.

        Raises:
            ExecutionNotFoundError: no log under this id.
            ExecutionNotFinishedError, ExecutionAlreadyClaimedError: refused (nothing was removed).
            StoreError: the file system failed (before the rename: nothing was removed).
        """
        deleted = self._stage(eid)
        if len(self._staged) >= _BATCH:
            self.finish()
        return deleted

    def _stage(self, eid: str) -> Deleted:
        layout = self.layout
        path = layout.log(eid)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            raise ExecutionNotFoundError(eid, os.path.abspath(layout.root)) from None
        except OSError as e:
            raise StoreError.from_os_error("look at the log", path, e) from e
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise StoreError(f"execution {eid!r}: the entry under its name is not a log file; remove it by hand", path)
        from delite.store._claimlock import try_take  # noqa: PLC0415 - the read side (health) imports this module

        claim = self.store._lock(eid)  # noqa: SLF001 - the store's own claim lock
        try:
            # None: a live process holds it: refused below unless forced
            lock: ClaimLock | None = claim if try_take(claim) else None
        except OSError as e:
            raise StoreError.from_os_error(f"claim execution {eid!r} to delete it", layout.claim(eid), e) from e
        try:
            status = self._status(eid, path, st)
            check_deletable(eid, status, claimed=lock is None, force=self.force)
            snapshot = layout.snapshot(eid)
            checkpoint = layout.checkpoint(eid)
            keys = sum(size for _p, size in self.keys().get(eid, []))
            freed = st.st_size + _size(snapshot) + _size(checkpoint) + keys
            remove(snapshot, "remove the snapshot of an execution being deleted")
            remove(checkpoint, "remove the fold checkpoint of an execution being deleted")
            if self._unfinished_checkpoints is None:
                self._unfinished_checkpoints = checkpoint_leftovers(layout.checkpoints)
            for tmp in self._unfinished_checkpoints.pop(eid, []):  # a writer killed mid-way
                freed += _size(tmp)
                remove(tmp, "remove the fold checkpoint of an execution being deleted")
            if st.st_nlink > 1:
                drop_stray_links(path)  # a killed creator's temporary name: it would keep the records on disk
            try:
                os.rename(path, os.path.join(layout.executions, eid + TOMBSTONE))
            except OSError as e:
                raise StoreError.from_os_error(f"delete execution {eid!r}", path, e) from e
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        self._staged.append((eid, lock))
        return Deleted(id=eid, status=status, bytes=freed)

    def _status(self, eid: str, path: str, st: os.stat_result) -> str:
        """The execution's status read from its log (``unreadable`` when it cannot be read as its log)."""
        if not stat.S_ISREG(st.st_mode):
            return "unreadable"
        try:
            data, _st = read_regular(path)
        except OSError:
            return "unreadable"
        return summary_of_log(eid, data, path=path).status

    def finish(self) -> None:
        """Sync the renames, then remove the staged executions' leftovers and release their locks."""
        staged, self._staged = self._staged, []
        if not staged:
            return
        try:
            if self.store.durability is not Durability.OFF:
                try:
                    fsync_dir(self.layout.executions)
                except OSError as e:
                    raise StoreError.from_os_error("sync the deletions of", self.layout.executions, e) from e
            _forget(self.layout, [eid for eid, _lock in staged])
            keys = self.keys()
            for eid, _lock in staged:
                _finish(self.layout, eid, keys)
        finally:
            for eid, lock in staged:
                if lock is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(self.layout.claim(eid))  # under the lock: the id has no log any more
                    lock.release()
