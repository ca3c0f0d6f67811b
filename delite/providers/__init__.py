"""Model providers: the contract, the scripted model, and the OpenAI and Anthropic SDK-backed providers.

The vendor SDKs are imported when an SDK-backed provider is built, never when this package is imported.
"""

from __future__ import annotations

from delite.providers.anthropic import Anthropic
from delite.providers.base import ModelTurn, Provider, ProviderCall, StreamingProvider
from delite.providers.openai import OpenAI
from delite.providers.openai_responses import OpenAIResponses
from delite.providers.pricing import ModelPrice, PriceTable, UnknownPriceWarning
from delite.providers.recipe import from_recipe
from delite.providers.scripted import ScriptedProvider, call

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
