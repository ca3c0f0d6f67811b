"""Model providers: the contract, the scripted model, and the OpenAI and Anthropic SDK-backed providers.

The vendor SDKs are imported when an SDK-backed provider is built, never when this package is imported.
"""

# The names below are imported on first use (PEP 562): the engine needs only the contract
# (``delite.providers._base``), so ``from delite import Agent`` does not import the SDK-backed providers, their
# helpers (asyncio, email, the price table) nor the scripted model. Add new names to ``_EXPORTS`` too.

from __future__ import annotations

from typing import TYPE_CHECKING

from delite._lazy import lazy_exports
from delite.providers._base import ModelTurn, Provider, ProviderCall, StreamingProvider

if TYPE_CHECKING:
    from delite.providers._anthropic import Anthropic
    from delite.providers._openai import OpenAI
    from delite.providers._openai_responses import OpenAIResponses
    from delite.providers._pricing import ModelPrice, PriceTable, UnknownPriceWarning
    from delite.providers._recipe import from_recipe
    from delite.providers._scripted import ScriptedProvider, call

_EXPORTS = {
    "Anthropic": "delite.providers._anthropic",
    "ModelPrice": "delite.providers._pricing",
    "OpenAI": "delite.providers._openai",
    "OpenAIResponses": "delite.providers._openai_responses",
    "PriceTable": "delite.providers._pricing",
    "ScriptedProvider": "delite.providers._scripted",
    "UnknownPriceWarning": "delite.providers._pricing",
    "call": "delite.providers._scripted",
    "from_recipe": "delite.providers._recipe",
}

__all__ = [
    "Anthropic",
    "ModelPrice",
    "ModelTurn",
    "OpenAI",
    "OpenAIResponses",
    "PriceTable",
    "Provider",
    "ProviderCall",
    "ScriptedProvider",
    "StreamingProvider",
    "UnknownPriceWarning",
    "call",
    "from_recipe",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
