"""Quick versions of the budget-coverage, MP-law and thresholding experiments (issue 3).

The experiments are called directly through the registry contract (grid → trial → summarize →
check); :func:`run_direct` builds the same tidy table as the runner (``cfg_<key>`` columns, a
``seed`` column and the trial's own columns).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from certkit.bounds import gaussian_budget_bound, thresholding_level
from certkit.mc import sample_rv
from synthetic.experiments import budget_coverage, mp_law, thresholding
from synthetic.registry import get_experiment, list_experiments

EXPERIMENTS = ("budget_coverage", "mp_law", "thresholding")


def run_direct(name: str, *, quick: bool = True, configs=None, trials: int | None = None):
    """(trials table, summary, conclusion) of an experiment, run in-process."""
    exp = get_experiment(name)
    configs = exp.grid(quick) if configs is None else configs
    n = exp.n_trials(quick) if trials is None else trials
    rows = [{**{f"cfg_{k}": v for k, v in cfg.items()}, "seed": s, **exp.trial(cfg, s)}
            for cfg in configs for s in range(n)]
    df = pd.DataFrame(rows)
    summary = exp.summarize(df)
    return df, summary, exp.check(summary)


@pytest.fixture(scope="module")
def quick_results():
    return {name: run_direct(name) for name in EXPERIMENTS}


def test_registered():
    names = list_experiments()
    for name in EXPERIMENTS:
        assert name in names
        exp = get_experiment(name)
        assert exp.n_trials(True) < exp.n_trials(False)
        assert len(exp.grid(True)) < len(exp.grid(False))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_quick_conclusion_passes(quick_results, name):
    _, summary, conclusion = quick_results[name]
    assert conclusion.passed, "\n".join(conclusion.messages)
    assert conclusion.messages
    assert len(summary) == len(get_experiment(name).grid(True))


def test_budget_coverage_summary(quick_results):
    df, summary, _ = quick_results["budget_coverage"]
    assert not summary["rejected"].any()
    # Union bounds are conservative: observed failure rates sit below δ (THEORY §2.3).
    assert (summary["failure_rate"] <= summary["cfg_delta"]).all()
    assert ((summary["coverage_lo"] <= summary["coverage"])
            & (summary["coverage"] <= summary["coverage_hi"])).all()
    # Tightness bound/B_T ≥ 1 on the event (issue 3), finite and informative (not huge).
    ok = ~df["failure"]
    assert (df.loc[ok, "tightness"] >= 1 - 1e-9).all()
    np.testing.assert_allclose(df["tightness"], df["bound"] / df["budget"], rtol=1e-12)
    assert (summary["median_tightness"] < 20).all()
    # The exploratory Trap T10 columns exist in the explore_edge cell only.
    assert summary["fitted_edge_coverage"].notna().sum() == 1
    assert {"multilayer", "single"} == set(summary["cfg_kind"])
    assert {"gaussian", "rademacher", "uniform"} == set(summary["cfg_law"])


def test_mp_law_control_rejected(quick_results):
    _, summary, conclusion = quick_results["mp_law"]
    msgs = "\n".join(conclusion.messages)
    assert msgs.count("rejected as expected") == len(mp_law.RATIOS)
    for law in mp_law.LIGHT_LAWS:
        for c, df in summary[summary["cfg_law"] == law].groupby("cfg_c"):
            med = df.sort_values("cfg_N")["median_ks"].to_numpy()
            assert np.all(np.diff(med) < 0), (law, c, med)
    heavy = summary[summary["cfg_law"] == "student_t1.5"]
    assert (heavy["median_ks_best"] > mp_law.LIGHT_KS_MAX).all()


def test_mp_law_check_fails_if_control_fits(quick_results):
    """The check itself must reject an experiment whose heavy-tailed control looks like MP."""
    _, summary, _ = quick_results["mp_law"]
    fake = summary.copy()
    heavy = fake["cfg_law"] == "student_t1.5"
    gauss = summary[summary["cfg_law"] == "gaussian"].set_index(["cfg_N", "cfg_c"])
    for i in fake.index[heavy]:
        src = gauss.loc[(fake.at[i, "cfg_N"], fake.at[i, "cfg_c"])]
        fake.loc[i, ["median_ks", "median_ks_best"]] = src[["median_ks", "median_ks_best"]].values
    assert not mp_law.check(fake).passed
    rising = summary.copy()
    g = rising["cfg_law"] == "gaussian"
    rising.loc[g, "median_ks"] = 0.2 + 1e-4 * rising.loc[g, "cfg_N"]   # grows with N
    assert not mp_law.check(rising).passed


def test_thresholding_rates(quick_results):
    _, summary, conclusion = quick_results["thresholding"]
    at_t = summary[summary["cfg_threshold_factor"] == 1.0]
    assert ((1 - at_t["no_false_positive_rate"]) <= at_t["cfg_delta"]).all()
    bm = summary[summary["cfg_magnitude"] == "beta_min"]
    assert (bm["beta_min_rate"] == 1.0).all()
    assert ((1 - bm["exact_recovery_rate"]) <= bm["cfg_delta"]).all()
    assert (summary["d_violations"] == 0).all()
    strad = summary[summary["cfg_magnitude"] == "straddle"].sort_values("cfg_threshold_factor")
    # Raising t can only remove false positives: the no-FP rate is monotone in t/t_{N,δ}.
    assert np.all(np.diff(strad["no_false_positive_rate"].to_numpy()) >= 0)
    assert sum("report straddle" in m for m in conclusion.messages) == len(strad)


def test_budget_coverage_tightness_vs_n(quick_results):
    _, summary, conclusion = quick_results["budget_coverage"]
    lines = [m for m in conclusion.messages if m.startswith("tightness vs n")]
    assert {ln.split(";")[0] for ln in lines} == {"tightness vs n (multilayer", "tightness vs n (single"}
    single = next(ln for ln in lines if "(single" in ln)
    for n in sorted(set(summary.loc[summary["cfg_kind"] == "single", "cfg_n"])):
        assert f"n={n}:" in single


def test_budget_coverage_tightness_undefined_when_budget_zero():
    assert budget_coverage._tightness(2.0, 0.5) == 4.0
    assert budget_coverage._tightness(2.0, 0.0) is None
    fake = pd.DataFrame({"cfg_n": [8, 8], "cfg_delta": [0.1, 0.1], "failure": [False, False],
                         "tightness": [None, 3.0], "max_ratio": [0.1, 0.2], "budget": [0.0, 1.0],
                         "bound": [3.0, 3.0], "budget_violation_on_event": [False, False],
                         "rewrite_rel_err": [0.0, 0.0]})
    assert budget_coverage.summarize(fake)["median_tightness"].iloc[0] == 3.0


def test_negative_control_misstated_delta_fails():
    """δ mis-stated ×50 in the bound (δ = 0.01 claimed, bound at 0.5): coverage is rejected."""
    bad = budget_coverage.validate_config(
        {"n": 8, "m": 4, "T": 1, "delta": 0.01, "delta_factor": 50.0})
    _, summary, conclusion = run_direct("budget_coverage", configs=[bad], trials=400)
    assert not conclusion.passed
    assert summary["rejected"].all()
    assert "REJECTED" in conclusion.messages[0]
    # Same cell with the honest δ passes.
    good = {**bad, "delta_factor": 1.0}
    assert run_direct("budget_coverage", configs=[good], trials=400)[2].passed


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_deterministic(name):
    exp = get_experiment(name)
    for cfg in exp.grid(True)[:3]:
        for seed in (0, 7):
            assert exp.trial(cfg, seed) == exp.trial(dict(cfg), seed)
        assert exp.trial(cfg, 0) != exp.trial(cfg, 1)


def test_trial_rows_are_json_scalars():
    for name in EXPERIMENTS:
        exp = get_experiment(name)
        for cfg in exp.grid(True):
            row = exp.trial(cfg, 3)
            for k, v in row.items():
                assert type(v) in (bool, int, float, str), (name, k, type(v))
                if isinstance(v, float):
                    assert math.isfinite(v), (name, k)


def test_rv_shortcut_matches_sample_rv():
    cfg = budget_coverage.validate_config({"n": 32, "m": 8, "T": 12, "inputs": "onehot"})
    st = budget_coverage._single_setup(budget_coverage.config_key(cfg))
    a = budget_coverage.draw_rv(st.rv_factor, 32, 1.0, np.random.default_rng(5))
    b = sample_rv(st.V, 32, 1.0, seed=np.random.default_rng(5))[0]
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=0)


def test_bound_matches_certkit():
    cfg = budget_coverage.validate_config({"n": 64, "m": 16, "T": 8, "delta": 0.05,
                                           "lipschitz": "varied"})
    st = budget_coverage._single_setup(budget_coverage.config_key(cfg))
    ref = gaussian_budget_bound(torch.from_numpy(st.V.T.copy()), torch.from_numpy(st.L),
                                n=64, g=1.0, delta=0.05)
    row = budget_coverage.trial(cfg, 0)
    assert row["bound"] == pytest.approx(ref.value, rel=1e-12)
    assert row["threshold"] == pytest.approx(math.sqrt(2 / 64 * math.log(2 * 64 * 8 / 0.05)))
    assert thresholding.trial({"N": 32, "M": 16}, 0)["t_over_t_nd"] == 1.0
    assert thresholding_level(32, 16, 1.0, 0.1) > 0


@pytest.mark.parametrize("name, config, match", [
    ("budget_coverage", {"delta": 0.0}, "delta"),
    ("budget_coverage", {"delta": 1.5}, "delta"),
    ("budget_coverage", {"n": 0}, "'n'"),
    ("budget_coverage", {"law": "cauchy"}, "gaussian"),
    ("budget_coverage", {"inputs": "sparse"}, "onehot"),
    ("budget_coverage", {"law": "rademacher", "sampler": "rv"}, "sampler"),
    ("budget_coverage", {"bogus": 1}, "valid keys"),
    ("budget_coverage", {"delta": 0.1, "delta_factor": 20.0}, "delta_factor"),
    ("budget_coverage", {"kind": "multilayer", "layers": 1}, "layers"),
    ("budget_coverage", {"explore_edge": True}, "explore_edge"),
    ("mp_law", {"law": "cauchy", "N": 100, "c": 1.0}, "student_t1.5"),
    ("mp_law", {"law": "gaussian", "N": 100, "c": 0.333}, "integer"),
    ("mp_law", {"law": "gaussian", "N": 1, "c": 1.0}, "'N'"),
    ("mp_law", {"law": "gaussian", "N": 100}, "exactly"),
    ("thresholding", {"delta": 1.0}, "delta"),
    ("thresholding", {"magnitude": "huge"}, "beta_min"),
    ("thresholding", {"N": -3}, "'N'"),
    ("thresholding", {"threshold_factor": 0}, "threshold_factor"),
])
def test_bad_config_raises(name, config, match):
    with pytest.raises(ValueError, match=match):
        get_experiment(name).trial(config, 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_full_grid_conclusion(name):
    """Full-size grids with the default trial counts (minutes; CERTKIT_SLOW=1)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        _, _, conclusion = run_direct(name, quick=False)
    assert conclusion.passed, "\n".join(conclusion.messages)


def test_bad_seed_raises():
    with pytest.raises(ValueError, match="seed"):
        budget_coverage.trial(budget_coverage.grid(True)[0], -1)
