"""Model providers: the contract, the scripted model, and the OpenAI and Anthropic SDK-backed providers.

The vendor SDKs are imported when an SDK-backed provider is built, never when this package is imported.
"""

from __future__ import annotations

from delite.providers._anthropic import Anthropic
from delite.providers._base import ModelTurn, Provider, ProviderCall, StreamingProvider
from delite.providers._openai import OpenAI
from delite.providers._openai_responses import OpenAIResponses
from delite.providers._pricing import ModelPrice, PriceTable, UnknownPriceWarning
from delite.providers._recipe import from_recipe
from delite.providers._scripted import ScriptedProvider, call

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
