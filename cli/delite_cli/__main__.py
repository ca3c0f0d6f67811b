"""``python -m delite_cli`` runs the ``delite`` command."""

from __future__ import annotations

from delite_cli.main import main

main()
