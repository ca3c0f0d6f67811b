"""A worker process for the claim stress test: claims executions over and over, proving it owns each alone.

Usage: python claim_worker.py DATA_DIR GO_FILE ROUNDS EXECUTION_ID...

Each round claims one execution (mostly waiting for it, sometimes only trying), and while it holds the claim:
creates the execution's occupancy marker with O_EXCL (it must not exist: nobody else may be inside), bumps a
counter file with a plain read-modify-write (two owners at once would lose an update), appends a pair of
records naming itself (two owners at once would interleave them), then removes the marker and releases.
Prints ``ready`` once set up, waits for GO_FILE to exist, then prints one JSON line: claims per execution, non-blocking tries that found the execution busy, and breaches.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

from delite.errors import ClaimTimeoutError, ExecutionAlreadyClaimedError
from delite.log.records import ExecutionResumed, ExecutionSuspended, SuspendReason
from delite.store import FileStore


def main() -> int:
    data_dir, go, rounds, *ids = sys.argv[1:]
    store = FileStore(data_dir, durability="normal")
    pid = os.getpid()
    rng = random.Random(pid)
    claims = dict.fromkeys(ids, 0)
    busy = 0
    breaches: list[str] = []
    print("ready", flush=True)  # imported and set up: the driver starts everyone at once when all are ready
    deadline = time.monotonic() + 120
    while not os.path.exists(go):  # start together
        if time.monotonic() > deadline:
            raise SystemExit("never told to start")
        time.sleep(0.001)
    for n in range(int(rounds)):
        eid = rng.choice(ids)
        try:
            log = store.claim(eid, timeout=60.0) if rng.random() < 0.8 else store.claim(eid)
        except ExecutionAlreadyClaimedError:
            busy += 1
            continue
        except ClaimTimeoutError:
            breaches.append(f"{eid}: waited 60 s for a claim (a lost wake-up?)")
            continue
        with log:
            marker = os.path.join(data_dir, f"inside-{eid}")
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                breaches.append(f"{eid}: another owner was inside")
            counter = os.path.join(data_dir, f"counter-{eid}")
            with open(counter) as f:
                value = int(f.read())
            log.append([ExecutionResumed(at=n, pid=pid)])
            if rng.random() < 0.3:
                time.sleep(rng.random() / 1000)
            with open(counter, "w") as f:
                f.write(str(value + 1))
            reason = SuspendReason(kind="budget", message=str(pid))
            log.append([ExecutionSuspended(at=n, reason=reason)], barrier=rng.random() < 0.2)
            os.unlink(marker)
            claims[eid] += 1
    print(json.dumps({"pid": pid, "claims": claims, "busy": busy, "breaches": breaches}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
