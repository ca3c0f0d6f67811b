"""``delite serve``: a local web app and JSON API over a store, to see executions and act on them.

Private: the command (``delite serve``) and the HTTP API it serves (documented by its OpenAPI schema at
``/api/openapi.json``) are the interfaces; these modules may change in any release. It needs the ``web``
extra (Starlette and uvicorn).
"""

from __future__ import annotations

from delite_cli._serve._app import ServeConfig, build_app, serve

__all__ = ["ServeConfig", "build_app", "serve"]
