r"""Sampled *estimates* E1/E2 of the local constant ``L_s`` for an arbitrary ψ2 (THEORY §1.7).

These are **lower estimates, not bounds**: a maximum over finitely many θ can miss short pieces
or curvature between grid points, so the data-path certificates built on them are only
"conditional on L_s being an upper bound" and may fail (Traps T5, T25). Every result is a
:class:`~certkit.results.LipschitzBound` with ``certified=False``; a ``safety_factor`` scales the
values but never changes that status. Using the E2 secant at θ = 0 inside M-Lemma 5.1 makes the
lemma hold tautologically (Trap T6) — such a check carries no evidence.

ψ2 is any differentiable torch callable mapping the pre-bias layer output ``u`` of shape
(B, n) — or (B, P, n) for a layer applied at P positions — to logits of shape (B, K). Samples
must be processed independently (e.g. BatchNorm in eval mode), because Jacobians are taken
through the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._registry import implements
from .._validation import as_tensor, check_int, check_matrix, check_same_shape, check_scalar
from ..results import LipschitzBound

__all__ = ["jacobian_estimate", "secant_estimate", "DEFAULT_N_GRID"]

#: Default number of θ grid points (θ = 0 and θ = 1 always included). Arbitrary; an estimate
#: gets no rigour from a finer grid (THEORY §1.7).
DEFAULT_N_GRID = 33


def _check_common(psi2, S, R, v, n_grid, safety_factor, dtype):
    if not callable(psi2):
        raise TypeError(f"psi2 must be callable, got {type(psi2).__name__}")
    S = check_matrix(S, "S")
    R = check_matrix(R, "R")
    check_same_shape(S, R, "S", "R")
    v = as_tensor(v, "v", ndim=(2, 3), shape_hint="(|T|, m) or (|T|, P, m)")
    if v.shape[-1] != S.shape[1]:
        raise ValueError(
            f"v must have last dimension m = S.shape[1] = {S.shape[1]}, got shape {tuple(v.shape)}"
        )
    n_grid = check_int(n_grid, "n_grid", min_val=2)
    safety_factor = check_scalar(safety_factor, "safety_factor", min_val=0.0, include_min=False)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype == {dtype}, must be torch.float32 or torch.float64")
    return S, R, v, n_grid, safety_factor


def _call(psi2: Callable, u: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    out = psi2(u.to(dtype))
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != u.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"psi2 must return logits of shape (B, K) = ({u.shape[0]}, K), got {shape}"
        )
    return out


def _sup(t: torch.Tensor) -> torch.Tensor:
    """Per-sample sup norm over all trailing dimensions."""
    return t.reshape(t.shape[0], -1).abs().amax(dim=1)


def _finalize(vals: torch.Tensor, safety_factor: float, method: str) -> LipschitzBound:
    vals = (vals.to(torch.float64) * safety_factor).tolist()
    return LipschitzBound(tuple(vals), certified=False, method=method, path_dependent=True)


@implements("THEORY-1.7-E1", kind="E")
def jacobian_estimate(
    psi2: Callable[[torch.Tensor], torch.Tensor],
    S,
    R,
    v,
    *,
    n_grid: int = DEFAULT_N_GRID,
    mode: str = "directional",
    safety_factor: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> LipschitzBound:
    r"""E1 Jacobian sampling: a **lower estimate** of ``L_s*``, not a bound (THEORY §1.7, T6).

    On the grid θ_i = i/(n_grid−1) (θ = 0 and 1 included) with ``u_θ = (S + θR) v_s``:

    * ``mode="directional"``: :math:`\max_i \|J(\theta_i)\,d_s\|_\infty / \|d_s\|_\infty`
      (one Jacobian-vector product per θ; 0 where ``d_s = 0``). Always ≤ ``L_s*``.
    * ``mode="induced"``: :math:`\max_i \|J(\theta_i)\|_{\infty\to\infty}` (max over logits of the
      ℓ1 norm of that logit's gradient; K vector-Jacobian products). Can be above or below ``L_s*``.

    Parameters
    ----------
    psi2 : callable
        Torch function ``u ↦ logits`` with ``u`` of shape (B, n) or (B, P, n).
    S, R : array-like, shape (n, m)
        Segment ``A_θ = S + θR``.
    v : array-like, shape (|T|, m) or (|T|, P, m)
        Layer inputs ``v_s = ψ1(s)``.
    n_grid : int, default 33
    mode : {"directional", "induced"}
    safety_factor : float, default 1.0
        Multiplies the values (> 0); the result stays ``certified=False``.
    dtype : torch.dtype, default float64
        Dtype in which ψ2 is evaluated.

    Returns
    -------
    LipschitzBound
        ``certified=False``, ``method="estimate:jacobian"``, ``path_dependent=True``.
    """
    S, R, v, n_grid, safety_factor = _check_common(psi2, S, R, v, n_grid, safety_factor, dtype)
    if mode not in ("directional", "induced"):
        raise ValueError(f"mode == {mode!r}, must be 'directional' or 'induced'")
    u0 = v @ S.T
    d = v @ R.T
    dn = _sup(d)
    best = torch.zeros(v.shape[0], dtype=torch.float64)
    for theta in torch.linspace(0.0, 1.0, n_grid, dtype=torch.float64).tolist():
        u = (u0 + theta * d).to(dtype)
        if mode == "directional":
            _, jd = torch.autograd.functional.jvp(
                lambda w: _call(psi2, w, dtype), (u,), (d.to(dtype),)
            )
            val = _sup(jd.to(torch.float64))
            val = torch.where(dn > 0, val / torch.where(dn > 0, dn, 1.0), torch.zeros_like(val))
        else:
            u = u.detach().requires_grad_(True)
            out = _call(psi2, u, dtype)
            val = torch.zeros(v.shape[0], dtype=torch.float64)
            for c in range(out.shape[1]):
                (g,) = torch.autograd.grad(out[:, c].sum(), u, retain_graph=True,
                                           allow_unused=True)
                if g is None:
                    continue
                row = g.reshape(g.shape[0], -1).abs().sum(dim=1).to(torch.float64)
                val = torch.maximum(val, row)
        best = torch.maximum(best, val.detach())
    return _finalize(best, safety_factor, "estimate:jacobian")


@implements("THEORY-1.7-E2", kind="E")
def secant_estimate(
    psi2: Callable[[torch.Tensor], torch.Tensor],
    S,
    R,
    v,
    *,
    n_grid: int = DEFAULT_N_GRID,
    pairs: str = "endpoint",
    safety_factor: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> LipschitzBound:
    r"""E2 secant sampling: a **lower estimate** of ``L_s*``, not a bound (THEORY §1.7, T6).

    With ``f(θ) = ψ2((S + θR) v_s)`` on the grid θ_i = i/(n_grid−1):

    * ``pairs="endpoint"`` (THEORY §1.7):
      :math:`\max_{\theta_i<1} \|f(\theta_i) - f(1)\|_\infty / ((1-\theta_i)\|d_s\|_\infty)`;
    * ``pairs="all"``: the maximum over all grid pairs ``θ_i < θ_j``.

    Both are ≤ ``L_s*``; 0 where ``d_s = 0``. Used with θ = 0 inside M-Lemma 5.1 this makes the
    lemma tautological (Trap T6).

    Parameters
    ----------
    psi2, S, R, v, n_grid, safety_factor, dtype
        As in :func:`jacobian_estimate`.
    pairs : {"endpoint", "all"}

    Returns
    -------
    LipschitzBound
        ``certified=False``, ``method="estimate:secant"``, ``path_dependent=True``.
    """
    S, R, v, n_grid, safety_factor = _check_common(psi2, S, R, v, n_grid, safety_factor, dtype)
    if pairs not in ("endpoint", "all"):
        raise ValueError(f"pairs == {pairs!r}, must be 'endpoint' or 'all'")
    u0 = v @ S.T
    d = v @ R.T
    dn = _sup(d)
    thetas = torch.linspace(0.0, 1.0, n_grid, dtype=torch.float64)
    with torch.no_grad():
        f = torch.stack(
            [_call(psi2, u0 + float(t) * d, dtype).to(torch.float64) for t in thetas], dim=1
        )  # (B, G, K)
    if pairs == "endpoint":
        diff = (f[:, :-1] - f[:, -1:]).abs().amax(dim=2)  # (B, G-1)
        gaps = 1.0 - thetas[:-1]
        ratio = (diff / gaps).amax(dim=1)
    else:
        diff = (f[:, :, None, :] - f[:, None, :, :]).abs().amax(dim=3)  # (B, G, G)
        gaps = (thetas[None, :] - thetas[:, None]).abs()
        gaps = torch.where(gaps > 0, gaps, torch.inf)
        ratio = (diff / gaps).amax(dim=(1, 2))
    vals = torch.where(dn > 0, ratio / torch.where(dn > 0, dn, 1.0), torch.zeros_like(ratio))
    return _finalize(vals, safety_factor, "estimate:secant")
