r"""SER — sparsify–estimate–restore / Spectral Edge Reallocation (ALGORITHMS §5).

The authors' SER engine is MISSING (ALGORITHMS §0 fact 1, §11 item 1); this module follows the
reconstruction of ALGORITHMS §5.3, with every ambiguous step a documented, recorded parameter.
Both expansions of the acronym name the same algorithm ([P] "sparsify–estimate–restore",
[E2] "Spectral Edge Reallocation").

One SER step (:func:`ser_step`, registered as ``build_masks(model, "ser", sparsity=s)``):

1. **MP-guided layer weights** ``w_ℓ(s)`` (SEB, ALGORITHMS §4.2): ``z_ℓ`` = population z-score
   of the layer's MP upper edge σ₊ (:func:`certkit.rmt.fit_mp`, singular-value units),
   ``d = max(0, 1 − s/s_d)^p``, ``w_ℓ = max(0.1, 1 + β_ℓ·d·z_ℓ)`` with (β, s_d, β_attn, β_mlp)
   from the regime of ``s`` (ALGORITHMS §4.3, code column; :data:`SER_REGIMES`).
2. **Over-prune** to the reservoir sparsity ``s + r`` (``r = restore_fraction = 0.03``,
   additive, §11 item 3; ``overprune="multiplicative"`` uses ``s·(1 + r)``) on the score
   ``|W_ij| / w_ℓ`` over the union of the selected tensors; entries already pruned (weight 0 or
   False in ``previous``) are pruned first, so pruning is cumulative (§A.2).
3. **Reservoir** ℛ: ``reservoir="new"`` (DEFAULT) = the entries removed in step 2 that were
   not pruned before; ``"all_zeros"`` = every pruned entry after step 2 (the literal [E2]
   reading; may un-prune entries of earlier steps).
4. **Estimate** ``Δ_ij`` for ℛ: ``estimate="phase_a"`` trains *only* the reservoir entries of a
   copy of the over-pruned model on ``calibration`` (AdamW, lr ``8 × 5e-5``, cosine to 25 %,
   weight decay 0; loss ``logit_l2_weight · mean((z − z_ref)²)`` against the logits of the
   step's input model, plus CE with label smoothing 0.1 when the batches carry labels) and
   records ``Δ = value_after − value_start``; ``estimate="magnitude"`` is the data-free
   fallback ``|Δ_ij| := |A_ij|`` (the pre-prune magnitude). ``"auto"`` (DEFAULT) = phase A
   when calibration is given, else magnitude.
5. **Restoration ranking**: ``ρ_ℓ = w_ℓ`` recomputed at ``s + r`` with the β of the regime of
   ``s``; key ``|Δ|·ρ_ℓ`` (``rank="multiply"``, DEFAULT, the [E2] algorithm box) or ``|Δ|/ρ_ℓ``
   (``rank="divide"``, the [E2] prose, §11 item 2); ties: larger ``|Δ|`` first, then flat index.
6. **Restore** the top ``n_over − round(s·P)`` reservoir entries, so the final count of pruned
   entries is *exactly* ``round(s·P)`` (halves up, :func:`~certkit.masks.n_prune_for_sparsity`).
7. Mask = kept ∪ restored (built from the index sets). Phase B (frozen-mask fine-tuning,
   ALGORITHMS §A.3) is the caller's: :mod:`certkit.masks.apply` and the ``finetune`` callback
   of :func:`certkit.masks.hybrid.hybrid_schedule`.

Prune–restore split (M-Thm 5.5, THEORY §2.2.5): for the step's input weights ``A``,
``S = A ⊙ [kept, outside ℛ]``, ``Q = A ⊙ [restored]``, ``P = A ⊙ [finally removed]``,
``A = S + Q + P`` with pairwise disjoint supports. ``Q`` holds the **original** values of ``A``
(Trap T14), never the phase-A values; when ``restore_value="phase_a"`` the deployed layer
holds other values on Q and the theorem applies to ``S + Q + P`` (the slot-value matrix) only.
:func:`ser_split` computes the split; the masks it needs (the reservoir) travel with the
returned :class:`SERMaskSet` (they are not saved by :meth:`MaskSet.save`).

The builder never modifies the model (phase A runs on a deep copy).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from .._validation import check_int, check_scalar
from ._modules import dense_weight, get_module, weight_parameter
from .base import check_sparsity, exact_prune_mask, n_prune_for_sparsity
from .build import register_method, require_unstructured
from .maskset import MaskSet
from .selection import layer_type

__all__ = [
    "ESTIMATES",
    "OVERPRUNE_MODES",
    "RANK_MODES",
    "RESERVOIR_MODES",
    "RESTORE_VALUES",
    "SERMaskSet",
    "SER_DEFAULTS",
    "SER_REGIMES",
    "SERSplit",
    "layer_sigma_plus",
    "seb_layer_weights",
    "ser_regime",
    "ser_split",
    "ser_step",
]

#: ALGORITHMS §4.3 (code column): (upper sparsity bound, β, s_d, β_attn, β_mlp). SER uses the
#: σ₊ signal in every regime (§5.3 step 1), also for s ≤ 0.20 where SEB uses Hill α.
SER_REGIMES = (
    (0.20, 0.50, 0.30, None, None),
    (0.40, 1.00, 0.50, None, None),
    (0.55, 1.25, 0.70, None, None),
    (math.inf, 1.50, 0.85, 1.00, 2.00),
)
RESERVOIR_MODES = ("new", "all_zeros")
ESTIMATES = ("auto", "phase_a", "magnitude")
RANK_MODES = ("multiply", "divide")
OVERPRUNE_MODES = ("additive", "multiplicative")
RESTORE_VALUES = ("phase_a", "original")
PHASE_A_INITS = ("zero", "original")

#: Defaults of :func:`ser_step` (ALGORITHMS §5.2 flags and §5.3 DEFAULTs).
SER_DEFAULTS = {
    "restore_fraction": 0.03,
    "overprune": "additive",
    "reservoir": "new",
    "estimate": "auto",
    "rank": "multiply",
    "restore_value": "phase_a",
    "phase_a_init": "zero",
    "phase_a_epochs": 1,
    "phase_a_lr": 8 * 5e-5,
    "phase_a_min_lr_ratio": 0.25,
    "logit_l2_weight": 1.0,
    "label_smoothing": 0.1,
    "power": 1.0,
    "w_floor": 0.1,
}


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True, eq=False, repr=False)
class SERMaskSet(MaskSet):
    """:class:`MaskSet` of one SER step, carrying what the prune–restore split needs.

    Extra attributes (in memory only; :meth:`MaskSet.save` keeps the masks and ``params``):

    reservoir : dict of str to bool tensor
        ℛ per layer (True = in the over-pruned reservoir of this step).
    restored_values : dict of str to torch.Tensor
        Phase-A values of the reservoir entries (shaped like the weight, 0 outside ℛ); empty
        when no phase A ran. Used by ``restore_value="phase_a"`` (§5.3 step 6), never by
        :func:`ser_split` (Trap T14).
    split : dict of str to SERSplit or None
        The split recorded at build time (``record_split=True``), else None.
    """

    reservoir: dict = field(default_factory=dict)
    restored_values: dict = field(default_factory=dict)
    split: dict | None = None

    def restored(self) -> dict[str, torch.Tensor]:
        """Bool mask of the restored entries Q (reservoir ∩ kept) per layer."""
        return {n: self.reservoir[n] & m for n, m in self.masks.items() if n in self.reservoir}


@dataclass(frozen=True)
class SERSplit:
    """Prune–restore split of one layer (M-Thm 5.5): ``A = S + Q + P``, disjoint supports.

    All tensors are shaped like the weight and hold the values of the step's input weights
    ``A`` (Q: the *original* values, Trap T14). Use
    :func:`certkit.masks._modules.matrix_view` for conv kernels before the certificates.
    """

    S: torch.Tensor
    Q: torch.Tensor
    P: torch.Tensor


# ------------------------------------------------------------------------------ weights
def ser_regime(sparsity: float) -> dict:
    """(β, s_d, β_attn, β_mlp) of the regime of ``sparsity`` (ALGORITHMS §4.3, code column)."""
    s = check_sparsity(sparsity)
    for bound, beta, s_d, b_attn, b_mlp in SER_REGIMES:
        if s <= bound + 1e-12:
            return {"beta": beta, "s_d": s_d, "beta_attn": b_attn, "beta_mlp": b_mlp}
    raise AssertionError("unreachable")


def layer_sigma_plus(weights: Mapping[str, torch.Tensor], **fit_kwargs) -> dict[str, float]:
    """σ₊ (MP upper edge, singular-value units) per layer from :func:`certkit.rmt.fit_mp`.

    Layers the fit rejects (too small for the BEMA window, rank deficient, ...) are left out;
    :func:`seb_layer_weights` gives them the neutral z = 0 (ALGORITHMS §11 item 25).
    """
    from ..rmt import fit_mp

    out = {}
    for name, W in weights.items():
        try:
            sp = float(fit_mp(W.detach().to(torch.float64).cpu(), **fit_kwargs).sigma_plus)
        except (ValueError, RuntimeError):
            continue
        if math.isfinite(sp):
            out[name] = sp
    return out


def seb_layer_weights(names: Iterable[str], sigma_plus: Mapping[str, float], sparsity: float,
                      *, beta: float, s_d: float, power: float = 1.0,
                      beta_attn: float | None = None, beta_mlp: float | None = None,
                      w_floor: float = 0.1, modules: Mapping | None = None
                      ) -> dict[str, float]:
    r"""SEB layer weights ``w_ℓ = max(w_floor, 1 + β_ℓ·d·z_ℓ)`` (ALGORITHMS §4.2).

    ``z_ℓ`` = (σ₊ − mean)/std over the layers with a σ₊ (population std; std < 1e-12 ⇒ all
    w = 1); layers without σ₊ get z = 0 (not the repository's raw 0.0, §11 item 25);
    ``d = max(0, 1 − s/s_d)^p``; ``β_ℓ`` = β_attn / β_mlp for the SEB layer types when both are
    given (:func:`~certkit.masks.selection.layer_type`, scheme ``"seb"``), else β. A layer
    with ``w > 1`` is pruned more (score |W|/w).
    """
    names = list(names)
    s = check_scalar(sparsity, "sparsity", min_val=0.0)
    s_d = check_scalar(s_d, "s_d", min_val=0.0, include_min=False)
    beta = check_scalar(beta, "beta")
    power = check_scalar(power, "power", min_val=0.0, include_min=False)
    vals = [float(sigma_plus[n]) for n in names if n in sigma_plus]
    mean = sum(vals) / len(vals) if vals else 0.0
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals)) if vals else 0.0
    d = max(0.0, 1.0 - s / s_d) ** power
    out = {}
    for n in names:
        if std < 1e-12 or n not in sigma_plus:
            z = 0.0
        else:
            z = (float(sigma_plus[n]) - mean) / std
        b = beta
        if beta_attn is not None and beta_mlp is not None:
            t = layer_type(n, None if modules is None else modules.get(n), scheme="seb")
            b = beta_attn if t == "attn" else beta_mlp if t == "mlp" else beta
        out[n] = max(w_floor, 1.0 + b * d * z)
    return out


# ------------------------------------------------------------------------------ helpers
def _choice(value, name: str, options: tuple) -> str:
    if value not in options:
        raise ValueError(f"{name} == {value!r}, must be one of {options}")
    return value


def _flat(tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors.values()])


def _unflat(flat: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for n, t in like.items():
        out[n] = flat[start:start + t.numel()].reshape(t.shape).clone()
        start += t.numel()
    return out


def _split_batch(batch):
    """``(x, y)`` from a calibration batch: a tensor, or a (tuple|list) ``(x, y, ...)``."""
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, tuple | list) and batch and isinstance(batch[0], torch.Tensor):
        y = batch[1] if len(batch) > 1 and isinstance(batch[1], torch.Tensor) else None
        return batch[0], y
    if isinstance(batch, Mapping) and isinstance(batch.get("x", batch.get("input")),
                                                 torch.Tensor):
        return batch.get("x", batch.get("input")), batch.get("y", batch.get("label"))
    raise TypeError("calibration batches must be tensors, (x, y) tuples or dicts with 'x'; "
                    f"got {type(batch).__name__}")


def _phase_a(model, names, start_values, reservoir, batches, *, epochs, lr, min_lr_ratio,
             logit_l2_weight, label_smoothing, reference_masks=None) -> dict[str, torch.Tensor]:
    """Train only the reservoir entries of a copy of ``model`` (ALGORITHMS §5.3 step 4).

    Returns the phase-A values (shaped like the weights, 0 outside the reservoir)."""
    ref = model
    if reference_masks is not None:  # the s_prev model: earlier-pruned entries zeroed
        ref = copy.deepcopy(model)
        with torch.no_grad():
            for n, m in reference_masks.items():
                p = weight_parameter(ref.get_submodule(n))
                p.mul_(m.to(device=p.device, dtype=p.dtype))
    student = copy.deepcopy(model)
    student.eval()
    for p in student.parameters():
        p.requires_grad_(False)
    params, hooks = [], []
    for n in names:
        p = weight_parameter(student.get_submodule(n))
        with torch.no_grad():
            p.copy_(start_values[n].to(p.dtype))
        p.requires_grad_(True)
        m = reservoir[n].to(device=p.device, dtype=p.dtype)
        hooks.append(p.register_hook(lambda g, m=m: g * m))
        params.append(p)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    steps = epochs * len(batches)
    lr_min = min_lr_ratio * lr
    ref_training = ref.training
    ref.eval()
    try:
        t = 0
        for _ in range(epochs):
            for batch in batches:
                x, y = _split_batch(batch)
                with torch.no_grad():
                    z_ref = ref(x)
                z = student(x)
                loss = logit_l2_weight * torch.mean((z - z_ref) ** 2)
                if y is not None:
                    loss = loss + torch.nn.functional.cross_entropy(
                        z, y, label_smoothing=label_smoothing)
                cur = lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * t / max(1, steps)))
                for g in opt.param_groups:
                    g["lr"] = cur
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                t += 1
    finally:
        for h in hooks:
            h.remove()
        ref.train(ref_training)
    return {n: torch.where(reservoir[n], dense_weight(student.get_submodule(n)).to(
        start_values[n].dtype), torch.zeros((), dtype=start_values[n].dtype))
        for n in names}


# ------------------------------------------------------------------------------ SER step
def ser_step(model: torch.nn.Module, layers: Mapping[str, torch.nn.Module] | Iterable[str],
             sparsity: float, *, calibration=None, previous: MaskSet | Mapping | None = None,
             sigma_plus: Mapping[str, float] | None = None,
             restore_fraction: float = 0.03, overprune: str = "additive",
             reservoir: str = "new", estimate: str = "auto", rank: str = "multiply",
             restore_value: str = "phase_a", phase_a_init: str = "zero",
             phase_a_epochs: int = 1, phase_a_lr: float = 8 * 5e-5,
             phase_a_min_lr_ratio: float = 0.25, logit_l2_weight: float = 1.0,
             label_smoothing: float = 0.1, beta: float | None = None,
             s_d: float | None = None, power: float = 1.0, beta_attn: float | None = None,
             beta_mlp: float | None = None, w_floor: float = 0.1,
             record_split: bool = False, method: str = "ser") -> SERMaskSet:
    r"""One SER step to exactly ``round(sparsity·P)`` pruned entries (ALGORITHMS §5.3).

    Parameters
    ----------
    model : nn.Module
        The step's input model (weights ``A``, possibly with zeros of earlier steps). Not
        modified.
    layers : mapping name -> module, or sequence of names
        Selected layers (ALGORITHMS §A.1); ``P`` = their total number of weight entries.
    sparsity : float
        Target global sparsity ``s`` in [0, 1).
    calibration : iterable of batches, optional
        Phase-A data: tensors ``x`` or ``(x, y)`` (labels add the CE term). Materialised once.
    previous : MaskSet or mapping name -> bool tensor, optional
        Keep-masks of the previous step; their pruned entries stay pruned (§A.2).
    sigma_plus : mapping name -> float, optional
        σ₊ cache. The paper computes it ONCE on the dense model (V2, §5.1); default: fitted
        on the current weights with :func:`layer_sigma_plus` (pass the dense cache in
        multi-step runs, as :func:`~certkit.masks.hybrid.hybrid_schedule` does).
    restore_fraction : float, default=0.03
        ``r`` of §5.2 (``reinsert-total-fraction``).
    overprune : {"additive", "multiplicative"}, default="additive"
        Reservoir sparsity ``s + r`` or ``s·(1 + r)`` (§11 item 3); capped at 1.
    reservoir : {"new", "all_zeros"}, default="new"
        Reservoir scope (§5.3 step 3). ``"new"`` keeps earlier zeros pruned (cumulative).
    estimate : {"auto", "phase_a", "magnitude"}, default="auto"
        How ``|Δ|`` is estimated (§5.3 step 4); ``"auto"`` = phase A iff ``calibration``.
    rank : {"multiply", "divide"}, default="multiply"
        Rank key ``|Δ|·ρ_ℓ`` or ``|Δ|/ρ_ℓ`` (§11 item 2).
    restore_value : {"phase_a", "original"}, default="phase_a"
        Value a restored entry gets in the deployed model (§5.3 step 6). Only recorded here
        (the builder never writes weights); :func:`~certkit.masks.hybrid.hybrid_schedule`
        writes it. :func:`ser_split` always uses the original values (Trap T14).
    phase_a_init : {"zero", "original"}, default="zero"
        Starting value of a reservoir entry in phase A (§5.3 step 4).
    phase_a_epochs, phase_a_lr, phase_a_min_lr_ratio : int, float, float
        Passes over ``calibration`` (§5.2: 1; 2 for the ViT-B canonical row), AdamW LR
        (8 × 5e-5) and cosine floor (0.25). The §5.2 batch-budget formula (≥ 128 batches per
        "epoch") is replaced by the size of ``calibration``.
    logit_l2_weight, label_smoothing : float
        Phase-A loss ``w·mean((z − z_ref)²) [+ CE(ls)]``; ``z_ref`` = logits of ``model``.
    beta, s_d, beta_attn, beta_mlp : float, optional
        Override the regime of ``s`` (:func:`ser_regime`). ``power`` = p, ``w_floor`` = 0.1.
    record_split : bool, default=False
        Store :func:`ser_split` of the input weights in the result (needed when the model is
        modified before the split is taken, e.g. by fine-tuning).
    method : str
        ``MaskSet.method`` of the result.

    Returns
    -------
    SERMaskSet
        Masks with exactly ``round(s·P)`` pruned entries; ``params`` records every choice and
        the counts (``n_overpruned``, ``n_reservoir``, ``n_restored``, ``n_pruned``), the
        layer weights ``w`` and multipliers ``rho``.
    """
    if isinstance(layers, Mapping):
        mods = {str(n): m for n, m in layers.items()}
    elif isinstance(layers, Iterable) and not isinstance(layers, str):
        mods = {str(n): get_module(model, str(n)) for n in layers}
    else:
        raise TypeError("layers must be a mapping name -> module or a sequence of names")
    if not mods:
        raise ValueError("layers is empty; the layer selection must name at least one layer")
    s = check_sparsity(sparsity)
    r = check_scalar(restore_fraction, "restore_fraction", min_val=0.0, max_val=1.0)
    _choice(overprune, "overprune", OVERPRUNE_MODES)
    _choice(reservoir, "reservoir", RESERVOIR_MODES)
    _choice(estimate, "estimate", ESTIMATES)
    _choice(rank, "rank", RANK_MODES)
    _choice(restore_value, "restore_value", RESTORE_VALUES)
    _choice(phase_a_init, "phase_a_init", PHASE_A_INITS)
    phase_a_epochs = check_int(phase_a_epochs, "phase_a_epochs", min_val=1)
    phase_a_lr = check_scalar(phase_a_lr, "phase_a_lr", min_val=0.0, include_min=False)
    phase_a_min_lr_ratio = check_scalar(phase_a_min_lr_ratio, "phase_a_min_lr_ratio",
                                        min_val=0.0, max_val=1.0)
    logit_l2_weight = check_scalar(logit_l2_weight, "logit_l2_weight", min_val=0.0)
    label_smoothing = check_scalar(label_smoothing, "label_smoothing", min_val=0.0,
                                   max_val=1.0, include_max=False)
    w_floor = check_scalar(w_floor, "w_floor", min_val=0.0, include_min=False)
    if not isinstance(record_split, bool):
        raise TypeError(f"record_split must be a bool, got {type(record_split).__name__}")

    A = {n: dense_weight(m) for n, m in mods.items()}
    for n, W in A.items():
        if not W.is_floating_point() or not bool(torch.isfinite(W).all()):
            raise ValueError(f"the weight of layer {n!r} must be finite floating point")
    prev = _previous_masks(previous, A)
    batches = None
    if calibration is not None:
        if isinstance(calibration, torch.Tensor):
            calibration = [calibration]
        batches = list(calibration)
        if not batches:
            raise ValueError("calibration is empty; give at least one batch or None")
    if estimate == "auto":
        estimate = "phase_a" if batches is not None else "magnitude"
    if estimate == "phase_a" and batches is None:
        raise ValueError("estimate == 'phase_a' needs calibration batches (phase A, §5.3 step "
                         "4); pass calibration= or use estimate='magnitude'")

    # step 1: SEB weights at s; step 5 multipliers at s + r (regime of s)
    reg = ser_regime(s)
    for key, val in (("beta", beta), ("s_d", s_d), ("beta_attn", beta_attn),
                     ("beta_mlp", beta_mlp)):
        if val is not None:
            reg[key] = check_scalar(val, key)
    if sigma_plus is None:
        sigma_plus = layer_sigma_plus(A)
    elif not isinstance(sigma_plus, Mapping):
        raise TypeError("sigma_plus must be a mapping layer name -> σ₊ or None")
    sigma_plus = {str(k): float(v) for k, v in sigma_plus.items() if str(k) in A}
    kw = dict(power=power, beta_attn=reg["beta_attn"], beta_mlp=reg["beta_mlp"],
              w_floor=w_floor, modules=mods)
    w = seb_layer_weights(A, sigma_plus, s, beta=reg["beta"], s_d=reg["s_d"], **kw)

    # step 2: over-prune to s + r on |W| / w over currently nonzero entries
    total = sum(W.numel() for W in A.values())
    n_target = n_prune_for_sparsity(s, total)
    s_over = s + r if overprune == "additive" else s * (1.0 + r)
    n_over = min(total, math.floor(s_over * total + 0.5))
    n_over = max(n_over, n_target)
    first = {n: (W == 0) | ~prev[n] for n, W in A.items()}
    n_first = int(_flat(first).sum())
    if reservoir == "new" and n_first > n_target:
        raise ValueError(f"sparsity == {s}: {n_first} entries are already pruned (weights 0 or "
                         f"previous masks), more than the target {n_target}; pruning is "
                         "cumulative, so the target must not be below the current sparsity")
    n_over = max(n_over, n_first)
    score = {n: W.abs().to(torch.float64) / w[n] for n, W in A.items()}
    over_keep = exact_prune_mask(_flat(score), n_over, prune_first=_flat(first))

    # step 3: reservoir
    res_flat = ~over_keep
    if reservoir == "new":
        res_flat = res_flat & ~_flat(first)
    n_res = int(res_flat.sum())
    n_restore = n_over - n_target
    if n_restore > n_res:  # only possible with reservoir "new" when earlier zeros fill s + r
        raise ValueError(f"the reservoir holds {n_res} entries, fewer than the {n_restore} to "
                         "restore")
    res = _unflat(res_flat, A)

    # step 4: estimate Δ
    phase_values: dict[str, torch.Tensor] = {}
    if estimate == "phase_a":
        over = _unflat(over_keep, A)
        start = {n: torch.where(over[n], W, torch.zeros((), dtype=W.dtype))
                 if phase_a_init == "zero" else W.clone() for n, W in A.items()}
        # entries pruned before this step stay 0 in the student in both inits
        start = {n: torch.where(first[n] & ~res[n], torch.zeros((), dtype=W.dtype), W)
                 for n, W in start.items()}
        phase_values = _phase_a(model, list(A), start, res, batches, epochs=phase_a_epochs,
                                lr=phase_a_lr, min_lr_ratio=phase_a_min_lr_ratio,
                                logit_l2_weight=logit_l2_weight,
                                label_smoothing=label_smoothing,
                                reference_masks=(prev if any(bool((~prev[n] & (W != 0)).any())
                                                             for n, W in A.items()) else None))
        delta = {n: (phase_values[n] - start[n]).abs().to(torch.float64) for n in A}
    else:
        delta = {n: W.abs().to(torch.float64) for n, W in A.items()}

    # step 5: multipliers at s + r, regime of s; rank |Δ|·ρ or |Δ|/ρ
    rho = seb_layer_weights(A, sigma_plus, s_over, beta=reg["beta"], s_d=reg["s_d"], **kw)
    key = {n: delta[n] * rho[n] if rank == "multiply" else delta[n] / rho[n] for n in A}
    idx = torch.nonzero(res_flat).reshape(-1)              # ascending flat index
    d_flat = _flat(delta)[idx]
    k_flat = _flat(key)[idx]
    order = torch.sort(d_flat, descending=True, stable=True).indices
    order = order[torch.sort(k_flat[order], descending=True, stable=True).indices]
    chosen = idx[order[:n_restore]]

    # step 6/7: restore exactly n_restore entries; mask = kept ∪ restored
    keep_flat = over_keep.clone()
    keep_flat[chosen] = True
    masks = _unflat(keep_flat, A)
    n_pruned = int((~keep_flat).sum())
    assert n_pruned == n_target, (n_pruned, n_target)

    params = {
        "sparsity": s, "restore_fraction": r, "overprune": overprune, "reservoir": reservoir,
        "estimate": estimate, "rank": rank, "restore_value": restore_value,
        "phase_a": ({"init": phase_a_init, "epochs": phase_a_epochs, "lr": phase_a_lr,
                     "min_lr_ratio": phase_a_min_lr_ratio, "optimizer": "adamw",
                     "weight_decay": 0.0, "logit_l2_weight": logit_l2_weight,
                     "label_smoothing": label_smoothing, "n_batches": len(batches)}
                    if estimate == "phase_a" else None),
        "regime": {**reg, "power": power, "w_floor": w_floor, "signal": "sigma_plus"},
        "sigma_plus": sigma_plus, "w": w, "rho": rho,
        "overprune_sparsity": n_over / total if total else 0.0,
        "n_total": total, "n_previously_pruned": n_first, "n_overpruned": n_over,
        "n_reservoir": n_res, "n_restored": n_restore, "n_pruned": n_pruned,
        "count": "round_half_up", "tie_break": "flat_index", "skipped": {},
    }
    out = SERMaskSet(masks, method, params, reservoir=res, restored_values=phase_values)
    if record_split:
        object.__setattr__(out, "split", _split(A, masks, res))
    return out


def _previous_masks(previous, A) -> dict[str, torch.Tensor]:
    if previous is None:
        return {n: torch.ones(W.shape, dtype=torch.bool, device=W.device) for n, W in A.items()}
    src = previous.masks if isinstance(previous, MaskSet) else previous
    if not isinstance(src, Mapping):
        raise TypeError("previous must be a MaskSet, a mapping name -> bool tensor or None")
    out = {}
    for n, W in A.items():
        m = src.get(n)
        if m is None:
            out[n] = torch.ones(W.shape, dtype=torch.bool, device=W.device)
            continue
        if not isinstance(m, torch.Tensor) or m.dtype != torch.bool or m.shape != W.shape:
            raise ValueError(f"previous[{n!r}] must be a bool tensor shaped {tuple(W.shape)}")
        out[n] = m.to(W.device)
    return out


def _split(A, masks, res) -> dict[str, SERSplit]:
    out = {}
    for n, W in A.items():
        z = torch.zeros((), dtype=W.dtype, device=W.device)
        m, q = masks[n].to(W.device), res[n].to(W.device)
        out[n] = SERSplit(S=torch.where(m & ~q, W, z), Q=torch.where(m & q, W, z),
                          P=torch.where(~m, W, z))
    return out


def ser_split(model: torch.nn.Module, maskset: MaskSet, *,
              reservoir: Mapping[str, torch.Tensor] | None = None) -> dict[str, SERSplit]:
    r"""Prune–restore split ``A = S + Q + P`` of M-Thm 5.5 for every layer of an SER step.

    ``A`` = the current weights of ``model`` (before any attached prune mask), which must be
    the step's *input* weights: call it before fine-tuning or writing phase-A values (or build
    with ``record_split=True``, whose recorded split is returned as is). ``Q`` holds the
    original values of ``A`` on the restored entries (Trap T14); ``P`` the finally removed
    ones (entries pruned in earlier steps belong to ``P`` and are 0 when the weights are).

    Parameters
    ----------
    model : nn.Module
    maskset : MaskSet
        An :class:`SERMaskSet` (its ``reservoir`` is used) or any MaskSet with ``reservoir``.
    reservoir : mapping name -> bool tensor, optional
        The over-pruned reservoir ℛ per layer (default ``maskset.reservoir``).

    Returns
    -------
    dict of str to SERSplit
    """
    if not isinstance(maskset, MaskSet):
        raise TypeError(f"maskset must be a MaskSet, got {type(maskset).__name__}")
    if reservoir is None:
        if getattr(maskset, "split", None) is not None:
            return dict(maskset.split)
        reservoir = getattr(maskset, "reservoir", None)
        if not reservoir:
            raise ValueError("maskset carries no reservoir (it is not an SERMaskSet from "
                             "ser_step/build_masks('ser'), or it was loaded from a file, which "
                             "keeps masks only); pass reservoir= explicitly")
    A = maskset._weights(model)
    res = {}
    for n, W in A.items():
        q = reservoir.get(n) if isinstance(reservoir, Mapping) else None
        if not isinstance(q, torch.Tensor) or q.dtype != torch.bool or q.shape != W.shape:
            raise ValueError(f"reservoir[{n!r}] must be a bool tensor shaped {tuple(W.shape)}")
        res[n] = q
    return _split(A, maskset.masks, res)


# ------------------------------------------------------------------------------ registry
@register_method("ser", description="SER sparsify-estimate-restore (spectral edge "
                 "reallocation): over-prune, MP-guided budget, restore", spec="ALGORITHMS §5")
def _build_ser(model, layers, *, calibration=None, sparsity=None, pattern=None,
               **params) -> SERMaskSet:
    """``build_masks(model, "ser", sparsity=s, calibration=..., **params)``: :func:`ser_step`."""
    require_unstructured("ser", sparsity, pattern)
    return ser_step(model, layers, sparsity, calibration=calibration, **params)
