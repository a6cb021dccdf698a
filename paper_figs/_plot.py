"""Shared drawing helpers of the figure modules (Agg canvas, no ``pyplot`` global state).

Conventions every figure follows:

* a title on the figure (``fig.suptitle``) and on each panel where panels differ;
* axis labels name the quantity *and* its unit (``"(pp)"``, ``"(millions, log scale)"``,
  ``"(nats)"``, ``"(dimensionless)"``);
* anything certkit did not prove is labelled: :data:`PROXY_LABEL` for the paper's op-norm
  proxies, :data:`ESTIMATE_LABEL` for estimated Lipschitz constants, and
  :func:`published_banner` on figures drawn from transcribed paper tables;
* ``constrained_layout`` so that text does not overlap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "CERTIFIED_LABEL",
    "ESTIMATE_LABEL",
    "PROXY_LABEL",
    "PUBLISHED_LABEL",
    "COLORS",
    "MARKERS",
    "identity_line",
    "new_figure",
    "no_data",
    "ols_log10",
    "published_banner",
]

#: Label of the paper's Trap-T12 op-norm proxy wherever it is drawn (never a bound).
PROXY_LABEL = "paper's op-norm proxy (not a bound)"
#: Label of quantities that use an estimated (not proven) Lipschitz constant.
ESTIMATE_LABEL = "estimated (empirical L_s)"
#: Label of quantities that are proven bounds evaluated exactly.
CERTIFIED_LABEL = "certified (proven bound)"
#: Label of figures drawn from numbers transcribed from the paper's tables.
PUBLISHED_LABEL = "published numbers"

#: Colour cycle (tab10) and marker cycle used for families / architectures.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def new_figure(width: float = 7.0, height: float = 4.5, *, nrows: int = 1, ncols: int = 1,
               squeeze: bool = True, **subplot_kw):
    """A ``(Figure, axes)`` pair on an Agg canvas with constrained layout (no pyplot)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, subplot_kw=subplot_kw or None)
    return fig, axes


def no_data(ax, message: str = "no data") -> None:
    """Write ``message`` in the middle of an empty panel."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def identity_line(ax, lo: float, hi: float, *, label: str = "y = x", log: bool = False, **kw) -> None:
    """Dashed ``y = x`` over ``[lo, hi]`` (geometric grid when ``log``)."""
    xs = np.geomspace(lo, hi, 64) if log else np.linspace(lo, hi, 2)
    ax.plot(xs, xs, ls="--", color=kw.pop("color", "0.3"), lw=kw.pop("lw", 1.2), label=label, **kw)


def published_banner(fig: Figure, source: str) -> None:
    """Mark ``fig`` as drawn from the paper's published numbers (``source`` = table name)."""
    fig.text(0.995, 0.005, f"{PUBLISHED_LABEL}: {source} (transcribed, not recomputed)",
             ha="right", va="bottom", fontsize=7, color="0.35", style="italic")


def ols_log10(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float, int]:
    """OLS of ``y`` on ``log10(x)``: ``(slope, intercept, pearson_r, n)`` over finite pairs.

    Returns NaN slope/intercept/r when fewer than 3 finite pairs or a constant regressor.
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    ok = np.isfinite(xa) & np.isfinite(ya) & (xa > 0)
    lx, yy = np.log10(xa[ok]), ya[ok]
    n = int(ok.sum())
    if n < 3 or np.ptp(lx) == 0:
        return math.nan, math.nan, math.nan, n
    slope, intercept = np.polyfit(lx, yy, 1)
    r = float(np.corrcoef(lx, yy)[0, 1]) if np.ptp(yy) > 0 else math.nan
    return float(slope), float(intercept), r, n
