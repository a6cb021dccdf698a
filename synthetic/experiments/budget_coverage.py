r"""Coverage of the Gaussian, MP-edge and sub-Gaussian budget bounds (THEORY §2.3).

Implements the Monte Carlo check ("BinomCheck") of M-Cor 5.10 [P], its MP-edge rewrite
M-Cor 5.11 [P], E-Cor 1.4 [P] (sub-Gaussian rows) and E-Cor 1.5/1.6 [P] (simultaneous
multi-layer budgets with masked Gaussian removed components), arXiv 2606.02608.

Single-layer cells (``kind="single"``)
--------------------------------------
R ∈ ℝ^{n×m} (n = rows) has iid entries of variance g/n: Gaussian (M-Cor 5.10/5.11), Rademacher
±√(g/n) (E-Cor 1.4 with tail constant c = 1/2) or uniform on [−√(3g/n), √(3g/n)] (c = 1/6,
Hoeffding). The inputs v_s (columns of V ∈ ℝ^{m×|T|}) and the constants L_s are fixed by the
configuration, never by the trial seed, so they are independent of R (Trap T9). One trial is one
draw of R and records the *core event*

.. math:: \|R v_s\|_\infty \le \|v_s\|_2\, t \quad\text{for all } s\in T,
          \qquad t = \sqrt{(g/(c\,n))\log(2n|T|/\delta)}

(c = 1/2 gives M-Cor 5.10's :math:`t_\delta`), whose failure probability the theorem bounds by
δ; the realised budget :math:`B_T(R) = (2/|T|)\sum_s L_s\|Rv_s\|_\infty` (M-eq. 8), the bound
:math:`(2/|T|)\sum_s L_s\|v_s\|_2\,t` and the tightness ratio bound/B_T of issue 3 (≥ 1 on
the event; closer to 1 = tighter). The ratio is undefined when B_T = 0 (only for degenerate
inputs, every L_s‖Rv_s‖_∞ = 0): the trial then reports ``tightness = None`` (JSON null, NaN in
pandas), which the summary medians skip; JSON has no ∞ and a sentinel number would bias them.
For Gaussian R with ``sampler="rv"`` the n×|T| matrix R·V is drawn directly with the exact
shortcut of THEORY §2.3 (:func:`certkit.mc.sample_rv`; the thin-QR factor of V is cached per
configuration). With ``sampler="full"`` R itself is drawn, which also allows the *exploratory*
Trap T10 columns: the event with M-Cor 5.11's nominal edge σ₊,R = √g(1+√(m/n)) replaced by the
BEMA-fitted edge of R (:func:`certkit.rmt.fit_mp`) or by the top singular value s₁(R). These
substitutions are **not covered** by the theorem; they are reported, never asserted.

Multi-layer cells (``kind="multilayer"``)
-----------------------------------------
A ReLU MLP m → n → … → n → ``HEAD_OUT`` whose first ``layers`` matrices are W_j = S_j + R_j with
disjoint supports: S_j lives on an independent random mask and R_j = (1 − Mask_j) ⊙ G_j with
fresh G_j iid N(0, g/n_j) (E-Cor 1.6 with c_j = 1/2, THEORY §2.3.4). The layers are pruned in
order j = 1, 2, …; at step j the inputs v_{j,s} are computed in the intermediate network (layers
< j already pruned, so v_{j,s} does not depend on R_j) and L_{j,s} is the data-free bound L0 of
the downstream weights of that network (THEORY §1.6). δ_j = δ/M; the recorded event is the
joint one (all layers, all samples), bounds from :func:`certkit.bounds.multilayer_budget_bounds`.

Verdict
-------
Per cell: k failures in n trials, coverage 1 − k/n with a two-sided Clopper–Pearson interval
and BinomCheck's p_lo. The experiment FAILS if, for any cell, the upper end of the coverage
interval is below 1 − δ (issue 3), i.e. there is significant evidence that the failure
probability exceeds δ. The interval level is Bonferroni-adjusted over the cells so that the
false-failure rate of the whole grid is at most ``FAMILY_FALSE_FAILURE`` (THEORY §2.3). Also
asserted, as deterministic consistency checks: the M-Cor 5.11 right-hand side with the nominal
edge equals the M-Cor 5.10 one (THEORY §3.3 S6), and on the core event B_T ≤ bound.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import torch

from certkit.bounds import (
    LayerNoiseModel,
    gaussian_budget_bound,
    mp_edge_budget_bound,
    multilayer_budget_bounds,
    nominal_edge,
    subgaussian_budget_bound,
)
from certkit.lipschitz import lipschitz_L0
from certkit.mc import clopper_pearson
from certkit.mlp import MLP
from certkit.rmt import fit_mp
from synthetic.experiments._common import (
    FAMILY_FALSE_FAILURE,
    binomial_summary,
    config_key,
    config_rng,
    trial_rng,
    with_defaults,
)
from synthetic.registry import Conclusion, Experiment, register

__all__ = [
    "CONFIG_DEFAULTS",
    "ENTRY_LAWS",
    "FAMILY_FALSE_FAILURE",
    "INPUT_KINDS",
    "LIPSCHITZ_CHOICES",
    "TAIL_CONSTANTS",
    "binomial_summary",
    "check",
    "config_key",
    "config_rng",
    "draw_rv",
    "grid",
    "n_trials",
    "summarize",
    "trial",
    "trial_rng",
    "validate_config",
]

#: Sub-Gaussian tail constant c of E-Cor 1.4 per entry law: Gaussian c = 1/2 (M-Cor 5.10),
#: Rademacher c = 1/2 (Hoeffding), uniform c = 1/6 (Hoeffding; THEORY §2.3.3).
TAIL_CONSTANTS = {"gaussian": 0.5, "rademacher": 0.5, "uniform": 1.0 / 6.0}
ENTRY_LAWS = tuple(TAIL_CONSTANTS)

#: Inputs v_s: iid N(0, 1) vectors, one-hot e_{s mod m}, or one Gaussian vector repeated.
INPUT_KINDS = ("gaussian", "onehot", "identical")

#: R-independent L_s: 1; log-normal per-sample values fixed by the configuration; L0 of a
#: fixed downstream ReLU head (THEORY §1.6).
LIPSCHITZ_CHOICES = ("one", "varied", "l0")

SAMPLERS = ("rv", "full")
KINDS = ("single", "multilayer")

#: Every configuration carries every key (so that the runner's cfg_<key> columns agree).
CONFIG_DEFAULTS = {
    "kind": "single",
    "law": "gaussian",
    "sampler": "rv",
    "n": 64,
    "m": 64,
    "T": 16,
    "delta": 0.1,
    "g": 1.0,
    "inputs": "gaussian",
    "lipschitz": "one",
    "layers": 1,
    # Negative control only: the bound is evaluated at δ·delta_factor while coverage is still
    # judged against the claimed 1 − δ (a deliberately mis-stated δ must be rejected).
    "delta_factor": 1.0,
    # Trap T10 exploratory columns (BEMA-fitted edge and s1(R) in place of the nominal edge);
    # needs sampler "full" and min(n, m) >= FIT_MIN_DIM.
    "explore_edge": False,
}

#: Output width of the fixed downstream head (single-layer "l0" and multi-layer networks).
HEAD_OUT = 10
#: Density of the signal masks S_j in the multi-layer cells (S_j and R_j have disjoint supports).
MULTILAYER_SIGNAL_DENSITY = 0.5
#: Smallest min(n, m) for which the exploratory BEMA fit of R is attempted (fit_mp needs
#: MIN_WINDOW = 8 eigenvalues in its central window; 32 leaves a comfortable margin).
FIT_MIN_DIM = 32
#: Relative tolerance of the [D] identity "M-Cor 5.11 RHS = M-Cor 5.10 RHS" (THEORY §2.3.2).
REWRITE_RTOL = 1e-12
#: THEORY §0.3 float64 tolerances for "B_T ≤ bound on the event" ([D] given the event).
ATOL, RTOL = 1e-10, 1e-9
#: Default trials per cell (THEORY §2.3.1 uses 4000 for the full design).
N_TRIALS_FULL, N_TRIALS_QUICK = 4000, 300
#: Number of worst cells listed in the verdict messages.
N_WORST = 3


# --------------------------------------------------------------------------------------------
# configuration handling (shared with the other experiment modules)
# --------------------------------------------------------------------------------------------
def _check_choice(config: dict, key: str, choices) -> None:
    if config[key] not in choices:
        raise ValueError(f"config[{key!r}] == {config[key]!r}, must be one of {tuple(choices)}")


def _check_int(config: dict, key: str, min_val: int) -> None:
    v = config[key]
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < min_val:
        raise ValueError(f"config[{key!r}] == {v!r}, must be an int >= {min_val}")


def _check_open01(config: dict, key: str) -> None:
    v = config[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 < v < 1.0:
        raise ValueError(f"config[{key!r}] == {v!r}, must be a probability in (0, 1)")


def _check_positive(config: dict, key: str) -> None:
    v = config[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
        raise ValueError(f"config[{key!r}] == {v!r}, must be a finite number > 0")


def validate_config(config: dict) -> dict:
    """Return the configuration with defaults filled in; raise ValueError if it is invalid.

    Unknown keys, unknown laws / input kinds / samplers and out-of-range numbers (δ ∉ (0, 1),
    n < 1, ...) are rejected with a message listing the valid values.
    """
    cfg = with_defaults(config, CONFIG_DEFAULTS)
    _check_choice(cfg, "kind", KINDS)
    _check_choice(cfg, "law", ENTRY_LAWS)
    _check_choice(cfg, "sampler", SAMPLERS)
    _check_choice(cfg, "inputs", INPUT_KINDS)
    _check_choice(cfg, "lipschitz", LIPSCHITZ_CHOICES)
    for key in ("n", "m", "T", "layers"):
        _check_int(cfg, key, 1)
    _check_open01(cfg, "delta")
    _check_positive(cfg, "g")
    _check_positive(cfg, "delta_factor")
    if not cfg["delta"] * cfg["delta_factor"] < 1.0:
        raise ValueError(f"delta * delta_factor == {cfg['delta'] * cfg['delta_factor']}, "
                         "must be < 1 (the bound is evaluated at that failure probability)")
    if cfg["sampler"] == "rv" and cfg["law"] != "gaussian":
        raise ValueError(f"sampler 'rv' (the exact R·V shortcut) needs law 'gaussian', got "
                         f"{cfg['law']!r}; use sampler 'full' for {cfg['law']!r}")
    if not isinstance(cfg["explore_edge"], bool):
        raise ValueError(f"config['explore_edge'] == {cfg['explore_edge']!r}, must be a bool")
    if cfg["explore_edge"] and (cfg["sampler"] != "full" or cfg["kind"] != "single"
                                or min(cfg["n"], cfg["m"]) < FIT_MIN_DIM):
        raise ValueError("explore_edge needs kind 'single', sampler 'full' and min(n, m) >= "
                         f"{FIT_MIN_DIM} (R is drawn explicitly and fitted), got {cfg}")
    if cfg["kind"] == "multilayer":
        if cfg["layers"] < 2:
            raise ValueError(f"config['layers'] == {cfg['layers']}, must be >= 2 for kind "
                             "'multilayer' (E-Cor 1.5/1.6)")
        if (cfg["law"], cfg["sampler"], cfg["inputs"], cfg["lipschitz"]) != (
                "gaussian", "full", "gaussian", "l0"):
            raise ValueError("kind 'multilayer' needs law 'gaussian', sampler 'full', inputs "
                             "'gaussian' and lipschitz 'l0' (masked Gaussian R_j, L0 bounds)")
    elif cfg["layers"] != 1:
        raise ValueError(f"config['layers'] == {cfg['layers']}, must be 1 for kind 'single'")
    return cfg


# --------------------------------------------------------------------------------------------
# binomial summary (shared with the thresholding experiment)
# --------------------------------------------------------------------------------------------
def _cfg_columns(df: pd.DataFrame) -> list[str]:
    cols = [c for c in df.columns if c.startswith("cfg_")]
    if not cols:
        raise ValueError("trials table has no cfg_<key> columns (the runner adds them)")
    return cols


# --------------------------------------------------------------------------------------------
# fixed (R-independent) ingredients of one configuration, cached per configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Single:
    V: np.ndarray          # (m, |T|) inputs as columns
    norms: np.ndarray      # ‖v_s‖_2
    L: np.ndarray          # L_s
    rv_factor: np.ndarray  # thin-QR factor R_V (r, |T|) of V
    threshold: float       # t (at δ·delta_factor)
    bound: float           # (2/|T|) Σ L_s ‖v_s‖_2 t
    rewrite_rel_err: float  # |RHS 5.11 − RHS 5.10| / RHS 5.10 (gaussian; 0 otherwise)
    sigma_plus: float      # nominal edge √g(1 + √(m/n))


def _inputs(cfg: dict, rng: np.random.Generator) -> np.ndarray:
    m, T = cfg["m"], cfg["T"]
    if cfg["inputs"] == "gaussian":
        return rng.standard_normal((m, T))
    if cfg["inputs"] == "onehot":
        V = np.zeros((m, T))
        V[np.arange(T) % m, np.arange(T)] = 1.0
        return V
    return np.repeat(rng.standard_normal((m, 1)), T, axis=1)


def _head_l0(n: int, rng: np.random.Generator) -> float:
    """L0 (THEORY §1.6) of a fixed ReLU head ψ2(u) = W_head·ReLU(u), W_head ~ N(0, 1/n)."""
    head = rng.standard_normal((HEAD_OUT, n)) / math.sqrt(n)
    mlp = MLP((torch.zeros(n, 1), torch.from_numpy(head)),
              (torch.zeros(n), torch.zeros(HEAD_OUT)), activation="relu")
    return float(lipschitz_L0(mlp, 0).values[0])


@lru_cache(maxsize=256)
def _single_setup(key: str) -> _Single:
    cfg = json.loads(key)
    rng = config_rng(cfg)
    n, m, T, g = cfg["n"], cfg["m"], cfg["T"], float(cfg["g"])
    V = _inputs(cfg, rng)
    if cfg["lipschitz"] == "one":
        L = np.ones(T)
    elif cfg["lipschitz"] == "varied":
        L = np.exp(rng.standard_normal(T))
    else:
        L = np.full(T, _head_l0(n, rng))
    delta_b = cfg["delta"] * cfg["delta_factor"]
    Vt = torch.from_numpy(V.T.copy())
    Lt = torch.from_numpy(L)
    if cfg["law"] == "gaussian":
        b = gaussian_budget_bound(Vt, Lt, n=n, g=g, delta=delta_b)
        sp = nominal_edge(g, n, m)
        b11 = mp_edge_budget_bound(Vt, Lt, n=n, sigma_plus=sp, delta=delta_b)
        rel = abs(b11.value - b.value) / max(abs(b.value), np.finfo(float).tiny)
    else:
        b = subgaussian_budget_bound(Vt, Lt, n=n, g=g, c=TAIL_CONSTANTS[cfg["law"]],
                                     delta=delta_b)
        sp, rel = nominal_edge(g, n, m), 0.0
    _, rv_factor = np.linalg.qr(V, mode="reduced")
    return _Single(V, np.linalg.norm(V, axis=0), L, rv_factor, b.threshold, b.value, rel, sp)


def _tightness(bound: float, budget: float) -> float | None:
    """Tightness ratio bound/B_T of issue 3 (≥ 1 on the core event); None if B_T == 0."""
    return bound / budget if budget > 0 else None


def draw_rv(rv_factor: np.ndarray, n: int, g: float, rng: np.random.Generator) -> np.ndarray:
    r"""One draw of R·V (n × |T|) for R iid N(0, g/n), from the cached thin-QR factor of V.

    Exactly :func:`certkit.mc.sample_rv` with ``size=1`` (same generator calls, same result),
    but without recomputing the QR factorisation in every trial (THEORY §2.3).
    """
    z = rng.standard_normal((n, rv_factor.shape[0])) * math.sqrt(g / n)
    return z @ rv_factor


def _draw_matrix(law: str, shape, g: float, rng: np.random.Generator) -> np.ndarray:
    """Entries of variance g/n (n = shape[0]) with the given law (THEORY §2.3.3)."""
    scale = math.sqrt(g / shape[0])
    if law == "gaussian":
        return rng.standard_normal(shape) * scale
    if law == "rademacher":
        return (rng.integers(0, 2, size=shape) * 2.0 - 1.0) * scale
    return rng.uniform(-math.sqrt(3.0), math.sqrt(3.0), size=shape) * scale


def _single_trial(cfg: dict, rng: np.random.Generator) -> dict:
    st = _single_setup(config_key(cfg))
    n, m, g = cfg["n"], cfg["m"], float(cfg["g"])
    R = None
    if cfg["sampler"] == "rv":
        RV = draw_rv(st.rv_factor, n, g, rng)
    else:
        R = _draw_matrix(cfg["law"], (n, m), g, rng)
        RV = R @ st.V
    sup = np.abs(RV).max(axis=0)                      # ‖R v_s‖_∞
    scale = st.norms * st.threshold                   # ‖v_s‖_2 · t
    ratio = np.divide(sup, scale, out=np.zeros_like(sup), where=scale > 0)
    event = bool(np.all(sup <= scale))
    budget = float(2.0 * np.mean(st.L * sup))
    row = {
        "failure": not event,
        "max_ratio": float(ratio.max()),
        "budget": budget,
        "bound": st.bound,
        "tightness": _tightness(st.bound, budget),
        "threshold": st.threshold,
        "budget_violation_on_event": bool(
            event and budget > st.bound + ATOL + RTOL * max(budget, st.bound)),
        "rewrite_rel_err": st.rewrite_rel_err,
    }
    if cfg["explore_edge"]:
        # Trap T10 (exploratory, never asserted): plug a fitted / empirical edge into M-Cor 5.11.
        s1 = float(np.linalg.norm(R, 2))
        fit_sp = fit_mp(R).sigma_plus
        row["fitted_sigma_plus_ratio"] = fit_sp / st.sigma_plus
        row["fitted_edge_failure"] = bool(np.any(sup > scale * fit_sp / st.sigma_plus))
        row["s1_ratio"] = s1 / st.sigma_plus
        row["s1_edge_failure"] = bool(np.any(sup > scale * s1 / st.sigma_plus))
    return row


# --------------------------------------------------------------------------------------------
# multi-layer cells (E-Cor 1.5 / 1.6)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Multi:
    S: tuple[np.ndarray, ...]      # signal parts of the pruned layers (on the masks)
    free: tuple[np.ndarray, ...]   # 1 − Mask_j (where R_j lives)
    head: np.ndarray               # fixed, unpruned last layer
    V: tuple[np.ndarray, ...]      # v_{j,s} as rows, shape (|T|, n_{j−1})


@lru_cache(maxsize=64)
def _multi_setup(key: str) -> _Multi:
    cfg = json.loads(key)
    rng = config_rng(cfg)
    n, m, T, M = cfg["n"], cfg["m"], cfg["T"], cfg["layers"]
    dims = [m] + [n] * M
    S, free = [], []
    for j in range(M):
        mask = rng.random((dims[j + 1], dims[j])) < MULTILAYER_SIGNAL_DENSITY
        S.append(np.where(mask, rng.standard_normal(mask.shape) / math.sqrt(dims[j]), 0.0))
        free.append((~mask).astype(np.float64))
    head = rng.standard_normal((HEAD_OUT, n)) / math.sqrt(n)
    # v_{j,s}: inputs of layer j in the intermediate network (layers < j pruned to S).
    h = rng.standard_normal((T, m)) / math.sqrt(m)
    V = []
    for j in range(M):
        V.append(h)
        h = np.maximum(h @ S[j].T, 0.0)
    return _Multi(tuple(S), tuple(free), head, tuple(V))


def _multi_trial(cfg: dict, rng: np.random.Generator) -> dict:
    st = _multi_setup(config_key(cfg))
    g, M = float(cfg["g"]), cfg["layers"]
    R = [f * rng.standard_normal(f.shape) * math.sqrt(g / f.shape[0]) for f in st.free]
    models, sups = [], []
    for j in range(M):
        # Intermediate network α^{(j−1)}: downstream layers j+1..M still hold S + R, then head.
        down = [st.S[i] + R[i] for i in range(j + 1, M)] + [st.head]
        weights = [torch.zeros(st.S[j].shape)] + [torch.from_numpy(W) for W in down]
        mlp = MLP(tuple(weights), tuple(torch.zeros(W.shape[0]) for W in weights))
        L = lipschitz_L0(mlp, 0)
        models.append(LayerNoiseModel(V=torch.from_numpy(st.V[j]), L=L, n=R[j].shape[0], g=g))
        sups.append(np.abs(st.V[j] @ R[j].T).max(axis=1))     # ‖R_j v_{j,s}‖_∞
    delta_b = cfg["delta"] * cfg["delta_factor"]
    bounds = multilayer_budget_bounds(models, delta_b)
    event, total_b, total_bound, max_ratio, violation = True, 0.0, 0.0, 0.0, False
    for j, (b, sup, lay) in enumerate(zip(bounds, sups, models, strict=True)):
        scale = np.linalg.norm(st.V[j], axis=1) * b.threshold
        ev_j = bool(np.all(sup <= scale))
        Bj = float(2.0 * np.mean(np.asarray(lay.L.values) * sup))
        event &= ev_j
        violation |= ev_j and Bj > b.value + ATOL + RTOL * max(Bj, b.value)
        total_b += Bj
        total_bound += b.value
        ratio = np.divide(sup, scale, out=np.zeros_like(sup), where=scale > 0)
        max_ratio = max(max_ratio, float(ratio.max()))
    return {
        "failure": not event,
        "max_ratio": max_ratio,
        "budget": total_b,
        "bound": total_bound,
        "tightness": _tightness(total_bound, total_b),
        "threshold": float(bounds[0].threshold),
        "budget_violation_on_event": bool(violation),
        "rewrite_rel_err": 0.0,
    }


# --------------------------------------------------------------------------------------------
# the experiment contract
# --------------------------------------------------------------------------------------------
def trial(config: dict, seed: int) -> dict:
    """One draw of R for ``config``; deterministic in (config, seed). See the module docstring.

    Returns ``failure`` (core event violated), ``max_ratio`` = max_s ‖Rv_s‖_∞/(‖v_s‖_2 t),
    ``budget`` (realised B_T, or Σ_j B_j), ``bound``, ``tightness`` = bound/budget (issue 3;
    None when the budget is 0), and for
    ``explore_edge=True`` the exploratory Trap T10 columns ``fitted_edge_failure``,
    ``s1_edge_failure`` (and the edge ratios to the nominal σ₊,R).
    """
    cfg = validate_config(config)
    rng = trial_rng(cfg, seed)
    if cfg["kind"] == "multilayer":
        return _multi_trial(cfg, rng)
    return _single_trial(cfg, rng)


def _cell(**kw) -> dict:
    return validate_config(kw)


def grid(quick: bool) -> list[dict]:
    """Configurations (THEORY §2.3.1 design, fractional outside the Gaussian core grid)."""
    if quick:
        cells = [
            _cell(n=8, m=4, T=1, delta=0.5),
            _cell(n=64, m=64, T=16, delta=0.1, inputs="onehot", lipschitz="varied"),
            _cell(n=64, m=16, T=16, delta=0.1, inputs="identical", lipschitz="l0", g=4.0),
            _cell(n=64, m=64, T=4, delta=0.1, law="rademacher", sampler="full"),
            _cell(n=64, m=64, T=4, delta=0.1, law="uniform", sampler="full"),
            _cell(n=32, m=32, T=4, delta=0.1, sampler="full", explore_edge=True),
            _cell(kind="multilayer", layers=2, n=32, m=16, T=8, delta=0.1, sampler="full",
                  lipschitz="l0"),
        ]
        return cells
    cells = []
    for n in (8, 64, 512):
        for m in (4, 64, 1024):
            for T in (1, 16, 128):
                for delta in (0.01, 0.1, 0.5):
                    for inputs in INPUT_KINDS:
                        cells.append(_cell(n=n, m=m, T=T, delta=delta, inputs=inputs))
    for g in (0.1, 4.0):
        for lip in LIPSCHITZ_CHOICES:
            cells.append(_cell(n=64, m=64, T=16, delta=0.1, g=g, lipschitz=lip))
    for law in ("rademacher", "uniform"):
        for n in (8, 64, 512):
            for m, T in ((4, 16), (64, 1), (64, 16)):
                for delta in (0.01, 0.5):
                    for inputs in INPUT_KINDS:
                        cells.append(_cell(law=law, sampler="full", n=n, m=m, T=T, delta=delta,
                                           inputs=inputs))
    for n, m in ((64, 64), (256, 64), (128, 512)):       # Trap T10 exploratory columns
        cells.append(_cell(sampler="full", n=n, m=m, T=16, delta=0.1, explore_edge=True))
    for layers in (2, 3):
        for n in (32, 128):
            for delta in (0.01, 0.1):
                cells.append(_cell(kind="multilayer", layers=layers, n=n, m=32, T=16,
                                   delta=delta, sampler="full", lipschitz="l0"))
    return cells


def n_trials(quick: bool) -> int:
    """Default trials per cell."""
    return N_TRIALS_QUICK if quick else N_TRIALS_FULL


def summarize(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: trials, failures, coverage, Clopper–Pearson interval, p_lo,
    median tightness bound/B_T (trials with B_T = 0 skipped; NaN if there are none) and
    max_ratio, and the exploratory Trap T10 coverages (NaN if absent)."""
    cols = _cfg_columns(trials)
    groups = list(trials.groupby(cols, dropna=False, sort=True))
    rows = []
    for key, df in groups:
        key = key if isinstance(key, tuple) else (key,)
        delta = float(df["cfg_delta"].iloc[0])
        row = dict(zip(cols, key, strict=True))
        row.update(binomial_summary(int(df["failure"].astype(bool).sum()), len(df), delta,
                                    len(groups)))
        row["median_tightness"] = float(pd.to_numeric(df["tightness"], errors="coerce").median())
        row["median_max_ratio"] = float(df["max_ratio"].median())
        row["max_rewrite_rel_err"] = float(df["rewrite_rel_err"].max())
        row["violations_on_event"] = int(df["budget_violation_on_event"].astype(bool).sum())
        for name in ("fitted_edge", "s1_edge"):
            col = f"{name}_failure"
            ok = df[col].notna() if col in df else pd.Series(False, index=df.index)
            row[f"{name}_coverage"] = (1.0 - float(df.loc[ok, col].astype(bool).mean())
                                       if ok.any() else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def _describe(row) -> str:
    keys = ("kind", "law", "n", "m", "T", "delta", "g", "inputs", "layers", "delta_factor")
    cfg = ", ".join(f"{k}={row[f'cfg_{k}']}" for k in keys if f"cfg_{k}" in row)
    return (f"[{cfg}] failures {row['failures']}/{row['trials']}, coverage "
            f"{row['coverage']:.4f} CI [{row['coverage_lo']:.4f}, {row['coverage_hi']:.4f}] "
            f"vs 1-δ = {1 - row['cfg_delta']:.4f}, median bound/B_T {row['median_tightness']:.3g}")


def _tightness_vs_n(summary: pd.DataFrame) -> list[str]:
    """Report-only "tightness vs n" lines: per cell kind, the median over cells of each cell's
    median bound/B_T, by n (issue 3; cells whose median is undefined are skipped)."""
    if "cfg_n" not in summary or "median_tightness" not in summary:
        return []
    s = summary.assign(_kind=summary["cfg_kind"] if "cfg_kind" in summary else "all")
    s = s[s["median_tightness"].notna()]
    msgs = []
    for kind, grp in s.groupby("_kind", sort=True):
        per_n = grp.groupby("cfg_n")["median_tightness"].median().sort_index()
        parts = ", ".join(f"n={int(n)}: {v:.3g}" for n, v in per_n.items())
        msgs.append(f"tightness vs n ({kind}; median over cells of the median bound/B_T, "
                    f"reported only): {parts}")
    return msgs


def check(summary: pd.DataFrame) -> Conclusion:
    """FAIL if any cell's coverage interval lies entirely below 1 − δ (Bonferroni level over the
    cells), or if a deterministic consistency check is violated; worst cells are listed."""
    if len(summary) == 0:
        return Conclusion(False, ("no cells to check",))
    s = summary.copy()
    n_cells = len(s)
    level = 1.0 - FAMILY_FALSE_FAILURE / n_cells
    hi = []
    for k, n in zip(s["failures"], s["trials"], strict=True):
        lo_fail, _ = clopper_pearson(int(k), int(n), level)
        hi.append(1.0 - lo_fail)
    s["coverage_hi"] = hi
    s["margin"] = s["coverage_hi"] - (1.0 - s["cfg_delta"].astype(float))
    s = s.sort_values("margin")
    rejected = s[s["margin"] < 0]
    msgs = []
    passed = True
    if len(rejected):
        passed = False
        msgs.append(f"coverage REJECTED in {len(rejected)}/{n_cells} cells (upper end of the "
                    f"two-sided {level:.6f} Clopper–Pearson interval < 1 − δ):")
        msgs += [_describe(r) for _, r in rejected.head(N_WORST).iterrows()]
    else:
        msgs.append(f"coverage not rejected in any of {n_cells} cells (two-sided Clopper–Pearson "
                    f"at level {level:.6f}, family false-failure ≤ {FAMILY_FALSE_FAILURE}); "
                    "closest cells:")
        msgs += [_describe(r) for _, r in s.head(N_WORST).iterrows()]
    worst_rel = float(s["max_rewrite_rel_err"].max())
    if worst_rel > REWRITE_RTOL:
        passed = False
        msgs.append(f"M-Cor 5.11 RHS differs from M-Cor 5.10 RHS: rel err {worst_rel:.3g} > "
                    f"{REWRITE_RTOL}")
    n_viol = int(s["violations_on_event"].sum())
    if n_viol:
        passed = False
        msgs.append(f"{n_viol} trials with B_T > bound on the core event ([D] violation)")
    msgs += _tightness_vs_n(s)
    expl = s[s["fitted_edge_coverage"].notna()]
    for _, r in expl.iterrows():
        msgs.append(f"exploratory (Trap T10, not asserted) n={r['cfg_n']}, m={r['cfg_m']}: "
                    f"coverage with fitted edge {r['fitted_edge_coverage']:.4f}, with s1(R) "
                    f"{r['s1_edge_coverage']:.4f}, nominal {r['coverage']:.4f}")
    return Conclusion(passed, tuple(msgs))


register(Experiment(
    name="budget_coverage",
    description="coverage of the Gaussian, MP-edge and sub-Gaussian budget bounds",
    results=("M-Cor 5.10", "M-Cor 5.11", "E-Cor 1.4", "E-Cor 1.5", "E-Cor 1.6"),
    grid=grid,
    trial=trial,
    summarize=summarize,
    check=check,
    n_trials=n_trials,
    tags=("P", "coverage"),
))
