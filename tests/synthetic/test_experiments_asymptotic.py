"""Quick runs of the asymptotic experiments loss_reduction and stationarity_collapse.

The tidy table is built here as the runner does: one row per (config, seed) with the config
keys added as ``cfg_<key>`` columns.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from synthetic.experiments import loss_reduction, stationarity_collapse
from synthetic.registry import Conclusion, get_experiment

torch.set_num_threads(1)

MODULES = (loss_reduction, stationarity_collapse)


def _table(mod, quick=True, seeds=None) -> pd.DataFrame:
    rows = []
    for cfg in mod.grid(quick):
        for seed in range(mod.n_trials(quick) if seeds is None else seeds):
            row = mod.trial(cfg, seed)
            row.update({f"cfg_{k}": v for k, v in cfg.items()}, seed=seed)
            rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def quick_tables():
    return {mod.NAME: _table(mod) for mod in MODULES}


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.NAME)
def test_registered_and_grid_contract(mod):
    exp = get_experiment(mod.NAME)
    assert exp.trial is mod.trial and exp.results
    for quick in (True, False):
        grid = exp.grid(quick)
        assert grid and all(json.dumps(c, sort_keys=True) for c in grid)
        assert all(not isinstance(v, list | dict) for c in grid for v in c.values())
        assert isinstance(exp.n_trials(quick), int) and exp.n_trials(quick) >= 1
    assert len(exp.grid(True)) <= len(exp.grid(False))


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.NAME)
def test_trial_rows_are_flat_json_scalars(mod, quick_tables):
    cfg = mod.grid(True)[0]
    row = mod.trial(cfg, 0)
    for k, v in row.items():
        assert v is None or isinstance(v, bool | int | float | str), (k, type(v))
    json.dumps(row)


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.NAME)
def test_determinism(mod):
    for cfg in mod.grid(True)[:1] + mod.grid(True)[-1:]:
        a, b, c = mod.trial(cfg, 3), mod.trial(cfg, 3), mod.trial(cfg, 4)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
        assert a != c


def test_loss_reduction_quick_passes(quick_tables):
    df = quick_tables[loss_reduction.NAME]
    assert float(df["identity_err"].max()) < 1e-12  # ρ = ΔCE − 2λ⟨S,R⟩ exactly
    summary = loss_reduction.summarize(df)
    assert len(summary) == len(loss_reduction.grid(True))
    concl = loss_reduction.check(summary)
    assert isinstance(concl, Conclusion)
    assert concl.passed, concl.messages
    for _, row in summary.iterrows():
        assert -1.0 < row["slope"] < -0.2  # theory ≈ −1/2 up to logs
        assert row["logit_failures"] == 0


def test_loss_reduction_check_rejects_growth(quick_tables):
    summary = loss_reduction.summarize(quick_tables[loss_reduction.NAME])
    bad = summary.copy()
    bad["median_abs_rho"] = bad["cfg_N"].astype(float)  # increasing in N
    assert not loss_reduction.check(bad).passed
    bad = summary.copy()
    bad["logit_passed"] = False
    assert not loss_reduction.check(bad).passed


def test_stationarity_collapse_quick_passes(quick_tables):
    df = quick_tables[stationarity_collapse.NAME]
    train = df[df["cfg_kind"] == "train"]
    assert train["tail_ok"].astype(bool).all()  # [D]: every trial, every recorded step
    assert (train["r_part_end"] < train["r_part_t0"]).all()
    assert (train["tail_energy_end"] <= train["tail_bound_end"] * (1 + 1e-9) + 1e-10).all()
    summary = stationarity_collapse.summarize(df)
    assert set(summary["cfg_kind"]) == {"train", "bbp"}
    concl = stationarity_collapse.check(summary)
    assert concl.passed, concl.messages
    bbp = summary[summary["cfg_kind"] == "bbp"].iloc[0]
    g = float(bbp["cfg_g"])
    # subcritical spike sticks to the edge 2√g, not to σ + g/σ = 2.5√g
    assert abs(bbp["bbp0_s1"] - 2 * math.sqrt(g)) < abs(bbp["bbp0_s1"] - 2.5 * math.sqrt(g))


def test_stationarity_collapse_check_rejects_violations(quick_tables):
    summary = stationarity_collapse.summarize(quick_tables[stationarity_collapse.NAME])
    for col, val in (("tail_ok_all", False), ("bulk_shrunk_frac", 0.5),
                     ("spike_relerr_mid", 0.5)):
        bad = summary.copy()
        bad[col] = bad[col].where(bad["cfg_kind"] != "train", val)
        assert not stationarity_collapse.check(bad).passed, col
    bad = summary.copy()
    bad.loc[bad["cfg_kind"] == "bbp", "bbp0_s1"] = 2.5  # the max(2√g, σ+g/σ) mistake
    assert not stationarity_collapse.check(bad).passed


@pytest.mark.parametrize(
    ("mod", "config", "name"),
    [
        (loss_reduction, dict(loss_reduction.grid(True)[0], variant="triple"), "variant"),
        (loss_reduction, dict(loss_reduction.grid(True)[0], g=2.0), "g"),
        (stationarity_collapse, {"kind": "svd", "N": 10, "g": 1.0}, "kind"),
        (stationarity_collapse, dict(stationarity_collapse.grid(True)[0], mid_steps=10**6),
         "mid_steps"),
    ],
)
def test_bad_config(mod, config, name):
    with pytest.raises(ValueError, match=name):
        mod.trial(config, 0)


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.NAME)
def test_summarize_needs_config_columns(mod):
    with pytest.raises(ValueError, match="cfg_"):
        mod.summarize(pd.DataFrame({"x": [1.0, 2.0]}))


@pytest.mark.parametrize("mod", MODULES, ids=lambda m: m.NAME)
def test_check_fails_without_trials(mod):
    assert not mod.check(pd.DataFrame()).passed


def test_loss_reduction_check_needs_three_widths(quick_tables):
    summary = loss_reduction.summarize(quick_tables[loss_reduction.NAME])
    concl = loss_reduction.check(summary[summary["cfg_N"] <= 128])
    assert not concl.passed and any(">= 3 widths" in m for m in concl.messages)
