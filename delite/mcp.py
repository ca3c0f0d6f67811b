"""MCP servers as durable tool sources: ``Agent(..., tools=[MCPServer("fs", command=[...])])``.

Needs the ``mcp`` extra (``pip install 'delite-agents[mcp]'``) once a server is used; importing this module
does not import the ``mcp`` package. See ``docs/how-to/mcp.md``.
"""

from __future__ import annotations

from delite._mcp._server import META_PREFIX, SEPARATOR, MCPServer, MCPTool, MCPToolOptions

__all__ = ["META_PREFIX", "SEPARATOR", "MCPServer", "MCPTool", "MCPToolOptions"]
