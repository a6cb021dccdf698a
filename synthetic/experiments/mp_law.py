r"""The Marchenko–Pastur law itself: ESD of X = WᵀW/N vs MP(c, σ²) (THEORY §3.4).

Implements the Monte Carlo check of M-Thm 2.2 [C] (arXiv 2606.02608) with the conventions of
THEORY §3.1: W ∈ ℝ^{N×M}, N = rows, X = WᵀW/N (M×M), c = M/N, σ² the raw entry variance.

Entry laws (all centred; THEORY §3.4, Trap T23):

* ``gaussian``, ``rademacher``, ``uniform`` — unit variance, light tails: the ESD converges to
  MP(c, 1) and λ_max → λ₊ = (1 + √c)².
* ``student_t3`` — Student-t(3) rescaled to unit variance: finite variance but infinite fourth
  moment. The ESD still converges, but λ_max escapes the edge (reported, not asserted).
* ``student_t1.5`` — Student-t(1.5), unscaled: **infinite variance**, the MP law fails (the ESD
  converges, after the right normalisation, to a heavy-tailed Lévy-matrix law). This control
  must be REJECTED by the same criterion that the light-tailed laws pass.

One trial draws W and records:

* ``ks`` — Kolmogorov distance between the ECDF of the *nonzero* eigenvalues and the
  continuous part of MP(c, σ²_ref), renormalised to mass 1 (THEORY §3.4(b): for c > 1 both
  CDFs jump by 1 − 1/c at 0, and the textbook continuous-reference KS would report a spurious
  ≈ 1 − 1/c). σ²_ref is the true entry variance (1) for the finite-variance laws; for the
  infinite-variance control, which has none, the moment-matched σ̂² = tr(X)/M.
* ``ks_best`` — min over σ² > 0 of the same distance (the most favourable MP law). The control
  is judged on this, so "rejected" means *no* MP law fits, not just a badly chosen scale.
* ``zero_fraction`` (eigenvalues ≤ ``ZERO_REL_TOL``·λ_max) and its [D] value max(0, M−N)/M;
  ``lmax_ratio`` = λ_max/λ₊; relative errors of the first ``N_MOMENTS`` moments (1/M)tr X^k
  against :func:`certkit.rmt.mp_moments` (atom included).

Verdict: for every light-tailed (law, c) the median KS must decrease with N (Spearman ρ ≤
``SPEARMAN_MAX``) and be ≤ ``LIGHT_KS_MAX`` at the largest N; the infinite-variance control must
fail that criterion (on ``ks_best``) for every c; the zero fractions must match exactly.
λ_max/λ₊ → 1 for Gaussian vs the escaping t(3) control is reported.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize

from certkit.mc import spearman_trend
from certkit.rmt import MarchenkoPastur, covariance_eigenvalues, mp_moments, sample_mp
from synthetic.experiments._common import trial_rng
from synthetic.registry import Conclusion, Experiment, register

__all__ = [
    "CONTROL_LAWS",
    "ENTRY_LAWS",
    "LIGHT_LAWS",
    "check",
    "grid",
    "ks_distance",
    "n_trials",
    "summarize",
    "trial",
]

LIGHT_LAWS = ("gaussian", "rademacher", "uniform")
#: Finite variance, infinite 4th moment (edge escapes; ESD converges): reported only.
EDGE_CONTROL_LAWS = ("student_t3",)
#: Infinite variance: MP fails; must be rejected.
CONTROL_LAWS = ("student_t1.5",)
ENTRY_LAWS = LIGHT_LAWS + EDGE_CONTROL_LAWS + CONTROL_LAWS
#: Degrees of freedom of the infinite-variance Student-t control (1 < ν < 2: finite mean,
#: infinite variance).
HEAVY_DOF = 1.5

#: THEORY §3.4(a): an eigenvalue is numerically zero if ≤ ZERO_REL_TOL·λ_max.
ZERO_REL_TOL = 1e-10
#: THEORY §3.4(b): the median KS must decrease with N with Spearman ρ ≤ SPEARMAN_MAX.
SPEARMAN_MAX = -0.8
#: "Small" KS at the largest N of the grid. THEORY §3.4 expects < 0.01 for Gaussian at N = 1600.
#: Measured medians at N = 400: ≤ 0.026 for the light laws at c = 1/4 (only 100 eigenvalues) and
#: ≤ 0.008 at c ≥ 1, while the infinite-variance control's ks_best stays ≥ 0.1 at every N.
LIGHT_KS_MAX = 0.05
#: Number of moments (1/M)tr X^k compared with the MP moments (THEORY §3.4(d)).
N_MOMENTS = 4
#: Search range of ks_best over log σ² around the moment-matched value (natural-log units) and
#: the coarse grid size before the bounded refinement.
LOG_SIGMA2_SPAN = 12.0
N_SIGMA2_GRID = 25
#: Tolerance (log σ² units) of the bounded refinement of ks_best.
LOG_SIGMA2_XTOL = 1e-3

SIZES_FULL = (100, 200, 400, 800)
SIZES_QUICK = (100, 200, 400)
RATIOS = (0.25, 1.0, 4.0)
N_TRIALS_FULL, N_TRIALS_QUICK = 20, 6

CONFIG_KEYS = ("law", "N", "c")


def _validate(config: dict) -> tuple[str, int, int]:
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    if set(config) != set(CONFIG_KEYS):
        raise ValueError(f"config keys == {sorted(config)}, must be exactly {sorted(CONFIG_KEYS)}")
    law, N, c = config["law"], config["N"], config["c"]
    if law not in ENTRY_LAWS:
        raise ValueError(f"config['law'] == {law!r}, must be one of {ENTRY_LAWS}")
    if isinstance(N, bool) or not isinstance(N, int) or N < 2:
        raise ValueError(f"config['N'] == {N!r}, must be an int >= 2 (rows of W)")
    if isinstance(c, bool) or not isinstance(c, int | float) or not (math.isfinite(c) and c > 0):
        raise ValueError(f"config['c'] == {c!r}, must be a finite number > 0 (c = M/N)")
    M = int(round(c * N))
    if M < 2 or abs(M - c * N) > 1e-9 * c * N:
        raise ValueError(f"config['c'] == {c!r} with N == {N} gives M = c·N = {c * N}, must be "
                         "an integer >= 2")
    return law, N, M


def ks_distance(x_sorted: np.ndarray, cdf_values: np.ndarray) -> float:
    r"""Two-sided Kolmogorov distance :math:`\sup_x |F_n(x) − F(x)|` for a continuous F.

    ``x_sorted`` are the sample points in ascending order and ``cdf_values`` = F(x_sorted);
    :math:`D = \max_i \max(i/n − F(x_{(i)}),\, F(x_{(i)}) − (i−1)/n)`.
    """
    n = x_sorted.size
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(np.max(np.maximum(i / n - cdf_values, cdf_values - (i - 1) / n)))


def _ks_continuous(positive: np.ndarray, law: MarchenkoPastur, sigma2: float) -> float:
    """KS of the nonzero-part eigenvalues vs the renormalised continuous part of MP(c, σ²).

    ``law`` is MP(c, 1); MP(c, σ²) is its image under x ↦ σ²x, so F_{c,σ²}(x) = F_{c,1}(x/σ²).
    """
    return ks_distance(positive, np.asarray(law.cdf_continuous(positive / sigma2)))


def _ks_best(positive: np.ndarray, law: MarchenkoPastur, sigma2_0: float) -> float:
    """min over σ² of :func:`_ks_continuous` (coarse log-grid around σ²_0, bounded refinement)."""
    center = math.log(sigma2_0)
    grid = np.linspace(center - LOG_SIGMA2_SPAN, center + LOG_SIGMA2_SPAN, N_SIGMA2_GRID)
    vals = [_ks_continuous(positive, law, math.exp(v)) for v in grid]
    i = int(np.argmin(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(lambda v: _ks_continuous(positive, law, math.exp(v)),
                                   bounds=(lo, hi), method="bounded",
                                   options={"xatol": LOG_SIGMA2_XTOL})
    return float(min(vals[i], res.fun))


def _eigenvalues(law: str, N: int, M: int, rng: np.random.Generator) -> np.ndarray:
    if law == "student_t1.5":
        return np.sort(covariance_eigenvalues(rng.standard_t(HEAVY_DOF, size=(N, M))))
    return sample_mp(N, M, 1.0, seed=rng, law=law)


def trial(config: dict, seed: int) -> dict:
    """One draw of W (N × c·N) with the configured entry law; see the module docstring."""
    law, N, M = _validate(config)
    c = M / N
    ev = _eigenvalues(law, N, M, trial_rng(config, seed))    # ascending, M values
    lmax = float(ev[-1])
    n_struct = max(0, M - N)                # structural zeros of X (M-Def 2.1), exact zeros
    positive = ev[n_struct:]                # the min(N, M) nonzero-part eigenvalues
    moment_matched = float(ev.mean())       # tr(X)/M = mean of the squared entries of W
    sigma2 = moment_matched if law in CONTROL_LAWS else 1.0
    mp1 = MarchenkoPastur(c, 1.0)
    row = {
        "M": M,
        "sigma2_ref": sigma2,
        "ks": _ks_continuous(positive, mp1, sigma2),
        "ks_best": _ks_best(positive, mp1, moment_matched),
        "zero_fraction": float(np.mean(ev <= ZERO_REL_TOL * lmax)),
        "zero_fraction_expected": n_struct / M,
        "lmax_ratio": lmax / (sigma2 * mp1.edges[1]),
    }
    ref = mp_moments(list(range(1, N_MOMENTS + 1)), c, sigma2)
    for k in range(1, N_MOMENTS + 1):
        row[f"moment{k}_relerr"] = float(abs(np.mean(ev**k) - ref[k - 1]) / ref[k - 1])
    return row


def grid(quick: bool) -> list[dict]:
    """All entry laws × N × c (THEORY §3.4; quick: N ≤ 400)."""
    sizes = SIZES_QUICK if quick else SIZES_FULL
    return [{"law": law, "N": N, "c": c} for law in ENTRY_LAWS for c in RATIOS for N in sizes]


def n_trials(quick: bool) -> int:
    """Replicates per configuration (THEORY §3.4: 20)."""
    return N_TRIALS_QUICK if quick else N_TRIALS_FULL


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """Medians per (law, N, c) of KS, ks_best, λ_max/λ₊, moment errors; max zero-fraction error."""
    cols = [f"cfg_{k}" for k in CONFIG_KEYS]
    missing = [c for c in cols if c not in trials.columns]
    if missing:
        raise ValueError(f"trials table lacks the config columns {missing}")
    rows = []
    for key, df in trials.groupby(cols, sort=True):
        row = dict(zip(cols, key, strict=True))
        row["trials"] = len(df)
        for col in ("ks", "ks_best", "lmax_ratio",
                    *(f"moment{k}_relerr" for k in range(1, N_MOMENTS + 1))):
            row[f"median_{col}"] = float(df[col].median())
        excess = df["zero_fraction"] - df["zero_fraction_expected"]
        # [D]: at least M − N zeros; extra ones are near-singular draws (possible for c ≈ 1).
        row["max_zero_fraction_deficit"] = float(max(0.0, -excess.min()))
        row["max_zero_fraction_excess"] = float(max(0.0, excess.max()))
        rows.append(row)
    return pd.DataFrame(rows)


def _trend(df: pd.DataFrame, col: str) -> tuple[float, float, int]:
    """(Spearman ρ of N vs the column, its value at the largest N, largest N)."""
    df = df.sort_values("cfg_N")
    rho = spearman_trend(df["cfg_N"], df[col]) if len(df) >= 3 else float("nan")
    return rho, float(df[col].iloc[-1]), int(df["cfg_N"].iloc[-1])


def _mp_passes(df: pd.DataFrame, col: str) -> tuple[bool, str]:
    rho, last, n_max = _trend(df, col)
    ok = bool(rho <= SPEARMAN_MAX and last <= LIGHT_KS_MAX)
    name = col.removeprefix("median_")
    return ok, (f"Spearman(N, median {name}) = {rho:+.2f}, median {name} at N={n_max}: "
                f"{last:.4f}, limit {LIGHT_KS_MAX}")


def check(summary: pd.DataFrame) -> Conclusion:
    """Light laws pass (KS ↓ with N and small); the infinite-variance control is rejected."""
    msgs, passed = [], True
    n_sizes = summary["cfg_N"].nunique()
    if n_sizes < 3:
        return Conclusion(False, (f"need >= 3 sizes N for a trend, got {n_sizes}",))
    for (law, c), df in summary.groupby(["cfg_law", "cfg_c"], sort=True):
        if law in LIGHT_LAWS:
            ok, txt = _mp_passes(df, "median_ks")
            passed &= ok
            msgs.append(f"{law}, c={c}: {'MP not rejected' if ok else 'FAILED'} ({txt})")
        elif law in CONTROL_LAWS:
            ok, txt = _mp_passes(df, "median_ks_best")
            passed &= not ok
            msgs.append(f"control {law}, c={c}: "
                        f"{'rejected as expected' if not ok else 'NOT rejected (FAILED)'} ({txt})")
        else:
            ok, txt = _mp_passes(df, "median_ks")
            rho, last, n_max = _trend(df, "median_lmax_ratio")
            msgs.append(f"report {law}, c={c}: ESD {'passes' if ok else 'does not pass'} ({txt}); "
                        f"median λ_max/λ₊ at N={n_max}: {last:.3f} (Spearman {rho:+.2f})")
    deficit = float(summary["max_zero_fraction_deficit"].max())
    if deficit > 0:
        passed = False
        msgs.append(f"zero fraction below max(0, M-N)/M by {deficit} ([D] violation)")
    excess = summary[summary["max_zero_fraction_excess"] > 0]
    if len(excess):
        msgs.append("report: numerically zero eigenvalues beyond the M-N structural ones in "
                    + ", ".join(f"{r.cfg_law} N={r.cfg_N} c={r.cfg_c}"
                                for r in excess.itertuples()))
    gauss = summary[summary["cfg_law"] == "gaussian"]
    for c, df in gauss.groupby("cfg_c", sort=True):
        dev = df.assign(dev=(df["median_lmax_ratio"] - 1.0).abs())
        rho, last, n_max = _trend(dev, "dev")
        msgs.append(f"report gaussian, c={c}: |λ_max/λ₊ − 1| at N={n_max}: {last:.4f} "
                    f"(Spearman vs N {rho:+.2f})")
    return Conclusion(bool(passed), tuple(msgs))


register(Experiment(
    name="mp_law",
    description="ESD of WᵀW/N vs Marchenko–Pastur: KS shrinking with N, heavy-tailed control "
                "rejected",
    results=("M-Thm 2.2",),
    grid=grid,
    trial=trial,
    summarize=summarize,
    check=check,
    n_trials=n_trials,
    tags=("C", "mp"),
))
