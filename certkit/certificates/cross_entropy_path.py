r"""M-Lemma 5.1 — the cross-entropy path bound.

For any decomposition A = S + R and any θ ∈ [0, 1], with ``L_s ≥ L_s*`` on each path,

.. math:: |L_{CE}(A_\theta) - L_{CE}(A)| \le (1-\theta)\,B_T(R).

Also known as legacy "Lemma 5.4" (audit figures, Trap T19).
"""

from __future__ import annotations

from .._registry import implements
from ..results import Certificate
from ._common import budget_value, check_theta, observed_value

__all__ = ["ce_path_bound"]


@implements("M-Lemma 5.1", kind="D")
def ce_path_bound(budget, theta: float = 0.0, *, observed: float | None = None,
                  scale: float = 0.0) -> Certificate:
    r"""Cross-entropy path bound :math:`|L_{CE}(A_\theta)-L_{CE}(A)| \le (1-\theta)B_T(R)`.

    Implements M-Lemma 5.1 [D] (arXiv 2606.02608). Holds for every decomposition A = S + R
    (mask or additive) provided every ``L_s`` in the budget bounds the local Lipschitz constant
    of ψ2 on the segment {A_θ v_s}.

    Parameters
    ----------
    budget : float or BudgetResult
        :math:`B_T(R)` (certified only if a :class:`~certkit.budget.BudgetResult` built from a
        certified :class:`~certkit.results.LipschitzBound` is passed).
    theta : float in [0, 1]
        Interpolation point; θ = 0 is full removal.
    observed : float, optional
        The measured :math:`|L_{CE}(A_\theta) - L_{CE}(A)|` on the *same* T (Trap T20).
        With it the result is a ``check``; without it only the bound is returned.
    scale : float
        Magnitude of the largest summed term (e.g. max per-sample loss) for the tolerance
        rule of THEORY §0.3.

    Returns
    -------
    Certificate
    """
    B, certified, method = budget_value(budget)
    theta = check_theta(theta)
    obs = observed_value(observed)
    if obs is not None and obs < 0:
        raise ValueError(f"observed == {obs}, must be >= 0 (an absolute loss change)")
    return Certificate(
        result="M-Lemma 5.1",
        statement="|L_CE(A_θ) − L_CE(A)| ≤ (1−θ)·B_T(R)",
        kind="bound" if obs is None else "check",
        lhs=obs,
        rhs=(1.0 - theta) * B,
        certified=certified,
        lipschitz_method=method,
        assumptions=("L_s ≥ L_s* on every path segment {A_θ v_s}",),
        details={"budget": B, "theta": theta},
        scale=scale,
    )
