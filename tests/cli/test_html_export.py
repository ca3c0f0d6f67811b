"""The HTML export is one self-contained page; headless Chromium renders it (a screenshot) and runs no script."""

from __future__ import annotations

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
    assert "<title>delite execution hostile-1</title>" in dom  # the injected script did not retitle the page
    assert "pwned</title>" not in dom
    assert "&lt;script&gt;document.title" in dom
    assert dom.count('class="bar ') >= 3  # the timeline rendered: model and tool bars
