r"""k:n semi-structured masks: parsing, validation and the "Magnitude k:n" baseline.

A k:n mask keeps exactly ``k`` of every ``n`` consecutive weights along the *input* axis of
each row (ALGORITHMS §0.1, §7.2). The input axis is the column axis of the matrix view of
ALGORITHMS §1.7: a Linear ``(out, in)`` as is, a conv kernel ``(C_out, C_in/groups, k_h, k_w)``
flattened to ``C_out × (C_in/groups)·k_h·k_w`` (im2col order, as in
:func:`certkit.factorize.weight_matrix`); group g of row i holds columns ``g·n … g·n+n−1``.
For a 3×3 conv a group can therefore straddle two input channels (§7.2).

Unlike the repository (which leaves columns ≥ ⌊N/n⌋·n untouched, §7.2), a width that ``n``
does not divide is an error here; :func:`certkit.masks.build_masks` skips such layers and
records why (never a silently invalid mask).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from .._validation import check_int
from ._modules import get_module, matrix_view
from .base import MaskMethod, check_weight, score_key

__all__ = [
    "NMMagnitudeMask",
    "PAPER_PATTERNS",
    "format_pattern",
    "nm_magnitude_mask",
    "parse_pattern",
    "validate_masks",
    "validate_nm",
]

#: k:n patterns of the paper's CAST tables (ALGORITHMS §7.2, §10.3); any 1 <= k < n works.
PAPER_PATTERNS = ((2, 4), (4, 8), (6, 12), (8, 16), (12, 16))

_PATTERN_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def _check_kn(k, n) -> tuple[int, int]:
    k = check_int(k, "k")
    n = check_int(n, "n")
    if not 1 <= k < n:
        raise ValueError(f"k == {k}, n == {n}: a k:n pattern needs 1 <= k < n (k = n keeps "
                         "everything, which is not a sparsity pattern)")
    return k, n


def parse_pattern(pattern) -> tuple[int, int]:
    """``"2:4"`` or ``(2, 4)`` -> ``(k, n)`` with ``1 <= k < n``; ValueError otherwise."""
    if isinstance(pattern, str):
        m = _PATTERN_RE.match(pattern)
        if not m:
            raise ValueError(f"pattern == {pattern!r}, must look like 'k:n' (e.g. '2:4')")
        return _check_kn(int(m.group(1)), int(m.group(2)))
    if isinstance(pattern, tuple | list) and len(pattern) == 2:
        return _check_kn(*pattern)
    raise TypeError(f"pattern must be a string 'k:n' or a pair (k, n), got {pattern!r}")


def format_pattern(k: int, n: int) -> str:
    """``(2, 4)`` -> ``"2:4"``."""
    k, n = _check_kn(k, n)
    return f"{k}:{n}"


def _grouped(t: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """``(rows, groups, n)`` view of a weight-shaped tensor (ALGORITHMS §7.2)."""
    m = matrix_view(t)
    width = m.shape[1]
    if width % n:
        raise ValueError(
            f"{name} has input width {width} (columns of the matrix view {tuple(m.shape)}), "
            f"which n == {n} does not divide; a k:n pattern needs width % n == 0"
        )
    return m.reshape(m.shape[0], width // n, n)


def validate_nm(mask, k: int, n: int) -> None:
    """Raise ``ValueError`` unless every group of ``n`` consecutive inputs keeps exactly ``k``.

    Groups run along the input axis of the matrix view (ALGORITHMS §1.7, §7.2): row i, group g
    covers columns ``g·n … g·n+n−1`` of ``mask.reshape(rows, -1)``. The error names the first
    offending (row, group) in row-major order, its kept count and the number of bad groups.

    Parameters
    ----------
    mask : torch.Tensor
        Keep-mask shaped like a Linear weight or a conv kernel; bool, or numeric with nonzero
        meaning kept (so a sparse weight can be checked directly).
    k, n : int
        The pattern, ``1 <= k < n``; ``n`` must divide the input width.
    """
    k, n = _check_kn(k, n)
    if not isinstance(mask, torch.Tensor):
        mask = torch.as_tensor(mask)
    if mask.ndim < 2:
        raise ValueError(f"mask must have at least 2 dimensions (rows, inputs), got shape "
                         f"{tuple(mask.shape)}")
    kept = mask if mask.dtype == torch.bool else mask != 0
    counts = _grouped(kept, n, "mask").sum(dim=2)
    bad = counts != k
    n_bad = int(bad.sum())
    if n_bad:
        row, group = (int(v) for v in bad.nonzero()[0])
        raise ValueError(
            f"mask violates {k}:{n} at row {row}, group {group} (columns {group * n}..."
            f"{group * n + n - 1} of the {tuple(matrix_view(kept).shape)} matrix view): keeps "
            f"{int(counts[row, group])} of {n}, expected {k}; {n_bad} bad group(s) in all"
        )


def nm_magnitude_mask(weight: torch.Tensor, k: int, n: int, *, scores=None,
                      default_mask=None) -> torch.Tensor:
    """k:n magnitude mask: keep the ``k`` largest |w| of each group of ``n`` inputs.

    The "Magnitude 2:4" baseline of ALGORITHMS §7.12, for any ``1 <= k < n`` (2:4, 4:8, 6:12,
    8:16, 12:16, ...). Within a group, entries that are already zero (or False in
    ``default_mask``) are pruned first, then the smallest |w| (or ``scores``); ties are broken
    by position, the smaller input index being pruned first (the rule of
    :func:`~certkit.masks.exact_prune_mask`). The output always passes :func:`validate_nm`.

    Parameters
    ----------
    weight : torch.Tensor
        Linear ``(out, in)`` or conv kernel (im2col view, ALGORITHMS §1.7); ``n`` must divide
        the input width.
    k, n : int
        Pattern, ``1 <= k < n``.
    scores : torch.Tensor, optional
        Importance shaped like ``weight`` (default |w|).
    default_mask : torch.Tensor of bool, optional
        Entries already pruned.

    Returns
    -------
    torch.Tensor of bool
        Keep-mask shaped like ``weight``.
    """
    k, n = _check_kn(k, n)
    w = check_weight(weight, min_ndim=2)
    key, first = score_key(w, scores, default_mask)
    key = key.masked_fill(first, float("-inf"))
    grouped = _grouped(key, n, "weight")
    order = torch.sort(grouped, dim=2, stable=True).indices[..., : n - k]
    keep = torch.ones(grouped.shape, dtype=torch.bool, device=w.device)
    keep.scatter_(2, order, False)
    return keep.reshape(w.shape)


class NMMagnitudeMask(MaskMethod):
    """:class:`MaskMethod` form of :func:`nm_magnitude_mask` (ALGORITHMS §7.12)."""

    NAME = "magnitude"
    KIND = "k:n"

    def __init__(self, k: int, n: int):
        self.k, self.n = _check_kn(k, n)

    def get_params(self) -> dict:
        return {"k": self.k, "n": self.n}

    def compute_mask(self, weight, *, scores=None, default_mask=None) -> torch.Tensor:
        return nm_magnitude_mask(weight, self.k, self.n, scores=scores,
                                 default_mask=default_mask)


def validate_masks(maskset, model: torch.nn.Module | None = None, *, pattern=None) -> None:
    """Check a :class:`~certkit.masks.MaskSet` against a model and a k:n pattern.

    Checks, layer by layer: the mask is bool; with ``model``, the module exists and the mask
    has the shape of its weight; with a pattern (``pattern``, or ``maskset.params["pattern"]``
    when ``pattern`` is None), :func:`validate_nm` holds. Layers listed in
    ``maskset.params["skipped"]`` must not have a mask.

    Raises
    ------
    ValueError
        Naming the first offending layer (the k:n message of :func:`validate_nm` included).
    """
    masks = getattr(maskset, "masks", None)
    if not isinstance(masks, Mapping):
        raise TypeError(f"maskset must be a MaskSet, got {type(maskset).__name__}")
    if pattern is None:
        pattern = (getattr(maskset, "params", None) or {}).get("pattern")
    kn = None if pattern is None else parse_pattern(pattern)
    skipped = (getattr(maskset, "params", None) or {}).get("skipped") or {}
    both = sorted(set(skipped) & set(masks))
    if both:
        raise ValueError(f"layers {both} are both masked and listed as skipped")
    for name, mask in masks.items():
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError(f"mask of layer {name!r} must be a bool tensor")
        if model is not None:
            module = get_module(model, name)
            if tuple(module.weight.shape) != tuple(mask.shape):
                raise ValueError(f"mask of layer {name!r} has shape {tuple(mask.shape)}, the "
                                 f"module's weight {tuple(module.weight.shape)}")
        if kn is not None:
            try:
                validate_nm(mask, *kn)
            except ValueError as exc:
                raise ValueError(f"layer {name!r}: {exc}") from exc
