"""Names a package exports but imports on first use (PEP 562), so importing it stays cheap."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: ``import delite`` loads neither ``typing`` nor ``collections``
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``__getattr__`` and ``__dir__`` for ``exports`` (name -> the module that defines it).

    A name is imported from its module the first time it is asked for, then kept in ``namespace`` (the
    package's ``globals()``), so later lookups cost nothing.
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib  # noqa: PLC0415 - with the first name used: ``import delite`` loads nothing else

        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the module hook's own name
        return sorted({*namespace, *namespace.get("__all__", ())})

    __getattr__.__doc__ = "Import an exported name on first use."
    __dir__.__doc__ = "The exported names."
    return __getattr__, __dir__
