"""A child for test_seam_kill.py: claims an execution and appends fenced records until it is killed.

Usage: seam_worker.py DATA_DIR EXECUTION_ID MODE. MODE ``hold`` appends three records then waits on stdin with
the claim held; ``loop`` appends one record at a time, each fenced by the head, forever. Both print
``ready <head>`` once the claim is theirs.
"""

from __future__ import annotations

import sys

from delite.log.records import ExecutionStarted, ModelResponded
from delite.store import FileStore


def main() -> None:
    data_dir, eid, mode = sys.argv[1:4]
    store = FileStore(data_dir)
    log = store.claim(eid, create=[ExecutionStarted(at=1.0, execution_id=eid, input="x")])
    step = log.head
    for _ in range(3):
        log.append([ModelResponded(at=2.0, step=step, content=f"step {step}")], expected=log.head)
        step += 1
    print(f"ready {log.head}", flush=True)
    if mode == "hold":
        sys.stdin.read()
        return
    while True:
        log.append([ModelResponded(at=2.0, step=step, content=f"step {step}")], expected=log.head)
        step += 1


if __name__ == "__main__":
    main()
