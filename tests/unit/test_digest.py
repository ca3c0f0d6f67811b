"""``delite.log._digest``: OpenSSL's SHA-256 without ``hashlib``, the same digests, and a fallback that works."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import sys

import pytest

from delite.log import _digest


@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 5000])
def test_the_same_digest_as_hashlib(data: bytes) -> None:
    assert _digest.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert (
        _digest.sha256(memoryview(data)[: len(data) // 2]).digest() == hashlib.sha256(data[: len(data) // 2]).digest()
    )
    running = _digest.sha256()
    for start in range(0, len(data), 4096):
        running.update(data[start : start + 4096])
    before = running.copy()
    running.update(b"more")
    assert before.hexdigest() == hashlib.sha256(data).hexdigest()  # a copy is independent of its source
    assert running.hexdigest() == hashlib.sha256(data + b"more").hexdigest()


def test_compare_digest_compares_str_and_bytes() -> None:
    assert _digest.compare_digest("ab", "ab") and not _digest.compare_digest("ab", "ac")
    assert _digest.compare_digest(b"ab", b"ab") and not _digest.compare_digest(b"ab", b"a")
    with pytest.raises(TypeError):
        _digest.compare_digest("ab", b"ab")  # as hmac.compare_digest: a str and bytes never compare


def test_without_openssl_the_standard_modules_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "_hashlib", None)  # as on a Python built without OpenSSL
    try:
        fallback = importlib.reload(_digest)
        assert fallback.compare_digest is hmac.compare_digest
        assert fallback.sha256(b"abc").hexdigest() == hashlib.sha256(b"abc").hexdigest()
    finally:
        monkeypatch.undo()
        importlib.reload(_digest)
    assert _digest.sha256.__module__ == "_hashlib"
