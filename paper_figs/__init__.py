"""paper_figs — regenerate the paper's theory and audit figures from certkit's own computations.

``python -m paper_figs list`` names every figure; ``python -m paper_figs make NAME|all --out DIR
[--quick]`` writes, per figure, the CSV of everything drawn, a PNG, a PDF and a JSON sidecar
(options, seed, timings, versions), plus a gallery page (``index.html``, ``README.md``).
Each figure module has a ``data_<slug>(options) -> DataFrame`` and a ``plot_<slug>(df)``.
"""

from .registry import FigureOptions, FigureSpec, get_figure, list_figures

__all__ = ["FigureOptions", "FigureSpec", "get_figure", "list_figures"]
