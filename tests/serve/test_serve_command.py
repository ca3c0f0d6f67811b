"""The ``delite serve`` command as a real process: what it prints, the token, its exit codes, a clean stop."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import TOKEN, populate

CLI = Path(__file__).resolve().parents[1] / "cli"


def start(data: Path, *args: str, token: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DELITE_SERVE_TOKEN", "DELITE_AGENT")}
    env["PYTHONPATH"] = os.pathsep.join([str(CLI), *sys.path])
    if token is not None:
        env["DELITE_SERVE_TOKEN"] = token
    return subprocess.Popen(
        [sys.executable, "-m", "delite_cli", "serve", "--data-dir", str(data), "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def get(url: str, token: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - a loopback URL
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    populate(str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_prints_a_fresh_token_and_stops_cleanly(data: Path, stop: signal.Signals) -> None:
    proc = start(data)
    assert proc.stdout is not None
    first, second, third = (proc.stdout.readline() for _ in range(3))
    base = re.search(r" on (http://127\.0\.0\.1:\d+/)$", first.strip())
    assert base is not None, first
    opened = re.search(r"^open (http://127\.0\.0\.1:\d+/)\?token=(\S+)$", second.strip())
    assert opened is not None and opened.group(1) == base.group(1), second
    assert "no --agent" in third
    token = opened.group(2)
    assert len(token) >= 16
    status, body = get(base.group(1) + "api/executions", token)
    assert status == 200 and json.loads(body)["total"] == 8
    assert get(base.group(1) + "api/executions", "x" * 32)[0] == 401
    # an open event stream (a browser on a waiting execution) does not hold the stop up
    stream = http.client.HTTPConnection("127.0.0.1", int(base.group(1).rsplit(":", 1)[1].rstrip("/")), timeout=10)
    stream.request("GET", "/api/executions/client-1/stream", headers={"authorization": f"Bearer {token}"})
    opened_stream = stream.getresponse()
    assert opened_stream.status == 200 and opened_stream.read1(65536).startswith(b"retry:")
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=20)
    # Ctrl-C stops it with exit 0; SIGTERM ends it by the signal, as uvicorn passes it on to a supervisor
    assert proc.returncode == (0 if stop == signal.SIGINT else -signal.SIGTERM), err
    stream.close()
    assert "Traceback" not in err and "Aborted" not in err and "ERROR" not in err, err
    if stop == signal.SIGINT:
        assert out.strip().endswith("delite serve: stopped")


def test_the_token_from_the_environment_is_not_printed(data: Path) -> None:
    proc = start(data, "--agent", "scenario_agent:build", token=TOKEN)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    assert all(TOKEN not in line for line in lines), lines
    assert "DELITE_SERVE_TOKEN" in lines[1] and "advanced by the agent 'ops'" in lines[2]
    base = lines[0].split(" on ")[1].strip()
    status, body = get(base + "api/executions/approve-1", TOKEN)
    assert status == 200 and json.loads(body)["pending"] == ["c1.0"]
    proc.terminate()
    proc.communicate(timeout=20)


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        ((), "short", "at least 16"),
        (("--agent", "nowhere_module:build"), TOKEN, "cannot import 'nowhere_module'"),
        (("--host", "not a host name"), TOKEN, "cannot listen on"),
    ],
)
def test_usage_errors_exit_2(data: Path, args: tuple[str, ...], token: str, message: str) -> None:
    proc = start(data, *args, token=token)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, (out, err)
    assert message in err and "Traceback" not in err, err


def test_a_port_in_use_is_a_usage_error(data: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = str(taken.getsockname()[1])
        env = {**os.environ, "DELITE_SERVE_TOKEN": TOKEN}
        done = subprocess.run(
            [sys.executable, "-m", "delite_cli", "serve", "--data-dir", str(data), "--port", port],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        taken.close()
    assert done.returncode == 2 and "cannot listen on 127.0.0.1:" in done.stderr, done.stderr
