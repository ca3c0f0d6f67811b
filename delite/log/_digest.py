"""SHA-256, the hash that binds snapshots, tallies and fold checkpoints to the exact bytes of a log.

OpenSSL's, taken straight from CPython's ``_hashlib``: ``import hashlib`` also builds its table of every
algorithm and loads ``_blake2``, and ``hmac`` comes with it: about 2 ms more in a fresh process, measured on a
slow day (docs/benchmarks.md, issue 14's eleventh round). The pure-C ``_sha256`` is not the fallback: it is
ten times slower on a long log. Where ``_hashlib`` lacks these names (another Python, a build without
OpenSSL), the standard modules are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["compare_digest", "sha256"]

if TYPE_CHECKING:  # what they are: hashlib's sha256(data=b"") and hmac's compare_digest(a, b)
    from hashlib import sha256
    from hmac import compare_digest
else:
    try:
        from _hashlib import compare_digest
        from _hashlib import openssl_sha256 as sha256
    except ImportError:  # pragma: no cover - CPython built with OpenSSL has both
        from hashlib import sha256
        from hmac import compare_digest
