r"""M-Thm 5.7 and E-Cor 1.2 — one-sided stationarity bounds the removable mask.

If :math:`\liminf_{h\downarrow0}[J(A_{1-h}) - J(A)]/h \ge -\varepsilon` (mask decomposition),
then :math:`2\lambda_2\|R\|_F^2 + \lambda_1\|R\|_{1,ent} \le B_T(R) + \varepsilon`; the general
form with :math:`J(A_\theta) \ge J(A) - \varepsilon(1-\theta)` gives, for every θ < 1,
:math:`\lambda_2(1+\theta)\|R\|_F^2 + \lambda_1\|R\|_{1,ent} \le B_T(R) + \varepsilon`.
"""

from __future__ import annotations

import torch

from .._registry import implements
from .._validation import as_tensor, check_matrix, check_same_shape, check_scalar
from ..results import Certificate
from ._common import budget_value, check_lambdas, mask_assumption, penalties, weights_like

__all__ = [
    "one_sided_derivative",
    "stationarity_certificate",
    "stationarity_slack",
    "weighted_stationarity_certificate",
]


def one_sided_derivative(grad_ce, R, lam1: float, lam2: float) -> float:
    r"""One-sided derivative :math:`D^- = \lim_{h\downarrow0}[J(A_{1-h}) - J(A)]/h` (mask case).

    .. math:: D^- = -\langle\nabla_A L_{CE}(A), R\rangle_F - 2\lambda_2\|R\|_F^2
                    - \lambda_1\|R\|_{1,ent}.
    """
    R = check_matrix(R, "R")
    G = as_tensor(grad_ce, "grad_ce", ndim=2)
    check_same_shape(G, R, "grad_ce", "R")
    lam1, lam2 = check_lambdas(lam1, lam2)
    return float(-(G * R).sum() - 2 * lam2 * (R * R).sum() - lam1 * R.abs().sum())


def stationarity_slack(d_minus: float) -> float:
    r"""Smallest admissible ε for M-Thm 5.7: :math:`\varepsilon^* = \max(0, -D^-)`."""
    return max(0.0, -check_scalar(d_minus, "d_minus"))


def _stationarity(result: str, statement: str, R: torch.Tensor, budget, pen2: float,
                  pen1: float, eps: float, theta: float, assumption: str) -> Certificate:
    B, certified, method = budget_value(budget)
    factor = 2.0 if theta == 1.0 else 1.0 + theta
    lhs = factor * pen2 + pen1
    return Certificate(
        result, statement, "check", lhs, B + eps, certified, method,
        (assumption, "one-sided stationarity with slack ε", "L_s ≥ L_s* on the path S + θR"),
        {"budget": B, "eps": eps, "theta": theta, "frobenius_reward": pen2, "l1_reward": pen1},
    )


@implements("M-Thm 5.7", kind="D")
def stationarity_certificate(R, budget, lam1: float, lam2: float, *, eps: float = 0.0,
                             theta: float = 1.0, S=None) -> Certificate:
    r"""One-sided stationarity bounds a removable mask (M-Thm 5.7).

    Implements M-Thm 5.7 [D] (arXiv 2606.02608). With ``theta = 1`` (default) the hypothesis
    is :math:`\liminf_{h\downarrow0}[J(A_{1-h}) - J(A)]/h \ge -\varepsilon` and the conclusion

    .. math:: 2\lambda_2\|R\|_F^2 + \lambda_1\|R\|_{1,ent} \le B_T(R) + \varepsilon ;

    with ``theta < 1`` the hypothesis is :math:`J(A_\theta) \ge J(A) - \varepsilon(1-\theta)`
    and the factor 2 becomes (1 + θ). Use :func:`stationarity_slack` of
    :func:`one_sided_derivative` for the smallest admissible ε.
    """
    R = check_matrix(R, "R")
    lam1, lam2 = check_lambdas(lam1, lam2)
    eps = check_scalar(eps, "eps", min_val=0.0)
    theta = check_scalar(theta, "theta", min_val=0.0, max_val=1.0)
    assumption, _ = mask_assumption(R, S)
    pen2, pen1 = penalties(R, R.new_tensor(lam1), R.new_tensor(lam2))
    return _stationarity("M-Thm 5.7", "(1+θ)λ2‖R‖_F² + λ1‖R‖_1 ≤ B_T(R) + ε  (θ=1: factor 2)",
                         R, budget, pen2, pen1, eps, theta, assumption)


@implements("E-Cor 1.2", kind="D")
def weighted_stationarity_certificate(R, budget, gamma1, gamma2, *, eps: float = 0.0,
                                      theta: float = 1.0, S=None) -> Certificate:
    r"""Weighted stationarity bound (E-Cor 1.2).

    Implements E-Cor 1.2 [D]: :math:`2\sum\Gamma_2R^2 + \sum\Gamma_1|R| \le B_T(R) + \varepsilon`
    (factor (1 + θ) in the general form). Constant weights reproduce
    :func:`stationarity_certificate`.
    """
    R = check_matrix(R, "R")
    eps = check_scalar(eps, "eps", min_val=0.0)
    theta = check_scalar(theta, "theta", min_val=0.0, max_val=1.0)
    g1 = weights_like(gamma1, R, "gamma1")
    g2 = weights_like(gamma2, R, "gamma2")
    assumption, _ = mask_assumption(R, S)
    pen2, pen1 = penalties(R, g1, g2)
    return _stationarity("E-Cor 1.2", "(1+θ)ΣΓ2R² + ΣΓ1|R| ≤ B_T(R) + ε  (θ=1: factor 2)",
                         R, budget, pen2, pen1, eps, theta, assumption)
