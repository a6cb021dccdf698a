"""Matrix and vector norms with explicit names (THEORY §1.1, Trap T3).

The paper writes ``‖A‖_∞`` for the *induced* ℓ∞ norm (max absolute row sum) and ``‖A‖_1`` for
the *entrywise* ℓ1 norm of the elastic net. ``numpy.linalg.norm(A, 1)`` is the induced ℓ1 norm
(max column sum) — wrong for both — so certkit never exposes a bare ``l1``.
All functions accept torch tensors or numpy arrays and compute in float64.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from ._validation import check_matrix

__all__ = ["induced_inf", "entrywise_l1", "fro", "op", "frobenius_inner"]

#: Above this smaller dimension `op` uses the float64 Gram matrix instead of a full SVD.
_GRAM_MIN_DIM = 64


def induced_inf(A) -> float:
    r"""Induced ℓ∞→ℓ∞ norm: the maximum absolute row sum.

    .. math:: \|A\|_{\infty\to\infty} = \max_i \sum_j |A_{ij}|
              = \sup_{x\neq 0} \|Ax\|_\infty / \|x\|_\infty .

    Used by the Lipschitz bounds L0/L1 (THEORY §1.6). Conv kernels must first be viewed as
    ``C_out × (C_in·k_h·k_w)`` matrices.
    """
    A = check_matrix(A, "A")
    return float(A.abs().sum(dim=1).max())


def entrywise_l1(A) -> float:
    r"""Entrywise ℓ1 norm :math:`\|A\|_{1,\mathrm{ent}} = \sum_{ij} |A_{ij}|` (elastic net, M-Thm 5.4)."""
    A = check_matrix(A, "A")
    return float(A.abs().sum())


def fro(A) -> float:
    r"""Frobenius norm :math:`\|A\|_F = (\sum_{ij} A_{ij}^2)^{1/2}`."""
    A = check_matrix(A, "A")
    return float(torch.linalg.matrix_norm(A, "fro"))


def op(A) -> float:
    r"""Operator (spectral) norm :math:`\|A\|_{op} = s_1(A)`, the largest singular value."""
    A = check_matrix(A, "A")
    if min(A.shape) == 0:
        return 0.0
    if min(A.shape) <= _GRAM_MIN_DIM:
        return float(torch.linalg.matrix_norm(A, 2))
    # Large matrices: top eigenvalue of the smaller float64 Gram matrix (relative error of
    # s_1 ~ machine epsilon; a full SVD is 10-50x slower, ENV_NOTES "Speed facts").
    G = A @ A.T if A.shape[0] <= A.shape[1] else A.T @ A
    top = scipy.linalg.eigh(G.numpy(), eigvals_only=True, subset_by_index=[G.shape[0] - 1] * 2)
    return float(np.sqrt(max(float(top[0]), 0.0)))


def frobenius_inner(S, R) -> float:
    r"""Frobenius inner product :math:`\langle S, R\rangle_F = \sum_{ij} S_{ij}R_{ij}`."""
    S = check_matrix(S, "S")
    R = check_matrix(R, "R")
    if S.shape != R.shape:
        raise ValueError(f"S and R must have the same shape, got {tuple(S.shape)} and {tuple(R.shape)}")
    return float((S * R).sum())
