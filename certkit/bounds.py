r"""Random sufficient conditions for the data-path budget (M-Cor 5.10, M-Cor 5.11, E-Cor 1.4–1.6).

These are right-hand sides of statements that hold **with probability ≥ 1 − δ under a model**
for the removed component R (iid Gaussian N(0, g/n) entries with n = rows, or sub-Gaussian
rows), independent of the inputs v_s and of L_s (Trap T9). They are therefore reported as
*probabilistic* (``certified=False``): for a magnitude-selected R, or for a path-dependent L_s
(L2/L3/estimates), they are heuristics.

For layers applied at P positions the union bound runs over n·P·|T| entries and ‖v_s‖_2 is
replaced by max_p ‖v_{s,p}‖_2 (THEORY §1.4, spec addition).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ._registry import implements
from ._validation import as_tensor, check_int, check_probability, check_scalar
from .budget import _check_inputs, _lipschitz_values
from .results import LipschitzBound

__all__ = [
    "BudgetBound",
    "LayerNoiseModel",
    "gaussian_budget_bound",
    "gaussian_threshold",
    "mp_edge_budget_bound",
    "multilayer_budget_bounds",
    "nominal_edge",
    "subgaussian_budget_bound",
    "thresholding_level",
]


@dataclass(frozen=True)
class BudgetBound:
    """A probabilistic upper bound on B_T(R).

    Attributes
    ----------
    result : str
        Paper id (``"M-Cor 5.10"``, ...).
    value : float
        The right-hand side; ``B_T(R) ≤ value`` with probability ≥ 1 − δ under the model.
    delta : float
    threshold : float
        The per-entry threshold t (``‖R v_s‖_∞ ≤ ‖v_s‖_2·t`` for all s on the event).
    lipschitz_method : str
    assumptions : tuple of str
    certified : bool
        Always False: a probabilistic statement under an uncheckable model is not a certificate.
    """

    result: str
    value: float
    delta: float
    threshold: float
    lipschitz_method: str
    assumptions: tuple[str, ...] = field(default=())
    certified: bool = False

    @property
    def label(self) -> str:
        return f"probabilistic (≥ 1−δ = {1 - self.delta:g} under the model)"

    def to_dict(self) -> dict:
        return {
            "result": self.result, "value": self.value, "delta": self.delta,
            "threshold": self.threshold, "lipschitz_method": self.lipschitz_method,
            "assumptions": list(self.assumptions), "certified": self.certified,
            "label": self.label,
        }


def _sample_norms(V, m: int | None = None) -> tuple[torch.Tensor, int, int]:
    """max_p ‖v_{s,p}‖_2 per sample, number of positions P, and m."""
    V = as_tensor(V, "V", ndim=(2, 3), shape_hint="(|T|, m) or (|T|, P, m)")
    V3 = _check_inputs(V, V.shape[-1] if m is None else m)
    norms = torch.linalg.vector_norm(V3, dim=2).amax(dim=1)
    return norms, V3.shape[1], V3.shape[2]


def _weighted_mean(V, L) -> tuple[float, int, int, int, str]:
    norms, P, m = _sample_norms(V)
    Lv, _, method = _lipschitz_values(L, norms.numel())
    if isinstance(L, LipschitzBound) and L.path_dependent:
        method += " (path-dependent: depends on R, model assumption violated — Trap T9)"
    return float((Lv * norms).mean()), norms.numel(), P, m, method


@implements("M-Cor 5.10", "E-Thm 3.16", kind="P")
def gaussian_threshold(n: int, g: float, delta: float, n_samples: int, *,
                       positions: int = 1) -> float:
    r"""Gaussian union-bound threshold :math:`t_\delta = \sqrt{(2g/n)\log(2nP|T|/\delta)}`.

    Implements the threshold of M-Cor 5.10 (and the τ_{N,δ} scale of E-Thm 3.16, its 3-layer
    Gaussian instance): for R with iid N(0, g/n) entries (n = rows),
    :math:`\|Rv_s\|_\infty \le \|v_s\|_2 t_\delta` for all s with probability ≥ 1 − δ.
    """
    n = check_int(n, "n", min_val=1)
    g = check_scalar(g, "g", min_val=0.0)
    delta = check_probability(delta, "delta")
    n_samples = check_int(n_samples, "n_samples", min_val=1)
    positions = check_int(positions, "positions", min_val=1)
    return math.sqrt((2.0 * g / n) * math.log(2.0 * n * positions * n_samples / delta))


@implements("M-Cor 5.10", kind="P")
def gaussian_budget_bound(V, L, *, n: int, g: float, delta: float) -> BudgetBound:
    r"""Gaussian sufficient condition for the budget (M-Cor 5.10).

    Implements M-Cor 5.10 [P] (arXiv 2606.02608): if R ∈ ℝ^{n×m} has iid N(0, g/n) entries
    independent of the v_s and of the L_s, then with probability ≥ 1 − δ

    .. math:: B_T(R) \le \frac{2}{|T|}\sum_s L_s\|v_s\|_2\, t_\delta,\qquad
              t_\delta = \sqrt{(2g/n)\log(2n|T|/\delta)} .

    Parameters
    ----------
    V : (|T|, m) or (|T|, P, m) layer inputs.
    L : scalar, (|T|,) or LipschitzBound — must not depend on R.
    n : rows of R. g : variance gain (entries N(0, g/n)). delta : failure probability.
    """
    mean, T, P, _, method = _weighted_mean(V, L)
    t = gaussian_threshold(n, g, delta, T, positions=P)
    return BudgetBound("M-Cor 5.10", 2.0 * mean * t, delta, t, method,
                       ("R iid N(0, g/n), n = rows", "R independent of v_s and L_s"))


def nominal_edge(g: float, n: int, m: int) -> float:
    r"""Nominal singular-value edge of R ∈ ℝ^{n×m} with N(0, g/n) entries: √g(1 + √(m/n)).

    M-Rem 2.3 / M-Cor 5.11; equals √(entry variance)·(√n + √m).
    """
    g = check_scalar(g, "g", min_val=0.0)
    n = check_int(n, "n", min_val=1)
    m = check_int(m, "m", min_val=1)
    return math.sqrt(g) * (1.0 + math.sqrt(m / n))


@implements("M-Cor 5.11", kind="P")
def mp_edge_budget_bound(V, L, *, n: int, sigma_plus: float, delta: float) -> BudgetBound:
    r"""MP-edge form of the Gaussian budget bound (M-Cor 5.11).

    Implements M-Cor 5.11 [P] (legacy "Corollary 5.14"), an algebraic rewrite of M-Cor 5.10
    with the nominal edge :math:`\sigma_{+,R} = \sqrt g(1+\sqrt{m/n})` of the *removed
    component*:

    .. math:: B_T(R) \le \frac{2\sigma_{+,R}}{1+\sqrt{m/n}}\sqrt{\frac{2}{n}\log\frac{2n|T|}{\delta}}
              \cdot\frac{1}{|T|}\sum_s L_s\|v_s\|_2 .

    Plugging in a *fitted* or empirical edge (e.g. the BEMA σ₊ of the whole layer) is not
    covered by the theorem (Trap T10).
    """
    sigma_plus = check_scalar(sigma_plus, "sigma_plus", min_val=0.0)
    mean, T, P, m, method = _weighted_mean(V, L)
    n = check_int(n, "n", min_val=1)
    delta = check_probability(delta, "delta")
    t = (sigma_plus / (1.0 + math.sqrt(m / n))) * math.sqrt(
        (2.0 / n) * math.log(2.0 * n * P * T / delta))
    return BudgetBound("M-Cor 5.11", 2.0 * mean * t, delta, t, method,
                       ("R iid N(0, g/n) with σ₊,R = √g(1+√(m/n)) its nominal edge",
                        "R independent of v_s and L_s"))


@implements("E-Cor 1.4", kind="P")
def subgaussian_budget_bound(V, L, *, n: int, g: float, c: float, delta: float) -> BudgetBound:
    r"""Sub-Gaussian-row budget bound (E-Cor 1.4).

    Implements E-Cor 1.4 [P]: if the rows r_i of R are independent, centred and
    :math:`P(|\langle r_i,v\rangle| > t) \le 2\exp(-c\,n\,t^2/(g\|v\|_2^2))`, then w.p. ≥ 1 − δ

    .. math:: B_T(R) \le \frac{2}{|T|}\sum_s L_s\|v_s\|_2\sqrt{\frac{g}{c\,n}\log\frac{2n|T|}{\delta}} .

    ``c = 1/2`` reproduces M-Cor 5.10 (Rademacher ±√(g/n): c = 1/2; uniform: c = 1/6 by
    Hoeffding). ``c`` is a tail constant, not the MP aspect ratio (Trap T18).
    """
    c = check_scalar(c, "c", min_val=0.0, include_min=False)
    mean, T, P, _, method = _weighted_mean(V, L)
    n = check_int(n, "n", min_val=1)
    g = check_scalar(g, "g", min_val=0.0)
    delta = check_probability(delta, "delta")
    t = math.sqrt((g / (c * n)) * math.log(2.0 * n * P * T / delta))
    return BudgetBound("E-Cor 1.4", 2.0 * mean * t, delta, t, method,
                       (f"rows of R independent, centred, sub-Gaussian with c = {c}",
                        "R independent of v_s and L_s"))


@dataclass(frozen=True)
class LayerNoiseModel:
    """Noise model of one pruning step for :func:`multilayer_budget_bounds`.

    ``V`` and ``L`` are the inputs and Lipschitz bounds in the intermediate network α^{(j−1)};
    ``n`` rows, entries of variance ``g/n``; ``c`` = 1/2 for Gaussian (E-Cor 1.5) or the
    sub-Gaussian tail constant (E-Cor 1.6).
    """

    V: object
    L: object
    n: int
    g: float
    c: float = 0.5


@implements("E-Cor 1.5", "E-Cor 1.6", kind="P")
def multilayer_budget_bounds(layers: Sequence[LayerNoiseModel], delta: float, *,
                             deltas: Sequence[float] | None = None) -> list[BudgetBound]:
    r"""Simultaneous budget bounds for a sequence of pruning steps (E-Cor 1.5 / 1.6).

    Implements E-Cor 1.5 (Gaussian) and E-Cor 1.6 (sub-Gaussian rows): with δ_j > 0 and
    Σ_j δ_j ≤ δ (default δ_j = δ/M), with probability ≥ 1 − δ simultaneously for all j,
    :math:`B_j(R_j) \le (2/|T|)\sum_s L_{j,s}\|v_{j,s}\|_2\sqrt{(g_j/(c_j n_j))\log(2n_j|T|/\delta_j)}`,
    and on that event M-Thm 5.8 holds with the sum of these in place of Σ_j B_j.
    For a genuine mask R_j = (1 − Mask_j) ⊙ G_j with G_j Gaussian, use c = 1/2 (E-Cor 1.6).
    """
    delta = check_probability(delta, "delta")
    if len(layers) == 0:
        raise ValueError("layers must contain at least one LayerNoiseModel")
    if deltas is None:
        deltas = [delta / len(layers)] * len(layers)
    if len(deltas) != len(layers):
        raise ValueError(f"deltas must have one entry per layer ({len(layers)}), got {len(deltas)}")
    ds = [check_probability(d, f"deltas[{j}]") for j, d in enumerate(deltas)]
    if sum(ds) > delta * (1 + 1e-12):
        raise ValueError(f"sum(deltas) == {sum(ds)} must be <= delta == {delta}")
    out = []
    for j, (lay, dj) in enumerate(zip(layers, ds, strict=True)):
        if not isinstance(lay, LayerNoiseModel):
            raise TypeError(f"layers[{j}] must be a LayerNoiseModel, got {type(lay).__name__}")
        b = subgaussian_budget_bound(lay.V, lay.L, n=lay.n, g=lay.g, c=lay.c, delta=dj)
        out.append(BudgetBound("E-Cor 1.5" if lay.c == 0.5 else "E-Cor 1.6", b.value, dj,
                               b.threshold, b.lipschitz_method, b.assumptions))
    return out


@implements("E-Thm 3.20", kind="P")
def thresholding_level(N: int, M: int, g: float, delta: float) -> float:
    r"""Entrywise threshold :math:`t_{N,\delta} = \sqrt{2g\log(2NM/\delta)/N}` (E-Thm 3.20).

    With R iid N(0, g/N) (N = rows), max_ij |R_ij| ≤ t w.p. ≥ 1 − δ; on that event hard
    thresholding at t keeps every |S_ij| > 2t and no entry outside supp(S).
    """
    N = check_int(N, "N", min_val=1)
    M = check_int(M, "M", min_val=1)
    g = check_scalar(g, "g", min_val=0.0)
    delta = check_probability(delta, "delta")
    return math.sqrt(2.0 * g * math.log(2.0 * N * M / delta) / N)
