r"""Monte Carlo coverage and tightness of the random budget bounds (THEORY §5.4, §2.3).

No paper counterpart: these are the "Gaussian budget" verification figures that THEORY §5.4
asks certkit to produce. Both are drawn from the trials of the registered Monte Carlo
experiment ``budget_coverage`` (:mod:`synthetic.experiments.budget_coverage`), whose
``trial(config, seed)`` is called directly (one draw of the removed component R per call); no
budget or bound is recomputed here.

Figures
-------
``mc_budget_coverage``
    Empirical failure rate :math:`P[B_T(R) > \text{bound}]` against the claimed failure
    probability δ, with two-sided 95 % Clopper–Pearson intervals (:func:`certkit.mc.clopper_pearson`)
    and the diagonal "failure = δ". Checks M-Cor 5.10 [P] (Gaussian R; M-Cor 5.11 [P] with the
    nominal MP edge σ₊,R = √g(1+√(m/n)) is the same bound, THEORY §2.3.2, so it shares these
    points; its rewrite error is recorded) and E-Cor 1.4 [P] (sub-Gaussian rows: Rademacher with
    tail constant c = 1/2, uniform with c = 1/6). The cell has |T| = 1, so the budget inequality
    *is* the theorem's core event :math:`\|Rv\|_\infty \le \|v\|_2 t` (both counts are stored).
    Exploratory, not covered (Trap T10): M-Cor 5.11 with the BEMA-fitted edge of R plugged in.
``mc_budget_tightness``
    Distribution of the tightness ratio :math:`B_T(R)/\text{bound}` (1 = the bound is attained;
    the experiment stores the inverse, ``tightness`` = bound/B_T) against the number of rows n of
    R, for Gaussian R (M-Cor 5.10) and Rademacher R (E-Cor 1.4). On the core event the ratio is
    ≤ 1 (a deterministic consequence); the figure shows how far below 1 it sits.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from certkit.mc import clopper_pearson
from paper_figs._plot import CERTIFIED_LABEL, COLORS, MARKERS, new_figure, no_data
from paper_figs.registry import FigureOptions, FigureSpec, register
from synthetic.registry import get_experiment

__all__ = [
    "data_mc_budget_coverage",
    "data_mc_budget_tightness",
    "plot_mc_budget_coverage",
    "plot_mc_budget_tightness",
]

#: The registered Monte Carlo experiment whose trials are drawn.
EXPERIMENT = "budget_coverage"
#: Trial seeds of one figure are ``options.seed * SEED_STRIDE + j`` (j < SEED_STRIDE).
SEED_STRIDE = 1_000_000
#: Level of the two-sided Clopper–Pearson bands drawn (issue 7: 95 %).
CP_LEVEL = 0.95

#: Coverage cell: |T| = 1 (budget inequality = core event), n = m = 32 (the smallest size at
#: which the experiment allows the exploratory BEMA fit of R, FIT_MIN_DIM), small n keeps the
#: union bound over rows nearly tight so the failure rates are measurable.
COVERAGE_CELL = {"kind": "single", "n": 32, "m": 32, "T": 1, "inputs": "gaussian",
                 "lipschitz": "one", "g": 1.0, "sampler": "full"}
#: Claimed failure probabilities δ (log-spaced) and trials per δ and law.
DELTAS_QUICK = (0.02, 0.1, 0.5)
DELTAS_FULL = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
COVERAGE_TRIALS_QUICK, COVERAGE_TRIALS_FULL = 600, 4000

#: Coverage series: (series, entry law, result, legend label, certified). The "fitted_edge"
#: series reuses the Gaussian trials (column ``fitted_edge_failure``, Trap T10).
COVERAGE_SERIES = (
    ("gaussian", "gaussian", "M-Cor 5.10 = M-Cor 5.11",
     "M-Cor 5.10 = 5.11 (nominal σ₊,R), Gaussian R [proven]", True),
    ("rademacher", "rademacher", "E-Cor 1.4", "E-Cor 1.4, Rademacher R (c = 1/2) [proven]", True),
    ("uniform", "uniform", "E-Cor 1.4", "E-Cor 1.4, uniform R (c = 1/6) [proven]", True),
    ("fitted_edge", "gaussian", "M-Cor 5.11 + fitted edge",
     "M-Cor 5.11 with BEMA-fitted edge (not covered, Trap T10)", False),
)

#: Tightness cells: |T| = 16 iid Gaussian inputs, L_s = 1, δ = 0.1, m = 64; n varies.
TIGHTNESS_CELL = {"kind": "single", "m": 64, "T": 16, "delta": 0.1, "inputs": "gaussian",
                  "lipschitz": "one", "g": 1.0}
TIGHTNESS_N_QUICK, TIGHTNESS_N_FULL = (8, 32, 128, 512), (8, 32, 128, 512, 2048, 8192)
TIGHTNESS_TRIALS_QUICK, TIGHTNESS_TRIALS_FULL = 300, 4000
#: Tightness series: (entry law, sampler, result, legend label).
TIGHTNESS_SERIES = (
    ("gaussian", "rv", "M-Cor 5.10", "M-Cor 5.10, Gaussian R"),
    ("rademacher", "full", "E-Cor 1.4", "E-Cor 1.4, Rademacher R (c = 1/2)"),
)
#: Quantiles of the ratio stored per cell (box: quartiles; whiskers: 5 %–95 %).
QUANTILES = {"q05": 0.05, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q95": 0.95}

COVERAGE_COLUMNS = ("series", "label", "result", "certified", "law", "delta", "trials",
                    "failures", "core_event_failures", "rate", "cp_lo", "cp_hi", "n", "m", "T",
                    "max_rewrite_rel_err")
TIGHTNESS_COLUMNS = ("law", "label", "result", "n", "m", "T", "delta", "trials", "failures",
                     "ratio_min", *QUANTILES, "ratio_max", "ratio_mean")


def _trials(config: dict, n_trials: int, options: FigureOptions) -> pd.DataFrame:
    """``n_trials`` trials of the budget experiment for ``config`` (seeds fixed by options.seed)."""
    trial = get_experiment(EXPERIMENT).trial
    base = options.seed * SEED_STRIDE
    return pd.DataFrame([trial(config, base + j) for j in range(n_trials)])


# ----------------------------------------------------------------------------- coverage
def data_mc_budget_coverage(options: FigureOptions) -> pd.DataFrame:
    """Failures of the budget bounds per (series, δ), with Clopper–Pearson intervals."""
    deltas = DELTAS_QUICK if options.quick else DELTAS_FULL
    n_trials = COVERAGE_TRIALS_QUICK if options.quick else COVERAGE_TRIALS_FULL
    rows = []
    for delta in deltas:
        by_law: dict[str, pd.DataFrame] = {}
        for series, law, result, label, certified in COVERAGE_SERIES:
            if law not in by_law:
                cfg = dict(COVERAGE_CELL, law=law, delta=delta,
                           explore_edge=law == "gaussian")
                by_law[law] = _trials(cfg, n_trials, options)
            df = by_law[law]
            if certified:
                fails = int((df["budget"] > df["bound"]).sum())
                core = int(df["failure"].astype(bool).sum())
            else:  # |T| = 1: the substituted core event is the substituted budget inequality
                fails = core = int(df["fitted_edge_failure"].astype(bool).sum())
            lo, hi = clopper_pearson(fails, len(df), CP_LEVEL)
            rewrite = float(df["rewrite_rel_err"].max()) if law == "gaussian" and certified \
                else math.nan
            rows.append({
                "series": series, "label": label, "result": result, "certified": certified,
                "law": law, "delta": float(delta), "trials": len(df), "failures": fails,
                "core_event_failures": core, "rate": fails / len(df), "cp_lo": lo, "cp_hi": hi,
                "n": COVERAGE_CELL["n"], "m": COVERAGE_CELL["m"], "T": COVERAGE_CELL["T"],
                "max_rewrite_rel_err": rewrite,
            })
    return pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))


def plot_mc_budget_coverage(df: pd.DataFrame):
    """Failure rate vs δ (log–log) with CP bands and the diagonal y = δ."""
    fig, ax = new_figure(7.6, 5.2)
    if df.empty:
        no_data(ax)
        return fig
    deltas = np.sort(df["delta"].unique())
    positive = df.loc[df["rate"] > 0, "rate"]
    y_floor = 0.3 * float(min(positive.min() if len(positive) else 1.0, df["cp_hi"].min()))
    order = list(dict.fromkeys(df["series"]))
    shift = np.linspace(-0.035, 0.035, len(order)) if len(order) > 1 else np.zeros(1)
    for k, series in enumerate(order):
        sub = df[df["series"] == series].sort_values("delta")
        certified = str(sub["certified"].iloc[0]).lower() == "true"
        color = COLORS[k % len(COLORS)] if certified else "0.45"
        x = sub["delta"].to_numpy() * 10 ** shift[k]
        rate, lo, hi = (sub[c].to_numpy(dtype=float) for c in ("rate", "cp_lo", "cp_hi"))
        hit = rate > 0
        ax.vlines(x, np.maximum(lo, y_floor), hi, color=color, lw=1.6, alpha=0.75)
        ax.plot(x[hit], rate[hit], ls="-" if certified else ":", marker=MARKERS[k % len(MARKERS)],
                color=color, ms=6, mfc=color if certified else "white", label=sub["label"].iloc[0])
        ax.plot(x[~hit], hi[~hit], ls="none", marker="v", color=color, ms=7, mfc="white")
    if (df["failures"] == 0).any():
        ax.plot([], [], ls="none", marker="v", color="0.3", ms=7, mfc="white",
                label="0 failures: hollow ▽ at the 95 % CP upper end")
    lo_d, hi_d = deltas.min() / 1.6, deltas.max() * 1.6
    xs = np.geomspace(lo_d, hi_d, 32)
    ax.plot(xs, xs, ls="--", color="0.2", lw=1.3, label="bound's claim: failure ≤ δ (y = δ)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo_d, hi_d)
    ax.set_ylim(y_floor, 1.0)
    ax.set_xticks(deltas, [f"{d:g}" for d in deltas])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("claimed failure probability δ (dimensionless, log scale)")
    ax.set_ylabel("empirical P[B_T(R) > bound] (dimensionless, log scale)")
    first = df.iloc[0]
    ax.set_title(f"n = {first['n']}, m = {first['m']}, |T| = {first['T']}, {int(df['trials'].max())} "
                 "trials per point; bars: 95 % Clopper–Pearson", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(True, which="major", alpha=0.3)
    fig.suptitle("Budget bounds hold: empirical failure rate below δ (M-Cor 5.10/5.11, E-Cor 1.4)")
    return fig


# ----------------------------------------------------------------------------- tightness
def data_mc_budget_tightness(options: FigureOptions) -> pd.DataFrame:
    """Quantiles of the ratio B_T/bound per (law, n)."""
    n_trials = TIGHTNESS_TRIALS_QUICK if options.quick else TIGHTNESS_TRIALS_FULL
    rows = []
    for law, sampler, result, label in TIGHTNESS_SERIES:
        for n in TIGHTNESS_N_QUICK if options.quick else TIGHTNESS_N_FULL:
            cfg = dict(TIGHTNESS_CELL, law=law, sampler=sampler, n=n)
            df = _trials(cfg, n_trials, options)
            ratio = (df["budget"] / df["bound"]).to_numpy(dtype=float)
            row = {"law": law, "label": label, "result": result, "n": n,
                   "m": TIGHTNESS_CELL["m"], "T": TIGHTNESS_CELL["T"],
                   "delta": TIGHTNESS_CELL["delta"], "trials": len(df),
                   "failures": int((df["budget"] > df["bound"]).sum()),
                   "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max()),
                   "ratio_mean": float(ratio.mean())}
            row.update({k: float(np.quantile(ratio, q)) for k, q in QUANTILES.items()})
            rows.append(row)
    return pd.DataFrame(rows, columns=list(TIGHTNESS_COLUMNS))


def plot_mc_budget_tightness(df: pd.DataFrame):
    """Box plots (quartiles, 5–95 % whiskers) of B_T/bound per n, one colour per law."""
    fig, ax = new_figure(7.6, 4.8)
    if df.empty:
        no_data(ax)
        return fig
    ns = np.sort(df["n"].unique())
    laws = list(dict.fromkeys(df["law"]))
    width = 0.7 / len(laws)
    for k, law in enumerate(laws):
        sub = df[df["law"] == law].set_index("n").loc[ns]
        pos = np.arange(len(ns)) + (k - (len(laws) - 1) / 2) * width
        stats = [{"med": r["q50"], "q1": r["q25"], "q3": r["q75"], "whislo": r["q05"],
                  "whishi": r["q95"], "fliers": [r["ratio_min"], r["ratio_max"]]}
                 for _, r in sub.iterrows()]
        color = COLORS[k % len(COLORS)]
        ax.bxp(stats, positions=pos, widths=width * 0.8, patch_artist=True, manage_ticks=False,
               boxprops={"facecolor": color, "alpha": 0.35, "edgecolor": color},
               medianprops={"color": color, "lw": 2}, whiskerprops={"color": color},
               capprops={"color": color},
               flierprops={"marker": ".", "markeredgecolor": color, "markersize": 5})
        ax.plot(pos, sub["q50"], color=color, lw=1, marker=MARKERS[k % len(MARKERS)], ms=4,
                label=f"{sub['label'].iloc[0]}: median")
    ax.axhline(1.0, ls="--", color="0.2", lw=1.3, label="bound attained (ratio = 1)")
    ax.set_xticks(np.arange(len(ns)), [str(int(n)) for n in ns])
    ax.set_xlabel("rows n of R (count, log-spaced)")
    ax.set_ylabel("tightness B_T(R) / bound (dimensionless)")
    ax.set_ylim(0.0, 1.1)
    first = df.iloc[0]
    ax.set_title(f"{CERTIFIED_LABEL}: m = {first['m']}, |T| = {first['T']}, δ = {first['delta']}, "
                 f"{int(df['trials'].max())} trials; box 25–75 %, whiskers 5–95 %, dots min/max",
                 fontsize=8.5)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("How loose is the budget bound? Realised budget / bound vs n")
    return fig


register(FigureSpec(
    name="mc_budget_coverage",
    title="Budget bound coverage vs δ",
    description=("Empirical failure rate P[B_T(R) > bound] vs the claimed δ for the Gaussian "
                 "(M-Cor 5.10 = 5.11) and sub-Gaussian (E-Cor 1.4) budget bounds with 95 % "
                 "Clopper–Pearson bars: every certified point lies below the diagonal y = δ."),
    data=data_mc_budget_coverage,
    plot=plot_mc_budget_coverage,
    columns=COVERAGE_COLUMNS,
    paper="THEORY §5.4",
    tags=("mc", "budget", "coverage"),
))

register(FigureSpec(
    name="mc_budget_tightness",
    title="Budget bound tightness vs n",
    description=("Distribution of the realised budget over its bound, B_T(R)/bound, vs the "
                 "number of rows n of R (Gaussian M-Cor 5.10, Rademacher E-Cor 1.4): always "
                 "below 1, creeping towards 1 only slowly as n grows."),
    data=data_mc_budget_tightness,
    plot=plot_mc_budget_tightness,
    columns=TIGHTNESS_COLUMNS,
    paper="THEORY §5.4",
    tags=("mc", "budget", "tightness"),
))
