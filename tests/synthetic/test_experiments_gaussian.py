"""Quick run of the Gaussian three-layer experiment (E-Lemma 3.13 – E-Cor 3.19, THEORY §2.5).

The tidy table is built in-process as the runner does: one row per (config, seed) with the
config keys as ``cfg_<key>`` columns.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from certkit.bounds import gaussian_threshold
from certkit.classification import mean_ce, true_margins
from certkit.mlp import MLP
from synthetic.experiments import gaussian_three_layer as g3
from synthetic.registry import get_experiment, list_experiments

torch.set_num_threads(1)


def _table(configs, trials: int) -> pd.DataFrame:
    rows = [{**{f"cfg_{k}": v for k, v in cfg.items()}, "seed": s, **g3.trial(cfg, s)}
            for cfg in configs for s in range(trials)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def quick():
    df = _table(g3.grid(True), g3.n_trials(True))
    summary = g3.summarize(df)
    return df, summary, g3.check(summary)


def test_registered_and_grid_contract():
    assert g3.NAME in list_experiments()
    exp = get_experiment(g3.NAME)
    assert exp.trial is g3.trial and "E-Lemma 3.13" in exp.results
    assert exp.n_trials(True) < exp.n_trials(False) == 5000
    qg, fg = exp.grid(True), exp.grid(False)
    assert len(qg) < len(fg)
    assert sorted({c["N"] for c in fg}) == [16, 64, 256, 1024]
    assert sorted({c["N"] for c in qg}) == [16, 64, 128]
    for cfg in qg + fg:
        assert set(cfg) == set(g3.CONFIG_DEFAULTS)
        json.dumps(cfg)
        assert cfg["g"] <= 1 and cfg["activation"] in ("abs", "relu")


def test_quick_conclusion_passes(quick):
    df, summary, conclusion = quick
    assert conclusion.passed, "\n".join(conclusion.messages)
    assert len(summary) == len(g3.grid(True))
    assert (summary["d_step_violations"] == 0).all()
    assert (summary["d_implication_violations"] == 0).all()
    assert (summary["max_consistency_err"] <= g3.CONSISTENCY_RTOL).all()
    for claim, _, _ in g3.CLAIMS:
        assert not summary[f"{claim}_rejected"].any(), claim
    # Trap T11 scaling: ‖W3‖_∞→∞ = 1 and ‖W1 s‖_2 = O(1) for every N.
    np.testing.assert_allclose(summary["w3_inf"], 1.0, rtol=1e-12)
    assert (summary["w1s_max"] < 3).all()
    # The planted structure makes E-Cor 3.14 informative somewhere (margins > 2τ_N).
    planted = summary[summary["cfg_structure"] == "planted"]
    assert (planted["cor314_vacuous_frac"] < 1).any()
    assert any("E-Lemma 3.13" in m and "not rejected" in m for m in conclusion.messages)


def test_rows_are_finite_json_scalars(quick):
    row = g3.trial(g3.grid(True)[-1], 3)
    for k, v in row.items():
        assert type(v) in (bool, int, float), (k, type(v))
        assert not isinstance(v, float) or math.isfinite(v), k
    json.dumps(row)


def test_deterministic():
    for cfg in g3.grid(True)[:2] + g3.grid(True)[-2:]:
        a, b = g3.trial(cfg, 11), g3.trial(dict(cfg), 11)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        assert a != g3.trial(cfg, 12)
    cfgs = g3.grid(True)[:3]
    pd.testing.assert_frame_equal(g3.summarize(_table(cfgs, 20)), g3.summarize(_table(cfgs, 20)))


def test_negative_control_scaled_tau_fails():
    """τ shrunk ×0.05 while the claimed probabilities stay: the check must FAIL."""
    bad = g3.validate_config({"N": 64, "activation": "abs", "structure": "planted",
                              "tau_factor": 0.05})
    summary = g3.summarize(_table([bad], 100))
    conclusion = g3.check(summary)
    assert not conclusion.passed
    assert summary["lemma313_rejected"].all() and summary["thm316i_rejected"].all()
    assert any("E-Lemma 3.13" in m and "REJECTED" in m for m in conclusion.messages)
    # The [D] halves stay consistent under a scaled τ: the failure is probabilistic.
    assert int(summary["d_step_violations"].sum()) == 0
    assert int(summary["d_implication_violations"].sum()) == 0
    good = {**bad, "tau_factor": 1.0}
    assert g3.check(g3.summarize(_table([good], 100))).passed


def test_check_fails_on_deterministic_violation(quick):
    _, summary, _ = quick
    for col, val in (("d_step_violations", 1), ("d_implication_violations", 2),
                     ("max_consistency_err", 1e-9)):
        fake = summary.copy()
        fake.loc[fake.index[0], col] = val
        assert not g3.check(fake).passed, col
    assert not g3.check(summary.iloc[:0]).passed


@pytest.mark.parametrize("structure, activation", [("haar", "relu"), ("planted", "abs")])
def test_forward_and_losses_match_certkit(structure, activation):
    cfg = g3.validate_config({"N": 32, "structure": structure, "activation": activation})
    st = g3.setup(cfg)
    R = np.random.default_rng(0).standard_normal((32, 32)) * math.sqrt(1.0 / 32)
    mlp = MLP(tuple(torch.from_numpy(W) for W in (st.W1, st.S2 + R, st.W3)),
              tuple(torch.zeros(w) for w in (32, 32, cfg["K"])), activation, True)
    X = g3.logits(st, st.uS + st.psi1 @ R.T, activation)
    np.testing.assert_allclose(X, mlp(torch.from_numpy(st.x)).numpy(), rtol=1e-12, atol=1e-14)
    y = st.y
    np.testing.assert_allclose(g3._ce(X, y), mean_ce(torch.from_numpy(X), torch.from_numpy(y)),
                               rtol=1e-12)
    np.testing.assert_allclose(g3._margins(X, y), true_margins(torch.from_numpy(X),
                                                               torch.from_numpy(y)).numpy())


def test_tau_formulas_and_consistency():
    cfg = g3.validate_config({"N": 256, "g": 0.25, "T": 5, "delta": 0.02})
    st = g3.setup(cfg)
    w1s = np.linalg.norm(st.x @ st.W1.T, axis=1)
    a = st.w3_inf * w1s * math.sqrt(math.log(512) / 256)
    np.testing.assert_allclose(st.a, a, rtol=1e-14)
    np.testing.assert_allclose(st.tau_N, 2 * math.sqrt(2) * a, rtol=1e-14)
    ref = st.w3_inf * w1s[:5] * gaussian_threshold(256, 0.25, 0.02, 5)
    np.testing.assert_allclose(st.tau_Nd, ref, rtol=1e-12)
    assert st.consistency_err <= 1e-12
    # E-Lemma 3.15's (4√2/|T|)Σ a is what the trial reports.
    row = g3.trial(cfg, 0)
    assert row["lemma315_bound"] == pytest.approx(4 * math.sqrt(2) * a[:5].mean(), rel=1e-12)
    eta = np.linalg.norm(st.S2) * math.sqrt(2 * 0.25 * math.log(2 / cfg["eta_delta"]) / 256)
    assert row["eta"] == pytest.approx(eta, rel=1e-12)


def test_rv_shortcut_matches_full_sampler_in_law():
    """The R·A shortcut (with the χ² complement of ‖R2‖_F²) and explicit R2 agree in law."""
    base = {"N": 16, "structure": "planted", "g": 0.25}
    rv = _table([g3.validate_config(base)], 400)
    full = _table([g3.validate_config({**base, "sampler": "full"})], 400)
    for col in ("r_fro2", "cross_term", "lemma313_ratio_max", "ce_change"):
        assert stats.ks_2samp(rv[col], full[col]).pvalue > 1e-3, col
    assert rv["r_fro2"].mean() == pytest.approx(0.25 * 16, rel=0.02)   # E‖R2‖_F² = gN
    assert int(full["d_step_violations"].sum()) == 0


@pytest.mark.parametrize("config, match", [
    ({"g": 2.0}, "'g'"),
    ({"g": 0.0}, "'g'"),
    ({"N": 1}, "'N'"),
    ({"N": 16.0}, "'N'"),
    ({"activation": "tanh"}, "relu"),
    ({"structure": "spiked"}, "planted"),
    ({"sampler": "qr"}, "full"),
    ({"delta": 0.0}, "'delta'"),
    ({"eta_delta": 1.0}, "'eta_delta'"),
    ({"tau_factor": 0}, "'tau_factor'"),
    ({"rank": 20, "N": 16}, "rank"),
    ({"structure": "planted", "N": 2, "K": 3}, "K <= N"),
    ({"K": 1}, "'K'"),
    ({"bogus": 1}, "valid keys"),
])
def test_bad_config_raises(config, match):
    with pytest.raises(ValueError, match=match):
        g3.trial(config, 0)


def test_bad_seed_raises():
    with pytest.raises(ValueError, match="seed"):
        g3.trial(g3.grid(True)[0], -1)


@pytest.mark.slow
def test_full_grid_conclusion():
    """Full grid, 5 000 trials per cell (about 85 s on one core; CERTKIT_SLOW=1)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        summary = g3.summarize(_table(g3.grid(False), g3.n_trials(False)))
    conclusion = g3.check(summary)
    assert conclusion.passed, "\n".join(conclusion.messages)
