"""The public surface is the modules docs/reference/public-api.md lists; everything else is private."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import delite

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "reference" / "public-api.md"


def documented() -> set[str]:
    """The modules the public-API page lists."""
    return set(re.findall(r"^\| `(delite[\w.]*)` \|", TABLE.read_text(encoding="utf-8"), re.MULTILINE))


def every_module() -> list[str]:
    """Every module of the delite package."""
    names = ["delite"]
    for info in pkgutil.walk_packages(delite.__path__, "delite."):
        names.append(info.name)
    return names


def is_private(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("."))


def test_every_module_outside_the_table_is_private() -> None:
    public = documented()
    stray = [m for m in every_module() if not is_private(m) and m not in public]
    assert stray == [], f"public by name but not documented in {TABLE.name}: {stray}"


def test_every_documented_module_exists_and_curates_its_names() -> None:
    for name in sorted(documented()):
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported, f"{name} has no __all__"
        for attr in exported:
            assert hasattr(module, attr), f"{name}.__all__ names {attr!r}, which it does not have"


def test_public_classes_and_functions_have_docstrings() -> None:
    missing = []
    for name in sorted(documented()):
        module = importlib.import_module(name)
        for attr in module.__all__:
            value = getattr(module, attr)
            if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
                missing.append(f"{name}.{attr}")
    assert missing == []


def doc_imports() -> list[tuple[str, str]]:
    """(file, module) for every ``from X import`` and ``import X`` of delite in the docs and README."""
    found = []
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "examples").rglob("*.py"))]
    for path in files:
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"^\s*(?:from (delite[\w.]*) import|import (delite[\w.]*))", text, re.MULTILINE):
            found.append((path.relative_to(ROOT).as_posix(), m.group(1) or m.group(2)))
    return found


def test_the_docs_import_only_from_public_modules() -> None:
    public = documented()
    wrong = [(f, m) for f, m in doc_imports() if m not in public]
    assert wrong == [], f"docs import from modules that are not public: {wrong}"


@pytest.mark.parametrize("name", ["Clarification", "Agent", "Runtime", "DataDir", "Store", "MemoryStore"])
def test_what_users_need_is_at_the_top(name: str) -> None:
    assert name in delite.__all__
    assert getattr(delite, name) is not None
