r"""M-Thm 5.8 (sequential multi-layer mask certificate) and M-Thm 5.9 (multi-layer stationarity).

An ordered sequence of M mask steps; step j splits the *current* matrix of its layer
A_j = S_j + R_j (S_j ⊙ R_j = 0) and its budget B_j(R_j) is computed **in the intermediate
network** α^{(j−1)} (inputs and Lipschitz bounds of that network, Trap T7). Then

.. math::
    J(α^{(M)}) \le J(α^{(0)}) - \sum_j\lambda_{2,j}\|R_j\|_F^2 - \sum_j\lambda_{1,j}\|R_j\|_{1,ent}
                   + \sum_j B_j(R_j).

Also known as legacy "Theorem 5.13".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._registry import implements
from .._validation import check_matrix, check_scalar
from ..results import Certificate
from ._common import budget_value, check_lambdas, mask_assumption, observed_value, penalties

__all__ = ["MaskStep", "multilayer_certificate", "multilayer_stationarity_certificate"]


@dataclass(frozen=True)
class MaskStep:
    """One step of a sequential mask-pruning schedule.

    Attributes
    ----------
    R : array-like
        Entries removed at this step from the *current* matrix of the layer.
    budget : float or BudgetResult
        B_j(R_j) computed in the intermediate network α^{(j−1)}.
    lam1, lam2 : float
        The layer's elastic-net weights (the same for every step on that layer, Trap T15c).
    S : array-like, optional
        Kept entries of the current matrix (verifies disjointness when given).
    layer : str
        Free-form layer name for reports.
    """

    R: Any
    budget: Any
    lam1: float
    lam2: float
    S: Any = None
    layer: str = ""


def _evaluate(steps: Sequence[MaskStep]):
    if len(steps) == 0:
        raise ValueError("steps must contain at least one MaskStep")
    total_B = total_reward2 = total_reward1 = 0.0
    certified, methods, assumptions, details = True, set(), [], {}
    for j, st in enumerate(steps):
        if not isinstance(st, MaskStep):
            raise TypeError(f"steps[{j}] must be a MaskStep, got {type(st).__name__}")
        R = check_matrix(st.R, f"steps[{j}].R")
        lam1, lam2 = check_lambdas(st.lam1, st.lam2)
        a, _ = mask_assumption(R, st.S, f"steps[{j}].R")
        assumptions.append(f"step {j}: {a}")
        B, c, m = budget_value(st.budget, f"steps[{j}].budget")
        p2, p1 = penalties(R, R.new_tensor(lam1), R.new_tensor(lam2))
        total_B += B
        total_reward2 += p2
        total_reward1 += p1
        certified &= c
        methods.add(m)
        details[f"step{j}.budget"] = B
        details[f"step{j}.bound"] = B - p2 - p1
    details.update(sum_budgets=total_B, frobenius_reward=total_reward2, l1_reward=total_reward1)
    return total_B, total_reward2, total_reward1, certified, "+".join(sorted(methods)), \
        tuple(assumptions), details


@implements("M-Thm 5.8", kind="D")
def multilayer_certificate(steps: Sequence[MaskStep], *, observed: float | None = None,
                           scale: float = 0.0) -> Certificate:
    r"""Sequential multi-layer mask certificate (M-Thm 5.8).

    Implements M-Thm 5.8 [D] (arXiv 2606.02608):
    :math:`J(α^{(M)}) - J(α^{(0)}) \le \sum_j [B_j(R_j) - \lambda_{2,j}\|R_j\|_F^2
    - \lambda_{1,j}\|R_j\|_{1,ent}]`, each B_j computed in α^{(j−1)}.

    Parameters
    ----------
    steps : sequence of MaskStep
    observed : float, optional
        Measured ``J(α^{(M)}) − J(α^{(0)})`` (``check``); otherwise the ``condition`` for a
        certified decrease (Σ B_j < Σ rewards).
    """
    B, r2, r1, certified, method, assumptions, details = _evaluate(steps)
    bound = B - r2 - r1
    details["delta_J_bound"] = bound
    assumptions = (*assumptions, "each B_j computed in the intermediate network α^(j−1)")
    obs = observed_value(observed)
    statement = "J(α^(M)) − J(α^(0)) ≤ Σ_j [B_j(R_j) − λ2,j‖R_j‖_F² − λ1,j‖R_j‖_1]"
    if obs is None:
        return Certificate("M-Thm 5.8", statement + "; certified decrease iff ΣB_j < Σ rewards",
                           "condition", B, r2 + r1, certified, method, assumptions, details,
                           scale=scale)
    return Certificate("M-Thm 5.8", statement, "check", obs, bound, certified, method,
                       assumptions, details, scale=scale)


@implements("M-Thm 5.9", kind="D")
def multilayer_stationarity_certificate(steps: Sequence[MaskStep], *, eps: float = 0.0,
                                        h: float = 0.0) -> Certificate:
    r"""Multi-layer stationarity (M-Thm 5.9), conditional on budgets valid along the fractional path.

    Implements M-Thm 5.9 [D, conditional]: if every B_j dominates the step-j CE change of the
    fractional sequence (layers S_j + (1−h)R_j) for all h, and
    :math:`J(α_h) \ge J(α^{(0)}) - \varepsilon h`, then for h ∈ (0, 1]

    .. math:: \sum_j\lambda_{2,j}(2-h)\|R_j\|_F^2 + \sum_j\lambda_{1,j}\|R_j\|_{1,ent}
              \le \sum_j B_j(R_j) + \varepsilon ;

    ``h = 0`` is the liminf form (factor 2). Safe recipe for hypothesis (a): prune from the
    output backwards with L0 on the original downstream weights (Trap T7).
    """
    eps = check_scalar(eps, "eps", min_val=0.0)
    h = check_scalar(h, "h", min_val=0.0, max_val=1.0)
    B, r2, r1, certified, method, assumptions, details = _evaluate(steps)
    details.update(eps=eps, h=h)
    return Certificate(
        "M-Thm 5.9",
        "Σ_j λ2,j(2−h)‖R_j‖_F² + Σ_j λ1,j‖R_j‖_1 ≤ Σ_j B_j(R_j) + ε",
        "check", (2.0 - h) * r2 + r1, B + eps, certified, method,
        (*assumptions, "B_j valid along the fractional path for all h (hypothesis (a))",
         "J(α_h) ≥ J(α^(0)) − εh"),
        details,
    )
