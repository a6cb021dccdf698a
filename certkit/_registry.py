"""Registry of the paper results that certkit implements (timm ``@register_model`` style).

Every function that evaluates a result of arXiv 2606.02608 is decorated with
``@implements("M-Thm 5.4", kind="D")``. The registry lets tests check that every catalogue
entry of THEORY §6 is covered and lets reports cite the result a number comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["implements", "registered_results", "ResultEntry"]

#: Result types of THEORY §0.2.
KINDS = {"D", "P", "A", "C", "M", "E"}  # E: estimate / procedure (not a theorem)

F = TypeVar("F", bound=Callable)


@dataclass(frozen=True)
class ResultEntry:
    result: str
    kind: str
    qualname: str


_REGISTRY: dict[str, list[ResultEntry]] = {}


def implements(*results: str, kind: str) -> Callable[[F], F]:
    """Record that the decorated function implements the given paper result ids."""
    if kind not in KINDS:
        raise ValueError(f"kind == {kind!r}, must be one of {sorted(KINDS)}")

    def deco(fn: F) -> F:
        for r in results:
            entry = ResultEntry(r, kind, f"{fn.__module__}.{fn.__qualname__}")
            _REGISTRY.setdefault(r, []).append(entry)
        fn.__certkit_results__ = tuple(results)  # type: ignore[attr-defined]
        return fn

    return deco


def registered_results() -> dict[str, list[ResultEntry]]:
    """Return a copy of the registry: result id -> implementing functions."""
    return {k: list(v) for k, v in _REGISTRY.items()}
