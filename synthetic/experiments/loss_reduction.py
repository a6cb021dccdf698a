r"""Loss reduction by removing the random component: M-Lemma 4.4, M-Thm 4.5, M-Thm 4.6, E-Cor 2.3.

Model (E-Assumption 3.1 with the normalised outer scaling of :func:`synthetic.networks.sr_mlp`,
Trap T11): bias-free ReLU nets ``(d, N, N, K)`` (variant ``"single"``, target W2) or
``(d, N, N, N, K)`` (variant ``"multi"``, targets W2 and W3, M-Thm 4.6) whose target layers are
W = S + R with R iid N(0, g/N) (E-Ex 2.5) and S of fixed rank and fixed spikes. The labelled set
T is a Gaussian mixture drawn once with a fixed seed: it does not depend on N or on the trial.

Per trial (THEORY §2.4.1–2.4.3, Section-4 L with Frobenius on all layers):

* remainder :math:`\rho_N = L(\alpha_S) - L(\alpha_W) + \lambda\sum_\ell\|R_\ell\|_F^2
  = \Delta L_{CE} - 2\lambda\sum_\ell\langle S_\ell, R_\ell\rangle_F` — both pieces are recorded
  (``ce_change`` and ``cross_term``; the theorem's o_P(1) contains the cross term);
* M-Lemma 4.4 event per sample: :math:`\|X(s,\alpha_S) - X(s,\alpha_W)\|_\infty \le
  d_1(N)h_\varphi(s)` with :math:`d_1 = 2\sqrt{2\log(2N)/N}` (worked example, valid for g ≤ 1,
  Trap T13), :math:`h_\varphi(s) = \|\psi_1(s)\|_2 L_0`, L0 the R-independent bound of
  :func:`certkit.lipschitz.lipschitz_L0`. For ``"multi"`` the event is the one of the last pruned
  layer, in the network whose earlier target is already replaced by S (Trap T7).

Checks: per variant, the median of |ρ_N| decreases in N (Spearman ≤ −0.8) and the bootstrap CI
of the log–log slope of |ρ_N| on N lies below 0 (theory ≈ −1/2 up to logs); the logit event of
sample 0 is not significantly rarer than 1 − d2(N), d2 = 1/N (BinomCheck).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from certkit.classification import mean_ce
from certkit.lipschitz import lipschitz_L0
from certkit.mc import binom_check, loglog_slope, spearman_trend

from ..networks import gaussian_mixture, sr_mlp
from ..registry import Conclusion, Experiment, register

NAME = "loss_reduction"
#: Seed of the fixed labelled set T (independent of N and of the trial seed).
DATA_SEED = 20_260_602
#: Spearman threshold for "median |ρ_N| decreases" (THEORY §2.4.2).
SPEARMAN_MAX = -0.8
#: Widths of the full and quick grids (THEORY §2.4.2).
FULL_N = (64, 128, 256, 512, 1024, 2048)
QUICK_N = (64, 128, 256, 512)
BASE = {"g": 1.0, "lam": 0.01, "rank": 2, "n_samples": 20, "d": 10, "K": 3,
        "activation": "relu"}
VARIANTS = ("single", "multi")


def grid(quick: bool) -> list[dict]:
    return [dict(BASE, variant=v, N=N) for v in VARIANTS for N in (QUICK_N if quick else FULL_N)]


def n_trials(quick: bool) -> int:
    return 60 if quick else 50


def d1(N: int) -> float:
    """d1(N) = 2·sqrt(2 log(2N)/N) of the worked example (E-Ex 2.5, M-Assumption 4.2)."""
    return 2.0 * math.sqrt(2.0 * math.log(2 * N) / N)


def _loss(mlp, x, y, lam: float) -> tuple[float, float]:
    ce = mean_ce(mlp(x), y)
    return ce + lam * sum(float((W * W).sum()) for W in mlp.weights), ce


def trial(config: dict, seed: int) -> dict:
    N, g, lam, variant = int(config["N"]), float(config["g"]), float(config["lam"]), config["variant"]
    if variant not in VARIANTS:
        raise ValueError(f"variant == {variant!r}, must be one of {VARIANTS}")
    if not 0 < g <= 1:
        raise ValueError(f"g == {g}, must be in (0, 1] (d1 without √g needs g <= 1, Trap T13)")
    d, K, n = int(config["d"]), int(config["K"]), int(config["n_samples"])
    x, y = gaussian_mixture(n, d, K, seed=DATA_SEED)
    targets = (1,) if variant == "single" else (1, 2)
    widths = (d,) + (N,) * (len(targets) + 1) + (K,)
    rng = np.random.default_rng(seed)
    mlp, Ss, Rs = sr_mlp(widths, target=targets, g=g, rank=int(config["rank"]),
                         activation=config["activation"], seed=rng)
    L_W, ce_W = _loss(mlp, x, y, lam)
    # prune in order (M-Thm 4.6); keep the network just before the last replacement
    net = mlp
    for k, S in zip(targets, Ss, strict=True):
        before = net
        net = net.with_weight(k, S)
    L_S, ce_S = _loss(net, x, y, lam)
    r2 = sum(float((R * R).sum()) for R in Rs)
    cross = sum(float((S * R).sum()) for S, R in zip(Ss, Rs, strict=True))
    rho = L_S - L_W + lam * r2
    # M-Lemma 4.4 event for the last pruned layer, in its own (intermediate) network
    k = targets[-1]
    L0 = lipschitz_L0(before, k).values[0]
    v = before.layer_input(k, x)
    h = v.norm(dim=1) * L0
    dz = (net(x) - before(x)).abs().amax(dim=1)
    bound = d1(N) * h
    fails = dz > bound
    return {
        "rho": rho,
        "abs_rho": abs(rho),
        "ce_change": ce_S - ce_W,
        "cross_term": -2.0 * lam * cross,
        "identity_err": abs(rho - ((ce_S - ce_W) - 2.0 * lam * cross)),
        "r_fro2": r2,
        "ce_W": ce_W,
        "ce_S": ce_S,
        "lipschitz_L0": L0,
        "a_phi_mean": float(bound.mean()),
        "logit_change_max": float(dz.max()),
        "logit_ratio_max": float((dz / bound).max()),
        "logit_fail_first": bool(fails[0]),
        "logit_fail_count": int(fails.sum()),
        "w1s_max": float(mlp.layer_input(1, x).norm(dim=1).max()),
    }


def _config_cols(df: pd.DataFrame) -> list[str]:
    cols = [c for c in df.columns if c.startswith("cfg_")]
    if "cfg_N" not in cols or "cfg_variant" not in cols:
        raise ValueError("trials must carry the runner's cfg_<key> columns (cfg_N, cfg_variant)")
    return cols


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    cols = _config_cols(trials)
    rows = []
    for key, grp in trials.groupby(cols, sort=True):
        row = dict(zip(cols, key if isinstance(key, tuple) else (key,), strict=True))
        N = int(row["cfg_N"])
        bc = binom_check(int(grp["logit_fail_first"].astype(bool).sum()), len(grp), 1.0 / N)
        row.update(
            n=len(grp),
            median_abs_rho=float(grp["abs_rho"].median()),
            q90_abs_rho=float(grp["abs_rho"].quantile(0.9)),
            median_abs_ce_change=float(grp["ce_change"].abs().median()),
            median_abs_cross=float(grp["cross_term"].abs().median()),
            max_identity_err=float(grp["identity_err"].max()),
            median_a_phi=float(grp["a_phi_mean"].median()),
            max_logit_ratio=float(grp["logit_ratio_max"].max()),
            logit_failures=bc.failures,
            logit_delta=bc.delta,
            logit_p_lo=bc.p_lo,
            logit_passed=bc.passed,
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    for variant, grp in trials.groupby("cfg_variant"):
        est = loglog_slope(grp["cfg_N"], grp["abs_rho"], seed=0)
        mask = out["cfg_variant"] == variant
        out.loc[mask, "slope"] = est.slope
        out.loc[mask, "slope_ci_low"] = est.ci_low
        out.loc[mask, "slope_ci_high"] = est.ci_high
    return out


def check(summary: pd.DataFrame) -> Conclusion:
    msgs, ok = [], True
    if summary.empty or "cfg_variant" not in summary.columns:
        return Conclusion(False, ("no trials to check",))
    for variant, grp in summary.groupby("cfg_variant"):
        grp = grp.sort_values("cfg_N")
        if len(grp) < 3:
            ok = False
            msgs.append(f"{variant}: needs >= 3 widths N for a trend, got {len(grp)} -> FAIL")
            continue
        rho_s = spearman_trend(grp["cfg_N"], grp["median_abs_rho"])
        hi, slope = float(grp["slope_ci_high"].iloc[0]), float(grp["slope"].iloc[0])
        cover = bool(grp["logit_passed"].all())
        passed = rho_s <= SPEARMAN_MAX + 1e-9 and hi < 0 and cover
        ok &= passed
        msgs.append(
            f"{variant}: Spearman(N, median|rho|) = {rho_s:.2f} (<= {SPEARMAN_MAX}), log-log slope "
            f"{slope:.3f} CI high {hi:.3f} (< 0; theory about -1/2), logit event coverage "
            f"{'not rejected' if cover else 'REJECTED'} ({int(grp['logit_failures'].sum())} "
            f"failures) -> {'PASS' if passed else 'FAIL'}"
        )
    return Conclusion(bool(ok), tuple(msgs))


register(Experiment(
    name=NAME,
    description="Removing R lowers L by λ‖R‖_F² + o_P(1); remainder ~ N^-1/2 (one and two layers)",
    results=("M-Lemma 4.4", "M-Thm 4.5", "M-Thm 4.6", "E-Cor 2.3"),
    grid=grid,
    trial=trial,
    summarize=summarize,
    check=check,
    n_trials=n_trials,
    tags=("asymptotic", "A"),
))

