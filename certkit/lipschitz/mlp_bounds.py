r"""Rigorous upper bounds L0–L3 on the local Lipschitz constant ``L_s`` of ψ2 for an :class:`MLP`.

Implements THEORY §1.6 (arXiv 2606.02608; L1–L3 are spec additions). For target layer ``k``
(0-based) of an :class:`~certkit.mlp.MLP` and the segment ``A_θ = S + θR`` (θ ∈ [0, 1]) the
logits of sample s are ``f_s(θ) = ψ2(A_θ v_s)`` with ``v_s = ψ1(s)`` and ``d_s = R v_s``; the
quantity to bound is the directional constant

.. math::
    L_s^* = \sup_{\theta\neq\theta'}
            \frac{\|f_s(\theta) - f_s(\theta')\|_\infty}{|\theta-\theta'|\,\|d_s\|_\infty}.

Hierarchy (each a certified upper bound, THEORY §1.6):
``L_s^* = L3 ≤ L2 ≤ L1 ≤ L0``. L0 and L1 are global (data- and R-free); L2 and L3 depend on
the path (``path_dependent=True``) and must not be used where an R-independent ``L_s`` is
required (M-Cor 5.10, Trap T9). ψ2 contains the target layer's own bias and activation, and the
last activation when ``final_activation=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._registry import implements
from .._validation import as_tensor, check_int, check_matrix, check_same_shape
from ..mlp import MLP
from ..results import LipschitzBound

__all__ = [
    "PathPieces",
    "lipschitz_L0",
    "lipschitz_L1",
    "lipschitz_L2",
    "lipschitz_L3",
    "lipschitz_bound",
    "path_pieces",
    "METHODS",
]

#: Names accepted by :func:`lipschitz_bound`.
METHODS = ("L0", "L1", "L2", "L3")

#: Relative margin below which an interval upper bound is *not* trusted to be ≤ 0 when gating a
#: ReLU neuron in L2. Interval arithmetic in float64 is not outward-rounded; a neuron is declared
#: dead only if ``hi < -GATE_RTOL·mag``, where ``mag = |W||h| + |b|`` bounds the magnitude of the
#: terms summed into its pre-activation (so rounding and cancellation error are covered). A
#: conservative gate only enlarges L2, so rigour is kept (THEORY §0.3 float64 policy).
GATE_RTOL = 1e-12

#: Default cap on the number of affine pieces per sample in L3 (exact enumeration is exponential
#: in depth in the worst case; the cap turns a runaway enumeration into a clear error).
DEFAULT_MAX_PIECES = 100_000


# ----------------------------------------------------------------------------- validation
def _check_mlp_k(mlp, k) -> int:
    if not isinstance(mlp, MLP):
        raise TypeError(f"mlp must be a certkit.mlp.MLP, got {type(mlp).__name__}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int layer index, got {type(k).__name__}")
    k = int(k)
    if not 0 <= k < mlp.depth:
        raise ValueError(f"k == {k}, must be a layer index in [0, {mlp.depth})")
    return k


def _check_path(mlp: MLP, k: int, S, R, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate (S, R, x); return (S v_s + b_k, d_s = R v_s, v) as float64 tensors."""
    if S is None or R is None or x is None:
        raise ValueError(
            "S, R and x are required for the path-dependent bounds L2/L3 (segment A_θ = S + θR "
            "evaluated at the layer inputs of x)"
        )
    S = check_matrix(S, "S")
    R = check_matrix(R, "R")
    check_same_shape(S, R, "S", "R")
    Wk = mlp.weights[k]
    if S.shape != Wk.shape:
        raise ValueError(
            f"S must have the shape of the target matrix W_{k}, {tuple(Wk.shape)}, got "
            f"{tuple(S.shape)}"
        )
    x = as_tensor(x, "x", ndim=2, shape_hint="(|T|, d0)")
    d0 = mlp.widths[0]
    if x.shape[1] != d0:
        raise ValueError(
            f"x must have shape (|T|, {d0}) (network input width), got {tuple(x.shape)}"
        )
    v = mlp.layer_input(k, x)
    start = v @ S.T + mlp.biases[k]
    d = v @ R.T
    return start, d, v


def _activated(mlp: MLP, j: int) -> bool:
    return j < mlp.depth - 1 or mlp.final_activation


# ----------------------------------------------------------------------------- L0 / L1
@implements("THEORY-1.6-L0", kind="D")
def lipschitz_L0(mlp: MLP, k: int) -> LipschitzBound:
    r"""Global data-free bound L0: product of induced ∞-norms of the downstream weights.

    Implements THEORY §1.6 L0 [D] (the paper's choice in E-§3, arXiv 2606.02608).

    .. math:: L_s \le \prod_{j=k+1}^{L} \|W_j\|_{\infty\to\infty},
              \qquad \|W\|_{\infty\to\infty} = \max_i \sum_j |W_{ij}| .

    ReLU and ``|·|`` are 1-Lipschitz per coordinate and biases cancel, so every sample and
    every path share this value. The empty product (target = last layer) is 1.

    Parameters
    ----------
    mlp : MLP
    k : int
        Target layer (0-based).

    Returns
    -------
    LipschitzBound
        One shared value, ``certified=True``, ``method="L0"``, ``path_dependent=False``.
    """
    k = _check_mlp_k(mlp, k)
    val = 1.0
    for W in mlp.downstream(k):
        val *= float(W.abs().sum(dim=1).max())
    return LipschitzBound((val,), certified=True, method="L0", path_dependent=False)


@implements("THEORY-1.6-L1", kind="D")
def lipschitz_L1(mlp: MLP, k: int) -> LipschitzBound:
    r"""Global bound L1: induced ∞-norm of the product of entrywise-absolute downstream weights.

    Implements THEORY §1.6 L1 [D] (spec addition to arXiv 2606.02608).

    .. math:: L_s \le \big\| |W_L|\,|W_{L-1}| \cdots |W_{k+1}| \big\|_{\infty\to\infty}
              = \max_i \big(|W_L|(\cdots(|W_{k+1}|\mathbf 1))\big)_i .

    Coordinatewise ``|Δ_out| ≤ |W_L||Δ_{L−1}| ≤ … ≤ (Π|W_j|)|u − u'|``; L1 ≤ L0 by
    submultiplicativity.

    Returns
    -------
    LipschitzBound
        One shared value, ``certified=True``, ``method="L1"``, ``path_dependent=False``.
    """
    k = _check_mlp_k(mlp, k)
    g = torch.ones(mlp.widths[k + 1], dtype=torch.float64)
    for W in mlp.downstream(k):
        g = W.abs() @ g
    return LipschitzBound((float(g.max()),), certified=True, method="L1", path_dependent=False)


# ----------------------------------------------------------------------------- L2
def _act_interval(activation: str, lo: torch.Tensor, hi: torch.Tensor, mag: torch.Tensor):
    """Image of the box [lo, hi] under ReLU / |·| and the gate (0 = constant output).

    ``mag`` bounds the magnitude of the terms summed into each pre-activation.
    """
    if activation == "relu":
        dead = hi < -GATE_RTOL * (mag + hi.abs() + lo.abs())
        gate = (~dead).to(torch.float64)
        return lo.clamp_min(0.0), hi.clamp_min(0.0), gate
    # abs: image interval; gate always 1
    pos = lo >= 0
    neg = hi <= 0
    new_lo = torch.where(pos, lo, torch.where(neg, -hi, torch.zeros_like(lo)))
    new_hi = torch.where(pos, hi, torch.where(neg, -lo, torch.maximum(-lo, hi)))
    return new_lo, new_hi, torch.ones_like(lo)


@implements("THEORY-1.6-L2", kind="D")
def lipschitz_L2(mlp: MLP, k: int, S, R, x) -> LipschitzBound:
    r"""Local path-aware bound L2 by interval-bound propagation over the segment.

    Implements THEORY §1.6 L2 [D] (spec addition to arXiv 2606.02608).

    The pre-activation ``A_θ v_s + b_k`` of the target layer is affine in θ, so it lies
    coordinatewise between its two endpoint values (an exact box). Boxes are propagated with
    centre/radius arithmetic (``c' = W c + b``, ``r' = |W| r``; ReLU clamps at 0, ``|·|`` takes the
    image interval). A ReLU neuron whose upper bound is ≤ 0 on the whole box is constant (gate 0),
    otherwise its gate is 1 (``|·|``: always 1). Then

    .. math:: L_s \le \max_i \big(|W_L|\,G_{L-1}|W_{L-1}|\cdots|W_{k+1}|\,G_k\,\mathbf 1\big)_i ,

    with an extra gate ``G_L`` for a final ReLU. Gates are conservative (see
    :data:`GATE_RTOL`), so L3 ≤ L2 ≤ L1 also holds in floating point.

    Parameters
    ----------
    mlp : MLP
    k : int
        Target layer (0-based).
    S, R : array-like, shape of ``W_k``
        Segment ``A_θ = S + θR``, θ ∈ [0, 1].
    x : array-like, shape (|T|, d0)
        Network inputs (``v_s = mlp.layer_input(k, x)``).

    Returns
    -------
    LipschitzBound
        One value per sample, ``certified=True``, ``method="L2"``, ``path_dependent=True``.
    """
    k = _check_mlp_k(mlp, k)
    start, d, v = _check_path(mlp, k, S, R, x)
    end = start + d
    lo, hi = torch.minimum(start, end), torch.maximum(start, end)
    S, R = check_matrix(S, "S"), check_matrix(R, "R")
    mag = v.abs() @ (S.abs() + R.abs()).T + mlp.biases[k].abs()
    gvec = torch.ones_like(lo)
    act = mlp.activation
    if _activated(mlp, k):
        lo, hi, gate = _act_interval(act, lo, hi, mag)
        gvec = gvec * gate
    for j in range(k + 1, mlp.depth):
        W, b = mlp.weights[j], mlp.biases[j]
        Wa = W.abs()
        c = 0.5 * (lo + hi)
        r = 0.5 * (hi - lo)
        mag = torch.maximum(lo.abs(), hi.abs()) @ Wa.T + b.abs()
        c = c @ W.T + b
        r = r @ Wa.T
        lo, hi = c - r, c + r
        gvec = gvec @ Wa.T
        if _activated(mlp, j):
            lo, hi, gate = _act_interval(act, lo, hi, mag)
            gvec = gvec * gate
    vals = gvec.max(dim=1).values
    return LipschitzBound(tuple(vals.tolist()), certified=True, method="L2", path_dependent=True)


# ----------------------------------------------------------------------------- L3
@dataclass(frozen=True, eq=False)
class PathPieces:
    r"""Exact piecewise-affine description of ``θ ↦ ψ2(A_θ v_s)`` for one sample (L3).

    Attributes
    ----------
    breakpoints : numpy.ndarray, shape (P+1,)
        Sorted θ values ``0 = t_0 < t_1 < … < t_P = 1``; the logits are affine on each
        ``[t_i, t_{i+1}]``. A single piece ``[0, 1]`` when ``d_s = 0``.
    slopes : numpy.ndarray, shape (P, K)
        ``f'(θ)`` on each piece (derivative in θ, not normalised by ``‖d_s‖_∞``).
    d_norm : float
        ``‖d_s‖_∞ = ‖R v_s‖_∞``.
    """

    breakpoints: np.ndarray
    slopes: np.ndarray
    d_norm: float

    @property
    def lipschitz(self) -> float:
        """``max_piece ‖f'‖_∞ / ‖d_s‖_∞`` (0 when ``d_s = 0``)."""
        if self.d_norm == 0.0:
            return 0.0
        return float(np.abs(self.slopes).max()) / self.d_norm


def _split_pieces(edges: np.ndarray, alpha: np.ndarray, beta: np.ndarray):
    """Split every piece [e_p, e_{p+1}] at the zero crossings of ``alpha_p + t·beta_p``."""
    new_edges = [edges[:1]]
    idx = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        roots = -alpha / beta  # (P, n)
    for p in range(alpha.shape[0]):
        t0, t1 = edges[p], edges[p + 1]
        rp = roots[p]
        inside = np.unique(rp[(beta[p] != 0) & (rp > t0) & (rp < t1)])
        new_edges.append(inside)
        new_edges.append(edges[p + 1 : p + 2])
        idx.extend([p] * (inside.size + 1))
    return np.concatenate(new_edges), np.asarray(idx, dtype=np.intp)


def _pieces_one(mlp: MLP, k: int, start: np.ndarray, d: np.ndarray, max_pieces: int) -> PathPieces:
    dn = float(np.abs(d).max()) if d.size else 0.0
    edges = np.array([0.0, 1.0])
    K = mlp.widths[-1]
    if dn == 0.0:
        return PathPieces(edges, np.zeros((1, K)), 0.0)
    # Affine form of the current pre-activation on each piece: alpha + θ·beta, θ ∈ [0, 1].
    # Working directly in θ keeps every breakpoint an exact float root in (t0, t1), so pieces
    # stay strictly increasing (a rescaled parameter can merge adjacent floats).
    alpha = start[None, :].copy()
    beta = d[None, :].copy()
    act = mlp.activation
    for j in range(k, mlp.depth):
        if j > k:
            W = mlp.weights[j].numpy()
            alpha = alpha @ W.T + mlp.biases[j].numpy()
            beta = beta @ W.T
        if not _activated(mlp, j):
            continue
        edges, idx = _split_pieces(edges, alpha, beta)
        if idx.size > max_pieces:
            raise RuntimeError(
                f"L3 enumeration exceeded max_pieces == {max_pieces} affine pieces for one "
                "sample; use lipschitz_L2 (rigorous, cheaper) or raise max_pieces"
            )
        alpha, beta = alpha[idx], beta[idx]
        mid = 0.5 * (edges[:-1] + edges[1:])
        z = alpha + mid[:, None] * beta
        D = (z > 0).astype(np.float64) if act == "relu" else np.sign(z)
        alpha = alpha * D
        beta = beta * D
    return PathPieces(edges, beta, dn)


def path_pieces(mlp: MLP, k: int, S, R, x, *, max_pieces: int = DEFAULT_MAX_PIECES
                ) -> list[PathPieces]:
    r"""Exact breakpoints and piece slopes of ``θ ↦ ψ2((S+θR) v_s)`` for every sample.

    The function is continuous and piecewise affine for ReLU/|·| networks. Breakpoints are
    enumerated layer by layer: on a piece every pre-activation is affine in θ, so its zero
    crossing is explicit; the piece is split there and the activation pattern is read off at the
    midpoint of each sub-piece (THEORY §1.6 L3).

    Parameters
    ----------
    mlp, k, S, R, x
        As in :func:`lipschitz_L3`.
    max_pieces : int, default 100000
        Cap on the number of pieces per sample (RuntimeError beyond it).

    Returns
    -------
    list of PathPieces
        One entry per sample.
    """
    k = _check_mlp_k(mlp, k)
    max_pieces = check_int(max_pieces, "max_pieces", min_val=1)
    start, d, _ = _check_path(mlp, k, S, R, x)
    start_np, d_np = start.numpy(), d.numpy()
    return [_pieces_one(mlp, k, start_np[s], d_np[s], max_pieces) for s in range(d_np.shape[0])]


@implements("THEORY-1.6-L3", kind="D")
def lipschitz_L3(mlp: MLP, k: int, S, R, x, *, max_pieces: int = DEFAULT_MAX_PIECES
                 ) -> LipschitzBound:
    r"""Exact local constant L3 = ``L_s*`` for piecewise-linear (ReLU / |·|) networks.

    Implements THEORY §1.6 L3 [D] (spec addition to arXiv 2606.02608).

    ``f(θ) = ψ2(A_θ v_s)`` is continuous and piecewise affine in θ; the supremum of its secant
    slopes equals the largest piece slope, so

    .. math:: L_s^* = \max_{\text{pieces}} \frac{\|f'(\theta)\|_\infty}{\|d_s\|_\infty},
              \qquad d_s = R v_s ,

    defined as 0 when ``d_s = 0`` (the segment is a point). Breakpoints are found exactly with
    :func:`path_pieces`.

    Parameters
    ----------
    mlp : MLP
    k : int
        Target layer (0-based).
    S, R : array-like, shape of ``W_k``
        Segment ``A_θ = S + θR``, θ ∈ [0, 1].
    x : array-like, shape (|T|, d0)
        Network inputs.
    max_pieces : int, default 100000
        Cap on the number of affine pieces per sample.

    Returns
    -------
    LipschitzBound
        One value per sample, ``certified=True``, ``method="L3"``, ``path_dependent=True``.
    """
    pieces = path_pieces(mlp, k, S, R, x, max_pieces=max_pieces)
    return LipschitzBound(tuple(p.lipschitz for p in pieces), certified=True, method="L3",
                          path_dependent=True)


# ----------------------------------------------------------------------------- dispatcher
def lipschitz_bound(mlp: MLP, k: int, *, method: str = "L1", S=None, R=None, x=None
                    ) -> LipschitzBound:
    """Rigorous Lipschitz bound of the chosen level (THEORY §1.6).

    Parameters
    ----------
    mlp : MLP
    k : int
        Target layer (0-based).
    method : {"L0", "L1", "L2", "L3"}, default "L1"
        L0/L1 are global; L2/L3 need the path (``S``, ``R``) and inputs ``x``.
    S, R, x
        Required for ``"L2"`` and ``"L3"``; ignored otherwise.

    Returns
    -------
    LipschitzBound
    """
    if method == "L0":
        return lipschitz_L0(mlp, k)
    if method == "L1":
        return lipschitz_L1(mlp, k)
    if method == "L2":
        return lipschitz_L2(mlp, k, S, R, x)
    if method == "L3":
        return lipschitz_L3(mlp, k, S, R, x)
    raise ValueError(f"method == {method!r}, must be one of {METHODS}")
