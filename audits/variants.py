r"""What an audit compares: a *variant* = the pruned weights ``S_ℓ`` of each audited layer.

For every audited layer ℓ with dense matrix ``A_ℓ`` the variant fixes ``S_ℓ`` and hence the removed
component ``R_ℓ = A_ℓ − S_ℓ`` (THEORY §1.4). Two kinds (Trap T8):

* **mask** decomposition: ``S = M ⊙ A`` for a keep-mask ``M`` (verified entry by entry, so
  ``S ⊙ R = 0``) — every certificate of THEORY §2.2 applies;
* **additive** decomposition: any other ``S`` (e.g. a fine-tuned sparse checkpoint, whose kept
  weights moved) — only M-Lemma 5.1, M-Cor 5.2 and M-Thm 5.3 apply.

A variant may also carry prune–restore splits ``(S, Q, P)`` (M-Thm 5.5 / M-Cor 5.6) with
``S + Q + P`` the matrix the theorem applies to (Trap T14).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from certkit.masks import MaskSet
from certkit.masks._modules import dense_weight, get_module

__all__ = ["Variant", "variant_from_masks", "variant_from_state_dict", "decomposition_kind"]


@dataclass(frozen=True, eq=False)
class Variant:
    """Pruned weights of the audited layers.

    Attributes
    ----------
    name : str
        Short label used in reports (``"cast-2:4"``, ``"cast-2:4+ft"``).
    weights : dict of str to torch.Tensor
        Layer name -> pruned weight ``S_ℓ`` shaped like the module's weight.
    masks : dict of str to bool tensor, optional
        Keep-masks; when given, ``S = M ⊙ A`` is verified by the audit (mask decomposition).
    splits : dict of str to (S, Q, P), optional
        Prune–restore splits shaped like the weight (M-Thm 5.5).
    description : str
        One line for the report.
    source : dict
        JSON-able provenance (method, parameters, checkpoint path).
    other_changes : list of str
        Parameters outside the audited weights that differ in the pruned model (biases, norms,
        unaudited layers after fine-tuning): the whole-network comparison with such a model is
        not an instance of the theorems and the report says so.
    """

    name: str
    weights: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor] | None = None
    splits: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None
    description: str = ""
    source: dict = field(default_factory=dict)
    other_changes: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.weights, Mapping) or not self.weights:
            raise ValueError(f"variant {self.name!r}: weights must be a non-empty mapping "
                             "layer name -> pruned weight")
        for n, w in self.weights.items():
            if not isinstance(w, torch.Tensor) or not w.is_floating_point():
                raise TypeError(f"variant {self.name!r}: weights[{n!r}] must be a float tensor")
        if self.masks is not None:
            for n, m in self.masks.items():
                if n not in self.weights:
                    raise ValueError(f"variant {self.name!r}: mask for {n!r} has no weight")
                if not isinstance(m, torch.Tensor) or m.dtype != torch.bool:
                    raise TypeError(f"variant {self.name!r}: masks[{n!r}] must be a bool tensor")
        if self.splits is not None:
            for n, sp in self.splits.items():
                if n not in self.weights or len(sp) != 3:
                    raise ValueError(f"variant {self.name!r}: splits[{n!r}] must be (S, Q, P) "
                                     "of an audited layer")

    @property
    def layers(self) -> list[str]:
        return list(self.weights)


def decomposition_kind(A: torch.Tensor, S: torch.Tensor, mask: torch.Tensor | None) -> str:
    """``"mask"`` if ``S == M ⊙ A`` exactly for the given (or implied) mask, else ``"additive"``.

    Without a mask the implied one is ``S != 0``: ``S`` is a mask decomposition iff every nonzero
    entry of ``S`` equals the dense entry (the removed part ``A − S`` vanishes on supp ``S``).
    """
    if S.shape != A.shape:
        raise ValueError(f"pruned weight shape {tuple(S.shape)} != dense shape {tuple(A.shape)}")
    M = (S != 0) if mask is None else mask.to(S.device)
    if M.shape != A.shape:
        raise ValueError(f"mask shape {tuple(M.shape)} != weight shape {tuple(A.shape)}")
    ok = torch.equal(torch.where(M, A, torch.zeros_like(A)), S.to(A.dtype))
    return "mask" if ok else "additive"


def variant_from_masks(model: torch.nn.Module, maskset: MaskSet, *, name: str | None = None,
                       description: str = "") -> Variant:
    """Mask variant ``S_ℓ = M_ℓ ⊙ A_ℓ`` from a :class:`~certkit.masks.MaskSet` on ``model``'s
    current (dense) weights. Layers of the mask set that ``model`` lacks raise ``ValueError``."""
    if not isinstance(maskset, MaskSet):
        raise TypeError(f"maskset must be a MaskSet, got {type(maskset).__name__}")
    weights, masks = {}, {}
    missing = [n for n in maskset.masks if n not in dict(model.named_modules())]
    if missing:
        import difflib

        names = [n for n, _ in model.named_modules()]
        hints = [f"{n!r} (did you mean {', '.join(difflib.get_close_matches(n, names, n=2))}?)"
                 if difflib.get_close_matches(n, names, n=2) else repr(n) for n in missing[:5]]
        raise ValueError(f"the masks name {len(missing)} layer(s) the model does not have: "
                         + "; ".join(hints) + (" ..." if len(missing) > 5 else ""))
    for n, m in maskset.masks.items():
        W = dense_weight(get_module(model, n))
        if tuple(m.shape) != tuple(W.shape):
            raise ValueError(f"mask {n!r} has shape {tuple(m.shape)}, the layer's weight "
                             f"{tuple(W.shape)}")
        m = m.to(W.device)
        weights[n] = torch.where(m, W, torch.zeros_like(W))
        masks[n] = m
    label = name or maskset.method + (f"-{maskset.params['pattern']}"
                                      if maskset.params.get("pattern") else "")
    return Variant(label, weights, masks, description=description or
                   f"{maskset.method} masks, S = M ⊙ A (sparsity {maskset.achieved_sparsity:.3f})",
                   source={"method": maskset.method, "params": dict(maskset.params)})


def variant_from_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor],
                            layers, *, name: str = "checkpoint", description: str = "",
                            source: dict | None = None) -> Variant:
    """Variant whose ``S_ℓ`` are the ``<layer>.weight`` tensors of a pruned state dict.

    ``layers`` lists the audited layer names. Every other tensor of ``state`` that differs from
    ``model``'s is recorded in ``other_changes``. Missing weights or shape mismatches raise
    ``ValueError`` naming the keys.
    """
    own = model.state_dict()
    weights, problems = {}, []
    for n in layers:
        key = f"{n}.weight"
        if key not in state:
            alt = f"{n}.weight_orig"
            if alt in state and f"{n}.weight_mask" in state:
                weights[n] = (state[alt] * state[f"{n}.weight_mask"]).detach()
                continue
            problems.append(f"missing {key!r}")
            continue
        if tuple(state[key].shape) != tuple(own[key].shape):
            problems.append(f"{key!r}: checkpoint shape {tuple(state[key].shape)} != model "
                            f"shape {tuple(own[key].shape)}")
            continue
        weights[n] = state[key].detach().to(own[key].dtype)
    if problems:
        raise ValueError("pruned checkpoint does not match the audited layers: " + "; ".join(problems))
    audited = {f"{n}.weight" for n in layers}
    other = sorted(k for k, v in state.items()
                   if k in own and k not in audited and isinstance(v, torch.Tensor)
                   and v.shape == own[k].shape and not torch.equal(v.to(own[k].dtype), own[k]))
    return Variant(name, weights, None, description=description or "pruned checkpoint",
                   source=dict(source or {}), other_changes=other)
