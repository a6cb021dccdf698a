r"""Magnitude masks with exact counts: one tensor, global over layers, layerwise-uniform.

ALGORITHMS §2.1 (global magnitude: one ranking of |w| over the union of all selected tensors)
and §2.2 (layerwise-uniform: every selected tensor pruned to the same sparsity), with the
exact-count convention of §A.2: ``round(s·total)`` entries are pruned (halves rounded up), ties
are broken by flat index (smaller index pruned first; globally, the flat index of the
concatenation of the tensors in the order given), and entries that are already zero (or False
in a ``default_mask``) are pruned first, so cumulative pruning keeps them pruned.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .._validation import check_int
from .base import (
    MaskMethod,
    check_sparsity,
    check_weight,
    exact_prune_mask,
    n_prune_for_sparsity,
    score_key,
)

__all__ = [
    "MagnitudeMask",
    "global_magnitude_masks",
    "layerwise_magnitude_masks",
    "magnitude_mask",
]


class MagnitudeMask(MaskMethod):
    """Unstructured magnitude pruning of one tensor to an exact count (ALGORITHMS §2.2, §A.2).

    Parameters
    ----------
    sparsity : float, optional
        Target fraction of pruned entries in [0, 1); ``round(s·numel)`` entries are pruned.
    n_prune : int, optional
        Exact number of entries to prune. Give ``sparsity`` *or* ``n_prune``.

    Examples
    --------
    >>> import torch
    >>> MagnitudeMask(sparsity=0.5).compute_mask(torch.tensor([[3., -1., 0., 2.]]))
    tensor([[ True, False, False,  True]])
    """

    NAME = "magnitude"
    KIND = "unstructured"

    def __init__(self, *, sparsity: float | None = None, n_prune: int | None = None):
        if (sparsity is None) == (n_prune is None):
            raise ValueError("give exactly one of sparsity (a fraction in [0, 1)) and n_prune "
                             "(a count)")
        self.sparsity = None if sparsity is None else check_sparsity(sparsity)
        self.n_prune = None if n_prune is None else check_int(n_prune, "n_prune", min_val=0)

    def get_params(self) -> dict:
        if self.sparsity is not None:
            return {"sparsity": self.sparsity}
        return {"n_prune": self.n_prune}

    def compute_mask(self, weight, *, scores=None, default_mask=None) -> torch.Tensor:
        w = check_weight(weight)
        key, first = score_key(w, scores, default_mask)
        n = (n_prune_for_sparsity(self.sparsity, w.numel()) if self.sparsity is not None
             else self.n_prune)
        if n > w.numel():
            raise ValueError(f"n_prune == {n}, must be <= weight.numel() == {w.numel()}")
        return exact_prune_mask(key, n, prune_first=first)


def magnitude_mask(weight: torch.Tensor, sparsity: float, *, scores=None,
                   default_mask=None) -> torch.Tensor:
    """Keep-mask pruning exactly ``round(sparsity·numel)`` smallest-|w| entries of ``weight``.

    Functional form of :class:`MagnitudeMask` (ALGORITHMS §2.2, §A.2).
    """
    return MagnitudeMask(sparsity=sparsity).compute_mask(weight, scores=scores,
                                                         default_mask=default_mask)


def _check_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights must be a mapping name -> tensor, got {type(weights).__name__}")
    if not weights:
        raise ValueError("weights is empty; select at least one layer")
    return {str(k): check_weight(v, f"weights[{k!r}]") for k, v in weights.items()}


def _optional(mapping, name: str, key: str):
    if mapping is None:
        return None
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{name} must be a mapping name -> tensor or None")
    return mapping.get(key)


def global_magnitude_masks(weights: Mapping[str, torch.Tensor], sparsity: float, *,
                           scores: Mapping[str, torch.Tensor] | None = None,
                           default_masks: Mapping[str, torch.Tensor] | None = None
                           ) -> dict[str, torch.Tensor]:
    """Global magnitude pruning over several tensors with an exact count (ALGORITHMS §2.1, §A.2).

    One ranking of |w| (or ``scores``) over the union of all tensors; exactly
    ``round(sparsity·P)`` entries are pruned, ``P`` = total number of entries. Entries already
    zero or False in ``default_masks`` are pruned first (they count towards the target, as
    "zeros from earlier cycles count", §A.2); ties are broken by the flat index of the
    concatenation of the tensors in the mapping's order.

    Parameters
    ----------
    weights : mapping of str to torch.Tensor
        Layer name -> weight (any shapes).
    sparsity : float
        Target global sparsity in [0, 1).
    scores, default_masks : mapping of str to torch.Tensor, optional
        Per-layer importance scores / previous keep-masks (missing names: |w| / none).

    Returns
    -------
    dict of str to torch.Tensor of bool
        Keep-masks (True = kept) shaped like the weights, in the same order.
    """
    ws = _check_weights(weights)
    s = check_sparsity(sparsity)
    keys, firsts = [], []
    for name, w in ws.items():
        key, first = score_key(w, _optional(scores, "scores", name),
                               _optional(default_masks, "default_masks", name))
        keys.append(key.reshape(-1))
        firsts.append(first.reshape(-1))
    dtypes = {k.dtype for k in keys}
    work = dtypes.pop() if len(dtypes) == 1 else torch.float64
    key = torch.cat([k.to(work) for k in keys])
    first = torch.cat(firsts)
    keep = exact_prune_mask(key, n_prune_for_sparsity(s, key.numel()), prune_first=first)
    out, start = {}, 0
    for name, w in ws.items():
        out[name] = keep[start : start + w.numel()].reshape(w.shape).clone()
        start += w.numel()
    return out


def layerwise_magnitude_masks(weights: Mapping[str, torch.Tensor], sparsity: float, *,
                              scores: Mapping[str, torch.Tensor] | None = None,
                              default_masks: Mapping[str, torch.Tensor] | None = None
                              ) -> dict[str, torch.Tensor]:
    """Layerwise-uniform magnitude pruning: each tensor pruned to ``round(s·numel)`` entries.

    ALGORITHMS §2.2 (``magnitude_prune_layer``; the "Magnitude" column of the SEB tables and
    the "SER s=0.35" sources of the CAST-2E sweeps, §11 item 7), with the exact-count rule of
    §A.2. Same arguments as :func:`global_magnitude_masks`.
    """
    ws = _check_weights(weights)
    method = MagnitudeMask(sparsity=sparsity)
    return {name: method.compute_mask(w, scores=_optional(scores, "scores", name),
                                      default_mask=_optional(default_masks, "default_masks",
                                                             name))
            for name, w in ws.items()}
