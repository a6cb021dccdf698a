"""Local Lipschitz constants ``L_s`` of ψ2: rigorous bounds and labelled estimates.

* :mod:`certkit.lipschitz.mlp_bounds` — L0 ≥ L1 ≥ L2 ≥ L3 = L_s* for ReLU/|·| MLPs
  (THEORY §1.6), all ``certified=True``.
* :mod:`certkit.lipschitz.module_bounds` — L0-style products for torch module chains.
* :mod:`certkit.lipschitz.estimates` — E1/E2 sampled *lower estimates* (``certified=False``,
  THEORY §1.7).
"""

from .estimates import jacobian_estimate, secant_estimate
from .mlp_bounds import (
    METHODS,
    PathPieces,
    lipschitz_bound,
    lipschitz_L0,
    lipschitz_L1,
    lipschitz_L2,
    lipschitz_L3,
    path_pieces,
)
from .module_bounds import (
    GELU_LIPSCHITZ,
    GELU_TANH_LIPSCHITZ,
    HARDSWISH_LIPSCHITZ,
    SILU_LIPSCHITZ,
    Abs,
    ChainLipschitzReport,
    ModuleFactor,
    Residual,
    UnsupportedModuleError,
    chain_l1_bound,
    chain_lipschitz_bound,
    chain_lipschitz_report,
    module_lipschitz_constant,
    residual_lipschitz,
)

__all__ = [
    "METHODS",
    "PathPieces",
    "lipschitz_L0",
    "lipschitz_L1",
    "lipschitz_L2",
    "lipschitz_L3",
    "lipschitz_bound",
    "path_pieces",
    "jacobian_estimate",
    "secant_estimate",
    "Abs",
    "Residual",
    "UnsupportedModuleError",
    "ModuleFactor",
    "ChainLipschitzReport",
    "module_lipschitz_constant",
    "chain_lipschitz_bound",
    "chain_l1_bound",
    "chain_lipschitz_report",
    "residual_lipschitz",
    "GELU_LIPSCHITZ",
    "GELU_TANH_LIPSCHITZ",
    "SILU_LIPSCHITZ",
    "HARDSWISH_LIPSCHITZ",
]
