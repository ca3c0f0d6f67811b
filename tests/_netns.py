"""Several "hosts" on one machine for the tests: Linux network namespaces joined by a bridge.

:class:`Hosts` creates N network namespaces, each joined by a veth pair to a bridge in the root namespace on a
private ``10.x.y.0/24`` subnet it picks (one no route of the machine uses). The root namespace is the bridge's
address (``Hosts.bridge_ip``, ``10.x.y.1``), so a server started there and listening on that address (the
throwaway PostgreSQL server of ``tests/_pg.py``) is reached by every host as if over a network; host ``i`` is
``10.x.y.(i+2)``. Commands run inside a host with ``ip netns exec``.

:meth:`Hosts.partition` cuts one host off: its bridge-side link is set down and both ends of its veth pair
get a ``blackhole`` queueing discipline, which drops every packet silently, so TCP on either side sees
nothing at all (no reset, no unreachable error: a cable pulled somewhere on the way) and only its own
timeouts and keepalives can tell. :meth:`Hosts.heal` restores the link. Only ``iproute2`` (``ip`` and ``tc``)
is needed: no ``netem`` (often not built into small kernels), no ``iptables``.

Everything is removed by :meth:`Hosts.close` (also on ``with`` exit and at interpreter exit): the processes
still running in the namespaces are SIGKILLed, then the links, the bridge and the namespaces are deleted.
Leftovers of a test process that died before cleaning up (named after its pid) are removed by the next one.

:func:`unavailable` says why none of this can work here (not root, no ``ip``, namespaces refused), so that
tests can skip with the reason. On Debian and Ubuntu ``ip`` and ``tc`` come with the package ``iproute2``.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any, Self

__all__ = ["Hosts", "NetnsError", "leftovers", "unavailable"]

_PREFIX = "delite-"  # namespace names: delite-<pid>-h<i>
_NS_RE = re.compile(r"^delite-(\d+)-h\d+$")
_LINK_RE = re.compile(r"^dl(\d+)[bh]\d*$")  # bridge dl<pid>b, host ends dl<pid>h<i>


class NetnsError(RuntimeError):
    """An ``ip`` or ``tc`` command failed; the message has its output."""


def _ip(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _tc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["tc", *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise NetnsError(f"tc {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


_probed: dict[str, str | None] = {}  # the one probe's answer, once made


def unavailable() -> str | None:
    """Why namespaces cannot be used here (None: they can). Probed once per process."""
    if "reason" not in _probed:
        _probed["reason"] = _probe()
    return _probed["reason"]


def _probe() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"no '{tool}' command (apt-get install iproute2)"
    name = f"{_PREFIX}{os.getpid()}-h999"
    bridge = f"dl{os.getpid()}b"
    try:
        _ip("netns", "add", name)
    except (NetnsError, OSError, subprocess.SubprocessError) as e:
        return f"network namespaces are not available: {e}"
    try:
        _ip("link", "add", bridge, "type", "bridge")
        try:
            _tc("qdisc", "add", "dev", bridge, "root", "blackhole")
        finally:
            _ip("link", "del", bridge, check=False)
    except (NetnsError, OSError, subprocess.SubprocessError) as e:
        return f"bridges or the blackhole qdisc are not available: {e}"
    finally:
        _ip("netns", "del", name, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _links() -> list[str]:
    out = _ip("-o", "link", "show", check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def leftovers(pid: int | None = None) -> list[str]:
    """The namespaces and links of this harness that exist now (of process ``pid`` only, when given)."""
    found = []
    for ns in _namespaces():
        m = _NS_RE.match(ns)
        if m and (pid is None or int(m.group(1)) == pid):
            found.append(f"netns {ns}")
    for link in _links():
        m = _LINK_RE.match(link)
        if m and (pid is None or int(m.group(1)) == pid):
            found.append(f"link {link}")
    return found


def _kill_in(ns: str) -> None:
    """SIGKILL every process in namespace ``ns`` (all of them started in it by this harness's user)."""
    for _ in range(50):
        pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split() if p.isdigit()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _remove(pid: int) -> None:
    """Remove everything named after test process ``pid``."""
    for ns in _namespaces():
        m = _NS_RE.match(ns)
        if m and int(m.group(1)) == pid:
            _kill_in(ns)
            _ip("netns", "del", ns, check=False)
    for link in _links():
        m = _LINK_RE.match(link)
        if m and int(m.group(1)) == pid:
            _ip("link", "del", link, check=False)


def _sweep_dead() -> None:
    """Remove the leftovers of earlier test processes that are no longer alive."""
    pids = set()
    for item in leftovers():
        m = re.search(r"(\d+)", item.split(" ", 1)[1])
        if m:
            pids.add(int(m.group(1)))
    for pid in pids:
        if pid != os.getpid() and not _alive(pid):
            _remove(pid)


def _used_networks() -> list[ipaddress.IPv4Network]:
    nets = []
    for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast"):
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            if word != "default":
                nets.append(ipaddress.IPv4Network(word, strict=False))
    return nets


def _pick_subnet(serial: int) -> ipaddress.IPv4Network:
    """A free 10.x.y.0/24 that no route of the machine overlaps, varied by pid and ``serial``."""
    used = _used_networks()
    start = (os.getpid() * 7 + serial * 131) % (200 * 250)
    for k in range(200 * 250):
        n = (start + k) % (200 * 250)
        net = ipaddress.IPv4Network(f"10.{50 + n // 250}.{n % 250}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetnsError("no free 10.x.y.0/24 subnet")


class Hosts:
    """N network namespaces ("hosts") on a bridge in the root namespace; see the module's docstring.

    Use as a context manager (or call :meth:`close`)::

        with Hosts(3) as hosts:
            hosts.run(0, ["python3", "-c", "..."])      # runs inside host 0
            hosts.partition(2)                         # host 2 cut off
            hosts.heal(2)
    """

    _serial = 0

    def __init__(self, n: int) -> None:
        """Create ``n`` hosts (1 to 200). Raises :class:`NetnsError` if the kernel or ``ip`` refuses."""
        if not 1 <= n <= 200:
            raise ValueError(f"n must be 1..200, not {n}")
        reason = unavailable()
        if reason is not None:
            raise NetnsError(reason)
        _sweep_dead()
        Hosts._serial += 1
        pid = os.getpid()
        self.n = n
        self.tag = f"{pid}-{Hosts._serial}"
        self.network = _pick_subnet(Hosts._serial)
        addrs = list(self.network.hosts())
        self.bridge_ip = str(addrs[0])
        self.ips = [str(addrs[i + 1]) for i in range(n)]
        # Names carry the pid (for the sweep of a dead test process) and a serial (several Hosts in one process).
        serial = Hosts._serial
        self.bridge = f"dl{pid}b{serial}"
        self.namespaces = [f"{_PREFIX}{pid}-h{serial * 1000 + i}" for i in range(n)]
        self._links = [f"dl{pid}h{serial * 1000 + i}" for i in range(n)]
        if any(len(name) > 15 for name in [self.bridge, *self._links]):
            raise NetnsError(f"interface names too long for pid {pid}")
        self._cut: set[int] = set()
        self._closed = False
        atexit.register(self.close)
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        prefix = self.network.prefixlen
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.bridge_ip}/{prefix}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, (ns, link) in enumerate(zip(self.namespaces, self._links, strict=True)):
            _ip("netns", "add", ns)
            _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", link, "master", self.bridge)
            _ip("link", "set", link, "up")
            _ip("-n", ns, "addr", "add", f"{self.ips[i]}/{prefix}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        self.wait_reachable()

    def wait_reachable(self, timeout: float = 10.0) -> None:
        """Wait until every host's link is up on both ends (the bridge forwards at once: no STP)."""
        deadline = time.monotonic() + timeout
        for i, ns in enumerate(self.namespaces):
            while True:
                state = _ip("-n", ns, "-o", "link", "show", "eth0", check=False).stdout
                if "LOWER_UP" in state and ",UP" in state:
                    break
                if time.monotonic() > deadline:
                    raise NetnsError(f"host {i}'s link did not come up: {state.strip()}")
                time.sleep(0.02)

    # -- running things inside a host --------------------------------------------------------------------------

    def command(self, host: int, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run inside host ``host``'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[host], *argv]

    def run(self, host: int, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside host ``host`` to the end (``subprocess.run`` keywords; text output by default)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 120)
        check = bool(kwargs.pop("check", False))
        done: subprocess.CompletedProcess[str] = subprocess.run(self.command(host, argv), check=check, **kwargs)
        return done

    def popen(self, host: int, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start ``argv`` inside host ``host``; ``ip netns exec`` execs it, so the pid is the command's own."""
        kwargs.setdefault("text", True)
        proc: subprocess.Popen[str] = subprocess.Popen(self.command(host, argv), **kwargs)
        return proc

    def pids(self, host: int) -> list[int]:
        """The processes running inside host ``host`` now."""
        out = _ip("netns", "pids", self.namespaces[host], check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    # -- partitions ---------------------------------------------------------------------------------------------

    def partition(self, host: int) -> None:
        """Cut host ``host`` off the network: every packet to or from it is dropped silently from now on."""
        if host in self._cut:
            return
        link, ns = self._links[host], self.namespaces[host]
        _tc("qdisc", "add", "dev", link, "root", "blackhole")
        _ip("netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "blackhole")
        _ip("link", "set", link, "down")
        self._cut.add(host)

    def heal(self, host: int) -> None:
        """Restore host ``host``'s link (connections that did not time out meanwhile go on)."""
        if host not in self._cut:
            return
        link, ns = self._links[host], self.namespaces[host]
        _ip("link", "set", link, "up")
        _tc("qdisc", "del", "dev", link, "root", check=False)
        _ip("netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
        self._cut.discard(host)
        self.wait_reachable()

    @contextlib.contextmanager
    def partitioned(self, host: int) -> Iterator[None]:
        """Host ``host`` cut off for the ``with`` block, restored after it (even on an exception)."""
        self.partition(host)
        try:
            yield
        finally:
            if not self._closed:
                self.heal(host)

    def is_partitioned(self, host: int) -> bool:
        """Whether host ``host`` is cut off now."""
        return host in self._cut

    # -- clean up -----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Kill what still runs in the hosts, then delete the links, the bridge and the namespaces. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        for ns in self.namespaces:
            with contextlib.suppress(Exception):
                _kill_in(ns)
        for link in [*self._links, self.bridge]:
            with contextlib.suppress(Exception):
                _ip("link", "del", link, check=False)
        for ns in self.namespaces:
            with contextlib.suppress(Exception):
                _ip("netns", "del", ns, check=False)

    def leftovers(self) -> list[str]:
        """What of this instance still exists (nothing, after :meth:`close`)."""
        existing_ns = set(_namespaces())
        existing_links = set(_links())
        return [f"netns {ns}" for ns in self.namespaces if ns in existing_ns] + [
            f"link {link}" for link in [*self._links, self.bridge] if link in existing_links
        ]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
