"""Monte Carlo figures: budget coverage / tightness, L2 collapse (training, width), BBP recovery.

Each figure is made once in quick mode (module-scoped fixture: PNG/PDF/CSV checked and the
figure re-drawn from its CSV); the content tests then read the CSV table. Determinism is
checked on the cheap figures by calling the data function again and comparing with the CSV.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from certkit.rmt import bbp_outlier
from paper_figs.registry import get_figure
from tests.paper_figs._helpers import QUICK, make_and_check

NAMES = ("mc_budget_coverage", "mc_budget_tightness", "l2_collapse_training",
         "l2_collapse_width", "bbp_recovery")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("fig_mc")
    return {name: make_and_check(name, out) for name in NAMES}


def _q(df: pd.DataFrame, quantity: str, key: str = "step") -> pd.DataFrame:
    return df[df["quantity"] == quantity].sort_values(key).reset_index(drop=True)


@pytest.mark.parametrize("name", NAMES)
def test_made_and_registered(made, name):
    spec = get_figure(name)
    df = made[name]
    assert set(spec.columns) <= set(df.columns)
    assert spec.title and spec.description.endswith(".") and ". " not in spec.description


@pytest.mark.parametrize("name", ("mc_budget_tightness", "l2_collapse_width", "bbp_recovery"))
def test_deterministic(made, name):
    again = get_figure(name).data(QUICK)
    pd.testing.assert_frame_equal(made[name].reset_index(drop=True), again.reset_index(drop=True),
                                  check_dtype=False, check_exact=False, rtol=1e-12, atol=0.0)


# ----------------------------------------------------------------------------- budget
def test_coverage_not_significantly_above_delta(made):
    df = made["mc_budget_coverage"]
    cert = df[df["certified"].astype(bool)]
    assert set(cert["series"]) == {"gaussian", "rademacher", "uniform"}
    # the proven bounds: failure probability not significantly above δ (CP lower end ≤ δ),
    # and in fact the observed rate sits below δ (union bounds are conservative)
    assert (cert["cp_lo"] <= cert["delta"]).all(), cert
    assert (cert["rate"] < cert["delta"]).all(), cert
    # |T| = 1: "B_T > bound" is exactly the theorem's core event
    assert (df["failures"] == df["core_event_failures"]).all()
    # M-Cor 5.11 with the nominal edge is M-Cor 5.10 (THEORY §2.3.2 [D])
    gauss = cert[cert["series"] == "gaussian"]
    assert (gauss["max_rewrite_rel_err"] <= 1e-12).all()
    # non-trivial: failures are observed at the largest δ, and the rate grows with δ
    top = gauss.sort_values("delta")
    assert top["failures"].iloc[-1] > 0
    assert top["rate"].iloc[-1] > top["rate"].iloc[0]
    cp = (df["cp_lo"] <= df["rate"]) & (df["rate"] <= df["cp_hi"])
    assert cp.all()


def test_tightness_ratio_below_one_and_tightening(made):
    df = made["mc_budget_tightness"]
    assert (df["failures"] == 0).all()
    assert (df["ratio_max"] <= 1.0).all() and (df["ratio_min"] > 0).all()
    for _, sub in df.groupby("law"):
        med = sub.sort_values("n")["q50"].to_numpy()
        assert np.all(np.diff(med) > 0), med    # the bound tightens (slowly) as n grows
        assert med[-1] < 0.9                     # ... but stays loose
    q = df[["ratio_min", "q05", "q25", "q50", "q75", "q95", "ratio_max"]].to_numpy()
    assert np.all(np.diff(q, axis=1) >= 0)


# ----------------------------------------------------------------------------- L2 collapse
def test_training_collapses_bulk_keeps_spikes(made):
    df = made["l2_collapse_training"]
    r_part, r_op = _q(df, "r_part")["median"], _q(df, "r_op")["median"]
    assert r_part.iloc[-1] < 0.1 * r_part.iloc[0]
    assert r_op.iloc[-1] < 0.01 * r_op.iloc[0]
    # [D] THEORY §2.4.4: tail energy ≤ (‖∇L‖/2λ)² in every seed at every recorded step
    assert (_q(df, "tail_ok")["min"] == 1.0).all()
    assert (_q(df, "tail_energy")["max"] <= _q(df, "tail_bound")["max"] * (1 + 1e-9)).all()
    # spikes: they end up equal to the signal part and stand far above the remaining bulk
    for i in (1, 2):
        gap = _q(df, f"gap{i}")["median"]
        assert gap.iloc[-1] < 0.05 and gap.iloc[-1] < 0.2 * gap.iloc[0]
        assert _q(df, f"s{i}")["median"].iloc[-1] > 10 * r_op.iloc[-1]


def test_width_end_of_training(made):
    df = made["l2_collapse_width"]
    start, end = _q(df, "r_part_t0", "N"), _q(df, "r_part", "N")
    assert (end["median"] < 0.05 * start["median"]).all()
    # at initialisation ‖W − P₂W‖_F ≈ ‖R₀‖_F ≈ √(gN): log–log slope ≈ 1/2
    slope = np.polyfit(np.log(start["N"]), np.log(start["median"]), 1)[0]
    assert 0.4 < slope < 0.6, slope
    # after training the bulk does not grow with N (experiment's check: it decreases)
    assert end["median"].iloc[-1] < end["median"].iloc[0]
    assert (_q(df, "sigma_plus_fit", "N")["median"] < 0.05).all()


# ----------------------------------------------------------------------------- BBP
def test_bbp_s1_follows_theory(made):
    df = made["bbp_recovery"]
    sim = df[(df["panel"] == "s1_vs_sigma") & (df["series"] == "simulated")]
    g = float(sim["g"].iloc[0])
    sig, s1 = sim["x"].to_numpy(), sim["y"].to_numpy()
    pred = bbp_outlier(sig, noise_variance=g)
    above = sig >= 2.0 * math.sqrt(g)
    assert above.sum() >= 3
    assert np.all(np.abs(s1[above] - pred[above]) / pred[above] < 0.05)
    below = sig < math.sqrt(g)
    edge = 2.0 * math.sqrt(g)
    assert below.sum() >= 2
    assert np.all(np.abs(s1[below] - edge) / edge < 0.05)
    # below the threshold s₁ sticks to the edge, not to σ + g/σ (THEORY §3.5)
    assert np.all(np.abs(s1[below] - edge) < np.abs(s1[below] - (sig[below] + g / sig[below])))
    est = df[(df["panel"] == "estimate_vs_sigma") & (df["series"] == "simulated")]
    big = est[est["x"] >= 2.0 * math.sqrt(g)]
    assert (np.abs(big["y"] - big["x"]) / big["x"] < 0.05).all()


def test_inverse_bbp_error_shrinks_with_n(made):
    df = made["bbp_recovery"]
    err = df[df["panel"] == "error_vs_N"]
    per_n = err.groupby("x")["y"].mean().sort_index()
    assert len(per_n) >= 3
    assert per_n.iloc[-1] < 0.5 * per_n.iloc[0], per_n
