"""One operation, two entry points: the sync one drives it in the calling thread, its twin awaits it.

An operation is built by a function with the public signature and docstring (``Agent._cancel``,
``_delegate``) that returns the operation's generator of effects (:mod:`delite.engine._effects`). :func:`entry`
makes the sync entry point from it (``Agent.cancel``), :func:`twin` the async one (``Agent.acancel``): both
keep its signature (``inspect.signature`` and type checkers see the builder's parameters), so the arguments,
their checks and the description are written once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from delite.engine._effects import Steps, drive
from delite.engine._response import AnyResponse, Response, settled

__all__ = ["awaited", "blocking", "entry", "twin"]

T = TypeVar("T")
S = TypeVar("S")
P = ParamSpec("P")

Builder = Callable[Concatenate[S, P], Steps[Response]]
"""Builds an operation from its first argument (the agent) and the public arguments."""


def blocking(steps: Steps[Response[T]]) -> AnyResponse[T]:
    """Drive an operation in this thread; its response as one of the two kinds."""
    return settled(drive(steps))


async def awaited(steps: Steps[Response[T]]) -> AnyResponse[T]:
    """Drive an operation on the running event loop; its response as one of the two kinds."""
    from delite.engine._aio import adrive  # noqa: PLC0415 - asyncio only for the async API

    return settled(await adrive(steps))


def _named(fn: Callable[..., Any], builder: Callable[..., Any], name: str) -> None:
    """Name ``fn`` and give it ``builder``'s signature, returning what the entry point returns."""
    owner = builder.__qualname__.rpartition(".")[0]
    fn.__name__ = name
    fn.__qualname__ = f"{owner}.{name}" if owner else name
    fn.__annotations__ = {**builder.__annotations__, "return": "AnyResponse"}
    fn.__dict__["__signature__"] = inspect.signature(builder).replace(return_annotation="AnyResponse")


def entry(builder: Builder[S, P]) -> Callable[Concatenate[S, P], AnyResponse]:
    """The sync entry point of the operation ``builder`` builds, named after it without its underscore."""

    @functools.wraps(builder)
    def run(first: S, /, *args: P.args, **kwargs: P.kwargs) -> AnyResponse:
        return blocking(builder(first, *args, **kwargs))

    _named(run, builder, builder.__name__.removeprefix("_"))
    return run


def twin(builder: Builder[S, P]) -> Callable[Concatenate[S, P], Coroutine[Any, Any, AnyResponse]]:
    """The async twin of :func:`entry`'s entry point, named with an ``a``: the same operation, awaited."""
    name = builder.__name__.removeprefix("_")

    @functools.wraps(builder)
    async def arun(first: S, /, *args: P.args, **kwargs: P.kwargs) -> AnyResponse:
        return await awaited(builder(first, *args, **kwargs))

    _named(arun, builder, "a" + name)
    arun.__doc__ = (
        f":{'meth' if '.' in arun.__qualname__ else 'func'}:`{name}`, awaited (same arguments and semantics)."
    )
    return arun
