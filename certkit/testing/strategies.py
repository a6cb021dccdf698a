r"""Hypothesis strategies for certkit's property suites (THEORY §2.2 "RandNet").

Every strategy is named for what it produces, takes keyword-only options (a value or a
strategy), has small defaults, and yields finite float64 torch tensors. Numerical entries are
drawn from a numpy generator seeded by hypothesis (fast, and shrinking still acts on shapes,
scales, masks and seeds); structural edge cases (exact zeros, dead inputs, p ∈ {0, 1} masks,
|T| = 1, K = 2) are drawn explicitly so that hypothesis reaches them early.

This module imports hypothesis; it is only imported with :mod:`certkit.testing`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from ..classification import mean_ce
from ..mlp import ACTIVATIONS, MLP

__all__ = [
    "CertificationProblem",
    "SpikedMatrix",
    "certification_problems",
    "disjoint_splits",
    "mask_splits",
    "masks",
    "mlps",
    "nm_masks",
    "spiked_matrices",
    "weight_matrices",
    "MASK_PROBABILITIES",
    "SIGMA_W_RANGE",
]

#: Bernoulli keep-probabilities of the masks (THEORY §2.2 RandNet: p ∈ {0, 0.3, 0.7, 1}).
MASK_PROBABILITIES = (0.0, 0.3, 0.7, 1.0)
#: Weight scale σ_w drawn log-uniformly in this range (THEORY §2.2; σ_w = 3 gives huge logits).
SIGMA_W_RANGE = (1e-2, 3.0)


# ----------------------------------------------------------------------------- helpers
def _strategy(x) -> SearchStrategy:
    return x if isinstance(x, SearchStrategy) else st.just(x)


def _sigmas(scale) -> SearchStrategy:
    if scale is None:
        lo, hi = (math.log(s) for s in SIGMA_W_RANGE)
        return st.floats(lo, hi).map(math.exp)
    if isinstance(scale, SearchStrategy):
        return scale
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not (
        math.isfinite(scale) and scale >= 0
    ):
        raise ValueError(f"scale == {scale!r}, must be a finite number >= 0, a strategy or None")
    return st.just(float(scale))


_seeds = st.integers(0, 2**32 - 1)


def _rng(draw) -> np.random.Generator:
    return np.random.default_rng(draw(_seeds))


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)


# ----------------------------------------------------------------------------- validation
def _check_int(val, name: str) -> int:
    if isinstance(val, bool) or not isinstance(val, int):
        raise TypeError(f"{name} must be an int, got {type(val).__name__}")
    return val


def _check_range(lo, hi, name_lo: str, name_hi: str, *, min_lo: int = 0) -> tuple[int, int]:
    _check_int(lo, name_lo)
    _check_int(hi, name_hi)
    if lo < min_lo:
        raise ValueError(f"{name_lo} == {lo}, must be >= {min_lo}")
    if hi < lo:
        raise ValueError(f"{name_hi} == {hi}, must be >= {name_lo} == {lo}")
    return lo, hi


def _check_prob_or_strategy(p, name: str):
    if p is None or isinstance(p, SearchStrategy):
        return p
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} == {p!r}, must be a number in [0, 1], a strategy or None")
    return float(p)


def _check_choice(val, name: str, choices: tuple):
    if val is None or isinstance(val, SearchStrategy):
        return val
    if val not in choices:
        raise ValueError(f"{name} == {val!r}, must be one of {choices}, a strategy or None")
    return val


def _check_shape(shape, name: str = "shape"):
    if isinstance(shape, SearchStrategy):
        return shape
    if (not isinstance(shape, tuple | list) or len(shape) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in shape)):
        raise ValueError(f"{name} == {shape!r}, must be (rows, cols) with positive ints or a "
                         "strategy")
    return tuple(shape)


# ----------------------------------------------------------------------------- matrices
@st.composite
def _weight_matrices(draw, rows_range, cols_range, scale, zero_fraction):
    rows = draw(st.integers(*rows_range))
    cols = draw(st.integers(*cols_range))
    sigma = draw(_sigmas(scale))
    zf = draw(_strategy(zero_fraction) if zero_fraction is not None
              else st.sampled_from((0.0, 0.0, 0.3)))
    rng = _rng(draw)
    W = rng.normal(0.0, sigma, size=(rows, cols))
    if zf > 0:
        W[rng.random(W.shape) < zf] = 0.0
    return _t(W)


def weight_matrices(*, min_rows: int = 1, max_rows: int = 8, min_cols: int = 1,
                    max_cols: int = 8, scale=None, zero_fraction=None
                    ) -> SearchStrategy[torch.Tensor]:
    """Gaussian weight matrices ``N(0, σ²)`` of shape (rows, cols), finite float64 tensors.

    Parameters
    ----------
    min_rows, max_rows, min_cols, max_cols : int
        Shape range (rows = outputs, cols = inputs).
    scale : float, strategy or None
        σ; default log-uniform in :data:`SIGMA_W_RANGE` (THEORY §2.2).
    zero_fraction : float, strategy or None
        Fraction of entries set exactly to 0; default one of {0, 0, 0.3}.
    """
    rr = _check_range(min_rows, max_rows, "min_rows", "max_rows", min_lo=1)
    cr = _check_range(min_cols, max_cols, "min_cols", "max_cols", min_lo=1)
    _sigmas(scale)
    zero_fraction = _check_prob_or_strategy(zero_fraction, "zero_fraction")
    return _weight_matrices(rr, cr, scale, zero_fraction)


@dataclass(frozen=True, eq=False)
class SpikedMatrix:
    """``A = S + R``: low-rank signal ``S = U diag(s) Vᵀ`` plus Gaussian noise ``R ~ N(0, σ²)``.

    Attributes
    ----------
    S, R : torch.Tensor
        Signal and noise, shape (rows, cols).
    singular_values : tuple of float
        Nonzero singular values of S (descending; empty for pure noise).
    noise_scale : float
        Entry standard deviation σ of R.
    """

    S: torch.Tensor
    R: torch.Tensor
    singular_values: tuple[float, ...]
    noise_scale: float

    @property
    def A(self) -> torch.Tensor:
        """``A = S + R``."""
        return self.S + self.R


@st.composite
def _spiked_matrices(draw, rows_range, cols_range, max_rank, spikes, noise_scale):
    rows = draw(st.integers(*rows_range))
    cols = draw(st.integers(*cols_range))
    if spikes is None:
        rank = draw(st.integers(0, min(max_rank, rows, cols)))
        s = draw(st.lists(st.floats(math.log(0.1), math.log(10.0)).map(math.exp),
                          min_size=rank, max_size=rank))
    else:
        s = [float(v) for v in draw(_strategy(spikes))]
        if any(not math.isfinite(v) or v <= 0 for v in s):
            raise ValueError(f"spikes == {s}, must be finite values > 0")
        s = s[: min(rows, cols)]
    s = sorted(s, reverse=True)
    sigma = draw(_strategy(noise_scale) if noise_scale is not None
                 else st.floats(math.log(1e-3), 0.0).map(math.exp))
    rng = _rng(draw)
    r = len(s)
    if r:
        U, _ = np.linalg.qr(rng.normal(size=(rows, r)))
        V, _ = np.linalg.qr(rng.normal(size=(cols, r)))
        S = (U * np.asarray(s)) @ V.T
    else:
        S = np.zeros((rows, cols))
    R = rng.normal(0.0, sigma, size=(rows, cols))
    return SpikedMatrix(_t(S), _t(R), tuple(s), float(sigma))


def spiked_matrices(*, min_rows: int = 2, max_rows: int = 8, min_cols: int = 2,
                    max_cols: int = 8, max_rank: int = 3, spikes=None, noise_scale=None
                    ) -> SearchStrategy[SpikedMatrix]:
    """Spiked matrices ``S + R`` with chosen singular values of S and Gaussian R (M-Supp 1–2).

    Parameters
    ----------
    min_rows, max_rows, min_cols, max_cols : int
        Shape range.
    max_rank : int
        Rank of S drawn in ``[0, min(max_rank, rows, cols)]`` (0: pure noise).
    spikes : sequence of float, strategy or None
        Singular values of S (truncated to ``min(rows, cols)``); default log-uniform in [0.1, 10].
    noise_scale : float, strategy or None
        σ of R; default log-uniform in [1e-3, 1].
    """
    rr = _check_range(min_rows, max_rows, "min_rows", "max_rows", min_lo=1)
    cr = _check_range(min_cols, max_cols, "min_cols", "max_cols", min_lo=1)
    _check_range(0, max_rank, "0", "max_rank")
    if noise_scale is not None and not isinstance(noise_scale, SearchStrategy):
        _sigmas(noise_scale)
    return _spiked_matrices(rr, cr, max_rank, spikes, noise_scale)


# ----------------------------------------------------------------------------- masks / splits
@st.composite
def _masks(draw, shape, density):
    shape = tuple(draw(_strategy(shape)))
    p = draw(_strategy(density) if density is not None else st.sampled_from(MASK_PROBABILITIES))
    rng = _rng(draw)
    return torch.as_tensor(rng.random(shape) < p)


def masks(shape, *, density=None) -> SearchStrategy[torch.Tensor]:
    """Boolean Bernoulli masks of ``shape`` (True = kept).

    ``density`` (keep probability) defaults to one of :data:`MASK_PROBABILITIES`.
    """
    return _masks(_check_shape(shape), _check_prob_or_strategy(density, "density"))


@st.composite
def _mask_splits(draw, A, density):
    A = torch.as_tensor(draw(_strategy(A)), dtype=torch.float64)
    M = draw(_masks(tuple(A.shape), density))
    zero = torch.zeros_like(A)
    return torch.where(M, A, zero), torch.where(M, zero, A)


def mask_splits(A, *, density=None) -> SearchStrategy[tuple[torch.Tensor, torch.Tensor]]:
    """Mask decompositions ``(S, R)`` of ``A``: ``S = M⊙A``, ``R = (1−M)⊙A``.

    The result satisfies the mask-decomposition assumption ``S ⊙ R = 0`` and ``S + R = A``
    (THEORY §1.4). ``A`` is a matrix or a strategy of matrices; ``M`` is Bernoulli(p) with
    p ∈ :data:`MASK_PROBABILITIES` unless ``density`` is given (so R = 0 and S = 0 occur).
    """
    if not isinstance(A, SearchStrategy):
        A = torch.as_tensor(A, dtype=torch.float64)
        if A.ndim != 2:
            raise ValueError(f"A must be 2-D (rows, cols), got shape {tuple(A.shape)}")
    return _mask_splits(A, _check_prob_or_strategy(density, "density"))


@st.composite
def _disjoint_splits(draw, shape, parts, scale):
    rows, cols = draw(_strategy(shape))
    A = draw(_weight_matrices((rows, rows), (cols, cols), scale, None))
    rng = _rng(draw)
    unassigned = np.ones(tuple(A.shape), dtype=bool)
    out = []
    for i in range(parts):
        if i == parts - 1:
            take = unassigned
        else:
            p = draw(st.sampled_from(MASK_PROBABILITIES))
            take = unassigned & (rng.random(tuple(A.shape)) < p)
        out.append(torch.where(torch.as_tensor(take), A, torch.zeros_like(A)))
        unassigned = unassigned & ~take
    return tuple(out)


def disjoint_splits(shape, *, parts: int = 2, scale=None
                    ) -> SearchStrategy[tuple[torch.Tensor, ...]]:
    """``parts`` matrices with pairwise disjoint supports that sum to a random ``A``.

    ``shape`` is (rows, cols) or a strategy of one. ``parts=2`` gives ``(S, R)``; ``parts=3``
    gives ``(S, Q, P)`` as in M-Thm 5.5 (pairwise disjoint: S⊙Q = S⊙P = Q⊙P = 0). Entries are
    assigned by successive Bernoulli draws with p ∈ :data:`MASK_PROBABILITIES`, so empty parts
    occur. ``A = sum(parts)`` is a :func:`weight_matrices` draw with the given ``scale``.
    """
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts == {parts!r}, must be an int >= 1")
    if scale is not None and not isinstance(scale, SearchStrategy):
        _sigmas(scale)
    return _disjoint_splits(_check_shape(shape), parts, scale)


@st.composite
def _nm_masks(draw, shape, n, m):
    rows, cols = draw(_strategy(shape))
    if cols % m:
        raise ValueError(f"shape == {(rows, cols)}: cols must be a multiple of m == {m}")
    rng = _rng(draw)
    keys = rng.random((rows, cols // m, m))
    ranks = keys.argsort(axis=2).argsort(axis=2)
    return torch.as_tensor((ranks < n).reshape(rows, cols))


def nm_masks(shape, *, n: int = 2, m: int = 4) -> SearchStrategy[torch.Tensor]:
    """N:M masks (True = kept): along the input axis (columns) every group of ``m`` consecutive
    entries keeps exactly ``n``.

    ``shape`` = (rows, cols) or a strategy of one; ``cols`` must be a multiple of ``m``.
    """
    _check_int(n, "n")
    _check_int(m, "m")
    if m < 1 or not 0 <= n <= m:
        raise ValueError(f"n == {n}, m == {m}; need m >= 1 and 0 <= n <= m")
    shape = _check_shape(shape)
    if not isinstance(shape, SearchStrategy) and shape[1] % m:
        raise ValueError(f"shape == {shape}: cols must be a multiple of m == {m}")
    return _nm_masks(shape, n, m)


# ----------------------------------------------------------------------------- networks
@st.composite
def _mlps(draw, depth_range, width_range, class_range, activation, final_activation, scale):
    depth = draw(st.integers(*depth_range))
    widths = [draw(st.integers(*width_range)) for _ in range(depth)]
    widths.append(draw(st.integers(*class_range)))
    act = draw(_strategy(activation) if activation is not None else st.sampled_from(ACTIVATIONS))
    fin = draw(_strategy(final_activation) if final_activation is not None else st.booleans())
    sig = _sigmas(scale)
    rng = _rng(draw)
    Ws, bs = [], []
    for j in range(depth):
        W = rng.normal(0.0, draw(sig), size=(widths[j + 1], widths[j]))
        b = rng.normal(size=widths[j + 1])
        if draw(st.booleans()):
            W[rng.random(W.shape) < 0.2] = 0.0
            b[rng.random(b.shape) < 0.2] = 0.0
        Ws.append(_t(W))
        bs.append(_t(b))
    return MLP(tuple(Ws), tuple(bs), act, bool(fin))


def mlps(*, min_depth: int = 1, max_depth: int = 4, min_width: int = 1, max_width: int = 12,
         min_classes: int = 2, max_classes: int = 8, activation=None, final_activation=None,
         scale=None) -> SearchStrategy[MLP]:
    """RandNet MLPs of THEORY §2.2 (float64, ReLU or |·|).

    Per layer ``W ~ N(0, σ_w²)`` with σ_w log-uniform in [1e-2, 3] (large σ_w gives huge logits
    that stress logsumexp), biases ``N(0, 1)``; in half the draws 20 % of the weights and biases
    are exactly 0.

    Parameters
    ----------
    min_depth, max_depth : int
        Number of affine layers.
    min_width, max_width : int
        Input and hidden widths.
    min_classes, max_classes : int
        Output width K.
    activation : {"relu", "abs"}, strategy or None
    final_activation : bool, strategy or None
    scale : float, strategy or None
        σ_w of every layer (default: drawn per layer).
    """
    dr = _check_range(min_depth, max_depth, "min_depth", "max_depth", min_lo=1)
    wr = _check_range(min_width, max_width, "min_width", "max_width", min_lo=1)
    kr = _check_range(min_classes, max_classes, "min_classes", "max_classes", min_lo=1)
    activation = _check_choice(activation, "activation", ACTIVATIONS)
    final_activation = _check_choice(final_activation, "final_activation", (True, False))
    _sigmas(scale)
    return _mlps(dr, wr, kr, activation, final_activation, scale)
@dataclass(frozen=True, eq=False)
class CertificationProblem:
    """A full data-path problem: network, target layer, data, split ``W_k = S + R`` and θ.

    Attributes
    ----------
    mlp : MLP
    k : int
        Target layer (0-based); ``mlp.weights[k] = S + R``.
    x : torch.Tensor, shape (|T|, d0)
        Network inputs (some exact zeros, possibly dead input columns).
    labels : torch.Tensor, shape (|T|,)
        Integer labels in [0, K).
    S, R : torch.Tensor
        Mask decomposition of ``W_k`` (disjoint supports).
    theta : float
        Path parameter in [0, 1].
    """

    mlp: MLP
    k: int
    x: torch.Tensor
    labels: torch.Tensor
    S: torch.Tensor
    R: torch.Tensor
    theta: float

    @property
    def v(self) -> torch.Tensor:
        """Layer inputs ``v_s = ψ1(s)``, shape (|T|, m)."""
        return self.mlp.layer_input(self.k, self.x)

    @property
    def A(self) -> torch.Tensor:
        """``A = S + R``."""
        return self.S + self.R

    def A_theta(self, theta: float | None = None) -> torch.Tensor:
        """``A_θ = S + θR`` (θ defaults to :attr:`theta`)."""
        t = self.theta if theta is None else float(theta)
        return self.S + t * self.R

    def logits(self, W=None) -> torch.Tensor:
        """Logits with ``W_k`` replaced by ``W`` (default ``A``), shape (|T|, K)."""
        W = self.A if W is None else W
        return self.mlp.with_weight(self.k, W).forward(self.x)

    def ce(self, W=None) -> float:
        """Dataset cross-entropy ``L_CE`` with ``W_k = W`` (default ``A``)."""
        return mean_ce(self.logits(W), self.labels)


@st.composite
def _certification_problems(draw, mlp_strategy, sample_range, density, theta):
    mlp = draw(mlp_strategy)
    k = draw(st.integers(0, mlp.depth - 1))
    n = draw(st.integers(*sample_range))
    rng = _rng(draw)
    x = rng.normal(size=(n, mlp.widths[0]))
    if draw(st.booleans()):
        x[rng.random(x.shape) < 0.2] = 0.0
    if draw(st.booleans()):
        x[:, rng.random(x.shape[1]) < 0.3] = 0.0  # dead input columns
    labels = torch.as_tensor(rng.integers(0, mlp.widths[-1], size=n), dtype=torch.long)
    S, R = draw(_mask_splits(mlp.weights[k], density))
    th = draw(_strategy(theta) if theta is not None
              else st.one_of(st.sampled_from((0.0, 1.0)), st.floats(0.0, 1.0)))
    return CertificationProblem(mlp, k, _t(x), labels, S, R, float(th))


def certification_problems(*, min_depth: int = 1, max_depth: int = 4, max_width: int = 12,
                           min_samples: int = 1, max_samples: int = 12, activation=None,
                           final_activation=None, density=None, theta=None
                           ) -> SearchStrategy[CertificationProblem]:
    """Complete :class:`CertificationProblem` draws (THEORY §2.2 RandNet).

    Draws a RandNet MLP (:func:`mlps`), a target layer k, inputs x ~ N(0, I) with random exact
    zeros and sometimes dead input columns, uniform labels in [0, K), a mask split
    ``W_k = S + R`` with p ∈ {0, 0.3, 0.7, 1} (so ``R = 0`` and ``S = 0`` occur) and
    θ ∈ {0, 1, uniform[0, 1]}. The split satisfies the mask-decomposition assumption
    ``S ⊙ R = 0`` (THEORY §1.4).

    Parameters
    ----------
    min_depth, max_depth, max_width, activation, final_activation
        Passed to :func:`mlps`.
    min_samples, max_samples : int
        Range of |T|.
    density : float, strategy or None
        Keep probability of the mask (default from :data:`MASK_PROBABILITIES`).
    theta : float, strategy or None
        Path parameter (default 0, 1 or uniform).
    """
    mlp_strategy = mlps(min_depth=min_depth, max_depth=max_depth, max_width=max_width,
                        activation=activation, final_activation=final_activation)
    sr = _check_range(min_samples, max_samples, "min_samples", "max_samples", min_lo=1)
    density = _check_prob_or_strategy(density, "density")
    theta = _check_prob_or_strategy(theta, "theta")
    return _certification_problems(mlp_strategy, sr, density, theta)
