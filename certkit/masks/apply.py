r"""Putting masks on a model: attach (``torch.nn.utils.prune``) or zero in place, make
permanent, and keep them frozen while fine-tuning.

* :func:`apply_masks` with ``mode="prune"`` reparametrises each module with
  ``torch.nn.utils.prune.custom_from_mask`` (``weight_orig`` parameter, ``weight_mask`` buffer,
  forward pre-hook), so standard tooling (``prune.is_pruned``, ``prune.remove``, composition of
  masks) works; ``mode="inplace"`` multiplies the weights by the masks (STYLE §4.5-6).
* :func:`remove_masks` makes attached masks permanent (``prune.remove``).
* :func:`frozen_masks`, :func:`mask_gradients`, :func:`rezero_weights` and
  :func:`masked_finetune_step` implement the frozen-mask fine-tuning primitive of ALGORITHMS
  §A.3: gradients of pruned entries are zeroed (before gradient clipping and the optimizer
  step) and the weights are re-zeroed after the step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn.utils import prune

from .._validation import check_scalar
from ._modules import get_module, weight_parameter
from .maskset import MaskSet

__all__ = [
    "APPLY_MODES",
    "apply_masks",
    "frozen_masks",
    "mask_gradients",
    "masked_finetune_step",
    "remove_masks",
    "rezero_weights",
]

#: Modes of :func:`apply_masks`.
APPLY_MODES = ("prune", "inplace")


def _resolve(model: torch.nn.Module, maskset: MaskSet) -> list[tuple[str, torch.nn.Module,
                                                                     torch.Tensor]]:
    """Check every layer before touching any (no half-applied mask sets)."""
    if not isinstance(maskset, MaskSet):
        raise TypeError(f"maskset must be a MaskSet, got {type(maskset).__name__}")
    out = []
    for name, mask in maskset.masks.items():
        module = get_module(model, name)
        W = weight_parameter(module)
        if tuple(W.shape) != tuple(mask.shape):
            raise ValueError(f"mask of layer {name!r} has shape {tuple(mask.shape)}, the "
                             f"module's weight {tuple(W.shape)}")
        out.append((name, module, mask.to(W.device)))
    return out


def apply_masks(model: torch.nn.Module, maskset: MaskSet, *, mode: str = "prune"
                ) -> torch.nn.Module:
    """Attach (``mode="prune"``) or apply in place (``mode="inplace"``) the masks of ``maskset``.

    Parameters
    ----------
    model : nn.Module
        Modified in place and returned.
    maskset : MaskSet
        Names must be submodules of ``model`` with weights of the masks' shapes (checked for
        every layer before any is modified).
    mode : {"prune", "inplace"}
        ``"prune"``: ``torch.nn.utils.prune.custom_from_mask(module, "weight", mask)``; the
        dense values stay in ``weight_orig`` (so :meth:`MaskSet.removed` still sees them), a
        second application composes (masks multiply, as ``PruningContainer`` does), and
        :func:`remove_masks` makes it permanent. ``"inplace"``: ``weight *= mask`` on the
        stored values (``weight_orig`` if the module is already reparametrised).

    Returns
    -------
    nn.Module
        ``model``.
    """
    if mode not in APPLY_MODES:
        raise ValueError(f"mode == {mode!r}, must be one of {APPLY_MODES}")
    items = _resolve(model, maskset)
    for _name, module, mask in items:
        if mode == "prune":
            prune.custom_from_mask(module, "weight", mask)
        else:
            with torch.no_grad():
                weight_parameter(module).mul_(mask.to(weight_parameter(module).dtype))
    return model


def remove_masks(model: torch.nn.Module) -> list[str]:
    """Make every attached ``weight`` prune mask permanent (``prune.remove``).

    Returns
    -------
    list of str
        Names of the modules that were reparametrised (now holding ``weight = orig ⊙ mask``
        as a plain parameter).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    done = []
    for name, module in model.named_modules():
        hooks = [h for h in module._forward_pre_hooks.values()
                 if isinstance(h, prune.BasePruningMethod) and h._tensor_name == "weight"]
        if hooks:
            prune.remove(module, "weight")
            done.append(name)
    return done


def mask_gradients(model: torch.nn.Module, maskset: MaskSet) -> None:
    """Zero the gradients of pruned entries (ALGORITHMS §A.3 ``grad[masked] = 0``)."""
    for _name, module, mask in _resolve(model, maskset):
        p = weight_parameter(module)
        if p.grad is not None:
            p.grad.mul_(mask.to(p.grad.dtype))


def rezero_weights(model: torch.nn.Module, maskset: MaskSet) -> None:
    """Re-zero pruned weights after an optimizer step (ALGORITHMS §A.3 ``weight *= mask``).

    Modules reparametrised by ``mode="prune"`` are left alone: their forward already applies
    the mask and ``weight_orig`` keeps the removed values for :meth:`MaskSet.removed`.
    """
    with torch.no_grad():
        for _name, module, mask in _resolve(model, maskset):
            if not hasattr(module, "weight_orig"):
                module.weight.mul_(mask.to(module.weight.dtype))


@contextlib.contextmanager
def frozen_masks(model: torch.nn.Module, maskset: MaskSet,
                 optimizer: torch.optim.Optimizer | None = None) -> Iterator[torch.nn.Module]:
    """Context manager freezing the masks of ``maskset`` during fine-tuning (ALGORITHMS §A.3).

    Inside the block, every gradient of a masked weight is multiplied by its mask as soon as
    it is computed (tensor hooks, so gradient clipping sees the masked gradient, as in §A.3),
    and, if ``optimizer`` is given, :func:`rezero_weights` runs after each ``optimizer.step()``
    (a step post-hook; guards against weight decay or momentum leaking into pruned entries).
    Pruned weights are zeroed on entry (:func:`rezero_weights`). The training loop itself is
    unchanged. Hooks are removed on exit.

    Examples
    --------
    >>> with frozen_masks(model, maskset, optimizer):      # doctest: +SKIP
    ...     for x, y in loader:
    ...         opt.zero_grad(); loss_fn(model(x), y).backward(); opt.step()
    """
    items = _resolve(model, maskset)
    handles = []
    try:
        for _name, module, mask in items:
            p = weight_parameter(module)
            if p.requires_grad:
                m = mask.to(p.dtype)
                handles.append(p.register_hook(lambda g, m=m: g * m))
        if optimizer is not None:
            handles.append(optimizer.register_step_post_hook(
                lambda _opt, _args, _kwargs: rezero_weights(model, maskset)))
        rezero_weights(model, maskset)
        yield model
    finally:
        for h in handles:
            h.remove()


def masked_finetune_step(model: torch.nn.Module, maskset: MaskSet,
                         optimizer: torch.optim.Optimizer, loss: torch.Tensor, *,
                         max_grad_norm: float | None = None) -> float:
    """One frozen-mask optimisation step on an already computed ``loss`` (ALGORITHMS §A.3).

    ``zero_grad → loss.backward() → grad[masked] = 0 → (clip global grad norm) →
    optimizer.step() → weight *= mask``. §A.3's recipe clips at ``max_grad_norm = 1.0``.

    Returns
    -------
    float
        ``loss.item()``.
    """
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("loss must be a scalar tensor (computed by a forward pass of model)")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    mask_gradients(model, maskset)
    if max_grad_norm is not None:
        c = check_scalar(max_grad_norm, "max_grad_norm", min_val=0.0, include_min=False)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], c)
    optimizer.step()
    rezero_weights(model, maskset)
    return float(loss.detach())
