r"""Exact multiply-accumulate (MAC) accounting: dense and k:n sparse-execution MACs.

Implements ALGORITHMS §9.4 ("MAC red." and "Th. spd." of the paper's Table 3):

* **hooks** convention (CNN / general, ``mac_counter.py``): one dummy forward (batch 1) with
  forward hooks. Conv MACs = ``C_out·H_out·W_out·(C_in/groups)·k_h·k_w`` (grouped and depthwise
  convs included, Conv1d/3d analogously), Linear MACs = ``positions·in·out`` (positions = the
  product of the input's leading dimensions per sample, i.e. the token count). With
  ``include_attention=True`` the attention matmuls ``QKᵀ`` and ``A·V`` of timm attention modules
  (a module with a ``qkv`` Linear and ``num_heads``) are counted too: ``d·N²`` each, ``d`` the
  attention width and ``N`` the token count of the module's input. BatchNorm, LayerNorm,
  activations, softmax, pooling and residual adds are never counted. ``include_attention=False``
  is the repository's literal hook count (ViT-B/16: 16.85 G).
* **vit** analytic convention (timm ViT/DeiT; reproduces 17.564 G, 22.81 %, 7.059 G and
  59.81 % for ViT-B/16 at 224 px exactly): per block b the token count is
  ``N_b = N − r·b`` (ToMe with ``r = tome_r``, merging counted from the next block), block
  MACs = ``N_b·Σ(in·out of qkv, proj, fc1, fc2) + 2·N_b²·d``; plus the patch embedding
  ``num_patches·d·C·p²`` and the head ``d·classes``. Patch embedding, head and attention
  matmuls are always dense; k:n applies to the block Linears only.

Sparse-execution MACs: ``sparse = dense − (1 − k/n)·Σ eligible`` — a k:n layer counts ``k/n`` of
its MACs. The eligible layers are those of a :class:`~certkit.masks.MaskSet` (``masks=``; the
pattern comes from ``masks.params["pattern"]`` or ``pattern=``), or, with ``pattern=`` alone,
the default eligible set: hooks — every Linear/Conv that can carry the pattern
(:func:`~certkit.masks.nm_ineligibility`) with ``C_in ≥ 4`` for convs, stem/patch embedding and
classifier head excluded (the CNN rows of Table 3); vit — the block Linears.
``MAC red. = 1 − sparse/dense`` and ``Th. spd. = 1/(1 − MAC red.)``.

MACs do not depend on weights: models may be built on the ``meta`` device (no memory, no
initialisation), e.g. ``with torch.device("meta"): timm.create_model(name)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["CONVENTIONS", "MacReport", "MacRow", "count_macs"]

#: Accepted values of ``count_macs(convention=...)``.
CONVENTIONS = ("auto", "hooks", "vit")

_CONVS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_BLOCK_RE = re.compile(r"^blocks\.(\d+)(\.|$)")


@dataclass(frozen=True)
class MacRow:
    """One counted operation of a :class:`MacReport`.

    Attributes
    ----------
    name : str
        Module name; attention matmuls are ``"<attn module>@qk"`` and ``"<attn module>@av"``.
    kind : {"linear", "conv", "attention"}
    shape : tuple of int
        Weight shape (Linear/conv), or ``(heads, N, head_dim)`` for an attention matmul.
    positions : int
        Tokens (Linear), output positions ``H_out·W_out`` (conv) or tokens N (attention), per
        sample.
    dense_macs, sparse_macs : int or float
        MACs per sample; ``sparse_macs = (k/n)·dense_macs`` for a k:n layer, else equal.
    pattern : str
        ``"k:n"`` or ``"dense"``.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    positions: int
    dense_macs: int
    sparse_macs: float
    pattern: str = "dense"

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape),
                "positions": self.positions, "dense_macs": self.dense_macs,
                "sparse_macs": self.sparse_macs, "pattern": self.pattern}


@dataclass(frozen=True)
class MacReport:
    """Dense and sparse-execution MACs of a model, per layer and in total (ALGORITHMS §9.4).

    Attributes
    ----------
    rows : list of MacRow
        Every counted operation; their dense/sparse MACs add up to the totals exactly.
    convention : {"hooks", "vit"}
    input_shape : tuple of int
        Per-sample input shape (no batch dimension).
    tome_r : int
        ToMe tokens merged per block (0 = none).
    include_attention : bool
    pattern : str or None
        The k:n pattern of the sparse count (None: no sparsity, sparse = dense).
    notes : list of str
        Layers left dense although masked (e.g. patch embedding/head under the vit convention).
    """

    rows: list[MacRow]
    convention: str
    input_shape: tuple[int, ...]
    tome_r: int = 0
    include_attention: bool = True
    pattern: str | None = None
    model: str | None = None
    notes: list[str] = field(default_factory=list)
    reference_macs: int | None = None

    @property
    def dense_macs(self) -> int:
        """Total dense MACs per sample."""
        return int(sum(r.dense_macs for r in self.rows))

    @property
    def sparse_macs(self) -> float:
        """Total sparse-execution MACs per sample (k:n layers at k/n)."""
        return float(sum(r.sparse_macs for r in self.rows))

    @property
    def reference(self) -> int:
        """Dense MACs without token reduction (``dense_macs`` when ``tome_r == 0``)."""
        return self.dense_macs if self.reference_macs is None else int(self.reference_macs)

    @property
    def mac_reduction(self) -> float:
        """``1 − sparse/dense`` ("MAC red." of Table 3), against the dense model *without*
        token reduction (:attr:`reference`) so that ToMe rows read as in Table 3 (ViT-B/16
        ToMe r=8 + 2:4: 59.81 %); equal to ``1 − sparse_macs/dense_macs`` when ``tome_r == 0``."""
        return 1.0 - self.sparse_macs / self.reference if self.reference else 0.0

    @property
    def sparsity_reduction(self) -> float:
        """``1 − sparse_macs/dense_macs``: the reduction from k:n alone (same token counts)."""
        return 1.0 - self.sparse_macs / self.dense_macs if self.dense_macs else 0.0

    @property
    def token_reduction(self) -> float:
        """``1 − dense_macs/reference``: the reduction from ToMe alone (22.81 % for ViT-B r=8)."""
        return 1.0 - self.dense_macs / self.reference if self.reference else 0.0

    @property
    def theoretical_speedup(self) -> float:
        """``1/(1 − MAC red.)`` ("Th. spd." of Table 3); ``inf`` if nothing is left."""
        left = 1.0 - self.mac_reduction
        return 1.0 / left if left > 0 else math.inf

    def by_kind(self) -> dict[str, dict[str, float]]:
        """Dense and sparse MACs per row kind."""
        out: dict[str, dict[str, float]] = {}
        for r in self.rows:
            d = out.setdefault(r.kind, {"dense_macs": 0, "sparse_macs": 0.0})
            d["dense_macs"] += r.dense_macs
            d["sparse_macs"] += r.sparse_macs
        return out

    def to_dict(self) -> dict:
        """JSON-ready dict (totals, reduction, speed-up and every row)."""
        return {
            "model": self.model, "convention": self.convention,
            "input_shape": list(self.input_shape), "tome_r": self.tome_r,
            "include_attention": self.include_attention, "pattern": self.pattern,
            "dense_macs": self.dense_macs, "sparse_macs": self.sparse_macs,
            "dense_gmacs": self.dense_macs / 1e9, "sparse_gmacs": self.sparse_macs / 1e9,
            "reference_macs": self.reference, "mac_reduction": self.mac_reduction,
            "sparsity_reduction": self.sparsity_reduction,
            "token_reduction": self.token_reduction,
            "theoretical_speedup": (None if math.isinf(self.theoretical_speedup)
                                    else self.theoretical_speedup),
            "by_kind": self.by_kind(), "notes": list(self.notes),
            "rows": [r.to_dict() for r in self.rows],
            "reference": "ALGORITHMS §9.4; paper Table 3 (MAC red., Th. spd.)",
        }

    def table(self, *, per_layer: bool = True, max_rows: int | None = None) -> str:
        """Plain-text table in G-MACs (per layer, then totals)."""
        head = (f"MACs of {self.model or 'model'} (input {tuple(self.input_shape)}, convention "
                f"{self.convention}, ToMe r={self.tome_r}, attention matmuls "
                f"{'counted' if self.include_attention else 'not counted'}, pattern "
                f"{self.pattern or 'none'})")
        lines = [head]
        if per_layer:
            lines.append(f"{'layer':<34} {'kind':<9} {'shape':<20} {'pos':>6} {'dense G':>9} "
                         f"{'sparse G':>9} {'pattern':>7}")
            rows = self.rows if max_rows is None else self.rows[:max_rows]
            for r in rows:
                shape = "x".join(str(s) for s in r.shape)
                lines.append(f"{r.name[:34]:<34} {r.kind:<9} {shape[:20]:<20} {r.positions:>6} "
                             f"{r.dense_macs / 1e9:>9.4f} {r.sparse_macs / 1e9:>9.4f} "
                             f"{r.pattern:>7}")
            if max_rows is not None and len(self.rows) > max_rows:
                lines.append(f"... {len(self.rows) - max_rows} more rows")
        for kind, d in sorted(self.by_kind().items()):
            lines.append(f"  {kind:<10} dense {d['dense_macs'] / 1e9:9.4f} G   sparse "
                         f"{d['sparse_macs'] / 1e9:9.4f} G")
        lines += [f"note: {note}" for note in self.notes]
        spd = self.theoretical_speedup
        if self.tome_r:
            lines.append(f"no-ToMe dense {self.reference / 1e9:.4f} G; ToMe alone "
                         f"{100 * self.token_reduction:.2f} %, k:n alone "
                         f"{100 * self.sparsity_reduction:.2f} % (MAC red. is against no-ToMe dense)")
        lines.append(f"TOTAL      dense {self.dense_macs / 1e9:.4f} G   sparse-exec "
                     f"{self.sparse_macs / 1e9:.4f} G   MAC red. {100 * self.mac_reduction:.2f} %"
                     f"   Th. spd. {spd:.3f}x")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- helpers
def _check_model(model) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def _default_input_shape(model: torch.nn.Module, input_shape) -> tuple[int, ...]:
    if input_shape is None:
        cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
        input_shape = cfg.get("input_size") if isinstance(cfg, dict) else None
        if input_shape is None:
            raise ValueError("input_shape is required: the model has no timm pretrained_cfg/"
                             "default_cfg 'input_size' (give the per-sample shape, e.g. (3, 224, "
                             "224), without the batch dimension)")
    if isinstance(input_shape, int) or not isinstance(input_shape, Sequence):
        raise TypeError(f"input_shape must be a sequence of ints (per-sample shape, no batch), "
                        f"got {input_shape!r}")
    shape = tuple(input_shape)
    if not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                            for s in shape):
        raise ValueError(f"input_shape == {input_shape!r}, must be positive ints (per-sample "
                         "shape without the batch dimension)")
    return shape


def _check_tome(tome_r) -> int:
    if isinstance(tome_r, bool) or not isinstance(tome_r, int):
        raise TypeError(f"tome_r must be an int (tokens merged per block), got {tome_r!r}")
    if tome_r < 0:
        raise ValueError(f"tome_r == {tome_r}, must be >= 0")
    return tome_r


def _tome_tokens(n0: int, n_blocks: int, r: int, protected: int) -> list[int]:
    """``N_b = N − r·b`` (ALGORITHMS §9.4), ToMe's clamp ``r ≤ (N_b − protected)//2`` applied."""
    out, n = [], n0
    for _ in range(n_blocks):
        out.append(n)
        n -= min(r, max(n - protected, 0) // 2)
    return out


def _is_timm_attention(module: torch.nn.Module) -> bool:
    qkv = getattr(module, "qkv", None)
    return isinstance(qkv, torch.nn.Linear) and isinstance(getattr(module, "num_heads", None),
                                                           int)


def _is_vit(model: torch.nn.Module) -> str | None:
    """None if ``model`` has the layout the vit convention needs, else the reason."""
    for attr in ("blocks", "patch_embed", "num_prefix_tokens"):
        if not hasattr(model, attr):
            return f"the model has no {attr!r} (not a timm VisionTransformer)"
    blocks = model.blocks
    if not isinstance(blocks, torch.nn.Sequential | torch.nn.ModuleList) or not len(blocks):
        return "model.blocks is not a non-empty Sequential/ModuleList"
    for b in blocks:
        attn, mlp = getattr(b, "attn", None), getattr(b, "mlp", None)
        if attn is None or not _is_timm_attention(attn) or not isinstance(
                getattr(attn, "proj", None), torch.nn.Linear):
            return "a block has no timm Attention with qkv/proj Linears"
        if not all(isinstance(getattr(mlp, f, None), torch.nn.Linear) for f in ("fc1", "fc2")):
            return "a block has no mlp.fc1/fc2 Linears (gated or non-standard MLP)"
    proj = getattr(model.patch_embed, "proj", None)
    if not isinstance(proj, torch.nn.Conv2d):
        return "patch_embed.proj is not a Conv2d"
    if getattr(model, "attn_pool", None) is not None:
        return "attention-pool head (attn_pool) is not covered by the analytic convention"
    if getattr(model, "head_dist", None) is not None:
        return "distillation head (head_dist) is not covered by the analytic convention"
    return None


def _resolve_pattern(masks, pattern) -> tuple[int, int] | None:
    from .masks.nm import parse_pattern

    if masks is not None:
        from .masks import MaskSet

        if not isinstance(masks, MaskSet):
            raise TypeError(f"masks must be a certkit.masks.MaskSet, got {type(masks).__name__}")
        own = masks.params.get("pattern")
        if own is not None and pattern is not None and parse_pattern(own) != parse_pattern(pattern):
            raise ValueError(f"pattern == {pattern!r} contradicts the mask set's pattern {own!r}")
        pattern = pattern if pattern is not None else own
        if pattern is None:
            raise ValueError("sparse-execution MACs need a k:n pattern: the mask set has no "
                             "params['pattern'] (unstructured masks give no k:n execution "
                             "speed-up); pass pattern='k:n' if the masks follow one")
    return None if pattern is None else parse_pattern(pattern)


def _check_mask_layers(model: torch.nn.Module, masks) -> None:
    from .masks._modules import get_module

    for name, mask in masks.masks.items():
        module = get_module(model, name)  # ValueError for an unknown layer
        if not isinstance(module, (torch.nn.Linear, *_CONVS)):
            raise ValueError(f"mask on layer {name!r} ({type(module).__name__}): only Linear and "
                             "conv layers have counted MACs")
        if tuple(module.weight.shape) != tuple(mask.shape):
            raise ValueError(f"mask of layer {name!r} has shape {tuple(mask.shape)}, the module's "
                             f"weight {tuple(module.weight.shape)}")


def _default_eligible(model: torch.nn.Module, k: int, n: int, convention: str) -> set[str]:
    """Table 3's eligible set when only a pattern is given (module docstring)."""
    from .masks.selection import is_embed, is_head, nm_ineligibility

    out = set()
    for name, m in model.named_modules():
        if not name or not isinstance(m, (torch.nn.Linear, *_CONVS)):
            continue
        if convention == "vit":
            if re.match(r"^blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))$", name) and \
                    nm_ineligibility(m, k, n) is None:
                out.add(name)
            continue
        if is_head(name, m, model) or is_embed(name) or nm_ineligibility(m, k, n) is not None:
            continue
        if isinstance(m, _CONVS) and m.in_channels < 4:
            continue
        out.add(name)
    return out


# ----------------------------------------------------------------------------- counting
def _hook_rows(model: torch.nn.Module, shape: tuple[int, ...], include_attention: bool,
               tome_r: int) -> tuple[list[tuple[str, str, tuple, int, int]], int]:
    """Rows (name, kind, shape, positions, dense MACs) from one batch-1 forward with hooks,
    and the dense total without token reduction."""
    try:
        p = next(model.parameters())
        device, dtype = p.device, (p.dtype if p.is_floating_point() else torch.float32)
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    acc: dict[str, list] = {}
    block_tokens: dict[int, int] = {}
    handles = []

    def add(name, kind, wshape, positions, macs):
        row = acc.setdefault(name, [kind, wshape, 0, 0])
        row[2] += int(positions)
        row[3] += int(macs)

    def linear_hook(name):
        def hook(mod, inp, out):
            x = inp[0]
            pos = x.numel() // x.shape[-1]
            add(name, "linear", tuple(mod.weight.shape), pos, pos * mod.in_features
                * mod.out_features)
        return hook

    def conv_hook(name):
        def hook(mod, inp, out):
            spatial = math.prod(out.shape[2:]) * out.shape[0]
            per = math.prod(mod.weight.shape[1:])  # (C_in/groups)·prod(kernel)
            add(name, "conv", tuple(mod.weight.shape), spatial,
                spatial * mod.out_channels * per)
        return hook

    def attn_hook(name):
        def hook(mod, inp, out):
            x = inp[0]
            if x.ndim != 3:
                raise ValueError(f"attention module {name!r} got a {x.ndim}-D input; the hook "
                                 "convention needs (B, N, C) tokens")
            nb, n = x.shape[0], x.shape[1]
            d = mod.qkv.out_features // 3
            h = mod.num_heads
            for tag in ("qk", "av"):
                add(f"{name}@{tag}", "attention", (h, n, d // h), n, nb * d * n * n)
        return hook

    def block_hook(b):
        def hook(mod, inp):
            x = inp[0]
            if isinstance(x, torch.Tensor) and x.ndim == 3:
                block_tokens.setdefault(b, x.shape[1])
        return hook

    for name, m in model.named_modules():
        if not name:
            continue
        if isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook(name)))
        elif isinstance(m, _CONVS):
            handles.append(m.register_forward_hook(conv_hook(name)))
        elif include_attention and _is_timm_attention(m):
            handles.append(m.register_forward_hook(attn_hook(name)))
    blocks = getattr(model, "blocks", None)
    if tome_r:
        if not isinstance(blocks, torch.nn.Sequential | torch.nn.ModuleList):
            raise ValueError("tome_r > 0 needs a transformer with a 'blocks' Sequential/ModuleList "
                             "(timm ViT/DeiT layout)")
        for b, blk in enumerate(blocks):
            handles.append(blk.register_forward_pre_hook(block_hook(b)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if not acc:
        raise ValueError("the forward pass ran no Linear or conv module: nothing to count")
    rows = []
    ref = sum(v[3] for v in acc.values())
    if tome_r:
        n0 = block_tokens.get(0)
        if n0 is None:
            raise ValueError("tome_r > 0: could not read the token count of blocks.0")
        tokens = _tome_tokens(n0, len(blocks), tome_r, int(getattr(model, "num_prefix_tokens", 1)))
    for name, (kind, wshape, pos, macs) in acc.items():
        if tome_r:
            m = _BLOCK_RE.match(name)
            if m:
                nb = tokens[int(m.group(1))]
                if kind == "attention":
                    h, n, hd = wshape
                    macs = macs // (n * n) * nb * nb
                    wshape, pos = (h, nb, hd), nb
                else:
                    n = block_tokens[int(m.group(1))]
                    macs = macs // n * nb
                    pos = pos // n * nb
        rows.append((name, kind, wshape, pos, macs))
    return rows, ref


def _vit_rows(model: torch.nn.Module, shape: tuple[int, ...], include_attention: bool,
              tome_r: int) -> list[tuple[str, str, tuple, int, int]]:
    """Rows of the analytic ViT/ToMe convention (ALGORITHMS §9.4)."""
    if len(shape) != 3:
        raise ValueError(f"the vit convention needs a (C, H, W) input shape, got {shape}")
    pe = model.patch_embed.proj
    ph, pw = pe.kernel_size
    sh, sw = pe.stride
    c, h, w = shape
    if c != pe.in_channels:
        raise ValueError(f"input has {c} channels, patch_embed.proj expects {pe.in_channels}")
    gh, gw = (h - ph) // sh + 1, (w - pw) // sw + 1
    if gh <= 0 or gw <= 0:
        raise ValueError(f"input {shape} is smaller than one patch ({ph}x{pw})")
    n_patches = gh * gw
    prefix = int(model.num_prefix_tokens)
    n0 = n_patches + prefix
    tokens = _tome_tokens(n0, len(model.blocks), tome_r, prefix)
    rows = [("patch_embed.proj", "conv", tuple(pe.weight.shape), n_patches,
             n_patches * pe.out_channels * math.prod(pe.weight.shape[1:]))]
    for b, (blk, nb) in enumerate(zip(model.blocks, tokens, strict=True)):
        for sub in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"):
            lin = blk.get_submodule(sub)
            rows.append((f"blocks.{b}.{sub}", "linear", tuple(lin.weight.shape), nb,
                         nb * lin.in_features * lin.out_features))
        if include_attention:
            attn = blk.attn
            d = attn.qkv.out_features // 3
            hh = attn.num_heads
            for tag in ("qk", "av"):
                rows.append((f"blocks.{b}.attn@{tag}", "attention", (hh, nb, d // hh), nb,
                             d * nb * nb))
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "head",
                                                                                   None)
    if isinstance(head, torch.nn.Linear):
        rows.append(("head", "linear", tuple(head.weight.shape), 1,
                     head.in_features * head.out_features))
    return rows


def count_macs(model: torch.nn.Module, input_shape: Sequence[int] | None = None, *, masks=None,
               pattern=None, convention: str = "auto", tome_r: int = 0,
               include_attention: bool = True, name: str | None = None) -> MacReport:
    """Dense and sparse-execution MACs per sample (ALGORITHMS §9.4, the paper's Table 3).

    Parameters
    ----------
    model : nn.Module
        Any model (timm or not); may live on the ``meta`` device.
    input_shape : sequence of int, optional
        Per-sample input shape without the batch dimension, e.g. ``(3, 224, 224)``; default the
        timm ``pretrained_cfg``/``default_cfg`` ``input_size`` (required otherwise).
    masks : MaskSet, optional
        k:n masks; each masked layer counts ``k/n`` of its MACs (``sparse = dense − (1 −
        k/n)·Σ eligible``). Under the vit convention masks on the patch embedding or head are
        ignored (always dense there; listed in ``notes``).
    pattern : str or (k, n), optional
        The k:n pattern: of ``masks`` when they lack ``params["pattern"]``, or alone for the
        default eligible set (module docstring).
    convention : {"auto", "hooks", "vit"}
        ``"auto"``: ``"vit"`` for a standard timm ViT/DeiT layout, else ``"hooks"``.
    tome_r : int, default 0
        ToMe tokens merged per block: block b sees ``N_b = N − r·b`` tokens (analytic
        convention; applied to the hook counts of ``blocks.b.*`` as well).
    include_attention : bool, default True
        Count the ``QKᵀ`` and ``A·V`` matmuls (``d·N²`` each per block).
    name : str, optional
        Model name stored in the report.

    Returns
    -------
    MacReport

    Raises
    ------
    ValueError
        Unknown convention, vit convention on a non-ViT model, masks on unknown or non-Linear/
        conv layers, a mask set without a k:n pattern, bad ``input_shape``/``tome_r``.
    """
    _check_model(model)
    if convention not in CONVENTIONS:
        raise ValueError(f"convention == {convention!r}, must be one of {CONVENTIONS}")
    tome_r = _check_tome(tome_r)
    if not isinstance(include_attention, bool):
        raise TypeError("include_attention must be a bool")
    shape = _default_input_shape(model, input_shape)
    kn = _resolve_pattern(masks, pattern)
    vit_reason = _is_vit(model)
    if convention == "auto":
        convention = "vit" if vit_reason is None else "hooks"
    if convention == "vit" and vit_reason is not None:
        raise ValueError(f"convention='vit' needs a standard timm ViT/DeiT: {vit_reason}")
    if masks is not None:
        _check_mask_layers(model, masks)
    if convention == "vit":
        raw = _vit_rows(model, shape, include_attention, tome_r)
        ref = sum(r[4] for r in _vit_rows(model, shape, include_attention, 0)) if tome_r else None
    else:
        raw, ref = _hook_rows(model, shape, include_attention, tome_r)
    notes: list[str] = []
    if kn is None:
        sparse_names: set[str] = set()
    elif masks is not None:
        sparse_names = set(masks.masks)
    else:
        sparse_names = _default_eligible(model, *kn, convention)
    if convention == "vit" and masks is not None:
        fixed = sorted(n for n in sparse_names if not _BLOCK_RE.match(n))
        if fixed:
            notes.append(f"masked but counted dense under the vit convention (patch embedding / "
                         f"head): {fixed}")
        sparse_names -= set(fixed)
    counted = {r[0] for r in raw}
    never_ran = sorted(sparse_names - counted)
    if never_ran:
        notes.append(f"masked layers not executed by the forward pass (0 MACs): {never_ran}")
    rows = []
    for rname, kind, wshape, pos, macs in raw:
        if kn is not None and rname in sparse_names and kind != "attention":
            k, n = kn
            rows.append(MacRow(rname, kind, tuple(wshape), int(pos), int(macs), macs * k / n,
                               f"{k}:{n}"))
        else:
            rows.append(MacRow(rname, kind, tuple(wshape), int(pos), int(macs), float(macs)))
    pat = None if kn is None else f"{kn[0]}:{kn[1]}"
    if ref is None:
        ref = sum(r.dense_macs for r in rows)
    return MacReport(rows, convention, shape, tome_r, include_attention, pat, name, notes,
                     int(ref))
