r"""Figures drawn from the paper's published tables (M-Fig 2, M-Fig 3 and Table 1 analogs).

Published numbers, not certkit computations: every figure here carries
:func:`~paper_figs._plot.published_banner`. The numbers are transcribed to the CSV files of
``paper_figs/published/`` (see the README there) from ALGORITHMS §10.1–10.4; the only computed
column is the dense parameter count of each checkpoint (``model_params.csv``: the sum of
``numel`` over the parameters of the timm architecture with a 1000-class head, on the meta
device). No theorem is checked: M-Fig 2 and M-Fig 3 are empirical (THEORY §5.1).

Figures
-------
``published_size_trend`` — M-Fig 2 analog (ESM_2 ``figures_param_vs_drop.pdf``): Table 2
(Hybrid Mag–SER across 17 checkpoints) at s = 0.50, 0.60, 0.70; post-FT top-1 minus the dense
baseline against the dense parameter count, with the OLS fit of the change on log10(params).

``published_cast_tradeoff`` — M-Fig 3 analog (``fig_top1_vs_params_at_50pct_MAC.pdf``): Table 3
CAST k:n rows at 48.5–50 % MAC reduction ("~50 %" rows included and drawn hollow); dense minus
post-FT top-1 against the dense parameter count, OLS in log10(params); second panel:
theoretical vs deployed (A40) speed-up of every Table 3 row that has a deployed speed-up.

``published_vitb_methods`` — Table 1: ViT-B/16 post-FT top-1 against sparsity for the four
methods, and each method's gain over classical magnitude pruning.

Notes
-----
Size-trend OLS (ALGORITHMS §10.2). The paper states, for the 17 rows of Table 2, slopes
+0.77/+2.49/+4.21 pp per decade at s = 0.50/0.60/0.70 with |R| = 0.31/0.43/0.41 (its 92-page
draft: −0.73/−2.40/−4.18, the sign of "drop" rather than "change"). With the timm parameter
counts of ``model_params.csv`` this module gets +0.727/+2.400/+4.178 pp per decade and
R = +0.309/+0.428/+0.407: the draft's slopes and the paper's |R| to every printed digit, but
not the paper's slopes. Replacing only the Hiera-Base+ count (69.90 M, ``hiera_base_plus_224``)
by the Hiera-Base count (51.52 M, ``hiera_base_224``) gives +0.768/+2.486/+4.208, i.e. the
paper's slopes to every printed digit, with R = 0.324/0.440/0.407 (0.32/0.44/0.41, not the
printed 0.31/0.43/0.41). So the paper's slopes appear to come from a fit that counted
Hiera-Base+ at the Hiera-Base size, and its |R| from the fit with the correct count; no single
parameter list reproduces all six printed numbers. The figure draws the fit with the correct
counts (dashed) and the Hiera-Base variant (dotted), and states the paper's numbers.
"""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

from .._plot import COLORS, MARKERS, new_figure, ols_log10, published_banner
from ..registry import FigureOptions, FigureSpec, register

__all__ = [
    "PAPER_SIZE_TREND",
    "load_published",
    "data_published_size_trend",
    "plot_published_size_trend",
    "data_published_cast_tradeoff",
    "plot_published_cast_tradeoff",
    "data_published_vitb_methods",
    "plot_published_vitb_methods",
]

#: Transcribed tables shipped with the package (``paper_figs/published/<name>.csv``).
TABLES = ("table1_vitb_methods", "table2_hybrid_mag_ser", "table3_cast_kn", "table4_throughput",
          "model_params")
#: Sparsities of the three M-Fig 2 panels (THEORY §5.1).
SIZE_TREND_SPARSITIES = (0.50, 0.60, 0.70)
#: The paper's size-trend OLS on Table 2: sparsity -> (slope in pp/decade, |R|) (ALGORITHMS §10.2).
PAPER_SIZE_TREND = {0.50: (0.77, 0.31), 0.60: (2.49, 0.43), 0.70: (4.21, 0.41)}
#: The Table 2 model whose count is swapped, and the count that reproduces the paper's slopes.
HIERA_MODEL, HIERA_PAPER_SLOPE_MODEL = "Hiera-B+", "Hiera-B"
#: M-Fig 3 selects the CAST rows whose MAC reduction lies in this window, in % (THEORY §5.1).
CAST_MAC_WINDOW = (48.5, 50.0)
#: Families of Table 2 in legend order (colour and marker by position).
FAMILIES = ("ViT", "DeiT", "Swin", "ConvNeXt", "ResNet", "Hiera")
#: Pattern types of Table 3 in legend order (colour and marker by position).
PATTERNS = ("2:4", "6:12", "8:16", "12:16", "CAST-conv")
#: Fits in the size-trend table: name -> legend text.
FIT_LABELS = {"timm": "OLS (timm counts)",
              "hiera_base": "OLS (Hiera-B+ counted as Hiera-B, 51.5 M)"}
#: Two points closer than this in log10(params) are labelled on alternate sides (M-Fig 3).
_SAME_X_LOG10 = 0.03
#: Height (inches) kept free at the bottom of each figure for the published-numbers banner.
_BANNER_STRIP_IN = 0.16
#: Factor of x-range padding on log axes, and the tick values used there (millions of params).
_X_MARGIN = 1.3
_NICE_TICKS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000)


def load_published(name: str) -> pd.DataFrame:
    """The transcribed table ``name`` (one of :data:`TABLES`) as a DataFrame."""
    if name not in TABLES:
        raise ValueError(f"name == {name!r}, must be one of {TABLES}")
    ref = resources.files("paper_figs").joinpath("published", f"{name}.csv")
    with resources.as_file(ref) as path:
        return pd.read_csv(path)


def _params_m() -> dict[str, float]:
    p = load_published("model_params")
    return dict(zip(p["model"], p["params_m"].astype(float), strict=True))


def _as_bool(s: pd.Series) -> pd.Series:
    """Booleans that also survive a CSV round trip with missing cells (NaN -> False)."""
    return s.map(lambda v: v is True or v == 1 or str(v).strip().lower() == "true")


def _style(values, order) -> dict:
    """``{value: (colour, marker)}`` by position in ``order`` (unknown values appended)."""
    keys = list(order) + sorted(set(values) - set(order))
    return {k: (COLORS[i % len(COLORS)], MARKERS[i % len(MARKERS)]) for i, k in enumerate(keys)}


def _banner(fig, source: str) -> None:
    """:func:`published_banner`, with a bottom strip kept free of axes for it (constrained layout)."""
    strip = _BANNER_STRIP_IN / fig.get_figheight()
    fig.get_layout_engine().set(rect=(0.0, strip, 1.0, 1.0 - strip))
    published_banner(fig, source)


def _log_ticks(ax, values) -> None:
    """Plain-number major ticks on a log x axis spanning one to three decades (no minor labels)."""
    lo, hi = float(np.min(values)) / _X_MARGIN, float(np.max(values)) * _X_MARGIN
    ticks = [t for t in _NICE_TICKS if lo <= t <= hi]
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _fit_row(kind: str, fit: str, x, y, sparsity: float = math.nan) -> dict:
    slope, intercept, r, n = ols_log10(x, y)
    return {"kind": kind, "fit": fit, "sparsity": sparsity, "slope_pp_per_decade": slope,
            "intercept_pp": intercept, "pearson_r": r, "n_rows": n}


def _fit_line(ax, row: pd.Series, xs: np.ndarray, **kw) -> None:
    """Draw ``intercept + slope·log10(x)`` over ``xs`` for a fit row of a data table."""
    grid = np.geomspace(xs.min() / 1.15, xs.max() * 1.15, 64)
    ax.plot(grid, row["intercept_pp"] + row["slope_pp_per_decade"] * np.log10(grid), **kw)


# --------------------------------------------------------------------------- M-Fig 2 (Table 2)

def data_published_size_trend(options: FigureOptions) -> pd.DataFrame:
    """Table 2 points at s = 0.50/0.60/0.70 with dense params, plus the OLS fits and the paper's.

    ``kind`` is ``"point"`` (one checkpoint at one sparsity), ``"fit"`` (OLS of ``delta_pp`` on
    log10(``params_m``): ``fit == "timm"`` with the counts of ``model_params.csv``,
    ``"hiera_base"`` with Hiera-B+ counted as Hiera-B) or ``"paper"`` (the slope and |R| printed
    in the paper). ``options`` is unused: the figure is the same in quick and full mode.
    """
    t2 = load_published("table2_hybrid_mag_ser")
    params = _params_m()
    t2 = t2[np.isclose(t2["sparsity"].to_numpy()[:, None], SIZE_TREND_SPARSITIES).any(axis=1)].copy()
    t2["sparsity"] = t2["sparsity"].round(2)
    t2["params_m"] = t2["model"].map(params)
    t2["delta_pp"] = (t2["top1"] - t2["baseline_top1"]).round(2)
    points = t2.assign(kind="point", drop_threshold=_as_bool(t2["drop_threshold"]))[
        ["kind", "sparsity", "model", "row_label", "family", "drop_threshold", "params_m",
         "baseline_top1", "top1", "delta_pp"]]
    alt = points["params_m"].where(points["model"] != HIERA_MODEL, params[HIERA_PAPER_SLOPE_MODEL])
    fits = []
    for s in SIZE_TREND_SPARSITIES:
        sel = points["sparsity"] == s
        fits.append(_fit_row("fit", "timm", points.loc[sel, "params_m"], points.loc[sel, "delta_pp"], s))
        fits.append(_fit_row("fit", "hiera_base", alt[sel], points.loc[sel, "delta_pp"], s))
        slope, abs_r = PAPER_SIZE_TREND[s]
        fits.append({"kind": "paper", "fit": "paper", "sparsity": s, "slope_pp_per_decade": slope,
                     "abs_r": abs_r, "n_rows": int(sel.sum())})
    df = pd.concat([points, pd.DataFrame(fits)], ignore_index=True)
    df["drop_threshold"] = _as_bool(df["drop_threshold"])
    df["abs_r"] = df["abs_r"].where(df["kind"] == "paper", df["pearson_r"].abs())
    return df.reset_index(drop=True)


def plot_published_size_trend(df: pd.DataFrame):
    """Three panels (one per sparsity): change in top-1 vs dense params, with the OLS lines."""
    pts = df[df["kind"] == "point"].copy()
    pts["drop_threshold"] = _as_bool(pts["drop_threshold"])
    sparsities = sorted(pts["sparsity"].unique())
    style = _style(pts["family"].unique(), FAMILIES)
    fig, axes = new_figure(14.0, 5.2, ncols=len(sparsities), squeeze=False)
    for ax, s in zip(axes[0], sparsities, strict=True):
        p = pts[np.isclose(pts["sparsity"], s)]
        for fam, (color, marker) in style.items():
            for hollow in (False, True):
                q = p[(p["family"] == fam) & (p["drop_threshold"] == hollow)]
                if len(q):
                    ax.scatter(q["params_m"], q["delta_pp"], s=42, marker=marker, linewidths=1.3,
                               facecolors="none" if hollow else color, edgecolors=color, zorder=3)
        xs = p["params_m"].to_numpy(dtype=float)
        fits = df[(df["kind"] == "fit") & np.isclose(df["sparsity"], s)].set_index("fit")
        paper = df[(df["kind"] == "paper") & np.isclose(df["sparsity"], s)]
        for fit, ls in (("timm", "--"), ("hiera_base", ":")):
            if fit in fits.index:
                row = fits.loc[fit]
                _fit_line(ax, row, xs, ls=ls, lw=1.4, color="0.15" if ls == "--" else "0.5",
                          label=f"{FIT_LABELS[fit]}: {row['slope_pp_per_decade']:+.2f} pp/decade, "
                                f"R = {row['pearson_r']:+.2f}")
        if len(paper):
            row = paper.iloc[0]
            ax.plot([], [], ls="none", label=f"paper states: {row['slope_pp_per_decade']:+.2f} pp/decade, "
                                              f"|R| = {row['abs_r']:.2f}")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), handlelength=2.2,
                  frameon=False)
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_xscale("log")
        _log_ticks(ax, xs)
        ax.set_xlabel("dense parameters (millions, log scale)")
        ax.set_title(f"s = {s:.2f} ({len(p)} checkpoints)", fontsize=10)
    axes[0, 0].set_ylabel("post-FT top-1 − dense top-1 (pp; < 0 = worse)")
    handles = [Line2D([], [], ls="none", marker=m, color=c, label=f) for f, (c, m) in style.items()]
    handles.append(Line2D([], [], ls="none", marker="o", markerfacecolor="none", color="0.3",
                          label="hollow: ‡ drop-\nthreshold variant"))
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False, title="family",
               title_fontsize=8)
    fig.suptitle("Hybrid Mag–SER (Table 2): top-1 change after pruning + fine-tuning vs model size",
                 fontsize=11)
    _banner(fig, "Table 2; parameter counts computed with timm")
    return fig


# --------------------------------------------------------------------------- M-Fig 3 (Table 3)

def data_published_cast_tradeoff(options: FigureOptions) -> pd.DataFrame:
    """Every Table 3 row with its dense params and drop, the M-Fig 3 window flag, and the OLS fit.

    ``kind == "point"`` rows are the 21 Table 3 rows (``in_mac_window``: MAC reduction within
    :data:`CAST_MAC_WINDOW`, the M-Fig 3 selection); the ``kind == "fit"`` row is the OLS of
    ``drop_pp`` (= −Δ) on log10(``params_m``) over the in-window rows. ``options`` is unused.
    """
    t3 = load_published("table3_cast_kn")
    params = _params_m()
    lo, hi = CAST_MAC_WINDOW
    pts = pd.DataFrame({
        "kind": "point", "row": t3["row"], "model": t3["model"], "method": t3["method"],
        "pattern": t3["pattern"], "sparsity_source": t3["sparsity_source"].astype(str),
        "params_m": t3["model"].map(params), "mac_reduction_pct": t3["mac_reduction_pct"],
        "approx": _as_bool(t3["approx"]), "top1": t3["top1"], "delta_pp": t3["delta_pp"],
        "drop_pp": -t3["delta_pp"], "theoretical_speedup": t3["theoretical_speedup"],
        "deploy_speedup": t3["deploy_speedup"],
        "deploy_speedup_footnote": t3["deploy_speedup_footnote"].fillna("").astype(str),
        "in_mac_window": t3["mac_reduction_pct"].between(lo, hi),
    })
    win = pts[pts["in_mac_window"]]
    fit = _fit_row("fit", "timm", win["params_m"], win["drop_pp"])
    df = pd.concat([pts, pd.DataFrame([fit])], ignore_index=True)
    for col in ("approx", "in_mac_window"):
        df[col] = _as_bool(df[col])
    return df


def _side_offsets(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """+1 / −1 (label right / left) per point, alternating within groups of (nearly) equal x."""
    order = np.lexsort((y, np.round(np.log10(x) / _SAME_X_LOG10)))
    side = np.ones(len(x))
    prev_key, k = None, 0
    for i in order:
        key = round(float(np.log10(x[i])) / _SAME_X_LOG10)
        k = k + 1 if key == prev_key else 0
        side[i] = 1 if k % 2 == 0 else -1
        prev_key = key
    return side


def _row_label(r: pd.Series) -> str:
    src = "dense" if r["sparsity_source"] == "dense" else f"s={r['sparsity_source']}"
    foot = r["deploy_speedup_footnote"] if isinstance(r["deploy_speedup_footnote"], str) else ""
    return f"{int(r['row'])}. {r['model']} {r['method']} ({src}){foot}"


def plot_published_cast_tradeoff(df: pd.DataFrame):
    """(a) drop vs dense params at ~50 % MAC reduction, numbered; key; (b) speed-up bars."""
    pts = df[df["kind"] == "point"].copy()
    for col in ("approx", "in_mac_window"):
        pts[col] = _as_bool(pts[col])
    win = pts[pts["in_mac_window"]].sort_values("row")
    style = _style(pts["pattern"].unique(), PATTERNS)
    fig, axes = new_figure(14.0, 5.6, ncols=3, squeeze=False)
    ax, key_ax, bar_ax = axes[0]
    x = win["params_m"].to_numpy(dtype=float)
    y = win["drop_pp"].to_numpy(dtype=float)
    side = _side_offsets(x, y) if len(win) else np.array([])
    key_handles = []
    for (_, r), sd in zip(win.iterrows(), side, strict=True):
        color, marker = style[r["pattern"]]
        ax.scatter(r["params_m"], r["drop_pp"], s=48, marker=marker, linewidths=1.3, zorder=3,
                   facecolors="none" if r["approx"] else color, edgecolors=color)
        ax.annotate(str(int(r["row"])), (r["params_m"], r["drop_pp"]), xytext=(7 * sd, 0),
                    textcoords="offset points", ha="left" if sd > 0 else "right", va="center", fontsize=7.5)
        key_handles.append(Line2D([], [], ls="none", marker=marker, color=color,
                                  markerfacecolor="none" if r["approx"] else color, label=_row_label(r)))
    fit = df[df["kind"] == "fit"]
    if len(fit) and len(win):
        row = fit.iloc[0]
        _fit_line(ax, row, x, ls="--", lw=1.4, color="0.2",
                  label=f"OLS in log10 params: {row['slope_pp_per_decade']:+.2f} pp/decade, "
                        f"R = {row['pearson_r']:+.2f} (n = {int(row['n_rows'])})")
    for pat, (color, marker) in style.items():
        if pat in set(win["pattern"]):
            ax.scatter([], [], marker=marker, color=color, label=f"pattern {pat}")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="0.3", label='hollow: MAC red. "~50 %"')
    ax.set_xscale("log")
    if len(x):
        _log_ticks(ax, x)
    ax.set_ylim(bottom=min(0.0, float(np.nanmin(y)) - 0.2) if len(y) else 0.0,
                top=(float(np.nanmax(y)) * 1.45 if len(y) else 1.0))
    ax.set_xlabel("dense parameters (millions, log scale)")
    ax.set_ylabel("dense − post-FT top-1 (pp; lower = better)")
    lo, hi = CAST_MAC_WINDOW
    ax.set_title(f"(a) CAST rows at {lo:g}–{hi:g} % MAC reduction", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    key_ax.set_axis_off()
    key_ax.legend(handles=key_handles, loc="center", fontsize=7, frameon=False, handletextpad=0.4,
                  title="(a) point numbers = Table 3 rows", title_fontsize=8)
    dep = pts[pts["deploy_speedup"].notna()].sort_values("row", ascending=False)
    ypos = np.arange(len(dep))
    bar_ax.barh(ypos + 0.2, dep["theoretical_speedup"], height=0.4, color="0.75",
                label="theoretical (1 / (1 − MAC red.))")
    bar_ax.barh(ypos - 0.2, dep["deploy_speedup"], height=0.4,
                color=[style[p][0] for p in dep["pattern"]], label="deployed, A40 (colour = pattern)")
    for yy, v in zip(ypos, dep["deploy_speedup"], strict=True):
        bar_ax.text(v + 0.03, yy - 0.2, f"{v:.3f}×", va="center", fontsize=6.5)
    bar_ax.set_yticks(ypos, [_row_label(r) for _, r in dep.iterrows()], fontsize=6.5)
    bar_ax.axvline(1.0, color="0.4", lw=0.8)
    bar_ax.set_xlabel("speed-up over dense (×, dimensionless)")
    bar_ax.set_title("(b) theoretical vs deployed speed-up", fontsize=10)
    bar_ax.set_xlim(0, float(dep["theoretical_speedup"].max()) * 1.1 if len(dep) else 3.0)
    bar_ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    fig.suptitle("CAST k:n (Table 3): top-1 drop at ~50 % MAC reduction vs model size, and speed-ups",
                 fontsize=11)
    _banner(fig, "Table 3 (* = footnote mark printed in the table); parameter counts computed "
                          "with timm")
    return fig


# --------------------------------------------------------------------------- Table 1

def data_published_vitb_methods(options: FigureOptions) -> pd.DataFrame:
    """Table 1 in long form with the change vs dense and the gain over classical magnitude (pp)."""
    t1 = load_published("table1_vitb_methods")
    mag = t1[t1["method"] == "Classical magnitude"].set_index("sparsity")["top1"]
    return pd.DataFrame({
        "method": t1["method"], "sparsity": t1["sparsity"], "top1": t1["top1"],
        "dense_top1": t1["dense_top1"], "delta_vs_dense_pp": (t1["top1"] - t1["dense_top1"]).round(2),
        "gain_vs_magnitude_pp": (t1["top1"] - t1["sparsity"].map(mag)).round(2),
    })


def plot_published_vitb_methods(df: pd.DataFrame):
    """(a) top-1 vs sparsity per method with the dense line; (b) gain over classical magnitude."""
    fig, axes = new_figure(11.0, 4.3, ncols=2, squeeze=False)
    ax, gain_ax = axes[0]
    methods = list(dict.fromkeys(df["method"]))
    for i, m in enumerate(methods):
        q = df[df["method"] == m].sort_values("sparsity")
        kw = dict(color=COLORS[i % len(COLORS)], marker=MARKERS[i % len(MARKERS)], ms=4, lw=1.3, label=m)
        ax.plot(q["sparsity"], q["top1"], **kw)
        gain_ax.plot(q["sparsity"], q["gain_vs_magnitude_pp"], **kw)
    dense = float(df["dense_top1"].iloc[0])
    ax.axhline(dense, ls="--", color="0.3", lw=1.1, label=f"dense {dense:.2f} %")
    gain_ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_ylabel("post-FT top-1 (%)")
    gain_ax.set_ylabel("top-1 − classical magnitude (pp)")
    ax.set_title("(a) top-1 after pruning + fine-tuning", fontsize=10)
    gain_ax.set_title("(b) gain over classical magnitude pruning", fontsize=10)
    for a in (ax, gain_ax):
        a.set_xlabel("sparsity s (fraction of weights removed, dimensionless)")
        a.legend(fontsize=7.5, loc="lower left" if a is ax else "upper left")
    fig.suptitle("ViT-B/16 augreg2 (Table 1): four pruning methods across sparsity", fontsize=11)
    _banner(fig, "Table 1")
    return fig


register(FigureSpec(
    name="published_size_trend",
    title="Top-1 change vs model size, Hybrid Mag–SER (Table 2)",
    description="The paper's Table 2 at s = 0.50/0.60/0.70: larger checkpoints lose less top-1 after "
                "pruning and fine-tuning (positive OLS slope in log10 params, weak |R| ≈ 0.3–0.4), with "
                "the paper's stated slopes reproduced only when Hiera-B+ is counted at Hiera-B size.",
    data=data_published_size_trend, plot=plot_published_size_trend,
    columns=("kind", "fit", "sparsity", "model", "family", "drop_threshold", "params_m", "baseline_top1",
             "top1", "delta_pp", "slope_pp_per_decade", "intercept_pp", "pearson_r", "abs_r", "n_rows"),
    kind="published", paper="M-Fig 2", tags=("published",),
))

register(FigureSpec(
    name="published_cast_tradeoff",
    title="CAST k:n: drop at ~50 % MAC reduction vs size (Table 3)",
    description="The paper's Table 3 CAST rows at 48.5–50 % MAC reduction: the top-1 drop against dense "
                "parameters (numbered by table row), and how far every deployed speed-up falls short of "
                "the theoretical 1/(1 − MAC reduction).",
    data=data_published_cast_tradeoff, plot=plot_published_cast_tradeoff,
    columns=("kind", "row", "model", "method", "pattern", "params_m", "mac_reduction_pct", "approx",
             "delta_pp", "drop_pp", "theoretical_speedup", "deploy_speedup", "in_mac_window",
             "slope_pp_per_decade", "intercept_pp", "pearson_r"),
    kind="published", paper="M-Fig 3", tags=("published",),
))

register(FigureSpec(
    name="published_vitb_methods",
    title="ViT-B/16: four pruning methods across sparsity (Table 1)",
    description="The paper's Table 1: all four methods stay within 1 pp of dense up to s ≈ 0.3, and at "
                "high sparsity SER and Hybrid Mag–SER keep up to 10 pp more top-1 than classical magnitude.",
    data=data_published_vitb_methods, plot=plot_published_vitb_methods,
    columns=("method", "sparsity", "top1", "dense_top1", "delta_vs_dense_pp", "gain_vs_magnitude_pp"),
    kind="published", paper="Table 1", tags=("published",),
))
