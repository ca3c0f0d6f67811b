"""SHA-256, the hash that binds snapshots, tallies and fold checkpoints to the exact bytes of a log.

OpenSSL's, taken straight from CPython's ``_hashlib``: ``import hashlib`` also builds its table of every
algorithm and loads ``_blake2``, and ``hmac`` comes with it: about 2 ms more in a fresh process, measured on a
slow day (docs/benchmarks.md, issue 14's eleventh round). The pure-C ``_sha256`` is not the fallback: it is
ten times slower on a long log. Where ``_hashlib`` lacks these names (another Python, a build without
OpenSSL), the standard modules are used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash

__all__ = ["compare_digest", "sha256"]

sha256: Callable[..., _Hash]
"""``hashlib.sha256``: ``sha256(data=b"")``, the running hash object with ``update``, ``copy`` and ``hexdigest``."""
compare_digest: Callable[[str | bytes, str | bytes], bool]
"""``hmac.compare_digest``: equality in time that does not depend on where the two differ."""

try:
    from _hashlib import compare_digest
    from _hashlib import openssl_sha256 as sha256
except ImportError:  # pragma: no cover - CPython built with OpenSSL has both
    from hashlib import sha256
    from hmac import compare_digest
