r"""The Lipschitz hierarchy L3 ≤ L2 ≤ L1 ≤ L0 over random ReLU MLPs (THEORY §1.6).

THEORY §5.4 ("Lipschitz hierarchy: histograms of L3/L2, L2/L1, L1/L0 over random MLPs (all
≤ 1)"); no paper counterpart. For a random ReLU MLP, target layer k, a random magnitude split
W_k = S + R and random inputs, certkit computes the four rigorous constants of ψ2 along the
segment A_θ = S + θR:

* L0 = Π_{j>k} ‖W_j‖_{∞→∞} (the paper's data-free choice, E-§3),
* L1 = ‖|W_L|⋯|W_{k+1}|‖_{∞→∞},
* L2 = interval-bound propagation over the segment (per sample),
* L3 = the exact local constant L_s* from the affine pieces of θ ↦ ψ2(A_θ v_s) (per sample),

and the figure histograms the ratios L1/L0, L2/L1, L3/L2 (log scale) and L3/L0. Every ratio is
≤ 1 (the hierarchy), and the mass far below 1 shows how much certified budget the tighter
constants save: the η_s = L_s‖Rv_s‖_∞ of M-Cor 5.2 shrinks by the same factor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from certkit.lipschitz import lipschitz_L0, lipschitz_L1, lipschitz_L2, lipschitz_L3
from certkit.mlp import MLP

from .._plot import COLORS, new_figure
from ..registry import FigureOptions, FigureSpec, register

__all__ = ["data_lipschitz_hierarchy", "plot_lipschitz_hierarchy"]

#: Random networks drawn, samples per network, widths and depths of the draws.
NETS_QUICK, NETS_FULL = 24, 300
SAMPLES_QUICK, SAMPLES_FULL = 6, 16
WIDTHS = (8, 16, 32)
DEPTHS = (2, 3, 4)
#: Fraction of the target layer's entries (the smallest magnitudes) that form R.
REMOVED_FRACTION = 0.5
RATIOS = {"L1/L0": ("L1", "L0"), "L2/L1": ("L2", "L1"), "L3/L2": ("L3", "L2"), "L3/L0": ("L3", "L0")}


def _random_problem(rng: np.random.Generator, n_samples: int):
    depth = int(rng.choice(DEPTHS))
    widths = [int(rng.choice(WIDTHS)) for _ in range(depth)] + [int(rng.integers(2, 6))]
    Ws = [torch.from_numpy(rng.standard_normal((widths[i + 1], widths[i])) / np.sqrt(widths[i]))
          for i in range(depth)]
    bs = [torch.from_numpy(0.1 * rng.standard_normal(widths[i + 1])) for i in range(depth)]
    mlp = MLP(tuple(Ws), tuple(bs), activation="relu")
    k = int(rng.integers(0, depth - 1))
    W = Ws[k]
    cut = torch.quantile(W.abs().flatten(), REMOVED_FRACTION)
    R = torch.where(W.abs() <= cut, W, torch.zeros_like(W))
    x = torch.from_numpy(rng.standard_normal((n_samples, widths[0])))
    return mlp, k, W - R, R, x


def data_lipschitz_hierarchy(options: FigureOptions) -> pd.DataFrame:
    """One row per (network, sample): L0, L1 (shared), L2, L3 (per sample) and their ratios."""
    n_nets = NETS_QUICK if options.quick else NETS_FULL
    n_samples = SAMPLES_QUICK if options.quick else SAMPLES_FULL
    rng = np.random.default_rng(options.seed)
    rows = []
    for net in range(n_nets):
        mlp, k, S, R, x = _random_problem(rng, n_samples)
        L0 = lipschitz_L0(mlp, k).values[0]
        L1 = lipschitz_L1(mlp, k).values[0]
        L2 = lipschitz_L2(mlp, k, S, R, x).values
        L3 = lipschitz_L3(mlp, k, S, R, x).values
        for s in range(n_samples):
            row = {"network": net, "sample": s, "depth": mlp.depth, "target_layer": k,
                   "L0": L0, "L1": L1, "L2": L2[s], "L3": L3[s]}
            for name, (a, b) in RATIOS.items():
                row[name] = row[a] / row[b] if row[b] > 0 else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def plot_lipschitz_hierarchy(df: pd.DataFrame):
    """Histograms of the four ratios on a common log axis, with the hierarchy's bound 1 marked."""
    fig, axes = new_figure(11, 3.6, ncols=len(RATIOS), squeeze=False)
    positive = df[list(RATIOS)].to_numpy(dtype=float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    lo = max(min(positive.min(), 0.5), 1e-6) if positive.size else 1e-3
    bins = np.geomspace(lo * 0.9, 1.1, 30)
    for ax, color, name in zip(axes[0], COLORS, RATIOS, strict=False):
        v = df[name].to_numpy(dtype=float)
        zeros = int(np.sum(v == 0))
        v = v[np.isfinite(v) & (v > 0)]
        ax.hist(v, bins=bins, color=color, alpha=0.85)
        ax.axvline(1.0, ls="--", color="0.2", lw=1.1, label="hierarchy bound 1")
        ax.set_xscale("log")
        ax.set_xlabel(f"{name} (dimensionless, log scale)")
        ax.set_ylabel("count of (network, sample)")
        above = int(np.sum(v > 1 + 1e-9))
        median = f"{np.median(v):.2g}" if v.size else "n/a"
        extra = f"; {zeros} exact zeros" if zeros else ""
        ax.set_title(f"{name}: median {median}, > 1: {above}{extra}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    n = df["network"].nunique()
    fig.suptitle(f"Certified Lipschitz constants of ψ2: L3 ≤ L2 ≤ L1 ≤ L0 on {n} random ReLU MLPs "
                 f"({len(df)} samples)", fontsize=10)
    return fig


register(FigureSpec(
    name="lipschitz_hierarchy",
    title="Lipschitz hierarchy L3 ≤ L2 ≤ L1 ≤ L0 (THEORY §1.6)",
    description="Histograms of the ratios of certkit's four certified Lipschitz constants over random "
                "ReLU MLPs: every ratio is at most 1, and the exact local constant L3 is typically orders "
                "of magnitude below the paper's data-free L0, shrinking every certified budget accordingly.",
    data=data_lipschitz_hierarchy, plot=plot_lipschitz_hierarchy,
    columns=("network", "sample", "L0", "L1", "L2", "L3", "L1/L0", "L2/L1", "L3/L2", "L3/L0"),
    paper="THEORY §5.4", tags=("lipschitz",),
))
