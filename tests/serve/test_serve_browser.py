"""``delite serve`` in a real browser: Debian's headless Chromium, driven over the DevTools protocol.

The server is the real command (``python -m delite_cli serve``) in its own process, with the CLI's scenario
agent (``--agent scenario_agent:build``), on a data directory. The tests open the list, open a suspended
execution, approve it and watch it complete without a reload; make two browsers approve at once (one wins,
the other is told plainly); and render hostile content, which must stay text. Every page is checked for a
non-empty screenshot and for no script error or Content-Security-Policy violation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scenario_agent
from cdp import Browser, Page, chromium, png_colours
from conftest import TOKEN, Server, make_store, populate

from delite import Agent, ScriptedProvider
from delite_cli._serve import ServeConfig

pytestmark = pytest.mark.skipif(chromium() is None, reason="needs Debian's chromium (installed by .ci/run)")

CLI = Path(__file__).resolve().parents[1] / "cli"
HOSTILE_IMG = "<img src=x onerror=\"document.title='owned'\">"


class Served:
    def __init__(self, data: Path, *, agent: bool) -> None:
        env = {**os.environ, "DELITE_SERVE_TOKEN": TOKEN, "PYTHONPATH": os.pathsep.join([str(CLI), *sys.path])}
        args = [sys.executable, "-m", "delite_cli", "serve", "--data-dir", str(data), "--port", "0"]
        if agent:
            args += ["--agent", "scenario_agent:build"]
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert " on http://127.0.0.1:" in first, first + self.proc.stderr.read() if self.proc.stderr else ""
        self.base = first.split(" on ", 1)[1].strip().rstrip("/")
        self.lines = [first, self.proc.stdout.readline(), self.proc.stdout.readline()]

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.fixture
def data(tmp_path: Path) -> Path:
    where = tmp_path / "data"
    populate(str(where))
    Agent(str(where), provider=ScriptedProvider([HOSTILE_IMG + " answer"]), agent_id="<b>agent</b>").run(
        HOSTILE_IMG, execution_id="hostile-2", metadata={"note": "<svg onload=\"document.title='svg'\">"}
    )
    return where


@pytest.fixture
def served(data: Path) -> Iterator[Served]:
    s = Served(data, agent=True)
    yield s
    err = s.stop()
    assert "Traceback" not in err, err


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()


def login(page: Page, served: Served, path: str = "/") -> None:
    page.goto(f"{served.base}{path}{'&' if '?' in path else '?'}token={TOKEN}")
    assert "token=" not in page.js("location.href")  # the token is not left in the address bar or history


def _expected(entry: dict[str, Any], *, lost: bool) -> bool:
    """A logged error that is not a fault: no favicon, and (for the loser of a race) its 409 answer."""
    if entry.get("source") != "network":
        return False
    return "favicon" in entry.get("url", "") or (lost and "status of 409" in entry.get("text", ""))


def check_clean(page: Page, *, lost: bool = False) -> None:
    """No script error and no Content-Security-Policy violation: the page's own code keeps to its policy."""
    assert page.events("Runtime.exceptionThrown") == []
    logged = [e["params"]["entry"] for e in page.events("Log.entryAdded")]
    assert not [e for e in logged if e.get("level") == "error" and not _expected(e, lost=lost)], logged
    assert page.events("Page.javascriptDialogOpening") == []


def check_screenshot(page: Page, tmp_path: Path, name: str) -> None:
    png = page.screenshot()
    (tmp_path / f"{name}.png").write_bytes(png)
    assert len(png) > 5000 and png_colours(png) > 20, (len(png), name)
    main = page.js(
        "(() => { const r = document.querySelector('main').getBoundingClientRect(); return [r.width, r.height]; })()"
    )
    assert main[0] > 600 and main[1] > 200, main


def test_list_then_approve_and_watch_it_complete(served: Served, browser: Browser, tmp_path: Path) -> None:
    page = browser.page()
    login(page, served)
    rows = page.wait_for("document.querySelectorAll('tr.execution').length")
    assert rows == 9
    assert "approve-1" in page.js("document.querySelector('table.executions').innerText")
    check_screenshot(page, tmp_path, "list")
    check_clean(page)

    page.type("input[name=q]", "invoice")
    page.follow("form.filters button[type=submit]")
    assert "q=invoice" in page.js("location.search")
    assert page.js("[...document.querySelectorAll('tr.execution')].map(r => r.dataset.id)") == ["approve-1"]

    page.follow("tr.execution[data-id='approve-1'] a")
    assert page.js("document.querySelector('#live').dataset.status") == "waiting_approval"
    assert "pay" in page.js("document.querySelector('.pending').innerText")
    check_screenshot(page, tmp_path, "waiting")
    page.js("window.sameDocument = 'yes'")  # gone if the page reloads

    loads = len(page.events("Page.loadEventFired"))
    page.type("form.approve input[name=reason]", "looks right")
    page.click("form.approve button")
    page.wait_for("document.querySelector('#live').dataset.status === 'completed'")
    assert page.js("window.sameDocument") == "yes" and len(page.events("Page.loadEventFired")) == loads
    assert page.js("document.querySelector('.text.answer').textContent") == "Paid."
    assert page.js("document.getElementById('flash').className") == "ok"
    assert page.js("document.querySelector('#actions .pending')") is None  # nothing left to approve
    assert "looks right" in page.js("document.querySelector('.records').textContent")
    check_screenshot(page, tmp_path, "completed")
    check_clean(page)


def test_two_browsers_approving_at_once_one_wins(served: Served, tmp_path: Path) -> None:
    browsers = [Browser(), Browser()]  # two processes, two profiles: two people
    try:
        pages = [b.page() for b in browsers]
        for p in pages:
            login(p, served, "/executions/approve-1")
            p.wait_for("!!document.querySelector('form.approve button')")
        barrier = threading.Barrier(2)

        def approve(p: Page) -> None:
            barrier.wait()
            p.click("form.approve button")

        threads = [threading.Thread(target=approve, args=(p,)) for p in pages]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        flashes = [p.wait_for("document.getElementById('flash').className") for p in pages]
        assert sorted(flashes) == ["lost", "ok"], flashes
        loser = pages[flashes.index("lost")]
        message = loser.js("document.getElementById('flash').textContent")
        assert message.startswith("Someone else acted first"), message
        for p in pages:  # both end up showing the winner's outcome, without a reload
            p.wait_for("document.querySelector('#live').dataset.status === 'completed'")
        check_screenshot(loser, tmp_path, "lost")
        for p in pages:
            check_clean(p, lost=p is loser)
    finally:
        for b in browsers:
            b.close()


def test_hostile_content_renders_as_text(served: Served, browser: Browser, tmp_path: Path) -> None:
    page = browser.page()
    login(page, served, "/executions/hostile-2")
    page.wait_for("!!document.querySelector('#live')")
    assert page.js("document.querySelector('.text.input').textContent") == HOSTILE_IMG
    assert page.js("document.querySelector('.text.answer').textContent") == HOSTILE_IMG + " answer"
    assert "<img src=x onerror=" in page.js("document.querySelector('.records').textContent")
    assert page.js("document.querySelectorAll('img').length") == 0
    assert page.js("document.querySelectorAll('svg:not(.track)').length") == 0
    assert page.js("document.scripts.length") == 1
    assert page.js("document.title") not in ("owned", "svg", "pwned")
    check_screenshot(page, tmp_path, "hostile")

    login(page, served, "/executions/hostile-1")
    page.wait_for("!!document.querySelector('#live')")
    text = page.js("document.querySelector('.text.input').textContent")
    assert "<script>document.title='pwned'</script>" in text and "\\x1b[31mRED" in text and "\\u202e" in text
    assert page.js("document.title") != "pwned"

    login(page, served, "/?q=" + "%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert page.js("document.querySelector('input[name=q]').value") == "<img src=x onerror=alert(1)>"
    assert list(page.js("[...document.querySelectorAll('tr.execution')].map(r => r.dataset.id)")) == []
    login(page, served, "/?q=owned")
    assert "<b>agent</b>" in page.js("document.querySelector('table.executions').innerText")
    assert page.js("document.querySelectorAll('table.executions b').length") == 0
    check_clean(page)


@pytest.mark.parametrize("kind", ["memory", "list"])
def test_live_approval_on_other_stores(kind: str, tmp_path: Path, browser: Browser) -> None:
    """The same page on a MemoryStore and on the toy third store: the stream follows them by ranged reads."""
    target = make_store(kind, tmp_path)
    agent = scenario_agent.build(target.factory_argument)
    server = Server(ServeConfig(target, TOKEN, agent=agent, where=target.where))
    try:
        page = browser.page()
        page.goto(f"{server.base}/executions/input-1?token={TOKEN}")
        page.wait_for("!!document.querySelector('form[data-action=input] textarea')")
        assert "Which city?" in page.js("document.querySelector('.question').textContent")
        page.js("window.sameDocument = 'yes'")
        page.type("form[data-action=input] textarea", "Kyoto")
        page.click("form[data-action=input] button")
        page.wait_for("document.querySelector('#live').dataset.status === 'completed'")
        assert page.js("window.sameDocument") == "yes"
        assert page.js("document.querySelector('.text.answer').textContent") == "Booked Kyoto."
        check_screenshot(page, tmp_path, f"answered-{kind}")
        check_clean(page)
    finally:
        server.stop()
        agent.close()
        target.close()
