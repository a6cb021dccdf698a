r"""Hybrid Magnitude–SER schedule (ALGORITHMS §6).

:func:`hybrid_schedule` walks the sparsity grid (default 0.05, 0.10, …, 0.70, 14 points):
global exact-count magnitude cycles (ALGORITHMS §2.1) below the switch point, then one SER step
(:func:`certkit.masks.ser.ser_step`, ALGORITHMS §5.3) per grid point. Pruning is cumulative
(§A.2): the pruned set of every cycle contains the previous one (SER's default reservoir
``"new"`` never restores an entry pruned in an earlier cycle) and every grid point has
*exactly* ``round(s·P)`` pruned entries.

* **Canonical** (§6.1): ``switch_at=0.25`` — the code always hands off after 0.20.
* **Drop-threshold variant** (§6.2): ``drop_threshold=0.7`` (percentage points) with an
  ``evaluate(model) -> top-1`` callable; magnitude continues until the post-fine-tuning top-1
  falls below ``reference − drop_threshold`` (the crossing cycle is kept, SER starts at the
  next grid point); ``switch_at`` is then ignored.
* **Fine-tuning** between cycles is the caller's: ``finetune(model, maskset, cycle)`` is
  called once per cycle after the masks are applied in place (pruned weights zeroed; for SER
  with ``restore_value="phase_a"`` the restored entries get their phase-A values, §5.3
  step 6). Use the frozen-mask helpers of :mod:`certkit.masks.apply`
  (:func:`~certkit.masks.apply.frozen_masks`, :func:`~certkit.masks.apply.masked_finetune_step`,
  ALGORITHMS §A.3); the schedule re-zeroes pruned weights after the callback as a guard.
  Without ``finetune`` the model is never modified (masks only, cumulative through the
  previous masks).

σ₊ is fitted ONCE on the entry (dense) weights (ALGORITHMS §5.1, V2) unless ``sigma_plus`` is
given. ``build_masks(model, "hybrid", sparsity=s)`` returns the last MaskSet of the schedule
over the grid points below ``s`` followed by ``s`` itself, without fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from .._validation import check_scalar
from ._modules import dense_weight, weight_parameter
from .apply import apply_masks, rezero_weights
from .base import check_sparsity, n_prune_for_sparsity
from .build import _select, register_method, require_unstructured
from .magnitude import global_magnitude_masks
from .maskset import MaskSet
from .ser import layer_sigma_plus, ser_step

__all__ = ["DEFAULT_GRID", "DEFAULT_SWITCH", "REFERENCE_MODES", "hybrid_schedule"]

#: ALGORITHMS §6.1: 0.05, 0.10, ..., 0.70.
DEFAULT_GRID = tuple(round(0.05 * i, 2) for i in range(1, 15))
#: First SER grid point of the canonical schedule (hand-off after 0.20, §6.1).
DEFAULT_SWITCH = 0.25
#: Reference accuracy of the drop-threshold variant (§6.2), or a number.
REFERENCE_MODES = ("baseline", "s20_start", "first_completed")
_TOL = 1e-9


def _check_grid(grid) -> tuple[float, ...]:
    if isinstance(grid, str | bytes) or not isinstance(grid, Sequence) or not grid:
        raise ValueError("grid must be a non-empty sequence of sparsities in [0, 1)")
    g = tuple(check_sparsity(x, f"grid[{i}]") for i, x in enumerate(grid))
    if any(b <= a for a, b in zip(g, g[1:], strict=False)):
        raise ValueError(f"grid == {list(g)} must be strictly increasing (pruning is "
                         "cumulative)")
    return g


def hybrid_schedule(model: torch.nn.Module, *, grid: Sequence[float] = DEFAULT_GRID,
                    switch_at: float = DEFAULT_SWITCH,
                    finetune: Callable[[torch.nn.Module, MaskSet, int], object] | None = None,
                    calibration=None, drop_threshold: float | None = None,
                    evaluate: Callable[[torch.nn.Module], float] | None = None,
                    reference: str | float = "baseline", layers=None,
                    sigma_plus: Mapping[str, float] | None = None,
                    ser_params: Mapping | None = None) -> list[MaskSet]:
    r"""Run the Hybrid Magnitude–SER schedule (ALGORITHMS §6.1; §6.2 with ``drop_threshold``).

    Parameters
    ----------
    model : nn.Module
        Entry (dense or already sparse) model. Modified in place only when ``finetune`` is
        given (masks applied, restored values written, then the callback).
    grid : sequence of float, default=0.05…0.70
        Strictly increasing target sparsities in [0, 1); one cycle each.
    switch_at : float, default=0.25
        Grid points ``s ≥ switch_at`` use SER, the others magnitude (§6.1). Ignored when
        ``drop_threshold`` is given.
    finetune : callable ``(model, maskset, cycle) -> Any``, optional
        Called once per cycle with the current masks (cycle = 0-based grid index), after the
        masks are applied in place. Its return value is ignored.
    calibration : iterable of batches, optional
        Phase-A data of the SER steps (tensors or ``(x, y)``); without it SER ranks the
        reservoir by magnitude (``estimate="magnitude"``, see :func:`~certkit.masks.ser.ser_step`).
    drop_threshold : float, optional
        §6.2 variant: switch to SER after the first magnitude cycle whose ``evaluate(model)``
        (after fine-tuning) is below ``reference − drop_threshold`` (paper: 0.7 pp).
    evaluate : callable ``model -> float``, optional
        Required with ``drop_threshold``; called after each magnitude cycle (and once before
        pruning for ``reference="baseline"``).
    reference : {"baseline", "s20_start", "first_completed"} or float, default="baseline"
        §6.2 reference: the entry model's score, the score after the 0.20 cycle (no switch
        before it), the score after the first cycle, or a given number.
    layers : optional
        Layer selection as in :func:`~certkit.masks.build_masks` (default: every Linear/Conv).
    sigma_plus : mapping name -> float, optional
        σ₊ cache; default fitted once on the entry weights (:func:`~certkit.masks.ser.layer_sigma_plus`).
    ser_params : mapping, optional
        Keyword arguments of :func:`~certkit.masks.ser.ser_step` (``restore_fraction``,
        ``rank``, ``reservoir``, ``record_split``, ...).

    Returns
    -------
    list of MaskSet
        One per cycle (method ``"hybrid"``), cumulative; SER cycles are
        :class:`~certkit.masks.ser.SERMaskSet` (reservoir, split). ``params`` records
        ``cycle``, ``stage`` (``"magnitude"``/``"ser"``), ``target_sparsity``, ``finetuned``
        and ``score`` (``evaluate`` result or None).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    g = _check_grid(grid)
    switch_at = check_scalar(switch_at, "switch_at", min_val=0.0, max_val=1.0)
    if finetune is not None and not callable(finetune):
        raise TypeError("finetune must be a callable (model, maskset, cycle) or None")
    if drop_threshold is not None:
        drop_threshold = check_scalar(drop_threshold, "drop_threshold", min_val=0.0)
        if not callable(evaluate):
            raise ValueError("drop_threshold needs evaluate=callable(model) -> top-1 (§6.2)")
        if not isinstance(reference, int | float) or isinstance(reference, bool):
            if reference not in REFERENCE_MODES:
                raise ValueError(f"reference == {reference!r}, must be a number or one of "
                                 f"{REFERENCE_MODES}")
    elif evaluate is not None and not callable(evaluate):
        raise TypeError("evaluate must be a callable model -> float or None")
    ser_params = dict(ser_params or {})
    for bad in ("calibration", "previous", "sigma_plus", "method", "sparsity"):
        if bad in ser_params:
            raise ValueError(f"ser_params must not contain {bad!r}; it is set by the schedule")
    mods = _select(model, layers)
    if calibration is not None and not isinstance(calibration, torch.Tensor):
        calibration = list(calibration)
    if sigma_plus is None:
        sigma_plus = layer_sigma_plus({n: dense_weight(m) for n, m in mods.items()})

    ref_value = None
    if drop_threshold is not None:
        if isinstance(reference, int | float):
            ref_value = float(reference)
        elif reference == "baseline":
            ref_value = float(evaluate(model))
    switched = False
    prev: dict[str, torch.Tensor] | None = None
    out: list[MaskSet] = []
    for cycle, s in enumerate(g):
        use_ser = switched if drop_threshold is not None else s >= switch_at - _TOL
        common = {"cycle": cycle, "target_sparsity": s, "grid": list(g),
                  "switch_at": None if drop_threshold is not None else switch_at,
                  "drop_threshold": drop_threshold, "finetuned": finetune is not None}
        if use_ser:
            ms = ser_step(model, mods, s, calibration=calibration, previous=prev,
                          sigma_plus=sigma_plus, method="hybrid", **ser_params)
            ms.params.update({"stage": "ser", **common})
        else:
            weights = {n: dense_weight(m) for n, m in mods.items()}
            masks = global_magnitude_masks(weights, s, default_masks=prev)
            ms = MaskSet(masks, "hybrid", {"stage": "magnitude", "sparsity": s,
                                           "scope": "global", "tie_break": "flat_index",
                                           "count": "round_half_up", "skipped": {}, **common})
        if ms.n_pruned != n_prune_for_sparsity(s, ms.n_total):  # exact-count invariant
            raise RuntimeError(f"cycle {cycle}: {ms.n_pruned} pruned entries, expected "
                               f"{n_prune_for_sparsity(s, ms.n_total)}")
        if finetune is not None:
            apply_masks(model, ms, mode="inplace")
            values = getattr(ms, "restored_values", None)
            if use_ser and values and ms.params.get("restore_value") == "phase_a":
                with torch.no_grad():
                    for n, v in values.items():
                        p = weight_parameter(mods[n])
                        q = (ms.reservoir[n] & ms.masks[n]).to(p.device)
                        p.copy_(torch.where(q, v.to(device=p.device, dtype=p.dtype), p))
            finetune(model, ms, cycle)
            rezero_weights(model, ms)
        score = None
        if evaluate is not None and (drop_threshold is None or not use_ser):
            score = float(evaluate(model))
        ms.params["score"] = score
        if drop_threshold is not None and not use_ser:
            if ref_value is None and (reference == "first_completed" or (
                    reference == "s20_start" and abs(s - 0.20) < _TOL)):
                ref_value = score
            if ref_value is not None and score < ref_value - drop_threshold:
                switched = True
            ms.params["reference_score"] = ref_value
        prev = ms.masks
        out.append(ms)
    return out


@register_method("hybrid", description="Hybrid Magnitude-SER schedule (magnitude cycles, then "
                 "SER) over the sparsity grid", spec="ALGORITHMS §6")
def _build_hybrid(model, layers, *, calibration=None, sparsity=None, pattern=None,
                  grid: Sequence[float] = DEFAULT_GRID, **params) -> MaskSet:
    """``build_masks(model, "hybrid", sparsity=s)``: the last MaskSet of :func:`hybrid_schedule`
    over the grid points below ``s`` followed by ``s``, without fine-tuning (masks only)."""
    require_unstructured("hybrid", sparsity, pattern)
    for bad in ("finetune", "drop_threshold"):
        if params.get(bad) is not None:
            raise ValueError(f"build_masks('hybrid') never fine-tunes or evaluates; {bad} is "
                             "only accepted by certkit.masks.hybrid.hybrid_schedule")
    params.pop("finetune", None)
    params.pop("drop_threshold", None)
    s = check_sparsity(sparsity)
    g = _check_grid(grid)
    sub = [x for x in g if x < s - _TOL] + [s]
    return hybrid_schedule(model, grid=sub, calibration=calibration, layers=dict(layers),
                           **params)[-1]
