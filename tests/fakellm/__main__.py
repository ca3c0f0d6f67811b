"""``python -m fakellm``: serve the fake LLM on 127.0.0.1, a free port, printed as ``PORT <n>``."""

from __future__ import annotations

import signal
import sys

from fakellm.server import main

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
main()
