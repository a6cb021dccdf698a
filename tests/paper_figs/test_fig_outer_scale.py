"""The ``outer_scale`` figure (THEORY §5.2 outer-layer scaling, E-Assumption 3.1, Trap T11).

The figure is made once in quick mode (module-scoped fixture); content tests read its CSV.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from paper_figs._plot import ols_log10
from paper_figs._threads import one_thread
from paper_figs.figures._digits_mlp import LR, TRAIN_LAM, train_digits_mlp
from paper_figs.figures.outer_scale import STEPS_QUICK, data_outer_scale, init_mlp
from paper_figs.registry import get_figure
from synthetic.networks import train_l2
from tests.paper_figs._helpers import QUICK, make_and_check


@pytest.fixture(scope="module")
def df(tmp_path_factory) -> pd.DataFrame:
    return make_and_check("outer_scale", tmp_path_factory.mktemp("fig_outer_scale"))


def _a_explicit(mlp, x: torch.Tensor) -> tuple[float, float]:
    """(max_s a(N,s), max_s L_s‖ψ1(s)‖_2) straight from the weights (L_s = ‖W3‖_{∞→∞} here)."""
    W1, _, W3 = mlp.weights
    N = W1.shape[0]
    w3 = float(W3.abs().sum(dim=1).max())
    lin = (x @ W1.T).norm(dim=1)
    psi = torch.relu(x @ W1.T).norm(dim=1)
    return w3 * float(lin.max()) * math.sqrt(math.log(2 * N) / N), w3 * float(psi.max())


def _init_slope(df: pd.DataFrame, family: str, col: str = "a_median") -> float:
    g = df[(df["stage"] == "init") & (df["family"] == family)].groupby("N")[col].mean()
    return ols_log10(g.index.to_numpy(), np.log10(g.to_numpy()))[0]


def test_registered(df):
    spec = get_figure("outer_scale")
    assert spec.paper == "ESM_2 outer scale"
    assert spec.description.endswith(".") and ". " not in spec.description
    assert set(df["stage"]) == {"init", "trained"}


def test_init_scaling_follows_theory(df):
    """THEORY E-Assumption 3.1 scaling check: √log N, √(N log N) and √(log N)/N growth at init."""
    assert 0.0 < _init_slope(df, "1/N") < 0.15
    assert 0.4 < _init_slope(df, "fan-in") < 0.7
    assert _init_slope(df, "1/N^2") < -0.8
    # ‖W3‖_{∞→∞} ≈ sqrt(2N/π) under N(0, 1/N) (max over 10 rows: slightly above)
    g = df[(df["stage"] == "init") & (df["family"] == "1/N")].groupby("N")["w3_inf"].mean()
    ratio = g / np.sqrt(2 * g.index.to_numpy() / np.pi)
    assert ((ratio > 0.95) & (ratio < 1.35)).all(), ratio


def test_stored_quantities_are_consistent(df):
    f = np.sqrt(np.log(2 * df["N"]) / df["N"])
    np.testing.assert_allclose(df["log_factor"], f, rtol=1e-12)
    np.testing.assert_allclose(df["a_max"], df["w3_inf"] * df["w1s_lin_max"] * f, rtol=1e-12)
    np.testing.assert_allclose(df["a_median"], df["w3_inf"] * df["w1s_lin_median"] * f, rtol=1e-12)
    # one downstream matrix: L1 = L0 = ‖W3‖_{∞→∞}
    np.testing.assert_allclose(df["lipschitz_L1"], df["w3_inf"], rtol=1e-12)
    # E-Assumption 3.1: L_s‖ψ1(s)‖_2 ≤ ‖W3‖_{∞→∞}‖W1 s‖_2 (ReLU shrinks the norm)
    assert (df["cert_max"] <= df["w3_inf"] * df["w1s_lin_max"] * (1 + 1e-12)).all()
    assert (df["psi1_median"] <= df["w1s_lin_median"] * (1 + 1e-12)).all()
    # training worked (the accuracy panel is meaningful)
    tr = df[df["stage"] == "trained"]
    assert (tr["test_acc"] > 0.85).all() and tr["steps"].eq(STEPS_QUICK).all()


def test_rows_match_the_networks_recomputed(df):
    x = train_digits_mlp(QUICK.seed, True).x
    row = df[(df["stage"] == "init") & (df["family"] == "1/N") & (df["N"] == 64) & (df["rep"] == 1)]
    a, cert = _a_explicit(init_mlp("1/N", 64, QUICK.seed, 1), x)
    assert row["a_max"].item() == pytest.approx(a, rel=1e-12)
    assert row["cert_max"].item() == pytest.approx(cert, rel=1e-12)
    with one_thread():
        trained = train_l2(init_mlp("1/N^2", 32, QUICK.seed, 0), x, train_digits_mlp(QUICK.seed, True).y,
                           lam=TRAIN_LAM, steps=STEPS_QUICK, lr=LR, tol=0.0, record_every=STEPS_QUICK).mlp
    row = df[(df["stage"] == "trained") & (df["family"] == "1/N^2") & (df["N"] == 32)]
    a, cert = _a_explicit(trained, x)
    assert row["a_max"].item() == pytest.approx(a, rel=1e-9)
    assert row["cert_max"].item() == pytest.approx(cert, rel=1e-9)


def test_deterministic(df):
    pd.testing.assert_frame_equal(data_outer_scale(QUICK), df, check_exact=False, rtol=1e-12)
