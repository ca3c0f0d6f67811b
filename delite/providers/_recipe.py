"""Recipe strings: ``"vendor:model"`` names a provider, as in ``Agent("./data", provider="openai:gpt-4o-mini")``."""

from __future__ import annotations

from typing import Any

from delite.errors import UsageError
from delite.providers._anthropic import Anthropic
from delite.providers._openai import OpenAI
from delite.providers._openai_responses import OpenAIResponses
from delite.providers._sdk import SDKProvider

__all__ = ["VENDORS", "from_recipe"]

VENDORS: dict[str, type[SDKProvider]] = {
    "openai": OpenAI,
    "openai-responses": OpenAIResponses,
    "anthropic": Anthropic,
}


def from_recipe(recipe: str, **options: Any) -> SDKProvider:
    """Build the provider a recipe string names; ``options`` go to its constructor.

    The vendor is ``openai`` (Chat Completions), ``openai-responses`` or ``anthropic``; everything after the
    first colon is the model id (so ``"openai:llama3.2:3b"`` works). A malformed recipe, an unknown vendor or
    a missing API key raises :class:`~delite.errors.UsageError` here, before any run starts.

    Example::

        provider = from_recipe("anthropic:claude-haiku-4-5", max_tokens=1024)
    """
    if not isinstance(recipe, str):
        kind = type(recipe).__name__
        raise UsageError(f"a provider recipe is a string like 'anthropic:claude-haiku-4-5', not {kind}")
    vendor, sep, model = recipe.partition(":")
    if vendor not in VENDORS:
        known = ", ".join(sorted(VENDORS))
        raise UsageError(f"unknown provider {vendor!r} in recipe {recipe!r}: use one of {known} (as 'vendor:model')")
    if not sep or not model:
        raise UsageError(f"provider recipe {recipe!r} names no model: write it as '{vendor}:MODEL'")
    return VENDORS[vendor](model, **options)
