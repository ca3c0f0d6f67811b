"""The suite's warnings policy (pyproject.toml): delite's own warnings fail a test, a dependency's deprecation does not.

A dependency that deprecates something (click 8.5 did, with ``get_text_stream``) must not turn a newcomer's first run
red, while delite's own warnings, its deprecations included, stay errors.
"""

from __future__ import annotations

import warnings

import pytest

from delite import DeliteDeprecationWarning
from delite.providers import UnknownPriceWarning


def test_delites_own_deprecation_is_an_error() -> None:
    with pytest.raises(DeliteDeprecationWarning):
        warnings.warn("old delite API", DeliteDeprecationWarning, stacklevel=1)


def test_delites_other_warnings_are_errors() -> None:
    with pytest.raises(UnknownPriceWarning):
        warnings.warn("no price", UnknownPriceWarning, stacklevel=1)
    with pytest.raises(RuntimeWarning):
        warnings.warn("drift", RuntimeWarning, stacklevel=1)


@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning, FutureWarning])
def test_a_dependencys_deprecation_is_only_shown(category: type[Warning]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # what the ini's "default::" entries do, recorded here to look at
        warnings.warn_explicit("old API", category, "site-packages/click/__init__.py", 137, module="click")
    assert [w.category for w in caught] == [category]
    # And under the suite's own filters it does not raise either:
    warnings.warn_explicit("old API again", category, "site-packages/click/__init__.py", 138, module="click")


def unraisable(generator: str) -> pytest.PytestUnraisableExceptionWarning:
    """The warning pytest raises for a generator that the garbage collector found still running."""
    return pytest.PytestUnraisableExceptionWarning(
        f"Exception ignored in: <async_generator object {generator} at 0x7f4f471813f0>\n\n"
        "Traceback (most recent call last):\n  File ...\nValueError: async generator already executing\n"
    )


@pytest.mark.parametrize(
    "generator",
    [
        "AsyncResponseStream.__aiter__",  # the one CI saw (httpx2's), then the rest of a streamed call's read chain
        "BoundAsyncStream.__aiter__",
        "AsyncStream.__stream__",
        "AsyncStream._iter_events",
        "SSEDecoder.aiter_bytes",
        "SSEDecoder._aiter_chunks",
        "async_iter_response_bytes",
        "Response.aiter_raw",
        "Auth.async_auth_flow",
        "HTTP11ConnectionByteStream.__aiter__",
        "AsyncHTTP11Connection._receive_response_body",
    ],
)
def test_an_sdk_stream_generator_found_running_by_another_threads_collection_is_ignored(generator: str) -> None:
    warnings.warn(unraisable(generator), stacklevel=1)  # no error: CPython 3.11's, see pyproject.toml


@pytest.mark.parametrize(
    "generator",
    [
        "AsyncEventStream._events",
        "AsyncTextStream._text",
        "_LoopClients.close_at_shutdown",
        "async_iter_response_bytes_of_ours",
    ],
)
def test_delites_own_generator_found_running_is_an_error(generator: str) -> None:
    with pytest.raises(pytest.PytestUnraisableExceptionWarning):
        warnings.warn(unraisable(generator), stacklevel=1)
    with pytest.raises(pytest.PytestUnraisableExceptionWarning):  # nor another error from an SDK's generator
        warnings.warn(
            pytest.PytestUnraisableExceptionWarning(
                "Exception ignored in: <async_generator object AsyncStream.__stream__ at 0x1>\n\nRuntimeError: boom"
            ),
            stacklevel=1,
        )
