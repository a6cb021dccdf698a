r"""``build_masks``: the model-level driver of issue 4 and the registry of mask methods.

Contract (issue 4): ``build_masks(model, method, calibration=None, sparsity=None, pattern=None,
permute=False, **params) -> MaskSet``. Methods live in :data:`METHODS`, a registry filled by
:func:`register_method` (timm's ``@register_model`` pattern, STYLE §4.2), so later methods are
added by registering a builder; the CLI and reports can list them with :func:`list_methods`.

A builder has the signature ``builder(model, layers, *, calibration, sparsity, pattern,
**params) -> MaskSet``, where ``layers`` is the selected ``{name: module}`` (ALGORITHMS §A.1)
and ``pattern`` is ``None`` or ``(k, n)``; :func:`build_masks` validates the common arguments
(sparsity in [0, 1), the pattern, the layer selection) before calling it.

Implemented (each module registers itself): ``"magnitude"`` (ALGORITHMS §2, §7.12),
``"rmt"`` (§3, :mod:`~certkit.masks.rmt`), ``"seb"`` (§4, :mod:`~certkit.masks.seb`),
``"ser"`` (§5, :mod:`~certkit.masks.ser`), ``"hybrid"`` (§6, :mod:`~certkit.masks.hybrid`),
``"cast"`` (§7, :mod:`~certkit.masks.cast`) and ``"wanda"`` (activation-aware |W|·‖x‖
baseline, :mod:`~certkit.masks.wanda`). ``permute=True`` (function-preserving input-channel
permutation alignment, §7.8, :mod:`~certkit.masks.permutation`) needs a k:n ``pattern``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from ._modules import dense_weight, get_module
from .base import check_sparsity
from .magnitude import global_magnitude_masks, layerwise_magnitude_masks
from .maskset import MaskSet
from .nm import format_pattern, nm_magnitude_mask, parse_pattern
from .selection import nm_ineligibility, select_layers

__all__ = [
    "CONTRACT_METHODS",
    "METHODS",
    "MethodEntry",
    "build_masks",
    "list_methods",
    "permute_dense",
    "register_method",
    "require_unstructured",
]

#: Method names of the issue-4 contract.
CONTRACT_METHODS = ("magnitude", "rmt", "seb", "ser", "hybrid", "cast", "wanda")


@dataclass(frozen=True)
class MethodEntry:
    """A registered mask method: its builder, what it is and where it is specified."""

    name: str
    builder: Callable[..., MaskSet] | None
    description: str
    spec: str
    implemented: bool


#: Registry: method name -> :class:`MethodEntry`.
METHODS: dict[str, MethodEntry] = {}


def register_method(name: str, *, description: str, spec: str = "",
                    replace: bool = False) -> Callable:
    """Decorator registering a builder under ``name`` (see the module docstring).

    Registering over an implemented method raises unless ``replace=True``; a *planned*
    placeholder is replaced silently (that is how later sessions fill in the contract).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name == {name!r}, must be a non-empty string")

    def deco(fn: Callable[..., MaskSet]) -> Callable[..., MaskSet]:
        old = METHODS.get(name)
        if old is not None and old.implemented and not replace:
            raise ValueError(f"mask method {name!r} is already registered "
                             f"({old.builder.__module__}.{old.builder.__qualname__}); pass "
                             "replace=True to override it")
        METHODS[name] = MethodEntry(name, fn, description, spec, True)
        return fn

    return deco


def _planned(name: str, description: str, spec: str) -> None:
    METHODS[name] = MethodEntry(name, None, description, spec, False)


def require_unstructured(method: str, sparsity, pattern) -> float:
    """Common argument rule of the unstructured builders (rmt, seb, ser, hybrid).

    Returns ``sparsity``; raises ``ValueError`` for a k:n ``pattern`` or a missing sparsity.
    """
    if pattern is not None:
        raise ValueError(f"{method} builds unstructured masks; pattern (k:n) is not supported "
                         "— use method='magnitude' or 'cast' for k:n")
    if sparsity is None:
        raise ValueError(f"{method} needs sparsity (a fraction in [0, 1))")
    return sparsity


def list_methods(*, implemented_only: bool = False) -> list[str]:
    """Sorted registered method names (optionally only the implemented ones)."""
    return sorted(n for n, e in METHODS.items() if e.implemented or not implemented_only)


def _select(model: torch.nn.Module, layers) -> dict[str, torch.nn.Module]:
    if layers is None:
        return select_layers(model)
    if isinstance(layers, Mapping):
        out = {str(n): get_module(model, str(n)) for n in layers}
    elif isinstance(layers, Sequence) and not isinstance(layers, str):
        out = {str(n): get_module(model, str(n)) for n in layers}
    else:
        raise TypeError("layers must be None (default selector), a mapping name -> module "
                        "(e.g. from select_layers) or a sequence of module names")
    if not out:
        raise ValueError("the layer selection is empty; nothing to prune")
    return out


def build_masks(model: torch.nn.Module, method: str, calibration=None, sparsity=None,
                pattern=None, permute: bool = False, **params) -> MaskSet:
    """Compute pruning masks for ``model`` with a registered method (issue 4 contract).

    Never modifies weights (use :func:`~certkit.masks.apply_masks`); with ``permute=True`` the
    model is first permuted in place into a function-equivalent one
    (:func:`~certkit.masks.permutation.permute_model`) and the masks refer to the permuted
    weights; ``MaskSet.permutations`` records ``{consumer: perm}`` and ``MaskSet.params`` the
    producers changed (``permutation_producers``), the layers left alone with the reason
    (``permutation_skipped``) and the kept score before/after (``permutation_scores``).

    Parameters
    ----------
    model : nn.Module
    method : str
        One of :func:`list_methods` (``"magnitude"`` implemented; ``"rmt"``, ``"seb"``,
        ``"ser"``, ``"hybrid"``, ``"cast"``, ``"wanda"`` planned).
    calibration : iterable of input batches, optional
        For data-aware methods (unused by magnitude).
    sparsity : float, optional
        Target sparsity in [0, 1) over the selected tensors (ALGORITHMS §A.2).
    pattern : str or (k, n), optional
        k:n pattern such as ``"2:4"`` (1 <= k < n); layers that cannot carry it are skipped
        and listed with the reason in ``MaskSet.params["skipped"]``.
    permute : bool, default False
        Input-channel permutation alignment (ALGORITHMS §7.8, §7.8.1); needs ``pattern``.
        Options in ``params``: ``importance`` (``{layer: tensor}`` shaped like the weight or
        one value per input channel; default ``|W|``), ``permute_max_iters``,
        ``permute_time_limit``, ``permute_seed``, ``permute_init``, ``permute_block_size``
        (see :func:`~certkit.masks.permutation.search_permutation`). If the method's builder
        fails, the permutation is undone before the error propagates. A ``dense=`` argument
        (CAST free restoration) is given in the *original* coordinates and mapped through the
        permutations before the builder sees it (:func:`permute_dense`;
        ``MaskSet.params["dense_permuted"]``); later calls of ``cast_values``/``materialize``
        need ``permute_dense(dense, maskset)``.
    **params
        ``layers`` (None = :func:`~certkit.masks.select_layers` defaults, a mapping from
        ``select_layers``, or a list of names) and method parameters (magnitude: ``scope``).

    Returns
    -------
    MaskSet

    Raises
    ------
    ValueError
        Unknown method (the message lists the valid names), sparsity outside [0, 1), a bad
        pattern, an empty selection, ``permute=True`` without a pattern.
    NotImplementedError
        A planned method.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    entry = METHODS.get(method) if isinstance(method, str) else None
    if entry is None:
        raise ValueError(f"method == {method!r} is unknown; valid methods: {list_methods()}")
    if sparsity is not None:
        sparsity = check_sparsity(sparsity)
    kn = None if pattern is None else parse_pattern(pattern)
    if not isinstance(permute, bool):
        raise TypeError(f"permute must be a bool, got {type(permute).__name__}")
    if not entry.implemented:
        raise NotImplementedError(
            f"mask method {method!r} ({entry.description}; {entry.spec}) is planned (issue 4) "
            f"but not implemented yet; implemented: {list_methods(implemented_only=True)}"
        )
    if permute and kn is None:
        raise ValueError(
            "permute=True needs pattern='k:n': the permutation search maximises the importance "
            "kept by a k:n pattern, and an unstructured mask does not depend on the order of "
            "the input channels (nothing to align)")
    layers = _select(model, params.pop("layers", None))
    if not permute:
        return entry.builder(model, layers, calibration=calibration, sparsity=sparsity,
                             pattern=kn, **params)
    from .permutation import permute_model

    opts = {key: params.pop(f"permute_{key}") for key in ("max_iters", "time_limit", "seed",
                                                          "init", "block_size")
            if f"permute_{key}" in params}
    report = permute_model(model, layers, *kn, importance=params.pop("importance", None),
                           **opts)
    aligned = params.get("dense") is not None and bool(report.permutations)
    try:
        if aligned:  # dense weights come in the original coordinates (free restoration)
            params["dense"] = _permute_dense(
                params["dense"], report.permutations,
                {c: report.sites[c].modules for c in report.permutations}, model)
        ms = entry.builder(model, layers, calibration=calibration, sparsity=sparsity,
                           pattern=kn, **params)
    except BaseException:
        report.undo(model)  # leave the model as it was on any error
        raise
    out = report.attach(ms)
    if aligned:
        out.params["dense_permuted"] = True
    return out


# ---------------------------------------------------------------------------- dense weights
_CHANNEL_ATTRS = ("weight", "bias", "running_mean", "running_var")


def _permute_dense(dense, permutations: Mapping[str, torch.Tensor],
                   producers: Mapping[str, Sequence[str]], model=None):
    """``dense`` (module or mapping, original coordinates) mapped through ``permutations``.

    Returns ``dense`` itself when it is ``model`` (already permuted in place), otherwise a new
    mapping: consumer weights get their columns (dim 1) permuted, the producer (first of
    ``producers[c]``) its rows and bias (dim 0), channelwise modules their 1-D tensors.
    Entries are looked up by module name and by state-dict key (``name.weight``, ...), as
    :func:`~certkit.masks.cast.build_cast` reads them; tensors that *are* the permuted model's
    own parameters (aliases, already permuted in place) are left alone.
    """
    if dense is None or dense is model:
        return dense
    if isinstance(dense, torch.nn.Module):
        out = {name: dense_weight(m) for name, m in dense.named_modules()
               if isinstance(getattr(m, "weight", None), torch.Tensor)}
    elif isinstance(dense, Mapping):
        out = dict(dense)
    else:
        raise TypeError(f"dense must be None, an nn.Module or a mapping name -> tensor, got "
                        f"{type(dense).__name__}")
    own = set() if model is None else {t.data_ptr() for t in model.parameters()}

    def index(key: str, dim: int, perm: torch.Tensor, ndim: int | None = None) -> None:
        t = out.get(key)
        if t is None:
            return
        t = torch.as_tensor(t).detach()
        if t.ndim <= dim or t.shape[dim] != perm.numel() or (ndim is not None
                                                             and t.ndim != ndim):
            return
        if t.data_ptr() in own:
            return
        out[key] = t.index_select(dim, perm.to(t.device))

    for consumer, perm in permutations.items():
        perm = torch.as_tensor(perm, dtype=torch.int64)
        for key in (consumer, f"{consumer}.weight"):
            index(key, 1, perm)
        mods = list(producers.get(consumer, ()))
        if mods:
            index(mods[0], 0, perm)
            for attr in ("weight", "bias"):
                index(f"{mods[0]}.{attr}", 0, perm)
        for nm in mods[1:]:
            index(nm, 0, perm, ndim=1)
            for attr in _CHANNEL_ATTRS:
                index(f"{nm}.{attr}", 0, perm, ndim=1)
    return out


def permute_dense(dense, maskset: MaskSet, model: torch.nn.Module | None = None):
    """Map dense weights from the original coordinates into those of a permuted ``maskset``.

    After ``build_masks(..., permute=True)`` the model and the masks live in permuted
    coordinates (``maskset.permutations``, producers in
    ``maskset.params["permutation_producers"]``); pass the result of this function, not the
    original dense weights, to :func:`~certkit.masks.cast.cast_values` /
    :func:`~certkit.masks.cast.materialize` / :func:`~certkit.masks.cast.restoration_split`.
    ``build_masks`` applies the same mapping to a ``dense=`` argument itself.

    Parameters
    ----------
    dense : nn.Module or mapping
        Dense weights by module name or state-dict key, in the original coordinates.
    maskset : MaskSet
    model : nn.Module, optional
        The permuted model: returned unchanged if ``dense`` is it, and tensors aliasing its
        parameters are not permuted twice.

    Returns
    -------
    mapping (or ``dense`` itself when nothing is permuted)
    """
    if not maskset.permutations:
        return dense
    producers = maskset.params.get("permutation_producers", {})
    return _permute_dense(dense, maskset.permutations, producers, model)


# ---------------------------------------------------------------------------- magnitude
SCOPES = ("global", "layerwise")


@register_method("magnitude", description="magnitude |w|: global, layerwise or k:n",
                 spec="ALGORITHMS §2, §7.12")
def _build_magnitude(model, layers, *, calibration=None, sparsity=None, pattern=None,
                     scope: str = "global") -> MaskSet:
    """Magnitude masks: global (§2.1) or layerwise (§2.2) exact counts, or k:n (§7.12)."""
    del calibration  # data-free
    if scope not in SCOPES:
        raise ValueError(f"scope == {scope!r}, must be one of {SCOPES}")
    if pattern is not None:
        if sparsity is not None:
            raise ValueError("give sparsity or pattern, not both: a k:n pattern fixes the "
                             "sparsity of every eligible layer to 1 - k/n")
        k, n = pattern
        masks, skipped = {}, {}
        for name, module in layers.items():
            reason = nm_ineligibility(module, k, n)
            if reason is not None:
                skipped[name] = reason
                continue
            masks[name] = nm_magnitude_mask(dense_weight(module), k, n)
        if not masks:
            raise ValueError(f"no selected layer can carry a {k}:{n} pattern: {skipped}")
        params = {"pattern": format_pattern(k, n), "k": k, "n": n, "scope": "k:n",
                  "tie_break": "flat_index", "skipped": skipped}
        return MaskSet(masks, "magnitude", params)
    if sparsity is None:
        raise ValueError("magnitude needs sparsity (a fraction in [0, 1)) or pattern ('k:n')")
    weights = {name: dense_weight(module) for name, module in layers.items()}
    fn = global_magnitude_masks if scope == "global" else layerwise_magnitude_masks
    masks = fn(weights, sparsity)
    params = {"sparsity": sparsity, "scope": scope, "tie_break": "flat_index",
              "count": "round_half_up", "skipped": {}}
    return MaskSet(masks, "magnitude", params)


# ---------------------------------------------------------------------------- planned
_planned("rmt", "classical RMT: sub-edge SVD reconstruction and its magnitude-mask form",
         "ALGORITHMS §3")
_planned("seb", "SEB / S+ spectral-edge layerwise budgets", "ALGORITHMS §4")
_planned("ser", "SER sparsify-estimate-restore (spectral edge reallocation)", "ALGORITHMS §5")
_planned("hybrid", "Hybrid Magnitude-SER schedule", "ALGORITHMS §6")
_planned("cast", "CAST certificate-inspired k:n projection", "ALGORITHMS §7")
_planned("wanda", "activation-aware |W|·||x|| baseline (Wanda-style)", "issue 4 item 6")
