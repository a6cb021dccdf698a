r"""Input-channel permutation alignment for k:n masks, folded into the producer (ALGORITHMS §7.8).

A k:n mask keeps ``k`` of every ``n`` consecutive inputs of each row, so *which* input channels
share a group decides how much importance the pattern can keep. Reordering the input channels of
a consumer layer by a permutation ``π`` (``W ← W[:, π]``) and the output channels of the layer
that produces its input by the same ``π`` (rows of the producer's weight and bias, and the
per-channel parameters/buffers of everything channelwise in between) leaves the dense network
function unchanged exactly (up to float round-off of reordered sums):
``W[:, π] · y[π] = W · y`` (ALGORITHMS §7.8.1, "FREE per layer"; the NVIDIA ASP idea, Pool &
Yu 2021). The permutation costs nothing at inference (no runtime gather).

Convention: ``perm`` maps *new* position to *old* channel, ``W_new[:, j] = W_old[:, perm[j]]``
and ``producer_new[j] = producer_old[perm[j]]``; :class:`~certkit.masks.MaskSet.permutations`
stores it under the consumer's name.

Which layers are permuted (:func:`find_permutation_sites`, attribute-name pattern matching, no
``torch.fx``):

* **timm MLP** (class name in :data:`MLP_CLASSES`: ``Mlp``, ``ConvMlp``,
  ``GlobalResponseNormMlp``) with attributes ``fc1``, ``act``, ``fc2`` (and ``drop``/``drop1``,
  ``norm``, ``grn``): consumer ``fc2``; producer ``fc1`` (rows + bias); channelwise ``norm``
  (Identity, LayerNorm over the hidden dim, BatchNorm) and ``grn`` (weight, bias) are permuted
  too. ``act`` must be elementwise (:func:`is_elementwise`); gated MLPs (``GluMlp``, ``SwiGLU``,
  ``GatedMlp``) split channels and are not matched.
* **ResNet blocks** (timm/torchvision ``BasicBlock``/``Bottleneck``: any module with ``conv1``,
  ``bn1``, ``conv2``, ``bn2`` Conv2d/BatchNorm2d attributes): consumer ``conv2`` ⇐ producer
  ``conv1`` + ``bn1`` (γ, β, running mean/var); with ``conv3``/``bn3`` also consumer ``conv3`` ⇐
  ``conv2`` + ``bn2``. Between them only ``act1``/``act2`` (elementwise), ``drop_block`` (identity
  in eval) and ``aa`` (None/Identity/avg- or max-pool) are allowed; every conv involved must
  have ``groups == 1``.

Not permuted, with the reason recorded in ``MaskSet.params["permutation_skipped"]``: attention
``qkv`` and MLP ``fc1`` (they read LayerNorm of the residual stream: only one global permutation
of the residual dimension shared by the whole network is exact), attention ``proj`` (its input
channels are head outputs; a permutation across heads is not function preserving), ResNet
``conv1``/``downsample`` (they read the block input, i.e. the residual stream shared with the
shortcut), the head (pooled residual features), patch embeddings / stems (image input),
depthwise/grouped convs, and any layer whose producer is not one of the matched patterns.

Search (:func:`search_permutation`): maximise the importance kept by the k:n pattern (importance
``|W|`` by default, or a caller's tensor, e.g. CAST's), starting from the identity — or from the
bucket interleave of ALGORITHMS §7.8 when that alone is strictly better (``init="best"``) — and
accepting only strict improvements, so the result is never worse than no permutation:

* kernel area ``r = 1`` (Linear, 1×1 conv): exact steepest-ascent *channel swap* (ASP's
  channel-swap move with the full neighbourhood). For a slot ``p`` in group ``a`` and a channel
  ``x`` entering in its place, ``top_k(S ∪ {x}) = top_{k−1}(S) + max(x, s_k(S))`` with
  ``S = a \ p``, so the gain of every swap is one ``C × C × rows`` max-sum; each round applies the
  best gains over disjoint group pairs (their gains add exactly), then updates only the touched
  groups. Above ``block_size`` channels (default 256) it runs inside blocks of that many slots,
  in two passes shifted by half a block (cost ``C·block·rows`` per round; measured on 2 cores:
  768×3072 |W| (vit_base fc2 shape), +1.13 % kept score in 2.6 s; 192×768, +2.2 % in 0.5 s).
* ``r > 1`` (k×k convs, groups running along the flattened ``c·r + pos`` axis and straddling
  channels): batched random channel swaps (seeded, deterministic), each batch evaluated exactly
  on the groups it touches and applied greedily over disjoint group sets. When ``n`` divides
  ``r`` no channel permutation changes any group and the search is skipped.

Both are capped by ``max_iters`` rounds/batches; an optional ``time_limit`` (seconds per layer)
makes the result depend on machine speed and is off by default.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from .._validation import check_int, check_scalar
from ._modules import dense_weight, get_module, matrix_view
from .nm import _check_kn
from .selection import is_depthwise, is_embed, is_head, nm_ineligibility

__all__ = [
    "MLP_CLASSES",
    "PermutationReport",
    "PermutationSite",
    "SearchResult",
    "apply_permutation",
    "find_permutation_sites",
    "is_elementwise",
    "kept_score",
    "permute_model",
    "search_permutation",
    "skip_reason",
]

#: timm MLP classes whose ``fc2`` input is permuted (``fc1 → act → [drop, norm, grn] → fc2``).
MLP_CLASSES = ("Mlp", "ConvMlp", "GlobalResponseNormMlp")

_ELEMENTWISE_TORCH = (
    torch.nn.Identity, torch.nn.ReLU, torch.nn.ReLU6, torch.nn.GELU, torch.nn.SiLU,
    torch.nn.Hardswish, torch.nn.Hardsigmoid, torch.nn.Sigmoid, torch.nn.Tanh,
    torch.nn.LeakyReLU, torch.nn.ELU, torch.nn.CELU, torch.nn.SELU, torch.nn.Mish,
    torch.nn.Softplus, torch.nn.Hardtanh, torch.nn.Dropout, torch.nn.Dropout1d,
    torch.nn.Dropout2d, torch.nn.AlphaDropout,
)
#: Class names of timm's elementwise activations (``timm.layers.activations``) and DropPath.
_ELEMENTWISE_NAMES = ("GELU", "GELUTanh", "QuickGELU", "Swish", "Mish", "Sigmoid", "Tanh",
                      "HardSwish", "HardSigmoid", "HardMish", "DropPath")

#: Default caps of the search (rounds for r = 1, batches for r > 1).
DEFAULT_MAX_ITERS = 16
_BATCH = 256
_PATIENCE = 8


def is_elementwise(module) -> bool:
    """True if ``module`` acts coordinatewise with no per-channel state (so a channel permutation
    passes through it): None, Identity, torch/timm elementwise activations, dropout, DropPath."""
    if module is None:
        return True
    if isinstance(module, torch.nn.PReLU):
        return module.num_parameters == 1
    return isinstance(module, _ELEMENTWISE_TORCH) or type(module).__name__ in _ELEMENTWISE_NAMES


# ------------------------------------------------------------------------------ structure
@dataclass(frozen=True)
class PermutationSite:
    """A consumer whose input channels can be permuted and where the inverse is absorbed.

    Attributes
    ----------
    consumer : str
        Module whose weight columns (dim 1) are permuted.
    producer : str
        Linear/conv whose weight rows (dim 0) and bias are permuted.
    channelwise : tuple of str
        Per-channel modules between them (BatchNorm, LayerNorm, GRN) whose 1-D parameters and
        buffers (weight, bias, running_mean, running_var) are permuted.
    pattern : str
        Which structural pattern matched (for the record).
    """

    consumer: str
    producer: str
    channelwise: tuple[str, ...] = ()
    pattern: str = ""

    @property
    def modules(self) -> list[str]:
        """Every module changed besides the consumer (producer first)."""
        return [self.producer, *self.channelwise]


def _join(prefix: str, attr: str) -> str:
    return f"{prefix}.{attr}" if prefix else attr


def _is_conv(m) -> bool:
    return isinstance(m, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Conv3d)


def _is_linear_or_pointwise(m) -> bool:
    return isinstance(m, torch.nn.Linear) or (_is_conv(m) and m.groups == 1
                                              and all(k == 1 for k in m.kernel_size))


def _width_out(m) -> int:
    return m.weight.shape[0]


def _width_in(m) -> int:
    return m.in_features if isinstance(m, torch.nn.Linear) else m.in_channels


def _channel_norm_ok(m, width: int) -> str | None:
    """None if ``m`` is a per-channel (or identity) module over ``width`` channels."""
    if m is None or isinstance(m, torch.nn.Identity):
        return None
    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
        if m.num_features != width:
            return f"{type(m).__name__} has {m.num_features} features, expected {width}"
        return None
    if isinstance(m, torch.nn.LayerNorm) or type(m).__name__ in ("LayerNorm", "LayerNorm2d"):
        shape = tuple(getattr(m, "normalized_shape", ()))
        if shape != (width,):
            return f"LayerNorm normalised_shape {shape} is not ({width},)"
        return None
    if type(m).__name__ == "GlobalResponseNorm":
        w = getattr(m, "weight", None)
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (width,):
            return "GlobalResponseNorm weight is not per-channel"
        return None
    return f"{type(m).__name__} is not a recognised per-channel module"


def _has(m, attr) -> bool:
    return isinstance(getattr(m, attr, None), torch.nn.Module)


def _match_mlp(prefix: str, m) -> tuple[PermutationSite | None, str | None]:
    if type(m).__name__ not in MLP_CLASSES:
        return None, None
    fc1, fc2 = getattr(m, "fc1", None), getattr(m, "fc2", None)
    if not (_is_linear_or_pointwise(fc1) and _is_linear_or_pointwise(fc2)):
        return None, f"{type(m).__name__}.fc1/fc2 are not Linear or 1x1 convs with groups == 1"
    h = _width_out(fc1)
    if _width_in(fc2) != h:
        return None, f"fc1 has {h} outputs but fc2 {_width_in(fc2)} inputs (gated MLP?)"
    for attr in ("act", "drop", "drop1"):
        if not is_elementwise(getattr(m, attr, None)):
            return None, (f"{type(m).__name__}.{attr} ({type(getattr(m, attr)).__name__}) is not a "
                          "recognised elementwise module")
    chw = []
    for attr in ("norm", "grn"):
        sub = getattr(m, attr, None)
        reason = _channel_norm_ok(sub, h)
        if reason is not None:
            return None, f"{type(m).__name__}.{attr}: {reason}"
        if sub is not None and not isinstance(sub, torch.nn.Identity):
            chw.append(_join(prefix, attr))
    site = PermutationSite(_join(prefix, "fc2"), _join(prefix, "fc1"), tuple(chw),
                           f"{type(m).__name__}: fc1 -> act -> fc2")
    return site, None


def _match_resblock(prefix: str, m) -> tuple[list[PermutationSite], dict[str, str]]:
    if not all(_has(m, a) for a in ("conv1", "bn1", "conv2", "bn2")):
        return [], {}
    convs = [getattr(m, a) for a in ("conv1", "conv2", "conv3") if _has(m, a)]
    if not all(isinstance(c, torch.nn.Conv2d) for c in convs) or not all(
            isinstance(getattr(m, b), torch.nn.BatchNorm2d)
            for b in ("bn1", "bn2", "bn3") if _has(m, b)):
        return [], {}
    sites, rejected = [], {}
    three = _has(m, "conv3") and _has(m, "bn3")
    kind = "Bottleneck" if three else "BasicBlock"
    # (consumer, producer, bn, modules that sit between producer's BN and consumer)
    chains = [("conv2", "conv1", "bn1", ("act1", "drop_block", "aa") if not three
               else ("act1",))]
    if three:
        chains.append(("conv3", "conv2", "bn2", ("drop_block", "act2", "aa")))
    for cons, prod, bn, between in chains:
        cname = _join(prefix, cons)
        c, p, b = getattr(m, cons), getattr(m, prod), getattr(m, bn)
        reason = None
        if c.groups != 1 or p.groups != 1:
            reason = (f"{cons}.groups == {c.groups}, {prod}.groups == {p.groups}; a channel "
                      "permutation crosses conv groups")
        elif p.out_channels != c.in_channels or b.num_features != p.out_channels:
            reason = f"{prod} -> {bn} -> {cons} widths do not chain"
        else:
            for attr in between:
                sub = getattr(m, attr, None)
                if attr == "drop_block" and sub is not None and (
                        is_elementwise(sub) or "DropBlock" in type(sub).__name__):
                    continue  # identity in eval mode, channelwise in training
                if attr == "aa" and isinstance(sub, torch.nn.AvgPool2d | torch.nn.MaxPool2d):
                    continue
                if not is_elementwise(sub):
                    reason = (f"{kind}.{attr} ({type(sub).__name__}) is not a recognised "
                              "channelwise module")
                    break
        if reason is None:
            sites.append(PermutationSite(cname, _join(prefix, prod), (_join(prefix, bn),),
                                         f"{kind}: {prod} -> {bn} -> act -> {cons}"))
        else:
            rejected[cname] = reason
    return sites, rejected


def find_permutation_sites(model: torch.nn.Module
                           ) -> tuple[dict[str, PermutationSite], dict[str, str]]:
    """Find the layers whose input channels can be permuted with the inverse folded upstream.

    Pattern matching on attribute names (module docstring); no tracing.

    Returns
    -------
    sites : dict of str to PermutationSite
        Consumer name -> site, in ``named_modules`` order.
    rejected : dict of str to str
        Consumers of a matched block that cannot be permuted, with the reason.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    sites: dict[str, PermutationSite] = {}
    rejected: dict[str, str] = {}
    for name, m in model.named_modules():
        site, reason = _match_mlp(name, m)
        if site is not None:
            sites[site.consumer] = site
        elif reason is not None:
            rejected[_join(name, "fc2")] = reason
        rs, rr = _match_resblock(name, m)
        for s in rs:
            sites[s.consumer] = s
        rejected.update(rr)
    return sites, rejected


def skip_reason(model: torch.nn.Module, name: str, module: torch.nn.Module | None = None) -> str:
    """Why layer ``name`` is not input-permuted (for ``params["permutation_skipped"]``).

    Reasons follow ALGORITHMS §7.8.1; the classification is by the parent's class and the
    attribute name (timm/torchvision layouts).
    """
    module = get_module(model, name) if module is None else module
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    pcls = type(parent).__name__
    parts = name.split(".")
    if _is_conv(module) and module.groups != 1:
        kind = "depthwise" if is_depthwise(module) else "grouped"
        return f"{kind} conv: input channels are tied to conv groups"
    if is_head(name, module, model):
        return ("classifier head: reads pooled residual-stream features; only a global "
                "residual permutation would be exact")
    if is_embed(name):
        return "patch embedding / stem: its input is the image"
    if "Attention" in pcls or "attn" in parts[:-1]:
        if attr in ("proj", "out_proj", "o_proj"):
            return ("attention output projection: its input channels are head outputs; only "
                    "within-head or whole-head permutations of the v rows are function "
                    "preserving, not a k:n-optimal one (ALGORITHMS §7.8.1)")
        return ("attention input projection: reads LayerNorm(residual stream); only one "
                "global permutation of the residual dimension shared by every block is exact "
                "(ALGORITHMS §7.8.1)")
    if attr == "fc1" or attr.startswith("fc1_"):
        return ("MLP fc1: reads LayerNorm(residual stream); only one global permutation of "
                "the residual dimension shared by every block is exact (ALGORITHMS §7.8.1)")
    if "downsample" in parts or attr == "conv1" and _has(parent, "conv2"):
        return ("reads the block input (the residual stream, shared with the shortcut); only "
                "one permutation per residual stream is exact (ALGORITHMS §7.8.1)")
    return ("no recognised producer that can absorb the permutation (matched: timm "
            f"{'/'.join(MLP_CLASSES)} fc1 -> act -> fc2 and ResNet BasicBlock/Bottleneck "
            "conv -> bn -> act -> conv chains)")


# ------------------------------------------------------------------------------ score
def _as_matrix(importance: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``(rows × C·r)`` float64 matrix and the kernel area ``r``."""
    if not isinstance(importance, torch.Tensor) or importance.ndim < 2:
        raise ValueError("importance must be a tensor shaped like a Linear weight (out, in) or "
                         "a conv kernel (out, in, *kernel)")
    r = math.prod(importance.shape[2:]) if importance.ndim > 2 else 1
    m = matrix_view(importance.detach()).to(torch.float64)
    if not bool(torch.isfinite(m).all()):
        raise ValueError("importance contains NaN or Inf")
    return m, r


def _permute_columns(m: torch.Tensor, perm: torch.Tensor, r: int) -> torch.Tensor:
    idx = (perm.to(m.device)[:, None] * r + torch.arange(r, device=m.device)).reshape(-1)
    return m.index_select(1, idx)


def _kept(m: torch.Tensor, k: int, n: int, perm: torch.Tensor | None = None, r: int = 1
          ) -> float:
    if perm is not None:
        m = _permute_columns(m, perm, r)
    return float(torch.topk(m.reshape(m.shape[0], -1, n), k, dim=2).values.sum())


def kept_score(importance: torch.Tensor, k: int, n: int, perm: torch.Tensor | None = None
               ) -> float:
    """Importance kept by the best k:n mask (top ``k`` of every ``n`` along the input axis).

    Parameters
    ----------
    importance : torch.Tensor
        Shaped like a weight (e.g. ``|W|``); conv kernels use the im2col view (§1.7).
    k, n : int
    perm : torch.Tensor, optional
        Input-channel permutation applied first (``imp[:, perm]``; conv: whole channels).
    """
    k, n = _check_kn(k, n)
    m, r = _as_matrix(importance)
    if m.shape[1] % n:
        raise ValueError(f"input width {m.shape[1]} is not a multiple of n == {n}")
    if perm is not None:
        perm = torch.as_tensor(perm, dtype=torch.int64)
        if perm.numel() != m.shape[1] // r:
            raise ValueError(f"perm has {perm.numel()} entries, the importance "
                             f"{m.shape[1] // r} input channels")
    return _kept(m, k, n, perm, r)


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`search_permutation`.

    Attributes
    ----------
    perm : torch.Tensor of int64
        New position -> old input channel.
    score_before, score_after : float
        Kept importance with the identity and with ``perm`` (``after >= before``).
    iterations : int
        Rounds (r = 1) or candidate batches (r > 1) run.
    swaps : int
        Channel swaps applied.
    strategy : str
        ``"steepest_swap"``, ``"batched_random_swap"`` or ``"none"`` (n divides r).
    """

    perm: torch.Tensor
    score_before: float
    score_after: float
    iterations: int
    swaps: int
    strategy: str


def _removal_stats(V: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For groups ``V`` (G, n, R): ``s[g, i, r]`` = k-th largest of the group without member i
    and ``T[g, i]`` = Σ_r (sum of its k−1 largest)."""
    G, n, R = V.shape
    s = torch.empty(G, n, R, dtype=V.dtype)
    T = torch.empty(G, n, dtype=V.dtype)
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        srt = torch.sort(V[:, keep, :], dim=1, descending=True).values
        s[:, i] = srt[:, k - 1]
        T[:, i] = srt[:, : k - 1].sum(dim=(1, 2))
    return s.reshape(G * n, R), T.reshape(G * n)


def _gain_rows(Y, Ysum, s, T, cur_slot, rows) -> torch.Tensor:
    """``E[p, q]`` for ``p`` in ``rows``: gain of group(p) when slot q's channel replaces p's.

    ``Σ_r max(y_r, s_r) = (Σ y + Σ s + ‖y − s‖₁) / 2`` (one ``cdist``)."""
    sr = s[rows]
    out = torch.cdist(sr, Y, p=1)
    out += Ysum[None, :]
    out += sr.sum(1)[:, None]
    out *= 0.5
    out += (T[rows] - cur_slot[rows])[:, None]
    return out


def _steepest_swap(m, k, n, max_iters, deadline):
    R, C = m.shape
    G = C // n
    perm = torch.arange(C)
    Y = m.t().contiguous()  # slot-ordered channel importance (C, R)
    grp = torch.arange(C) // n
    same = grp[:, None] == grp[None, :]
    upper = torch.ones(C, C, dtype=torch.bool).triu(1)
    invalid = same | ~upper

    def group_scores(g):  # (len(g),)
        V = Y.reshape(G, n, R)[g]
        return torch.topk(V, k, dim=1).values.sum(dim=(1, 2))

    cur = group_scores(torch.arange(G))
    s, T = _removal_stats(Y.reshape(G, n, R), k)
    Ysum = Y.sum(1)
    E = _gain_rows(Y, Ysum, s, T, cur[grp], torch.arange(C))
    total = float(cur.sum())
    tol = 1e-12 * max(abs(total), 1e-300) + 1e-300
    iters = swaps = 0
    while iters < max_iters and (deadline is None or time.perf_counter() < deadline):
        iters += 1
        D = (E + E.t()).masked_fill_(invalid, -math.inf)
        n_pos = int((D > tol).sum())
        if n_pos == 0:
            break
        vals, flat = torch.topk(D.reshape(-1), min(n_pos, 4 * G + 8))
        order = torch.argsort(flat, stable=True)
        vals, flat = vals[order], flat[order]
        order = torch.argsort(-vals, stable=True)
        used: set[int] = set()
        applied = []
        for f in flat[order].tolist():
            p, q = divmod(f, C)
            gp, gq = p // n, q // n
            if gp in used or gq in used:
                continue
            used.update((gp, gq))
            applied.append((p, q))
        for p, q in applied:
            perm[[p, q]] = perm[[q, p]]
            Y[[p, q]] = Y[[q, p]]
            Ysum[[p, q]] = Ysum[[q, p]]
            E[:, [p, q]] = E[:, [q, p]]
        swaps += len(applied)
        touched = torch.tensor(sorted(used))
        cur[touched] = group_scores(touched)
        ts, tT = _removal_stats(Y.reshape(G, n, R)[touched], k)
        rows = (touched[:, None] * n + torch.arange(n)).reshape(-1)
        s[rows], T[rows] = ts, tT
        E[rows] = _gain_rows(Y, Ysum, s, T, cur[grp], rows)
    return perm, iters, swaps


def _batched_swap(m, k, n, r, perm, max_iters, seed, deadline):
    R, L = m.shape
    C = L // r
    G = L // n
    perm = perm.clone()
    first = torch.arange(C) * r // n
    last = (torch.arange(C) * r + r - 1) // n
    A = int((last - first).max()) + 1
    touch = first[:, None] + torch.arange(A)
    touch = torch.where(touch <= last[:, None], touch, torch.full_like(touch, -1))

    def col_src(cols, sp=None, sq=None):
        slot, off = cols // r, cols % r
        if sp is not None:
            slot = torch.where(slot == sp, sq, torch.where(slot == sq, sp, slot))
        return perm[slot] * r + off

    def group_scores(g):
        cols = g[:, None] * n + torch.arange(n)
        vals = m[:, col_src(cols)]  # (R, len(g), n)
        return torch.topk(vals, k, dim=2).values.sum(dim=(0, 2))

    cur = group_scores(torch.arange(G))
    total = float(cur.sum())
    tol = 1e-12 * max(abs(total), 1e-300) + 1e-300
    gen = torch.Generator().manual_seed(int(seed))
    B = min(_BATCH, C * (C - 1) // 2)
    iters = swaps = idle = 0
    while iters < max_iters and idle < _PATIENCE and (
            deadline is None or time.perf_counter() < deadline):
        iters += 1
        p = torch.randint(C, (B,), generator=gen)
        q = torch.randint(C - 1, (B,), generator=gen)
        q = q + (q >= p).long()
        aff = torch.cat([touch[p], touch[q]], dim=1)  # (B, 2A)
        aff_s = torch.sort(aff, dim=1).values
        valid = aff_s >= 0
        valid[:, 1:] &= aff_s[:, 1:] != aff_s[:, :-1]
        g = aff_s.clamp(min=0)
        cols = g[..., None] * n + torch.arange(n)  # (B, 2A, n)
        sp, sq = p[:, None, None], q[:, None, None]
        vals = m[:, col_src(cols, sp, sq)]  # (R, B, 2A, n)
        new = torch.topk(vals, k, dim=3).values.sum(dim=(0, 3))
        delta = ((new - cur[g]) * valid).sum(dim=1)
        order = torch.argsort(-delta, stable=True)
        used: set[int] = set()
        applied = 0
        for b in order.tolist():
            if float(delta[b]) <= tol:
                break
            gs = set(g[b][valid[b]].tolist())
            if gs & used:
                continue
            used |= gs
            pb, qb = int(p[b]), int(q[b])
            perm[[pb, qb]] = perm[[qb, pb]]
            applied += 1
        if applied:
            touched = torch.tensor(sorted(used))
            cur[touched] = group_scores(touched)
            swaps += applied
            idle = 0
        else:
            idle += 1
    return perm, iters, swaps


def _interleave(m: torch.Tensor, n: int, r: int) -> torch.Tensor:
    """The bucket interleave of ALGORITHMS §7.8 with I(c) = Σ_{rows, kernel} imp²: channels
    sorted by I descending (stable, lower index first on ties), group g gets ranks
    g, g+G, …, g+(n−1)G; tail channels appended in importance order."""
    C = m.shape[1] // r
    imp = (m ** 2).reshape(m.shape[0], C, r).sum(dim=(0, 2))
    order = torch.sort(-imp, stable=True).indices
    G = C // n
    head = order[: G * n].reshape(n, G).t().reshape(-1)
    return torch.cat([head, order[G * n:]])


def _blocked_steepest(m, k, n, perm, max_iters, block, deadline):
    """Steepest swap inside blocks of ``block`` slots (two passes, the second shifted by half a
    block) when C > block; the whole matrix otherwise. Blocks hold whole groups, so the kept
    score is additive over blocks and each block is optimised exactly."""
    C = m.shape[1]
    shift = block // 2 // n * n  # block is a multiple of n, so every block holds whole groups
    starts = [[0]] if C <= block else [list(range(0, C, block))]
    if C > block and shift:
        starts.append([0, *range(shift, C, block)])
    iters = swaps = 0
    for pass_starts in starts:
        bounds = [*pass_starts[1:], C]
        for a, b in zip(pass_starts, bounds, strict=True):
            if b - a < 2 * n:
                continue
            slots = torch.arange(a, b)
            local, it, sw = _steepest_swap(m[:, perm[slots]], k, n, max_iters, deadline)
            perm[slots] = perm[slots][local]
            iters, swaps = iters + it, swaps + sw
    return perm, iters, swaps


def search_permutation(importance: torch.Tensor, k: int, n: int, *,
                       max_iters: int = DEFAULT_MAX_ITERS, time_limit: float | None = None,
                       seed: int = 0, init: str = "best", block_size: int = 256
                       ) -> SearchResult:
    """Input-channel permutation maximising the importance kept by a k:n pattern.

    Channel-swap local search (module docstring) from the better of the identity and (with
    ``init="best"``) the bucket interleave of ALGORITHMS §7.8; strictly improving moves only,
    so ``score_after >= score_before`` (the identity's score). Deterministic for fixed inputs
    unless ``time_limit`` stops it.

    Parameters
    ----------
    importance : torch.Tensor
        Nonnegative importance shaped like the consumer's weight (``|W|`` by default in
        :func:`permute_model`); conv kernels: channels are blocks of ``k_h·k_w`` im2col columns.
    k, n : int
        The pattern; ``n`` must divide the input width.
    max_iters : int
        Rounds of disjoint best swaps (r = 1; per block) or batches of 256 random candidate
        swaps (r > 1, stopping after 8 batches without improvement).
    time_limit : float, optional
        Wall-clock cap in seconds (makes the result machine-dependent).
    seed : int
        Seed of the candidate generator (r > 1 only).
    init : {"best", "identity"}
        Start point: the identity, or the better of the identity and the §7.8 interleave
        (kept only if strictly better).
    block_size : int
        r = 1 only: above this many channels the steepest search runs inside blocks of this
        many slots (two shifted passes), bounding the cost at ``C·block·rows`` per round.

    Returns
    -------
    SearchResult
    """
    k, n = _check_kn(k, n)
    max_iters = check_int(max_iters, "max_iters", min_val=0)
    seed = check_int(seed, "seed", min_val=0)
    block_size = check_int(block_size, "block_size", min_val=1)
    if init not in ("best", "identity"):
        raise ValueError(f"init == {init!r}, must be 'best' or 'identity'")
    if time_limit is not None:
        time_limit = check_scalar(time_limit, "time_limit", min_val=0.0)
    m, r = _as_matrix(importance)
    C = m.shape[1] // r
    if m.shape[1] % n:
        raise ValueError(f"importance has input width {m.shape[1]}, which n == {n} does not "
                         "divide")
    before = _kept(m, k, n)
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    if r % n == 0 or C < 2:
        return SearchResult(torch.arange(C), before, before, 0, 0, "none")
    perm, start_swaps = torch.arange(C), 0
    if init == "best":
        cand = _interleave(m, n, r)
        if _kept(m, k, n, cand, r) > before:
            perm, start_swaps = cand, 1
    if r == 1:
        block = max(n, block_size // n * n)
        local, iters, swaps = _blocked_steepest(_permute_columns(m, perm, 1), k, n,
                                                torch.arange(C), max_iters, block, deadline)
        perm = perm[local]
        strategy = "steepest_swap"
    else:
        perm, iters, swaps = _batched_swap(m, k, n, r, perm, max_iters, seed, deadline)
        strategy = "batched_random_swap"
    swaps += start_swaps
    after = _kept(m, k, n, perm, r) if swaps else before
    if after <= before:  # nothing gained (or round-off): keep the identity
        return SearchResult(torch.arange(C), before, before, iters, 0, strategy)
    return SearchResult(perm, before, after, iters, swaps, strategy)


# ------------------------------------------------------------------------------ apply
def _has_prune_hook(m) -> bool:
    return any(isinstance(getattr(m, f"{a}_orig", None), torch.Tensor) for a in ("weight",
                                                                                  "bias"))


@torch.no_grad()
def _index_(t: torch.Tensor | None, dim: int, perm: torch.Tensor) -> None:
    if isinstance(t, torch.Tensor) and t.ndim > dim and t.shape[dim] == perm.numel():
        t.copy_(t.index_select(dim, perm.to(t.device)))


def apply_permutation(model: torch.nn.Module, site: PermutationSite, perm: torch.Tensor) -> None:
    """Permute ``site`` in place (function preserving): consumer columns, producer rows + bias,
    channelwise parameters and buffers. ``perm[j]`` = old channel at new position j."""
    perm = torch.as_tensor(perm, dtype=torch.int64)
    consumer = get_module(model, site.consumer)
    producer = get_module(model, site.producer)
    chw = [model.get_submodule(nm) for nm in site.channelwise]
    for nm, mod in [(site.consumer, consumer), (site.producer, producer),
                    *zip(site.channelwise, chw, strict=True)]:
        if _has_prune_hook(mod):
            raise ValueError(f"module {nm!r} carries torch.nn.utils.prune masks; remove them "
                             "(certkit.masks.remove_masks) before permuting")
    if consumer.weight.shape[1] != perm.numel() or producer.weight.shape[0] != perm.numel():
        raise ValueError(f"permutation of length {perm.numel()} does not fit {site.consumer} "
                         f"(in {consumer.weight.shape[1]}) / {site.producer} "
                         f"(out {producer.weight.shape[0]})")
    _index_(consumer.weight, 1, perm)
    _index_(producer.weight, 0, perm)
    _index_(getattr(producer, "bias", None), 0, perm)
    for mod in chw:
        for attr in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(mod, attr, None)
            if isinstance(t, torch.Tensor) and t.ndim == 1:
                _index_(t, 0, perm)


# ------------------------------------------------------------------------------ driver
@dataclass
class PermutationReport:
    """What :func:`permute_model` did (also merged into ``MaskSet.params``).

    Attributes
    ----------
    permutations : dict of str to torch.Tensor
        Consumer name -> applied permutation (identity ones included only if a swap was made;
        layers where the search found no gain are listed in ``scores`` but not permuted).
    sites : dict of str to PermutationSite
        The permuted sites (producers and channelwise modules changed).
    skipped : dict of str to str
        Selected layers not permuted, with the reason.
    scores : dict of str to dict
        Per searched layer: kept importance ``before``/``after``, ``iterations``, ``swaps``,
        ``strategy``.
    search : dict
        Search settings (``max_iters``, ``time_limit``, ``seed``, ``importance``).
    """

    permutations: dict[str, torch.Tensor] = field(default_factory=dict)
    sites: dict[str, PermutationSite] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict] = field(default_factory=dict)
    search: dict = field(default_factory=dict)

    def params(self) -> dict:
        """JSON-serialisable record for ``MaskSet.params``."""
        return {
            "permute": True,
            "permutation_producers": {c: self.sites[c].modules for c in self.permutations},
            "permutation_skipped": dict(self.skipped),
            "permutation_scores": {c: dict(v) for c, v in self.scores.items()},
            "permutation_search": dict(self.search),
        }

    def undo(self, model: torch.nn.Module) -> None:
        """Apply the inverse permutations (restores the model exactly)."""
        for c in reversed(list(self.permutations)):
            apply_permutation(model, self.sites[c], torch.argsort(self.permutations[c]))

    def attach(self, maskset):
        """A copy of ``maskset`` with these permutations and the record in its params."""
        from .maskset import MaskSet

        return MaskSet(maskset.masks, maskset.method, {**maskset.params, **self.params()},
                       permutations={**maskset.permutations, **self.permutations},
                       certkit_version=maskset.certkit_version)


def _importance_for(name: str, module: torch.nn.Module, importance) -> torch.Tensor:
    W = dense_weight(module)
    if importance is None or name not in importance:
        return W.abs()
    imp = importance[name]
    if not isinstance(imp, torch.Tensor):
        raise TypeError(f"importance[{name!r}] must be a torch.Tensor")
    imp = imp.detach().to(device=W.device)
    if tuple(imp.shape) == tuple(W.shape):
        return imp
    if imp.ndim == 1 and imp.numel() == W.shape[1]:  # per input channel: |W| · I(c)
        return W.abs() * imp.reshape(1, -1, *([1] * (W.ndim - 2))).to(W.dtype)
    raise ValueError(f"importance[{name!r}] has shape {tuple(imp.shape)}; expected the weight's "
                     f"shape {tuple(W.shape)} or one value per input channel ({W.shape[1]},)")


def permute_model(model: torch.nn.Module, layers: Mapping[str, torch.nn.Module], k: int, n: int,
                  *, importance: Mapping[str, torch.Tensor] | None = None,
                  max_iters: int = DEFAULT_MAX_ITERS, time_limit: float | None = None,
                  seed: int = 0) -> PermutationReport:
    """Permute every permutable selected layer in place to align it with a k:n pattern.

    All searches run on the unpermuted weights first (a row permutation of a producer does not
    change its own k:n score, so sites sharing a module are independent), then all
    permutations are applied. Only layers with at least one accepted swap are permuted.

    Parameters
    ----------
    model : nn.Module
    layers : mapping of str to nn.Module
        Selected layers; only these are considered as consumers.
    k, n : int
        The pattern.
    importance : mapping of str to torch.Tensor, optional
        Per-layer importance shaped like the weight, or one value per input channel (then
        ``|W|·I(c)``); layers not in it use ``|W|`` (ALGORITHMS §7.8, k:n weights-only path).
    max_iters, time_limit, seed
        Search caps (:func:`search_permutation`).

    Returns
    -------
    PermutationReport
    """
    k, n = _check_kn(k, n)
    if importance is not None and not isinstance(importance, Mapping):
        raise TypeError("importance must be a mapping layer name -> tensor")
    sites, rejected = find_permutation_sites(model)
    report = PermutationReport(search={
        "max_iters": check_int(max_iters, "max_iters", min_val=0),
        "time_limit": time_limit, "seed": check_int(seed, "seed", min_val=0),
        "importance": "given" if importance else "|W|"})
    planned = {}
    for name, module in layers.items():
        bad = nm_ineligibility(module, k, n)
        if bad is not None:
            report.skipped[name] = f"not k:n eligible: {bad}"
            continue
        if name not in sites:
            report.skipped[name] = rejected.get(name) or skip_reason(model, name, module)
            continue
        res = search_permutation(_importance_for(name, module, importance), k, n,
                                 max_iters=max_iters, time_limit=time_limit, seed=seed)
        report.scores[name] = {"before": res.score_before, "after": res.score_after,
                               "iterations": res.iterations, "swaps": res.swaps,
                               "strategy": res.strategy}
        if res.swaps:
            planned[name] = res.perm
    for name, perm in planned.items():
        apply_permutation(model, sites[name], perm)
        report.permutations[name] = perm
        report.sites[name] = sites[name]
    return report
