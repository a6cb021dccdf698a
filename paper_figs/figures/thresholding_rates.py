r"""Entrywise thresholding of sparse signal + Gaussian noise: rates vs t/t_{N,δ} (E-Thm 3.20).

THEORY §5.4 ("Thresholding (E-Thm 3.20): false-positive and exact-recovery rates vs threshold
t/t_{N,δ}"); no paper counterpart. W = S + R ∈ ℝ^{N×M}, R iid N(0, g/N), S sparse with random
support; hard thresholding H_t keeps |W_ij| > t. E-Thm 3.20 [P]: at t = t_{N,δ} =
√(2g log(2NM/δ)/N), with probability ≥ 1 − δ there is no false positive and every |S_ij| > 2t is
kept; under the beta-min condition (all |S_ij| > 2t) the support is recovered exactly.

The figure runs the ``thresholding`` Monte Carlo experiment's own trial function
(:mod:`synthetic.experiments.thresholding`) over a grid of threshold factors t/t_{N,δ}, for the
two signal laws of that experiment (``beta_min``: 𝓑 holds; ``straddle``: magnitudes straddle
2t), and draws per factor the failure rates of "no false positive" and of "exact recovery" with
Clopper–Pearson 95 % bands, the level δ, and the theorem's threshold (factor 1). Expected: the
false-positive failure rate is ≤ δ from factor 1 on (it falls fast above 1 and rises steeply
below it); exact recovery needs beta-min, so the straddle law fails it at every factor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from certkit.mc import clopper_pearson
from synthetic.experiments import thresholding as thr

from .._plot import COLORS, new_figure
from ..registry import FigureOptions, FigureSpec, register

__all__ = ["data_thresholding_rates", "plot_thresholding_rates"]

#: Threshold factors t/t_{N,δ} of the sweep (1 = the theorem's threshold).
FACTORS_QUICK = (0.6, 0.8, 1.0, 1.2)
FACTORS_FULL = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5)
#: Trials per (law, factor); shape and level of the sweep.
TRIALS_QUICK, TRIALS_FULL = 300, 2000
SHAPE_QUICK, SHAPE_FULL = (48, 48), (128, 128)
DELTA, DENSITY = 0.1, 0.05
EVENTS = {"no_false_positive": "no false positive", "exact_recovery": "exact recovery"}


def data_thresholding_rates(options: FigureOptions) -> pd.DataFrame:
    """Failure rates (with 95 % Clopper–Pearson bands) per signal law, threshold factor, event."""
    factors = FACTORS_QUICK if options.quick else FACTORS_FULL
    n = TRIALS_QUICK if options.quick else TRIALS_FULL
    N, M = SHAPE_QUICK if options.quick else SHAPE_FULL
    rows = []
    for law in thr.MAGNITUDES:
        for f in factors:
            cfg = {"N": N, "M": M, "g": 1.0, "delta": DELTA, "density": DENSITY,
                   "magnitude": law, "threshold_factor": float(f)}
            trials = [thr.trial(cfg, options.seed * 1_000_003 + j) for j in range(n)]
            for ev, label in EVENTS.items():
                k = sum(not t[ev] for t in trials)
                lo, hi = clopper_pearson(k, n)
                rows.append({"law": law, "threshold_factor": float(f), "event": ev, "event_label": label,
                             "failures": k, "trials": n, "failure_rate": k / n, "cp_lo": lo, "cp_hi": hi,
                             "delta": DELTA, "N": N, "M": M, "density": DENSITY,
                             "theorem_applies": bool(f >= 1.0 and (ev == "no_false_positive"
                                                                    or law == "beta_min"))})
    return pd.DataFrame(rows)


def plot_thresholding_rates(df: pd.DataFrame):
    """Two panels (signal laws): failure rate vs t/t_{N,δ} per event, CP bands, δ and factor 1."""
    laws = list(dict.fromkeys(df["law"]))
    fig, axes = new_figure(10.5, 4.2, ncols=len(laws), squeeze=False)
    floor = 0.5 / float(df["trials"].max())
    for ax, law in zip(axes[0], laws, strict=True):
        sub = df[df["law"] == law]
        styles = zip(COLORS[:2], ("o", "s"), (9, 5), ("none", None), strict=True)
        for (color, marker, size, face), (_, part) in zip(styles, sub.groupby("event", sort=False),
                                                          strict=False):
            part = part.sort_values("threshold_factor")
            x = part["threshold_factor"].to_numpy()
            y = np.maximum(part["failure_rate"].to_numpy(), floor)
            ax.fill_between(x, np.maximum(part["cp_lo"], floor), np.maximum(part["cp_hi"], floor),
                            color=color, alpha=0.2, lw=0)
            ax.plot(x, y, marker=marker, ms=size, mfc=face, ls="-", color=color,
                    label=f"{part['event_label'].iloc[0]} fails (95 % CP band)")
        delta = float(sub["delta"].iloc[0])
        ax.axhline(delta, ls="--", color="0.3", lw=1.1, label=f"δ = {delta:g} (claimed failure bound)")
        ax.axvline(1.0, ls=":", color="0.3", lw=1.1, label="t = t_{N,δ} (theorem)")
        ax.set_yscale("log")
        ax.set_ylim(floor * 0.8, 1.3)
        ax.set_xlabel("threshold t / t_{N,δ} (dimensionless)")
        ax.set_ylabel("failure rate over trials (log scale)")
        n, N, M = int(sub["trials"].iloc[0]), int(sub["N"].iloc[0]), int(sub["M"].iloc[0])
        what = "|S| > 2t everywhere (beta-min)" if law == "beta_min" else "|S| straddles 2t"
        ax.set_title(f"{what}; {N}×{M}, {n} trials/point", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("E-Thm 3.20 hard thresholding: failures vs threshold (zero-count rates drawn at "
                 "½/trials)", fontsize=10)
    return fig


register(FigureSpec(
    name="thresholding_rates",
    title="Thresholding: false positives and exact recovery vs t/t_{N,δ} (E-Thm 3.20)",
    description="Monte Carlo failure rates of hard thresholding with Clopper–Pearson bands: from the "
                "theorem's threshold t_{N,δ} on, false positives occur in fewer than a δ fraction of draws, "
                "and exact support recovery holds only when every signal entry exceeds 2t (beta-min).",
    data=data_thresholding_rates, plot=plot_thresholding_rates,
    columns=("law", "threshold_factor", "event", "failures", "trials", "failure_rate", "cp_lo", "cp_hi",
             "delta", "theorem_applies"),
    paper="THEORY §5.4", tags=("monte-carlo", "E-Thm 3.20"),
))
