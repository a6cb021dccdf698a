r"""Which layers to prune: a configurable layer selector and the layer-type classifier.

ALGORITHMS §A.1: the prunable-layer set differs by pipeline (every Linear/Conv for global
magnitude, SEB and SER; eligible Linear with the head for CAST k:n; groups = 1 convs for
CAST-conv; ...), so it is a parameter, not a constant. :func:`select_layers` covers those rows;
:data:`PRESETS` names them. Only ``weight`` tensors of modules are ever selected (biases,
norms, embeddings, tokens are never counted or pruned, §0.1).

Name rules (timm layouts; documented because the repository's own rules are partly MISSING):

* **head**: ``model.get_classifier()`` when the model has it (timm), else a module named
  ``head``, ``fc``, ``classifier``, ``last_linear`` or ``head.fc`` (see :func:`is_head`);
* **patch embedding / stem**: a dotted name component ``patch_embed``, ``stem`` or
  ``conv_stem``, or the top-level ``conv1`` of torchvision/timm ResNets (:func:`is_embed`);
* **depthwise conv**: ``groups == in_channels > 1`` (ConvNeXt ``conv_dw``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import torch

__all__ = [
    "HEAD_NAMES",
    "LAYER_TYPES",
    "PRESETS",
    "SEB_LAYER_TYPES",
    "VIT_BLOCK_LINEARS",
    "is_depthwise",
    "is_embed",
    "is_head",
    "layer_type",
    "nm_ineligibility",
    "select_layers",
]

#: Module names treated as the classifier head when the model has no ``get_classifier``.
HEAD_NAMES = ("head", "fc", "classifier", "last_linear", "head.fc")
#: Dotted name components marking a patch embedding / stem (plus top-level ``conv1``).
EMBED_NAME_PARTS = ("patch_embed", "stem", "conv_stem")
#: Name patterns of the four Linear layers of a timm ViT/DeiT block (ALGORITHMS §A.1).
VIT_BLOCK_LINEARS = ("*attn.qkv", "*attn.proj", "*mlp.fc1", "*mlp.fc2")
#: Labels of :func:`layer_type` (scheme "audit"; ALGORITHMS §8.2's 5 types plus "other").
LAYER_TYPES = ("attn", "mlp", "conv", "embed/head", "downsample", "other")
#: Labels of :func:`layer_type` with scheme "seb" (ALGORITHMS §A.1, ``classify_layer_type``).
SEB_LAYER_TYPES = ("attn", "mlp", "other")

_KINDS = {
    "linear": (torch.nn.Linear,),
    "conv": (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d),
}

#: Named selectors for the rows of ALGORITHMS §A.1 (keyword arguments of :func:`select_layers`;
#: CAST rows also need ``nm=``).
PRESETS: dict[str, dict] = {
    # global magnitude, SEB, SER, MP caches: every nn.Linear and nn.Conv2d, any groups
    "all": {"include": ("linear", "conv"), "depthwise": True},
    # the timm ViT block Linears only (no head, no patch embedding)
    "vit_blocks": {"include": ("linear",), "include_names": VIT_BLOCK_LINEARS,
                   "include_head": False, "include_patch_embed": False},
    # CAST-2E linear path: Linear with in % n == 0 and out >= n, head included
    "cast_linear": {"include": ("linear",), "include_head": True,
                    "include_patch_embed": False},
    # CAST-conv: groups == 1 convs, Linear head untouched, stem excluded
    "cast_conv": {"include": ("conv",), "include_head": False, "include_patch_embed": False},
}


def is_depthwise(module: torch.nn.Module) -> bool:
    """True for a depthwise conv (``groups == in_channels > 1``)."""
    return (isinstance(module, _KINDS["conv"]) and module.groups > 1
            and module.groups == module.in_channels)


def is_head(name: str, module: torch.nn.Module | None = None,
            model: torch.nn.Module | None = None) -> bool:
    """True if ``name`` is the classifier head (``model.get_classifier()`` when available)."""
    getter = getattr(model, "get_classifier", None)
    if callable(getter) and module is not None:
        head = getter()
        heads = head if isinstance(head, tuple | list) else (head,)
        heads = [h for h in heads if isinstance(h, torch.nn.Module)]
        if heads:  # timm: the classifier, or (head, head_dist) for distilled models
            return any(m is module for h in heads for m in h.modules())
    return name in HEAD_NAMES


def is_embed(name: str) -> bool:
    """True for a patch embedding / stem by name (module docstring rules)."""
    parts = name.split(".")
    return name == "conv1" or any(p in EMBED_NAME_PARTS for p in parts)


def nm_ineligibility(module: torch.nn.Module, k: int, n: int) -> str | None:
    """Why ``module`` cannot carry a k:n mask, or None if it can (ALGORITHMS §A.1, §7.2).

    Linear: ``in_features % n == 0`` and ``out_features >= n``. Conv: ``groups == 1``, the
    im2col width ``(C_in/groups)·k_h·k_w`` divisible by ``n`` (§1.7) and ``C_out >= n``.
    Depthwise and grouped convs are ineligible (their matrix view is block-diagonal).
    """
    if k >= n:
        raise ValueError(f"k == {k}, n == {n}: need 1 <= k < n")
    if isinstance(module, torch.nn.Linear):
        if module.in_features % n:
            return f"in_features == {module.in_features} is not a multiple of n == {n}"
        if module.out_features < n:
            return f"out_features == {module.out_features} < n == {n}"
        return None
    if isinstance(module, _KINDS["conv"]):
        if module.groups != 1:
            kind = "depthwise" if is_depthwise(module) else "grouped"
            return f"{kind} conv (groups == {module.groups}); k:n needs groups == 1"
        width = module.weight[0].numel()
        if width % n:
            return (f"im2col width (C_in/groups)·k_h·k_w == {width} is not a multiple of "
                    f"n == {n}")
        if module.out_channels < n:
            return f"out_channels == {module.out_channels} < n == {n}"
        return None
    return f"{type(module).__name__} is neither a Linear nor a conv"


def _as_patterns(x, name: str) -> tuple[str, ...]:
    if isinstance(x, str):
        return (x,)
    if x is None:
        return ()
    if not isinstance(x, Iterable):
        raise TypeError(f"{name} must be a string or an iterable of name patterns")
    return tuple(str(p) for p in x)


def select_layers(model: torch.nn.Module, *, include=("linear", "conv"), exclude_names=(),
                  include_names=None, include_head: bool = True,
                  include_patch_embed: bool = True, depthwise: bool = False,
                  nm=None) -> dict[str, torch.nn.Module]:
    """Select the prunable layers of ``model`` (ALGORITHMS §A.1).

    Parameters
    ----------
    model : nn.Module
    include : iterable of {"linear", "conv"}
        Module kinds: ``nn.Linear`` (and subclasses) and ``nn.Conv1d/2d/3d`` (transposed convs
        are never selected: their weight layout is not ``(out, in, ...)``).
    exclude_names : iterable of str
        ``fnmatch`` patterns (an exact name is a pattern) of modules to leave out.
    include_names : iterable of str, optional
        If given, only modules matching one of these patterns, e.g.
        :data:`VIT_BLOCK_LINEARS` for the timm ViT blocks' qkv/proj/fc1/fc2.
    include_head, include_patch_embed : bool
        Keep the classifier head / the patch embedding or stem (see :func:`is_head`,
        :func:`is_embed`).
    depthwise : bool, default False
        Keep depthwise convs (``groups == in_channels > 1``). ALGORITHMS §A.1's first row
        includes them (``PRESETS["all"]``); every k:n path excludes them.
    nm : str or (k, n), optional
        Keep only layers that can carry a k:n mask (:func:`nm_ineligibility`).

    Returns
    -------
    dict of str to nn.Module
        In ``model.named_modules()`` order (shared modules once).

    Raises
    ------
    ValueError
        If nothing is selected, or for an unknown ``include`` kind.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    kinds = _as_patterns(include, "include")
    unknown = [k for k in kinds if k not in _KINDS]
    if unknown or not kinds:
        raise ValueError(f"include == {include!r}, must be a non-empty subset of "
                         f"{sorted(_KINDS)}")
    types = tuple(t for k in kinds for t in _KINDS[k])
    excl = _as_patterns(exclude_names, "exclude_names")
    incl = None if include_names is None else _as_patterns(include_names, "include_names")
    kn = None
    if nm is not None:
        from .nm import parse_pattern

        kn = parse_pattern(nm)
    out: dict[str, torch.nn.Module] = {}
    for name, module in model.named_modules():
        if not name or not isinstance(module, types):
            continue
        if not isinstance(getattr(module, "weight", None), torch.Tensor):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in excl):
            continue
        if incl is not None and not any(fnmatch.fnmatchcase(name, p) for p in incl):
            continue
        if not depthwise and is_depthwise(module):
            continue
        if not include_head and is_head(name, module, model):
            continue
        if not include_patch_embed and is_embed(name):
            continue
        if kn is not None and nm_ineligibility(module, *kn) is not None:
            continue
        out[name] = module
    if not out:
        raise ValueError(
            f"the layer selection is empty (include={kinds!r}, include_names={incl!r}, "
            f"exclude_names={excl!r}, include_head={include_head}, "
            f"include_patch_embed={include_patch_embed}, depthwise={depthwise}, nm={nm!r}); "
            "nothing to prune"
        )
    return out


def layer_type(name: str, module: torch.nn.Module | None = None, *,
               scheme: str = "audit") -> str:
    """Classify a layer by name (and module) into a layer type.

    Scheme ``"seb"`` is the 3-type rule of ALGORITHMS §A.1 (``classify_layer_type``, used by
    SEB's β_attn/β_mlp): lowercase name contains ``"attn"`` → ``attn``; else contains
    ``"mlp"`` or ``".fc"`` → ``mlp``; else ``other``. It is reproduced literally, so e.g.
    ConvNeXt's ``head.fc`` is ``mlp``.

    Scheme ``"audit"`` (default) gives the 5 audit types of §8.2 plus ``other`` (the exact
    rules are MISSING in the repository; these are certkit's, checked in this order):

    1. ``embed/head``: :func:`is_head` by name (``head``, ``fc``, ``classifier``,
       ``last_linear``, ``head.fc``, or anything under ``head.``) or :func:`is_embed`;
    2. ``downsample``: a name component containing ``downsample`` or equal to ``reduction``
       (Swin patch merging);
    3. ``attn``: the name contains ``attn`` or ``attention``;
    4. ``mlp`` (MLP / pointwise): the name contains ``mlp`` or ``ffn``, a component starts with
       ``fc``, or the module is a 1×1 conv with ``groups == 1``;
    5. ``conv``: any other conv module (k×k, depthwise, grouped);
    6. ``other``.
    """
    low = name.lower()
    if scheme == "seb":
        if "attn" in low:
            return "attn"
        if "mlp" in low or ".fc" in low:
            return "mlp"
        return "other"
    if scheme != "audit":
        raise ValueError(f"scheme == {scheme!r}, must be 'audit' or 'seb'")
    parts = low.split(".")
    if low in HEAD_NAMES or low.startswith("head.") or is_embed(low):
        return "embed/head"
    if any("downsample" in p or p == "reduction" for p in parts):
        return "downsample"
    if "attn" in low or "attention" in low:
        return "attn"
    pointwise = (isinstance(module, _KINDS["conv"]) and module.groups == 1
                 and all(k == 1 for k in module.kernel_size))
    if "mlp" in low or "ffn" in low or any(p.startswith("fc") for p in parts) or pointwise:
        return "mlp"
    if isinstance(module, _KINDS["conv"]):
        return "conv"
    return "other"
