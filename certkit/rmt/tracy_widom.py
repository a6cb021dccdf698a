"""Tracy–Widom law TW₁ (GOE largest eigenvalue) via the Ferrari–Spohn Fredholm determinant.

Used by the BEMA-type edge fit (THEORY §3.6 step 6) for the finite-N allowance of the MP
edge, and by the spike test of :func:`certkit.rmt.fit_mp`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import airy

from .._registry import implements
from .._validation import check_probability

__all__ = ["tw1_cdf", "tw1_quantile"]

#: Gauss–Legendre nodes and interval length of THEORY §3.6 step 6 ("60 nodes on [s, s+14]").
_TW_NODES = 60
_TW_LENGTH = 14.0
#: Left of this point Ai((x+y)/2) oscillates over the interval; the quadrature is refined
#: (10 more nodes per unit of s, interval extended to [s, 14]) so that the absolute error
#: stays < 1e-10 (checked against 300 nodes on [s, 30] while writing this module).
_TW_REFINE_BELOW = -2.0
_TW_MAX_NODES = 240
#: Below/above these points F₁ is < 1e-30 / > 1 - 1e-16; the determinant is not evaluated.
_TW_LOW = -14.0
_TW_HIGH = 16.0
#: Bracket for the quantile search.
_TW_BRACKET = (-12.0, 12.0)


def _tw1_cdf_scalar(s: float) -> float:
    if s <= _TW_LOW:
        return 0.0
    if s >= _TW_HIGH:
        return 1.0
    n = _TW_NODES
    upper = s + _TW_LENGTH
    if s < _TW_REFINE_BELOW:
        n = min(_TW_MAX_NODES, _TW_NODES + 10 * math.ceil(_TW_REFINE_BELOW - s))
        upper = max(upper, _TW_LENGTH)
    nodes, weights = _gauss_legendre(n)
    half = 0.5 * (upper - s)
    x = s + half * (nodes + 1.0)
    sw = np.sqrt(weights * half)
    kernel = 0.5 * airy(0.5 * (x[:, None] + x[None, :]))[0]
    det = np.linalg.det(np.eye(n) - sw[:, None] * kernel * sw[None, :])
    return float(min(1.0, max(0.0, det)))


@lru_cache(maxsize=16)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.legendre.leggauss(n)
    nodes.setflags(write=False)
    weights.setflags(write=False)
    return nodes, weights


@implements("THEORY-3.6-TW1", kind="C")
def tw1_cdf(s):
    r"""CDF of the Tracy–Widom law TW₁ (β = 1).

    Implements THEORY §3.6 step 6 [C] (registered as ``THEORY-3.6-TW1``): a classical
    ingredient of the MP edge fit (ESM_2 BEMA of arXiv 2606.02608), not a paper result.

    Parameters
    ----------
    s : float or array_like
        Evaluation point(s).

    Returns
    -------
    float or numpy.ndarray
        :math:`F_1(s)`, same shape as ``s`` (a python float for scalar input).

    Notes
    -----
    Ferrari–Spohn form

    .. math:: F_1(s) = \det\bigl(I - K_s\bigr)_{L^2(s,\infty)},\qquad
              K_s(x, y) = \tfrac12\,\mathrm{Ai}\bigl(\tfrac{x+y}{2}\bigr),

    discretised by Gauss–Legendre quadrature with 60 nodes on :math:`[s, s+14]`
    (Bornemann's method). For :math:`s < -2` the Airy kernel oscillates, so more nodes and the
    interval :math:`[s, 14]` are used. Absolute accuracy ≈ 1e-10.
    """
    arr = np.asarray(s, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("s contains NaN or Inf; all entries must be finite")
    if arr.ndim == 0:
        return _tw1_cdf_scalar(float(arr))
    out = np.array([_tw1_cdf_scalar(float(v)) for v in arr.ravel()])
    return out.reshape(arr.shape)


@lru_cache(maxsize=256)
def _tw1_quantile_cached(p: float) -> float:
    return float(brentq(lambda t: _tw1_cdf_scalar(t) - p, *_TW_BRACKET, xtol=1e-12, rtol=1e-14))


@implements("THEORY-3.6-TW1", kind="C")
def tw1_quantile(p) -> float:
    r"""Quantile :math:`F_1^{-1}(p)` of the Tracy–Widom law TW₁.

    Implements THEORY §3.6 steps 4 and 6 [C] (registered as ``THEORY-3.6-TW1``; ESM_2 BEMA of
    arXiv 2606.02608).

    Parameters
    ----------
    p : float
        Probability in the open interval (0, 1); :math:`10^{-12} \lesssim p \lesssim 1-10^{-12}`
        for a meaningful answer.

    Returns
    -------
    float
        ``t`` with :math:`F_1(t) = p` (Brent's method, ``xtol=1e-12``; cached).

    Notes
    -----
    Reference values: :math:`q_{0.2} = -2.28316`, :math:`q_{0.5} = -1.26857`,
    :math:`q_{0.9} = 0.45014`, :math:`q_{0.95} = 0.97932`, :math:`q_{0.99} = 2.02345`.
    The BEMA setting β = 0.8 uses :math:`t_{1-\beta} = q_{0.2}`.
    """
    p = check_probability(p, "p")
    return _tw1_quantile_cached(p)
