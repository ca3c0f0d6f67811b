"""The writer's nesting bound (``delite.log._codec``): exact on any JSON, so what is written reads from any stack.

The check counts brackets outside strings without parsing; it is compared here with the depth of the decoded
value, on JSON whose strings hold brackets, quotes and backslashes, at depths around the bound.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from delite.log._codec import MAX_NESTING, _too_deep

_TRICKY = st.text(alphabet='[]{}"\\\\ a\u00e9\n', max_size=12)
_LEAF = st.none() | st.booleans() | st.integers() | _TRICKY


def _depth(value: Any) -> int:
    """Arrays and objects in one another, counted the reference way (iteratively: values may be deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v)
    return deepest


def _nested(depth: int, inner: Any, keys: list[str]) -> Any:
    value = inner
    for i in range(depth):
        value = {keys[i % len(keys)]: value, "s": keys[0]} if i % 3 else [keys[-1], value]
    return value


@settings(max_examples=300, deadline=None)
@given(
    depth=st.integers(min_value=MAX_NESTING - 4, max_value=MAX_NESTING + 4),
    keys=st.lists(_TRICKY, min_size=1, max_size=4),
    noise=st.lists(st.recursive(_LEAF, lambda c: st.lists(c, max_size=3) | st.dictionaries(_TRICKY, c, max_size=3))),
)
def test_the_bound_is_exact_around_it(depth: int, keys: list[str], noise: list[Any]) -> None:
    value = [noise, _nested(depth, noise, keys), keys]
    payload = msgspec.json.encode(value)
    assert _too_deep(payload) == (_depth(value) > MAX_NESTING)


@settings(max_examples=300, deadline=None)
@given(st.recursive(_LEAF, lambda c: st.lists(c, max_size=6) | st.dictionaries(_TRICKY, c, max_size=6), max_leaves=400))
def test_shallow_values_with_many_brackets_pass(value: Any) -> None:
    wide = [value] * 120  # many brackets, little depth: the slow path, and never refused
    assert _too_deep(msgspec.json.encode(wide)) is (_depth(wide) > MAX_NESTING)


def test_a_record_deeper_than_any_writer_of_ours_makes_is_a_typed_error_to_readers() -> None:
    # A log written elsewhere may hold one; the reader says which record, never a raw RecursionError.
    import pytest

    from delite.errors import UnsupportedFormatError
    from delite.log._codec import decode_payloads, decode_record

    deep = b'{"kind":"tool-finished","at":1.0,"call_id":"c1.0","result":' + b"[" * 5000 + b"]" * 5000 + b"}"
    with pytest.raises(UnsupportedFormatError, match="record at byte 7"):
        decode_record(deep, path="x.log", offset=7)
    with pytest.raises(UnsupportedFormatError, match="record at byte 9"):
        decode_payloads([deep], [9], path="x.log")
