"""Read a growing log file by byte offset: only the bytes appended since the last look are read and decoded.

The file store's fast way to follow an execution (``FileStore.tail``); a store without files is followed by
ranged reads (:meth:`delite.store.LogStore.read` with ``after``). Nothing here imports filelock.
"""

from __future__ import annotations

import os

from delite.errors import ExecutionNotFoundError, LogCorruptError, StoreError
from delite.log._codec import decode_payloads
from delite.log._framing import HEADER, FrameDamage, scan_frames
from delite.log._os import open_regular
from delite.log._reader import parse_log
from delite.log.records import AnyRecord

__all__ = ["LogTail"]


class LogTail:
    """An open log file and how far it has been read; :meth:`more` returns the complete records added since.

    The file stays open between looks until :meth:`close` (``contextlib.closing`` makes it a block).
    """

    def __init__(self, execution_id: str, path: str, *, data_dir: str | None = None) -> None:
        """Open the log (a regular file, never through a link).

        Raises:
            ExecutionNotFoundError: there is no such log (naming ``data_dir``).
            StoreError: it cannot be opened.
        """
        self.path = path
        try:
            self._file = os.fdopen(open_regular(path), "rb")
        except FileNotFoundError:
            raise ExecutionNotFoundError(execution_id, data_dir) from None
        except OSError as e:
            raise StoreError.from_os_error("read the log", path, e) from e
        self._pos = 0

    def more(self) -> list[tuple[AnyRecord, int]]:
        """The complete records appended since the last call, each with its byte offset (a torn tail waits).

        Raises:
            LogCorruptError: a record is damaged.
            UnsupportedFormatError: the log's header is not one this delite reads.
        """
        self._file.seek(self._pos)
        chunk = self._file.read()
        if self._pos == 0:
            if len(chunk) < len(HEADER):
                return []
            parse_log(chunk[: len(HEADER)], path=self.path)  # checks the header
            self._pos = len(HEADER)
            chunk = chunk[len(HEADER) :]
        if not chunk:
            return []
        scanned = scan_frames(chunk, 0)
        if isinstance(scanned, FrameDamage):
            raise LogCorruptError(self.path, self._pos + scanned.offset, scanned.reason)
        offsets = [self._pos + fr.offset for fr in scanned.frames]
        records = decode_payloads([fr.payload for fr in scanned.frames], offsets, path=self.path)
        self._pos += scanned.end
        return list(zip(records, offsets, strict=True))

    def close(self) -> None:
        """Close the file."""
        self._file.close()
