"""BBP / BGN outliers of a low-rank signal plus Gaussian noise, and their inversion.

Noise convention (one for every shape, Trap T1): ``noise_variance`` is the paper's **g**, the
noise entries have variance **g/N with N = rows** (E-Cor 5.2, M-Cor 4.12). For a fitted layer
use ``g = rows · MPFit.entry_variance`` (:attr:`certkit.rmt.MPFit.gain`).

* Square N×N (E-Thm 5.1, E-Cor 5.2, M-Cor 4.12): a spike of strength σ produces the singular
  value s = σ + g/σ if σ > √g, else s sticks to the bulk edge 2√g; inverse
  σ̂ = (s + sqrt(s² − 4g))/2, defined only for s² > 4g.
* Rectangular n×m (E-Thm 5.4 instance, THEORY §2.7; BGN 2012): p = min(n, m), q = max(n, m),
  c′ = p/q, entry variance v = g/n, κ = sqrt(v·q), θ′ = θ/κ; edge κ(1 + √c′), critical
  θ′_c = c′^{1/4}, outlier ρ′ = sqrt((1+θ′²)(c′+θ′²))/θ′; inverse
  θ′² = [(ρ′² − 1 − c′) + sqrt((ρ′² − 1 − c′)² − 4c′)]/2. At c′ = 1 this is the square case.
"""

from __future__ import annotations

import math

import numpy as np

from .._registry import implements
from .._validation import check_int, check_scalar

__all__ = ["bbp_outlier", "inverse_bbp", "bbp_threshold", "bbp_edge"]


def _geometry(noise_variance, shape) -> tuple[float, float, bool]:
    """Return (κ, c′, square) for the noise level g and the matrix shape."""
    g = check_scalar(noise_variance, "noise_variance", min_val=0.0)
    if shape is None:
        return math.sqrt(g), 1.0, True
    try:
        n, m = shape
    except (TypeError, ValueError) as exc:
        raise ValueError(f"shape must be a pair (rows, cols), got {shape!r}") from exc
    n = check_int(n, "shape[0]", min_val=1)
    m = check_int(m, "shape[1]", min_val=1)
    p, q = min(n, m), max(n, m)
    v = g / n
    return math.sqrt(v * q), p / q, n == m


def _as_values(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf; all entries must be finite")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got min {float(arr.min())}")
    return arr


@implements("E-Thm 5.1", "E-Cor 5.2", "E-Thm 5.3", kind="C")
@implements("E-Thm 5.4", kind="A")
def bbp_outlier(theta, *, noise_variance, shape=None):
    r"""Limit of the singular value produced by a spike of strength θ (forward BBP map).

    Implements E-Thm 5.1 / E-Cor 5.2 / E-Thm 5.3 [C] and the rectangular instance of
    E-Thm 5.4 [A] (arXiv 2606.02608, THEORY §2.7).

    Parameters
    ----------
    theta : float or array_like
        Spike strength(s) θ ≥ 0 (singular values of the low-rank signal S).
    noise_variance : float
        g ≥ 0: noise entries have variance g/N, N = rows.
    shape : (int, int), optional
        ``(rows, cols)``; None means square.

    Returns
    -------
    float or numpy.ndarray
        Square: :math:`\theta + g/\theta` if :math:`\theta > \sqrt g`, else the edge
        :math:`2\sqrt g` (not :math:`\max(2\sqrt g, \theta + g/\theta)`, THEORY §3.5).
        Rectangular: :math:`\kappa\sqrt{(1+\theta'^2)(c'+\theta'^2)}/\theta'` if
        :math:`\theta' > c'^{1/4}`, else :math:`\kappa(1+\sqrt{c'})`.
    """
    kappa, cp, _ = _geometry(noise_variance, shape)
    t = _as_values(theta, "theta")
    if kappa == 0.0:  # no noise: the singular values are the spikes themselves
        out = t.copy()
    else:
        tp = t / kappa
        crit = cp**0.25
        safe = np.where(tp > crit, tp, 1.0)
        rho = np.sqrt((1.0 + safe**2) * (cp + safe**2)) / safe
        out = kappa * np.where(tp > crit, rho, 1.0 + math.sqrt(cp))
    return float(out) if out.ndim == 0 else out


@implements("E-Thm 5.4", kind="A")
def bbp_threshold(*, noise_variance, shape=None) -> float:
    r"""Critical spike strength: :math:`\sqrt g` (square), :math:`\kappa c'^{1/4}` (rectangular).

    Implements the threshold of E-Cor 5.2 / E-Thm 5.4 (arXiv 2606.02608, THEORY §2.7).
    """
    kappa, cp, _ = _geometry(noise_variance, shape)
    return kappa * cp**0.25


@implements("E-Thm 5.4", kind="A")
def bbp_edge(*, noise_variance, shape=None) -> float:
    r"""Bulk edge of the noise singular values: :math:`2\sqrt g` or :math:`\kappa(1+\sqrt{c'})`.

    Implements b₊ of E-Thm 5.4 (arXiv 2606.02608); equals :math:`\sqrt{v}(\sqrt n + \sqrt m)`
    with :math:`v = g/n` (M-Rem 2.3).
    """
    kappa, cp, _ = _geometry(noise_variance, shape)
    return kappa * (1.0 + math.sqrt(cp))


@implements("M-Cor 4.12", "E-Cor 3.27", "E-Cor 2.4", "E-Thm 5.4", kind="A")
def inverse_bbp(s, *, noise_variance, shape=None, strict=True):
    r"""Inverse-BBP estimate of the spike strength behind an outlier singular value.

    Implements M-Cor 4.12 = E-Cor 3.27 (square), the rectangular instance of E-Thm 5.4 and the
    inverse-D estimator of E-Cor 2.4 [A]
    (arXiv 2606.02608, THEORY §2.4.9, §2.7).

    Parameters
    ----------
    s : float or array_like
        Observed singular value(s) of W = S + R (≥ 0).
    noise_variance : float
        g ≥ 0, the *true* noise level (entries of R have variance g/N, N = rows). Plugging in
        an estimate (e.g. ``MPFit.gain``) is not covered by the theorem (Trap T16).
    shape : (int, int), optional
        ``(rows, cols)``; None or a square shape gives the square formula.
    strict : bool, default=True
        The estimator is defined only above the bulk edge (square: :math:`s^2 > 4g`). With
        ``strict=True`` any value at or below the edge raises ``ValueError``. With
        ``strict=False`` such entries are masked: a ``numpy.ma.MaskedArray`` for array input,
        ``None`` for scalar input. NaN is never returned.

    Returns
    -------
    float, numpy.ndarray, numpy.ma.MaskedArray or None
        Square: :math:`\hat\sigma = (s + \sqrt{s^2 - 4g})/2`. Rectangular:
        :math:`\hat\theta = \kappa\theta'` with
        :math:`\theta'^2 = [(\rho'^2-1-c') + \sqrt{(\rho'^2-1-c')^2 - 4c'}]/2`,
        :math:`\rho' = s/\kappa`.

    Raises
    ------
    ValueError
        If ``strict`` and some ``s`` is at or below the bulk edge (subcritical: the spike, if
        any, is invisible and the formula would return the wrong root).

    Notes
    -----
    Exact inverse of :func:`bbp_outlier` on the supercritical branch:
    :math:`(\sigma + g/\sigma)^2 - 4g = (\sigma - g/\sigma)^2`, and
    :math:`0 \le s - \hat\sigma = 2g/(s + \sqrt{s^2-4g})`.
    """
    kappa, cp, square = _geometry(noise_variance, shape)
    x = _as_values(s, "s")
    edge = kappa * (1.0 + math.sqrt(cp))
    defined = x > edge
    if strict and not np.all(defined):
        bad = float(np.min(np.where(defined, np.inf, x)))
        raise ValueError(
            f"s == {bad:.6g} is at or below the bulk edge {edge:.6g}; the inverse-BBP estimate "
            "is defined only above it (pass strict=False to mask such entries)"
        )
    xs = np.where(defined, x, 2.0 * edge + 1.0)
    if kappa == 0.0:
        est = xs.copy()
    elif square:
        g = kappa * kappa
        est = 0.5 * (xs + np.sqrt(np.maximum(xs * xs - 4.0 * g, 0.0)))
    else:
        rho = xs / kappa
        a = rho * rho - 1.0 - cp
        tp2 = 0.5 * (a + np.sqrt(np.maximum(a * a - 4.0 * cp, 0.0)))
        est = kappa * np.sqrt(tp2)
    if est.ndim == 0:
        return float(est) if bool(defined) else None
    if np.all(defined):
        return est
    return np.ma.MaskedArray(est, mask=~defined)
