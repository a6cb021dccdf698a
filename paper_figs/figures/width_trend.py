r"""Accuracy change after pruning vs network width: the computed analog of M-Fig 2.

Analog of the paper's M-Fig 2 (THEORY §5.1, ESM_2 ``figures_param_vs_drop.pdf``: ΔTop-1 vs
dense parameter count at s = 0.5/0.6/0.7, OLS in log10 params; the published version is the
figure ``published_size_trend``). M-Fig 2 is empirical, not a theorem; its motivation is
"larger matrices → better-resolved MP edge and a larger random-like reservoir".

certkit analog: ReLU MLPs [64, N, N, 10] on scikit-learn's digits (inputs /16, seeded 75/25
train/test split), N ∈ {16, 32, 64, 128, 256} (quick: {16, 32, 64}), trained by full-batch
gradient descent on L_CE + λΣ‖W‖_F² (:func:`synthetic.networks.train_l2`, float64, seeded
He initialisation, zero biases kept fixed). Both hidden weight matrices W1 (N×64) and W2 (N×N),
i.e. every non-final layer, are pruned layerwise to exactly round(s·numel) entries each (the
head W3 is kept dense), **without fine-tuning** (the paper fine-tunes), by

* ``magnitude`` — :func:`certkit.masks.magnitude_mask` (ALGORITHMS §2.2, §A.2);
* ``rmt`` — the MP-guided classical RMT mask :func:`certkit.masks.rmt.rmt_masks` called per
  matrix (magnitude of the spike reconstruction above the fitted MP edge σ₊, ALGORITHMS §3);
  a matrix too small for the MP fit falls back to |W| (flagged ``rmt_fallback``).

Per (replicate, N, method, s) the table holds the test-accuracy change (pp, pruned − dense)
and the **certified** telescoped data-path budget Σ_j B_T(R_j) of M-Lemma 5.1 (M-eq. 8; as in
E-Cor 1.3 / M-Thm 5.8's CE part): the removed parts R_j = W_j ⊙ (1 − M_j) are restored
output-first and every B_j = (2/|T|)Σ_s L_{j,s}‖R_j v_{j,s}‖_∞ is evaluated in its intermediate
network with the rigorous data-free constant L1 (:func:`certkit.lipschitz.lipschitz_L1`), so
|L_CE(pruned) − L_CE(dense)| on the training set T is at most Σ_j B_j (checked by the tests).
Fit rows hold the OLS of the accuracy change on log10(dense weight count) per method and s
(over every replicate's point), as in M-Fig 2.

Notes
-----
Full mode, seed 0 (3 replicates, dense test accuracy 97.0–98.5 %): the magnitude slopes are
+0.4/+1.3/+4.2/+15.9/+24.3 pp per decade at s = 0.5/0.6/0.7/0.8/0.9 (R = 0.44–0.77), the
RMT-mask slopes +0.4/+3.2/+5.9/+14.2/+19.2; the gain is concentrated between N = 16 and 64
(magnitude at s = 0.7: −9.3, −6.5, −2.9, −2.8, −1.6 pp), and the RMT mask is worse than
magnitude in 23 of the 25 (N, s) cells (means over replicates), and worse at N = 128/256 than
at N = 64. Σ_j B_j grows with N because the L1 constants (products of entrywise-absolute
downstream weights) do, while the observed |ΔL_CE| shrinks: the certificate holds everywhere
but is 70–12 000× loose here. The training step 0.3 matters: with 0.5 one N = 16 replicate
oscillated at ~70 % accuracy and made the wide-N RMT numbers look competitive.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from certkit.masks import magnitude_mask
from certkit.masks.rmt import rmt_masks
from certkit.mlp import MLP

from .._plot import CERTIFIED_LABEL, COLORS, MARKERS, new_figure, ols_log10
from .._threads import one_thread
from ..registry import FigureOptions, FigureSpec, register
from ._digits_mlp import DigitsMLP, replace_weight, telescoped_budgets, train_digits_mlp

__all__ = ["METHODS", "SPARSITIES", "data_width_trend", "plot_width_trend", "prune_hidden",
           "train_width_mlp"]

WIDTHS_QUICK, WIDTHS_FULL = (16, 32, 64), (16, 32, 64, 128, 256)
#: The paper's three sparsities plus two where the small nets break.
SPARSITIES = (0.5, 0.6, 0.7, 0.8, 0.9)
#: Mask methods: name -> legend text.
METHODS = {"magnitude": "layerwise magnitude", "rmt": "MP-guided classical RMT"}
REPS_QUICK, REPS_FULL = 2, 3
STEPS_QUICK, STEPS_FULL = 300, 1000
#: Gradient-descent step (the 0.5 of ``_digits_mlp`` left one N = 16 seed oscillating at 70 % accuracy).
LR = 0.3
#: Pruned layers: both hidden weight matrices (every non-final layer).
PRUNED = (0, 1)


def train_width_mlp(width: int, seed: int, quick: bool, rep: int = 0) -> DigitsMLP:
    """Train the [64, width, width, 10] ReLU MLP (split seeded by ``seed``, init by all three)."""
    return train_digits_mlp(seed, quick, widths=(64, width, width, 10), lr=LR,
                            init_seed=1_000_003 * seed + 1_000 * rep + width,
                            steps=STEPS_QUICK if quick else STEPS_FULL)


def prune_hidden(mlp: MLP, method: str, sparsity: float) -> tuple[MLP, dict[int, torch.Tensor], bool]:
    """Prune every layer of :data:`PRUNED` to exactly round(s·numel) entries, no fine-tuning.

    Returns ``(pruned, keep, fallback)``: the pruned network, the keep-masks ``M_j`` (True =
    kept) and whether an RMT mask fell back to |W| on some matrix (always False for magnitude).
    """
    if method not in METHODS:
        raise ValueError(f"method == {method!r}, must be one of {tuple(METHODS)}")
    net, keeps, fallback = mlp, {}, False
    for j in PRUNED:
        W = mlp.weights[j]
        if method == "magnitude":
            keep = magnitude_mask(W, sparsity)
        else:
            masks, report = rmt_masks({"W": W}, sparsity)
            keep, fallback = masks["W"], fallback or bool(report["fallback"])
        keeps[j] = keep
        net = replace_weight(net, j, W * keep)
    return net, keeps, fallback


def _certified_budget(net: DigitsMLP, pruned: MLP) -> tuple[float, bool]:
    """Σ_j B_T(R_j), restoring the removed parts output-first (M-Lemma 5.1 telescoped), with L1."""
    terms = telescoped_budgets(pruned, net.mlp, net.x, PRUNED)
    return sum(t.budget.value for t in terms), all(t.budget.certified for t in terms)


def _points(net: DigitsMLP, rep: int, width: int) -> list[dict]:
    dense_acc, dense_ce = net.acc(test=True), net.ce()
    params = sum(W.numel() for W in net.mlp.weights)
    rows = []
    for method in METHODS:
        for s in SPARSITIES:
            pruned, keeps, fallback = prune_hidden(net.mlp, method, s)
            budget, certified = _certified_budget(net, pruned)
            acc = net.acc(pruned, test=True)
            rows.append({
                "kind": "point", "method": method, "sparsity": s, "rep": rep, "width": width,
                "params": params, "dense_test_acc": dense_acc, "pruned_test_acc": acc,
                "delta_pp": 100.0 * (acc - dense_acc), "dense_train_ce": dense_ce,
                "delta_ce_train": abs(net.ce(pruned) - dense_ce), "sum_budget": budget,
                "budget_certified": certified, "rmt_fallback": fallback,
                "removed_w1": int((~keeps[0]).sum()), "removed_w2": int((~keeps[1]).sum()),
                "n_train": len(net.x),
            })
    return rows


def data_width_trend(options: FigureOptions) -> pd.DataFrame:
    """Point rows per (rep, width, method, s) and OLS fit rows per (method, s); see the module doc."""
    rows = []
    with one_thread():                         # small matrices: threading only adds overhead
        for rep in range(REPS_QUICK if options.quick else REPS_FULL):
            for width in WIDTHS_QUICK if options.quick else WIDTHS_FULL:
                rows += _points(train_width_mlp(width, options.seed, options.quick, rep), rep, width)
    pts = pd.DataFrame(rows)
    fits = []
    for method in METHODS:
        for s in SPARSITIES:
            q = pts[(pts["method"] == method) & (pts["sparsity"] == s)]
            slope, intercept, r, n = ols_log10(q["params"], q["delta_pp"])
            fits.append({"kind": "fit", "method": method, "sparsity": s, "slope_pp_per_decade": slope,
                         "intercept_pp": intercept, "pearson_r": r, "n_rows": n})
    df = pd.concat([pts, pd.DataFrame(fits)], ignore_index=True)
    for col in ("budget_certified", "rmt_fallback"):
        df[col] = df[col].map(lambda v: v is True)
    return df


def _as_bool(s: pd.Series) -> pd.Series:
    return s.map(lambda v: v is True or v == 1 or str(v).strip().lower() == "true")


def _width_axis(ax, ticks: pd.Series) -> None:
    """Log x axis in thousands of dense weights, one tick per width (``ticks``: params -> N)."""
    ax.set_xscale("log")
    ax.set_xticks(ticks.index.to_numpy(dtype=float) / 1e3,
                  [f"{p / 1e3:.3g}\nN = {int(n)}" for p, n in ticks.items()])
    ax.minorticks_off()
    ax.set_xlabel("dense weights W1 + W2 + W3 (thousands, log scale)")


def plot_width_trend(df: pd.DataFrame):
    """(a) Δ test accuracy vs weights, magnitude; (b) the same for the RMT mask; (c) Σ B_j vs weights."""
    pts = df[df["kind"] == "point"].copy()
    fits = df[df["kind"] == "fit"]
    sparsities = sorted(pts["sparsity"].unique())
    color = {s: COLORS[i % len(COLORS)] for i, s in enumerate(sparsities)}
    marker = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(sparsities)}
    fig, axes = new_figure(15.5, 5.6, ncols=3)
    ticks = pts.groupby("params")["width"].first()
    axes[1].sharey(axes[0])
    n_reps = pts["rep"].nunique()
    for ax, (method, label) in zip(axes[:2], METHODS.items(), strict=True):
        for s in sparsities:
            q = pts[(pts["method"] == method) & np.isclose(pts["sparsity"], s)]
            g = q.groupby("params")["delta_pp"]
            x = np.array(sorted(q["params"].unique()), dtype=float) / 1e3
            fit = fits[(fits["method"] == method) & np.isclose(fits["sparsity"], s)]
            text = f"s = {s:.1f}"
            if len(fit) and math.isfinite(fit["slope_pp_per_decade"].iloc[0]):
                f = fit.iloc[0]
                text += f": OLS {f['slope_pp_per_decade']:+.1f} pp/decade, R = {f['pearson_r']:+.2f}"
                grid = np.geomspace(x.min() / 1.1, x.max() * 1.1, 32)
                ax.plot(grid, f["intercept_pp"] + f["slope_pp_per_decade"] * np.log10(grid * 1e3),
                        ls="--", lw=1.0, color=color[s], alpha=0.8)
            ax.errorbar(x, g.mean().to_numpy(), yerr=g.std(ddof=1).fillna(0.0).to_numpy(), color=color[s],
                        marker=marker[s], ms=5, lw=1.4, capsize=3, label=text)
        fb = pts[(pts["method"] == method) & _as_bool(pts["rmt_fallback"])]
        if len(fb):
            ax.scatter(fb["params"].unique() / 1e3, np.full(fb["params"].nunique(), 0.0), marker="x",
                       color="k", s=40, zorder=4, label="an MP fit failed: that matrix used |W|")
        ax.axhline(0.0, color="0.6", lw=0.8)
        _width_axis(ax, ticks)
        ax.set_ylabel("pruned − dense test accuracy (pp; < 0 = worse)")
        ax.set_title(f"({'ab'[list(METHODS).index(method)]}) {label} mask", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False,
                  title="dashed: OLS of the change on log10(weights), all seeds", title_fontsize=7)
    ax = axes[2]
    mag = pts[pts["method"] == "magnitude"]
    certified = bool(_as_bool(mag["budget_certified"]).all())
    for s in sparsities:
        q = mag[np.isclose(mag["sparsity"], s)].groupby("params")
        x = np.array(sorted(q.groups), dtype=float) / 1e3
        ax.plot(x, q["sum_budget"].mean(), color=color[s], marker=marker[s], ms=5, lw=1.4)
        ax.plot(x, q["delta_ce_train"].mean(), color=color[s], marker=marker[s], ms=5, lw=1.0, ls=":",
                markerfacecolor="none")
    ax.plot([], [], color="0.2", lw=1.4,
            label=f"Σ_j B_T(R_j), L1 constants: {CERTIFIED_LABEL if certified else 'NOT certified'}")
    ax.plot([], [], color="0.2", lw=1.0, ls=":", marker="o", markerfacecolor="none",
            label="observed |L_CE(pruned) − L_CE(dense)| on T")
    _width_axis(ax, ticks)
    ax.set_yscale("log")
    ax.set_ylabel("cross-entropy change on T (nats, log scale)")
    ax.set_title("(c) magnitude mask: certified budget vs observed CE change", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False,
              title="colour and marker = sparsity s, as in (a) and (b)", title_fontsize=7)
    n = int(pts["n_train"].iloc[0])
    dense = 100 * pts.groupby("width")["dense_test_acc"].mean()
    fig.suptitle(f"Digits MLPs [64, N, N, 10] (|T| = {n}, dense test accuracy {dense.min():.1f}–"
                 f"{dense.max():.1f} %): W1, W2 pruned layerwise, no fine-tuning; mean ± sd over "
                 f"{n_reps} seeds", fontsize=11)
    return fig


register(FigureSpec(
    name="width_trend",
    title="Accuracy change after pruning vs MLP width (computed M-Fig 2)",
    description="Without fine-tuning, digits MLPs [64, N, N, 10] with larger N lose less test accuracy "
                "when both hidden layers are pruned (positive OLS slopes in log10 weights at every "
                "s = 0.5–0.9, steepest at high s, as in M-Fig 2, with the gain flattening beyond N = 64), "
                "the MP-guided RMT mask loses more than magnitude almost everywhere, and the certified "
                "budget Σ_j B_j stays roughly 10²–10⁴ times the observed cross-entropy change and grows "
                "with N, so it does not explain the trend.",
    data=data_width_trend, plot=plot_width_trend,
    columns=("kind", "method", "sparsity", "rep", "width", "params", "dense_test_acc", "pruned_test_acc",
             "delta_pp", "delta_ce_train", "sum_budget", "budget_certified", "rmt_fallback", "removed_w1",
             "removed_w2", "slope_pp_per_decade", "intercept_pp", "pearson_r", "n_rows"),
    paper="M-Fig 2", tags=("pruning", "M-Lemma 5.1"),
))
