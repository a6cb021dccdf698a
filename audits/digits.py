"""The tiny timm ViT on scikit-learn digits: model factory, training, masked fine-tuning, pruning.

Shared by the embedded default audit (:mod:`audits.default`) and the pruning benchmark
(``benchmarks/digits_pruning.py``). The model is timm ``vit_tiny_patch16_224`` re-shaped to
8×8×1 inputs with 2×2 patches (embed_dim 80, depth 4, 4 heads, no pretrained weights); embed_dim
80 makes every block linear's input width (80, 320) divisible by 4 and 10, so CAST 2:4 and 3:10
are defined. Inputs are float tensors ``(N, 1, 8, 8)`` in [0, 1].

Weight decay and the audit's elastic-net constant (THEORY Trap T15a): the objective of the
certificates is ``L_CE + λ2‖A‖_F²``. A *coupled* L2 weight decay ``wd`` (``torch.optim.SGD`` /
``torch.optim.Adam`` ``weight_decay=wd``, which adds ``wd·w`` to the gradient) is the gradient of
``(wd/2)‖w‖²``, so ``λ2 = wd/2``; AdamW's *decoupled* decay is not the gradient of any penalty
and gives no honest λ2. :func:`train_dense` supports both (:data:`OPTIMIZERS`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping

import torch
import torch.nn.functional as F

__all__ = [
    "CAST_PATTERNS",
    "LAYER_PATTERNS",
    "OPTIMIZERS",
    "accuracy",
    "batches",
    "finetune",
    "make_digits_vit",
    "prune_model",
    "select_block_linears",
    "train_dense",
    "write_restored",
]

#: The pruned layers: the timm ViT block linears (head, patch embedding and norms stay dense).
LAYER_PATTERNS = ("blocks.*.attn.qkv", "blocks.*.attn.proj", "blocks.*.mlp.fc1",
                  "blocks.*.mlp.fc2")
#: CAST pattern per sparsity (1 − k/n equals s exactly).
CAST_PATTERNS = {0.5: (2, 4), 0.7: (3, 10)}
#: Optimizers of :func:`train_dense` → whether their weight decay is a coupled L2 penalty
#: (gradient of (wd/2)‖w‖², so λ2 = wd/2) or AdamW's decoupled decay (no penalty, T15a).
OPTIMIZERS = {"sgd": "coupled", "adam": "coupled", "adamw": "decoupled"}


def make_digits_vit(seed: int, *, embed_dim: int = 80, depth: int = 4, num_heads: int = 4,
                    weight_init: str = "") -> torch.nn.Module:
    """The digits ViT with its parameters initialised under ``torch.manual_seed(seed)``.

    Parameters
    ----------
    seed : int
        Seed of the random initialisation (sets the global torch seed).
    embed_dim, depth, num_heads : int
        Width, number of blocks and attention heads of the timm ViT.
    weight_init : {"", "jax", "jax_nlhb", "moco"}, default=""
        timm's ``weight_init`` scheme. ``"jax"`` (zero head, LeCun-normal patch embedding)
        leaves the loss plateau at ln 10 within an epoch on digits; timm's default ``""`` sits
        on it for several epochs (and never leaves it under SGD at lr 0.05).

    Returns
    -------
    nn.Module
        ``timm`` ``vit_tiny_patch16_224`` with ``img_size=8, patch_size=2, in_chans=1,
        num_classes=10`` (float32, train mode).
    """
    import timm

    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=8,
                             patch_size=2, in_chans=1, num_classes=10, embed_dim=embed_dim,
                             depth=depth, num_heads=num_heads, weight_init=weight_init)


def batches(X: torch.Tensor, y: torch.Tensor, batch_size: int,
            gen: torch.Generator | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Mini-batches ``(x, y)``: shuffled by ``gen``, or in order when ``gen`` is None."""
    order = torch.randperm(len(y), generator=gen) if gen is not None else torch.arange(len(y))
    for i in range(0, len(y), batch_size):
        j = order[i:i + batch_size]
        yield X[j], y[j]


@torch.no_grad()
def accuracy(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` on ``(X, y)`` in **percent**; puts the model in eval mode."""
    model.eval()
    return float((model(X).argmax(-1) == y).float().mean()) * 100.0


def train_dense(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, *, epochs: int,
                lr: float, batch_size: int, seed: int, optimizer: str = "adamw",
                weight_decay: float = 0.05, pct_start: float = 0.1,
                on_epoch: Callable[[int, float], object] | None = None) -> torch.nn.Module:
    """Train every parameter of ``model`` with cross-entropy and a one-cycle LR schedule.

    Parameters
    ----------
    model : nn.Module
        Trained in place and returned (left in train mode).
    X, y : torch.Tensor
        Inputs ``(N, 1, 8, 8)`` and integer labels ``(N,)``.
    epochs, lr, batch_size, seed : int, float, int, int
        Passes over the data, peak LR of the one-cycle schedule, batch size, and the seed of
        the batch order.
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        ``"sgd"`` = SGD with Nesterov momentum. ``"sgd"``/``"adam"`` apply ``weight_decay`` as a
        coupled L2 term (λ2 = wd/2 in the certificates' objective); ``"adamw"`` decouples it
        (no λ2, THEORY T15a). The one-cycle schedule also cycles the momentum (SGD) or β1
        (Adam/AdamW) between 0.85 and 0.95 (``OneCycleLR`` defaults).
    weight_decay : float, default=0.05
        Applied to every parameter (one parameter group).
    pct_start : float, default=0.1
        Warm-up fraction of the one-cycle schedule.
    on_epoch : callable ``(epoch, mean_loss) -> Any``, optional
        Called after every epoch (0-based), e.g. for progress output.

    Returns
    -------
    nn.Module
        ``model``.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer == {optimizer!r}, must be one of {sorted(OPTIMIZERS)}")
    gen = torch.Generator().manual_seed(seed)
    params = model.parameters()
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True,
                              weight_decay=weight_decay)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(y) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=pct_start)
    model.train()
    for ep in range(epochs):
        total, n = 0.0, 0
        for xb, yb in batches(X, y, batch_size, gen):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()) * len(yb), n + len(yb)
        if on_epoch is not None:
            on_epoch(ep, total / max(n, 1))
    return model


def finetune(model: torch.nn.Module, maskset, X: torch.Tensor, y: torch.Tensor, *, epochs: int,
             lr: float, batch_size: int, seed: int) -> torch.nn.Module:
    """Frozen-mask fine-tuning (ALGORITHMS §A.3): AdamW (constant ``lr``, weight decay 0),
    grad-norm clip 1.0, :func:`certkit.masks.masked_finetune_step`; every parameter moves, the
    pruned entries of ``maskset`` stay 0. Trains ``model`` in place and returns it."""
    from certkit.masks import masked_finetune_step

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    for _ in range(epochs):
        for xb, yb in batches(X, y, batch_size, gen):
            masked_finetune_step(model, maskset, opt, F.cross_entropy(model(xb), yb),
                                 max_grad_norm=1.0)
    return model


def select_block_linears(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """``{name: module}`` of the block linears qkv/proj/fc1/fc2 (:data:`LAYER_PATTERNS`)."""
    from certkit.masks import select_layers

    return select_layers(model, include_names=LAYER_PATTERNS)


def write_restored(model: torch.nn.Module, ms) -> None:
    """SER/Hybrid: restored entries take their phase-A values (as ``hybrid_schedule`` does).

    A no-op unless ``ms`` carries ``restored_values`` and ``params["restore_value"] ==
    "phase_a"``. Call after :func:`certkit.masks.apply_masks` (``mode="inplace"``).
    """
    from certkit.masks._modules import get_module, weight_parameter

    values: Mapping[str, torch.Tensor] | None = getattr(ms, "restored_values", None)
    if not values or ms.params.get("restore_value") != "phase_a":
        return
    with torch.no_grad():
        for n, v in values.items():
            p = weight_parameter(get_module(model, n))
            q = (ms.reservoir[n] & ms.masks[n]).to(p.device)
            p.copy_(torch.where(q, v.to(device=p.device, dtype=p.dtype), p))


def prune_model(dense: torch.nn.Module, method: str, sparsity: float, calib_x, calib_xy, *,
                build_params: Mapping | None = None):
    """Copy ``dense``, build and apply masks on its block linears.

    Parameters
    ----------
    dense : nn.Module
        Not modified.
    method : {"magnitude", "rmt", "ser", "hybrid", "cast"}
        Magnitude is global; CAST uses the pattern of :data:`CAST_PATTERNS` for ``sparsity``
        (its masks are checked with :func:`~certkit.masks.validate_nm`, skipped layers raise).
    sparsity : float
    calib_x : list of tensors
        CAST calibration inputs.
    calib_xy : list of (x, y)
        SER/Hybrid phase-A batches (labels add the CE term).
    build_params : mapping, optional
        Extra keyword arguments of :func:`~certkit.masks.build_masks` (e.g. ``ser_params`` of
        the hybrid builder).

    Returns
    -------
    (nn.Module, MaskSet, float)
        The pruned copy (pruned weights zeroed in place; SER/Hybrid restored entries hold their
        phase-A values, CAST weights ``cast.materialize``-d), the masks and the achieved sparsity.
    """
    from certkit.masks import apply_masks, build_masks, cast, validate_nm

    extra = dict(build_params or {})
    model = copy.deepcopy(dense)
    layers = select_block_linears(model)
    if method == "magnitude":
        ms = build_masks(model, "magnitude", sparsity=sparsity, layers=layers, scope="global",
                         **extra)
    elif method == "rmt":
        ms = build_masks(model, "rmt", sparsity=sparsity, layers=layers, **extra)
    elif method in ("ser", "hybrid"):
        ms = build_masks(model, method, sparsity=sparsity, layers=layers,
                         calibration=calib_xy, **extra)
    elif method == "cast":
        k, n = CAST_PATTERNS[sparsity]
        ms = build_masks(model, "cast", pattern=f"{k}:{n}", layers=layers,
                         calibration=calib_x, **extra)
        for m in ms.masks.values():
            validate_nm(m, k, n)
        skipped = ms.params.get("skipped") or {}
        if skipped:
            raise RuntimeError(f"CAST {k}:{n} skipped layers {sorted(skipped)}")
        cast.materialize(model, ms)  # dense source: W' = M ⊙ W (nothing restored)
    else:
        raise ValueError(f"method == {method!r}")
    apply_masks(model, ms, mode="inplace")
    if method in ("ser", "hybrid"):
        write_restored(model, ms)
    n_tot = sum(m.numel() for m in ms.masks.values())
    n_kept = sum(int(m.sum()) for m in ms.masks.values())
    return model, ms, 1.0 - n_kept / n_tot
