r"""Entrywise thresholding in sparse signal + Gaussian noise (E-Thm 3.20, THEORY §2.5.8).

Implements the Monte Carlo check of E-Thm 3.20 [P] (arXiv 2606.02608). W = S + R ∈ ℝ^{N×M}
with R iid N(0, g/N) (N = rows) and S sparse, independent of R;
:math:`t_{N,\delta} = \sqrt{2g\log(2NM/\delta)/N}` (:func:`certkit.bounds.thresholding_level`);
hard thresholding :math:`H_t(W)_{ij} = W_{ij}1\{|W_{ij}| > t\}`. With probability ≥ 1 − δ

.. math:: \{(i,j): |S_{ij}| > 2t\} \subseteq \operatorname{supp} H_t(W) \subseteq
          \operatorname{supp} S ,

(no false positives; only entries with 0 < |S_ij| ≤ 2t can be missed), and under the beta-min
event 𝓑 = {min over supp(S) of |S_ij| > 2t} exact support recovery holds with probability
≥ 1 − δ − P(𝓑ᶜ). The core event is max_ij |R_ij| ≤ t, on which the sandwich is deterministic.

Signal (drawn per trial from the trial generator, independently of R): a uniformly random
support of ⌈density·N·M⌉ entries with random signs and magnitudes

* ``beta_min`` — |S_ij| = 2t_{N,δ}·u, u ~ U(``BETA_MIN_LOW``, ``BETA_MIN_HIGH``): 𝓑 holds surely;
* ``straddle`` — |S_ij| log-uniform on [2t_{N,δ}/``STRADDLE_SPAN``, 2t_{N,δ}·``STRADDLE_SPAN``].

The threshold is t = ``threshold_factor``·t_{N,δ}; the theorem is the case factor 1. Other
factors (straddle cells) show how the rates move with t/t_{N,δ}; they are reported only.

Verdict (BinomCheck, Bonferroni-adjusted over the asserted checks): for every factor-1 cell the
failure rates of "no false positives" and of the full sandwich are not significantly above δ;
for beta-min cells also exact recovery (γ = 0). The [D] implication "core event ⇒ sandwich" must
hold in every trial.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from certkit.bounds import thresholding_level
from synthetic.experiments._common import binomial_summary, trial_rng, with_defaults
from synthetic.registry import Conclusion, Experiment, register

__all__ = ["MAGNITUDES", "check", "grid", "n_trials", "summarize", "trial"]

MAGNITUDES = ("beta_min", "straddle")
#: Beta-min magnitudes |S| = 2t·u with u ~ U(BETA_MIN_LOW, BETA_MIN_HIGH) (u > 1: 𝓑 holds).
BETA_MIN_LOW, BETA_MIN_HIGH = 1.05, 3.0
#: Straddling magnitudes: log-uniform on [2t/STRADDLE_SPAN, 2t·STRADDLE_SPAN].
STRADDLE_SPAN = 4.0
#: Threshold multiples t/t_{N,δ} of the straddle cells (1 = the theorem's threshold).
THRESHOLD_FACTORS = (0.5, 0.75, 1.0, 1.5)
#: Factor at which the theorem applies (cells with another factor are reported only).
THEOREM_FACTOR = 1.0
N_TRIALS_FULL, N_TRIALS_QUICK = 2000, 300

CONFIG_DEFAULTS = {"N": 64, "M": 64, "g": 1.0, "delta": 0.1, "density": 0.05,
                   "magnitude": "beta_min", "threshold_factor": 1.0}

#: The events summarised (failure = event does not hold).
EVENTS = ("no_false_positive", "sandwich", "exact_recovery")


def _validate(config: dict) -> dict:
    cfg = with_defaults(config, CONFIG_DEFAULTS)
    for key in ("N", "M"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"config[{key!r}] == {v!r}, must be an int >= 1")
    for key in ("delta", "density"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 < v < 1.0:
            raise ValueError(f"config[{key!r}] == {v!r}, must be in (0, 1)")
    for key in ("g", "threshold_factor"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not (
                math.isfinite(v) and v > 0):
            raise ValueError(f"config[{key!r}] == {v!r}, must be a finite number > 0")
    if cfg["magnitude"] not in MAGNITUDES:
        raise ValueError(f"config['magnitude'] == {cfg['magnitude']!r}, must be one of "
                         f"{MAGNITUDES}")
    return cfg


def _signal(cfg: dict, t_nd: float, rng: np.random.Generator) -> np.ndarray:
    N, M = cfg["N"], cfg["M"]
    k = max(1, math.ceil(cfg["density"] * N * M))
    idx = rng.choice(N * M, size=k, replace=False)
    if cfg["magnitude"] == "beta_min":
        mag = 2.0 * t_nd * rng.uniform(BETA_MIN_LOW, BETA_MIN_HIGH, size=k)
    else:
        mag = 2.0 * t_nd * np.exp(rng.uniform(-math.log(STRADDLE_SPAN), math.log(STRADDLE_SPAN),
                                              size=k))
    S = np.zeros(N * M)
    S[idx] = mag * rng.choice((-1.0, 1.0), size=k)
    return S.reshape(N, M)


def trial(config: dict, seed: int) -> dict:
    """One draw of (S, R); records the E-Thm 3.20 events at t = factor·t_{N,δ}."""
    cfg = _validate(config)
    rng = trial_rng(cfg, seed)
    N, M, g = cfg["N"], cfg["M"], float(cfg["g"])
    t_nd = thresholding_level(N, M, g, cfg["delta"])
    t = cfg["threshold_factor"] * t_nd
    S = _signal(cfg, t_nd, rng)
    R = rng.standard_normal((N, M)) * math.sqrt(g / N)
    kept = np.abs(S + R) > t                       # supp H_t(W)
    support = S != 0
    large = np.abs(S) > 2.0 * t
    no_fp = not bool(np.any(kept & ~support))
    large_kept = bool(np.all(kept[large]))
    core = bool(np.abs(R).max() <= t)
    sandwich = no_fp and large_kept
    n_missed = int(np.count_nonzero(support & ~kept))
    return {
        "t_over_t_nd": t / t_nd,
        "max_abs_R_over_t": float(np.abs(R).max() / t),
        "core_event": core,
        "no_false_positive": no_fp,
        "large_kept": large_kept,
        "sandwich": sandwich,
        "exact_recovery": bool(no_fp and n_missed == 0),
        "beta_min": bool(np.abs(S[support]).min() > 2.0 * t),
        "n_support": int(np.count_nonzero(support)),
        "n_false_positive": int(np.count_nonzero(kept & ~support)),
        "n_missed": n_missed,
        "d_violation": bool(core and not sandwich),
    }


def grid(quick: bool) -> list[dict]:
    """THEORY §2.5.8 design: N, M ∈ {32, 128, 512}, δ ∈ {0.01, 0.1}, density 1–10%."""
    def cell(**kw):
        return _validate(kw)

    if quick:
        cells = [cell(N=64, M=64, delta=0.1, density=0.05, magnitude="beta_min")]
        cells += [cell(N=64, M=64, delta=0.1, density=0.05, magnitude="straddle",
                       threshold_factor=f) for f in THRESHOLD_FACTORS]
        return cells
    cells = []
    for N in (32, 128, 512):
        for M in (32, 128, 512):
            for delta in (0.01, 0.1):
                for density in (0.01, 0.1):
                    cells.append(cell(N=N, M=M, delta=delta, density=density,
                                      magnitude="beta_min"))
                    for f in THRESHOLD_FACTORS:
                        cells.append(cell(N=N, M=M, delta=delta, density=density,
                                          magnitude="straddle", threshold_factor=f))
    return cells


def n_trials(quick: bool) -> int:
    """Trials per cell (THEORY §2.5.8: 2000)."""
    return N_TRIALS_QUICK if quick else N_TRIALS_FULL


def _asserted(events_row) -> list[str]:
    """Events asserted for a cell (empty for cells off the theorem's threshold)."""
    if events_row["cfg_threshold_factor"] != THEOREM_FACTOR:
        return []
    if events_row["cfg_magnitude"] == "beta_min":
        return list(EVENTS)
    return ["no_false_positive", "sandwich"]


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: failure counts, rates and BinomCheck for each event, mean misses."""
    cols = [c for c in trials.columns if c.startswith("cfg_")]
    if not cols:
        raise ValueError("trials table has no cfg_<key> columns (the runner adds them)")
    groups = list(trials.groupby(cols, sort=True, dropna=False))
    keyed = [dict(zip(cols, key if isinstance(key, tuple) else (key,), strict=True))
             for key, _ in groups]
    n_checks = sum(len(_asserted(k)) for k in keyed)
    rows = []
    for key, (_, df) in zip(keyed, groups, strict=True):
        row = dict(key)
        row["trials"] = len(df)
        asserted = _asserted(key)
        for ev in EVENTS:
            k = int((~df[ev].astype(bool)).sum())
            bs = binomial_summary(k, len(df), float(key["cfg_delta"]), max(1, n_checks))
            row[f"{ev}_failures"] = k
            row[f"{ev}_rate"] = 1.0 - bs["failure_rate"]
            row[f"{ev}_p_lo"] = bs["p_lo"]
            row[f"{ev}_asserted"] = ev in asserted
        row["core_event_rate"] = float(df["core_event"].astype(bool).mean())
        row["beta_min_rate"] = float(df["beta_min"].astype(bool).mean())
        row["mean_missed_fraction"] = float((df["n_missed"] / df["n_support"]).mean())
        row["d_violations"] = int(df["d_violation"].astype(bool).sum())
        row["n_checks"] = n_checks
        rows.append(row)
    return pd.DataFrame(rows)


def check(summary: pd.DataFrame) -> Conclusion:
    """BinomCheck of the asserted events (failure ≤ δ) and zero [D] violations; report rates
    against t/t_{N,δ} for the straddling cells."""
    if len(summary) == 0:
        return Conclusion(False, ("no cells to check",))
    msgs, passed = [], True
    n_checks = int(sum(summary[f"{ev}_asserted"].sum() for ev in EVENTS))
    if n_checks == 0:
        return Conclusion(False, ("no cell at the theorem's threshold t = t_{N,δ}",))
    bad = []
    for _, r in summary.iterrows():
        for ev in EVENTS:
            if r[f"{ev}_asserted"] and r[f"{ev}_p_lo"] > r["cfg_delta"]:
                bad.append(f"{ev} rejected at N={r['cfg_N']}, M={r['cfg_M']}, δ={r['cfg_delta']}, "
                           f"{r['cfg_magnitude']}: {r[f'{ev}_failures']}/{r['trials']} failures, "
                           f"p_lo {r[f'{ev}_p_lo']:.4g} > δ")
    if bad:
        passed = False
        msgs += bad
    else:
        msgs.append(f"all {n_checks} asserted events (no false positives, sandwich, exact "
                    "recovery under beta-min) within δ by BinomCheck (Bonferroni level)")
    n_viol = int(summary["d_violations"].sum())
    if n_viol:
        passed = False
        msgs.append(f"{n_viol} trials with max|R| ≤ t but the sandwich violated ([D] violation)")
    strad = summary[summary["cfg_magnitude"] == "straddle"].sort_values(
        ["cfg_N", "cfg_M", "cfg_delta", "cfg_density", "cfg_threshold_factor"])
    for _, r in strad.iterrows():
        msgs.append(f"report straddle N={r['cfg_N']} M={r['cfg_M']} δ={r['cfg_delta']} "
                    f"density={r['cfg_density']} t/t_Nδ={r['cfg_threshold_factor']}: "
                    f"no-FP rate {r['no_false_positive_rate']:.4f}, exact recovery "
                    f"{r['exact_recovery_rate']:.4f}, missed fraction "
                    f"{r['mean_missed_fraction']:.3f}")
    return Conclusion(passed, tuple(msgs))


register(Experiment(
    name="thresholding",
    description="entrywise thresholding recovery in sparse signal + Gaussian noise",
    results=("E-Thm 3.20",),
    grid=grid,
    trial=trial,
    summarize=summarize,
    check=check,
    n_trials=n_trials,
    tags=("P", "coverage"),
))
