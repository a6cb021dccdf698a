r"""Pruning masks: layer selection, exact-count magnitude and k:n masks, ``MaskSet`` I/O,
applying masks to torch models and frozen-mask fine-tuning (issue 4; ALGORITHMS §A, §2, §7).

Contract (issue 4)::

    ms = certkit.masks.build_masks(model, "magnitude", sparsity=0.5)        # global, exact count
    ms = certkit.masks.build_masks(model, "magnitude", pattern="2:4")       # k:n, per row
    certkit.masks.validate_masks(ms, model)                                 # k:n checked too
    R = ms.removed(model)                       # {layer: W ⊙ (1 − M)} for the certificates
    certkit.masks.apply_masks(model, ms)        # torch.nn.utils.prune.custom_from_mask
    ms.save("masks.safetensors"); certkit.masks.MaskSet.load("masks.safetensors")

Modules: :mod:`~certkit.masks.selection` (which layers, layer types), :mod:`~.base`
(:class:`MaskMethod`, exact-count selection), :mod:`~.magnitude`, :mod:`~.nm` (k:n),
:mod:`~.maskset`, :mod:`~.apply`, :mod:`~.build` (driver + method registry). Nothing here
imports timm; safetensors is imported only by ``MaskSet.save``/``load``.
"""

# Importing the method modules registers them with build.register_method.
from . import (
    apply,
    base,
    build,
    calibration,
    cast,
    hybrid,
    magnitude,
    maskset,
    nm,
    permutation,
    rmt,
    seb,
    selection,
    ser,
    wanda,
)
from .apply import (
    APPLY_MODES,
    apply_masks,
    frozen_masks,
    mask_gradients,
    masked_finetune_step,
    remove_masks,
    rezero_weights,
)
from .base import KINDS, MaskMethod, check_sparsity, exact_prune_mask, n_prune_for_sparsity
from .build import CONTRACT_METHODS, METHODS, build_masks, list_methods, register_method
from .magnitude import (
    MagnitudeMask,
    global_magnitude_masks,
    layerwise_magnitude_masks,
    magnitude_mask,
)
from .maskset import MaskSet
from .nm import (
    PAPER_PATTERNS,
    NMMagnitudeMask,
    format_pattern,
    nm_magnitude_mask,
    parse_pattern,
    validate_masks,
    validate_nm,
)
from .selection import (
    LAYER_TYPES,
    PRESETS,
    SEB_LAYER_TYPES,
    VIT_BLOCK_LINEARS,
    is_depthwise,
    is_embed,
    is_head,
    layer_type,
    nm_ineligibility,
    select_layers,
)

__all__ = [
    "calibration",
    "cast",
    "wanda",
    "hybrid",
    "permutation",
    "rmt",
    "seb",
    "ser",
    "APPLY_MODES",
    "CONTRACT_METHODS",
    "KINDS",
    "LAYER_TYPES",
    "METHODS",
    "MagnitudeMask",
    "MaskMethod",
    "MaskSet",
    "NMMagnitudeMask",
    "PAPER_PATTERNS",
    "PRESETS",
    "SEB_LAYER_TYPES",
    "VIT_BLOCK_LINEARS",
    "apply",
    "apply_masks",
    "base",
    "build",
    "build_masks",
    "check_sparsity",
    "exact_prune_mask",
    "format_pattern",
    "frozen_masks",
    "global_magnitude_masks",
    "is_depthwise",
    "is_embed",
    "is_head",
    "layer_type",
    "layerwise_magnitude_masks",
    "list_methods",
    "magnitude",
    "magnitude_mask",
    "mask_gradients",
    "masked_finetune_step",
    "maskset",
    "n_prune_for_sparsity",
    "nm",
    "nm_ineligibility",
    "nm_magnitude_mask",
    "parse_pattern",
    "register_method",
    "remove_masks",
    "rezero_weights",
    "select_layers",
    "selection",
    "validate_masks",
    "validate_nm",
]
