r"""Certificate-audit figures with true budgets (THEORY §5.3, items 3–11).

The paper's audit figures (ESM_2 "Connecting certificates to numerics" and the repository's
``paper/`` folder) plot the op-norm proxy ``B_proxy(ℓ) = ‖R_ℓ‖_op·mean_s‖ψ1,ℓ(s)‖_∞`` with L_s
held at 1, summed over layers evaluated at once in the final network — not a bound (Traps T7,
T8, T12), with CE measured on another set (Trap T20) and a per-sample logit change compared to an
averaged budget (Trap T4). These analogs draw the rigorous quantities of a
:func:`audits.run_audit` sparsity sweep instead (shared sweep: :mod:`._audit_sweep`), for three
digits classifiers (MLP and CNN with a proven ``L_s``: *certified*; ViT with an E1 estimate:
*estimated*), and show the proxy alongside, labelled as such:

* ``audit_ce_budget`` — items 3/4 (``figure_lemma_ce_test(_all18).pdf``): |ΔL_CE| ≤ Σ_j B_j
  (M-Lemma 5.1, M-Thm 5.8, E-Cor 1.3);
* ``audit_logit_gap`` — items 5/11 (``figure_logit_gap_audit_all18.pdf``,
  ``fig_val_cor_5_5.pdf``): ‖z_S(s) − z_A(s)‖_∞ ≤ η_s and flips ⊆ at-risk (M-Cor 5.2, E-Cor 1.3);
* ``audit_sigma_budget`` — items 6/7/9 (``figure_sigma_plus_correlation(_all18).pdf``,
  ``fig_sigma_plus_vs_B_proxy_pooled.pdf``): σ₊ (estimated MP edge, §3.6) as a predictor of the
  true per-layer budget (the motivation of M-Cor 5.11);
* ``audit_budget_vs_sparsity`` — item 8 (``fig_B_total_vs_sparsity_per_arch.pdf``): Σ_ℓ B_T(R_ℓ)
  (M-eq. 8) vs sparsity;
* ``audit_layer_types`` — item 10 (``fig_layer_type_B_total_stack.pdf``): shares of the sum of
  budgets of M-Thm 5.8 by layer type.

The masks are layerwise-uniform magnitude masks (``build_masks(method="magnitude",
scope="layerwise")``), not the paper's Hybrid Magnitude–SER checkpoints: the certificates hold for
any mask, and magnitude masks keep the sweep within the quick budget.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from .._plot import (
    CERTIFIED_LABEL,
    COLORS,
    ESTIMATE_LABEL,
    MARKERS,
    PROXY_LABEL,
    identity_line,
    new_figure,
    no_data,
)
from ..registry import FigureOptions, FigureSpec, register
from ._audit_sweep import ARCHITECTURES, sweep

__all__ = [
    "data_audit_ce_budget",
    "plot_audit_ce_budget",
    "data_audit_logit_gap",
    "plot_audit_logit_gap",
    "data_audit_sigma_budget",
    "plot_audit_sigma_budget",
    "data_audit_budget_vs_sparsity",
    "plot_audit_budget_vs_sparsity",
    "data_audit_layer_types",
    "plot_audit_layer_types",
]

#: Relative tolerance of the "below y = x" counts (float64 audits, THEORY §0.3).
RTOL = 1e-9
#: Sparsity of the layer-type decomposition (THEORY §5.3 item 10).
LAYER_TYPE_SPARSITY = 0.5
#: Layer types of :func:`certkit.masks.layer_type` in stacking order, with display names.
LAYER_TYPES = {"attn": "attention (qkv / proj)", "mlp": "MLP / fc", "conv": "conv",
               "embed/head": "embed / head", "downsample": "downsample", "other": "other"}
_TYPE_COLORS = {"attn": COLORS[0], "mlp": COLORS[1], "conv": COLORS[2], "embed/head": COLORS[7],
                "downsample": COLORS[4], "other": COLORS[5]}


# --------------------------------------------------------------------------------------------
# helpers (drawing from the table alone)
# --------------------------------------------------------------------------------------------
def _bool(col: pd.Series) -> np.ndarray:
    """A boolean column, also when read back from CSV as strings."""
    if col.dtype == bool:
        return col.to_numpy()
    return col.astype(str).str.lower().isin(("true", "1", "1.0")).to_numpy()


def _archs(df: pd.DataFrame) -> list[str]:
    """Architectures present, in :data:`ARCHITECTURES` order (others after, as they appear)."""
    seen = list(dict.fromkeys(df["architecture"].astype(str)))
    return [a for a in ARCHITECTURES if a in seen] + [a for a in seen if a not in ARCHITECTURES]


def _style(arch: str) -> tuple[str, str]:
    i = ARCHITECTURES.index(arch) if arch in ARCHITECTURES else len(ARCHITECTURES) + hash(arch) % 5
    return COLORS[i % len(COLORS)], MARKERS[i % len(MARKERS)]


def _kind(certified: bool) -> str:
    return "certified" if certified else "estimated"


def _above(x: np.ndarray, y: np.ndarray) -> int:
    """How many points lie above ``y = x`` (beyond the float64 tolerance)."""
    return int(np.sum(y > x * (1.0 + RTOL) + 1e-12))


def _positive(*cols: np.ndarray) -> np.ndarray:
    ok = np.ones(len(cols[0]), dtype=bool)
    for c in cols:
        ok &= np.isfinite(c) & (c > 0)
    return ok


def _plain_log_ticks(axis) -> None:
    """Plain linear-style ticks (``%.3g``) on a log axis spanning less than ~1.5 decades."""
    lo, hi = axis.get_view_interval()
    if not (lo > 0 and hi > 0 and math.log10(hi / lo) < 1.5):
        return
    ticks = [t for t in MaxNLocator(nbins=7).tick_values(lo, hi) if lo <= t <= hi and t > 0]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
    axis.set_minor_locator(NullLocator())


def _all_sweep(options: FigureOptions):
    return sweep(bool(options.quick), int(options.seed))


# --------------------------------------------------------------------------------------------
# 1. |ΔL_CE| vs the certified multi-layer budget (items 3/4)
# --------------------------------------------------------------------------------------------
def data_audit_ce_budget(options: FigureOptions) -> pd.DataFrame:
    """Per (architecture, sparsity): ``Σ_j B_j`` (intermediate networks), ``|ΔL_CE|`` on the same
    T, the Trap-T12 proxy sum and whether every ``L_{j,s}`` is proven."""
    v = _all_sweep(options).variants
    return v[["architecture", "sparsity", "sum_budgets", "abs_ce_change", "proxy_sum",
              "certified", "status", "n"]].rename(columns={"sum_budgets": "budget"}).copy()


def plot_audit_ce_budget(df: pd.DataFrame) -> Figure:
    """Left: |ΔL_CE| vs Σ_j B_j (log–log) with y = x and the proxy as hollow markers; right:
    the ratio |ΔL_CE| / Σ_j B_j vs sparsity (≤ 1 wherever the bound is certified)."""
    fig, (ax, ax2) = new_figure(11.0, 4.6, ncols=2)
    fig.suptitle("CE change vs the multi-layer budget (M-Lemma 5.1 / M-Thm 5.8 / E-Cor 1.3)")
    x, y = df["budget"].to_numpy(float), df["abs_ce_change"].to_numpy(float)
    prox, cert = df["proxy_sum"].to_numpy(float), _bool(df["certified"])
    ok = _positive(x, y)
    if not ok.any():
        no_data(ax)
        no_data(ax2)
        return fig
    for arch in _archs(df):
        m = (df["architecture"].astype(str) == arch).to_numpy() & ok
        if not m.any():
            continue
        color, marker = _style(arch)
        order = np.argsort(df["sparsity"].to_numpy(float)[m])
        c = bool(cert[m].all())
        ls = "-" if c else "--"
        label = f"{arch}: {CERTIFIED_LABEL if c else ESTIMATE_LABEL}"
        ax.plot(x[m][order], y[m][order], ls=ls, lw=0.8, color=color, marker=marker, ms=6,
                label=label, alpha=1.0 if c else 0.8)
        pm = m & _positive(prox)
        ax.scatter(prox[pm], y[pm], marker=marker, facecolors="none", edgecolors=color, s=36,
                   lw=1.0)
        s_pct = 100 * df["sparsity"].to_numpy(float)[m][order]
        ax2.plot(s_pct, (y[m] / x[m])[order], ls=ls, color=color, marker=marker, label=label)
    lo = min(np.nanmin(y[ok]), np.nanmin(np.where(_positive(prox), prox, np.inf))) / 2
    hi = max(np.nanmax(x[ok]), np.nanmax(np.where(_positive(prox), prox, 0))) * 2
    identity_line(ax, lo, hi, log=True, label="y = x (bound: |ΔL_CE| ≤ Σ_j B_j)")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="0.3",
               label=f"{PROXY_LABEL}: x = Σ_ℓ ‖R_ℓ‖_op·mean‖v‖_∞")
    ax.set_xscale("log")
    ax.set_yscale("log")
    n_c, n_e = int((cert & ok).sum()), int((~cert & ok).sum())
    above_c = _above(x[cert & ok], y[cert & ok])
    above_e = _above(x[~cert & ok], y[~cert & ok])
    ax.text(0.02, 0.68, f"above y = x: certified {above_c}/{n_c}, estimated {above_e}/{n_e}",
            transform=ax.transAxes, ha="left", va="top", fontsize=8,
            bbox={"fc": "white", "ec": "0.7", "alpha": 0.9})
    ax.set_xlabel("budget Σ_j B_j(R_j) in the intermediate networks (nats, log scale)")
    ax.set_ylabel("|ΔL_CE| on the same T (nats, log scale)")
    s_all = df["sparsity"].to_numpy(float)
    ax.set_title(f"one point per (architecture, sparsity); lines join s = {100 * s_all.min():.0f} % "
                 f"→ {100 * s_all.max():.0f} %", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax2.axhline(1.0, ls="--", color="0.3", lw=1.2, label="ratio = 1 (bound attained)")
    ax2.set_yscale("log")
    ax2.set_xlabel("target sparsity s (%)")
    ax2.set_ylabel("|ΔL_CE| / Σ_j B_j (dimensionless, log scale)")
    ax2.set_title("tightness of the bound (must stay ≤ 1 where certified)", fontsize=9)
    ax2.legend(fontsize=7, loc="lower right")
    return fig


# --------------------------------------------------------------------------------------------
# 2. per-sample logit change vs η_s, and flips vs at-risk (items 5/11)
# --------------------------------------------------------------------------------------------
def data_audit_logit_gap(options: FigureOptions) -> pd.DataFrame:
    """Long form with a ``panel`` column.

    * ``"per-sample"``: x = η_s = Σ_j L_{j,s}‖R_j v_{j,s}‖_∞ (whole network, E-Cor 1.3),
      y = ‖z_S(s) − z_A(s)‖_∞, one row per sample of T and sparsity;
    * ``"flips"``: x = at-risk samples {|Δ_true| ≤ 2η_s}, y = correctness flips, both in % of
      the ``n`` samples, for the whole network on T (``scope="network"``) and for each layer
      pruned alone on the outcome subset T_o (``scope="layer"``, M-Cor 5.2);
    * ``"proxy"``: the paper's "Audit 4" (THEORY §5.3 item 5): x = Σ_ℓ ‖R_ℓ‖_op·mean_s‖v_s‖_∞
      (the Trap-T12 proxy with L_s held at 1), y = mean_s ‖z_S(s) − z_A(s)‖_∞, one row per
      (architecture, sparsity) — not a bound (``certified`` False); drawn hollow.
    """
    sw = _all_sweep(options)
    s = sw.samples
    per = pd.DataFrame({"panel": "per-sample", "scope": "network", "architecture": s["architecture"],
                        "sparsity": s["sparsity"], "layer": "(all)", "sample": s["sample"],
                        "n": 1, "x": s["eta"], "y": s["logit_gap"], "certified": s["certified"]})
    v, lay = sw.variants, sw.layers
    net = pd.DataFrame({"panel": "flips", "scope": "network", "architecture": v["architecture"],
                        "sparsity": v["sparsity"], "layer": "(all)", "sample": -1, "n": v["n"],
                        "x": 100.0 * v["n_at_risk"] / v["n"], "y": 100.0 * v["n_flips"] / v["n"],
                        "certified": v["certified"]})
    one = pd.DataFrame({"panel": "flips", "scope": "layer", "architecture": lay["architecture"],
                        "sparsity": lay["sparsity"], "layer": lay["layer"], "sample": -1,
                        "n": lay["n_o"], "x": 100.0 * lay["n_at_risk"] / lay["n_o"],
                        "y": 100.0 * lay["n_flips"] / lay["n_o"], "certified": lay["certified"]})
    prox = lay.groupby(["architecture", "sparsity"], sort=False)["proxy"].sum()
    gap = s.groupby(["architecture", "sparsity"], sort=False)["logit_gap"].agg(["mean", "size"])
    both = gap.join(prox, how="inner").reset_index()
    audit4 = pd.DataFrame({"panel": "proxy", "scope": "network", "architecture": both["architecture"],
                           "sparsity": both["sparsity"], "layer": "(all)", "sample": -1,
                           "n": both["size"], "x": both["proxy"], "y": both["mean"], "certified": False})
    return pd.concat([per, net, one, audit4], ignore_index=True)


def plot_audit_logit_gap(df: pd.DataFrame) -> Figure:
    """Left: per-sample ‖Δz‖_∞ vs η_s (log–log, y = x); right: flips vs at-risk (% of samples),
    whole network (large markers) and single layers (small)."""
    fig, (ax, ax2) = new_figure(11.0, 4.8, ncols=2)
    fig.suptitle("Logit change and flips vs the certified η_s (M-Cor 5.2; multi-layer E-Cor 1.3)")
    panel = df["panel"].astype(str)
    per, fl = df[(panel == "per-sample").to_numpy()], df[(panel == "flips").to_numpy()]
    prx = df[(panel == "proxy").to_numpy()]
    box = {"fc": "white", "ec": "0.7", "alpha": 0.9}
    if per.empty:
        no_data(ax)
    else:
        x, y, cert = per["x"].to_numpy(float), per["y"].to_numpy(float), _bool(per["certified"])
        ok = _positive(x, y)
        for arch in _archs(per):
            m = (per["architecture"].astype(str) == arch).to_numpy() & ok
            if not m.any():
                continue
            color, marker = _style(arch)
            c = bool(cert[m].all())
            ax.scatter(x[m], y[m], s=7, marker=marker, color=color, alpha=0.35, lw=0,
                       label=f"{arch}: {CERTIFIED_LABEL if c else ESTIMATE_LABEL}")
        px, py = prx["x"].to_numpy(float), prx["y"].to_numpy(float)
        pok = _positive(px, py)
        for arch in _archs(prx):
            m = (prx["architecture"].astype(str) == arch).to_numpy() & pok
            if m.any():
                color, marker = _style(arch)
                ax.scatter(px[m], py[m], s=34, marker=marker, facecolor="none", edgecolor=color, lw=1.1)
        if pok.any():
            ax.scatter([], [], s=10, marker="o", facecolor="none", edgecolor="0.3",
                       label=f"{PROXY_LABEL}: mean ‖Δz‖_∞ vs Σ_ℓ ‖R_ℓ‖_op·mean‖v‖_∞")
        lo_hi = np.concatenate([x[ok], y[ok], px[pok], py[pok]])
        if lo_hi.size:
            identity_line(ax, lo_hi.min() / 2, lo_hi.max() * 2, log=True, label="y = x (bound ‖Δz‖_∞ ≤ η_s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        msg = (f"above y = x: certified {_above(x[cert & ok], y[cert & ok])}/{int((cert & ok).sum())}"
               f", estimated {_above(x[~cert & ok], y[~cert & ok])}/{int((~cert & ok).sum())}")
        if pok.any():
            msg += f"\npaper's proxy (not a bound): {_above(px[pok], py[pok])}/{int(pok.sum())} above"
        if (~ok).any():
            msg += f"\n{int((~ok).sum())} samples with Δz = 0 not shown"
        ax.text(0.02, 0.72, msg, transform=ax.transAxes, ha="left", va="top", fontsize=8,
                bbox=box)
        leg = ax.legend(fontsize=7, loc="upper left", markerscale=2.5)
        for h in leg.legend_handles:
            h.set_alpha(1.0)
        ax.set_xlabel("η_s = Σ_j L_j,s ‖R_j v_j,s‖_∞, whole network (logits, log scale)")
        ax.set_ylabel("‖z_S(s) − z_A(s)‖_∞ (logits, log scale)")
        ax.set_title("one point per sample of T and sparsity (all layers pruned)", fontsize=9)
    if fl.empty:
        no_data(ax2)
    else:
        x, y, cert = fl["x"].to_numpy(float), fl["y"].to_numpy(float), _bool(fl["certified"])
        net = (fl["scope"].astype(str) == "network").to_numpy()
        handles = []
        for arch in _archs(fl):
            a = (fl["architecture"].astype(str) == arch).to_numpy()
            color, marker = _style(arch)
            for m, size, alpha in ((a & ~net, 16, 0.45), (a & net, 60, 1.0)):
                for c in (True, False):
                    mm = m & (cert == c)
                    if mm.any():
                        ax2.scatter(x[mm], y[mm], marker=marker, s=size, lw=1.1, alpha=alpha,
                                    facecolors=color if c else "none", edgecolors=color)
            c_all = bool(cert[a & net].all()) if (a & net).any() else bool(cert[a].all())
            handles.append(Line2D([], [], ls="", marker=marker, color=color,
                                  mfc=color if c_all else "none", ms=7,
                                  label=f"{arch}: {CERTIFIED_LABEL if c_all else ESTIMATE_LABEL}"))
        handles += [Line2D([], [], ls="", marker="o", color="0.4", ms=8,
                           label="all layers pruned (E-Cor 1.3, on T)"),
                    Line2D([], [], ls="", marker="o", color="0.4", ms=4, alpha=0.6,
                           label="one layer pruned (M-Cor 5.2, on T_o)")]
        identity_line(ax2, 0.0, 100.0, label="y = x (flips ≤ at-risk)")
        handles.append(ax2.get_lines()[-1])
        ax2.set_xlim(-2, 102)
        ax2.set_ylim(-2, 102)
        ax2.text(0.6, 0.3, f"certified points above y = x: {_above(x[cert], y[cert])}"
                 f"/{int(cert.sum())}\n(at-risk = 100 %: bound vacuous there)",
                 transform=ax2.transAxes, ha="center", va="center", fontsize=8, bbox=box)
        ax2.set_xlabel("at-risk samples {|Δ_true| ≤ 2η_s} (% of samples)")
        ax2.set_ylabel("correctness flips, dense vs pruned (% of samples)")
        ax2.set_title("one point per (architecture, sparsity[, layer]); hollow = estimated",
                      fontsize=9)
        ax2.legend(handles=handles, fontsize=7, loc="upper left")
    return fig


# --------------------------------------------------------------------------------------------
# 3. σ₊(ℓ) vs B_T(R_ℓ) (items 6/7/9)
# --------------------------------------------------------------------------------------------
def data_audit_sigma_budget(options: FigureOptions) -> pd.DataFrame:
    """Per (architecture, sparsity, layer) with an MP fit: σ₊ of the dense weight (estimated)
    and the true single-layer budget B_T(R_ℓ) in the dense network."""
    lay = _all_sweep(options).layers
    lay = lay[np.isfinite(lay["sigma_plus"].to_numpy(float))]
    return lay[["architecture", "sparsity", "layer", "layer_type", "sigma_plus", "budget",
                "certified"]].reset_index(drop=True).copy()


def _pearson_log(x: np.ndarray, y: np.ndarray) -> float:
    ok = _positive(x, y)
    if ok.sum() < 3:
        return math.nan
    lx, ly = np.log(x[ok]), np.log(y[ok])
    if np.ptp(lx) == 0 or np.ptp(ly) == 0:
        return math.nan
    return float(np.corrcoef(lx, ly)[0, 1])


def plot_audit_sigma_budget(df: pd.DataFrame) -> Figure:
    """Left: B_T(R_ℓ) vs σ₊(ℓ) (log–log), colour = sparsity, marker = architecture, hollow =
    estimated; right: within-architecture r(log σ₊, log B) per sparsity and the pooled r."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable

    fig, (ax, ax2) = new_figure(11.0, 4.6, ncols=2)
    fig.suptitle("MP edge σ₊(ℓ) of the dense layer vs its true budget B_T(R_ℓ)")
    x, y = df["sigma_plus"].to_numpy(float), df["budget"].to_numpy(float)
    s, cert = df["sparsity"].to_numpy(float), _bool(df["certified"])
    ok = _positive(x, y)
    if not ok.any():
        no_data(ax)
        no_data(ax2)
        return fig
    cmap, norm = colormaps["viridis"], Normalize(vmin=float(s.min()), vmax=float(max(s.max(),
                                                                                      s.min() + 1e-9)))
    handles = []
    for arch in _archs(df):
        a = (df["architecture"].astype(str) == arch).to_numpy() & ok
        if not a.any():
            continue
        color, marker = _style(arch)
        for c in (True, False):
            m = a & (cert == c)
            if m.any():
                cols = cmap(norm(s[m]))
                ax.scatter(x[m], y[m], marker=marker, s=34, lw=1.1,
                           facecolors=cols if c else "none", edgecolors=cols)
        c_all = bool(cert[a].all())
        handles.append(Line2D([], [], ls="", marker=marker, color="0.35",
                              mfc="0.35" if c_all else "none",
                              label=f"{arch} ({_kind(c_all)} budget)"))
        levels = sorted(set(s[a]))
        r = [_pearson_log(x[a & (s == lv)], y[a & (s == lv)]) for lv in levels]
        ax2.plot(100 * np.asarray(levels), r, color=color, marker=marker,
                 ls="-" if c_all else "--",
                 label=f"{arch} ({int((a & (s == levels[0])).sum())} layers, {_kind(c_all)})")
    levels = sorted(set(s[ok]))
    pooled = [_pearson_log(x[ok & (s == lv)], y[ok & (s == lv)]) for lv in levels]
    ax2.plot(100 * np.asarray(levels), pooled, color="k", ls=":", marker=".",
             label="pooled over architectures")
    r_all = _pearson_log(x, y)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("σ₊(ℓ), MP bulk edge of the dense weight (weight units, log scale; estimated)")
    ax.set_ylabel("B_T(R_ℓ) = (2/|T|) Σ_s L_s‖R_ℓ v_s‖_∞ (nats, log scale)")
    ax.set_title(f"all (architecture, layer, sparsity) points: pooled r_log = {r_all:+.2f}",
                 fontsize=9)
    _plain_log_ticks(ax.xaxis)
    ax.legend(handles=handles, fontsize=7, loc="lower center")
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.01)
    cb.set_label("sparsity s (fraction)")
    ax2.axhline(0.0, color="0.6", lw=0.8)
    ax2.set_ylim(-1.05, 1.05)
    ax2.set_xlabel("target sparsity s (%)")
    ax2.set_ylabel("Pearson r(log σ₊, log B_T) across layers (dimensionless)")
    ax2.set_title("within-architecture correlation per sparsity", fontsize=9)
    ax2.legend(fontsize=7, loc="center right")
    return fig


# --------------------------------------------------------------------------------------------
# 4. Σ_ℓ B_T(R_ℓ) vs sparsity (item 8)
# --------------------------------------------------------------------------------------------
def data_audit_budget_vs_sparsity(options: FigureOptions) -> pd.DataFrame:
    """Per (architecture, sparsity): ``Σ_ℓ B_T(R_ℓ)`` (each layer alone in the dense network),
    the proxy sum, and whether every layer's L_s is proven."""
    lay = _all_sweep(options).layers
    g = lay.groupby(["architecture", "sparsity"], sort=False)
    out = g.agg(total_budget=("budget", "sum"), proxy_sum=("proxy", "sum"),
                certified=("certified", "all"), n_layers=("layer", "size")).reset_index()
    out["certified"] = out["certified"].astype(bool)
    return out


def plot_audit_budget_vs_sparsity(df: pd.DataFrame) -> Figure:
    """Σ_ℓ B_T(R_ℓ) vs sparsity per architecture (log y): solid = certified, dashed =
    estimated; the proxy sum dotted with hollow markers."""
    fig, ax = new_figure(7.5, 4.8)
    fig.suptitle("Total data-path budget vs sparsity (M-eq. 8, summed over layers)")
    tot, prox = df["total_budget"].to_numpy(float), df["proxy_sum"].to_numpy(float)
    s, cert = df["sparsity"].to_numpy(float), _bool(df["certified"])
    if not _positive(tot).any():
        no_data(ax)
        return fig
    for arch in _archs(df):
        m = (df["architecture"].astype(str) == arch).to_numpy()
        color, marker = _style(arch)
        order = np.argsort(s[m])
        c = bool(cert[m].all())
        ax.plot(100 * s[m][order], tot[m][order], ls="-" if c else "--", color=color,
                marker=marker, label=f"{arch}: Σ_ℓ B_T — {CERTIFIED_LABEL if c else ESTIMATE_LABEL}")
        pm = _positive(prox[m][order])
        ax.plot(100 * s[m][order][pm], prox[m][order][pm], ls=":", color=color, marker=marker,
                mfc="none", lw=1.0, alpha=0.9)
    ax.plot([], [], ls=":", marker="o", mfc="none", color="0.3", label=PROXY_LABEL)
    ax.set_yscale("log")
    ax.set_xlabel("target sparsity s (%)")
    ax.set_ylabel("Σ_ℓ B_T(R_ℓ) (nats, log scale)")
    ax.set_title("each layer pruned alone in the dense network; one curve per architecture",
                 fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig


# --------------------------------------------------------------------------------------------
# 5. layer-type decomposition at s = 0.5 (item 10)
# --------------------------------------------------------------------------------------------
def data_audit_layer_types(options: FigureOptions) -> pd.DataFrame:
    """Per (architecture, layer type) at s = :data:`LAYER_TYPE_SPARSITY`: Σ of B_T(R_ℓ) over the
    type's layers and its share (%) of the architecture's total."""
    lay = _all_sweep(options).layers
    lay = lay[np.isclose(lay["sparsity"].to_numpy(float), LAYER_TYPE_SPARSITY)]
    g = lay.groupby(["architecture", "layer_type"], sort=False)
    out = g.agg(budget=("budget", "sum"), n_layers=("layer", "size"),
                certified=("certified", "all")).reset_index()
    out["certified"] = out["certified"].astype(bool)
    out["fraction_pct"] = 100.0 * out["budget"] / out.groupby("architecture")["budget"].transform("sum")
    out.insert(1, "sparsity", LAYER_TYPE_SPARSITY)
    return out


def plot_audit_layer_types(df: pd.DataFrame) -> Figure:
    """Stacked bars per architecture: share (%) of Σ_ℓ B_T(R_ℓ) by layer type; estimated
    segments hatched."""
    fig, ax = new_figure(7.5, 4.8)
    s = float(df["sparsity"].iloc[0]) if len(df) else LAYER_TYPE_SPARSITY
    fig.suptitle(f"Share of the total budget by layer type at s = {s:.2f} (M-Thm 5.8)")
    archs = _archs(df)
    present = list(dict.fromkeys(df["layer_type"].astype(str)))
    types = [t for t in LAYER_TYPES if t in present] + [t for t in present if t not in LAYER_TYPES]
    cert = _bool(df["certified"])
    any_est = False
    for i, arch in enumerate(archs):
        bottom = 0.0
        for t in types:
            m = ((df["architecture"].astype(str) == arch) & (df["layer_type"].astype(str) == t)
                 ).to_numpy()
            if not m.any():
                continue
            frac = float(df["fraction_pct"].to_numpy(float)[m].sum())
            c = bool(cert[m].all())
            any_est |= not c
            ax.bar(i, frac, bottom=bottom, width=0.6, color=_TYPE_COLORS.get(t, "0.5"),
                   edgecolor="white", hatch=None if c else "//", lw=0.8)
            if frac >= 4.0:
                ax.text(i, bottom + frac / 2, f"{frac:.0f}%", ha="center", va="center",
                        fontsize=8, color="white", fontweight="bold")
            bottom += frac
    ax.set_xticks(range(len(archs)), archs)
    ax.set_xlim(-0.6, len(archs) - 0.4 + 1.3)
    ax.set_ylim(0, 100)
    ax.set_xlabel("architecture")
    ax.set_ylabel("share of Σ_ℓ B_T(R_ℓ) (%)")
    ax.set_title("true per-layer budgets (each layer alone in the dense network)", fontsize=9)
    handles = [Patch(color=_TYPE_COLORS.get(t, "0.5"), label=LAYER_TYPES.get(t, t)) for t in types]
    handles.append(Patch(facecolor="0.85", edgecolor="0.4", label=CERTIFIED_LABEL))
    if any_est:
        handles.append(Patch(facecolor="0.85", edgecolor="0.4", hatch="//", label=ESTIMATE_LABEL))
    ax.legend(handles=handles, fontsize=7, loc="center right")
    return fig


# --------------------------------------------------------------------------------------------
# registration
# --------------------------------------------------------------------------------------------
_TAGS = ("audit", "certificate", "sweep")

register(FigureSpec(
    name="audit_ce_budget",
    title="CE change vs certified budget",
    description=("Measured |ΔL_CE| on the calibration set against the multi-layer budget "
                 "Σ_j B_j of magnitude-pruned digits MLP/CNN (certified) and ViT (estimated) "
                 "across sparsities: every certified point lies below y = x, far below it, "
                 "while the paper's op-norm proxy (hollow) is not a bound."),
    data=data_audit_ce_budget, plot=plot_audit_ce_budget,
    columns=("architecture", "sparsity", "budget", "abs_ce_change", "proxy_sum", "certified"),
    paper="§5.3 items 3/4", tags=_TAGS))

register(FigureSpec(
    name="audit_logit_gap",
    title="Logit change and flips vs η_s",
    description=("Per-sample logit change ‖z_S − z_A‖_∞ against the certified η_s, and "
                 "correctness flips against the at-risk count {|Δ_true| ≤ 2η_s}, per architecture "
                 "and sparsity: all certified points lie on or below y = x."),
    data=data_audit_logit_gap, plot=plot_audit_logit_gap,
    columns=("panel", "scope", "architecture", "sparsity", "layer", "n", "x", "y", "certified"),
    paper="§5.3 items 5/11", tags=_TAGS))

register(FigureSpec(
    name="audit_sigma_budget",
    title="σ₊ vs true per-layer budget",
    description=("MP bulk edge σ₊ of each dense layer against its true budget B_T(R_ℓ) (log–log, "
                 "coloured by sparsity), with the within-architecture and pooled correlations "
                 "of log σ₊ and log B_T per sparsity."),
    data=data_audit_sigma_budget, plot=plot_audit_sigma_budget,
    columns=("architecture", "sparsity", "layer", "layer_type", "sigma_plus", "budget",
             "certified"),
    paper="§5.3 items 6/7/9", tags=_TAGS))

register(FigureSpec(
    name="audit_budget_vs_sparsity",
    title="Total budget vs sparsity",
    description=("Sum over layers of the true budgets B_T(R_ℓ) against the target sparsity for "
                 "each architecture (certified solid, estimated dashed, the paper's proxy "
                 "dotted): the budget grows with sparsity."),
    data=data_audit_budget_vs_sparsity, plot=plot_audit_budget_vs_sparsity,
    columns=("architecture", "sparsity", "total_budget", "proxy_sum", "certified"),
    paper="§5.3 item 8", tags=_TAGS))

register(FigureSpec(
    name="audit_layer_types",
    title="Budget share by layer type",
    description=("Stacked bars of each layer type's share (%) of the summed true budgets at "
                 "sparsity 0.5 for the digits MLP, CNN and ViT, showing which layers carry the "
                 "budget."),
    data=data_audit_layer_types, plot=plot_audit_layer_types,
    columns=("architecture", "sparsity", "layer_type", "budget", "fraction_pct", "certified"),
    paper="§5.3 item 10", tags=_TAGS))
