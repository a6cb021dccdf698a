r"""Gaussian three-layer model: E-Lemma 3.13, E-Cor 3.14, E-Lemma 3.15, E-Thm 3.16, E-Thm 3.18,
E-Cor 3.19 (THEORY §2.5.1–2.5.7, arXiv 2606.02608).

Model (E-Assumption 3.1/3.3/3.6)
--------------------------------
:math:`X(\alpha,s) = \lambda(W_3\,\lambda(W_2\,\lambda(W_1 s)))`, no biases, λ ∈ {|·|, ReLU},
widths (d, N, N, K), target :math:`W_2 = S_2 + R_2 \in \mathbb{R}^{N\times N}` with
:math:`R_2` iid N(0, g/N), g ≤ 1 (the τ_N forms drop √g by assuming g ≤ 1, Trap T13; g > 1 is
rejected). W1, S2, W3 and the data T, T′ come from a generator seeded by the configuration
(:func:`~synthetic.experiments._common.config_rng`), so they are independent of R2, which is the
only thing a trial draws. The outer layers follow the normalised scaling of
:func:`synthetic.networks.sr_mlp` (Trap T11): ‖W1‖_op = 1 so ‖W1 s‖_2 ≤ ‖s‖_2, and
‖W3‖_{∞→∞} = 1 (the measured value is used in every formula). Two structures:

* ``"haar"`` — W1, S2 (rank ``rank``, Haar singular vectors, spikes 3√g…2√g) and W3 exactly as
  :func:`~synthetic.networks.sr_mlp` draws them. Logits are O(sqrt(log N/N)) (see that module),
  so every margin is below 2τ_N and the E-Cor 3.14 bound is vacuous (reported).
* ``"planted"`` — W1 from :func:`~synthetic.networks.sr_mlp`; S2 = ``spike``·Σ_k e_k v_kᵀ with
  v_k the unit centred class-k mean of ψ1 over an auxiliary sample of the same mixture, and
  W3 = [I_K | 0] (‖W3‖_{∞→∞} = 1 is then attained). Margins are O(1), so E-Cor 3.14 is
  informative at large N, and the ∞→∞ chain is nearly tight (used by the negative control).

Data: one :func:`~synthetic.networks.gaussian_mixture` draw split into T (|T| = ``T``), the test
set T′ (|T′| = ``T_test``) and the auxiliary sample; T0 = T in E-Thm 3.16.

Per trial (one draw of R2; failure = the stated event does not hold)
--------------------------------------------------------------------
With :math:`a(N,s) = \|W_3\|_{\infty\to\infty}\|W_1 s\|_2\sqrt{\log(2N)/N}`,
:math:`\tau_N = 2\sqrt2\,a`, :math:`\tau_{N,\delta}(s) = \|W_3\|_{\infty\to\infty}\|W_1s\|_2
\sqrt{2g\log(2N|T_0|/\delta)/N}` (both multiplied by ``tau_factor``, 1 except in the negative
control) and ΔX(s) = X(s, α_{S2}) − X(s, α_{W2}):

=================  =========================================================  =================
column             event                                                       claimed failure
=================  =========================================================  =================
``lemma313_fail``  ‖ΔX(s₀)‖_∞ ≤ τ_N(s₀), s₀ the first sample of T ("each s")  1/N
``cor314_fail``    |acc_{W2}(T′) − acc_{S2}(T′)| ≤ #{s∈T′: |δX(s,α_{W2})| ≤     |T′|/N
                   2τ_N(s)}/|T′| (δX = true-label margin, ties wrong)
``lemma315_fail``  |ΔL_CE| ≤ (4√2/|T|)Σ_s a(N,s)                               |T|/N
``thm316i_fail``   ‖ΔX(s)‖_∞ ≤ τ_{N,δ}(s) for all s ∈ T0                       δ
``thm316ii_fail``  |ΔL_CE| ≤ (2/|T|)Σ_s τ_{N,δ}(s)                              δ
``cross_fail``     |⟨S2, R2⟩_F| ≤ η                                            δ_η
``cor319_fail``    for every ϑ of a 21-point grid of [0, 1]: L(α_{W2(ϑ)}) ≤     |T|/N + δ_η
                   L(α_{W2}) − λ(1−ϑ²)‖R2‖_F² + (1−ϑ)(4√2/|T|)Σa + 2λ(1−ϑ)η
=================  =========================================================  =================

L = L_CE + λ_reg Σ‖W_i‖_F² (λ_reg = ``lam``), W2(ϑ) = S2 + ϑR2; ϑ = 0 is E-Thm 3.18
(``thm318_fail``, reported). The cross-term level is η = ‖S2‖_F sqrt(2g log(2/δ_η)/N), i.e.
the Gaussian tail 2exp(−η²N/(2g‖S2‖_F²)) = δ_η (``eta_delta``) for fixed S2, the E-Cor 2.3 form
of the cross-term probability. The theorem's own term 2exp(−Nη²/(2B_N²)) with B_N = ‖S2‖_F is
larger for g < 1, so the claim checked here is the stronger one. Claims with δ ≥ 1 are vacuous
and not checked.

Deterministic checks [D] (must hold in every trial, float tolerance ATOL + RTOL·scale):

* ``d_step_violations`` — ‖ΔX(s)‖_∞ ≤ ‖W3‖_{∞→∞}‖R2 λ(W1 s)‖_∞ for every s ∈ T ∪ T′ (the
  intermediate step of E-Lemma 3.13);
* ``d_implication_violations`` — the deterministic halves of the proofs: on the core event
  ‖W3‖‖R2ψ1(s)‖_∞ ≤ τ(s) (all s in the set) the CE bounds of E-Lemma 3.15 / E-Thm 3.16(ii),
  the E-Cor 3.14 inequality, and (with the cross event) every E-Cor 3.19 grid inequality hold;
* ``consistency_err`` — τ_{N,δ}(s) equals M-Cor 5.10's per-sample term L_s‖v_s‖_2 t_δ with
  n = N, L_s = ‖W3‖_{∞→∞}, ‖v_s‖_2 → ‖W1 s‖_2, t_δ = :func:`certkit.bounds.gaussian_threshold`
  (relative error ≤ 1e-12).

Sampling. ``sampler="rv"`` (default) uses the exact shortcut of THEORY §2.3 extended to the
regularised loss: with A = [ψ1(T ∪ T′)ᵀ | V_S] (V_S the right singular vectors of S2) and the
thin QR A = Q R_A, R2·A = Z R_A with Z iid N(0, g/N) of shape N × rank(Q), ⟨S2, R2⟩_F =
Σ_k σ_k u_kᵀ(R2 v_k), and ‖R2‖_F² = ‖Z‖_F² + (g/N)·χ²_{N(N−k)} independent — every quantity
above is a function of these, so the joint law is exact. ``sampler="full"`` draws R2 itself.

Verdict
-------
Per cell and claim: BinomCheck via :func:`~synthetic.experiments._common.binomial_summary` with
the Bonferroni level over all checked (cell, claim) pairs. FAILS if any claim is rejected
(significant evidence that its failure probability exceeds the claimed one), if any [D]
violation occurs, or if the consistency error exceeds 1e-12.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from certkit.bounds import gaussian_threshold
from synthetic.experiments._common import (
    FAMILY_FALSE_FAILURE,
    binomial_summary,
    config_key,
    config_rng,
    trial_rng,
    with_defaults,
)
from synthetic.networks import gaussian_mixture, sr_mlp
from synthetic.registry import Conclusion, Experiment, register

__all__ = ["CLAIMS", "CONFIG_DEFAULTS", "NAME", "THETAS", "check", "grid", "n_trials",
           "setup", "summarize", "trial", "validate_config"]

NAME = "gaussian_three_layer"
ACTIVATIONS = ("abs", "relu")
STRUCTURES = ("haar", "planted")
SAMPLERS = ("rv", "full")

CONFIG_DEFAULTS = {
    "N": 64,
    "activation": "relu",
    "g": 1.0,
    "structure": "haar",
    "sampler": "rv",
    "T": 4,            # |T| (= T0 of E-Thm 3.16)
    "T_test": 8,       # |T′| of E-Cor 3.14
    "d": 10,
    "K": 3,
    "rank": 2,         # rank of S2 for structure "haar" ("planted" has rank K)
    "spike": 3.0,      # singular value of the planted S2
    "delta": 0.1,      # δ of E-Thm 3.16
    "eta_delta": 0.05,  # δ_η = 2exp(−η²N/(2g‖S2‖_F²)) fixes the cross-term level η
    "lam": 0.01,       # λ_reg
    # Negative control only: every τ (hence every a-based bound) is multiplied by this factor
    # while the claimed probabilities are unchanged.
    "tau_factor": 1.0,
}

#: ϑ-grid of E-Cor 3.19 (21 points, both ends included).
THETAS = np.linspace(0.0, 1.0, 21)
#: Auxiliary samples per class used to plant S2 (structure "planted").
AUX_PER_CLASS = 64
#: Float tolerances of the [D] checks (THEORY §0.3).
ATOL, RTOL = 1e-10, 1e-9
#: Relative tolerance of the τ_{N,δ} = M-Cor 5.10 consistency check.
CONSISTENCY_RTOL = 1e-12
N_TRIALS_FULL, N_TRIALS_QUICK = 5000, 150
#: The checked events: (trial column, theorem, description of the claimed failure probability).
CLAIMS = (
    ("lemma313", "E-Lemma 3.13", "1/N"),
    ("cor314", "E-Cor 3.14", "|T'|/N"),
    ("lemma315", "E-Lemma 3.15", "|T|/N"),
    ("thm316i", "E-Thm 3.16(i)", "delta"),
    ("thm316ii", "E-Thm 3.16(ii)", "delta"),
    ("cross", "cross term", "eta_delta"),
    ("cor319", "E-Cor 3.19", "|T|/N + eta_delta"),
)


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
def _num(cfg: dict, key: str, lo: float, hi: float = math.inf, *, lo_open=True, hi_open=True,
         integer=False) -> None:
    v = cfg[key]
    kind = "an int" if integer else "a number"
    ok = not isinstance(v, bool) and isinstance(v, (int, np.integer) if integer else (int, float))
    ok = ok and math.isfinite(v) and (v > lo if lo_open else v >= lo)
    ok = ok and (v < hi if hi_open else v <= hi)
    if not ok:
        lb, rb = "(" if lo_open else "[", ")" if hi_open else "]"
        raise ValueError(f"config[{key!r}] == {v!r}, must be {kind} in {lb}{lo}, {hi}{rb}")


def validate_config(config: dict) -> dict:
    """The configuration with defaults filled in; ValueError (listing valid values) if invalid."""
    cfg = with_defaults(config, CONFIG_DEFAULTS)
    for key, choices in (("activation", ACTIVATIONS), ("structure", STRUCTURES),
                         ("sampler", SAMPLERS)):
        if cfg[key] not in choices:
            raise ValueError(f"config[{key!r}] == {cfg[key]!r}, must be one of {choices}")
    _num(cfg, "N", 2, lo_open=False, integer=True)
    for key in ("T", "T_test", "d", "rank"):
        _num(cfg, key, 1, lo_open=False, integer=True)
    _num(cfg, "K", 2, lo_open=False, integer=True)
    _num(cfg, "g", 0.0, 1.0, hi_open=False)  # g ≤ 1 for the τ_N forms (Trap T13)
    for key in ("delta", "eta_delta"):
        _num(cfg, key, 0.0, 1.0)
    for key in ("spike", "lam", "tau_factor"):
        _num(cfg, key, 0.0)
    if cfg["rank"] > cfg["N"]:
        raise ValueError(f"config['rank'] == {cfg['rank']}, must be <= N == {cfg['N']}")
    if cfg["structure"] == "planted" and cfg["K"] > cfg["N"]:
        raise ValueError(f"structure 'planted' needs K <= N, got K={cfg['K']}, N={cfg['N']}")
    return cfg


# --------------------------------------------------------------------------------------------
# fixed (R2-independent) ingredients of one configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """Everything of a configuration that does not depend on R2 (cached per configuration)."""

    W1: np.ndarray        # (N, d)
    S2: np.ndarray        # (N, N)
    W3: np.ndarray        # (K, N)
    x: np.ndarray         # (|T| + |T′|, d), T first
    y: np.ndarray         # labels
    psi1: np.ndarray      # λ(W1 x), (|T| + |T′|, N)
    uS: np.ndarray        # S2 ψ1, (|T| + |T′|, N)
    w3_inf: float         # ‖W3‖_{∞→∞}
    w1s: np.ndarray       # ‖W1 s‖_2 (linear), (|T| + |T′|,)
    a: np.ndarray         # a(N, s)
    tau_N: np.ndarray     # τ_N(s)·tau_factor
    tau_Nd: np.ndarray    # τ_{N,δ}(s)·tau_factor (T only)
    consistency_err: float
    s_fro: float          # ‖S2‖_F
    eta: float
    sv_u: np.ndarray      # (N, r) left singular vectors of S2
    sv_s: np.ndarray      # (r,)
    q_factor: np.ndarray  # R_A of the thin QR of A = [ψ1ᵀ | V_S], (k, |T|+|T′|+r)
    chi_df: int           # N(N − k): degrees of freedom of the complement part of ‖R2‖_F²
    reg_outer: float      # ‖W1‖_F² + ‖W3‖_F²


def _act(name: str, x: np.ndarray) -> np.ndarray:
    return np.abs(x) if name == "abs" else np.maximum(x, 0.0)


@lru_cache(maxsize=128)
def _setup(key: str) -> Setup:
    cfg = json.loads(key)
    N, g, K, act = cfg["N"], float(cfg["g"]), cfg["K"], cfg["activation"]
    nT, nTp = cfg["T"], cfg["T_test"]
    rng = config_rng(cfg)
    mlp, (S2,), _ = sr_mlp((cfg["d"], N, N, K), target=1, activation=act, final_activation=True,
                           g=g, rank=cfg["rank"], outer_scale="normalized", seed=rng)
    W1, W3, S2 = (mlp.weights[0].numpy(), mlp.weights[2].numpy(), S2.numpy())
    n_aux = AUX_PER_CLASS * K if cfg["structure"] == "planted" else 0
    xt, yt = gaussian_mixture(nT + nTp + n_aux, cfg["d"], K, seed=rng)
    x_all, y_all = xt.numpy(), yt.numpy()
    if cfg["structure"] == "planted":
        aux = _act(act, x_all[nT + nTp:] @ W1.T)
        means = np.stack([aux[y_all[nT + nTp:] == k].mean(axis=0) for k in range(K)])
        V = means - means.mean(axis=0)
        V /= np.linalg.norm(V, axis=1, keepdims=True)
        S2 = np.zeros((N, N))
        S2[:K] = float(cfg["spike"]) * V
        W3 = np.eye(K, N)
    x, y = x_all[:nT + nTp], y_all[:nT + nTp]
    psi1 = _act(act, x @ W1.T)
    w3_inf = float(np.abs(W3).sum(axis=1).max())
    w1s = np.linalg.norm(x @ W1.T, axis=1)
    f = float(cfg["tau_factor"])
    a = w3_inf * w1s * math.sqrt(math.log(2 * N) / N)
    tau_Nd0 = w3_inf * w1s[:nT] * math.sqrt(2 * g * math.log(2 * N * nT / cfg["delta"]) / N)
    # [D] E-Thm 3.16 = M-Cor 5.10 per-sample term with n = N, L_s = ‖W3‖, ‖v_s‖_2 → ‖W1 s‖_2.
    m510 = w3_inf * w1s[:nT] * gaussian_threshold(N, g, cfg["delta"], nT)
    consistency = float(np.max(np.abs(tau_Nd0 - m510) / m510))
    U, sv, Vt = np.linalg.svd(S2)
    keep = sv > sv[0] * 1e-12 if sv[0] > 0 else np.zeros_like(sv, dtype=bool)
    s_fro = float(np.linalg.norm(S2))
    eta = s_fro * math.sqrt(2 * g * math.log(2 / cfg["eta_delta"]) / N)
    A = np.concatenate([psi1.T, Vt[keep].T], axis=1)
    Q, RA = np.linalg.qr(A, mode="reduced")
    return Setup(W1, S2, W3, x, y, psi1, psi1 @ S2.T, w3_inf, w1s, a,
                 f * 2 * math.sqrt(2) * a, f * tau_Nd0, consistency, s_fro, eta,
                 U[:, keep], sv[keep], RA, N * (N - Q.shape[1]),
                 float((W1 ** 2).sum() + (W3 ** 2).sum()))


def setup(config: dict) -> Setup:
    """The cached R2-independent ingredients of ``config`` (validated)."""
    return _setup(config_key(validate_config(config)))


def logits(st: Setup, u: np.ndarray, activation: str) -> np.ndarray:
    """X = λ(W3 λ(u)) for pre-activations u = W2 ψ1 of shape (..., B, N)."""
    return _act(activation, _act(activation, u) @ st.W3.T)


def _ce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean cross-entropy over the sample axis (−2) of logits (..., B, K)."""
    zmax = z.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z - zmax).sum(axis=-1)) + zmax[..., 0]
    own = z[..., np.arange(len(y)), y]
    return (lse - own).mean(axis=-1)


def _margins(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True-label margins δX = z_y − max_{j≠y} z_j (certkit.classification.true_margins)."""
    own = z[np.arange(len(y)), y]
    other = z.copy()
    other[np.arange(len(y)), y] = -np.inf
    return own - other.max(axis=1)


def _viol(lhs, rhs) -> np.ndarray:
    """lhs > rhs beyond the float tolerance ([D] checks)."""
    lhs, rhs = np.asarray(lhs), np.asarray(rhs)
    return lhs > rhs + ATOL + RTOL * np.maximum(np.abs(lhs), np.abs(rhs))


# --------------------------------------------------------------------------------------------
# one trial
# --------------------------------------------------------------------------------------------
def _draw(cfg: dict, st: Setup, rng: np.random.Generator):
    """(R2 ψ1(s) as rows (B, N), ⟨S2, R2⟩_F, ‖R2‖_F²) for one draw of R2."""
    N, g, B = cfg["N"], float(cfg["g"]), st.psi1.shape[0]
    if cfg["sampler"] == "full":
        R = rng.standard_normal((N, N)) * math.sqrt(g / N)
        return st.psi1 @ R.T, float((st.S2 * R).sum()), float((R * R).sum())
    Z = rng.standard_normal((N, st.q_factor.shape[0])) * math.sqrt(g / N)
    RA = Z @ st.q_factor                                  # R2·A, (N, B + r)
    cross = float(np.einsum("ik,ik,k->", st.sv_u, RA[:, B:], st.sv_s))
    r2 = float((Z * Z).sum()) + (g / N) * float(rng.chisquare(st.chi_df) if st.chi_df else 0.0)
    return RA[:, :B].T.copy(), cross, r2


def trial(config: dict, seed: int) -> dict:
    """One draw of R2 for ``config``; deterministic in (config, seed). See the module docstring."""
    cfg = validate_config(config)
    st = _setup(config_key(cfg))
    rng = trial_rng(cfg, seed)
    nT, lam, act = cfg["T"], float(cfg["lam"]), cfg["activation"]
    Rpsi, cross, r2 = _draw(cfg, st, rng)
    XS = logits(st, st.uS, act)
    XW = logits(st, st.uS + Rpsi, act)
    dX = np.abs(XS - XW).max(axis=1)                    # ‖ΔX(s)‖_∞, s ∈ T ∪ T′
    core = st.w3_inf * np.abs(Rpsi).max(axis=1)          # ‖W3‖‖R2ψ1(s)‖_∞
    d_step = int(_viol(dX, core).sum())
    yT, yP = st.y[:nT], st.y[nT:]
    tauT, tauP = st.tau_N[:nT], st.tau_N[nT:]
    implications = 0
    # E-Lemma 3.13 (sample s₀ = first of T) and its all-T core event
    lemma313 = bool(dX[0] > tauT[0])
    core313 = bool(np.all(core[:nT] <= tauT))
    # E-Cor 3.14 on T′
    mW = _margins(XW[nT:], yP)
    acc_change = abs(float((mW > 0).mean()) - float((_margins(XS[nT:], yP) > 0).mean()))
    cor314_bound = float((np.abs(mW) <= 2 * tauP).mean())
    cor314 = acc_change > cor314_bound + 1e-12
    implications += int(cor314 and bool(np.all(core[nT:] <= tauP)))
    # E-Lemma 3.15 and E-Thm 3.16
    ce_W, ce_S = float(_ce(XW[:nT], yT)), float(_ce(XS[:nT], yT))
    d_ce = ce_S - ce_W
    b315 = 2.0 * float(tauT.mean())                      # = (4√2/|T|) Σ a · tau_factor
    lemma315 = abs(d_ce) > b315
    implications += int(core313 and bool(_viol(abs(d_ce), b315)))
    thm316i = bool(np.any(dX[:nT] > st.tau_Nd))
    b316 = 2.0 * float(st.tau_Nd.mean())
    thm316ii = abs(d_ce) > b316
    implications += int(bool(np.all(core[:nT] <= st.tau_Nd)) and bool(_viol(abs(d_ce), b316)))
    # E-Cor 3.19 on the ϑ-grid (ϑ = 0 is E-Thm 3.18): L(ϑ) − L(1) vs the bound
    th = THETAS[:, None, None]
    ce_th = _ce(logits(st, st.uS[:nT] + th * Rpsi[:nT], act), yT)      # (21,)
    t1 = THETAS
    lhs = (ce_th - ce_W) + lam * ((t1 ** 2 - 1.0) * r2 + 2.0 * (t1 - 1.0) * cross)
    rhs = -lam * (1 - t1 ** 2) * r2 + (1 - t1) * b315 + 2 * lam * (1 - t1) * st.eta
    slack = lhs - rhs
    cor319_pts = _viol(lhs, rhs)
    cross_fail = abs(cross) > st.eta
    implications += int(core313 and not cross_fail and bool(cor319_pts.any()))
    return {
        "lemma313_fail": lemma313,
        "lemma313_fail_count": int((dX[:nT] > tauT).sum()),
        "lemma313_ratio_max": float((dX[:nT] / tauT).max()),
        "d_step_violations": d_step,
        "cor314_fail": bool(cor314),
        "cor314_acc_change": acc_change,
        "cor314_bound": cor314_bound,
        "cor314_vacuous": bool(cor314_bound >= 1.0),
        "lemma315_fail": bool(lemma315),
        "ce_change": d_ce,
        "lemma315_bound": b315,
        "thm316i_fail": thm316i,
        "thm316ii_fail": bool(thm316ii),
        "thm316ii_bound": b316,
        "cross_fail": bool(cross_fail),
        "cross_term": cross,
        "eta": st.eta,
        "cor319_fail": bool(cor319_pts.any()),
        "cor319_max_slack": float(slack.max()),
        "thm318_fail": bool(cor319_pts[0]),
        "r_fro2": r2,
        "d_implication_violations": implications,
        "consistency_err": st.consistency_err,
        "w3_inf": st.w3_inf,
        "w1s_max": float(st.w1s.max()),
        "a_mean": float(st.a[:nT].mean()),
    }


# --------------------------------------------------------------------------------------------
# grid, summary, verdict
# --------------------------------------------------------------------------------------------
def _cell(**kw) -> dict:
    return validate_config(kw)


def grid(quick: bool) -> list[dict]:
    """N × activation × g × structure (THEORY §2.5.1: N ∈ {16, 64, 256, 1024}; quick 16, 64, 128)."""
    Ns = (16, 64, 128) if quick else (16, 64, 256, 1024)
    return [_cell(N=N, activation=act, g=g, structure=st)
            for st in STRUCTURES for N in Ns for act in ACTIVATIONS for g in (0.25, 1.0)]


def n_trials(quick: bool) -> int:
    """Default trials per cell (THEORY §2.5.1: 5 000)."""
    return N_TRIALS_QUICK if quick else N_TRIALS_FULL


def claimed_delta(claim: str, cfg: dict) -> float:
    """Claimed failure probability of ``claim`` for a configuration (may be ≥ 1: vacuous)."""
    N = cfg["N"]
    return {"lemma313": 1.0 / N, "cor314": cfg["T_test"] / N, "lemma315": cfg["T"] / N,
            "thm316i": cfg["delta"], "thm316ii": cfg["delta"], "cross": cfg["eta_delta"],
            "cor319": cfg["T"] / N + cfg["eta_delta"]}[claim]


def _cfg_columns(df: pd.DataFrame) -> list[str]:
    cols = [c for c in df.columns if c.startswith("cfg_")]
    if not cols:
        raise ValueError("trials table has no cfg_<key> columns (the runner adds them)")
    return cols


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: per claim the failures, claimed δ and BinomCheck (Bonferroni
    over all checked (cell, claim) pairs; δ ≥ 1 is vacuous, ``<claim>_checked`` False), the [D]
    violation counts and descriptive medians."""
    cols = _cfg_columns(trials)
    groups = list(trials.groupby(cols, dropna=False, sort=True))
    cfgs = []
    for key, _ in groups:
        raw = dict(zip(cols, key if isinstance(key, tuple) else (key,), strict=True))
        cfgs.append(validate_config({c[4:]: (v.item() if hasattr(v, "item") else v)
                                     for c, v in raw.items()}))
    n_checks = sum(claimed_delta(c, cfg) < 1.0 for cfg in cfgs for c, _, _ in CLAIMS)
    rows = []
    for (key, df), cfg in zip(groups, cfgs, strict=True):
        row = dict(zip(cols, key if isinstance(key, tuple) else (key,), strict=True))
        row["trials"] = len(df)
        for claim, _, _ in CLAIMS:
            k, delta = int(df[f"{claim}_fail"].astype(bool).sum()), claimed_delta(claim, cfg)
            row[f"{claim}_failures"], row[f"{claim}_delta"] = k, delta
            row[f"{claim}_rate"] = k / len(df)
            checked = delta < 1.0
            row[f"{claim}_checked"] = checked
            bs = binomial_summary(k, len(df), delta, n_checks) if checked else None
            row[f"{claim}_p_lo"] = bs["p_lo"] if bs else float("nan")
            row[f"{claim}_rejected"] = bool(bs and bs["rejected"])
        row["thm318_failures"] = int(df["thm318_fail"].astype(bool).sum())
        row["d_step_violations"] = int(df["d_step_violations"].sum())
        row["d_implication_violations"] = int(df["d_implication_violations"].sum())
        row["max_consistency_err"] = float(df["consistency_err"].max())
        row["median_lemma313_ratio"] = float(df["lemma313_ratio_max"].median())
        row["cor314_vacuous_frac"] = float(df["cor314_vacuous"].astype(bool).mean())
        row["median_cor314_bound"] = float(df["cor314_bound"].median())
        row["median_abs_ce_change"] = float(df["ce_change"].abs().median())
        row["lemma315_bound"] = float(df["lemma315_bound"].median())
        row["a_mean"] = float(df["a_mean"].median())
        row["w3_inf"] = float(df["w3_inf"].max())
        row["w1s_max"] = float(df["w1s_max"].max())
        row["n_checks"] = n_checks
        rows.append(row)
    return pd.DataFrame(rows)


def _describe(row, claim: str) -> str:
    keys = ("structure", "N", "activation", "g", "tau_factor")
    cfg = ", ".join(f"{k}={row[f'cfg_{k}']}" for k in keys if f"cfg_{k}" in row)
    return (f"  [{cfg}] {claim}: {row[f'{claim}_failures']}/{row['trials']} failures vs "
            f"claimed {row[f'{claim}_delta']:.4g} (p_lo {row[f'{claim}_p_lo']:.3g})")


def check(summary: pd.DataFrame) -> Conclusion:
    """FAIL on any rejected claim (Bonferroni), any [D] violation or a consistency error
    > 1e-12; otherwise list per claim the total failures and the closest cell."""
    if len(summary) == 0:
        return Conclusion(False, ("no cells to check",))
    passed, msgs = True, []
    n_checks = int(summary["n_checks"].iloc[0])
    msgs.append(f"{len(summary)} cells, {n_checks} checked (cell, claim) pairs, Bonferroni "
                f"level {1 - FAMILY_FALSE_FAILURE / max(1, n_checks):.6f} (family false-failure "
                f"<= {FAMILY_FALSE_FAILURE})")
    for claim, thm, desc in CLAIMS:
        chk = summary[summary[f"{claim}_checked"].astype(bool)]
        if chk.empty:
            msgs.append(f"{thm} (failure ≤ {desc}): vacuous in every cell, not checked")
            continue
        rej = chk[chk[f"{claim}_rejected"].astype(bool)]
        total = int(chk[f"{claim}_failures"].sum())
        if len(rej):
            passed = False
            msgs.append(f"{thm} (failure ≤ {desc}) REJECTED in {len(rej)}/{len(chk)} cells:")
            msgs += [_describe(r, claim) for _, r in rej.head(3).iterrows()]
        else:
            margin = chk[f"{claim}_rate"] / chk[f"{claim}_delta"]
            worst = chk.loc[margin.idxmax()]
            msgs.append(f"{thm} (failure ≤ {desc}) not rejected in {len(chk)} cells, "
                        f"{total} failures in all; closest cell:")
            msgs.append(_describe(worst, claim))
    n_step = int(summary["d_step_violations"].sum())
    n_impl = int(summary["d_implication_violations"].sum())
    cons = float(summary["max_consistency_err"].max())
    if n_step:
        passed = False
        msgs.append(f"{n_step} violations of ‖ΔX‖_∞ ≤ ‖W3‖_∞→∞‖R2 λ(W1 s)‖_∞ ([D]) -> FAIL")
    if n_impl:
        passed = False
        msgs.append(f"{n_impl} [D] implication violations (bound failed on its core event) -> FAIL")
    if cons > CONSISTENCY_RTOL:
        passed = False
        msgs.append(f"τ_(N,δ) differs from M-Cor 5.10's term: rel err {cons:.3g} > "
                    f"{CONSISTENCY_RTOL} -> FAIL")
    if not (n_step or n_impl or cons > CONSISTENCY_RTOL):
        msgs.append(f"[D] checks: 0 step and 0 implication violations; τ_(N,δ) = M-Cor 5.10 term "
                    f"to {cons:.2g}")
    for st, grp in summary.groupby("cfg_structure"):
        per_n = grp.groupby("cfg_N").agg(a=("a_mean", "median"),
                                         vac=("cor314_vacuous_frac", "mean")).sort_index()
        parts = ", ".join(f"N={int(n)}: a={r.a:.3g}, vacuous {r.vac:.0%}"
                          for n, r in per_n.iterrows())
        msgs.append(f"{st}: mean a(N,s) over T and E-Cor 3.14 vacuous fraction (reported): {parts}")
    return Conclusion(passed, tuple(msgs))


register(Experiment(
    name=NAME,
    description="Gaussian three-layer model: logit, label, CE and regularised-loss events",
    results=("E-Lemma 3.13", "E-Cor 3.14", "E-Lemma 3.15", "E-Thm 3.16", "E-Thm 3.18",
             "E-Cor 3.19"),
    grid=grid,
    trial=trial,
    summarize=summarize,
    check=check,
    n_trials=n_trials,
    tags=("P", "coverage", "gaussian"),
))
