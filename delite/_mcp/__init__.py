"""MCP servers as durable tool sources (the public names are in :mod:`delite.mcp`).

Importing this package does not import the ``mcp`` package: only a server's first connection does.
"""

from __future__ import annotations
