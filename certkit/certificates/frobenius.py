r"""M-Thm 5.3 (additive Frobenius certificate) and the deterministic skeleton of M-Thm 4.7.

Any decomposition A = S + R (supports may overlap: fine-tuning drift, Trap T8), objective
:math:`J_2(A) = L_{CE}(A) + \lambda_2\|A\|_F^2 + C`. For all θ,

.. math::
    J_2(A_\theta) - J_2(A) \le (1-\theta)B_T(R) - \lambda_2(1-\theta^2)\|R\|_F^2
                               - 2\lambda_2(1-\theta)\langle S,R\rangle_F ,

using the exact identity
:math:`\|S+\theta R\|_F^2 - \|S+R\|_F^2 = -(1-\theta^2)\|R\|_F^2 - 2(1-\theta)\langle S,R\rangle_F`.
"""

from __future__ import annotations

from .._registry import implements
from .._validation import check_matrix, check_same_shape, check_scalar
from ..exceptions import PreconditionError
from ..results import Certificate
from ._common import budget_value, check_theta, observed_value

__all__ = ["frobenius_certificate", "frobenius_stationarity_certificate"]


@implements("M-Thm 5.3", kind="D")
def frobenius_certificate(S, R, budget, lam2: float, *, theta: float = 0.0,
                          cross_bound: float | None = None, observed: float | None = None,
                          scale: float = 0.0) -> Certificate:
    r"""Additive Frobenius certificate (M-Thm 5.3).

    Implements M-Thm 5.3 [D] (arXiv 2606.02608):

    .. math::
        J_2(A_\theta) - J_2(A) \le (1-\theta)B_T(R) - \lambda_2(1-\theta^2)\|R\|_F^2
                                   - 2\lambda_2(1-\theta)\langle S,R\rangle_F .

    With ``cross_bound = η ≥ |⟨S,R⟩_F|`` the cross term is replaced by ``+2λ2(1−θ)η``
    (η is checked against the actual inner product). Full removal decreases J₂ whenever
    :math:`B_T(R) + 2\lambda_2|\langle S,R\rangle_F| < \lambda_2\|R\|_F^2`.

    Parameters
    ----------
    S, R : array-like (n, m)
        Any decomposition A = S + R.
    budget : float or BudgetResult
    lam2 : float ≥ 0
    theta : float in [0, 1]
    cross_bound : float, optional
    observed : float, optional
        Measured ``J₂(A_θ) − J₂(A)``: the result becomes a ``check``; otherwise the
        ``condition`` for a certified decrease at θ.
    """
    S = check_matrix(S, "S")
    R = check_matrix(R, "R")
    check_same_shape(S, R, "S", "R")
    lam2 = check_scalar(lam2, "lam2", min_val=0.0)
    theta = check_theta(theta)
    B, certified, method = budget_value(budget)
    inner = float((S * R).sum())
    fro2 = float((R * R).sum())
    if cross_bound is None:
        cross = 2.0 * lam2 * (1.0 - theta) * inner
        cross_desc = "−2λ2(1−θ)⟨S,R⟩_F"
    else:
        eta = check_scalar(cross_bound, "cross_bound", min_val=0.0)
        if abs(inner) > eta * (1 + 1e-12) + 1e-300:
            raise PreconditionError(
                f"cross_bound == {eta} is smaller than |⟨S,R⟩_F| == {abs(inner)}; "
                "it must bound the Frobenius inner product"
            )
        cross = -2.0 * lam2 * (1.0 - theta) * eta
        cross_desc = "+2λ2(1−θ)η"
    reward = lam2 * (1.0 - theta**2) * fro2 + cross
    bound = (1.0 - theta) * B - reward
    obs = observed_value(observed)
    details = {
        "budget": B, "theta": theta, "lam2": lam2, "frobenius_sq": fro2, "inner_SR": inner,
        "delta_J_bound": bound,
        "certificate_margin": lam2 * fro2 - 2 * lam2 * abs(inner) - B,
    }
    statement = f"J₂(A_θ) − J₂(A) ≤ (1−θ)B_T(R) − λ2(1−θ²)‖R‖_F² {cross_desc}"
    assumptions = ("additive decomposition A = S + R", "L_s ≥ L_s* on the path S + θR")
    if obs is None:
        return Certificate("M-Thm 5.3", statement + "; certified decrease iff (1−θ)B_T < reward",
                           "condition", (1.0 - theta) * B, reward, certified, method,
                           assumptions, details, scale=scale)
    return Certificate("M-Thm 5.3", statement, "check", obs, bound, certified, method,
                       assumptions, details, scale=scale)


@implements("M-Thm 4.7", kind="D")
def frobenius_stationarity_certificate(S, R, budget, lam2: float, *, eps: float = 0.0,
                                       scale: float = 0.0) -> Certificate:
    r"""Deterministic skeleton of M-Thm 4.7: stationarity bounds the removable Frobenius mass.

    Implements the [D] skeleton of M-Thm 4.7 (THEORY §2.4.4, spec addition derived from
    M-Thm 5.3): for any additive decomposition A = S + R and
    :math:`\varepsilon \ge \max(0, -D^-)` with :math:`D^-` the one-sided derivative of J₂ along
    −R at θ = 1,

    .. math:: \|R\|_F^2 \le \frac{B_T(R) + \varepsilon + 2\lambda_2|\langle S,R\rangle_F|}{2\lambda_2}.

    Returned as a ``check`` with lhs = ‖R‖_F² and that right-hand side (needs λ2 > 0).
    """
    S = check_matrix(S, "S")
    R = check_matrix(R, "R")
    check_same_shape(S, R, "S", "R")
    lam2 = check_scalar(lam2, "lam2", min_val=0.0, include_min=False)
    eps = check_scalar(eps, "eps", min_val=0.0)
    B, certified, method = budget_value(budget)
    inner = float((S * R).sum())
    fro2 = float((R * R).sum())
    rhs = (B + eps + 2 * lam2 * abs(inner)) / (2 * lam2)
    return Certificate(
        "M-Thm 4.7",
        "‖R‖_F² ≤ (B_T(R) + ε + 2λ2|⟨S,R⟩_F|) / (2λ2)",
        "check", fro2, rhs, certified, method,
        ("liminf_{h↓0}[J₂(A_{1−h}) − J₂(A)]/h ≥ −ε", "L_s ≥ L_s* on the path S + θR"),
        {"budget": B, "eps": eps, "lam2": lam2, "inner_SR": inner},
        scale=scale,
    )
