r"""M-Thm 5.5 (prune–restore certificate) and M-Cor 5.6 (when restoration improves the bound).

A = S + Q + P with pairwise disjoint supports: P is removed for good, Q is restored from an
over-pruned reservoir and must carry the **original** entries of A (Trap T14). The path is
A_θ = S + Q + θP and the budget B_T(P) must use L_s valid on *that* path (Trap T5).
"""

from __future__ import annotations

from .._registry import implements
from .._validation import check_disjoint, check_matrix, check_same_shape
from ..exceptions import PreconditionError
from ..results import Certificate
from ._common import budget_value, check_lambdas, check_theta, penalties
from .elastic_net_mask import mask_path_certificate

__all__ = ["prune_restore_certificate", "restoration_criterion"]


@implements("M-Thm 5.5", kind="D")
def prune_restore_certificate(S, Q, P, budget_P, lam1: float, lam2: float, *, A=None,
                              theta: float = 0.0, observed: float | None = None,
                              scale: float = 0.0) -> Certificate:
    r"""Prune–restore certificate (M-Thm 5.5).

    Implements M-Thm 5.5 [D] (arXiv 2606.02608): for A = S + Q + P with pairwise disjoint
    supports and the path A_θ = S + Q + θP,

    .. math::
        J(A_\theta) - J(A) \le (1-\theta)B_T(P) - \lambda_2(1-\theta^2)\|P\|_F^2
                                - \lambda_1(1-\theta)\|P\|_{1,ent}.

    This is M-Thm 5.4 applied to (S + Q) + P. Disjointness is verified
    (:class:`~certkit.exceptions.PreconditionError` otherwise); if ``A`` is given,
    ``S + Q + P == A`` is verified too (Q must hold the original values, Trap T14).
    """
    S, Q, P = (check_matrix(X, n) for X, n in ((S, "S"), (Q, "Q"), (P, "P")))
    lam1, lam2 = check_lambdas(lam1, lam2)
    theta = check_theta(theta)
    check_disjoint(("S", S), ("Q", Q), ("P", P))
    assumptions = ["S, Q, P pairwise disjoint (verified)", "L_s ≥ L_s* on the path S + Q + θP"]
    if A is not None:
        A = check_matrix(A, "A")
        check_same_shape(A, S, "A", "S")
        if not bool(((S + Q + P) == A).all()):
            raise PreconditionError(
                "S + Q + P != A: the restored part Q must carry the original entries of A "
                "(Trap T14); the theorem applies to the matrix S + Q + P only"
            )
        assumptions.append("S + Q + P = A (verified)")
    else:
        assumptions.append("Q holds the original entries of A (asserted by caller)")
    pen2, pen1 = penalties(P, P.new_tensor(lam1), P.new_tensor(lam2))
    return mask_path_certificate(
        "M-Thm 5.5",
        "J(A_θ) − J(A) ≤ (1−θ)B_T(P) − λ2(1−θ²)‖P‖_F² − λ1(1−θ)‖P‖_1",
        P, budget_P, pen2, pen1, theta, observed, scale, tuple(assumptions),
        {"lam1": lam1, "lam2": lam2},
    )


@implements("M-Cor 5.6", kind="D")
def restoration_criterion(Q, P, budget_R, budget_P, lam1: float, lam2: float) -> Certificate:
    r"""When restoring Q improves the *upper bound* (M-Cor 5.6).

    Implements M-Cor 5.6 [D, algebraic]: with R = Q + P,
    :math:`UB_{all} = B_T(R) - \lambda_2\|R\|_F^2 - \lambda_1\|R\|_{1,ent}` and
    :math:`UB_{res} = B_T(P) - \lambda_2\|P\|_F^2 - \lambda_1\|P\|_{1,ent}`,

    .. math:: UB_{res} < UB_{all} \iff B_T(R) - B_T(P) > \lambda_2\|Q\|_F^2 + \lambda_1\|Q\|_{1,ent}.

    Returned as a ``condition`` with lhs = λ2‖Q‖_F² + λ1‖Q‖_1 and rhs = B_T(R) − B_T(P);
    ``holds`` means restoration lowers the bound. It compares *bounds*, not objective values
    (Trap T14); ``B_T(R)`` and ``B_T(P)`` use L_s on their own paths.
    """
    Q = check_matrix(Q, "Q")
    P = check_matrix(P, "P")
    lam1, lam2 = check_lambdas(lam1, lam2)
    check_disjoint(("Q", Q), ("P", P))
    BR, cR, mR = budget_value(budget_R, "budget_R")
    BP, cP, mP = budget_value(budget_P, "budget_P")
    q2, q1 = penalties(Q, Q.new_tensor(lam1), Q.new_tensor(lam2))
    p2, p1 = penalties(P, P.new_tensor(lam1), P.new_tensor(lam2))
    R = Q + P
    r2, r1 = penalties(R, R.new_tensor(lam1), R.new_tensor(lam2))
    return Certificate(
        "M-Cor 5.6",
        "UB_res < UB_all ⇔ B_T(Q+P) − B_T(P) > λ2‖Q‖_F² + λ1‖Q‖_1",
        "condition", q2 + q1, BR - BP, cR and cP, mR if mR == mP else f"{mR}/{mP}",
        ("Q, P disjoint (verified)",),
        {"UB_all": BR - r2 - r1, "UB_res": BP - p2 - p1, "budget_R": BR, "budget_P": BP},
    )
