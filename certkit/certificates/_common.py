"""Shared plumbing of the certificate functions: budget provenance, θ, penalties."""

from __future__ import annotations

import torch

from .._validation import as_tensor, check_disjoint, check_matrix, check_same_shape, check_scalar
from ..budget import BudgetResult

MASK_ASSUMPTION_CHECKED = "mask decomposition S ⊙ R = 0 (verified)"
MASK_ASSUMPTION_ASSERTED = "mask decomposition S ⊙ R = 0 (asserted by caller, not verified)"


def budget_value(budget, name: str = "budget") -> tuple[float, bool, str]:
    """Return (value, certified, lipschitz_method) for a float or a BudgetResult.

    A plain float has unknown provenance and is therefore *not* certified (Trap T25).
    """
    if isinstance(budget, BudgetResult):
        return budget.value, budget.certified, budget.lipschitz_method
    v = check_scalar(budget, name, min_val=0.0)
    return v, False, "user"


def check_theta(theta) -> float:
    return check_scalar(theta, "theta", min_val=0.0, max_val=1.0)


def check_lambdas(lam1, lam2) -> tuple[float, float]:
    return (
        check_scalar(lam1, "lam1", min_val=0.0),
        check_scalar(lam2, "lam2", min_val=0.0),
    )


def mask_assumption(R: torch.Tensor, S, name_r: str = "R") -> tuple[str, torch.Tensor | None]:
    """Verify S ⊙ R = 0 when S is given (raises PreconditionError), else record the assertion."""
    if S is None:
        return MASK_ASSUMPTION_ASSERTED, None
    S = check_matrix(S, "S")
    check_disjoint(("S", S), (name_r, R))
    return MASK_ASSUMPTION_CHECKED, S


def weights_like(G, R: torch.Tensor, name: str) -> torch.Tensor:
    """Entrywise nonnegative weights Γ (scalar or matrix of R's shape)."""
    G = as_tensor(G, name, ndim=(0, 2))
    if G.ndim == 2:
        check_same_shape(G, R, name, "R")
    if bool((G < 0).any()):
        raise ValueError(f"{name} must be entrywise >= 0")
    return G.expand_as(R) if G.ndim == 0 else G


def penalties(R: torch.Tensor, gamma1: torch.Tensor, gamma2: torch.Tensor) -> tuple[float, float]:
    """(Σ Γ2 R², Σ Γ1 |R|): the Frobenius and ℓ1 rewards of removing R."""
    return float((gamma2 * R * R).sum()), float((gamma1 * R.abs()).sum())


def observed_value(observed, name: str = "observed") -> float | None:
    if observed is None:
        return None
    return check_scalar(observed, name)
