"""Figure modules; importing this package registers every figure (gallery order)."""

from . import (  # noqa: F401, I001  (order = gallery order)
    mp_fit_real,
    published_tables,
    budget_coverage,
    l2_collapse,
    audit_sweep_figures,
    mp_law_convergence,
    lipschitz_hierarchy,
    thresholding_rates,
    certificate_margin,
    noise_injection,
    outer_scale,
    width_trend,
)
