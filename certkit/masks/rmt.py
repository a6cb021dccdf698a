r"""Classical RMT baseline: the spike (sub-edge-removed) SVD reconstruction and its mask form.

ALGORITHMS §3 (and §1.2–1.9 for the MP diagnostics). "Classical RMT" has two faces here:

1. **Dense reconstruction** (:func:`spike_reconstruction`, :func:`rmt_reconstruct`): fit the
   MP bulk of the matrix view W (ALGORITHMS §1.7) with :func:`certkit.rmt.fit_mp`, keep the
   singular triplets above an edge and drop the bulk (the ``spike_only`` control of §3.3):

   .. math:: \widehat W = \sum_{i:\,s_i > \tau} s_i u_i v_i^\top .

   The result is a **dense, low-rank** matrix, not a sparse one: it is reported as a
   *dense-reconstruction baseline* (``RMTReconstruction.kind == "dense_reconstruction"``),
   never as a mask. ALGORITHMS §3.3 records that it is "known to crash accuracy".
   Edge rules τ (``threshold``): ``"sigma_plus"`` (default; the fitted σ₊ = sqrt(N·λ₊) with
   the TW allowance, §1.4 / §3.3 spike_only), ``"spike"`` (``MPFit.spike_sigma_threshold``:
   the outlier test at false-alarm level ``spike_level``, i.e. exactly ``MPFit.spikes``),
   ``"gavish_donoho"`` (λ_GD(β)·σ₊/(1+√β), β = p/n, §3.3).

2. **Magnitude-mask form** (``build_masks(model, "rmt", sparsity=s)``). Reading implemented
   (ALGORITHMS §3 does not define one; this is certkit's, chosen for the certificates):
   *magnitude on the spike-reconstructed matrix* — the score of entry (i, j) is
   ``|Ŵ_ij|`` (the spike reconstruction above), ties (in particular every entry of a layer
   whose reconstruction has rank 0) broken by ``|W_ij|`` and then by flat index (smaller
   index pruned first); entries with ``W_ij == 0`` are pruned first. The kept values are the
   model's own weights (the mask never changes them). Rationale: the removed part
   ``R = W ⊙ (1 − M)`` then collects the entries where the outlier (signal) part is small,
   i.e. mostly MP-bulk noise — the situation of M-Cor 5.10/5.11 and E-Thm 3.20 (entrywise
   thresholding in signal + noise) under which the data-path budget is small.

   Counts are exact: ``round(s·P)`` entries over the selection (halves up, ALGORITHMS §A.2).
   ``scope="layerwise"`` (default) gives every layer the share ``s·numel`` rounded by the
   largest-remainder rule (ties to the earlier layer) so that the counts sum exactly to
   ``round(s·P)``; ``scope="global"`` ranks all entries of all layers together on the
   score (a rank-0 layer is then pruned first, entirely if the budget allows — the literal
   "drop the bulk" reading, kept as an option because it is catastrophic in practice).

   Layers too small for the MP fit (``fit_mp`` needs ≥ 8 eigenvalues in its central window)
   fall back to the score ``|W|`` (their reconstruction is the identity) and are listed in
   ``params["fallback"]``.

Not implemented here: the legacy SVD cycle of ALGORITHMS §3.1 (singular-vector thresholding
+ randomness-scaled per-layer magnitude + data-free regulariser "fine-tuning") and the
χ²-per-weight control of §3.3. The likely producer of the paper's Table 1 "Classical RMT" row
(§3.2, §11 item 17) is SEB four-regime weights + Haar-SV + fine-tuning: use method ``"seb"``.

Calibration data are not used (data-free method): a ``calibration`` argument is accepted and
ignored, as for magnitude. Only unstructured masks: a k:n ``pattern`` is a ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from .._validation import check_probability, check_scalar
from ..rmt import fit_mp
from ..rmt.bulk_edge import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_SPIKE_LEVEL, MPFit
from ._modules import dense_weight, get_module, matrix_view
from .base import check_sparsity, check_weight, exact_prune_mask, n_prune_for_sparsity
from .build import register_method, require_unstructured
from .maskset import MaskSet
from .selection import select_layers

__all__ = [
    "RMTReconstruction",
    "RMT_SCOPES",
    "RMT_THRESHOLDS",
    "allocate_counts",
    "gavish_donoho_factor",
    "rmt_masks",
    "rmt_reconstruct",
    "spike_reconstruction",
]

#: Edge rules of :func:`spike_reconstruction`.
RMT_THRESHOLDS = ("sigma_plus", "spike", "gavish_donoho")
#: Count allocation of the mask form.
RMT_SCOPES = ("layerwise", "global")
_ON_UNFIT = ("keep", "raise")


@dataclass(frozen=True, eq=False)
class RMTReconstruction:
    """Dense spike reconstruction of one weight (ALGORITHMS §3.3 ``spike_only``).

    Attributes
    ----------
    weight : torch.Tensor
        Ŵ, shaped and typed like the input weight. **Dense** (low rank), not sparse.
    rank : int
        Number of singular triplets kept (those with ``s_i > threshold``).
    threshold : float or None
        τ on the singular-value scale (None when the MP fit failed and W was kept).
    threshold_rule : str
        One of :data:`RMT_THRESHOLDS`.
    kept_singular_values : tuple of float
        The kept s_i, descending.
    fit : MPFit or None
        The MP fit (None when it failed; see ``fallback``).
    bulk_energy_fraction : float
        ``Σ_{dropped} s_i² / Σ s_i²`` = ‖W − Ŵ‖_F² / ‖W‖_F² (Eckart–Young).
    fallback : str or None
        Why the fit failed and W was kept unchanged (``on_unfit="keep"``), else None.
    kind : str
        Always ``"dense_reconstruction"``: a baseline that changes every entry, not a mask.
    """

    weight: torch.Tensor
    rank: int
    threshold: float | None
    threshold_rule: str
    kept_singular_values: tuple[float, ...]
    fit: MPFit | None
    bulk_energy_fraction: float
    fallback: str | None = None
    kind: str = field(default="dense_reconstruction")

    def to_dict(self) -> dict:
        """JSON-ready report (no tensors)."""
        return {
            "kind": self.kind,
            "rank": self.rank,
            "threshold": self.threshold,
            "threshold_rule": self.threshold_rule,
            "kept_singular_values": list(self.kept_singular_values),
            "bulk_energy_fraction": self.bulk_energy_fraction,
            "fallback": self.fallback,
            "sigma_plus": None if self.fit is None else self.fit.sigma_plus,
            "fit": None if self.fit is None else self.fit.to_dict(),
        }

    def __repr__(self) -> str:
        return (f"RMTReconstruction(dense, shape={tuple(self.weight.shape)}, rank={self.rank}, "
                f"{self.threshold_rule}={self.threshold}, "
                f"bulk_energy={self.bulk_energy_fraction:.4g}"
                f"{'' if self.fallback is None else ', fallback'})")


def gavish_donoho_factor(beta) -> float:
    r"""λ_GD(β) = sqrt(2(β+1) + 8β/(β+1+sqrt(β²+14β+1))), β = p/n ∈ (0, 1] (ALGORITHMS §3.3)."""
    b = check_scalar(beta, "beta", min_val=0.0, max_val=1.0, include_min=False)
    return math.sqrt(2.0 * (b + 1.0) + 8.0 * b / (b + 1.0 + math.sqrt(b * b + 14.0 * b + 1.0)))


def _check_threshold(threshold: str) -> str:
    if threshold not in RMT_THRESHOLDS:
        raise ValueError(f"threshold == {threshold!r}, must be one of {RMT_THRESHOLDS}")
    return threshold


def _edge(fit: MPFit, rule: str) -> float:
    if rule == "sigma_plus":
        return fit.sigma_plus
    if rule == "spike":
        return fit.spike_sigma_threshold
    p, n = min(fit.rows, fit.cols), max(fit.rows, fit.cols)
    b = p / n
    return gavish_donoho_factor(b) * fit.sigma_plus / (1.0 + math.sqrt(b))


def spike_reconstruction(weight, *, threshold: str = "sigma_plus", alpha: float = DEFAULT_ALPHA,
                         beta: float = DEFAULT_BETA,
                         spike_level: float = DEFAULT_SPIKE_LEVEL,
                         on_unfit: str = "keep") -> RMTReconstruction:
    r"""Dense reconstruction of a weight from its singular triplets above the MP edge.

    ALGORITHMS §3.3 (``spike_only``; classical RMT "drop the bulk"), MP fit of §1.4 via
    :func:`certkit.rmt.fit_mp` on the matrix view of §1.7 (conv kernels: C_out ×
    C_in·k_h·k_w). :math:`\widehat W = \sum_{s_i > \tau} s_i u_i v_i^\top` computed in
    float64 and returned in the weight's dtype and shape. This is a **dense** baseline.

    Parameters
    ----------
    weight : torch.Tensor
        Linear ``(out, in)`` or conv kernel; finite.
    threshold : {"sigma_plus", "spike", "gavish_donoho"}, default="sigma_plus"
        Edge rule τ (see the module docstring).
    alpha, beta, spike_level : float
        Passed to :func:`~certkit.rmt.fit_mp` (BEMA window, TW level, spike test level).
    on_unfit : {"keep", "raise"}, default="keep"
        When the matrix is too small for the MP fit: keep W unchanged (rank = min(M, N),
        ``fallback`` says why) or re-raise the ``ValueError``.

    Returns
    -------
    RMTReconstruction
    """
    w = check_weight(weight, min_ndim=2)
    rule = _check_threshold(threshold)
    if on_unfit not in _ON_UNFIT:
        raise ValueError(f"on_unfit == {on_unfit!r}, must be one of {_ON_UNFIT}")
    A = matrix_view(w).to(torch.float64)
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    total = float((S * S).sum())
    try:
        fit = fit_mp(A, alpha=alpha, beta=beta, spike_level=spike_level)
    except ValueError as exc:
        if on_unfit == "raise":
            raise
        return RMTReconstruction(weight=w.clone(), rank=int(S.numel()), threshold=None,
                                 threshold_rule=rule,
                                 kept_singular_values=tuple(float(x) for x in S),
                                 fit=None, bulk_energy_fraction=0.0, fallback=str(exc))
    tau = _edge(fit, rule)
    k = int((S > tau).sum())
    rec = (U[:, :k] * S[:k]) @ Vh[:k]
    dropped = float((S[k:] * S[k:]).sum())
    return RMTReconstruction(
        weight=rec.reshape(w.shape).to(w.dtype),
        rank=k,
        threshold=float(tau),
        threshold_rule=rule,
        kept_singular_values=tuple(float(x) for x in S[:k]),
        fit=fit,
        bulk_energy_fraction=dropped / total if total > 0 else 0.0,
    )


def _layers(model: torch.nn.Module, layers) -> dict[str, torch.nn.Module]:
    if layers is None:
        return select_layers(model)
    if isinstance(layers, Mapping):
        names = list(layers)
    elif isinstance(layers, Sequence) and not isinstance(layers, str):
        names = list(layers)
    else:
        raise TypeError("layers must be None, a mapping name -> module or a sequence of names")
    if not names:
        raise ValueError("the layer selection is empty; nothing to reconstruct")
    return {str(n): get_module(model, str(n)) for n in names}


def rmt_reconstruct(model: torch.nn.Module, layers=None, **kwargs
                    ) -> dict[str, RMTReconstruction]:
    """Dense spike reconstruction of every selected layer (ALGORITHMS §3.3); model unchanged.

    Parameters
    ----------
    model : nn.Module
    layers : None, mapping or sequence of names
        Default: :func:`~certkit.masks.select_layers` (every Linear/Conv, ALGORITHMS §A.1).
    **kwargs
        Passed to :func:`spike_reconstruction`.

    Returns
    -------
    dict of str to RMTReconstruction
        To use it as a (dense) baseline model, copy ``rec.weight`` into each module's weight.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return {name: spike_reconstruction(dense_weight(m), **kwargs)
            for name, m in _layers(model, layers).items()}


# ------------------------------------------------------------------------------ mask form
def allocate_counts(sizes: Sequence[int], fractions: Sequence[float], n_total: int) -> list[int]:
    """Integer per-layer counts summing exactly to ``n_total`` (largest-remainder rule).

    Layer ℓ's ideal share is ``fractions[ℓ]·sizes[ℓ]`` rescaled to sum to ``n_total``; counts
    are the floors plus one for the largest remainders (ties: earlier layer first), capped at
    ``sizes[ℓ]`` (overflow goes to the next-largest remainders). Deterministic.
    """
    sizes = [int(x) for x in sizes]
    if len(sizes) != len(fractions) or not sizes:
        raise ValueError("sizes and fractions must be non-empty and of equal length")
    if not 0 <= n_total <= sum(sizes):
        raise ValueError(f"n_total == {n_total}, must be in [0, {sum(sizes)}]")
    ideal = [max(0.0, float(f)) * n for f, n in zip(fractions, sizes, strict=True)]
    tot = sum(ideal)
    if tot <= 0:
        ideal = [float(n) for n in sizes]
        tot = float(sum(sizes))
    ideal = [x * n_total / tot for x in ideal]
    counts = [min(n, math.floor(x)) for x, n in zip(ideal, sizes, strict=True)]
    left = n_total - sum(counts)
    order = sorted(range(len(sizes)), key=lambda i: (-(ideal[i] - counts[i]), i))
    while left > 0:
        progressed = False
        for i in order:
            if left == 0:
                break
            if counts[i] < sizes[i]:
                counts[i] += 1
                left -= 1
                progressed = True
        if not progressed:  # pragma: no cover - impossible since n_total <= sum(sizes)
            raise RuntimeError("count allocation failed")
    return counts


def _lex_rank(primary: torch.Tensor, secondary: torch.Tensor) -> torch.Tensor:
    """Rank (0 = pruned first) by ``primary``, then ``secondary``, then flat index."""
    o1 = torch.sort(secondary, stable=True).indices
    o2 = torch.sort(primary[o1], stable=True).indices
    order = o1[o2]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    return rank.to(torch.float64)


def rmt_masks(weights: Mapping[str, torch.Tensor], sparsity: float, *,
              threshold: str = "sigma_plus", scope: str = "layerwise",
              alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
              spike_level: float = DEFAULT_SPIKE_LEVEL
              ) -> tuple[dict[str, torch.Tensor], dict]:
    """Keep-masks by magnitude of the spike reconstruction, exact global count.

    See the module docstring (reading, tie-breaks, ``scope``, fallback). Returns
    ``(masks, report)`` where ``report`` holds per-layer ``rank``, ``sigma_plus``,
    ``threshold``, ``n_pruned`` and the ``fallback`` reasons.
    """
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError("weights must be a non-empty mapping name -> tensor")
    s = check_sparsity(sparsity)
    if scope not in RMT_SCOPES:
        raise ValueError(f"scope == {scope!r}, must be one of {RMT_SCOPES}")
    _check_threshold(threshold)
    check_probability(spike_level, "spike_level")
    ws = {str(k): check_weight(v, f"weights[{k!r}]", min_ndim=2) for k, v in weights.items()}
    recs = {n: spike_reconstruction(w, threshold=threshold, alpha=alpha, beta=beta,
                                    spike_level=spike_level, on_unfit="keep")
            for n, w in ws.items()}
    prim = {n: recs[n].weight.detach().to(torch.float64).abs().reshape(-1) for n in ws}
    sec = {n: w.to(torch.float64).abs().reshape(-1) for n, w in ws.items()}
    first = {n: (w == 0).reshape(-1) for n, w in ws.items()}
    n_total = n_prune_for_sparsity(s, sum(w.numel() for w in ws.values()))
    masks: dict[str, torch.Tensor] = {}
    if scope == "global":
        key = _lex_rank(torch.cat(list(prim.values())), torch.cat(list(sec.values())))
        keep = exact_prune_mask(key, n_total, prune_first=torch.cat(list(first.values())))
        start = 0
        for n, w in ws.items():
            masks[n] = keep[start:start + w.numel()].reshape(w.shape).clone()
            start += w.numel()
    else:
        counts = allocate_counts([w.numel() for w in ws.values()], [s] * len(ws), n_total)
        for (n, w), c in zip(ws.items(), counts, strict=True):
            keep = exact_prune_mask(_lex_rank(prim[n], sec[n]), c, prune_first=first[n])
            masks[n] = keep.reshape(w.shape)
    report = {
        "layers": {n: {"rank": recs[n].rank, "threshold": recs[n].threshold,
                       "sigma_plus": None if recs[n].fit is None else recs[n].fit.sigma_plus,
                       "n_pruned": int(masks[n].numel() - masks[n].sum()),
                       "numel": int(masks[n].numel())} for n in ws},
        "fallback": {n: r.fallback for n, r in recs.items() if r.fallback is not None},
    }
    return masks, report


@register_method("rmt", description="classical RMT: magnitude of the spike (sub-edge-removed) "
                 "SVD reconstruction; dense form via rmt_reconstruct", spec="ALGORITHMS §3")
def _build_rmt(model, layers, *, calibration=None, sparsity=None, pattern=None,
               threshold: str = "sigma_plus", scope: str = "layerwise",
               alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
               spike_level: float = DEFAULT_SPIKE_LEVEL) -> MaskSet:
    """Mask form of classical RMT (module docstring; ALGORITHMS §3). Data-free."""
    del calibration  # data-free: accepted and ignored
    require_unstructured("rmt", sparsity, pattern)
    weights = {name: dense_weight(module) for name, module in layers.items()}
    masks, report = rmt_masks(weights, sparsity, threshold=threshold, scope=scope, alpha=alpha,
                              beta=beta, spike_level=spike_level)
    params = {"sparsity": sparsity, "score": "abs_spike_reconstruction",
              "tie_break": "abs_weight_then_flat_index", "threshold": threshold,
              "scope": scope, "count": "round_half_up", "alpha": alpha, "beta": beta,
              "spike_level": spike_level, "calibration": "ignored (data-free)",
              "dense_baseline": "certkit.masks.rmt.rmt_reconstruct",
              "layers": report["layers"], "fallback": report["fallback"], "skipped": {}}
    return MaskSet(masks, "rmt", params)
