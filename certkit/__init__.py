"""certkit — pruning certificates and Marchenko–Pastur diagnostics for deep networks.

Implements the theory of Berlyand, Bourdais, Owhadi, Shmalo, "Pruning Deep Neural Networks via
the Marchenko–Pastur Distribution" (arXiv 2606.02608): the data-path budget B_T(R), the
deterministic certificates of M-§5 / E-§1, the random budget bounds, rigorous and estimated
Lipschitz constants, and the MP law with a rectangular-correct bulk-edge fit.

Every reported number is labelled *certified* (a proven bound evaluated with rigorous
ingredients) or *estimated*.
"""

from . import bounds, budget, certificates, classification, factorize, lipschitz, masks, mc, norms, rmt
from ._registry import implements, registered_results
from .budget import (
    BudgetAccumulator,
    BudgetResult,
    compute_budget,
    data_path_budget,
    perturbation_sizes,
)
from .certificates import (
    MaskStep,
    ce_path_bound,
    elastic_net_certificate,
    frobenius_certificate,
    margin_stability,
    multilayer_certificate,
    prune_restore_certificate,
    restoration_criterion,
    stationarity_certificate,
)
from .exceptions import CertkitError, NotCertifiedWarning, PreconditionError
from .macs import MacReport, count_macs
from .mlp import MLP
from .results import Certificate, LipschitzBound
from .rmt import MPFit, fit_mp, inverse_bbp, mp_cdf, mp_edges, mp_pdf

__version__ = "0.1.0"

__all__ = [
    "BudgetAccumulator",
    "BudgetResult",
    "Certificate",
    "CertkitError",
    "LipschitzBound",
    "MLP",
    "MPFit",
    "MacReport",
    "MaskStep",
    "NotCertifiedWarning",
    "PreconditionError",
    "bounds",
    "budget",
    "ce_path_bound",
    "certificates",
    "classification",
    "compute_budget",
    "count_macs",
    "data_path_budget",
    "elastic_net_certificate",
    "factorize",
    "fit_mp",
    "frobenius_certificate",
    "implements",
    "inverse_bbp",
    "lipschitz",
    "margin_stability",
    "masks",
    "mc",
    "mp_cdf",
    "mp_edges",
    "mp_pdf",
    "multilayer_certificate",
    "norms",
    "perturbation_sizes",
    "prune_restore_certificate",
    "registered_results",
    "restoration_criterion",
    "rmt",
    "stationarity_certificate",
]
