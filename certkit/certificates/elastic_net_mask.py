r"""M-Thm 5.4 (elastic-net mask certificate) and its weighted variant E-Cor 1.1.

Mask decomposition A = S + R with S ⊙ R = 0, objective
:math:`J(A) = L_{CE}(A) + \lambda_2\|A\|_F^2 + \lambda_1\|A\|_{1,ent} + C`. For all θ ∈ [0, 1]:

.. math::
    J(A_\theta) - J(A) \le (1-\theta)B_T(R) - \lambda_2(1-\theta^2)\|R\|_F^2
                            - \lambda_1(1-\theta)\|R\|_{1,ent},

and full pruning certifiably decreases J whenever
:math:`B_T(R) < \lambda_2\|R\|_F^2 + \lambda_1\|R\|_{1,ent}` (certificate margin CM > 0).
The weighted form (E-Cor 1.1) replaces the penalties by :math:`\sum\Gamma_2 R^2` and
:math:`\sum\Gamma_1|R|`; constant weights reproduce M-Thm 5.4 exactly.
"""

from __future__ import annotations

from .._registry import implements
from .._validation import check_matrix, check_scalar
from ..results import Certificate
from ._common import (
    budget_value,
    check_lambdas,
    check_theta,
    mask_assumption,
    observed_value,
    penalties,
    weights_like,
)

__all__ = ["certificate_margin", "elastic_net_certificate", "weighted_elastic_net_certificate"]


def mask_path_certificate(result: str, statement: str, R, budget, pen2: float, pen1: float,
                          theta: float, observed, scale: float, assumptions: tuple[str, ...],
                          extra: dict | None = None) -> Certificate:
    """Shared evaluation of the mask-path bound with rewards (pen2 = Frobenius, pen1 = ℓ1)."""
    B, certified, method = budget_value(budget)
    reward = (1.0 - theta**2) * pen2 + (1.0 - theta) * pen1
    bound = (1.0 - theta) * B - reward
    obs = observed_value(observed)
    details = {
        "budget": B,
        "theta": theta,
        "frobenius_reward": pen2,
        "l1_reward": pen1,
        "delta_J_bound": bound,
        "certificate_margin": pen2 + pen1 - B,
        **(extra or {}),
    }
    if obs is None:
        # Sufficient condition for a certified decrease at θ.
        return Certificate(result, statement + "; certified decrease iff (1−θ)B_T < reward",
                           "condition", (1.0 - theta) * B, reward, certified, method,
                           assumptions, details, scale=scale)
    return Certificate(result, statement, "check", obs, bound, certified, method, assumptions,
                       details, scale=scale)


@implements("M-Thm 5.4", kind="D")
def elastic_net_certificate(R, budget, lam1: float, lam2: float, *, S=None, theta: float = 0.0,
                            observed: float | None = None, scale: float = 0.0) -> Certificate:
    r"""Elastic-net mask certificate (M-Thm 5.4).

    Implements M-Thm 5.4 [D] (arXiv 2606.02608):

    .. math::
        J(A_\theta) - J(A) \le (1-\theta)B_T(R) - \lambda_2(1-\theta^2)\|R\|_F^2
                                - \lambda_1(1-\theta)\|R\|_{1,ent}.

    Parameters
    ----------
    R : array-like (n, m)
        Removed entries, ``R = (1 − Mask) ⊙ A``.
    budget : float or BudgetResult
        :math:`B_T(R)` with L_s valid on the path S + θR.
    lam1, lam2 : float ≥ 0
        Elastic-net weights (λ2 multiplies ‖A‖_F² without ½; SGD weight decay wd ↔ λ2 = wd/2,
        Trap T15).
    S : array-like (n, m), optional
        Kept entries; when given, disjoint supports are *verified* and overlap raises
        :class:`~certkit.exceptions.PreconditionError` (a ``ValueError``).
    theta : float in [0, 1]
    observed : float, optional
        Measured ``J(A_θ) − J(A)``; turns the result into a ``check``. Without it the result is
        the ``condition`` "certified decrease": lhs = (1−θ)B_T, rhs = the reward.

    Returns
    -------
    Certificate
        ``details`` holds ``delta_J_bound`` (the right-hand side) and ``certificate_margin``
        CM = λ2‖R‖_F² + λ1‖R‖_{1,ent} − B_T (CM > 0: certified decrease).
    """
    R = check_matrix(R, "R")
    lam1, lam2 = check_lambdas(lam1, lam2)
    theta = check_theta(theta)
    assumption, _ = mask_assumption(R, S)
    pen2, pen1 = penalties(R, R.new_tensor(lam1), R.new_tensor(lam2))
    return mask_path_certificate(
        "M-Thm 5.4",
        "J(A_θ) − J(A) ≤ (1−θ)B_T(R) − λ2(1−θ²)‖R‖_F² − λ1(1−θ)‖R‖_1",
        R, budget, pen2, pen1, theta, observed, scale,
        (assumption, "L_s ≥ L_s* on the path S + θR"),
        {"lam1": lam1, "lam2": lam2},
    )


@implements("E-Cor 1.1", kind="D")
def weighted_elastic_net_certificate(R, budget, gamma1, gamma2, *, S=None, theta: float = 0.0,
                                     observed: float | None = None,
                                     scale: float = 0.0) -> Certificate:
    r"""Coordinatewise weighted mask certificate (E-Cor 1.1).

    Implements E-Cor 1.1 [D]: with entrywise weights Γ1, Γ2 ≥ 0 and
    :math:`J_\Gamma(A) = L_{CE}(A) + \sum\Gamma_2 A^2 + \sum\Gamma_1|A| + C`,

    .. math::
        J_\Gamma(A_\theta) - J_\Gamma(A) \le (1-\theta)B_T(R) - (1-\theta^2)\sum\Gamma_{2,ij}R_{ij}^2
                                             - (1-\theta)\sum\Gamma_{1,ij}|R_{ij}|.

    Only entries on supp(R) matter; constant weights reproduce :func:`elastic_net_certificate`.
    """
    R = check_matrix(R, "R")
    theta = check_theta(theta)
    g1 = weights_like(gamma1, R, "gamma1")
    g2 = weights_like(gamma2, R, "gamma2")
    assumption, _ = mask_assumption(R, S)
    pen2, pen1 = penalties(R, g1, g2)
    return mask_path_certificate(
        "E-Cor 1.1",
        "J_Γ(A_θ) − J_Γ(A) ≤ (1−θ)B_T(R) − (1−θ²)ΣΓ2R² − (1−θ)ΣΓ1|R|",
        R, budget, pen2, pen1, theta, observed, scale,
        (assumption, "L_s ≥ L_s* on the path S + θR"),
    )


def certificate_margin(R, budget, lam1: float, lam2: float) -> float:
    r"""Certificate margin :math:`CM(R) = \lambda_2\|R\|_F^2 + \lambda_1\|R\|_{1,ent} - B_T(R)`.

    CM > 0 means "certified decrease" of the elastic-net objective by full pruning
    (M-Thm 5.4); sufficient, not necessary.
    """
    R = check_matrix(R, "R")
    lam1, lam2 = check_lambdas(lam1, lam2)
    B = budget_value(budget)[0]
    pen2, pen1 = penalties(R, R.new_tensor(lam1), R.new_tensor(lam2))
    return check_scalar(pen2 + pen1 - B, "certificate margin")
