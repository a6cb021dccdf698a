"""Singular values and the deterministic spectral ingredients of M-Cor 4.10–4.11, E-Prop 3.30.

Each ``*_bound`` function evaluates one deterministic inequality on concrete matrices and
returns a :class:`~certkit.results.Certificate` (``kind="check"``: ``lhs`` observed, ``rhs`` the
bound, ``holds`` with the THEORY §0.3 tolerance). They are [D] results: a violation is a bug.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import scipy.linalg
import torch
from scipy.linalg.blas import dsyrk

from .._registry import implements
from .._validation import check_int, check_matrix, check_same_shape, check_scalar
from ..exceptions import PreconditionError
from ..results import Certificate

__all__ = [
    "singular_values",
    "covariance_eigenvalues",
    "weyl_bound",
    "eckart_young_tail_bound",
    "markov_count_bound",
    "wedin_bound",
    "rank_inequality_bound",
]

#: Above this smaller dimension, ``method="auto"`` uses the float64 Gram matrix + eigvalsh
#: (ENV_NOTES "Speed facts": ~10x faster than svdvals for 768×3072; float64 keeps the small
#: eigenvalues accurate). Below it, a float64 SVD is cheap and more accurate.
GRAM_MIN_DIM = 128
#: Relative size (w.r.t. the largest singular value) below which a spectral gap is treated as
#: zero by :func:`wedin_bound` (float64 SVD accuracy is ~1e-15 relative).
GAP_RTOL = 1e-10
#: Relative tolerance of the ECDF comparison in :func:`rank_inequality_bound` (float64 SVD
#: rounding moves singular values by ~1e-15·s₁; the inequality is exact in exact arithmetic).
ECDF_RTOL = 1e-9


def _svals(A: torch.Tensor) -> np.ndarray:
    """Descending float64 singular values by SVD (accurate; small matrices)."""
    if A.numel() == 0:
        return np.zeros(0)
    return torch.linalg.svdvals(A).cpu().numpy()


_BLAS_CONTROLLER = None


def _blas_threads():
    """Context limiting BLAS/LAPACK to ``torch.get_num_threads()`` threads (no-op without
    ``threadpoolctl``).

    The Gram product and the tridiagonal reduction inside ``eigvalsh`` run in numpy's BLAS,
    which does not follow torch's thread setting. With more BLAS threads than free cores
    (e.g. ``pytest -n 2`` on 2 cores) OpenBLAS spin-waits: a 768×768 ``syevr`` then took
    0.1–7.5 s instead of 0.03 s. Following torch's setting makes one knob control both.
    """
    global _BLAS_CONTROLLER
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    if _BLAS_CONTROLLER is None:
        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=max(1, torch.get_num_threads()), user_api="blas")


def _gram_eigs(A: torch.Tensor) -> np.ndarray:
    """Eigenvalues (ascending, ≥ 0) of the smaller float64 Gram matrix of ``A``.

    The Gram matrix is formed by numpy (``a.T @ a`` is dispatched to BLAS ``syrk``, half the
    flops of a general product) and diagonalised by LAPACK ``syevr`` through scipy.
    """
    N, M = A.shape
    a = A.detach().to(torch.float64).cpu().numpy()
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    with _blas_threads():
        # a.T is a Fortran-ordered (M, N) view: no copy. syrk fills the upper triangle of
        # a.T·a (M ≤ N, trans=0) or a·a.T (M > N, trans=1); same BLAS as the eigensolver.
        G = dsyrk(1.0, a.T, trans=0 if M <= N else 1)
        ev = scipy.linalg.eigvalsh(G, lower=False, driver="evr", check_finite=False,
                                   overwrite_a=True)
    return np.maximum(ev, 0.0)


@implements("M-Def 2.1", kind="D")
def singular_values(W, *, method: str = "auto") -> np.ndarray:
    r"""Singular values :math:`s_1 \ge \dots \ge s_{\min(N,M)} \ge 0` of W, zeros included.

    Implements M-Def 2.1 [D] (arXiv 2606.02608): the singular-value ESD ν_W is the uniform
    measure on these min(N, M) values.

    Parameters
    ----------
    W : array_like or torch.Tensor, shape (rows, cols)
        Finite matrix (converted to float64).
    method : {"auto", "svd", "gram"}, default="auto"
        ``"svd"``: float64 ``svdvals``. ``"gram"``: square roots of the eigenvalues of the
        smaller float64 Gram matrix (fast; absolute error ≈ 1e-8·s₁ on the smallest values).
        ``"auto"``: ``"gram"`` when ``min(rows, cols) >= GRAM_MIN_DIM``, else ``"svd"``.

    Returns
    -------
    numpy.ndarray
        Descending, float64, clamped at 0.
    """
    A = check_matrix(W, "W")
    if method not in ("auto", "svd", "gram"):
        raise ValueError(f"method == {method!r}, must be 'auto', 'svd' or 'gram'")
    if method == "auto":
        method = "gram" if min(A.shape) >= GRAM_MIN_DIM else "svd"
    if method == "svd":
        return np.maximum(_svals(A), 0.0)
    return np.sqrt(_gram_eigs(A))[::-1].copy()


@implements("M-Def 2.1", kind="D")
def covariance_eigenvalues(W, *, drop_zeros: bool = False) -> np.ndarray:
    r"""Eigenvalues of :math:`X = W^\top W/N` (N = rows), ascending.

    Implements M-Def 2.1 [D] (arXiv 2606.02608): the M eigenvalues of WᵀW are the squares of
    the min(N, M) singular values plus M − min(N, M) zeros.

    Parameters
    ----------
    W : array_like or torch.Tensor, shape (N, M)
        Finite matrix.
    drop_zeros : bool, default=False
        If True, omit the ``max(0, M − N)`` structural zeros (returns min(N, M) values).

    Returns
    -------
    numpy.ndarray
        float64 eigenvalues, ascending; the structural zeros are exact zeros. Computed from
        the smaller float64 Gram matrix.
    """
    A = check_matrix(W, "W")
    N, M = A.shape
    ev = _gram_eigs(A) / N
    if not drop_zeros and M > N:
        ev = np.concatenate([np.zeros(M - N), ev])
    return ev


def _pair(S, R) -> tuple[torch.Tensor, torch.Tensor]:
    S = check_matrix(S, "S")
    R = check_matrix(R, "R")
    check_same_shape(S, R, "S", "R")
    return S, R


@implements("M-Cor 4.10", "E-Cor 3.24", kind="D")
def weyl_bound(S, R) -> Certificate:
    r"""Weyl's inequality :math:`\max_i |s_i(S+R) - s_i(S)| \le \|R\|_{op} \le \|R\|_F`.

    Implements the deterministic ingredient (b) of M-Cor 4.10 = E-Cor 3.24 [D]
    (arXiv 2606.02608, THEORY §2.4.7).

    Parameters
    ----------
    S, R : array_like, shape (N, M)
        Any two matrices of the same shape.

    Returns
    -------
    Certificate
        ``lhs = max_i |s_i(S+R) − s_i(S)|``, ``rhs = ‖R‖_op``; ``details`` holds ``R_op`` and
        ``R_fro`` (ingredient (a): ``‖R‖_op ≤ ‖R‖_F``).
    """
    S, R = _pair(S, R)
    sW, sS, sR = _svals(S + R), _svals(S), _svals(R)
    lhs = float(np.max(np.abs(sW - sS))) if sW.size else 0.0
    r_op = float(sR[0]) if sR.size else 0.0
    scale = float(max(sW[:1].sum(), sS[:1].sum(), r_op))
    return Certificate(
        result="M-Cor 4.10",
        statement="max_i |s_i(S+R) - s_i(S)| <= ||R||_op (Weyl)",
        kind="check",
        lhs=lhs,
        rhs=r_op,
        certified=True,
        details={"R_op": r_op, "R_fro": float(torch.linalg.matrix_norm(R, "fro"))},
        scale=scale,
    )


@implements("M-Cor 4.10", "E-Cor 3.24", kind="D")
def eckart_young_tail_bound(S, R, k) -> Certificate:
    r"""Tail energy bound :math:`\sum_{i>k} s_i(S+R)^2 \le (\|R\|_F + (\sum_{i>k} s_i(S)^2)^{1/2})^2`.

    Implements the deterministic ingredient (c) of M-Cor 4.10 = E-Cor 3.24 [D]
    (arXiv 2606.02608, THEORY §2.4.7), tight form; it implies the paper's
    :math:`2\|R\|_F^2 + 2\sum_{i>k}s_i(S)^2`.

    Parameters
    ----------
    S, R : array_like, shape (N, M)
    k : int
        Number of leading singular values excluded, ``0 <= k``.

    Returns
    -------
    Certificate
        ``lhs`` the tail energy of S + R, ``rhs`` the bound; ``details["loose_rhs"]`` holds
        :math:`2\|R\|_F^2 + 2\sum_{i>k}s_i(S)^2`.

    Notes
    -----
    Proof: :math:`\sum_{i>k}s_i(W)^2 = \min_{\mathrm{rank}\,B\le k}\|W-B\|_F^2`
    (Eckart–Young); take :math:`B = S_k` (best rank-k part of S) and the triangle inequality.
    """
    S, R = _pair(S, R)
    k = check_int(k, "k", min_val=0)
    sW, sS = _svals(S + R), _svals(S)
    lhs = float(np.sum(sW[k:] ** 2))
    tail_S = float(np.sum(sS[k:] ** 2))
    r_fro = float(torch.linalg.matrix_norm(R, "fro"))
    rhs = (r_fro + math.sqrt(tail_S)) ** 2
    return Certificate(
        result="M-Cor 4.10",
        statement="sum_{i>k} s_i(S+R)^2 <= (||R||_F + sqrt(sum_{i>k} s_i(S)^2))^2 (Eckart-Young)",
        kind="check",
        lhs=lhs,
        rhs=rhs,
        certified=True,
        details={"k": float(k), "tail_S": tail_S, "R_fro": r_fro,
                 "loose_rhs": 2 * r_fro**2 + 2 * tail_S},
        scale=float(np.sum(sW**2) + np.sum(sS**2) + r_fro**2),
    )


@implements("M-Cor 4.10", "E-Cor 3.24", kind="D")
def markov_count_bound(W, eps) -> Certificate:
    r"""Markov count :math:`\nu_W((\varepsilon,\infty)) \le \|W\|_F^2 / (\min(N,M)\,\varepsilon^2)`.

    Implements the deterministic ingredient (d) of M-Cor 4.10 = E-Cor 3.24 [D]
    (arXiv 2606.02608, THEORY §2.4.7). ν_W is the singular-value ESD (M-Def 2.1).

    Parameters
    ----------
    W : array_like, shape (N, M)
    eps : float
        Threshold ε > 0.

    Returns
    -------
    Certificate
        ``lhs = #{i : s_i > ε}/min(N, M)``, ``rhs = ‖W‖_F²/(min(N, M) ε²)``.
    """
    A = check_matrix(W, "W")
    eps = check_scalar(eps, "eps", min_val=0.0, include_min=False)
    s = _svals(A)
    p = min(A.shape)
    fro2 = float(np.sum(s**2))
    return Certificate(
        result="M-Cor 4.10",
        statement="nu_W((eps, inf)) <= ||W||_F^2 / (min(N,M) eps^2) (Markov)",
        kind="check",
        lhs=float(np.count_nonzero(s > eps)) / p,
        rhs=fro2 / (p * eps * eps),
        certified=True,
        details={"eps": eps, "fro2": fro2, "p": float(p)},
    )


def _top_projectors(A: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    U, _, Vh = torch.linalg.svd(A, full_matrices=False)
    Uk, Vk = U[:, :k], Vh[:k, :].T
    return Uk @ Uk.T, Vk @ Vk.T


def _sym_op(D: torch.Tensor) -> float:
    return float(torch.linalg.eigvalsh(D).abs().max()) if D.numel() else 0.0


@implements("M-Cor 4.11", "E-Cor 3.25", kind="D")
def wedin_bound(S, R, k) -> Certificate:
    r"""Explicit Wedin bound for the top-k singular subspaces of W = S + R.

    Implements the deterministic ingredient of M-Cor 4.11 = E-Cor 3.25 [D] with the explicit
    constant of THEORY §2.4.8 (spec addition; the paper only asserts a universal C).

    Parameters
    ----------
    S, R : array_like, shape (N, M)
    k : int
        Subspace dimension, ``1 <= k <= min(N, M)``.

    Returns
    -------
    Certificate
        ``lhs = max(‖P̂_U − P_U‖_op, ‖P̂_V − P_V‖_op)`` (hats: top-k projectors of W, plain:
        of S), ``rhs = ‖R‖_op/(δ_k − ‖R‖_op)``; ``details`` also holds the gap statement
        ``gap_W = s_k(W) − s_{k+1}(W) ≥ gap_lower_bound = δ_k − 2‖R‖_op``.

    Raises
    ------
    PreconditionError
        If δ_k = s_k(S) − s_{k+1}(S) is (numerically) zero or ``‖R‖_op ≥ δ_k``.

    Notes
    -----
    .. math::
        \|R\|_{op} < \delta_k \implies
        \max(\|\hat P_U - P_U\|_{op}, \|\hat P_V - P_V\|_{op})
        \le \frac{\|R\|_{op}}{\delta_k - \|R\|_{op}},\qquad
        s_k(W) - s_{k+1}(W) \ge \delta_k - 2\|R\|_{op}

    (:math:`s_{j}(S) := 0` beyond min(N, M)).
    """
    S, R = _pair(S, R)
    p = min(S.shape)
    k = check_int(k, "k", min_val=1)
    if k > p:
        raise ValueError(f"k == {k}, must be <= min(N, M) = {p}")
    sS, sR = _svals(S), _svals(R)
    W = S + R
    sW = _svals(W)
    s_next = float(sS[k]) if k < p else 0.0
    delta = float(sS[k - 1]) - s_next
    r_op = float(sR[0])
    if delta <= GAP_RTOL * max(float(sS[0]), r_op, 1e-300):
        raise PreconditionError(f"S has no spectral gap at k == {k} (delta_k == {delta:.3g})")
    if r_op >= delta:
        raise PreconditionError(
            f"||R||_op == {r_op:.6g} >= delta_k == {delta:.6g}; Wedin's bound needs ||R||_op < "
            "delta_k"
        )
    PU, PV = _top_projectors(S, k)
    QU, QV = _top_projectors(W, k)
    lhs = max(_sym_op(QU - PU), _sym_op(QV - PV))
    w_next = float(sW[k]) if k < p else 0.0
    return Certificate(
        result="M-Cor 4.11",
        statement="max(||P^_U - P_U||, ||P^_V - P_V||) <= ||R||_op / (delta_k - ||R||_op) (Wedin)",
        kind="check",
        lhs=lhs,
        rhs=r_op / (delta - r_op),
        certified=True,
        details={"k": float(k), "delta_k": delta, "R_op": r_op,
                 "gap_W": float(sW[k - 1]) - w_next, "gap_lower_bound": delta - 2 * r_op},
    )


def _ecdf_distance(a: np.ndarray, b: np.ndarray, tol: float) -> float:
    """sup_x |F_a(x) − F_b(x)| for two ECDFs on the same number of points, allowing a shift
    of ``tol`` in the argument (``tol = 0``: the exact Kolmogorov distance)."""
    a = np.sort(a)
    b = np.sort(b)
    n = a.size
    pts = np.concatenate([a, b])
    Fa = np.searchsorted(a, pts, side="right")
    Fb = np.searchsorted(b, pts, side="right")
    Fa_t = np.searchsorted(a, pts + tol, side="right")
    Fb_t = np.searchsorted(b, pts + tol, side="right")
    d = max(int(np.max(Fa - Fb_t)), int(np.max(Fb - Fa_t)), 0)
    return d / n


@implements("E-Prop 3.30", kind="D")
def rank_inequality_bound(S, R, *, rank=None) -> Certificate:
    r"""Rank inequality :math:`\sup_x |F_{\nu_{S+R}}(x) - F_{\nu_R}(x)| \le \mathrm{rank}(S)/\min(N,M)`.

    Implements E-Prop 3.30(ii) [D] (arXiv 2606.02608, THEORY §2.5.10): a low-rank
    perturbation moves the singular-value ESD by at most rank/min(N, M) in Kolmogorov distance.

    Parameters
    ----------
    S, R : array_like, shape (N, M)
        S is the (low-rank) perturbation, R the base matrix.
    rank : int, optional
        rank(S) if known; default: ``torch.linalg.matrix_rank`` in float64.

    Returns
    -------
    Certificate
        ``lhs`` the Kolmogorov distance between the singular-value ECDFs of S + R and R
        (computed allowing a shift ``ECDF_RTOL·s₁`` in the argument for float64 rounding),
        ``rhs = rank/min(N, M)``.
    """
    S, R = _pair(S, R)
    p = min(S.shape)
    r = int(torch.linalg.matrix_rank(S)) if rank is None else check_int(rank, "rank", min_val=0)
    sW, sR = _svals(S + R), _svals(R)
    sS0 = float(_svals(S)[0]) if S.numel() else 0.0
    tol = ECDF_RTOL * max(float(sW[0]), float(sR[0]), sS0) if p else 0.0
    lhs = _ecdf_distance(sW, sR, tol) if p else 0.0
    return Certificate(
        result="E-Prop 3.30",
        statement="sup_x |F_{nu_{S+R}}(x) - F_{nu_R}(x)| <= rank(S)/min(N,M)",
        kind="check",
        lhs=lhs,
        rhs=r / p,
        certified=True,
        assumptions=() if rank is None else ("rank(S) supplied by the caller",),
        details={"rank": float(r), "p": float(p), "ecdf_tol": tol},
    )

