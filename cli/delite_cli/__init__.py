"""The ``delite`` command-line front end (installed as the ``delite_cli`` package)."""

from __future__ import annotations
