r"""Stationarity collapse of the random bulk: M-Thm 4.7/4.8, M-Cor 4.9–4.12, E-Thm 3.21, E-Cor 5.2.

Two kinds of configurations.

``kind="train"`` (M-Thm 4.7/4.8, M-Cor 4.9–4.12; THEORY §2.4.4–2.4.9). A bias-free ReLU net
``(d, N, N, K)`` from :func:`synthetic.networks.sr_mlp` (normalised outer layers, E-Assumption
3.1) with W2 = S0 + R0, R0 iid N(0, g/N) and planted spikes σ(S0) = √g·(3, 2), is trained by
full-batch gradient descent on L = L_CE + λ Σ‖W_i‖_F² (:func:`synthetic.networks.train_l2`);
only W2 moves, so the outer layers keep the E-Assumption 3.1 scaling along training. The labelled
set T (|T| = 20, K = 3) is fixed. Recorded at t = 0, after ``mid_steps`` and at the end:

* the R-part proxy ‖W2 − P_k W2‖_F (k = rank S0 = 2), the BEMA-fitted bulk edge σ₊ and g·N with
  g = rows·σ̂² estimated from the bulk (:func:`certkit.rmt.fit_mp`);
* the top-k singular values of W2(t) against their planted-limit (BBP) predictions. Gradient
  descent with weight decay gives the exact *trajectory decomposition*
  ``W2(t) = S(t) + R(t)``, ``R(t) = c_t R0`` with ``c_t = Π(1 − 2·lr·λ)`` (``TrainResult.shrink``):
  R(t) is iid N(0, g_t/N) with g_t = g c_t² (E-Assumption 3.3 along training), and S(t) collects
  the decayed planted signal and the accumulated CE gradients (rank ≤ k + |T|). The prediction
  for s_i(W2(t)) is the E-Cor 5.2 limit ``bbp_outlier(σ_i(S(t)), g_t)`` and the inverse-BBP
  estimate ``inverse_bbp(s_i, g_t)`` should recover σ_i(S(t)) (M-Cor 4.12, with the *true* g_t,
  Trap T16). S(t) is only approximately independent of R(t) (the CE gradients see R0).
* the THEORY §2.4.4 [D] fact at every recorded step: Σ_{i>|T|} s_i(W2)² ≤ (‖∇_{W2} L‖_F/(2λ))².

ReLU networks with L2 converge to points where many pre-activations sit at the kink; there the
autograd (sub)gradient does not vanish and ε = ‖∇L‖_F plateaus around 1e-3–1e-2 whatever the
step size. The experiment reports ε ("near stationarity"); the [D] fact holds for any ε.

``kind="bbp"`` (E-Cor 5.2, E-Thm 5.3, THEORY §3.5). Square N×N, W = σ u vᵀ + R with R iid
N(0, g/N) and σ ∈ {0.5√g, 1.5√g, 3√g}: s_1 → σ + g/σ above √g and → 2√g below (not
max(2√g, σ + g/σ)); inverse-BBP recovers the supercritical σ.

Checks: [D] tail inequality in every trial; final bulk < initial bulk in ≥ 95% of trials; the
median relative error of the top-k singular values against the BBP predictions (and of the
inverse-BBP estimates against σ_i(S(t))) within tolerance at every checkpoint; the final R-part
median decreasing in N; the square BBP sub-check within a few % at N ≥ 400.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from scipy.sparse.linalg import svds
from threadpoolctl import threadpool_limits

from certkit.mc import spearman_trend
from certkit.norms import op
from certkit.rmt import bbp_outlier, fit_mp, inverse_bbp, singular_values

from ..networks import gaussian_mixture, sr_layer, sr_mlp, train_l2
from ..registry import Conclusion, Experiment, register

NAME = "stationarity_collapse"
#: Seed of the fixed labelled set T (independent of N and of the trial seed).
DATA_SEED = 20_260_603
#: Planted spikes of S0 in units of √g (both supercritical, distinct).
SPIKE_UNITS = (3.0, 2.0)
#: Square BBP sub-check: spike strengths in units of √g (one subcritical, two supercritical).
BBP_UNITS = (0.5, 1.5, 3.0)
#: Tolerance on the median relative error |s_i − BBP prediction| / prediction (training runs;
#: finite-N BBP fluctuations are O(N^{-1/2}), ≈ 5% at N = 32).
SPIKE_RTOL = 0.10
#: Tolerance on the median relative error of inverse-BBP vs σ_i(S(t)) (training runs).
IBBP_RTOL = 0.15
#: Square BBP sub-check tolerances ("within a few %", THEORY §2.4.9 / §3.5).
BBP_S1_RTOL = 0.03
BBP_SIGMA_RTOL = 0.05
#: Fraction of trials whose final bulk Frobenius must lie below the initial one.
SHRINK_FRACTION = 0.95
#: Spearman threshold for "final R-part decreases with N".
SPEARMAN_MAX = -0.8
#: THEORY §0.3 float64 tolerances for the [D] tail inequality.
ATOL, RTOL = 1e-10, 1e-9

TRAIN_BASE = {"kind": "train", "g": 1.0, "lam": 0.05, "lr": 1.0, "mid_steps": 7, "rank": 2,
              "n_samples": 20, "d": 10, "K": 3}
FULL_TRAIN_N, QUICK_TRAIN_N = (32, 64, 128, 256), (32, 64, 128)
FULL_BBP = [(N, g) for N in (400, 800, 1600) for g in (0.25, 1.0)]
QUICK_BBP = [(400, 1.0)]
CHECKPOINTS = ("t0", "mid", "end")


def grid(quick: bool) -> list[dict]:
    steps = 60 if quick else 300
    train = [dict(TRAIN_BASE, N=N, steps=steps) for N in (QUICK_TRAIN_N if quick else FULL_TRAIN_N)]
    bbp = [{"kind": "bbp", "N": N, "g": g} for N, g in (QUICK_BBP if quick else FULL_BBP)]
    return train + bbp


def n_trials(quick: bool) -> int:
    return 10 if quick else 20


# ----------------------------------------------------------------------------- trials
def _spike_metrics(out: dict, tag: str, W: torch.Tensor, S: torch.Tensor, g_t: float, k: int):
    s = singular_values(W)[:k]
    sig = singular_values(S)[:k]
    pred = np.atleast_1d(bbp_outlier(sig, noise_variance=g_t))
    est = np.ma.filled(np.ma.asarray(inverse_bbp(s, noise_variance=g_t, strict=False),
                                     dtype=float), np.nan)
    for i in range(k):
        out[f"s{i + 1}_{tag}"] = float(s[i])
        out[f"sigmaS{i + 1}_{tag}"] = float(sig[i])
        out[f"pred{i + 1}_{tag}"] = float(pred[i])
        out[f"relerr{i + 1}_{tag}"] = float(abs(s[i] - pred[i]) / pred[i])
        ok = bool(np.isfinite(est[i]))
        out[f"ibbp{i + 1}_{tag}"] = float(est[i]) if ok else None
        out[f"ibbp_relerr{i + 1}_{tag}"] = float(abs(est[i] - sig[i]) / sig[i]) if ok else None
    out[f"g_{tag}"] = g_t


def _bulk_metrics(out: dict, tag: str, W: torch.Tensor, k: int):
    s = singular_values(W)
    out[f"r_part_{tag}"] = float(np.sqrt((s[k:] ** 2).sum()))
    fit = fit_mp(W)
    out[f"sigma_plus_{tag}"] = fit.sigma_plus
    out[f"gN_hat_{tag}"] = fit.gain * W.shape[0]


def _train_trial(config: dict, seed: int) -> dict:
    N, g, lam, lr = int(config["N"]), float(config["g"]), float(config["lam"]), float(config["lr"])
    k, steps, mid = int(config["rank"]), int(config["steps"]), int(config["mid_steps"])
    if not 0 <= mid <= steps:
        raise ValueError(f"mid_steps == {mid}, must be in [0, steps == {steps}]")
    d, K, n = int(config["d"]), int(config["K"]), int(config["n_samples"])
    x, y = gaussian_mixture(n, d, K, seed=DATA_SEED)
    spikes = math.sqrt(g) * np.asarray(SPIKE_UNITS[:k])
    mlp, (S0,), (R0,) = sr_mlp((d, N, N, K), target=1, g=g, rank=k, spikes=spikes,
                               seed=np.random.default_rng(seed))
    kw = dict(lam=lam, lr=lr, tol=0.0, trainable=(1,), monitor=1, rank=k, record_every=10)
    out: dict = {}
    W0 = mlp.weights[1]
    _spike_metrics(out, "t0", W0, S0, g, k)
    _bulk_metrics(out, "t0", W0, k)
    res1 = train_l2(mlp, x, y, steps=mid, **kw)
    W1 = res1.mlp.weights[1]
    _spike_metrics(out, "mid", W1, W1 - res1.shrink * R0, g * res1.shrink**2, k)
    res2 = train_l2(res1.mlp, x, y, steps=steps - mid, **kw)
    shrink = res1.shrink * res2.shrink
    W2 = res2.mlp.weights[1]
    R_end = shrink * R0
    _spike_metrics(out, "end", W2, W2 - R_end, g * shrink**2, k)
    _bulk_metrics(out, "end", W2, k)
    tail = np.array(res1.history["tail_energy"] + res2.history["tail_energy"])
    bound = np.array(res1.history["tail_bound"] + res2.history["tail_bound"])
    scale = float((W0 * W0).sum())
    out.update(
        tail_ok=bool(np.all(tail <= bound + ATOL + RTOL * np.maximum(scale, bound))),
        tail_energy_end=float(tail[-1]),
        tail_bound_end=float(bound[-1]),
        eps_end=res2.grad_norm,
        ce_end=res2.ce,
        loss_end=res2.loss,
        shrink=shrink,
        r_op_end=op(R_end),
        steps_run=res1.steps + res2.steps,
    )
    return out


def _top_singular_value(W: torch.Tensor) -> float:
    """s_1(W) by Lanczos (ARPACK, fixed start vector: deterministic, tol 0 = machine precision)."""
    A = W.numpy()
    # matrix-vector products only: one BLAS thread avoids oversubscription (runner workers)
    with threadpool_limits(limits=1, user_api="blas"):
        s = svds(A, k=1, v0=np.ones(min(A.shape)), return_singular_vectors=False)
    return float(s[0])


def _bbp_trial(config: dict, seed: int) -> dict:
    N, g = int(config["N"]), float(config["g"])
    rng = np.random.default_rng(seed)
    out: dict = {}
    for j, u in enumerate(BBP_UNITS):
        sigma = u * math.sqrt(g)
        S, R = sr_layer(N, N, rank=1, spikes=[sigma], g=g, seed=rng)
        s1 = _top_singular_value(S + R)
        est = inverse_bbp(s1, noise_variance=g, strict=False)
        out[f"s1_{j}"] = s1
        out[f"sigma_{j}"] = sigma
        out[f"pred_{j}"] = bbp_outlier(sigma, noise_variance=g)
        out[f"ibbp_{j}"] = est
    return out


def trial(config: dict, seed: int) -> dict:
    kind = config.get("kind")
    if kind == "train":
        return _train_trial(config, seed)
    if kind == "bbp":
        return _bbp_trial(config, seed)
    raise ValueError(f"config['kind'] == {kind!r}, must be 'train' or 'bbp'")


# ----------------------------------------------------------------------------- summary
def _groups(trials: pd.DataFrame, kind: str):
    sub = trials[trials["cfg_kind"] == kind]
    cols = [c for c in sub.columns if c.startswith("cfg_") and sub[c].notna().all()]
    return sub.groupby(cols, sort=True), cols


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    if "cfg_kind" not in trials.columns or "cfg_N" not in trials.columns:
        raise ValueError("trials must carry the runner's cfg_<key> columns (cfg_kind, cfg_N)")
    rows = []
    groups, cols = _groups(trials, "train")
    for key, grp in groups:
        row = dict(zip(cols, key, strict=True), n=len(grp))
        row["tail_ok_all"] = bool(grp["tail_ok"].astype(bool).all())
        row["bulk_shrunk_frac"] = float((grp["r_part_end"] < grp["r_part_t0"]).mean())
        for c in ("r_part_t0", "r_part_end", "sigma_plus_t0", "sigma_plus_end", "gN_hat_t0",
                  "gN_hat_end", "eps_end", "ce_end", "tail_energy_end", "tail_bound_end",
                  "s1_end", "s2_end"):
            row[f"median_{c}"] = float(grp[c].median())
        for tag in CHECKPOINTS:
            rel = grp[[c for c in grp.columns if c.startswith("relerr") and c.endswith(tag)]]
            row[f"spike_relerr_{tag}"] = float(rel.median().max())
            ib = grp[[c for c in grp.columns if c.startswith("ibbp_relerr") and c.endswith(tag)]]
            ib = ib.astype(float)
            row[f"ibbp_relerr_{tag}"] = float(ib.median().max())
            row[f"ibbp_defined_{tag}"] = float(ib.notna().to_numpy().mean())
        rows.append(row)
    groups, cols = _groups(trials, "bbp")
    for key, grp in groups:
        row = dict(zip(cols, key, strict=True), n=len(grp))
        g = float(row["cfg_g"])
        for j, u in enumerate(BBP_UNITS):
            s1 = float(grp[f"s1_{j}"].median())
            est = grp[f"ibbp_{j}"].astype(float)
            row[f"bbp{j}_units"] = u
            row[f"bbp{j}_s1"] = s1
            row[f"bbp{j}_pred"] = float(grp[f"pred_{j}"].iloc[0])
            row[f"bbp{j}_naive"] = u * math.sqrt(g) + g / (u * math.sqrt(g))
            row[f"bbp{j}_s1_relerr"] = abs(s1 - row[f"bbp{j}_pred"]) / row[f"bbp{j}_pred"]
            row[f"bbp{j}_ibbp"] = float(est.median()) if est.notna().any() else None
            row[f"bbp{j}_ibbp_defined"] = float(est.notna().mean())
        rows.append(row)
    return pd.DataFrame(rows)


def check(summary: pd.DataFrame) -> Conclusion:
    msgs, ok = [], True
    if summary.empty or "cfg_kind" not in summary.columns:
        return Conclusion(False, ("no trials to check",))
    train = summary[summary["cfg_kind"] == "train"].sort_values("cfg_N")
    if len(train):
        tail = bool(train["tail_ok_all"].astype(bool).all())
        shrunk = float(train["bulk_shrunk_frac"].min())
        spk = float(train[[f"spike_relerr_{t}" for t in CHECKPOINTS]].to_numpy().max())
        ib = float(train[[f"ibbp_relerr_{t}" for t in CHECKPOINTS]].to_numpy().max())
        rho = spearman_trend(train["cfg_N"], train["median_r_part_end"]) if len(train) >= 3 \
            else -1.0
        checks = [
            (tail, "[D] tail energy <= (||grad L||/(2 lam))^2 in every trial and recorded step"),
            (shrunk >= SHRINK_FRACTION, f"final bulk < initial bulk in >= {SHRINK_FRACTION:.0%} "
                                        f"of trials (min over N: {shrunk:.0%})"),
            (spk <= SPIKE_RTOL, f"top-k singular values vs BBP(sigma_i(S(t)), g_t): max median "
                                f"rel. error {spk:.3f} (<= {SPIKE_RTOL})"),
            (ib <= IBBP_RTOL, f"inverse-BBP vs sigma_i(S(t)): max median rel. error {ib:.3f} "
                              f"(<= {IBBP_RTOL})"),
            (rho <= SPEARMAN_MAX + 1e-9, f"final R-part decreases with N: Spearman {rho:.2f} "
                                         f"(<= {SPEARMAN_MAX})"),
        ]
        for passed, msg in checks:
            ok &= passed
            msgs.append(f"train: {msg} -> {'PASS' if passed else 'FAIL'}")
    bbp = summary[summary["cfg_kind"] == "bbp"]
    for _, row in bbp.iterrows():
        g = float(row["cfg_g"])
        edge = 2.0 * math.sqrt(g)
        for j, u in enumerate(BBP_UNITS):
            s1 = row[f"bbp{j}_s1"]
            if u > 1.0:
                est = row[f"bbp{j}_ibbp"]
                sig = u * math.sqrt(g)
                err_s = row[f"bbp{j}_s1_relerr"]
                err_i = abs(est - sig) / sig if est is not None and np.isfinite(est) else math.inf
                passed = err_s <= BBP_S1_RTOL and err_i <= BBP_SIGMA_RTOL
                msg = (f"sigma={u}sqrt(g): s1={s1:.4f} vs sigma+g/sigma={row[f'bbp{j}_pred']:.4f} "
                       f"(rel {err_s:.3f}), inverse-BBP {est:.4f} vs {sig:.4f} (rel {err_i:.3f})")
            else:
                naive = row[f"bbp{j}_naive"]
                err_s = abs(s1 - edge) / edge
                passed = err_s <= BBP_S1_RTOL and abs(s1 - edge) < abs(s1 - naive)
                msg = (f"sigma={u}sqrt(g) (subcritical): s1={s1:.4f} vs edge 2sqrt(g)={edge:.4f} "
                       f"(rel {err_s:.3f}), not sigma+g/sigma={naive:.4f}")
            ok &= passed
            msgs.append(f"bbp N={int(row['cfg_N'])} g={g}: {msg} -> {'PASS' if passed else 'FAIL'}")
    return Conclusion(bool(ok), tuple(msgs))


register(Experiment(
    name=NAME,
    description="L2 training collapses the random bulk of W2; spikes follow BBP; square BBP check",
    results=("M-Thm 4.7", "M-Thm 4.8", "M-Cor 4.9", "M-Cor 4.10", "M-Cor 4.11", "M-Cor 4.12",
             "E-Thm 3.21", "E-Cor 5.2", "E-Thm 5.3"),
    grid=grid,
    trial=trial,
    summarize=summarize,
    check=check,
    n_trials=n_trials,
    tags=("asymptotic", "A", "C"),
))
