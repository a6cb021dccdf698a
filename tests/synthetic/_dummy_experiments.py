"""Tiny experiments for the runner/store/CLI tests (importable by worker and child processes).

Nothing is registered at import: :func:`registered` adds them to the registry and removes them
again, so the real registry is left as it was. ``CERTKIT_TEST_TRIAL_SLEEP`` (seconds) slows
every trial down for the kill test; it does not change any result.
"""

from __future__ import annotations

import contextlib
import os
import time

import numpy as np
import pandas as pd

from synthetic.registry import _EXPERIMENTS, Conclusion, Experiment, register

SLEEP_ENV = "CERTKIT_TEST_TRIAL_SLEEP"


def coin_grid(quick: bool) -> list[dict]:
    grid = [{"p": 0.3, "n": 4}, {"p": 0.7, "n": 4, "shape": [2, 3]}, {"p": 0.5, "n": 6}]
    return grid[:2] if quick else grid


def coin_trial(config: dict, seed: int) -> dict:
    delay = float(os.environ.get(SLEEP_ENV, "0"))
    if delay:
        time.sleep(delay)
    rng = np.random.default_rng(seed)
    heads = int(rng.binomial(config["n"], config["p"]))
    x = rng.standard_normal()  # numpy float64: the runner must store it as a float
    return {"heads": heads, "x": x, "even": bool(heads % 2 == 0), "count": np.int64(heads), "tag": "ok"}


def coin_summarize(trials: pd.DataFrame) -> pd.DataFrame:
    g = trials.groupby(["cfg_p", "cfg_n"], as_index=False)
    out = g.agg(n_trials=("seed", "size"), mean_heads=("heads", "mean"))
    out["freq"] = out["mean_heads"] / out["cfg_n"]
    return out


def coin_check(summary: pd.DataFrame) -> Conclusion:
    err = (summary["freq"] - summary["cfg_p"]).abs().max()
    return Conclusion(bool(err < 0.6), (f"max |freq - p| = {err:.3f} < 0.6",))


def failing_check(summary: pd.DataFrame) -> Conclusion:
    return Conclusion(False, ("this check always fails",))


def failing_trial(config: dict, seed: int) -> dict:
    if config["p"] == 0.7:
        raise RuntimeError("trial failure injected by the test")
    return coin_trial(config, seed)


def list_trial(config: dict, seed: int) -> dict:
    return {"values": [1, 2]}


def clash_trial(config: dict, seed: int) -> dict:
    return {"seed": seed}


def _make(name, *, trial=coin_trial, check=coin_check, description="coin flips (test)"):
    return Experiment(name=name, description=description, results=("TEST-Lemma 1",), grid=coin_grid,
                      trial=trial, summarize=coin_summarize, check=check,
                      n_trials=lambda quick: 6 if quick else 10)


COIN = _make("_test_coinflip", description="binomial frequencies match p (test)")
FAILING = _make("_test_failing", check=failing_check)
BROKEN = _make("_test_broken_trial", trial=failing_trial)
BAD_VALUE = _make("_test_list_value", trial=list_trial)
BAD_KEY = _make("_test_key_clash", trial=clash_trial)
ALL = (COIN, FAILING, BROKEN, BAD_VALUE, BAD_KEY)


@contextlib.contextmanager
def registered(experiments=ALL):
    """Register ``experiments`` for the duration of the block."""
    for exp in experiments:
        register(exp)
    try:
        yield
    finally:
        for exp in experiments:
            _EXPERIMENTS.pop(exp.name, None)
