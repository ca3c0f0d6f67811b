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
