"""A fork's sub-agents: copies of the origin's, under the ids the fork derives (see :meth:`DataDir.fork`).

A sub-agent's execution id is derived from its parent's id and the parent's tool call (``<parent>:<call>``,
``<parent>:<call>:2``..., ``<parent>:<call>:<key>``, a digest when that is too long; see
:func:`delite.engine._delegation.link_for`). When a fork resumes and a copied call runs its body again (a call
that waits on a sub-agent, or one a crash cut short), ``delegate`` derives the child's id from the fork's id,
so the fork continues ``<fork>:<call>``, never the origin's child. The fork therefore gets its own copy of each
sub-agent's execution its copied calls started (and of theirs, down the tree), under exactly those ids, and
every reference the copied records make to a child (a ``child-suspended`` record, the ``<child>/<call>`` ids
a suspension lists) is renamed to the copy. Answering the fork then writes in the fork's tree only, and
deleting the origin's tree leaves the fork whole.

A child's copy holds the child's whole log as it is when the fork is made, its end included: every record a
child has was written for a call of the copied prefix (a parent's call finishes before its next step), and a
child read after its parent is never behind it (at worst ahead, as after a crash of the parent, which the
fork's resume handles as a resume of the origin would). Its first record names the copy's parent
(``parent_id``) and the copied child (``forked_from``), so listings show the fork's tree and the fold marks
the copy dormant until its parent's call takes it on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from delite.errors import ExecutionIdConflictError, UsageError
from delite.log.records import (
    AnyRecord,
    ChildSuspended,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ModelResponded,
)
from delite.state._fold import fold
from delite.store._base import Store
from delite.store._ids import WAITING_FOR_SUB_AGENT, plain_sub_agent_id, sub_agent_id

__all__ = ["ChildCopy", "check_free", "conflict", "copied", "copy_children", "place", "rename"]


@dataclass
class ChildCopy:
    """One sub-agent's execution of the origin's tree and the fork's copy of it (records as read, not renamed)."""

    old: str
    new: str
    new_parent: str
    records: list[AnyRecord]


@dataclass
class _Source:
    """An execution whose copied records may name children: its old and new ids, and the step of the root's call."""

    old: str
    new: str
    records: Sequence[AnyRecord]
    root_step: int | None  # the origin's step whose call started this subtree (None: the origin itself)


def _calls(records: Sequence[AnyRecord]) -> dict[str, int]:
    """Each tool call the records hold, with its step."""
    return {c.id: r.step for r in records if isinstance(r, ModelResponded) for c in r.tool_calls}


def _tail(parent: str, call: str, child: str, known: int) -> str | None:
    """What follows ``parent`` in the plain id of ``child``, started by ``call`` (``:call``, ``:call:2``...).

    A digest is matched against the plain ids of the first ``known`` delegations of the call; a digest of a
    ``key=`` delegation cannot be undone (None).
    """
    base = plain_sub_agent_id(parent, call)
    if child == base or child.startswith(base + ":"):
        return child[len(parent) :]
    for n in range(1, known + 1):
        plain = plain_sub_agent_id(parent, call, n)
        if sub_agent_id(plain) == child:
            return plain[len(parent) :]
    return None


def copy_children(
    store: Store,
    children_of: Callable[[str], list[str]],
    origin: str,
    fork: str,
    kept: Sequence[AnyRecord],
) -> tuple[dict[str, str], list[ChildCopy]]:
    """The new id of every execution of the origin's tree the fork copies or names, and the copies to make.

    ``kept`` are the origin's records the fork copies; ``children_of(id)`` lists the ids of the executions
    started by ``id`` (a listing may lag, so the children the records name are looked at too). Only the
    children of the calls in ``kept`` are copied (those of later steps are not the fork's), each with its own
    children, parents before children.

    Raises:
        UsageError: a child's id is a digest that cannot be traced back to its call (nothing is written).
    """
    names = {origin: fork}
    copies: list[ChildCopy] = []
    queue = [_Source(origin, fork, kept, None)]
    while queue:
        source = queue.pop(0)
        calls = _calls(source.records)
        if not calls:
            continue  # no tool call, no sub-agent (and no listing to ask)
        found = {r.child_id: r.call_id for r in source.records if isinstance(r, ChildSuspended)}
        for cid in children_of(source.old):
            first = _first(store, cid) if cid not in found else None
            if first is not None and first.parent_id == source.old and first.parent_call in calls:
                found[cid] = first.parent_call
        per_call: dict[str, int] = {}
        for call in found.values():
            per_call[call] = per_call.get(call, 0) + 1
        for cid, call in sorted(found.items()):
            step = source.root_step if source.root_step is not None else calls.get(call, 0)
            tail = _tail(source.old, call, cid, per_call[call])
            if tail is None:
                raise UsageError(
                    f"cannot fork {origin!r} here: the sub-agent execution {cid!r} (started by call {call} of "
                    f"{source.old!r}) has a digest for an id, from which the id the fork's copy must have cannot be "
                    f"worked out; fork at step {max(step - 1, 0)} or earlier, before the call that started it"
                )
            names[cid] = sub_agent_id(source.new + tail)
            records = _child_log(store, cid, source.old)
            if records is not None:  # a log that is gone (deleted) is named by its new id, with nothing to copy
                copies.append(ChildCopy(cid, names[cid], source.new, records))
                queue.append(_Source(cid, names[cid], records, step))
    return names, copies


def _first(store: Store, execution_id: str) -> ExecutionStarted | None:
    """The first record of an execution, if there is one and it starts an execution."""
    if not store.exists(execution_id):
        return None
    records = store.read(execution_id, limit=1).records
    first = records[0] if records else None
    return first if isinstance(first, ExecutionStarted) else None


def _child_log(store: Store, execution_id: str, parent: str) -> list[AnyRecord] | None:
    """The records of ``parent``'s sub-agent ``execution_id``, or None when there is no such log (or it is not one)."""
    if not store.exists(execution_id):
        return None
    records = store.read(execution_id).records
    first = records[0] if records else None
    return records if isinstance(first, ExecutionStarted) and first.parent_id == parent else None


def _renamed_id(names: dict[str, str], old: str) -> str | None:
    """The new id of ``old``: known, or derived from the nearest known execution its id extends (a lost log's child)."""
    if old in names:
        return names[old]
    parent = max((k for k in names if old.startswith(k + ":")), key=len, default=None)
    if parent is None:
        return None
    new = sub_agent_id(names[parent] + old[len(parent) :])
    names[old] = new
    return new


def _renamed_message(names: dict[str, str], part: str) -> str:
    """One part of a suspension's message, the sub-agent renamed when it says it waits on one."""
    if not part.startswith(WAITING_FOR_SUB_AGENT):
        return part
    new = _renamed_id(names, part[len(WAITING_FOR_SUB_AGENT) :])
    return part if new is None else WAITING_FOR_SUB_AGENT + new


def rename(records: Sequence[AnyRecord], names: dict[str, str]) -> list[AnyRecord]:
    """The records with every reference to an execution of the origin's tree renamed to the fork's copy.

    A terminal record's tally loses its hash: it was bound to the origin's bytes, not the copy's (a reader then
    folds the copy instead of believing the tally).

    Raises:
        UsageError: a suspension names a sub-agent whose new id cannot be worked out (nothing is written).
    """

    def one(old: str) -> str:
        new = _renamed_id(names, old)
        if new is None:
            raise UsageError(f"cannot fork: a suspension names the sub-agent execution {old!r}, which is not found")
        return new

    out: list[AnyRecord] = []
    for r in records:
        if isinstance(r, ChildSuspended):
            r = msgspec.structs.replace(r, child_id=one(r.child_id))  # noqa: PLW2901 - the record, renamed
        elif isinstance(r, ExecutionSuspended) and any("/" in c.call_id for c in r.reason.calls):
            calls = []
            for c in r.reason.calls:
                child, sep, call = c.call_id.rpartition("/")
                calls.append(msgspec.structs.replace(c, call_id=f"{one(child)}/{call}") if sep else c)
            parts = r.reason.message.split("; ") if r.reason.message else []
            message = "; ".join(_renamed_message(names, p) for p in parts)
            reason = msgspec.structs.replace(r.reason, calls=calls, message=message)
            r = msgspec.structs.replace(r, reason=reason)  # noqa: PLW2901
        elif isinstance(r, ExecutionCompleted | ExecutionCancelled) and r.tally is not None:
            r = msgspec.structs.replace(r, tally=msgspec.structs.replace(r.tally, log_sha256=None))  # noqa: PLW2901
        out.append(r)
    return out


def copied(child: ChildCopy, names: dict[str, str], at: float) -> list[AnyRecord]:
    """The records of a child's copy: its first record names the copy, its parent and the child it copies."""
    first = child.records[0]
    assert isinstance(first, ExecutionStarted)  # copy_children copies only logs that start so
    rest = rename(child.records[1:], names)
    started = msgspec.structs.replace(
        first,
        execution_id=child.new,
        at=at,
        parent_id=child.new_parent,
        forked_from=child.old,
        fork_step=fold(child.records).steps,
        idempotency_key=None,
        fork_resumes=sum(isinstance(r, ExecutionResumed) for r in rest),
    )
    return [started, *rest]


def _leftover(have: Sequence[AnyRecord], records: Sequence[AnyRecord]) -> bool:
    """Whether ``have`` is a copy an earlier fork under the same ids wrote (whole or part) before it crashed."""
    first, want = (have[0] if have else None), records[0]
    assert isinstance(want, ExecutionStarted)
    return (
        isinstance(first, ExecutionStarted)
        and first.forked_from == want.forked_from
        and first.parent_id == want.parent_id
        and len(have) <= len(records)
        and list(have[1:]) == list(records[1 : len(have)])
    )


def conflict(execution_id: str) -> ExecutionIdConflictError:
    """The fork's id is taken (as the store says it when it refuses to create it)."""
    return ExecutionIdConflictError(execution_id, "", "an execution with this id exists already; choose another id")


def _taken(new: str, old: str) -> ExecutionIdConflictError:
    detail = (
        f"an execution with this id exists already, so the fork's copy of the sub-agent execution {old!r} cannot "
        "be made under it; choose another id for the fork"
    )
    return ExecutionIdConflictError(new, "", detail)


def check_free(store: Store, child: ChildCopy, records: Sequence[AnyRecord]) -> None:
    """Raise a conflict unless the copy's id is free or holds what a crashed fork with the same id left of it.

    A fork writes its sub-agents' copies first and itself last, so a crash may leave copies with no fork above
    them; forking again with the same id completes them rather than failing.
    """
    if store.exists(child.new) and not _leftover(store.read(child.new).records, records):
        raise _taken(child.new, child.old)


def place(store: Store, child: ChildCopy, records: Sequence[AnyRecord], fork: str) -> None:
    """Create the copy, or complete what a crashed fork left of it (under its claim, so no one else writes).

    A copy is completed only while the fork itself (``fork``) does not exist: once it does, its copies are
    whole and belong to it.
    """
    with contextlib.suppress(ExecutionIdConflictError):  # there already: a crashed fork's leftover, or a conflict
        store.create(child.new, records)
        return
    log = store.claim(child.new)
    try:
        if store.exists(fork):
            raise conflict(fork)
        if not _leftover(log.records, records):
            raise _taken(child.new, child.old)
        rest = records[len(log.records) :]
        if rest:
            log.append(rest, barrier=True)
    finally:
        log.release()
