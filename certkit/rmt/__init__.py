"""Random-matrix tools of arXiv 2606.02608: the Marchenko–Pastur law, Tracy–Widom TW₁, the
c-aware BEMA edge fit, BBP outliers and the deterministic spectral ingredients.

Convention everywhere (THEORY §3.1, Trap T1): W ∈ ℝ^{N×M} with N = rows, X = WᵀW/N,
c = M/N = cols/rows, σ² = raw entry variance.
"""

from .bbp import bbp_edge, bbp_outlier, bbp_threshold, inverse_bbp
from .bulk_edge import MPFit, fit_mp, johnstone_constant, mp_edge_with_tw
from .marchenko_pastur import (
    ENTRY_LAWS,
    MP_PARAMETERS,
    MarchenkoPastur,
    mp_cdf,
    mp_edges,
    mp_moments,
    mp_pdf,
    mp_sigma_plus,
    sample_mp,
)
from .spectral import (
    covariance_eigenvalues,
    eckart_young_tail_bound,
    markov_count_bound,
    rank_inequality_bound,
    singular_values,
    wedin_bound,
    weyl_bound,
)
from .tracy_widom import tw1_cdf, tw1_quantile

__all__ = [
    "ENTRY_LAWS",
    "MP_PARAMETERS",
    "MPFit",
    "MarchenkoPastur",
    "bbp_edge",
    "bbp_outlier",
    "bbp_threshold",
    "covariance_eigenvalues",
    "eckart_young_tail_bound",
    "fit_mp",
    "inverse_bbp",
    "johnstone_constant",
    "markov_count_bound",
    "mp_cdf",
    "mp_edge_with_tw",
    "mp_edges",
    "mp_moments",
    "mp_pdf",
    "mp_sigma_plus",
    "rank_inequality_bound",
    "sample_mp",
    "singular_values",
    "tw1_cdf",
    "tw1_quantile",
    "wedin_bound",
    "weyl_bound",
]
