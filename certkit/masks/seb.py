r"""SEB / "S+" — Spectral Edge Budgeting (ALGORITHMS §4).

A global magnitude ranking with per-layer weights derived from a spectral signal of the dense
weights (σ₊ of the MP fit, or the Hill exponent α of §1.8):

.. math::
    z_\ell = \frac{x_\ell - \bar x}{\operatorname{std}(x)},\qquad
    d(s) = \bigl(1 - s/s_d\bigr)_+^{\,p},\qquad
    w_\ell = \max\bigl(0.1,\ 1 + \beta_\ell\, d(s)\, z_\ell\bigr),\qquad
    \text{score}_{ij} = |W_{ij}| / w_\ell ,

then exactly ``round(s·P)`` entries with the smallest score are pruned over the union of the
selected tensors (ALGORITHMS §4.2 with the exact-count convention of §A.2 — the repository's
"first convention" can remove fewer than ⌊sP⌋ entries on ties; certkit breaks ties by the flat
index of the concatenated tensors, smaller index pruned first). ``w_ℓ > 1`` ⇒ more pruning:
with β > 0 and s < s_d, **layers with a larger signal (larger σ₊, or lighter-tailed spectra =
larger Hill α) receive higher sparsity**. At β = 0 or s ≥ s_d SEB is global magnitude.
The per-layer counts that result (the "budgets") sum exactly to ``round(s·P)`` and are
reported in ``MaskSet.params["layers"]``.

Choices (documented parameters; ALGORITHMS §11 items 18, 25):

* z uses the population std (ddof = 0); if std < 1e-12 every w = 1.
* A layer without a signal (e.g. too small for the MP fit) gets the neutral z = 0 (w = 1)
  by default (``missing="neutral"``; §4.2 DEFAULT, §11 item 25); ``missing="zero"``
  reproduces the repository (x = 0.0 enters the z-score).
* Signals are computed once on the weights given (the dense model; §4.1 caches them), on the
  matrix view of §1.7; pass ``signals=`` to reuse cached values for cumulative pruning.
* Defaults follow the code column of the regime table §4.3 (:func:`seb_regime`).
* β_attn/β_mlp apply when both are set, by the "seb" layer-type rule of §A.1
  (:func:`~certkit.masks.layer_type` with ``scheme="seb"``); z stays global.

Not implemented: the Haar singular-vector pre-processing of §4.4 (left for a later session).
Data-free: ``calibration`` is accepted and ignored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from .._validation import check_int, check_scalar
from ..rmt import fit_mp, singular_values
from ._modules import dense_weight, matrix_view
from .base import check_sparsity, check_weight
from .build import register_method, require_unstructured
from .magnitude import global_magnitude_masks
from .maskset import MaskSet
from .selection import SEB_LAYER_TYPES, layer_type

__all__ = [
    "SEB_MISSING",
    "SEB_SIGNALS",
    "W_FLOOR",
    "hill_alpha",
    "seb_masks",
    "seb_regime",
    "seb_signals",
    "seb_weights",
]

#: Spectral signals: σ₊ of the MP fit (V2-equivalent, §1.2) or the Hill exponent (§1.8).
SEB_SIGNALS = ("sigma_plus", "alpha")
#: Treatment of layers without a signal.
SEB_MISSING = ("neutral", "zero")
#: Floor on the layer weight w_ℓ (ALGORITHMS §4.2, §11 item 30).
W_FLOOR = 0.1
#: Hill k of ALGORITHMS §1.8 (fixed at 20 in the repository).
HILL_K = 20
#: Value returned by :func:`hill_alpha` when fewer than 3 singular values exist (repo: 99.0).
HILL_DEGENERATE = 99.0


def hill_alpha(s, k_hill: int = HILL_K) -> float:
    r"""Hill / power-law exponent of the squared singular values (ALGORITHMS §1.8).

    With :math:`e_1 \ge e_2 \ge \dots` the sorted :math:`s_i^2` (raw, unnormalised) and
    ``k = min(k_hill, len(e) − 1)``:
    :math:`\alpha = 1 + 1/\max\bigl(\tfrac1k\sum_{i<k}(\log e_i - \log e_k),\,10^{-6}\bigr)`
    (0-based, so e_k is the (k+1)-th largest). Returns 99.0 if k < 2. Lower α = heavier tail.
    Exact zeros are clamped to the smallest positive double (a rank-deficient tail then gives
    α ≈ 1).

    Parameters
    ----------
    s : array_like
        Singular values (any order; negative values rejected).
    k_hill : int, default=20
    """
    k_hill = check_int(k_hill, "k_hill", min_val=1)
    v = np.asarray(s, dtype=np.float64).ravel()
    if v.size and (not np.all(np.isfinite(v)) or np.any(v < 0)):
        raise ValueError("s must hold finite, non-negative singular values")
    e = np.sort(v * v)[::-1]
    k = min(k_hill, e.size - 1)
    if k < 2:
        return HILL_DEGENERATE
    le = np.log(np.maximum(e[: k + 1], np.finfo(np.float64).tiny))
    return float(1.0 + 1.0 / max(float(np.mean(le[:k] - le[k])), 1e-6))


def seb_regime(sparsity) -> dict:
    """Default SEB hyper-parameters for a target sparsity (ALGORITHMS §4.3, code column).

    ========================  ==========  =====  =====  ====================
    regime                    signal      β      s_d    layer type
    ========================  ==========  =====  =====  ====================
    s ≤ 0.20                  Hill α      0.50   0.30   —
    0.20 < s ≤ 0.40           σ₊          1.00   0.50   —
    0.40 < s ≤ 0.55           σ₊          1.25   0.70   —
    s > 0.55                  σ₊          1.50   0.85   β_attn 1.0, β_mlp 2.0
    ========================  ==========  =====  =====  ====================

    p = 1 everywhere. Returns a dict with keys ``regime, signal, beta, s_d, p, beta_attn,
    beta_mlp``.
    """
    s = check_sparsity(sparsity)
    if s <= 0.20:
        return {"regime": "alpha_budget", "signal": "alpha", "beta": 0.5, "s_d": 0.30, "p": 1.0,
                "beta_attn": None, "beta_mlp": None}
    if s <= 0.40:
        return {"regime": "splus_low", "signal": "sigma_plus", "beta": 1.0, "s_d": 0.50,
                "p": 1.0, "beta_attn": None, "beta_mlp": None}
    if s <= 0.55:
        return {"regime": "splus_mid", "signal": "sigma_plus", "beta": 1.25, "s_d": 0.70,
                "p": 1.0, "beta_attn": None, "beta_mlp": None}
    return {"regime": "splus_layer_type", "signal": "sigma_plus", "beta": 1.5, "s_d": 0.85,
            "p": 1.0, "beta_attn": 1.0, "beta_mlp": 2.0}


def _signal(w: torch.Tensor, signal: str, fit_kwargs: dict) -> float | None:
    A = matrix_view(w).to(torch.float64)
    if signal == "sigma_plus":
        try:
            return float(fit_mp(A, **fit_kwargs).sigma_plus)
        except ValueError:  # too small for the BEMA window: no signal
            return None
    return hill_alpha(singular_values(A))


def seb_signals(weights: Mapping[str, torch.Tensor], signal: str = "sigma_plus",
                **fit_kwargs) -> dict[str, float | None]:
    """Per-layer spectral signal x_ℓ on the matrix view (ALGORITHMS §4.1, §1.7).

    ``"sigma_plus"``: :func:`certkit.rmt.fit_mp` σ₊ (None when the layer is too small for the
    fit; ``fit_kwargs`` go to ``fit_mp``). ``"alpha"``: :func:`hill_alpha` of the singular
    values (99.0 for matrices with fewer than 3 singular values, as in the repository).
    """
    if signal not in SEB_SIGNALS:
        raise ValueError(f"signal == {signal!r}, must be one of {SEB_SIGNALS}")
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError("weights must be a non-empty mapping name -> tensor")
    return {str(n): _signal(check_weight(w, f"weights[{n!r}]", min_ndim=2), signal, fit_kwargs)
            for n, w in weights.items()}


def _details(signals: Mapping[str, float | None], sparsity: float, *, beta, s_d, p=1.0,
             beta_attn=None, beta_mlp=None, layer_types=None, missing="neutral",
             floor=W_FLOOR) -> dict[str, dict]:
    if not isinstance(signals, Mapping) or not signals:
        raise ValueError("signals must be a non-empty mapping name -> float (or None)")
    s = check_sparsity(sparsity)
    beta = check_scalar(beta, "beta")
    s_d = check_scalar(s_d, "s_d", min_val=0.0, include_min=False)
    p = check_scalar(p, "p", min_val=0.0, include_min=False)
    floor = check_scalar(floor, "floor", min_val=0.0)
    if (beta_attn is None) != (beta_mlp is None):
        raise ValueError("give both beta_attn and beta_mlp (layer-type SEB, ALGORITHMS §4.5) or "
                         "neither")
    typed = beta_attn is not None
    if typed:
        beta_attn = check_scalar(beta_attn, "beta_attn")
        beta_mlp = check_scalar(beta_mlp, "beta_mlp")
    if missing not in SEB_MISSING:
        raise ValueError(f"missing == {missing!r}, must be one of {SEB_MISSING}")
    xs: dict[str, float | None] = {}
    for n, x in signals.items():
        if x is not None:
            x = check_scalar(x, f"signals[{n!r}]")
        elif missing == "zero":
            x = 0.0
        xs[str(n)] = x
    present = np.array([x for x in xs.values() if x is not None], dtype=np.float64)
    mean = float(present.mean()) if present.size else 0.0
    std = float(present.std()) if present.size else 0.0  # population std (ddof=0)
    d = max(0.0, 1.0 - s / s_d) ** p
    types = dict(layer_types or {})
    out = {}
    for n, x in xs.items():
        z = 0.0 if (x is None or std < 1e-12) else (x - mean) / std
        t = types.get(n, layer_type(n, scheme="seb"))
        if t not in SEB_LAYER_TYPES:
            raise ValueError(f"layer_types[{n!r}] == {t!r}, must be one of {SEB_LAYER_TYPES}")
        b = beta_attn if (typed and t == "attn") else beta_mlp if (typed and t == "mlp") else beta
        out[n] = {"signal": x, "z": z, "type": t, "beta": b, "d": d,
                  "w": max(floor, 1.0 + b * d * z)}
    return out


def seb_weights(signals: Mapping[str, float | None], sparsity, *, beta, s_d, p=1.0,
                beta_attn=None, beta_mlp=None, layer_types=None, missing: str = "neutral",
                floor: float = W_FLOOR) -> dict[str, float]:
    r"""Layer weights :math:`w_\ell = \max(0.1, 1 + \beta_\ell d(s) z_\ell)` (ALGORITHMS §4.2).

    Parameters
    ----------
    signals : mapping of str to float or None
        x_ℓ per layer (None = missing; see ``missing``).
    sparsity : float
        Target s in [0, 1).
    beta : float
        β (for every layer unless β_attn/β_mlp are both given: then for type ``other``).
    s_d : float
        Decay sparsity (> 0): d(s) = max(0, 1 − s/s_d)^p.
    p : float, default=1
    beta_attn, beta_mlp : float, optional
        Layer-type β (ALGORITHMS §4.5); both or neither.
    layer_types : mapping of str to {"attn", "mlp", "other"}, optional
        Default: :func:`~certkit.masks.layer_type` (``scheme="seb"``) of the name.
    missing : {"neutral", "zero"}, default="neutral"
        None signals get z = 0 ("neutral") or enter the z-score as 0.0 ("zero", repository).
    floor : float, default=0.1

    Returns
    -------
    dict of str to float
    """
    det = _details(signals, sparsity, beta=beta, s_d=s_d, p=p, beta_attn=beta_attn,
                   beta_mlp=beta_mlp, layer_types=layer_types, missing=missing, floor=floor)
    return {n: v["w"] for n, v in det.items()}


_UNSET = object()


def seb_masks(weights: Mapping[str, torch.Tensor], sparsity, *, signal=None, signals=None,
              beta=None, s_d=None, p=None, beta_attn=_UNSET, beta_mlp=_UNSET,
              regime: str | None = "auto", layer_types=None, missing: str = "neutral",
              floor: float = W_FLOOR, fit_kwargs: Mapping | None = None
              ) -> tuple[dict[str, torch.Tensor], dict]:
    """SEB keep-masks with the exact global count ``round(s·P)`` (ALGORITHMS §4.2, §A.2).

    Parameters
    ----------
    weights : mapping of str to torch.Tensor
        Layer name -> weight (the dense weights; already-zero entries are pruned first).
    sparsity : float
        Target global sparsity in [0, 1).
    signal : {"sigma_plus", "alpha"}, optional
        Default: the regime's (``regime="auto"``) or ``"sigma_plus"`` (``regime=None``).
    signals : mapping of str to float or None, optional
        Precomputed (cached) x_ℓ; default :func:`seb_signals` on ``weights``.
    beta, s_d, p, beta_attn, beta_mlp : optional
        Override the regime defaults. With ``regime=None``, ``beta`` and ``s_d`` are required,
        ``p`` defaults to 1 and the layer-type βs to None.
    regime : {"auto", None}, default="auto"
        ``"auto"``: :func:`seb_regime` (§4.3 code column).
    layer_types, missing, floor
        See :func:`seb_weights`.
    fit_kwargs : mapping, optional
        Passed to :func:`certkit.rmt.fit_mp` when σ₊ is computed.

    Returns
    -------
    (dict of str to torch.Tensor of bool, dict)
        Keep-masks and a JSON-ready report: the hyper-parameters used and, per layer,
        ``signal, z, type, beta, d, w, n_pruned, numel, sparsity`` (the budgets).
    """
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError("weights must be a non-empty mapping name -> tensor")
    s = check_sparsity(sparsity)
    if regime == "auto":
        hp = seb_regime(s)
    elif regime is None:
        if beta is None or s_d is None:
            raise ValueError("with regime=None give beta and s_d")
        hp = {"regime": "custom", "signal": "sigma_plus", "beta": None, "s_d": None, "p": 1.0,
              "beta_attn": None, "beta_mlp": None}
    else:
        raise ValueError(f"regime == {regime!r}, must be 'auto' or None")
    for key, val in (("signal", signal), ("beta", beta), ("s_d", s_d), ("p", p)):
        if val is not None:
            hp[key] = val
    if beta_attn is not _UNSET:
        hp["beta_attn"] = beta_attn
    if beta_mlp is not _UNSET:
        hp["beta_mlp"] = beta_mlp
    if hp["signal"] not in SEB_SIGNALS:
        raise ValueError(f"signal == {hp['signal']!r}, must be one of {SEB_SIGNALS}")
    ws = {str(n): check_weight(w, f"weights[{n!r}]", min_ndim=2) for n, w in weights.items()}
    if signals is None:
        xs = seb_signals(ws, hp["signal"], **dict(fit_kwargs or {}))
        source = "computed"
    else:
        if not isinstance(signals, Mapping):
            raise TypeError("signals must be a mapping name -> float (or None)")
        unknown = sorted(set(map(str, signals)) - set(ws))
        if unknown:
            raise ValueError(f"signals has layers not in the selection: {unknown}")
        xs = {n: signals.get(n) for n in ws}
        source = "given"
    det = _details(xs, s, beta=hp["beta"], s_d=hp["s_d"], p=hp["p"],
                   beta_attn=hp["beta_attn"], beta_mlp=hp["beta_mlp"],
                   layer_types=layer_types, missing=missing, floor=floor)
    scores = {n: w.to(torch.float64).abs() / det[n]["w"] for n, w in ws.items()}
    masks = global_magnitude_masks(ws, s, scores=scores)
    for n, m in masks.items():
        k = int(m.numel() - m.sum())
        det[n].update(n_pruned=k, numel=int(m.numel()), sparsity=k / m.numel())
    report = {**hp, "signal_source": source, "missing": missing, "floor": floor,
              "layers": det}
    if any(not math.isfinite(v["w"]) for v in det.values()):  # pragma: no cover - guarded above
        raise ValueError("non-finite SEB weight")
    return masks, report


@register_method("seb", description="SEB / S+ spectral-edge layerwise budgets (sigma+ or Hill "
                 "alpha), global exact count", spec="ALGORITHMS §4")
def _build_seb(model, layers, *, calibration=None, sparsity=None, pattern=None,
               **params) -> MaskSet:
    """SEB masks (module docstring; ALGORITHMS §4). Data-free; ``params`` as in
    :func:`seb_masks` (``signal, signals, beta, s_d, p, beta_attn, beta_mlp, regime,
    missing, floor, fit_kwargs``); layer types from :func:`~certkit.masks.layer_type`."""
    del calibration  # data-free: accepted and ignored
    require_unstructured("seb", sparsity, pattern)
    allowed = {"signal", "signals", "beta", "s_d", "p", "beta_attn", "beta_mlp", "regime",
               "missing", "floor", "fit_kwargs"}
    bad = sorted(set(params) - allowed)
    if bad:
        raise TypeError(f"unknown seb parameters {bad}; valid: {sorted(allowed)}")
    weights = {name: dense_weight(module) for name, module in layers.items()}
    types = {name: layer_type(name, module, scheme="seb") for name, module in layers.items()}
    masks, report = seb_masks(weights, sparsity, layer_types=types, **params)
    report.pop("fit_kwargs", None)
    out = {"sparsity": sparsity, "score": "abs_weight_over_w", "tie_break": "flat_index",
           "count": "round_half_up", "calibration": "ignored (data-free)",
           "sv_preprocess": None, **report, "skipped": {}}
    if params.get("fit_kwargs"):
        out["fit_kwargs"] = dict(params["fit_kwargs"])
    return MaskSet(masks, "seb", out)
