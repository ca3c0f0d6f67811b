"""A small driver for headless Chromium over the DevTools protocol, on a pipe (``--remote-debugging-pipe``).

No dependency: Chromium reads commands on its fd 3 and writes replies and events on its fd 4, each a JSON
message ended by a NUL byte. Each :class:`Browser` is its own Chromium process with its own profile (so its
own cookies); :meth:`Browser.page` opens a tab. Clicks and typing are real input events at the element's place.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from typing import Any


def chromium() -> str | None:
    """The system's Chromium (Debian's ``chromium``), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium process."""

    def __init__(self) -> None:
        exe = chromium()
        assert exe is not None, "no chromium"
        self.profile = tempfile.mkdtemp(prefix="delite-chromium-")
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        # move the child's ends above 10, so putting them at 3 and 4 cannot clobber one with the other
        child_in, child_out = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(out_w, fcntl.F_DUPFD, 10)
        os.close(cmd_r)
        os.close(out_w)
        # a tiny Python step puts them at 3 and 4, where Chromium looks, then becomes Chromium
        wire = "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); os.execv(sys.argv[3], sys.argv[3:])"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                wire,
                str(child_in),
                str(child_out),
                exe,
                exe,
                "--headless=new",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
                "--window-size=1280,900",
                f"--user-data-dir={self.profile}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(child_in, child_out),
        )
        os.close(child_in)
        os.close(child_out)
        self._w = cmd_w
        self._r = out_r
        self._next = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.call("Target.setDiscoverTargets", discover=True)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                with self._cond:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.events.append(msg)
                    self._cond.notify_all()

    def call(self, method: str, session: str | None = None, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply's result."""
        with self._lock:
            self._next += 1
            ident = self._next
            msg: dict[str, Any] = {"id": ident, "method": method, "params": params}
            if session is not None:
                msg["sessionId"] = session
            os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise CdpError(f"no reply to {method}")
                self._cond.wait(left)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def page(self) -> Page:
        """A new tab."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        return Page(self, session)

    def close(self) -> None:
        with contextlib.suppress(CdpError):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        self._reader.join(timeout=5)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab: navigate, evaluate, click, type, screenshot; the events of its session are kept."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.call(method, self.session, **params)

    def events(self, method: str) -> list[dict[str, Any]]:
        """The events of this tab with this method, so far."""
        with self.browser._cond:
            return [e for e in self.browser.events if e.get("sessionId") == self.session and e["method"] == method]

    def goto(self, url: str) -> None:
        """Open ``url`` and wait until its document has loaded."""
        before = len(self.events("Page.loadEventFired"))
        self.call("Page.navigate", url=url)
        self.wait(lambda: len(self.events("Page.loadEventFired")) > before, f"load of {url}")
        self.wait_for("document.readyState === 'complete'")

    def follow(self, selector: str) -> None:
        """Click something that opens another page, and wait until that page has loaded."""
        before = len(self.events("Page.loadEventFired"))
        self.click(selector)
        self.wait(lambda: len(self.events("Page.loadEventFired")) > before, f"the page {selector} opens")
        self.wait_for("document.readyState === 'complete'")

    def js(self, expression: str) -> Any:
        """Evaluate in the page (promises awaited) and return the value."""
        got = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in got:
            raise CdpError(f"{expression}: {got['exceptionDetails']}")
        return got["result"].get("value")

    def wait(self, check: Any, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise CdpError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        """Wait until ``expression`` is truthy in the page; return its value."""
        found: list[Any] = []

        def check() -> bool:
            value = self.js(expression)
            found[:] = [value]
            return bool(value)

        self.wait(check, expression, timeout)
        return found[0]

    def _center(self, selector: str) -> tuple[float, float]:
        box = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; })()"
        )
        if not box or box[2] <= 0 or box[3] <= 0:
            raise CdpError(f"nothing visible at {selector}")
        return box[0], box[1]

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element."""
        x, y = self._center(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type(self, selector: str, text: str) -> None:
        """Click into a field and type into it."""
        self.click(selector)
        self.call("Input.insertText", text=text)

    def screenshot(self) -> bytes:
        """The visible page, as PNG bytes."""
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])


def png_colours(png: bytes) -> int:
    """How many distinct pixel values the PNG's first rows hold (a blank page has one)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, _depth, colour = struct.unpack(">IIBB", body[:10])
            channels = {2: 3, 6: 4, 0: 1, 4: 2}.get(colour, 4)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    seen: set[bytes] = set()
    for row in range(min(height, 600)):
        line = raw[row * stride + 1 : (row + 1) * stride]  # the filter byte left out: a value per pixel, roughly
        for col in range(0, len(line), channels * 7):
            seen.add(line[col : col + channels])
    return len(seen)
