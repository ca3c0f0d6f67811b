"""Model providers: the contract, and the scripted model shipped for tests and demos."""

from __future__ import annotations

from delite.providers.base import ModelTurn, Provider, ProviderCall
from delite.providers.scripted import ScriptedProvider, call

__all__ = ["ModelTurn", "Provider", "ProviderCall", "ScriptedProvider", "call"]
