"""Print a pip constraints file that pins every dependency of the runtime and the test extra to its lower bound.

CI installs with it once more so that the lower bounds in pyproject.toml are tested, not hoped for. A dependency
without a ``>=`` bound is an error: every bound we promise must be one we run.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


def lower_bounds(pyproject: Path, extras: list[str]) -> list[str]:
    """``name==version`` for each requirement of the project and of ``extras``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for req in requirements:
        match = REQ.match(req.split(";")[0])
        if match is None:
            raise SystemExit(f"cannot parse requirement {req!r}")
        name, spec = match.group(1).lower(), match.group(3)
        bound = re.search(r">=\s*([0-9][^,\s]*)", spec)
        if bound is None:
            raise SystemExit(f"{name}: no lower bound (>=) in {req!r}")
        pins[name] = bound.group(1)
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    print("\n".join(lower_bounds(root / "pyproject.toml", sys.argv[1:] or ["test"])))
