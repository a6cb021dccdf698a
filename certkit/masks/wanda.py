r"""Wanda-style activation-aware masks: score ``|W_ij|·‖x_j‖₂`` (issue 4 item 6).

Wanda (Sun et al. 2023, locuslab/wanda ``lib/prune.py``; ANCHORS "Wanda / SparseGPT") scores
every weight by its magnitude times the ℓ2 norm of its input feature over all calibration
samples and positions,

.. math::  S_{ij} = |W_{ij}| \cdot \lVert X_{:,j} \rVert_2 ,

where ``X`` stacks the layer's input rows (tokens of a Linear; im2col patches of a Conv2d, so
for a conv ``j`` is a column ``c·k_h·k_w + y·k_w + x`` of the matrix view, ALGORITHMS §1.7).
The norms come from one calibration pass (:func:`certkit.masks.calibration.collect_input_stats`)
of the *unpruned* model; unlike Wanda's LLM code, layers are not pruned sequentially (every
layer's statistics come from the dense network, the convention of Wanda's vision code and of
CAST's capture, ALGORITHMS §7.4).

Comparison groups (``scope``), all with exact counts and the tie rule of ALGORITHMS §A.2
(weights that are already zero are pruned first; equal scores: the smaller index is pruned
first):

* ``"row"`` (DEFAULT, Wanda's choice): every output row of the matrix view loses exactly
  ``round(s·N)`` weights;
* ``"layer"``: every layer loses ``round(s·numel)`` weights ranked within the layer;
* ``"global"``: one ranking over all selected layers (scores of different layers are compared
  directly, which mixes activation scales — documented, not recommended);
* a k:n ``pattern``: the ``k`` highest scores of every group of ``n`` consecutive inputs
  (Wanda's "top-n within each group of m"), via :func:`~certkit.masks.nm_magnitude_mask` with
  the Wanda scores.

With all input norms equal the scores are a constant multiple of ``|W|`` and the masks equal
the corresponding magnitude masks (the control tested in ``tests/masks/test_cast_wanda.py``).
"""

from __future__ import annotations

import torch

from ._modules import dense_weight, matrix_view
from .base import check_sparsity, check_weight, exact_prune_mask, n_prune_for_sparsity
from .build import register_method
from .calibration import capture_ineligibility, collect_input_stats
from .magnitude import global_magnitude_masks
from .maskset import MaskSet
from .nm import format_pattern, nm_magnitude_mask
from .selection import nm_ineligibility

__all__ = ["SCOPES", "wanda_mask", "wanda_scores"]

#: Comparison groups of the unstructured Wanda masks.
SCOPES = ("row", "layer", "global")


def wanda_scores(weight: torch.Tensor, input_norm: torch.Tensor) -> torch.Tensor:
    """``|W_ij|·‖x_j‖₂`` shaped like ``weight`` (float64).

    Parameters
    ----------
    weight : torch.Tensor
        Linear ``(out, in)`` or conv kernel (matrix view ``out × C_in·k_h·k_w``).
    input_norm : torch.Tensor, shape (N,)
        ``‖x_j‖₂`` per input column of the matrix view (:attr:`LayerStats.input_norm`).
    """
    w = check_weight(weight, min_ndim=2)
    m = matrix_view(w)
    norm = torch.as_tensor(input_norm).detach().to(device=w.device, dtype=torch.float64)
    if norm.ndim != 1 or norm.numel() != m.shape[1]:
        raise ValueError(f"input_norm must have shape ({m.shape[1]},) (one norm per input "
                         f"column of the matrix view), got {tuple(norm.shape)}")
    if bool((norm < 0).any()) or not bool(torch.isfinite(norm).all()):
        raise ValueError("input_norm must be finite and non-negative")
    return (m.abs().to(torch.float64) * norm[None, :]).reshape(w.shape)


def _row_mask(scores: torch.Tensor, weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Per output row, prune exactly ``round(s·N)`` entries (zeros first, then low scores,
    ties -> smaller column index first)."""
    key = matrix_view(scores).masked_fill(matrix_view(weight) == 0, float("-inf"))
    rows, width = key.shape
    n_prune = n_prune_for_sparsity(sparsity, width)
    keep = torch.ones(rows, width, dtype=torch.bool, device=key.device)
    if n_prune:
        order = torch.sort(key, dim=1, stable=True).indices[:, :n_prune]
        keep.scatter_(1, order, False)
    return keep.reshape(weight.shape)


def wanda_mask(weight: torch.Tensor, input_norm: torch.Tensor, *, sparsity: float | None = None,
               pattern: tuple[int, int] | None = None, scope: str = "row") -> torch.Tensor:
    """Keep-mask of one layer from Wanda scores (module docstring).

    Give ``sparsity`` (with ``scope`` ``"row"`` or ``"layer"``) *or* ``pattern=(k, n)``.
    """
    w = check_weight(weight, min_ndim=2)
    scores = wanda_scores(w, input_norm)
    if pattern is not None:
        if sparsity is not None:
            raise ValueError("give sparsity or pattern, not both")
        k, n = pattern
        return nm_magnitude_mask(w, k, n, scores=scores)
    if sparsity is None:
        raise ValueError("wanda needs sparsity (a fraction in [0, 1)) or pattern ('k:n')")
    s = check_sparsity(sparsity)
    if scope == "row":
        return _row_mask(scores, w, s)
    if scope == "layer":
        return exact_prune_mask(scores, n_prune_for_sparsity(s, w.numel()),
                                prune_first=(w == 0))
    raise ValueError(f"scope == {scope!r}, must be 'row' or 'layer' for one tensor "
                     "('global' needs several layers: use build_masks)")


@register_method("wanda", description="activation-aware |W|·||x||_2 (Wanda): per row, layer, "
                 "global or k:n", spec="issue 4 item 6; Sun et al. 2023")
def build_wanda(model, layers, *, calibration=None, sparsity=None, pattern=None,
                scope: str = "row", max_batches: int | None = None,
                rows_per_call: int | None = None, seed: int = 0) -> MaskSet:
    """Wanda masks for the selected layers (module docstring).

    Parameters
    ----------
    calibration : iterable of input batches
        Required (ValueError if None or empty).
    sparsity : float, optional
        Target sparsity in [0, 1) (exact counts per ``scope``).
    pattern : (k, n), optional
        k:n masks instead; ineligible layers are skipped with reasons.
    scope : {"row", "layer", "global"}, default "row"
        Comparison group of the unstructured masks.
    max_batches, rows_per_call, seed
        Passed to :func:`~certkit.masks.calibration.collect_input_stats`.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope == {scope!r}, must be one of {SCOPES}")
    if calibration is None:
        raise ValueError("calibration is None: wanda is data-aware and needs an iterable of "
                         "input batches")
    if pattern is not None and sparsity is not None:
        raise ValueError("give sparsity or pattern, not both: a k:n pattern fixes the sparsity "
                         "of every eligible layer to 1 - k/n")
    if pattern is None and sparsity is None:
        raise ValueError("wanda needs sparsity (a fraction in [0, 1)) or pattern ('k:n')")
    skipped, use = {}, {}
    for name, module in layers.items():
        reason = capture_ineligibility(module)
        if reason is None and pattern is not None:
            reason = nm_ineligibility(module, *pattern)
        if reason is not None:
            skipped[name] = reason
        else:
            use[name] = module
    if not use:
        raise ValueError(f"no selected layer can be scored by wanda: {skipped}")
    stats = collect_input_stats(model, use, calibration, max_batches=max_batches,
                                rows_per_call=rows_per_call, seed=seed)
    weights = {name: dense_weight(m) for name, m in use.items()}
    scores = {name: wanda_scores(weights[name], stats[name].input_norm) for name in use}
    params = {"scope": "k:n" if pattern is not None else scope, "tie_break": "flat_index",
              "count": "round_half_up", "skipped": skipped,
              "n_calibration_rows": {n: stats[n].n_rows for n in use},
              "score": "|W_ij|*||x_j||_2"}
    if pattern is not None:
        k, n = pattern
        masks = {name: nm_magnitude_mask(weights[name], k, n, scores=scores[name])
                 for name in use}
        params.update(pattern=format_pattern(k, n), k=k, n=n)
    elif scope == "global":
        masks = global_magnitude_masks(weights, sparsity, scores=scores)
        params["sparsity"] = sparsity
    else:
        masks = {name: wanda_mask(weights[name], stats[name].input_norm, sparsity=sparsity,
                                  scope=scope) for name in use}
        params["sparsity"] = sparsity
    return MaskSet(masks, "wanda", params)
