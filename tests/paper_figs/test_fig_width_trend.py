"""The computed M-Fig 2 analog: accuracy change after pruning vs MLP width (``width_trend``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from certkit.masks import n_prune_for_sparsity
from paper_figs.figures.width_trend import METHODS, data_width_trend, prune_hidden, train_width_mlp

from ._helpers import QUICK, make_and_check


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> pd.DataFrame:
    return make_and_check("width_trend", tmp_path_factory.mktemp("width_trend"))


def test_width_trend_figure_and_counts(made):
    pts = made[made["kind"] == "point"]
    widest = pts[pts["width"] == pts["width"].max()]
    assert (widest["dense_test_acc"] > 0.85).all()
    # exact layerwise counts: round(s·numel) removed from W1 (N×64) and from W2 (N×N)
    for _, r in pts.iterrows():
        n = int(r["width"])
        assert r["removed_w1"] == n_prune_for_sparsity(r["sparsity"], 64 * n)
        assert r["removed_w2"] == n_prune_for_sparsity(r["sparsity"], n * n)
    assert set(pts["method"]) == set(METHODS)
    fits = made[made["kind"] == "fit"]
    assert len(fits) == len(METHODS) * pts["sparsity"].nunique()


def test_width_trend_budget_is_a_certified_bound(made):
    """M-Lemma 5.1 telescoped: |ΔL_CE on T| ≤ Σ_j B_T(R_j) with the certified L1 constants."""
    pts = made[made["kind"] == "point"]
    assert pts["budget_certified"].astype(bool).all()
    assert (pts["delta_ce_train"] <= pts["sum_budget"] + 1e-9).all()
    assert (pts["delta_ce_train"] > 0).all()


def test_width_trend_content(made):
    mag = made[(made["kind"] == "point") & (made["method"] == "magnitude")]
    mean = mag.groupby(["sparsity", "width"])["delta_pp"].mean().unstack("width")
    # more pruning hurts more, for every width (on average over seeds)
    assert (mean.loc[0.7] <= mean.loc[0.5] + 1e-9).all()
    assert (mean.loc[0.9] <= mean.loc[0.7] + 1e-9).all()
    # the figure's message: at high sparsity the wider nets lose less (positive OLS slope)
    fits = made[(made["kind"] == "fit") & (made["method"] == "magnitude")].set_index("sparsity")
    assert fits.loc[0.9, "slope_pp_per_decade"] > 5.0
    assert mean.loc[0.9].iloc[-1] > mean.loc[0.9].iloc[0]
    # the MP-guided RMT mask (no fine-tuning) loses more than magnitude, averaged over s, at every N
    pts = made[made["kind"] == "point"]
    by = pts.groupby(["method", "width"])["delta_pp"].mean().unstack("method")
    assert (by["rmt"] < by["magnitude"]).all()


@pytest.mark.parametrize("method", list(METHODS))
def test_prune_hidden_at_zero_sparsity_changes_nothing(method):
    net = train_width_mlp(16, 0, True)
    pruned, keeps, fallback = prune_hidden(net.mlp, method, 0.0)
    for a, b in zip(pruned.weights, net.mlp.weights, strict=True):
        assert torch.equal(a, b)
    assert all(bool(k.all()) for k in keeps.values())
    assert net.acc(pruned, test=True) == net.acc(test=True)
    pruned, keeps, _ = prune_hidden(net.mlp, method, 0.5)
    assert torch.equal(pruned.weights[2], net.mlp.weights[2])          # the head stays dense
    for j, k in keeps.items():
        assert int((~k).sum()) == n_prune_for_sparsity(0.5, k.numel())
        assert bool((pruned.weights[j][~k] == 0).all())
    with pytest.raises(ValueError):
        prune_hidden(net.mlp, "nope", 0.5)


def test_width_trend_is_deterministic():
    a = data_width_trend(QUICK)
    pd.testing.assert_frame_equal(a, data_width_trend(QUICK))
    assert np.isfinite(a.loc[a["kind"] == "point", "delta_pp"]).all()
