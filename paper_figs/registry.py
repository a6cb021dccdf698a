"""Registry of paper figures (timm ``@register_model`` style).

A figure is *data*: a pure data function and a pure plot function.

Contract
--------
* ``data(options: FigureOptions) -> pandas.DataFrame`` — everything that is drawn, in one tidy
  table (it is written as ``<name>.csv`` beside the image). Deterministic given
  ``options.seed`` and ``options.quick``; no plotting, no files written.
* ``plot(data: pandas.DataFrame) -> matplotlib.figure.Figure`` — drawing only, from the table
  alone (so a figure can be re-drawn from its CSV). Use :func:`paper_figs._plot.new_figure`
  (Agg canvas, no ``pyplot`` global state).
* ``columns`` — the columns the CSV must have (checked by :func:`paper_figs.make.make_figure`
  and by the tests).
* ``kind`` — ``"computed"`` (certkit's own computation) or ``"published"`` (numbers
  transcribed from the paper's tables; always labelled "published numbers" in the figure).
* ``paper`` — the paper figure it is the analog of (THEORY §5 naming), or ``""``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FigureOptions", "FigureSpec", "get_figure", "list_figures", "register"]

#: Default seed of every figure (recorded in each figure's ``.json`` sidecar).
DEFAULT_SEED = 0


@dataclass(frozen=True)
class FigureOptions:
    """What a data function may depend on: the seed and the quick (CI-sized) switch."""

    quick: bool = False
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure (see the module docstring for the contract)."""

    name: str
    title: str
    description: str
    data: Callable
    plot: Callable
    columns: tuple[str, ...]
    kind: str = "computed"
    paper: str = ""
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in ("computed", "published"):
            raise ValueError(f"kind == {self.kind!r}, must be 'computed' or 'published'")
        if not self.name.replace("_", "").isalnum() or self.name != self.name.lower():
            raise ValueError(f"name == {self.name!r}, must be lower_snake_case")


_FIGURES: dict[str, FigureSpec] = {}


def register(spec: FigureSpec) -> FigureSpec:
    """Add ``spec`` to the registry (its name must be new)."""
    if spec.name in _FIGURES:
        raise ValueError(f"figure {spec.name!r} is already registered")
    _FIGURES[spec.name] = spec
    return spec


def _load_all() -> None:
    from . import figures  # noqa: F401  (importing registers every figure)


def list_figures() -> list[str]:
    """Names of all registered figures, in gallery order (order of registration)."""
    _load_all()
    return list(_FIGURES)


def get_figure(name: str) -> FigureSpec:
    """The figure called ``name``; unknown names raise ValueError listing valid ones."""
    _load_all()
    try:
        return _FIGURES[name]
    except KeyError:
        raise ValueError(f"unknown figure {name!r}; choose from: {', '.join(_FIGURES)}") from None
