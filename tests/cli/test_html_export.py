"""The HTML export is one self-contained page; headless Chromium renders it (a screenshot) and runs no script."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

CHROMIUM = next(
    (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
)


def export_html(run, data: Path, eid: str, target: Path) -> str:
    r = run("export", eid, "--format", "html", "-o", target, "--data-dir", data)
    assert r.exit_code == 0, r.output
    return target.read_text()


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the inflated image data of a PNG (no imaging library needed)."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, width, height, idat = 8, 0, 0, b""
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        kind = raw[pos + 4 : pos + 8]
        body = raw[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_html_is_self_contained(run, built: Path, tmp_path: Path) -> None:
    page = export_html(run, built, "approve-1", tmp_path / "x.html")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"(src|href)\s*=", page), "no external resource"
    assert "<script" not in page
    assert 'class="bar model"' in page and "paused after step 1: approval" in page
    assert "delite-export/1" in page


@needs_chromium
def test_headless_chromium_renders_the_timeline(run, built: Path, tmp_path: Path) -> None:
    page = tmp_path / "count.html"
    export_html(run, built, "count-1", page)
    shot = tmp_path / "count.png"
    out = chromium(tmp_path / "profile", "--window-size=1200,1400", f"--screenshot={shot}", page.as_uri())
    assert shot.exists(), out.stderr[-2000:]
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (1200, 1400)
    assert len(set(pixels[::7])) > 40, "the screenshot is blank"
    keep = os.environ.get("DELITE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "export-count-1.png")


@needs_chromium
def test_hostile_content_does_not_run_in_the_browser(run, built: Path, tmp_path: Path) -> None:
    page = tmp_path / "hostile.html"
    export_html(run, built, "hostile-1", page)
    out = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    title = re.search(r"<title>(.*?)</title>", dom)
    assert title is not None and title.group(1).endswith(" delite hostile-1")  # the injected script did not retitle it
    assert title.group(1).startswith("hostile \\x1b[31mRED")  # the input, its escapes shown
    assert "pwned</title>" not in dom
    assert "&lt;script&gt;document.title" in dom
    assert dom.count('class="bar ') >= 3  # the timeline rendered: model and tool bars


def test_html_marks_a_crash_and_the_process_that_resumed(run, built: Path, tmp_path: Path) -> None:
    page = export_html(run, built, "doubt-1", tmp_path / "doubt.html")
    assert "<h2>Crashes and resumes</h2>" in page and "1 crash, resumed" in page
    crash = re.findall(r'<div class="takeover crash">(.*?)</div>', page)
    assert len(crash) == 2  # in the list of crashes and in the records, just before the resume record
    assert "the process stopped here after record #3 (tool-started) without finishing" in crash[0]
    assert "tool calls in doubt: c1.0" in crash[0] and "resumed it (record #4)" in crash[0]
    records = page[page.index("<h2>Records</h2>") :]
    assert records.index('class="takeover crash"') < records.index("#4 execution-resumed")
    assert 'class="bar crash"' in page  # on the wall-clock track too


def test_html_marks_a_resume_after_a_pause_as_no_crash(run, data: Path, tmp_path: Path) -> None:
    r = run("approve", "approve-1", "--data-dir", data, "--agent", "scenario_agent:build")
    assert r.exit_code == 0, r.output
    page = export_html(run, data, "approve-1", tmp_path / "approved.html")
    assert 'class="takeover clean"' in page and "resumed by process" in page
    assert 'class="takeover crash"' not in page and "crash, resumed" not in page
    plain = export_html(run, data, "count-1", tmp_path / "count.html")
    assert "Crashes and resumes" not in plain and "takeover" not in plain.split("</style>")[1]


def test_html_title_names_the_input_and_agent_and_costs_say_unknown(run, built: Path, tmp_path: Path) -> None:
    page = export_html(run, built, "done-1", tmp_path / "done.html")
    title = re.search(r"<title>(.*?)</title>", page)
    assert title is not None and title.group(1).startswith("add 2 and 3 \u00b7 ")
    assert title.group(1).endswith(" \u00b7 delite done-1")
    agent = json.loads(run("inspect", "done-1", "--data-dir", built, "--json").stdout)["agent_id"]
    assert f" \u00b7 {agent} \u00b7 " in title.group(1)
    assert "<b>$0.0030</b><span>cost</span>" in page

    greeter = json.loads(run("status", "--data-dir", built, "--agent", "greeter", "--json").stdout)["executions"][0]
    assert greeter["cost"] is None  # the scripted model has no price
    unpriced = export_html(run, built, greeter["id"], tmp_path / "greeter.html")
    assert "<b>unknown</b><span>cost</span>" in unpriced and '<div class="num">unknown</div>' in unpriced
    assert ">?<" not in unpriced
    assert re.search(r"<title>say hello \u00b7 greeter \u00b7 delite ", unpriced)
