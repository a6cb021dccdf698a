r"""Monte Carlo helpers for the probabilistic and asymptotic results (THEORY §2.3, §2.4).

* :func:`clopper_pearson` / :func:`binom_check` — the BinomCheck protocol of THEORY §2.3:
  count failures k of a stated event in n independent trials and fail only if there is
  significant evidence that the failure probability exceeds the claimed δ.
* :func:`sample_rv` — the exact-in-distribution R·V shortcut: for R with iid N(0, g/n)
  entries, the n rows of R·V are iid N(0, (g/n)·VᵀV); they are sampled through a thin QR of V
  (VᵀV may be singular: repeated or one-hot inputs).
* :func:`loglog_slope` (with a bootstrap CI) and :func:`spearman_trend` — trend checks for the
  asymptotic ([A]) results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ._validation import check_generator, check_int, check_probability

__all__ = [
    "BinomCheck",
    "SlopeEstimate",
    "binom_check",
    "clopper_pearson",
    "loglog_slope",
    "sample_rv",
    "spearman_trend",
]

#: Confidence level of BinomCheck (THEORY §2.3: one-sided 99.9%, i.e. 0.1% false failures).
BINOM_LEVEL = 0.999


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper–Pearson interval for a binomial proportion k/n at ``level``."""
    n = check_int(n, "n", min_val=1)
    k = check_int(k, "k", min_val=0)
    if k > n:
        raise ValueError(f"k == {k}, must be <= n == {n}")
    a = 1.0 - check_probability(level, "level")
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


@dataclass(frozen=True)
class BinomCheck:
    """Result of :func:`binom_check`.

    ``p_lo`` is the one-sided lower confidence bound on the failure probability; the check
    fails (``passed`` False) only if ``p_lo > delta``.
    """

    failures: int
    trials: int
    delta: float
    level: float
    p_lo: float
    rate: float

    @property
    def passed(self) -> bool:
        return self.p_lo <= self.delta

    @property
    def coverage(self) -> float:
        """Observed frequency of the event holding, 1 − k/n."""
        return 1.0 - self.rate


def binom_check(failures: int, trials: int, delta: float, *, level: float = BINOM_LEVEL
                ) -> BinomCheck:
    r"""BinomCheck of THEORY §2.3: is the failure rate significantly above δ?

    With k failures in n trials, :math:`p_{lo}` = 0 if k = 0, else the (1 − level)-quantile of
    Beta(k, n − k + 1) (one-sided Clopper–Pearson lower bound). The check fails only if
    :math:`p_{lo} > \delta`; its false-failure rate is 1 − level per check (use a
    Bonferroni-adjusted level for a grid of cells).
    """
    trials = check_int(trials, "trials", min_val=1)
    failures = check_int(failures, "failures", min_val=0)
    if failures > trials:
        raise ValueError(f"failures == {failures}, must be <= trials == {trials}")
    delta = check_probability(delta, "delta")
    level = check_probability(level, "level")
    p_lo = 0.0 if failures == 0 else float(stats.beta.ppf(1 - level, failures,
                                                          trials - failures + 1))
    return BinomCheck(failures, trials, delta, level, p_lo, failures / trials)


def sample_rv(V, n: int, g: float, *, size: int = 1, seed=None) -> np.ndarray:
    r"""Draw ``size`` independent copies of R·V for R ∈ ℝ^{n×m} with iid N(0, g/n) entries.

    Exact in distribution (THEORY §2.3): the rows of R·V are iid N(0, (g/n)VᵀV). With the thin
    QR factorisation V = Q·R_V (R_V of size r × |T|, r = min(m, |T|)), each row is z·R_V with
    z ~ N(0, (g/n)I_r) — valid when VᵀV is singular (repeated or one-hot inputs).

    Parameters
    ----------
    V : array-like, shape (m, |T|)
        Columns are the inputs v_s.
    n : int
        Rows of R.
    g : float
        Variance gain: entries of R are N(0, g/n).
    size : int
        Number of independent draws.
    seed : None, int or numpy Generator

    Returns
    -------
    numpy.ndarray, shape (size, n, |T|)
    """
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2 or V.size == 0:
        raise ValueError(f"V must be a non-empty 2-D array (m, |T|), got shape {V.shape}")
    n = check_int(n, "n", min_val=1)
    size = check_int(size, "size", min_val=1)
    if not (math.isfinite(g) and g >= 0):
        raise ValueError(f"g == {g}, must be finite and >= 0")
    rng = check_generator(seed)
    _, RV = np.linalg.qr(V, mode="reduced")  # (r, |T|)
    z = rng.standard_normal((size, n, RV.shape[0])) * math.sqrt(g / n)
    return z @ RV


@dataclass(frozen=True)
class SlopeEstimate:
    """Least-squares slope of log(y) on log(x) with a percentile bootstrap CI."""

    slope: float
    ci_low: float
    ci_high: float
    n_points: int


def loglog_slope(x, y, *, n_boot: int = 2000, level: float = 0.95, seed=0) -> SlopeEstimate:
    """Slope of log y vs log x (OLS) with a percentile bootstrap CI over the (x, y) pairs.

    ``x`` and ``y`` must be positive; repeated x values (replicates) are allowed and are what
    the bootstrap resamples.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"x and y must have the same length >= 3, got {x.size} and {y.size}")
    if not (np.all(x > 0) and np.all(y > 0)):
        raise ValueError("x and y must be positive for a log-log slope")
    if np.unique(x).size < 2:
        raise ValueError("x must take at least two distinct values")
    lx, ly = np.log(x), np.log(y)
    slope = float(np.polyfit(lx, ly, 1)[0])
    rng = check_generator(seed)
    idx = rng.integers(0, x.size, size=(check_int(n_boot, "n_boot", min_val=1), x.size))
    bx, by = lx[idx], ly[idx]
    bxm = bx - bx.mean(axis=1, keepdims=True)
    den = (bxm**2).sum(axis=1)
    ok = den > 0
    boots = (bxm[ok] * (by[ok] - by[ok].mean(axis=1, keepdims=True))).sum(axis=1) / den[ok]
    a = (1 - check_probability(level, "level")) / 2
    lo, hi = np.quantile(boots, [a, 1 - a])
    return SlopeEstimate(slope, float(lo), float(hi), int(x.size))


def spearman_trend(x, y) -> float:
    """Spearman rank correlation of (x, y) (e.g. ρ(N, median remainder) ≤ −0.8 for a decay)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"x and y must have the same length >= 3, got {x.size} and {y.size}")
    return float(stats.spearmanr(x, y).statistic)
