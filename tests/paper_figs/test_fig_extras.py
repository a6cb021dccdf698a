"""THEORY §5.4 extra figures: the Lipschitz hierarchy and E-Thm 3.20 thresholding rates."""

from __future__ import annotations

import numpy as np
import pandas as pd

from paper_figs.figures.lipschitz_hierarchy import RATIOS, data_lipschitz_hierarchy
from paper_figs.figures.thresholding_rates import data_thresholding_rates

from ._helpers import QUICK, make_and_check


def test_lipschitz_hierarchy_figure_and_ordering(tmp_path):
    df = make_and_check("lipschitz_hierarchy", tmp_path)
    for name in RATIOS:
        v = df[name].to_numpy(dtype=float)
        assert np.all(v[np.isfinite(v)] <= 1.0 + 1e-9), name
    # the hierarchy is not trivially tight: L3 saves a lot somewhere (the figure's message)
    assert df["L3/L0"].median() < 0.5
    assert (df["L0"] > 0).all()


def test_lipschitz_hierarchy_is_deterministic():
    pd.testing.assert_frame_equal(data_lipschitz_hierarchy(QUICK), data_lipschitz_hierarchy(QUICK))


def test_thresholding_rates_figure_and_theorem(tmp_path):
    df = make_and_check("thresholding_rates", tmp_path)
    asserted = df[df["theorem_applies"]]
    assert len(asserted) >= 3
    # E-Thm 3.20: failure probability ≤ δ is not rejected at 95 % (CP lower bound ≤ δ)
    assert (asserted["cp_lo"] <= asserted["delta"]).all()
    # below the threshold the guarantee is lost: the same check rejects there
    low = df[(df["threshold_factor"] == df["threshold_factor"].min())
             & (df["event"] == "no_false_positive")]
    assert (low["cp_lo"] > low["delta"]).all()
    # straddling magnitudes are never recovered exactly (beta-min fails)
    strad = df[(df["law"] == "straddle") & (df["event"] == "exact_recovery")]
    assert (strad["failure_rate"] > 0.9).all()


def test_thresholding_rates_depend_on_seed_only():
    a = data_thresholding_rates(QUICK)
    pd.testing.assert_frame_equal(a, data_thresholding_rates(QUICK))


def test_certificate_margin_figure_and_theorem(tmp_path):
    df = make_and_check("certificate_margin", tmp_path)
    m = df[df["panel"] == "margin"]
    # M-Thm 5.4 at θ = 0: CM ≤ observed decrease J(A) − J(S), for every s, λ and constant
    assert m["bound_holds"].all() and m["certified"].all()
    assert (m["margin"] <= m["observed_decrease"] + 1e-9).all()
    # L3 ≤ L1 ⇒ the L3 margin is at least the L1 margin
    piv = m.pivot_table(index=["x", "lam1", "lam2"], columns="lipschitz", values="margin")
    assert (piv["L3"] >= piv["L1"] - 1e-9).all()
    # the figure shows certification both gained and lost somewhere on the grid
    l3 = m[m["lipschitz"] == "L3"]
    assert (l3["margin"] > 0).any() and (l3["margin"] < 0).any()
    r = df[df["panel"] == "restore"]
    assert (r.loc[r["x"] == 0, "margin"] == 0).all()


def test_certificate_margin_catches_an_undersized_lipschitz_constant(monkeypatch):
    """With L_s scaled down 1e4× the M-Thm 5.4 check must fail somewhere (the test can fail)."""
    from certkit.budget import compute_budget
    from paper_figs.figures import certificate_margin as cm

    def small(mlp, S, R, x, V, method):
        return compute_budget(R, V, 1e-4 * cm.lipschitz_L1(mlp, cm.TARGET).values[0])

    monkeypatch.setattr(cm, "_budget", small)
    df = cm.data_certificate_margin(QUICK)
    m = df[df["panel"] == "margin"]
    assert not m["bound_holds"].all()
    assert not m["certified"].any()


def test_noise_injection_figure_orders_observed_certified_and_probabilistic(tmp_path):
    df = make_and_check("noise_injection", tmp_path)
    noisy = df[df["sigma"] > 0]
    # deterministic: telescoped M-Lemma 5.1 with certified L1 constants, every draw
    assert (noisy["delta_ce"] <= noisy["sum_budgets"] * (1 + 1e-9) + 1e-12).all()
    # E-Cor 1.5 holds w.p. ≥ 0.95 per draw; with these sizes it holds in every draw by a wide margin
    assert (noisy["sum_budgets"] <= noisy["gaussian_rhs"]).mean() >= 0.9
    clean = df[df["sigma"] == 0]
    assert (clean["delta_ce"] == 0).all() and (clean["sum_budgets"] == 0).all()
    # the L2 increase tracks its expectation at the largest σ (relative error < 25 %)
    top = noisy[noisy["sigma"] == noisy["sigma"].max()]
    assert abs(top["l2_increase"].mean() / top["l2_expected"].mean() - 1) < 0.25
