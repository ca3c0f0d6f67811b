"""Encryption at rest: a store wrapper that seals every record it writes and opens every record it reads.

:class:`SealedStore` wraps any :class:`~delite.store.Store` (files, memory, PostgreSQL, a new backend): the
store underneath only ever sees :class:`~delite.log.records.SealedRecord` records, and folds their shells
(the records with their content taken out, see :mod:`delite.log._shell`) into its listings, snapshots and
health checks. Each record is sealed with AES-256-GCM under the newest key of a :class:`Keyring`; the
associated data binds the execution id, the sequence number and the inner record's kind, so a record moved to
another execution or to another place in its log does not open. With a key configured a record in plain text
is refused (:class:`~delite.errors.PlaintextRecordError`), never silently accepted. See ``docs/security.md``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from delite.errors import (
    EncryptionError,
    MissingExtraError,
    PlaintextRecordError,
    SealBrokenError,
    UnknownKeyError,
    UsageError,
)
from delite.log._codec import decode_record, encode_record
from delite.log._shell import shell_of
from delite.log.records import AnyRecord, PlainRecord, Record, SealedRecord
from delite.state._model import ExecutionState
from delite.store._base import ExecutionLog, Store, decode_stored
from delite.store._ids import validate_execution_id
from delite.store._keys import KEY_FILE_ENV, KEYS_ENV, refuse_sealed
from delite.store._records import RecordRange, StoredPayload
from delite.store._views import ExecutionSummary, Page

if TYPE_CHECKING:
    from delite.store._query import ListingQuery

__all__ = ["KEYS_ENV", "KEY_FILE_ENV", "Keyring", "SealedStore", "associated_data", "refuse_sealed"]

KEY_BYTES = 32
"""AES-256: a key is 32 bytes."""

_NONCE_BYTES = 12
_AD_PREFIX = b"delite-seal/1\x00"
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _aead(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 - the optional extra
    except ImportError as e:
        raise MissingExtraError("encryption", "encryption at rest (a key in DELITE_ENCRYPTION_KEYS)") from e
    return AESGCM(key)


def associated_data(execution_id: str, seq: int, kind: str) -> bytes:
    """What a sealed record's AEAD authenticates beside its ciphertext: the execution, the sequence, the kind."""
    return b"%s%s\x00%d\x00%s" % (_AD_PREFIX, execution_id.encode(), seq, kind.encode())


def _kind(record: Record) -> str:
    return str(record.__struct_config__.tag)


class Keyring:
    """The keys records are sealed and opened with: ``(key_id, 32-byte key)`` pairs, the newest last.

    New records are sealed under the newest key (:attr:`current`); records sealed under any key of the ring
    open. Rotate by adding a key at the end, then ``delite rekey`` every execution and drop the old key. Keys
    come from the environment or a key file (see :meth:`from_env`), never from the data directory.

    Raises:
        UsageError: no key, a key id that is not 1-64 of ``A-Z a-z 0-9 . _ -``, the same id twice, or a key
            that is not 32 bytes.
        MissingExtraError: the ``encryption`` extra (the ``cryptography`` package) is not installed.
    """

    def __init__(self, keys: Sequence[tuple[str, bytes]] | Mapping[str, bytes]) -> None:
        """Build from ``(key_id, key)`` pairs (or a mapping, in its order), the newest last."""
        pairs = list(keys.items()) if isinstance(keys, Mapping) else list(keys)
        if not pairs:
            raise UsageError("a keyring needs at least one key")
        self._aeads: dict[str, Any] = {}
        for key_id, key in pairs:
            if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
                raise UsageError(f"a key id is 1-64 characters of A-Z a-z 0-9 . _ -, not {key_id!r}")
            if key_id in self._aeads:
                raise UsageError(f"key id {key_id!r} is given twice")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise UsageError(f"key {key_id!r} must be {KEY_BYTES} bytes (AES-256)")
            self._aeads[key_id] = _aead(key)
        self.current: str = pairs[-1][0]
        """The id of the key new records are sealed under (the newest)."""
        self.path: str | None = None
        """The key file the keys were read from (:meth:`from_file`), else None."""

    def __repr__(self) -> str:
        """The key ids, never the keys."""
        return f"Keyring({list(self._aeads)!r}, current={self.current!r})"

    @property
    def key_ids(self) -> list[str]:
        """Every key id, the newest last."""
        return list(self._aeads)

    @classmethod
    def parse(cls, text: str, *, source: str = "the keys") -> Keyring:
        """Parse ``id:base64key`` entries separated by commas or new lines (``#`` starts a comment line)."""
        pairs: list[tuple[str, bytes]] = []
        for raw in re.split(r"[,\n]", text):
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise UsageError(f"{source}: an entry is id:base64key (the key is 32 bytes in base64), not {key_id!r}")
            try:
                key = base64.b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4), altchars=b"-_")
            except (binascii.Error, ValueError) as e:
                raise UsageError(f"{source}: the key of {key_id.strip()!r} is not base64") from e
            pairs.append((key_id.strip(), key))
        if not pairs:
            raise UsageError(f"{source} hold no key")
        return cls(pairs)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        """Read a key file: one ``id:base64key`` per line, the newest last.

        Raises:
            UsageError: the file cannot be read or holds no valid key.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot read the key file {os.fspath(path)!r}: {e.strerror or e}") from e
        except UnicodeDecodeError as e:  # said without the bytes: they may be a key
            raise UsageError(f"the key file {os.fspath(path)!r} is not UTF-8 text (at byte {e.start})") from None
        except ValueError as e:  # a path with a NUL in it
            raise UsageError(f"cannot read the key file {os.fspath(path)!r}: {e}") from None
        ring = cls.parse(text, source=f"the key file {os.fspath(path)!r}")
        ring.path = os.path.abspath(path)
        return ring

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring | None:
        """The keys ``DELITE_ENCRYPTION_KEYS`` holds, else those of the file ``DELITE_ENCRYPTION_KEY_FILE`` names.

        None when neither is set (encryption off).
        """
        env = os.environ if environ is None else environ
        keys = env.get(KEYS_ENV, "").strip()
        if keys:
            return cls.parse(keys, source=KEYS_ENV)
        path = env.get(KEY_FILE_ENV, "").strip()
        if path:
            return cls.from_file(path)
        return None

    @staticmethod
    def new_key(key_id: str) -> str:
        """A fresh random key as a keyring entry, ``id:base64key`` (for a key file or the environment)."""
        if not _KEY_ID.match(key_id):
            raise UsageError(f"a key id is 1-64 characters of A-Z a-z 0-9 . _ -, not {key_id!r}")
        return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"

    def seal(self, record: Record, execution_id: str, seq: int) -> SealedRecord:
        """``record`` sealed as record ``seq`` of ``execution_id``, under the newest key."""
        if isinstance(record, SealedRecord):
            raise EncryptionError(execution_id, seq, "the record is sealed already")
        kind = _kind(record)
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = self._aeads[self.current].encrypt(
            nonce, encode_record(record), associated_data(execution_id, seq, kind)
        )
        return SealedRecord(
            at=record.at,
            sealed=kind,
            key_id=self.current,
            nonce=nonce,
            ciphertext=ciphertext,
            shell=shell_of(record),  # type: ignore[arg-type]
        )

    def open(self, record: AnyRecord, execution_id: str, seq: int) -> PlainRecord:
        """The record ``record`` seals, checked to be record ``seq`` of ``execution_id``.

        Raises:
            PlaintextRecordError: ``record`` is not sealed.
            UnknownKeyError: it names a key id the ring does not hold.
            SealBrokenError: it does not open (tampered with, moved) or its shell is not the shell of its content.
        """
        if not isinstance(record, SealedRecord):
            raise PlaintextRecordError(
                execution_id, seq, f"a {_kind(record)!r} record is in plain text and a key is configured: refused"
            )
        aead = self._aeads.get(record.key_id)
        if aead is None:
            raise UnknownKeyError(
                execution_id, seq, f"sealed under key {record.key_id!r}, which is not among the keys {self.key_ids}"
            )
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - the optional extra, loaded by now

        try:
            plain = aead.decrypt(record.nonce, record.ciphertext, associated_data(execution_id, seq, record.sealed))
        except (InvalidTag, ValueError) as e:
            raise SealBrokenError(
                execution_id,
                seq,
                f"does not open under key {record.key_id!r}: tampered with, or moved from another execution "
                "or another place in its log",
            ) from e
        inner = decode_record(plain, path=execution_id, offset=seq)
        if isinstance(inner, SealedRecord) or _kind(inner) != record.sealed or shell_of(inner) != record.shell:
            raise SealBrokenError(execution_id, seq, "its plain-text shell does not match what it seals")
        return inner

    def seal_all(self, records: Iterable[Record], execution_id: str, first: int) -> list[SealedRecord]:
        """Seal consecutive records, the first as sequence ``first``."""
        return [self.seal(r, execution_id, seq) for seq, r in enumerate(records, start=first)]

    def open_all(self, records: Iterable[AnyRecord], execution_id: str, first: int) -> list[PlainRecord]:
        """Open consecutive records, the first being sequence ``first``."""
        return [self.open(r, execution_id, seq) for seq, r in enumerate(records, start=first)]


class _SealedLog(ExecutionLog):
    """A claim on the store underneath: records opened on the way in, sealed on the way out."""

    def __init__(self, inner: ExecutionLog, keys: Keyring, records: list[AnyRecord]) -> None:
        self._inner = inner
        self._keys = keys
        self.execution_id = inner.execution_id
        self.records = records
        self.created = inner.created
        self.outcome = None  # an outcome kept beside the log holds the answer: never kept, never read

    @property
    def head(self) -> int:
        """The head of the log underneath."""
        return self._inner.head

    def waits(self, *, barrier: bool) -> bool:
        """As the log underneath waits (sealing itself never does)."""
        return self._inner.waits(barrier=barrier)

    def append(self, records: Sequence[Record], *, barrier: bool = False, expected: int | None = None) -> None:
        """Seal the records as the next sequence numbers and append them (see :meth:`ExecutionLog.append`)."""
        self._fence(expected)
        sealed = self._keys.seal_all(records, self.execution_id, self._inner.head + 1)
        self._inner.append(sealed, barrier=barrier, expected=expected)

    def offer_state(self, state: ExecutionState) -> None:
        """Kept nowhere: a fold checkpoint would hold the records' content in plain text beside the sealed log."""

    def release(self) -> None:
        """Release the claim underneath."""
        self._inner.release()

    def __getattr__(self, name: str) -> Any:
        """What only the log underneath has (the file store's ``torn``)."""
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._inner, name)


class SealedStore(Store):
    """Any store, with every record sealed at rest under a :class:`Keyring` (see ``docs/security.md``).

    ``open_store`` wraps the store it opens in one when keys are configured (``DELITE_ENCRYPTION_KEYS`` or
    ``DELITE_ENCRYPTION_KEY_FILE``); wrap a store object yourself to give it to ``Agent(store=...)``.
    Listings, claims, cancels and idempotency keys are the store underneath's: its listings are folded from
    the records' shells, so they carry no content (the input and answer are empty). Reads and claims return
    the records opened; appends and creates seal them.

    Raises (on reads):
        PlaintextRecordError: a record is in plain text.
        UnknownKeyError, SealBrokenError: a sealed record does not open.
    """

    def __init__(self, inner: Store, keys: Keyring) -> None:
        """Wrap ``inner``; records are sealed under ``keys.current`` and opened under any key of ``keys``.

        Raises:
            UsageError: ``inner`` is sealed already, or the keys were read from a key file inside its data
                directory (keys are kept apart from the data they protect).
        """
        if isinstance(inner, SealedStore):
            raise UsageError("the store is sealed already")
        if keys.path is not None:
            from delite.store._open import check_key_file_apart  # noqa: PLC0415 - _open imports this module

            check_key_file_apart(keys.path, inner)
        self.inner = inner
        """The store underneath (it holds sealed records only)."""
        self.keys = keys
        """The keys records are sealed and opened with."""

    def __repr__(self) -> str:
        """The store underneath, sealed."""
        return f"{self.inner!r} (sealed)"

    def __getattr__(self, name: str) -> Any:
        """What only the store underneath has (``layout``, ``where``): never a way to its records."""
        if name.startswith("__") or name in {"tail", "read_bytes"}:
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- records -----------------------------------------------------------------------------------------------

    def exists(self, execution_id: str) -> bool:
        """Whether the store underneath has the execution."""
        return self.inner.exists(execution_id)

    def read(self, execution_id: str, *, after: int | None = None, limit: int | None = None) -> RecordRange:
        """The records after ``after``, opened (see :meth:`~delite.store.LogStore.read`)."""
        got = self.inner.read(execution_id, after=after, limit=limit)
        opened: list[AnyRecord] = list(self.keys.open_all(got.records, execution_id, got.after + 1))
        return replace(got, records=opened)

    def head(self, execution_id: str) -> int:
        """The head of the log underneath (nothing is opened)."""
        return self.inner.head(execution_id)

    def create(self, execution_id: str, records: Sequence[Record]) -> None:
        """Create the execution holding ``records``, sealed (see :meth:`~delite.store.LogStore.create`)."""
        execution_id = validate_execution_id(execution_id)
        if not records:
            raise UsageError("an execution is created with at least one record")
        self.inner.create(execution_id, self.keys.seal_all(records, execution_id, 1))

    def claim(self, execution_id: str, *, create: Sequence[Record] | None = None, timeout: float = 0.0) -> ExecutionLog:
        """Claim the execution underneath; its records come back opened (see :meth:`~delite.store.LogStore.claim`)."""
        execution_id = validate_execution_id(execution_id)
        sealed = None if create is None else self.keys.seal_all(create, execution_id, 1)
        log = self.inner.claim(execution_id, create=sealed, timeout=timeout)
        try:
            if log.created and create is not None:
                records: list[AnyRecord] = list(create)  # type: ignore[arg-type]
            else:
                records = list(self.keys.open_all(log.records, execution_id, 1))
        except BaseException:
            log.release()
            raise
        return _SealedLog(log, self.keys, records)

    def is_claimed(self, execution_id: str) -> bool:
        """Whether the execution underneath is claimed."""
        return self.inner.is_claimed(execution_id)

    def read_payloads(self, execution_id: str) -> list[StoredPayload]:
        """The sealed payloads as the store underneath keeps them (a copy stays sealed)."""
        return self.inner.read_payloads(execution_id)

    def create_payloads(self, execution_id: str, payloads: Sequence[StoredPayload]) -> None:
        """Create from sealed payloads, each checked to open as this execution's before anything is written."""
        execution_id = validate_execution_id(execution_id)
        self.keys.open_all(decode_stored(execution_id, payloads), execution_id, 1)
        self.inner.create_payloads(execution_id, payloads)

    def rekey(self, execution_id: str) -> int:
        """Seal every record of the execution again under the newest key, whole or not at all.

        Records in plain text are sealed too (how an existing data directory is encrypted). Returns how many
        records were sealed under an older key or not at all (0: nothing to do, nothing written). The
        rewrite is the store underneath's ``rewrite`` (a new file renamed over the old, one transaction):
        a crash leaves the old log or the new one, never a mix. The execution must not be claimed.

        Raises:
            ExecutionAlreadyClaimedError: a process holds the execution.
            UsageError: the store underneath cannot rewrite a log.
        """
        rewrite = getattr(self.inner, "rewrite", None)
        if rewrite is None:
            raise UsageError(f"{self.inner!r} cannot rewrite a log, so it cannot be rekeyed")
        with self.inner.claim(execution_id) as log:
            stale = sum(1 for r in log.records if not isinstance(r, SealedRecord) or r.key_id != self.keys.current)
            if stale == 0:
                return 0
            opened = [
                self.keys.open(r, execution_id, seq) if isinstance(r, SealedRecord) else r
                for seq, r in enumerate(log.records, start=1)
            ]
            resealed = self.keys.seal_all(opened, execution_id, 1)
            rewrite(log, resealed)
        return stale

    # -- the index: the store underneath's, folded from shells -------------------------------------------------

    def list_ids(self) -> list[str]:
        """The ids of the store underneath."""
        return self.inner.list_ids()

    def list_executions(self, **kwargs: Any) -> Page:
        """The listing of the store underneath (shells: no content)."""
        return self.inner.list_executions(**kwargs)

    def query_executions(self, query: ListingQuery) -> Page:
        """The listing of the store underneath (shells: no content)."""
        return self.inner.query_executions(query)

    def recoverable(self, *, agent: str | None = None, limit: int | None = None) -> list[ExecutionSummary]:
        """As the store underneath finds them."""
        return self.inner.recoverable(agent=agent, limit=limit)

    def runnable(self, *, agent: str | Iterable[str] | None = None, limit: int | None = None) -> list[ExecutionSummary]:
        """As the store underneath finds them."""
        return self.inner.runnable(agent=agent, limit=limit)

    def wait_for_work(self, timeout: float) -> bool:
        """As the store underneath waits."""
        return self.inner.wait_for_work(timeout)

    def request_cancel(self, execution_id: str) -> None:
        """Ask the store underneath."""
        self.inner.request_cancel(execution_id)

    def cancel_requested(self, execution_id: str) -> bool:
        """Ask the store underneath."""
        return self.inner.cancel_requested(execution_id)

    def cancels_requested(self, execution_ids: Iterable[str]) -> set[str]:
        """Ask the store underneath."""
        return self.inner.cancels_requested(execution_ids)

    def clear_cancel(self, execution_id: str) -> None:
        """Ask the store underneath."""
        self.inner.clear_cancel(execution_id)

    def bind_key(self, key: str, execution_id: str, fingerprint: str) -> tuple[str, str]:
        """Bind in the store underneath (idempotency keys are the caller's ids, not content)."""
        return self.inner.bind_key(key, execution_id, fingerprint)

    def lookup_key(self, key: str) -> tuple[str, str] | None:
        """Look up in the store underneath."""
        return self.inner.lookup_key(key)

    def close(self) -> None:
        """Close the store underneath."""
        self.inner.close()
