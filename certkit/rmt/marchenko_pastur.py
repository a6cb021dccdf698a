"""Marchenko–Pastur law MP(c, σ²) in the paper's convention (THEORY §2.1, §3.1–3.2).

Convention (Trap T1, T2): for W ∈ ℝ^{N×M} with **N = rows** and **M = columns**,
X = WᵀW/N is M×M, the aspect ratio is **c = M/N = cols/rows** (any c > 0) and **σ² is the raw
entry variance** of W. The law has an atom of mass (1 − 1/c)₊ at 0 and the density

    f(x) = sqrt((λ₊ − x)(x − λ₋)) / (2π c σ² x)   on [λ₋, λ₊],  λ± = σ²(1 ± √c)².

Public objects: the scipy-style frozen law :class:`MarchenkoPastur` and the functions
:func:`mp_pdf`, :func:`mp_cdf`, :func:`mp_edges`, :func:`mp_moments`, :func:`mp_sigma_plus`,
:func:`sample_mp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .._registry import implements
from .._validation import check_generator, check_int, check_scalar

__all__ = [
    "MarchenkoPastur",
    "mp_pdf",
    "mp_cdf",
    "mp_edges",
    "mp_moments",
    "mp_sigma_plus",
    "sample_mp",
    "MP_PARAMETERS",
    "ENTRY_LAWS",
]

#: Parameter domains of MP(c, σ²) stated as data (STYLE §1.2): name -> (low, high, closed).
#: Both parameters live in the open interval (0, ∞).
MP_PARAMETERS = {
    "ratio": {"symbol": "c = cols/rows", "domain": (0.0, math.inf), "inclusive": (False, False)},
    "sigma2": {"symbol": "σ² (raw entry variance)", "domain": (0.0, math.inf),
               "inclusive": (False, False)},
}

#: Entry laws of :func:`sample_mp` (THEORY §3.4): all have mean 0 and variance σ².
#: ``student_t3`` has an infinite 4th moment (control for Trap T23: the ESD still converges but
#: λ_max escapes the edge).
ENTRY_LAWS = ("gaussian", "rademacher", "uniform", "student_t3")

#: Bisection steps of the quantile on φ ∈ [0, π]: π·2⁻⁶⁰ ≈ 3e-18, below float64 resolution.
_PPF_BISECTION_STEPS = 60


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _check_c(c, name: str = "c") -> float:
    return check_scalar(c, name, min_val=0.0, include_min=False)


def _check_sigma2(sigma2, name: str = "sigma2") -> float:
    return check_scalar(sigma2, name, min_val=0.0, include_min=False)


def _as_points(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got a complex array")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf; all entries must be finite")
    return arr


def _out(arr: np.ndarray):
    """Return a python float for 0-d results, else the array."""
    return float(arr) if arr.ndim == 0 else arr


# --------------------------------------------------------------------------------------------
# private formulas (unvalidated, float64 numpy, scalar c and s2)
# --------------------------------------------------------------------------------------------
def _edges(c: float, s2: float) -> tuple[float, float]:
    rc = math.sqrt(c)
    return s2 * (1.0 - rc) ** 2, s2 * (1.0 + rc) ** 2


def _atom(c: float) -> float:
    return max(0.0, 1.0 - 1.0 / c)


def _cont_mass(c: float) -> float:
    return min(1.0, 1.0 / c)


def _pdf(x: np.ndarray, c: float, s2: float) -> np.ndarray:
    lo, hi = _edges(c, s2)
    inside = (x > lo) & (x < hi) & (x > 0)
    xs = np.where(inside, x, 0.5 * (lo + hi))
    val = np.sqrt(np.maximum((hi - xs) * (xs - lo), 0.0)) / (2.0 * math.pi * c * s2 * xs)
    return np.where(inside, val, 0.0)


def _phi_of_x(x: np.ndarray, c: float, s2: float) -> np.ndarray:
    """φ(x) ∈ [0, π] with x = σ²(1 + c + 2√c cos φ) (x = λ₊ ↦ 0, x = λ₋ ↦ π).

    Computed as 2·atan2(sin(φ/2), cos(φ/2)) from
    cos²(φ/2) = (x/σ² − (1−√c)²)/(4√c) and sin²(φ/2) = ((1+√c)² − x/σ²)/(4√c),
    which stays accurate at both edges (``arccos`` loses all digits of x ≪ σ² at c = 1).
    """
    rc = math.sqrt(c)
    y = x / s2
    cos2 = np.clip((y - (1.0 - rc) ** 2) / (4.0 * rc), 0.0, 1.0)
    sin2 = np.clip(((1.0 + rc) ** 2 - y) / (4.0 * rc), 0.0, 1.0)
    return 2.0 * np.arctan2(np.sqrt(sin2), np.sqrt(cos2))


def _x_of_phi(phi: np.ndarray, c: float, s2: float) -> np.ndarray:
    """x(φ) = σ²((1−√c)² + 4√c cos²(φ/2)), the cancellation-free form of σ²(1+c+2√c cos φ)."""
    rc = math.sqrt(c)
    return s2 * ((1.0 - rc) ** 2 + 4.0 * rc * np.cos(phi / 2) ** 2)


def _mass_above_phi(phi: np.ndarray, c: float) -> np.ndarray:
    r"""Continuous MP mass on [λ₋, x(φ)] = ∫_φ^π (2/π) sin²ψ / (1 + c + 2√c cos ψ) dψ.

    Closed form (σ² cancels): with a = 1+c, b = 2√c, √(a²−b²) = |1−c|, r = |1−√c|/(1+√c),
    an antiderivative of sin²ψ/(a + b cos ψ) is
    G(ψ) = −(b sin ψ − aψ)/b² − (2|1−c|/b²)·atan(r tan(ψ/2)), so that
    G(π) − G(φ) = [a(π − φ) + b sin φ − 2|1−c|·atan2(cos(φ/2), r sin(φ/2))]/b².
    The atan2 form avoids tan(π/2) and the c = 1 singularity of the textbook expression.
    """
    a = 1.0 + c
    b = 2.0 * math.sqrt(c)
    d = abs(1.0 - c)
    r = abs(1.0 - math.sqrt(c)) / (1.0 + math.sqrt(c))
    h = a * (math.pi - phi) + b * np.sin(phi) - 2.0 * d * np.arctan2(np.cos(phi / 2), r * np.sin(phi / 2))
    return np.clip((2.0 / math.pi) * h / (b * b), 0.0, _cont_mass(c))


def _cont_cdf_unnormalized(x: np.ndarray, c: float, s2: float) -> np.ndarray:
    """Mass of the continuous part on [0, x] (between 0 and min(1, 1/c))."""
    lo, hi = _edges(c, s2)
    mass = _mass_above_phi(_phi_of_x(x, c, s2), c)
    mass = np.where(x <= lo, 0.0, mass)
    return np.where(x >= hi, _cont_mass(c), mass)


def _cdf(x: np.ndarray, c: float, s2: float) -> np.ndarray:
    atom = np.where(x >= 0.0, _atom(c), 0.0)
    return np.clip(atom + _cont_cdf_unnormalized(x, c, s2), 0.0, 1.0)


def _cdf_continuous(x: np.ndarray, c: float, s2: float) -> np.ndarray:
    return np.clip(_cont_cdf_unnormalized(x, c, s2) / _cont_mass(c), 0.0, 1.0)


def _ppf_continuous(u: np.ndarray, c: float, s2: float) -> np.ndarray:
    """Quantile of the renormalized continuous part: vectorized bisection on φ."""
    target = u * _cont_mass(c)
    lo_phi = np.zeros_like(u)  # mass(φ=0) = total continuous mass >= target
    hi_phi = np.full_like(u, math.pi)  # mass(φ=π) = 0 <= target
    for _ in range(_PPF_BISECTION_STEPS):
        mid = 0.5 * (lo_phi + hi_phi)
        above = _mass_above_phi(mid, c) >= target  # mass decreases in φ
        lo_phi = np.where(above, mid, lo_phi)
        hi_phi = np.where(above, hi_phi, mid)
    phi = 0.5 * (lo_phi + hi_phi)
    x = _x_of_phi(phi, c, s2)
    lo, hi = _edges(c, s2)
    x = np.where(u <= 0.0, lo, np.where(u >= 1.0, hi, x))
    return np.clip(x, lo, hi)


def _ppf(q: np.ndarray, c: float, s2: float) -> np.ndarray:
    atom = _atom(c)
    u = (q - atom) / _cont_mass(c)
    x = _ppf_continuous(np.clip(u, 0.0, 1.0), c, s2)
    return np.where(q <= atom, 0.0, x) if atom > 0 else x


@lru_cache(maxsize=64)
def _narayana_poly(k: int) -> tuple[int, ...]:
    """Coefficients Nar(k, j) = C(k,j)C(k,j−1)/k, j = 1..k."""
    return tuple(math.comb(k, j) * math.comb(k, j - 1) // k for j in range(1, k + 1))


def _moment(k: int, c: float, s2: float) -> float:
    if k == 0:
        return 1.0
    coeffs = _narayana_poly(k)
    return s2**k * sum(n * c ** (j) for j, n in enumerate(coeffs))


# --------------------------------------------------------------------------------------------
# frozen law
# --------------------------------------------------------------------------------------------
@implements("M-Thm 2.2", kind="C")
@dataclass(frozen=True, slots=True)
class MarchenkoPastur:
    r"""Frozen Marchenko–Pastur law MP(c, σ²) (scipy ``rv_frozen`` style).

    Implements M-Thm 2.2 [C] (arXiv 2606.02608): the limit of the eigenvalue ESD of
    X = WᵀW/N for W ∈ ℝ^{N×M} with iid entries of variance σ², c = M/N.

    Parameters
    ----------
    ratio : float
        Aspect ratio :math:`c = M/N` = cols/rows, in (0, ∞) (may exceed 1).
    sigma2 : float, default=1.0
        Raw entry variance σ², in (0, ∞).

    Notes
    -----
    .. math::
        \mathrm{MP}(c,\sigma^2) = (1 - 1/c)_+\,\delta_0 + f(x)\,dx,\qquad
        f(x) = \frac{\sqrt{(\lambda_+ - x)(x - \lambda_-)}}{2\pi c\sigma^2 x}
        \mathbf 1_{[\lambda_-,\lambda_+]}(x),\qquad \lambda_\pm = \sigma^2(1\pm\sqrt c)^2 .

    ``cdf`` is 0 below 0, jumps by the atom at 0 (c > 1), follows the closed form on the
    support and is **1 above λ₊**. (The authors' legacy CDF returns 0 above λ₊ for c ≤ 1,
    ALGORITHMS §1.5 — a bug that saturates the MP-fit error at ≈ 0.75; certkit does not
    reproduce it.) ``cdf_continuous`` / ``ppf_continuous`` refer to the continuous part
    renormalized to mass 1 (the law of the nonzero eigenvalues).
    """

    ratio: float
    sigma2: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "ratio", _check_c(self.ratio, "ratio"))
        object.__setattr__(self, "sigma2", _check_sigma2(self.sigma2, "sigma2"))

    # -- support and constants ---------------------------------------------------------------
    @property
    def edges(self) -> tuple[float, float]:
        """``(λ₋, λ₊) = (σ²(1−√c)², σ²(1+√c)²)``."""
        return _edges(self.ratio, self.sigma2)

    @property
    def atom(self) -> float:
        """Mass ``(1 − 1/c)₊`` of the atom at 0."""
        return _atom(self.ratio)

    def support(self) -> tuple[float, float]:
        """Support of the continuous part, ``(λ₋, λ₊)`` (the atom sits at 0 when c > 1)."""
        return self.edges

    # -- distribution functions --------------------------------------------------------------
    def pdf(self, x):
        """Density of the continuous part (integrates to ``min(1, 1/c)``); 0 off the support."""
        return _out(_pdf(_as_points(x, "x"), self.ratio, self.sigma2))

    def cdf(self, x):
        """CDF of the full law (atom included): 0 for x < 0, 1 for x ≥ λ₊."""
        return _out(_cdf(_as_points(x, "x"), self.ratio, self.sigma2))

    def cdf_continuous(self, x):
        """CDF of the continuous part renormalized to mass 1 (law of nonzero eigenvalues)."""
        return _out(_cdf_continuous(_as_points(x, "x"), self.ratio, self.sigma2))

    def ppf(self, q):
        """Quantile of the full law: 0 for ``q ≤ (1−1/c)₊``; bisection on φ (error < 1e-12)."""
        q = _check_probabilities(q, "q")
        return _out(_ppf(q, self.ratio, self.sigma2))

    def ppf_continuous(self, u):
        """Quantile of the renormalized continuous part: ``u ∈ [0,1] ↦ [λ₋, λ₊]``."""
        u = _check_probabilities(u, "u")
        return _out(_ppf_continuous(u, self.ratio, self.sigma2))

    quantile = ppf

    # -- moments -----------------------------------------------------------------------------
    def moment(self, k) -> float:
        """Raw moment :math:`m_k = σ^{2k}\\sum_{j=1}^k \\mathrm{Nar}(k,j)c^{j-1}` (atom included)."""
        k = check_int(k, "k", min_val=0)
        return _moment(k, self.ratio, self.sigma2)

    def mean(self) -> float:
        """``σ²``."""
        return self.sigma2

    def var(self) -> float:
        """``c σ⁴``."""
        return self.ratio * self.sigma2**2

    # -- sampling ----------------------------------------------------------------------------
    def rvs(self, size=1, *, seed=None) -> np.ndarray:
        """Draw iid values from MP(c, σ²) by inversion (atom included).

        For eigenvalues of an actual random matrix use :func:`sample_mp`.
        """
        rng = check_generator(seed)
        u = rng.random(size)
        return _ppf(np.asarray(u, dtype=np.float64), self.ratio, self.sigma2)


def _check_probabilities(q, name: str) -> np.ndarray:
    arr = _as_points(q, name)
    if np.any((arr < 0.0) | (arr > 1.0)):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{arr.min()}, {arr.max()}]")
    return arr


# --------------------------------------------------------------------------------------------
# functional API (contract: mp_pdf(x, c, sigma2), mp_cdf(x, c, sigma2), mp_edges(c, sigma2),
# mp_moments(k, c, sigma2), sample_mp(N, M, sigma2=1.0, *, seed=None, law="gaussian"))
# --------------------------------------------------------------------------------------------
@implements("M-Thm 2.2", kind="C")
def mp_pdf(x, c, sigma2=1.0):
    r"""Marchenko–Pastur density of the continuous part of MP(c, σ²).

    Implements M-Thm 2.2 [C] (arXiv 2606.02608).

    Parameters
    ----------
    x : float or array_like
        Evaluation points.
    c : float
        Aspect ratio ``cols/rows`` (> 0).
    sigma2 : float, default=1.0
        Raw entry variance σ² (> 0).

    Returns
    -------
    float or numpy.ndarray
        :math:`f(x) = \sqrt{(\lambda_+-x)(x-\lambda_-)}/(2\pi c\sigma^2 x)` on
        :math:`[\lambda_-,\lambda_+]`, 0 elsewhere; :math:`\int f = \min(1, 1/c)`.
    """
    return MarchenkoPastur(_check_c(c), _check_sigma2(sigma2)).pdf(x)


@implements("M-Thm 2.2", kind="C")
def mp_cdf(x, c, sigma2=1.0):
    r"""CDF of MP(c, σ²), atom at 0 included (closed form, numerically stable).

    Implements M-Thm 2.2 [C] (arXiv 2606.02608).

    Parameters
    ----------
    x : float or array_like
        Evaluation points.
    c : float
        Aspect ratio ``cols/rows`` (> 0).
    sigma2 : float, default=1.0
        Raw entry variance σ² (> 0).

    Returns
    -------
    float or numpy.ndarray
        :math:`F(x)`: 0 for :math:`x < 0`; :math:`(1-1/c)_+` on :math:`[0, \lambda_-]`;
        1 for :math:`x \ge \lambda_+` (the legacy code's 0 above λ₊, ALGORITHMS §1.5, is a
        bug not reproduced here).

    Notes
    -----
    With :math:`x(\varphi) = \sigma^2(1 + c + 2\sqrt c\cos\varphi)`,
    :math:`a = 1+c`, :math:`b = 2\sqrt c`, :math:`r = |1-\sqrt c|/(1+\sqrt c)`:

    .. math::
        F(x) = (1-1/c)_+ + \frac{2}{\pi b^2}\Bigl[a(\pi-\varphi) + b\sin\varphi
               - 2|1-c|\,\mathrm{atan2}\bigl(\cos\tfrac\varphi2,\ r\sin\tfrac\varphi2\bigr)\Bigr],
        \qquad \varphi = \arccos\frac{x/\sigma^2 - 1 - c}{2\sqrt c}.
    """
    return MarchenkoPastur(_check_c(c), _check_sigma2(sigma2)).cdf(x)


@implements("M-Thm 2.2", kind="C")
def mp_edges(c, sigma2=1.0) -> tuple[float, float]:
    r"""Edges of the MP support, ``(λ₋, λ₊) = (σ²(1−√c)², σ²(1+√c)²)``.

    Implements M-Thm 2.2 [C] (arXiv 2606.02608). The edges are the roots of
    :math:`x^2 - 2\sigma^2(1+c)x + \sigma^4(1-c)^2` (THEORY §3.2, sympy check S3).
    """
    return _edges(_check_c(c), _check_sigma2(sigma2))


@implements("M-Thm 2.2", kind="C")
def mp_moments(k, c, sigma2=1.0):
    r"""Raw moments of MP(c, σ²) (atom included) by the Narayana formula.

    Implements M-Thm 2.2 [C] (arXiv 2606.02608).

    Parameters
    ----------
    k : int or sequence of int
        Moment order(s) ≥ 0.
    c, sigma2 : float
        Aspect ratio and raw entry variance.

    Returns
    -------
    float or numpy.ndarray
        :math:`m_k = \sigma^{2k}\sum_{j=1}^{k}\mathrm{Nar}(k,j)\,c^{j-1}`,
        :math:`\mathrm{Nar}(k,j) = \binom kj\binom k{j-1}/k`; e.g. :math:`m_2 = \sigma^4(1+c)`,
        :math:`m_4 = \sigma^8(1+6c+6c^2+c^3)`. These are the limits of
        :math:`\frac1M\operatorname{tr}X^k`.
    """
    c = _check_c(c)
    s2 = _check_sigma2(sigma2)
    if isinstance(k, int | np.integer) and not isinstance(k, bool):
        return _moment(check_int(k, "k", min_val=0), c, s2)
    try:
        ks = [check_int(v, "k", min_val=0) for v in k]
    except TypeError as exc:
        raise TypeError(f"k must be an int or a sequence of ints, got {type(k).__name__}") from exc
    return np.array([_moment(v, c, s2) for v in ks], dtype=np.float64)


@implements("M-Rem 2.3", kind="D")
def mp_sigma_plus(rows, cols, entry_variance) -> float:
    r"""Singular-value MP edge :math:`\sigma_+ = \sqrt{N\lambda_+} = \sigma(\sqrt N + \sqrt M)`.

    Implements M-Rem 2.3 and the M-§2.3 conversion [D] (arXiv 2606.02608): the
    convention-free form ``sqrt(entry variance)·(√rows + √cols)`` (Trap T2).
    """
    rows = check_int(rows, "rows", min_val=1)
    cols = check_int(cols, "cols", min_val=1)
    v = check_scalar(entry_variance, "entry_variance", min_val=0.0)
    return math.sqrt(v) * (math.sqrt(rows) + math.sqrt(cols))


def _draw_entries(rng: np.random.Generator, shape, law: str) -> np.ndarray:
    if law == "gaussian":
        return rng.standard_normal(shape)
    if law == "rademacher":
        return rng.integers(0, 2, size=shape).astype(np.float64) * 2.0 - 1.0
    if law == "uniform":
        return rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), size=shape)
    if law == "student_t3":
        return rng.standard_t(3, size=shape) / math.sqrt(3.0)
    raise ValueError(f"law == {law!r}, must be one of {ENTRY_LAWS}")


@implements("M-Thm 2.2", kind="C")
def sample_mp(N, M, sigma2=1.0, *, seed=None, law="gaussian") -> np.ndarray:
    r"""Eigenvalues of :math:`X = W^\top W/N` for a random :math:`N\times M` matrix W.

    Implements the random-matrix side of M-Thm 2.2 [C] (arXiv 2606.02608): as
    :math:`N\to\infty` with :math:`M/N\to c` their ESD converges to MP(c, σ²).

    Parameters
    ----------
    N, M : int
        Rows and columns of W (c = M/N).
    sigma2 : float, default=1.0
        Entry variance.
    seed : None, int or numpy.random.Generator
        Randomness source.
    law : {"gaussian", "rademacher", "uniform", "student_t3"}
        Entry law, rescaled to mean 0 and variance σ² (``student_t3``: infinite fourth moment,
        Trap T23 control).

    Returns
    -------
    numpy.ndarray
        All M eigenvalues, ascending, float64. When M > N the M − N structural zeros are exact
        zeros (the spectrum is computed from the smaller Gram matrix, M-Def 2.1).
    """
    N = check_int(N, "N", min_val=1)
    M = check_int(M, "M", min_val=1)
    s2 = _check_sigma2(sigma2)
    if law not in ENTRY_LAWS:
        raise ValueError(f"law == {law!r}, must be one of {ENTRY_LAWS}")
    rng = check_generator(seed)
    from .spectral import _gram_eigs  # local import: spectral is a sibling, keep import light

    W = torch.from_numpy(_draw_entries(rng, (N, M), law) * math.sqrt(s2))
    ev = _gram_eigs(W) / N
    if M > N:
        ev = np.concatenate([np.zeros(M - N), ev])
    return np.sort(ev)
