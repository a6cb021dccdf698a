r"""Outer-layer scale a(N, s) and the certified scale L_s‖ψ1(s)‖_2 vs width, at init and trained.

Analog of the ESM_2 outer-layer-scaling figures (THEORY §5.2: ``a(N)_new_vs_N_first.jpg``,
``a(N)_new_vs_N.jpg``, ``test_acc_N_first*.jpg``). The paper trained Fashion-MNIST MLPs
[784, N, N, 10] and plotted an ad-hoc mixture τ(N) (Trap T13); certkit plots the theorem quantity
of E-Assumption 3.1 for ReLU MLPs [64, N, N, 10] (no biases) on scikit-learn's digits (inputs /16,
the 500-sample training split of :mod:`paper_figs.figures._digits_mlp` in both modes):

* ``a(N, s) = ‖W3‖_{∞→∞}·‖W1 s‖_2·sqrt(log(2N)/N)`` (median and max over s ∈ T), which
  E-Assumption 3.1 / E-Def 3.11 require to → 0 (it enters E-Lemma 3.13's τ_N = 2√2·a and
  E-Lemma 3.15 / E-Thm 3.18's (4√2/|T|)Σ_s a);
* the rigorous scale ``L_s·‖ψ1(s)‖_2`` with ψ1(s) = ReLU(W1 s) and L_s the certified data-free
  Lipschitz constant L1 of the downstream ψ2 (:func:`certkit.lipschitz.lipschitz_L1`; with a single
  downstream matrix it equals L0 = ‖W3‖_{∞→∞}), the coefficient of M-Cor 5.10 / E-Thm 3.16's
  τ_{N,δ}; deterministically L_s‖ψ1(s)‖_2 ≤ ‖W3‖_{∞→∞}‖W1 s‖_2 (E-Assumption 3.1: J(ψ1(s)) ≤ ‖W1 s‖_2);
* test accuracy of the trained networks.

Families (all weights iid Gaussian, target layer W2): N(0, 1/N) in every layer and N(0, 1/N²) in
every layer (the paper's two), plus — at initialisation only — standard fan-in N(0, 1/d_in), the
case of THEORY's scaling reality check / Trap T11. Predictions at init: a grows like sqrt(log N)
for N(0, 1/N) (‖W3‖_{∞→∞} ≈ sqrt(2N/π), ‖W1 s‖_2 ≈ ‖s‖_2), like sqrt(N log N) for fan-in, and
decays like sqrt(log N)/N for N(0, 1/N²). Training is full-batch gradient descent on
L_CE + λΣ‖W‖_F² (:func:`synthetic.networks.train_l2`, λ and step size of the digits MLP).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from certkit.classification import accuracy, mean_ce
from certkit.lipschitz import lipschitz_L1
from certkit.mlp import MLP
from synthetic.networks import outer_scale_invariants, train_l2

from .._plot import COLORS, MARKERS, new_figure, no_data, ols_log10
from .._threads import one_thread
from ..registry import FigureOptions, FigureSpec, register
from ._digits_mlp import LR, TRAIN_LAM, train_digits_mlp

__all__ = ["data_outer_scale", "init_mlp", "plot_outer_scale"]

#: Target layer (0-based): W2 of [64, N, N, 10]; ψ1 = ReLU(W1 ·), ψ2 = W3 ReLU(·).
TARGET = 1
D_IN, K = 64, 10
#: Family key → (legend label, std of W1, W2, W3 as functions of N).
FAMILIES = {
    "1/N": ("N(0,1/N), all layers", lambda n: (n ** -0.5, n ** -0.5, n ** -0.5)),
    "1/N^2": ("N(0,1/N²), all layers", lambda n: (1.0 / n, 1.0 / n, 1.0 / n)),
    "fan-in": ("fan-in N(0,1/d_in) (init only)", lambda n: (D_IN ** -0.5, n ** -0.5, n ** -0.5)),
}
TRAINED_FAMILIES = ("1/N", "1/N^2")
INIT_WIDTHS = (32, 64, 128, 256, 512, 1024, 2048)
TRAIN_WIDTHS_QUICK, TRAIN_WIDTHS_FULL = (32, 64, 128), (32, 64, 128, 256, 512)
STEPS_QUICK, STEPS_FULL = 600, 1200
#: Independent initial draws per (family, N) at initialisation; draw 0 is the one trained.
REPS_QUICK, REPS_FULL = 3, 12


def init_mlp(family: str, N: int, seed: int, rep: int) -> MLP:
    """The bias-free ReLU MLP [64, N, N, 10] of ``family`` at initialisation (draw ``rep``)."""
    fam = list(FAMILIES).index(family)
    state = np.random.SeedSequence([seed, fam, N, rep]).generate_state(1)[0]
    gen = torch.Generator().manual_seed(int(state))
    dims = (D_IN, N, N, K)
    stds = FAMILIES[family][1](N)
    Ws = tuple(torch.randn(dims[i + 1], dims[i], generator=gen, dtype=torch.float64) * stds[i]
               for i in range(3))
    bs = tuple(torch.zeros(w, dtype=torch.float64) for w in dims[1:])
    return MLP(Ws, bs, activation="relu")


def _scales(mlp: MLP, x: torch.Tensor) -> dict:
    """a(N, s) and L_s‖ψ1(s)‖_2 summarised over s ∈ T (median, max)."""
    N = mlp.widths[TARGET]
    inv = outer_scale_invariants(mlp, x, target=TARGET)
    w1s = (x @ mlp.weights[0].T).norm(dim=1)                 # ‖W1 s‖_2 per s (no activation)
    psi1 = mlp.layer_input(TARGET, x).norm(dim=1)            # ‖ψ1(s)‖_2 per s
    L = lipschitz_L1(mlp, TARGET).values[0]
    f = math.sqrt(math.log(2 * N) / N)
    return {"w3_inf": inv["w3_inf"], "lipschitz_L1": L, "log_factor": f,
            "w1s_lin_median": float(w1s.median()), "w1s_lin_max": inv["w1s_lin_max"],
            "psi1_median": float(psi1.median()), "psi1_max": inv["w1s_max"],
            "a_median": inv["w3_inf"] * float(w1s.median()) * f,
            "a_max": inv["w3_inf"] * inv["w1s_lin_max"] * f,
            "cert_median": L * float(psi1.median()), "cert_max": L * inv["w1s_max"]}


def data_outer_scale(options: FigureOptions) -> pd.DataFrame:
    """One row per (family, N, stage ∈ {init, trained}, draw): scales, Lipschitz constant, accuracy.

    Runs torch single-threaded (restored afterwards): these small float64 matmuls are many times
    slower with competing threads on a loaded 2-core machine.
    """
    with one_thread():
        return _data(options)


def _data(options: FigureOptions) -> pd.DataFrame:
    net = train_digits_mlp(options.seed, True)               # digits split, |T| = 500 in both modes
    x, y = net.x, net.y
    reps = REPS_QUICK if options.quick else REPS_FULL
    train_widths = TRAIN_WIDTHS_QUICK if options.quick else TRAIN_WIDTHS_FULL
    steps = STEPS_QUICK if options.quick else STEPS_FULL
    rows = []

    def row(family, N, stage, rep, mlp, **extra):
        return {"family": family, "N": N, "stage": stage, "rep": rep, **_scales(mlp, x),
                "n_train": len(x), **extra}

    for family in FAMILIES:
        for N in INIT_WIDTHS:
            for rep in range(reps):
                rows.append(row(family, N, "init", rep, init_mlp(family, N, options.seed, rep),
                                steps=0, train_acc=math.nan, test_acc=math.nan, train_ce=math.nan))
        if family not in TRAINED_FAMILIES:
            continue
        for N in train_widths:
            res = train_l2(init_mlp(family, N, options.seed, 0), x, y, lam=TRAIN_LAM, steps=steps,
                           lr=LR, tol=0.0, record_every=steps)
            m = res.mlp
            rows.append(row(family, N, "trained", 0, m, steps=res.steps,
                            train_acc=accuracy(m.forward(x), y),
                            test_acc=accuracy(m.forward(net.x_test), net.y_test),
                            train_ce=mean_ce(m.forward(x), y)))
    return pd.DataFrame(rows)


def _slope(g: pd.DataFrame, col: str) -> float:
    s = g.groupby("N")[col].mean()
    return ols_log10(s.index.to_numpy(), np.log10(s.to_numpy()))[0]


def _scale_panel(ax, df: pd.DataFrame, stage: str, title: str) -> None:
    sub = df[df["stage"] == stage]
    if sub.empty:
        no_data(ax)
        return
    for i, (family, (label, _)) in enumerate(FAMILIES.items()):
        g = sub[sub["family"] == family]
        if g.empty:
            continue
        med = g.groupby("N")["a_median"].mean()
        mx = g.groupby("N")["a_max"].mean()
        ax.plot(med.index, med, marker=MARKERS[i], ms=4, color=COLORS[i],
                label=f"{label}: median over s, slope {_slope(g, 'a_median'):+.2f}")
        ax.plot(mx.index, mx, ls="--", lw=1, color=COLORS[i])
    ax.plot([], [], ls="--", lw=1, color="0.4", label="max over s (dashed)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("hidden width N (log scale)")
    ax.set_ylabel("a(N,s) = ‖W3‖∞→∞‖W1s‖₂√(log 2N / N)\n(logits, log scale)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")


def plot_outer_scale(df: pd.DataFrame):
    """2×2 panels vs N: a(N,s) at init; a(N,s) trained; certified L_s‖ψ1(s)‖_2; test accuracy."""
    fig, axes = new_figure(12, 8.6, nrows=2, ncols=2)
    (a1, a2), (a3, a4) = axes
    reps = int(df.loc[df["stage"] == "init", "rep"].max()) + 1 if (df["stage"] == "init").any() else 0
    _scale_panel(a1, df, "init", f"(a) at initialisation (mean of {reps} draws; slope = OLS log-log)")
    tr = df[df["stage"] == "trained"]
    steps = int(tr["steps"].iloc[0]) if len(tr) else 0
    _scale_panel(a2, df, "trained", f"(b) after {steps} GD steps on L_CE + λΣ‖W‖² (slope = OLS log-log)")

    for i, (family, (label, _)) in enumerate(FAMILIES.items()):
        for stage, ls, fill in (("init", "--", "none"), ("trained", "-", COLORS[i])):
            g = df[(df["family"] == family) & (df["stage"] == stage)]
            if g.empty:
                continue
            c = g.groupby("N")["cert_median"].mean()
            a3.plot(c.index, c, ls=ls, marker=MARKERS[i], ms=4, color=COLORS[i], mfc=fill,
                    label=label if family not in TRAINED_FAMILIES else f"{label}, {stage}")
    Ns = np.array(sorted(df["N"].unique()), dtype=float)
    a3.plot(Ns, np.sqrt(Ns / np.log(2 * Ns)), ls=":", color="0.3", lw=1.5,
            label="√(N / log 2N): where L_s‖ψ1(s)‖₂·√(log 2N / N) = 1")
    a3.set_xscale("log", base=2)
    a3.set_yscale("log")
    a3.set_xlabel("hidden width N (log scale)")
    a3.set_ylabel("L_s‖ψ1(s)‖₂, median over s (logits, log scale)")
    a3.set_title("(c) certified scale: L_s = L1 of ψ2 (proven), ψ1(s) = ReLU(W1 s)", fontsize=9)
    a3.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)

    if tr.empty:
        no_data(a4)
    else:
        for i, family in enumerate(FAMILIES):
            g = tr[tr["family"] == family].sort_values("N")
            if g.empty:
                continue
            a4.plot(g["N"], 100 * g["test_acc"], marker=MARKERS[i], color=COLORS[i],
                    label=f"{FAMILIES[family][0]}: test")
            a4.plot(g["N"], 100 * g["train_acc"], ls="--", marker=MARKERS[i], mfc="none", ms=4,
                    color=COLORS[i], label=f"{FAMILIES[family][0]}: train")
        a4.axhline(100.0 / K, color="0.5", ls=":", label="chance (10 %)")
        a4.set_xscale("log", base=2)
        a4.set_ylim(0, 105)
        a4.set_xlabel("hidden width N (log scale)")
        a4.set_ylabel("accuracy of the trained network (%)")
        a4.set_title("(d) digits accuracy after training", fontsize=9)
        a4.legend(fontsize=7, loc="center right")
    n = int(df["n_train"].iloc[0])
    fig.suptitle("Outer-layer scale of E-Assumption 3.1 for digits ReLU MLPs [64, N, N, 10] "
                 f"(|T| = {n}): a(N,s) → 0 is required", fontsize=10)
    return fig


register(FigureSpec(
    name="outer_scale",
    title="Outer-layer scale a(N,s) vs width (E-Assumption 3.1)",
    description="At initialisation the E-Assumption 3.1 scale a(N,s) = ‖W3‖∞→∞‖W1s‖₂√(log 2N / N) "
                "grows slowly (like √log N) for N(0,1/N) weights, like √(N log N) for fan-in init and "
                "decays like √(log N)/N for N(0,1/N²), but after L2-regularised training both paper "
                "initialisations end at a(N,s) ≈ 20 that still grows slightly with N (‖W3‖∞→∞ grows like "
                "√N while ‖W1s‖₂ stays O(1)), so the assumption a(N,s) → 0 fails for these trained "
                "digits MLPs, and so does the certified scale L_s‖ψ1(s)‖₂ relative to √(N / log 2N), "
                "while test accuracy stays near 95 %.",
    data=data_outer_scale, plot=plot_outer_scale,
    columns=("family", "N", "stage", "rep", "steps", "w3_inf", "lipschitz_L1", "w1s_lin_median",
             "w1s_lin_max", "psi1_median", "psi1_max", "log_factor", "a_median", "a_max",
             "cert_median", "cert_max", "train_acc", "test_acc", "train_ce", "n_train"),
    paper="ESM_2 outer scale", tags=("E-Assumption 3.1", "E-Lemma 3.13", "E-Thm 3.16", "Trap T11"),
))
