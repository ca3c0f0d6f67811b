"""A process that only asks: whether executions are claimed, which are recoverable, what they are, in a tight loop.

Usage: python probe_worker.py WHERE STOP_FILE EXECUTION_ID...

Prints ``ready`` once its store is open, then asks until STOP_FILE exists and prints how many times it asked.
"""

from __future__ import annotations

import os
import sys

from delite.store import open_store


def main() -> int:
    where, stop, *ids = sys.argv[1:]
    store = open_store(where)
    print("ready", flush=True)
    asked = 0
    while not os.path.exists(stop):
        for eid in ids:
            store.is_claimed(eid)
            asked += 1
        list(store.recoverable())
        asked += 1
    print(asked, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
