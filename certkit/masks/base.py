r"""The mask-method base class and the exact-count selection primitive.

Every pruning method of :mod:`certkit.masks` is a small :class:`MaskMethod` subclass with a
*pure* ``compute_mask(weight, *, scores=None, default_mask=None) -> bool tensor`` and a ``KIND``
class attribute, the shape of ``torch.nn.utils.prune.BasePruningMethod`` (STYLE §4.5) without
its overloaded ``amount``: a method takes ``sparsity`` (a fraction in [0, 1)) *or* ``n_prune``
(a count), never one argument meaning both.

:func:`exact_prune_mask` is the selection rule every unstructured method shares (ALGORITHMS
§A.2, "recommended toolkit behaviour"): prune *exactly* ``n_prune`` entries — the entries marked
``prune_first`` (already-zero weights, entries pruned by an earlier mask), then the lowest
scores — breaking ties by flat index (the smaller flat index is pruned first). The threshold
conventions of the authors' scripts (``score ≥ τ`` / ``score > τ``), which remove fewer or more
than the requested count under ties, are deliberately not the default.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from .._validation import check_int, check_scalar

__all__ = [
    "KINDS",
    "MaskMethod",
    "check_sparsity",
    "exact_prune_mask",
    "n_prune_for_sparsity",
]

#: What a method's masks look like (STYLE §4.5; ``torch.nn.utils.prune``'s ``PRUNING_TYPE``).
KINDS = ("unstructured", "k:n", "structured")

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class MaskMethod(ABC):
    """Base class of a pruning-mask method (STYLE §4.5).

    Subclasses set ``NAME`` (the registry name used in manifests) and ``KIND`` (one of
    :data:`KINDS`) and implement :meth:`compute_mask`, a pure function of tensors: it never
    modifies ``weight`` or a module. Hyper-parameters go to ``__init__`` and are reported by
    :meth:`get_params` (JSON-serialisable, recorded in :class:`~certkit.masks.MaskSet` manifests).

    Because ``default_mask`` is an input (False = already pruned, kept pruned), repeated pruning
    composes as in ``torch.nn.utils.prune.PruningContainer``.
    """

    NAME: ClassVar[str] = ""
    KIND: ClassVar[str] = "unstructured"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.KIND not in KINDS:
            raise TypeError(f"{cls.__name__}.KIND == {cls.KIND!r}, must be one of {KINDS}")

    @abstractmethod
    def compute_mask(self, weight: torch.Tensor, *, scores: torch.Tensor | None = None,
                     default_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the keep-mask (bool, shaped like ``weight``, True = kept).

        Parameters
        ----------
        weight : torch.Tensor
            The weight to prune (Linear ``(out, in)`` or a conv kernel; methods that need a
            matrix use the im2col view of ALGORITHMS §1.7).
        scores : torch.Tensor, optional
            Importance scores shaped like ``weight`` (higher = more important); default is a
            method-specific function of ``weight`` (|w| for magnitude). Separating the scored
            tensor from the masked one mirrors torch's ``importance_scores``.
        default_mask : torch.Tensor of bool, optional
            Entries already pruned (False) stay pruned and count towards the target.
        """

    def __call__(self, weight: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.compute_mask(weight, **kwargs)

    def get_params(self) -> dict:
        """JSON-serialisable hyper-parameters (for manifests and ``repr``)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


# ------------------------------------------------------------------------------ validation
def check_sparsity(sparsity, name: str = "sparsity") -> float:
    """Return ``sparsity`` as a float in ``[0, 1)`` (ALGORITHMS §0.1: s ∈ [0, 1))."""
    return check_scalar(sparsity, name, min_val=0.0, max_val=1.0, include_max=False)


def n_prune_for_sparsity(sparsity, total: int) -> int:
    """Number of entries to prune for a target sparsity: ``round(s·total)``, halves rounded up.

    ALGORITHMS §A.2 (exact-count convention of ``incremental_prune_to_target``). Python's
    ``round`` (half to even) is not used so that the count is monotone in ``total``.
    """
    s = check_sparsity(sparsity)
    total = check_int(total, "total", min_val=0)
    return min(total, math.floor(s * total + 0.5))


def check_weight(weight, name: str = "weight", *, min_ndim: int = 1) -> torch.Tensor:
    """Detached floating weight with at least ``min_ndim`` dims and no NaN/Inf."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(weight).__name__}")
    w = weight.detach()
    if not w.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {w.dtype}")
    if w.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape "
                         f"{tuple(w.shape)}")
    if w.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{name} contains NaN or Inf; all weights must be finite")
    return w


def check_scores(scores, weight: torch.Tensor, name: str = "scores") -> torch.Tensor:
    """Floating scores shaped like ``weight``; +/-Inf allowed (never / first pruned), NaN not."""
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(scores).__name__}")
    s = scores.detach()
    if tuple(s.shape) != tuple(weight.shape):
        raise ValueError(f"{name} must have the weight's shape {tuple(weight.shape)}, got "
                         f"{tuple(s.shape)}")
    if not s.is_floating_point():
        s = s.to(torch.float64)
    if bool(torch.isnan(s).any()):
        raise ValueError(f"{name} contains NaN; every entry needs a comparable score")
    return s.to(weight.device)


def check_bool_mask(mask, weight: torch.Tensor, name: str = "default_mask") -> torch.Tensor:
    """A bool tensor shaped like ``weight`` (True = kept)."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = kept), got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(weight.shape):
        raise ValueError(f"{name} must have the weight's shape {tuple(weight.shape)}, got "
                         f"{tuple(mask.shape)}")
    return mask.to(weight.device)


def score_key(weight: torch.Tensor, scores: torch.Tensor | None,
              default_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(key, prune_first)``: ``|w|`` (or ``scores``) in a working precision, and the entries
    that must be pruned first (weight exactly 0 or ``default_mask`` False; ALGORITHMS §A.2)."""
    if scores is None:
        key = weight.abs()
    else:
        key = check_scores(scores, weight)
    if key.dtype in _LOW_PRECISION:
        key = key.to(torch.float32)
    first = weight == 0
    if default_mask is not None:
        first = first | ~check_bool_mask(default_mask, weight)
    return key, first


# ------------------------------------------------------------------------------ selection
def exact_prune_mask(scores: torch.Tensor, n_prune: int, *,
                     prune_first: torch.Tensor | None = None) -> torch.Tensor:
    """Keep-mask that prunes exactly ``n_prune`` entries of ``scores`` (ALGORITHMS §A.2).

    Order of pruning: entries with ``prune_first`` True, then ascending score; ties (equal
    scores, or several ``prune_first`` entries) are broken by flat (row-major) index, the
    smaller index being pruned first. The result is deterministic and uses O(numel) memory
    (one ``kthvalue`` plus a running count of the ties at the threshold — no full sort).

    Parameters
    ----------
    scores : torch.Tensor
        Importance scores (higher = kept); any shape; NaN rejected.
    n_prune : int
        Number of entries to prune, ``0 <= n_prune <= scores.numel()``.
    prune_first : torch.Tensor of bool, optional
        Entries pruned before any other (e.g. weights that are already zero).

    Returns
    -------
    torch.Tensor of bool
        Shaped like ``scores``; exactly ``numel - n_prune`` entries are True.
    """
    if not isinstance(scores, torch.Tensor):
        raise TypeError(f"scores must be a torch.Tensor, got {type(scores).__name__}")
    total = scores.numel()
    n_prune = check_int(n_prune, "n_prune", min_val=0)
    if n_prune > total:
        raise ValueError(f"n_prune == {n_prune}, must be <= the number of entries {total}")
    key = scores.detach().reshape(-1)
    if not key.is_floating_point():
        key = key.to(torch.float64)
    elif key.dtype in _LOW_PRECISION:
        key = key.to(torch.float32)
    if bool(torch.isnan(key).any()):
        raise ValueError("scores contains NaN; every entry needs a comparable score")
    if prune_first is not None:
        if tuple(prune_first.shape) != tuple(scores.shape) or prune_first.dtype != torch.bool:
            raise ValueError("prune_first must be a bool tensor shaped like scores")
        key = key.masked_fill(prune_first.reshape(-1).to(key.device), -math.inf)
    keep = torch.ones(total, dtype=torch.bool, device=key.device)
    if n_prune == 0:
        return keep.reshape(scores.shape)
    if n_prune == total:
        return keep.logical_not_().reshape(scores.shape)
    tau = torch.kthvalue(key, n_prune).values
    below = key < tau
    ties = key == tau
    need = n_prune - int(below.sum())
    # the `need` ties with the smallest flat index are pruned
    tie_rank = torch.cumsum(ties, dim=0)
    pruned = below | (ties & (tie_rank <= need))
    return pruned.logical_not_().reshape(scores.shape)
