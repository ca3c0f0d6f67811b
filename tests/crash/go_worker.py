"""A process that calls ``rt.go()`` once, for the tests of ``go()``'s durability and of the exit warning.

Usage: python go_worker.py DATA_DIR hang    print the id once go() returned, then wait to be killed
       python go_worker.py DATA_DIR exit    print the id and let the script end with the run in flight
       python go_worker.py DATA_DIR memory  the same, with a Runtime on a MemoryStore
       python go_worker.py DATA_DIR clean   a model that answers; wait for the run and shut down, then end

Otherwise the model takes an hour to answer: the run is in flight whenever the test looks.
"""

from __future__ import annotations

import sys
import threading

from delite import Agent, Runtime, ScriptedProvider
from delite.store import MemoryStore


def main() -> int:
    data_dir, mode = sys.argv[1:]
    # The same provider as the test's recovering Runtime (no configuration drift), but an hour slow.
    provider = ScriptedProvider(["done"]) if mode == "clean" else ScriptedProvider(["answered"], delay=3600)
    if mode == "memory":
        store = MemoryStore()
        rt = Runtime(store=store)
        agent = Agent(store=store, runtime=rt, agent_id="waiter", provider=provider)
    else:
        rt = Runtime(data_dir)
        agent = Agent(data_dir, runtime=rt, agent_id="waiter", provider=provider)
    eid = rt.go(agent, "answer me")
    print(eid, flush=True)
    if mode == "hang":
        threading.Event().wait()
    if mode == "clean":
        rt.wait(eid, timeout=60)
        rt.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
