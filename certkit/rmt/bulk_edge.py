"""c-aware BEMA-type Marchenko–Pastur fit of a weight matrix (THEORY §3.6, Trap T17).

The fit is an **estimation procedure**, not a theorem: every :class:`MPFit` carries
``label="estimated"``. It produces σ̂² (raw entry variance of the MP bulk), the MP edge λ₊
with a Tracy–Widom allowance, σ₊ = sqrt(N·λ₊) on the singular-value scale, the bulk fraction,
the MP-fit error and the outlier ("spike") singular values.

Differences from the authors' code (ALGORITHMS §1.4–1.5), all deliberate:

* Convention of the paper (Trap T1): N = rows, c = cols/rows, eigenvalues of X = WᵀW/N; for
  c > 1 the M − N structural zeros are dropped before fitting (T17). The authors' V1/V2 divide
  by the column count, which makes σ̂² ≈ σ_e²·M/N for M > N.
* Rectangular Johnstone constant (1+√c)(1+c^{−1/2})^{1/3} (THEORY §3.2). The authors' code
  writes ``(1+√γ)**4/3``, which Python reads as ((1+√γ)⁴)/3 instead of (1+√γ)^{4/3}; fixed.
* The MP CDF is 1 above λ₊ (the legacy CDF returns 0 there; ALGORITHMS §1.5), and the
  fit error is a proper two-sided Kolmogorov distance.
* Quantiles at the midpoint plotting positions (i + ½)/p instead of i/p (removes a half-rank
  bias of order 1/p in σ̂²).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch

from .._registry import implements
from .._validation import as_tensor, check_int, check_probability, check_scalar
from .marchenko_pastur import _cdf_continuous, _ppf_continuous
from .spectral import _gram_eigs
from .tracy_widom import tw1_quantile

__all__ = ["MPFit", "fit_mp", "johnstone_constant", "mp_edge_with_tw"]

#: Defaults of every call site in the authors' repository (ALGORITHMS §1.1) and ESM_2.
DEFAULT_ALPHA = 0.25
DEFAULT_BETA = 0.8
#: False-alarm level of the spike test (probability that pure noise yields ≥ 1 spike,
#: asymptotically, per matrix).
DEFAULT_SPIKE_LEVEL = 0.01
#: Fewest eigenvalues allowed in the central α-window (ALGORITHMS §1.4: V3 falls back below 8).
MIN_WINDOW = 8
CONV_MODES = ("unfold", "slices")


@implements("THEORY-3.2-Johnstone", kind="C")
def johnstone_constant(c) -> float:
    r"""Johnstone's TW scale :math:`(1+\sqrt c)(1+c^{-1/2})^{1/3}` for :math:`\lambda_{max}(W^\top W/N)`.

    Implements THEORY §3.2 [C] (registered as ``THEORY-3.2-Johnstone``; Johnstone 2001, a spec
    addition, not a paper result):
    :math:`\lambda_{max} \approx \sigma^2[(1+\sqrt c)^2 + N^{-2/3}(1+\sqrt c)(1+c^{-1/2})^{1/3}
    \mathrm{TW}_1]`. At c = 1 it equals :math:`2^{4/3}` (sympy check S11).
    """
    c = check_scalar(c, "c", min_val=0.0, include_min=False)
    return (1.0 + math.sqrt(c)) * (1.0 + 1.0 / math.sqrt(c)) ** (1.0 / 3.0)


def _edge(c: float, rows: int, sigma2: float, t: float) -> float:
    return sigma2 * ((1.0 + math.sqrt(c)) ** 2 + johnstone_constant(c) * t * rows ** (-2.0 / 3.0))


@implements("THEORY-3.6-BEMA", kind="E")
def mp_edge_with_tw(c, rows, sigma2, t) -> float:
    r"""Finite-N eigenvalue edge :math:`\sigma^2[(1+\sqrt c)^2 + J(c)\,t\,N^{-2/3}]`.

    Implements THEORY §3.6 step 4 [E] (registered as ``THEORY-3.6-BEMA``, not a paper
    result): ``t`` is a TW₁ quantile,
    :math:`J(c)` = :func:`johnstone_constant`, N = ``rows``.
    """
    c = check_scalar(c, "c", min_val=0.0, include_min=False)
    rows = check_int(rows, "rows", min_val=1)
    sigma2 = check_scalar(sigma2, "sigma2", min_val=0.0)
    t = check_scalar(t, "t")
    return _edge(c, rows, sigma2, t)


@dataclass(frozen=True, slots=True)
class MPFit:
    """Result of :func:`fit_mp` (an *estimate*, ``label="estimated"``).

    Attributes
    ----------
    shape : tuple of int
        Shape of the matrix that was fitted, ``(rows, cols)`` (per slice for ``conv="slices"``).
    source_shape : tuple of int
        Shape of the input tensor (4-D for conv kernels).
    rows, cols : int
        N and M of the paper's convention (N = rows).
    ratio : float
        c = cols/rows.
    n_matrices : int
        Number of matrices whose spectra were pooled (``kh·kw`` for ``conv="slices"``, else 1).
    conv : str or None
        ``"unfold"``/``"slices"`` for 4-D input, None for a matrix.
    entry_variance : float
        σ̂², the fitted raw entry variance of the MP bulk (paper scale, T2).
    lambda_plus : float
        T₊ = σ̂²[(1+√c)² + J(c)·t_{1−β}·N^{−2/3}], the BEMA edge on the eigenvalue scale of
        X = WᵀW/N.
    lambda_plus_asymptotic : float
        σ̂²(1+√c)².
    lambda_minus : float
        σ̂²(1−√c)² (lower edge of the continuous part).
    sigma_plus : float
        sqrt(N·λ₊): the edge on the singular-value scale of W (≈ √var·(√rows + √cols)).
    bulk_fraction : float
        Fraction of the M·n_matrices eigenvalues of X (structural zeros included) that are ≤ λ₊.
    fit_error : float
        Two-sided Kolmogorov distance, over the central α-window, between the ECDF of the
        nonzero eigenvalues and the fitted MP(c, σ̂²) continuous-part CDF.
    spike_threshold : float
        Eigenvalue edge at false-alarm level ``spike_level``:
        σ̂²[(1+√c)² + J(c)·t_{1−level/n_matrices}·N^{−2/3}] (Bonferroni over pooled slices).
    n_spikes : int
        Number of eigenvalues above ``spike_threshold``.
    spikes : tuple of float
        Their singular values sqrt(N·λ), descending.
    tw_quantile : float
        t_{1−β} used in ``lambda_plus``.
    alpha, beta, spike_level : float
        Hyper-parameters.
    label : str
        Always ``"estimated"``: the fit is an estimation procedure, not a theorem.
    """

    shape: tuple[int, int]
    source_shape: tuple[int, ...]
    rows: int
    cols: int
    ratio: float
    n_matrices: int
    conv: str | None
    entry_variance: float
    lambda_plus: float
    lambda_plus_asymptotic: float
    lambda_minus: float
    sigma_plus: float
    bulk_fraction: float
    fit_error: float
    spike_threshold: float
    n_spikes: int
    spikes: tuple[float, ...]
    tw_quantile: float
    alpha: float
    beta: float
    spike_level: float
    label: str = "estimated"

    @property
    def gain(self) -> float:
        """g = rows·σ̂², the noise level in the 1/N convention of the BBP functions."""
        return self.rows * self.entry_variance

    @property
    def sigma_plus_asymptotic(self) -> float:
        """sqrt(N·σ̂²(1+√c)²) = √σ̂²·(√rows + √cols)."""
        return math.sqrt(self.rows * self.lambda_plus_asymptotic)

    @property
    def spike_sigma_threshold(self) -> float:
        """Singular-value threshold sqrt(N·spike_threshold) for :attr:`spikes`."""
        return math.sqrt(self.rows * max(self.spike_threshold, 0.0))

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists; derived properties included)."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["source_shape"] = list(self.source_shape)
        d["spikes"] = list(self.spikes)
        d["gain"] = self.gain
        d["sigma_plus_asymptotic"] = self.sigma_plus_asymptotic
        return d

    def __repr__(self) -> str:
        return (
            f"MPFit({self.rows}x{self.cols}, c={self.ratio:.4g}, var={self.entry_variance:.4g}, "
            f"lambda+={self.lambda_plus:.4g}, sigma+={self.sigma_plus:.4g}, "
            f"bulk={self.bulk_fraction:.3f}, err={self.fit_error:.3g}, spikes={self.n_spikes} "
            f"[{self.label}])"
        )


@lru_cache(maxsize=512)
def _window(p: int, alpha: float) -> tuple[int, int]:
    lo = int(math.floor(alpha * p))
    hi = int(math.floor((1.0 - alpha) * p))
    return lo, hi


@lru_cache(maxsize=512)
def _window_quantiles(p: int, c: float, alpha: float) -> np.ndarray:
    """MP(c, 1) continuous-part quantiles at (i + ½)/p for the window i ∈ [⌊αp⌋, ⌊(1−α)p⌋)."""
    lo, hi = _window(p, alpha)
    u = (np.arange(lo, hi, dtype=np.float64) + 0.5) / p
    q = _ppf_continuous(u, c, 1.0)
    q.setflags(write=False)
    return q


def _spectrum(mats: torch.Tensor) -> np.ndarray:
    """Nonzero-part eigenvalues of X = WᵀW/N for a batch (B, N, M): shape (B, min(N, M))."""
    N = mats.shape[1]
    return np.stack([_gram_eigs(A) for A in mats]) / N


@implements("THEORY-3.6-BEMA", kind="E")
def fit_mp(
    W,
    *,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    spike_level: float = DEFAULT_SPIKE_LEVEL,
    conv: str = "unfold",
    return_spectrum: bool = False,
) -> MPFit:
    r"""Fit MP(c, σ̂²) to the bulk of a weight matrix (c-aware BEMA, THEORY §3.6).

    Implements THEORY §3.6 [E] (registered as ``THEORY-3.6-BEMA``): an estimation procedure
    built on M-Thm 2.2 and M-Rem 2.3 (arXiv 2606.02608; ESM_2 BEMA). Not a theorem: the
    result is labelled ``"estimated"``.

    Parameters
    ----------
    W : array_like or torch.Tensor, shape (rows, cols) or (C_out, C_in, kh, kw)
        Weight matrix (PyTorch ``(out, in)`` layout: rows = outputs, Trap T1) or conv kernel.
        Converted to float64.
    alpha : float, default=0.25
        Central window: order statistics i with ⌊αp⌋ ≤ i < ⌊(1−α)p⌋ (ascending, 0-based),
        ``0 < alpha < 0.5``.
    beta : float, default=0.8
        TW level of the edge: t = TW₁ quantile at 1 − β (β = 0.8: t = −2.28316).
    spike_level : float, default=0.01
        False-alarm level of the spike threshold.
    conv : {"unfold", "slices"}, default="unfold"
        For 4-D kernels: ``"unfold"`` views W as C_out × (C_in·kh·kw) (im2col order,
        ALGORITHMS §1.7); ``"slices"`` fits the kh·kw spatial slices W[:, :, i, j]
        (C_out × C_in each) jointly: their nonzero spectra are pooled into one window, and the
        returned :class:`MPFit` describes the pooled spectrum (``shape`` per slice,
        ``n_matrices = kh·kw``; the spike threshold is Bonferroni-corrected over slices).
    return_spectrum : bool, default=False
        Also return the fitted eigenvalues: an array (n_matrices, min(N, M)), ascending per
        matrix, of the nonzero part of the spectrum of X = WᵀW/N (for plots).

    Returns
    -------
    MPFit

    Raises
    ------
    ValueError
        W not 2-D/4-D, empty, non-finite, or too small for the window (fewer than
        ``MIN_WINDOW`` eigenvalues in it); a parameter out of range.

    Notes
    -----
    With p = min(N, M), c = M/N, λ_(1) ≤ … ≤ λ_(p) the nonzero-part eigenvalues of
    X = WᵀW/N and :math:`q_i = Q_{MP(c,1)}((i+\tfrac12)/p)` (continuous part):

    .. math::
        \hat\sigma^2 = \frac{\sum_{i\in\mathcal W} q_i\lambda_{(i)}}{\sum_{i\in\mathcal W} q_i^2},
        \qquad
        T_+ = \hat\sigma^2\Bigl[(1+\sqrt c)^2 + (1+\sqrt c)(1+c^{-1/2})^{1/3}\,
              t_{1-\beta}\,N^{-2/3}\Bigr],\qquad \sigma_+ = \sqrt{N T_+}.

    The rectangular Johnstone constant replaces the authors' ``(1+√γ)**4/3`` (a precedence
    bug: ((1+√γ)⁴)/3); at c = 1 it is ESM_2's 2^{4/3}.
    """
    alpha = check_scalar(alpha, "alpha", min_val=0.0, max_val=0.5, include_min=False,
                         include_max=False)
    beta = check_probability(beta, "beta")
    spike_level = check_probability(spike_level, "spike_level")
    if conv not in CONV_MODES:
        raise ValueError(f"conv == {conv!r}, must be one of {CONV_MODES}")
    T = as_tensor(W, "W", ndim=(2, 4), shape_hint="(rows, cols) or (C_out, C_in, kh, kw)")
    source_shape = tuple(int(d) for d in T.shape)
    conv_used = None
    if T.ndim == 4:
        conv_used = conv
        if conv == "unfold":
            mats = T.reshape(T.shape[0], -1).unsqueeze(0)
        else:
            mats = T.permute(2, 3, 0, 1).reshape(-1, T.shape[0], T.shape[1])
    else:
        mats = T.unsqueeze(0)
    B, N, M = (int(d) for d in mats.shape)
    p = min(N, M)
    lo, hi = _window(p, alpha)
    if hi - lo < MIN_WINDOW:
        raise ValueError(
            f"W is too small for the central alpha-window: min(rows, cols) == {p} gives "
            f"{hi - lo} eigenvalues in [floor(alpha*p), floor((1-alpha)*p)) with alpha == "
            f"{alpha}; need >= {MIN_WINDOW}"
        )
    c = M / N
    ev = _spectrum(mats)  # (B, p) ascending per matrix
    q = _window_quantiles(p, c, alpha)

    # 1-3: LS scale through the origin on the central window (pooled over slices).
    win = ev[:, lo:hi]
    denom = B * float(np.dot(q, q))
    sigma2 = float(np.sum(win @ q)) / denom
    if not sigma2 > 0.0:
        raise ValueError("W has a (numerically) zero spectrum in the central window; "
                         "cannot fit an MP bulk")

    # 4: edge with TW allowance (t_{1-beta}), and the spike threshold.
    t_beta = tw1_quantile(1.0 - beta)
    lam_plus = _edge(c, N, sigma2, t_beta)
    lam_asym = sigma2 * (1.0 + math.sqrt(c)) ** 2
    t_spike = tw1_quantile(1.0 - spike_level / B)
    spike_thr = _edge(c, N, sigma2, t_spike)

    # 5: bulk fraction over all M eigenvalues per matrix (structural zeros are <= lambda+).
    n_zero = max(0, M - N)
    below = int(np.count_nonzero(ev <= lam_plus)) + B * n_zero
    bulk_fraction = below / (B * M)

    # MP-fit error: two-sided KS over the window of the pooled nonzero eigenvalues.
    pooled = np.sort(ev.ravel())
    P = pooled.size
    wlo, whi = B * lo, B * hi
    F = _cdf_continuous(pooled[wlo:whi], c, sigma2)
    i = np.arange(wlo, whi, dtype=np.float64)
    fit_error = float(np.max(np.maximum((i + 1.0) / P - F, F - i / P)))

    big = pooled[pooled > spike_thr][::-1]
    spikes = tuple(float(math.sqrt(N * v)) for v in big)
    fit = MPFit(
        shape=(N, M),
        source_shape=source_shape,
        rows=N,
        cols=M,
        ratio=c,
        n_matrices=B,
        conv=conv_used,
        entry_variance=sigma2,
        lambda_plus=lam_plus,
        lambda_plus_asymptotic=lam_asym,
        lambda_minus=sigma2 * (1.0 - math.sqrt(c)) ** 2,
        sigma_plus=math.sqrt(N * max(lam_plus, 0.0)),
        bulk_fraction=bulk_fraction,
        fit_error=fit_error,
        spike_threshold=spike_thr,
        n_spikes=len(spikes),
        spikes=spikes,
        tw_quantile=t_beta,
        alpha=alpha,
        beta=beta,
        spike_level=spike_level,
    )
    return (fit, ev) if return_spectrum else fit
