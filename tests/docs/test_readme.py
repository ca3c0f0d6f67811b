"""Every Python code block in the README and docs runs as a test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks() -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for i, match in enumerate(BLOCK.finditer(path.read_text())):
            out.append((f"{path.relative_to(ROOT)}#{i}", match.group(1)))
    return out


@pytest.mark.parametrize(("name", "code"), _blocks(), ids=[n for n, _ in _blocks()])
def test_doc_block_runs(name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))  # docs may import the example apps (``examples.web.app``)
    monkeypatch.delenv("DELITE_DATA_DIR", raising=False)  # the example app's data directory: ./data here
    # dont_inherit: a block runs as a script would, without this module's ``from __future__`` imports.
    exec(compile(code, name, "exec", dont_inherit=True), {"__name__": "__doc_test__"})  # noqa: S102
