"""Every exception delite raises, in one tree rooted at :class:`DeliteError`.

Each error keeps its constructor arguments as attributes and carries ``http_status``, the status code a web
route should answer with, so that mapping an error is one line::

    except DeliteError as e:
        return JSONResponse({"error": str(e)}, status_code=e.http_status)

Errors that also mean something to Python code outside delite subclass the matching builtin as well
(``ExecutionNotFoundError`` is a ``LookupError``, ``InvalidExecutionIdError`` a ``ValueError``, store errors
are ``OSError``), so generic handlers keep working.

Beside the tree stands :class:`ControlSignal`: the ``BaseException`` delite raises to unwind a run on
purpose (a sub-agent waiting, a stream's consumer gone). It is not an error; never catch it.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any, ClassVar

__all__ = [
    "AlreadyDecidedError",
    "AmbiguousExecutionIdError",
    "ClaimLostError",
    "ClaimTimeoutError",
    "ControlSignal",
    "DelegationDepthExceededError",
    "DeliteDeprecationWarning",
    "DeliteError",
    "DriftError",
    "EncryptionError",
    "ExecutionAlreadyActiveError",
    "ExecutionAlreadyClaimedError",
    "ExecutionAlreadyTerminalError",
    "ExecutionIdConflictError",
    "ExecutionNotFinishedError",
    "ExecutionNotFoundError",
    "ExecutionNotSuspendedError",
    "ExecutionStateError",
    "IdempotencyConflictError",
    "InvalidExecutionIdError",
    "InvalidRecordError",
    "InvalidToolResultError",
    "LogCorruptError",
    "LogIdentityError",
    "MissingExtraError",
    "PlaintextRecordError",
    "ProviderError",
    "ProviderHTTPError",
    "RecordTooLargeError",
    "ReplayMismatchError",
    "SchemaTooNewError",
    "SealBrokenError",
    "SequenceConflictError",
    "StoreError",
    "StructuredOutputValidationError",
    "SuspendKindMismatchError",
    "ToolError",
    "UnknownKeyError",
    "UnsupportedFormatError",
    "UnsupportedPoolerError",
    "UsageError",
]


class DeliteDeprecationWarning(DeprecationWarning):
    """The category delite uses when it deprecates part of its own API (none is deprecated yet).

    Its own category, so that a test suite (delite's included) can turn delite's deprecations into errors while a
    dependency's deprecation notices stay notices, with the pytest filter
    ``error::delite.errors.DeliteDeprecationWarning``.
    """


class ControlSignal(BaseException):
    """Base of delite's control signals: not an error, and never to be caught (nor raised) by user code.

    The engine raises one to unwind a run through user code on purpose and catches it itself:
    ``DelegationSuspended`` when a sub-agent started inside a tool suspends (the parent's call waits on it),
    ``StreamClosed`` when the consumer of ``agent.stream(...)`` goes away. A ``BaseException``, like
    ``KeyboardInterrupt``, so a tool's ``except Exception`` lets it through; code that must catch everything
    re-raises it: ``except ControlSignal: raise``.
    """


class DeliteError(Exception):
    """Root of every error delite raises.

    Subclasses store their constructor arguments as attributes and build the message in ``__str__``.
    """

    http_status: ClassVar[int] = 500

    def __init__(self, *args: Any) -> None:
        """Keep the arguments; subclasses name them."""
        super().__init__(*args)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments, so errors cross process pools intact."""
        return (type(self), self.args)


class UsageError(DeliteError, ValueError):
    """A developer mistake: a wrong argument, a tool without a name, a run with no provider."""

    http_status = 400

    def __init__(self, message: str) -> None:
        """Build from a message."""
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        """The message."""
        return self.message


class MissingExtraError(UsageError, ImportError):
    """A feature needs an optional extra that is not installed (``pip install "delite-agents[extra]"``).

    Also an ``ImportError``: it is raised when the module that needs the extra is imported. Nothing was
    opened or written.
    """

    def __init__(self, extra: str, feature: str) -> None:
        """Build from the extra's name (``postgres``) and what needed it (``a postgresql:// URL``)."""
        UsageError.__init__(
            self, f'{feature} needs the {extra!r} extra, which is not installed: pip install "delite-agents[{extra}]"'
        )
        self.args = (extra, feature)
        self.extra = extra
        self.feature = feature


class InvalidRecordError(UsageError):
    """A record would not read back with the reader's own types; it was not written (nothing was).

    The writer's last line of defence: every record is encoded and decoded strictly before any byte of it is
    appended, so a value of the wrong type (a number where the log holds text, text that is not valid
    Unicode) can never make an execution unreadable. Public methods check their arguments first and raise a
    plain :class:`UsageError` naming the argument; this names the record's kind and what is wrong.
    """

    def __init__(self, kind: str, detail: str) -> None:
        """Build from the record's kind (its tag) and why it would not read back."""
        super().__init__(f"refused to write a record of kind {kind!r} that would not read back: {detail}")
        self.args = (kind, detail)
        self.kind = kind
        self.detail = detail


class InvalidExecutionIdError(UsageError):
    """An execution id that is not a string, is empty or too long, or holds ``/``, ``..`` or control characters.

    A :class:`UsageError`, so an id of the wrong type is caught like any other wrong argument.
    """

    def __init__(self, execution_id: str, reason: str) -> None:
        """Build from the refused id and why it was refused."""
        DeliteError.__init__(self, execution_id, reason)
        self.execution_id = execution_id
        self.reason = reason
        self.message = f"invalid execution id {execution_id[:160]!r}: {reason}"

    def __str__(self) -> str:
        """The id (repr, so control characters show) and the reason."""
        return f"invalid execution id {self.execution_id[:160]!r}: {self.reason}"


class ExecutionNotFoundError(DeliteError, LookupError):
    """No execution with this id exists in the data directory (``data_dir``: where it was looked for).

    For a store that is not a data directory, ``data_dir`` names it (a PostgreSQL store: its URL, no password).
    """

    http_status = 404

    def __init__(self, execution_id: str, data_dir: str | None = None) -> None:
        """Build from the id that was not found and, when known, the data directory searched."""
        super().__init__(*((execution_id,) if data_dir is None else (execution_id, data_dir)))
        self.execution_id = execution_id
        self.data_dir = data_dir

    def __str__(self) -> str:
        """Name the id, and the data directory searched when it is known."""
        store = self.data_dir is not None and "://" in self.data_dir  # a database's URL (never with its password)
        where = f" in {'' if store else 'data directory '}{self.data_dir}" if self.data_dir is not None else ""
        return f"execution {self.execution_id!r} not found{where}"


class AmbiguousExecutionIdError(DeliteError, LookupError):
    """An id prefix (or suffix) matches more than one execution."""

    http_status = 400

    def __init__(self, prefix: str, matches: list[str]) -> None:
        """Build from the prefix and the ids it matches (all of them, or the first few)."""
        super().__init__(prefix, matches)
        self.prefix = prefix
        self.matches = matches

    def __str__(self) -> str:
        """The prefix and a few of the ids it matches."""
        shown = ", ".join(self.matches[:3]) + (", ..." if len(self.matches) > 3 else "")
        return (
            f"id {self.prefix!r} matches {len(self.matches)} executions by prefix or suffix ({shown}); "
            "give more characters (the end of a generated id is random, so a few of its last ones are enough)"
        )


class StoreError(DeliteError, OSError):
    """The store could not read or write a log (disk full, I/O error, damaged data, a file it must refuse).

    Its ``OSError`` part is built like the builtin's: ``errno`` is the cause's error number (or None when
    no system call failed, as for damaged data), ``strerror`` the system's text for it (else the message)
    and ``filename`` the file concerned, so ``except OSError as e: e.errno == errno.ENOSPC`` works.
    Build one from a caught ``OSError`` with :meth:`from_os_error`.
    """

    http_status = 500

    def __init__(
        self, message: str, path: str | None = None, *, errno: int | None = None, strerror: str | None = None
    ) -> None:
        """Build from a message, the file concerned and, when a system call failed, its ``errno``."""
        self._init_store(message, path, errno=errno, strerror=strerror)

    def _init_store(
        self, message: str, path: str | None, *, errno: int | None = None, strerror: str | None = None
    ) -> None:
        OSError.__init__(self, errno, strerror if strerror is not None else message, path)
        self.message = message
        self.path = path

    @classmethod
    def from_os_error(cls, action: str, path: str | os.PathLike[str], error: OSError) -> StoreError:
        """A ``StoreError`` for ``error``, raised while trying to ``action`` (``"append to the log"``) at ``path``."""
        code = error.errno
        name = _errno.errorcode.get(code, "error") if isinstance(code, int) else "error"
        text = error.strerror if isinstance(error.strerror, str) else str(error)
        where = os.fspath(path)
        return cls(
            f"could not {action}: {name} ({text})", where, errno=code if isinstance(code, int) else None, strerror=text
        )

    def __str__(self) -> str:
        """The message and the path."""
        return f"{self.message} ({self.path})" if self.path else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (_rebuild, (type(self), (self.message, self.path), {"errno": self.errno, "strerror": self.strerror}))


class LogCorruptError(StoreError):
    """A record before the log's tail is damaged. Nothing is skipped silently; the offset is named."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        """Build from the log's path, the byte offset of the damaged frame and what is wrong with it."""
        self._init_store(f"log corrupt at byte {offset}: {reason}", path)
        self.offset = offset
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (type(self), (self.path, self.offset, self.reason))


class EncryptionError(StoreError):
    """A record could not be sealed or opened under the configured keys (see ``docs/security.md``).

    ``execution_id`` and ``seq`` name the record (``seq`` 0: the execution as a whole); ``reason`` says why.
    """

    def __init__(self, execution_id: str, seq: int, reason: str) -> None:
        """Build from the execution, the record's sequence number and what went wrong."""
        where = f"record {seq} of execution {execution_id!r}" if seq else f"execution {execution_id!r}"
        self._init_store(f"{where}: {reason}", None)
        self.execution_id = execution_id
        self.seq = seq
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (type(self), (self.execution_id, self.seq, self.reason))


class PlaintextRecordError(EncryptionError):
    """A key is configured and a record was read in plain text: refused, never silently accepted.

    Also raised the other way round: a sealed execution advanced with no key configured (its records would
    fold as their shells, without content).
    """


class UnknownKeyError(EncryptionError):
    """A sealed record names a key id that is not among the configured keys."""


class SealBrokenError(EncryptionError):
    """A sealed record does not open: tampered with, moved to another execution or to another place in its log."""


class LogIdentityError(StoreError):
    """A log file that must not be advanced under this id: it names another execution, or it is a link.

    One log, one identity: a symbolic link, a hard link or a copy of another execution's log would let two
    ids advance the same records. The claim refuses it before anything is written; ``reason`` says why.
    """

    http_status = 409

    def __init__(self, execution_id: str, path: str, reason: str, *, errno: int | None = None) -> None:
        """Build from the id the log was opened under, its path, what is wrong with it and any ``errno``."""
        message = f"the log of execution {execution_id!r} cannot be used: {reason}"
        self._init_store(message, path, errno=errno)
        self.execution_id = execution_id
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (_rebuild, (type(self), (self.execution_id, self.path, self.reason), {"errno": self.errno}))


class UnsupportedFormatError(StoreError):
    """The log was written in a format this version of delite does not read (for example a newer one)."""

    def __init__(self, path: str, found: str, supported: str) -> None:
        """Build from the path, the format found in the header and the one supported."""
        self._init_store(f"log format {found!r} is not supported (this delite reads {supported!r})", path)
        self.found = found
        self.supported = supported

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (type(self), (self.path, self.found, self.supported))


class RecordTooLargeError(StoreError):
    """A record is larger than the format allows; it was not written (``errno`` is ``EFBIG``)."""

    def __init__(self, size: int, limit: int) -> None:
        """Build from the record's size and the limit, in bytes."""
        message = f"record of {size} bytes exceeds the limit of {limit} bytes"
        self._init_store(message, None, errno=_errno.EFBIG, strerror=message)
        self.size = size
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (type(self), (self.size, self.limit))


class ClaimTimeoutError(StoreError, TimeoutError):
    """Waiting for an execution's claim timed out (``errno`` is ``ETIMEDOUT``)."""

    def __init__(self, execution_id: str, timeout: float) -> None:
        """Build from the id and the time waited, in seconds."""
        message = f"timed out after {timeout}s waiting to claim execution {execution_id!r}"
        self._init_store(message, None, errno=_errno.ETIMEDOUT, strerror=message)
        self.execution_id = execution_id
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (type(self), (self.execution_id, self.timeout))


class UnsupportedPoolerError(StoreError):
    """The claim connection goes through a transaction-mode pooler (PgBouncer and the like); refused.

    Claims are session advisory locks: a pooler that hands each transaction to whichever server connection is
    free would let a lock outlive its owner or move to another client. Point the store at the database itself
    (or at a session-mode pooler). Nothing was claimed or written.
    """

    def __init__(self, where: str, reason: str) -> None:
        """Build from the database as named in messages (no password) and what gave the pooler away."""
        message = (
            f"the claim connection goes through a transaction-mode connection pooler ({reason}); claims are "
            "session advisory locks and need a direct connection (or a session-mode pooler)"
        )
        self._init_store(message, where)
        self.where = where
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (type(self), (self.where, self.reason))


class SchemaTooNewError(StoreError):
    """The database's schema was migrated by a newer delite than this one; refused before anything is written."""

    def __init__(self, where: str, found: int, supported: int) -> None:
        """Build from the database as named in messages, its schema's last step and this version's last step."""
        message = (
            f"the database's schema is at step {found}, newer than this version of delite knows (up to step "
            f"{supported}); upgrade delite-agents to use it"
        )
        self._init_store(message, where)
        self.where = where
        self.found = found
        self.supported = supported

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (type(self), (self.where, self.found, self.supported))


class ExecutionStateError(DeliteError):
    """Base of the 409 errors: the execution exists, but its state does not allow the call (any more).

    Every "the state changed under you" error derives from it: another process holds the execution, it is
    not (or no longer) suspended, it waits for something else, it has ended, the call already has its answer,
    or an idempotency key or execution id is taken by another input. A caller that races others (two
    approvers, a retried request) catches this one type whatever the timing; nothing was recorded by the
    call that raised it. Read the execution again to see what happened.
    """

    http_status = 409

    def __init__(self, execution_id: str, current_status: str = "", detail: str = "") -> None:
        """Build from the id, the status the execution was found in and what is wrong (both optional)."""
        super().__init__(execution_id, current_status, detail)
        self.execution_id = execution_id
        self.current_status = current_status
        self.detail = detail

    def _describe(self) -> str:
        return f"execution {self.execution_id!r} cannot take this call (status {self.current_status})"

    def __str__(self) -> str:
        """What the execution's state refuses, and the detail."""
        text = self._describe()
        return f"{text}: {self.detail}" if self.detail else text


_ExecutionStateError = ExecutionStateError  # the name it had while private


class ExecutionAlreadyClaimedError(ExecutionStateError):
    """Another live process is advancing this execution right now."""

    def _describe(self) -> str:
        return f"execution {self.execution_id!r} is being advanced by another process"


class SequenceConflictError(ExecutionStateError):
    """An append named the sequence it expected to follow, and the log's last record has another.

    The fence of the record-level store (:meth:`delite.store.ExecutionLog.append` with ``expected``):
    someone else appended to the execution, or took it over, since this writer last looked. Nothing of
    the batch was written. Never retry blindly: read the execution again (``actual`` is the head found,
    or None when the store could only tell that the log changed behind the claim).
    """

    def __init__(self, execution_id: str, expected: int, actual: int | None) -> None:
        """Build from the id, the sequence the append expected to follow and the one found."""
        DeliteError.__init__(self, execution_id, expected, actual)
        self.execution_id = execution_id
        self.expected = expected
        self.actual = actual
        self.current_status = ""
        self.detail = ""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (type(self), (self.execution_id, self.expected, self.actual))

    def _describe(self) -> str:
        found = "a log that changed behind the claim" if self.actual is None else f"sequence {self.actual}"
        return (
            f"execution {self.execution_id!r}: an append expected to follow sequence {self.expected} "
            f"but found {found}; nothing was written"
        )


class ClaimLostError(ExecutionStateError):
    """The claim was lost: another worker took the execution over, or the claim's connection died.

    A store whose claims can end behind their owner's back (PostgreSQL: the lock connection dropped by a
    partition or a database restart) fences every append with an owner epoch; a writer whose epoch is stale
    gets this and nothing of its batch is written. The claim counts as released; claim the execution again.
    """

    def __init__(self, execution_id: str, detail: str = "") -> None:
        """Build from the id and what gave the loss away (optional)."""
        DeliteError.__init__(self, execution_id, detail)
        self.execution_id = execution_id
        self.current_status = ""
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (type(self), (self.execution_id, self.detail))

    def _describe(self) -> str:
        return (
            f"execution {self.execution_id!r}: the claim was lost (another worker took the execution over, or "
            "the claim's connection to the database was lost); nothing was written"
        )


class ExecutionNotFinishedError(ExecutionStateError):
    """A deletion (``delete``, ``gc``) was refused: the execution is not finished (nothing was removed).

    Only completed, failed and cancelled executions are deleted unless the caller forces it: a running or
    suspended one (or one whose log cannot be read) may still be advanced or answered.
    """

    def _describe(self) -> str:
        return f"execution {self.execution_id!r} is not finished (status {self.current_status}); nothing was removed"


class ExecutionNotSuspendedError(ExecutionStateError):
    """A decision or submission was made for an execution that is not suspended."""

    def _describe(self) -> str:
        return f"execution {self.execution_id!r} is not suspended (status {self.current_status})"


class SuspendKindMismatchError(ExecutionStateError):
    """The execution is suspended, but for something other than what was submitted."""

    def _describe(self) -> str:
        return f"execution {self.execution_id!r} is waiting for something else (status {self.current_status})"


class ExecutionAlreadyTerminalError(ExecutionStateError):
    """The execution has completed, failed or been cancelled; it cannot be changed."""

    def _describe(self) -> str:
        return f"execution {self.execution_id!r} has already ended (status {self.current_status})"


class AlreadyDecidedError(ExecutionStateError):
    """A pending call already has its answer, or no longer waits for one; nothing was recorded.

    Raised for every kind of answer: a second approval or rejection, client tool result, human answer or
    in-doubt resolution of the same call (given twice, or by racing processes), and for a batch in which any
    one call was already answered (a batch is recorded whole or not at all).
    """

    def _describe(self) -> str:
        return f"execution {self.execution_id!r}: already decided or answered"


class ExecutionAlreadyActiveError(ExecutionStateError):
    """A run with this idempotency key is being advanced by a live process."""

    def _describe(self) -> str:
        return f"execution {self.execution_id!r} for this idempotency key is running in another process"


class ExecutionIdConflictError(ExecutionStateError, UsageError):
    """A new execution was asked for under an id that is taken (nothing was recorded).

    ``run`` named an existing execution that was started with another input, or a fork named an id that exists
    already. A state error (409): of two callers that create one id, the one that comes second gets this. Also
    a :class:`UsageError`, as it was before it had a class of its own.
    """

    def __init__(self, execution_id: str, current_status: str = "", detail: str = "") -> None:
        """Build from the id, the execution's status and what is wrong (both optional)."""
        DeliteError.__init__(self, execution_id, current_status, detail)
        self.execution_id = execution_id
        self.current_status = current_status
        self.detail = detail
        self.message = str(self)

    def _describe(self) -> str:
        if self.detail:  # said after it (see ExecutionStateError.__str__)
            return f"execution {self.execution_id!r}"
        return (
            f"execution {self.execution_id!r} was started with another input; pass the same text to continue "
            "it, or omit execution_id to start a new execution"
        )

    def __str__(self) -> str:
        """Name the id and say what to do (or what is wrong, the detail, once)."""
        return ExecutionStateError.__str__(self)


class DriftError(DeliteError):
    """The resuming agent's configuration differs from the one the execution was started with."""

    http_status = 409

    def __init__(self, execution_id: str, changes: list[tuple[str, str, str]]) -> None:
        """Build from the id and the changes, each ``(what, old, new)``."""
        super().__init__(execution_id, changes)
        self.execution_id = execution_id
        self.changes = changes

    def __str__(self) -> str:
        """Name every change with its old and new value."""
        parts = "; ".join(f"{what}: {old!r} -> {new!r}" for what, old, new in self.changes)
        return f"configuration drift on execution {self.execution_id!r}: {parts}"


class IdempotencyConflictError(ExecutionStateError):
    """The idempotency key was used before with a different input."""

    def __init__(self, idempotency_key: str, execution_id: str) -> None:
        """Build from the key and the execution it already names."""
        DeliteError.__init__(self, idempotency_key, execution_id)
        self.idempotency_key = idempotency_key
        self.execution_id = execution_id
        self.current_status = ""
        self.detail = ""

    def __str__(self) -> str:
        """Name the key and the existing execution."""
        return (
            f"idempotency key {self.idempotency_key!r} already names execution {self.execution_id!r} "
            "with a different input"
        )


class InvalidToolResultError(DeliteError, ValueError):
    """Submitted tool results or decisions do not match the pending calls (unknown, duplicate or missing ids)."""

    http_status = 400

    def __init__(self, execution_id: str, detail: str) -> None:
        """Build from the id and what is wrong."""
        super().__init__(execution_id, detail)
        self.execution_id = execution_id
        self.detail = detail

    def __str__(self) -> str:
        """The id and the detail."""
        return f"invalid submission for execution {self.execution_id!r}: {self.detail}"


class ReplayMismatchError(DeliteError):
    """The log records a step that the resuming code cannot replay (for example a tool it does not have)."""

    http_status = 409

    def __init__(self, execution_id: str, detail: str) -> None:
        """Build from the id and what does not match."""
        super().__init__(execution_id, detail)
        self.execution_id = execution_id
        self.detail = detail

    def __str__(self) -> str:
        """The id and the detail."""
        return f"cannot replay execution {self.execution_id!r}: {self.detail}"


class ProviderError(DeliteError):
    """The model provider failed; ``retryable`` says whether a retry may fix it (the engine retries those)."""

    http_status = 502
    usage: Any = None
    """What the failed call may have been billed (a ``Usage`` with ``known=False``), or None; set by providers."""

    def __init__(
        self, message: str, *, provider: str = "", retryable: bool = False, retry_after: float | None = None
    ) -> None:
        """Build from a message, the provider's name, whether a retry may succeed and how long to wait first."""
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        """The provider and the message."""
        return f"{self.provider}: {self.message}" if self.provider else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        kwargs = {"provider": self.provider, "retryable": self.retryable, "retry_after": self.retry_after}
        return (_rebuild, (type(self), (self.message,), kwargs))


class ProviderHTTPError(ProviderError):
    """The provider answered with an HTTP error status."""

    def __init__(
        self,
        status_code: int,
        body: str,
        *,
        provider: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Build from the status code and the response body."""
        super().__init__(
            f"HTTP {status_code}: {body[:500]}", provider=provider, retryable=retryable, retry_after=retry_after
        )
        self.status_code = status_code
        self.body = body

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by constructor arguments."""
        return (
            _rebuild,
            (
                type(self),
                (self.status_code, self.body),
                {"provider": self.provider, "retryable": self.retryable, "retry_after": self.retry_after},
            ),
        )


class ToolError(DeliteError):
    """Raise inside a tool to send a clean error message to the model (no traceback is recorded)."""

    http_status = 500

    def __init__(self, message: str) -> None:
        """Build from the message the model will see."""
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        """The message."""
        return self.message


class StructuredOutputValidationError(DeliteError):
    """The model's final answer did not validate against the requested output type, after every correction.

    Attributes:
        execution_id: the execution (recorded as failed; ``resume`` tries the last answer again).
        raw: the model's last answer, as text.
        detail: why it did not validate.
        usage: the execution's usage so far (a :class:`~delite.Usage`), or None.
    """

    http_status = 502

    def __init__(self, execution_id: str, raw: str, detail: str, usage: Any = None) -> None:
        """Build from the id, the raw answer, the validation error and the usage so far."""
        super().__init__(execution_id, raw, detail, usage)
        self.execution_id = execution_id
        self.raw = raw
        self.detail = detail
        self.usage = usage

    def __str__(self) -> str:
        """The id and the validation error."""
        return f"structured output of execution {self.execution_id!r} did not validate: {self.detail}"


class DelegationDepthExceededError(DeliteError):
    """A sub-agent would exceed the maximum delegation depth."""

    http_status = 409

    def __init__(self, depth: int, limit: int) -> None:
        """Build from the depth reached and the limit."""
        super().__init__(depth, limit)
        self.depth = depth
        self.limit = limit

    def __str__(self) -> str:
        """The depth and the limit."""
        return f"delegation depth {self.depth} exceeds the limit of {self.limit}"


def _rebuild(cls: type[DeliteError], args: tuple[Any, ...], kwargs: dict[str, Any]) -> DeliteError:
    return cls(*args, **kwargs)
