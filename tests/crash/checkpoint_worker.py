"""A worker for the fold checkpoint crash tests: a long run that kills itself at a chosen point, or resumes.

Usage: python checkpoint_worker.py DATA_DIR MODE K

MODE is one of:
  none              run (or resume) to the end, then print the outcome as JSON
  no-checkpoints    the same with fold checkpoints turned off (the reference)
  mid-checkpoint    write half of the K-th checkpoint save, then SIGKILL (the first one: a half-written temporary
                    file; later ones: half a save appended to the file)
  after-checkpoint  SIGKILL right after the K-th checkpoint save is in place
  tool-before       SIGKILL inside the K-th tool body, before its side effect
  tool-after        SIGKILL inside the K-th tool body, after its side effect
  after-completion  SIGKILL once the terminal record is written, before the outcome is offered to the store (a
                    snapshot saved, if the log's tally cannot answer, and the fold checkpoint, of no more use,
                    removed)
  after-snapshot    the same run, its log taken for one whose tally cannot answer (as a log written before
                    tallies): SIGKILL once its snapshot is saved, before the fold checkpoint is removed
  wait              run to the end slowly (the test kills it at a random moment)
The side effect is a line in DATA_DIR/ledger.txt: "<idempotency key> <attempt>".
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from delite import Agent, ScriptedProvider, current_call, tool
from delite.log import _os as log_os
from delite.log import read_log
from delite.state import fold
from delite.store import _file

STEPS = 160
PAD = "p" * 700


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    data_dir, mode, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ledger = Path(data_dir) / "ledger.txt"
    saves = {"n": 0}
    calls = {"n": 0}
    if mode == "no-checkpoints":
        _file.MIN_CHECKPOINT_LOG = 1 << 62  # type: ignore[misc]
    real_write = log_os.write_all

    def write_all(fd: int, data: bytes | memoryview) -> None:
        head = bytes(data[:19])
        whole = head == b"delite-checkpoint/3"  # the first piece of a checkpoint file written whole
        appended = head.startswith(b"S ") and os.readlink(f"/proc/self/fd/{fd}").endswith(".ckpt")  # one save
        if whole or appended:
            saves["n"] += 1
            if mode == "mid-checkpoint" and saves["n"] == k:
                real_write(fd, data[: len(data) // 2])
                die()
        real_write(fd, data)

    log_os.write_all = write_all
    real_save = _file.CheckpointWriter.save

    def save(self: _file.CheckpointWriter, *args: Any) -> bool:
        done = real_save(self, *args)
        if mode == "after-checkpoint" and saves["n"] == k:
            die()
        return done

    _file.CheckpointWriter.save = save  # type: ignore[method-assign]
    real_load = _file.load_checkpoint

    def load(*args: Any, **kwargs: Any) -> Any:
        found = real_load(*args, **kwargs)
        if found is not None:  # a claim that used a checkpoint: said for the test
            with (Path(data_dir) / "hits.txt").open("a") as f:
                f.write(f"{found.size}\n")
        return found

    _file.load_checkpoint = load
    real_save_outcome = _file.FileExecutionLog.save_outcome

    def save_outcome(self: _file.FileExecutionLog, outcome: Any) -> None:
        if mode == "after-completion":
            die()
        real_save_outcome(self, outcome)

    _file.FileExecutionLog.save_outcome = save_outcome  # type: ignore[method-assign]
    real_save_snapshot = _file.save_snapshot

    def save_snapshot(*args: Any, **kwargs: Any) -> None:
        real_save_snapshot(*args, **kwargs)
        if mode == "after-snapshot":
            die()

    _file.save_snapshot = save_snapshot
    if mode == "after-snapshot":
        _file._tally.tells = lambda *args, **kwargs: False

    @tool
    def step(i: int) -> dict[str, Any]:
        """One step with a side effect."""
        calls["n"] += 1
        if mode == "tool-before" and calls["n"] == k:
            die()
        ctx = current_call()
        with ledger.open("a") as f:
            f.write(f"{ctx.idempotency_key} {ctx.attempt}\n")
            f.flush()
            os.fsync(f.fileno())
        if mode == "tool-after" and calls["n"] == k:
            die()
        if mode == "wait":
            time.sleep(0.002)
        return {"i": i, "pad": PAD}

    provider = ScriptedProvider.tool_loop(STEPS, "step")
    with Agent(data_dir, provider=provider, tools=[step], durability="normal") as agent:
        r = agent.run("do the steps", execution_id="job")
    state = fold(read_log(os.path.join(data_dir, "executions", "job.log")).records)
    conversation = hashlib.sha256(json.dumps(state.messages, sort_keys=True).encode()).hexdigest()
    print(json.dumps({"status": r.status, "answer": r.answer, "steps": r.steps, "conversation": conversation}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
