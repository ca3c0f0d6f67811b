"""Compile delite's bytecode before a benchmark times fresh processes.

An installed package has its ``.pyc`` files (pip compiles them); a checkout run with
``PYTHONDONTWRITEBYTECODE`` set (some shells and CI images set it) has none, and then every fresh process
compiles every delite module from source, which adds tens of milliseconds to "import" and to the first use
of anything imported lazily. The benchmarks time what a user's process costs, so they compile first.
"""

from __future__ import annotations

import compileall
import os

__all__ = ["precompile"]


def precompile(*roots: str) -> str:
    """Write the ``.pyc`` files of ``delite`` and ``delite_cli`` under each checkout in ``roots``; say what was done.

    ``compileall`` writes them even where ``PYTHONDONTWRITEBYTECODE`` is set (children then read them).
    """
    done = []
    for root in roots:
        for package in (os.path.join(root, "delite"), os.path.join(root, "cli", "delite_cli")):
            if os.path.isdir(package):
                compileall.compile_dir(package, quiet=1)
                done.append(package)
    return "bytecode compiled for " + ", ".join(done) if done else "no package found to compile"
