"""The per-step cancel check of the file store: no system call while no cancel was requested, and a request
made by another process is seen at the next step boundary."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from delite import Agent, ScriptedProvider, Status, tool
from delite.providers import call
from delite.store import FileStore
from delite.store._cancels import GENERATION

STEPS = 60

RUN = textwrap.dedent(
    """
    import sys
    from delite import Agent, ScriptedProvider, tool
    from delite.providers import call

    @tool
    def step(n: int) -> int:
        return n

    script = [call("step", n=i) for i in range({steps})] + ["done"]
    agent = Agent(sys.argv[1], provider=ScriptedProvider(script), tools=[step], durability="off")
    print(agent.run("go", execution_id="e1").answer)
    """
)


def test_the_cancel_check_makes_no_system_call_per_step(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed: the system calls per step cannot be counted")
    script = tmp_path / "run.py"
    script.write_text(RUN.format(steps=STEPS))
    trace = tmp_path / "trace"
    data = tmp_path / "data"
    probe = subprocess.run([strace, "-f", "-o", str(trace), "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode(errors='replace').strip()[:200]}")
    out = subprocess.run(
        [strace, "-f", "-e", "trace=%file", "-o", str(trace), sys.executable, str(script), str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "done"
    looks = [line for line in trace.read_text().splitlines() if "e1.cancel" in line or "signals" in line]
    # before: an lstat of the marker at every step boundary (more than STEPS); now a look when the run starts
    # (and once a second at most), whatever the number of steps
    assert len(looks) < 10, looks


def test_the_cancel_check_looks_at_no_file_per_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same property as above without strace: every file-system call that names a path is counted while a
    # run of STEPS steps goes on, and those that look at the signals (markers or the generation) are few.
    import os

    looks: list[str] = []

    def counted(name: str) -> None:
        real = getattr(os, name)

        def wrapper(path: object, *args: object, **kwargs: object) -> object:
            if "signals" in os.fsdecode(path) if isinstance(path, str | bytes | os.PathLike) else False:
                looks.append(f"{name} {path}")
            return real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, wrapper)

    @tool
    def step(n: int) -> int:
        return n

    script = [call("step", n=i) for i in range(STEPS)] + ["done"]
    agent = Agent(str(tmp_path / "data"), provider=ScriptedProvider(script), tools=[step], durability="off")
    for name in ("stat", "lstat", "open", "access", "listdir", "scandir"):
        counted(name)
    assert agent.run("go", execution_id="e1").answer == "done"
    assert len(looks) < 10, looks  # a look when the run starts (and once a second at most), not one per step


def test_a_cancel_from_another_process_is_seen_at_the_next_step(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    seen: list[int] = []

    @tool
    def step(n: int) -> int:
        seen.append(n)
        if n == 3:  # another process asks, while this run is inside a step
            code = "import sys; from delite.store import FileStore; FileStore(sys.argv[1]).request_cancel('e1')"
            subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
        return n

    script = [call("step", n=i) for i in range(10)] + ["done"]
    agent = Agent(store=store, provider=ScriptedProvider(script), tools=[step])
    for _ in range(3):  # the cache of "no marker" is warm: several runs and checks happened before
        assert not store.cancel_requested("e1")
    response = agent.run("go", execution_id="e1")
    assert response.status is Status.CANCELLED
    assert seen == [0, 1, 2, 3]
    assert (tmp_path / "signals" / GENERATION).is_file()


def test_a_marker_made_by_hand_is_seen_within_the_recheck(tmp_path: Path) -> None:
    from delite.store import _cancels

    store = FileStore(tmp_path)
    store.request_cancel("e2")
    store.clear_cancel("e2")
    assert not store.cancel_requested("e1")
    (tmp_path / "signals" / "e1.cancel").touch()  # no generation change
    store._cancels.next_look = 0.0  # the recheck is due (as after RECHECK seconds)
    assert _cancels.RECHECK <= 1.0
    assert store.cancel_requested("e1")
    assert store.cancels_requested(["e1", "e2"]) == {"e1"}


def test_a_warm_check_of_a_known_id_skips_the_second_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The per-step fast path: an id a look found without a marker at this generation is answered before it
    # is validated again (it was validated when first looked at); anything else still goes through validation.
    from delite.store import _file

    store = FileStore(tmp_path)
    store.request_cancel("other")  # a generation file exists: the cache is used
    assert not store.cancel_requested("e1")
    validated: list[object] = []
    real = _file.validate_execution_id

    def counting(execution_id: str) -> str:
        validated.append(execution_id)
        return real(execution_id)

    monkeypatch.setattr(_file, "validate_execution_id", counting)
    for _ in range(100):
        assert not store.cancel_requested("e1")
    assert validated == []
    assert store.cancel_requested("other")  # not known to be clear: validated and looked at
    assert validated == ["other"]
    with pytest.raises(ValueError):
        store.cancel_requested("../e1")  # never known, so always validated
    store.request_cancel("e1")  # a new generation: the known ids are forgotten
    assert store.cancel_requested("e1")
