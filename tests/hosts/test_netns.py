"""The several-hosts harness itself: hosts reach each other and the root namespace, a partition silences
TCP both ways (no reset, no error: nothing), healing restores it, and cleanup leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from _netns import Hosts, leftovers, unavailable

pytestmark = pytest.mark.timeout(120)

SERVER = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((sys.argv[1], int(sys.argv[2])))
    s.listen()
    print("listening", flush=True)
    while True:
        c, addr = s.accept()
        data = c.recv(100)
        c.sendall(b"echo " + data + b" from " + sys.argv[1].encode())
        c.close()
    """
)

CLIENT = textwrap.dedent(
    """
    import socket, sys
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    c.sendall(b"hi")
    print(c.recv(100).decode())
    """
)


def start_server(hosts: Hosts, host: int, port: int) -> subprocess.Popen[str]:
    proc = hosts.popen(host, [sys.executable, "-c", SERVER, hosts.ips[host], str(port)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.communicate()


def connect(hosts: Hosts, host: int, address: str, port: int, timeout: float = 5) -> subprocess.CompletedProcess[str]:
    return hosts.run(host, [sys.executable, "-c", CLIENT, address, str(port), str(timeout)], timeout=timeout + 30)


def test_hosts_reach_each_other_and_the_root_namespace(hosts: Hosts) -> None:
    assert len(set(hosts.ips)) == 3 and hosts.bridge_ip not in hosts.ips
    assert all(ip.startswith("10.") for ip in [hosts.bridge_ip, *hosts.ips])
    server = start_server(hosts, 0, 7001)
    try:
        for client in (1, 2):
            done = connect(hosts, client, hosts.ips[0], 7001)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == f"echo hi from {hosts.ips[0]}"
        # and from the root namespace (where the PostgreSQL server of the chaos tests listens) to a host
        with socket.create_connection((hosts.ips[0], 7001), timeout=5) as c:
            c.sendall(b"root")
            assert c.recv(100) == f"echo root from {hosts.ips[0]}".encode()
    finally:
        stop(server)
    # a host to the root namespace, on the bridge's address
    with socket.socket() as listener:
        listener.bind((hosts.bridge_ip, 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = hosts.popen(2, [sys.executable, "-c", CLIENT, hosts.bridge_ip, str(port), "5"], stdout=subprocess.PIPE)
        conn, (peer, _) = listener.accept()
        with conn:
            assert peer == hosts.ips[2]  # it came from the host's own address
            assert conn.recv(100) == b"hi"
            conn.sendall(b"from root")
        out, _ = client.communicate(timeout=30)
        assert out.strip() == "from root"


def test_a_host_has_its_own_network(hosts: Hosts) -> None:
    done = hosts.run(1, ["ip", "-o", "-4", "addr", "show"])
    assert hosts.ips[1] in done.stdout and hosts.ips[0] not in done.stdout and hosts.bridge_ip not in done.stdout
    assert "192.0.2" not in done.stdout  # none of the machine's own addresses
    done = hosts.run(1, ["ip", "route", "show"])
    assert "default" not in done.stdout  # nowhere to go but the bridge's subnet


def test_a_partition_silences_tcp_both_ways_and_heal_restores_it(hosts: Hosts) -> None:
    server = start_server(hosts, 0, 7002)
    try:
        assert connect(hosts, 1, hosts.ips[0], 7002).returncode == 0
        hosts.partition(1)
        assert hosts.is_partitioned(1)
        started = time.monotonic()
        done = connect(hosts, 1, hosts.ips[0], 7002, timeout=2)
        waited = time.monotonic() - started
        assert done.returncode != 0 and "timed out" in done.stderr, done.stderr  # no RST, no unreachable: nothing
        assert waited >= 1.9
        with pytest.raises(TimeoutError):  # the other way too
            socket.create_connection((hosts.ips[1], 9), timeout=1.5)
        assert connect(hosts, 2, hosts.ips[0], 7002).returncode == 0  # the others are unaffected
        hosts.heal(1)
        assert not hosts.is_partitioned(1)
        done = connect(hosts, 1, hosts.ips[0], 7002)
        assert done.returncode == 0, done.stderr
    finally:
        stop(server)


def test_an_open_connection_sees_nothing_during_a_partition_and_goes_on_after_it(hosts: Hosts) -> None:
    """What a worker's claim connection lives through: no error while cut off, the same socket working after."""
    with socket.socket() as listener:
        listener.bind((hosts.bridge_ip, 0))
        listener.listen()
        port = listener.getsockname()[1]
        chatty = textwrap.dedent(
            """
            import socket, sys, time
            c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
            for i in range(2):
                c.sendall(b"ping%d" % i)
                print(c.recv(100).decode(), flush=True)
                sys.stdin.readline()
            """
        )
        client = hosts.popen(
            0,
            [sys.executable, "-c", chatty, hosts.bridge_ip, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert client.stdin is not None and client.stdout is not None
        conn, _ = listener.accept()
        with conn:
            assert conn.recv(100) == b"ping0"
            hosts.partition(0)
            conn.sendall(b"pong0")  # queued, retransmitted, never delivered while cut off
            client.stdin.write("next\n")
            client.stdin.flush()
            conn.settimeout(1.5)
            with pytest.raises(TimeoutError):
                conn.recv(100)  # the client's ping1 does not arrive either
            hosts.heal(0)
            conn.settimeout(30)
            assert conn.recv(100) == b"ping1"  # TCP retransmission delivers both ways once healed
            assert client.stdout.readline().strip() == "pong0"
            conn.sendall(b"pong1")
            assert client.stdout.readline().strip() == "pong1"
        client.stdin.write("end\n")
        client.stdin.flush()
        client.communicate(timeout=30)
        assert client.returncode == 0


def test_partitioned_restores_on_exception(hosts: Hosts) -> None:
    seen = []

    def fail() -> None:
        with hosts.partitioned(2):
            seen.append(hosts.is_partitioned(2))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail()
    assert seen == [True]
    assert not hosts.is_partitioned(2)
    out = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True, check=True).stdout
    assert "blackhole" not in out


def test_close_kills_what_runs_inside_and_leaves_nothing() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    hosts = Hosts(2)
    names = [*hosts.namespaces, hosts.bridge]
    sleeper = hosts.popen(1, [sys.executable, "-c", "import time; time.sleep(600)"])
    deadline = time.monotonic() + 10
    while sleeper.pid not in hosts.pids(1):  # ip netns exec enters the namespace, then execs python
        assert time.monotonic() < deadline
        time.sleep(0.02)
    hosts.partition(0)
    assert hosts.leftovers()  # it exists
    hosts.close()
    assert sleeper.wait(timeout=10) == -signal.SIGKILL  # killed by close, not by this test
    assert hosts.leftovers() == []
    assert not any(name in item for item in leftovers(os.getpid()) for name in names)
    hosts.close()  # twice is fine


def test_a_failing_test_process_leaves_nothing_behind(tmp_path: object) -> None:
    """A test process that raises inside ``with Hosts(...)``, or one that exits without closing, cleans up."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    script = textwrap.dedent(
        """
        import os, sys
        sys.path.insert(0, sys.argv[1])
        from _netns import Hosts
        print(os.getpid(), flush=True)
        if sys.argv[2] == "raise":
            with Hosts(2) as hosts:
                hosts.partition(1)
                raise SystemExit(3)
        hosts = Hosts(2)   # never closed: atexit does it
        sys.exit(4)
        """
    )
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for way, code in (("raise", 3), ("exit", 4)):
        done = subprocess.run(
            [sys.executable, "-c", script, tests, way], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == code, done.stderr
        pid = int(done.stdout.split()[0])
        assert leftovers(pid) == []


def test_a_killed_test_process_leftovers_are_swept_by_the_next() -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    script = textwrap.dedent(
        """
        import os, sys, time
        sys.path.insert(0, sys.argv[1])
        from _netns import Hosts
        hosts = Hosts(1)
        print(os.getpid(), flush=True)
        time.sleep(600)
        """
    )
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", script, tests], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    assert leftovers(pid)  # created
    stop(proc)  # SIGKILL: no atexit, no finally
    assert leftovers(pid)  # still there
    with Hosts(1):
        assert leftovers(pid) == []  # swept by the next one
