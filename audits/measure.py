r"""The forward passes of an audit, streamed over the calibration set T in batches.

* :func:`dense_pass` — one pass over all of T with forward hooks on the audited layers: dense
  logits, labels, and per sample ``‖R v_s‖_∞`` for every (variant, layer) — the exact inner term
  of B_T(R) (THEORY §1.5, positions included: the max over tokens/pixels and output channels of
  the layer-output change) — plus ``‖P v_s‖_∞`` for prune–restore splits and ``max|v_s|`` for the
  Trap-T12 proxy. Memory O(batch): nothing of size |T|·(activations) is kept.
* :func:`outcome_pass` — on the outcome subset T_o: logits with only layer ℓ replaced by S_ℓ
  (upstream outputs replayed from the dense pass, :mod:`audits.forward_cache`), and the E1
  directional-derivative estimates of L_s on T_L ⊆ T_o (one-sided difference quotients of
  ``θ ↦ ψ2((S + θR)v_s)`` at each θ of the grid; :mod:`audits.lipschitz_modes`).
* :func:`variant_pass` — logits of the network with every audited layer replaced (all of T).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .forward_cache import UpstreamCache
from .lipschitz_modes import swapped_weights

__all__ = ["DenseData", "PathSpec", "dense_pass", "outcome_pass", "variant_pass", "removed_output",
           "batches"]


def batches(n: int, size: int) -> list[range]:
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def _progress(items, *, enabled: bool, desc: str, total: int | None = None):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, file=sys.stderr, leave=False)


def removed_output(module: nn.Module, inp: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """The change of ``module``'s output when its weight changes by ``R`` (no bias): ``R v`` at
    every position. Computed in float64 for Linear and plain convolutions."""
    if isinstance(module, nn.Linear):
        return F.linear(inp.to(torch.float64), R.to(torch.float64))
    if type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        return module._conv_forward(inp.to(torch.float64), R.to(torch.float64), None)
    params = {"weight": R.to(module.weight.dtype)}
    if getattr(module, "bias", None) is not None:
        params["bias"] = torch.zeros_like(module.bias)
    return torch.func.functional_call(module, params, (inp,)).to(torch.float64)


def _sup(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).abs().amax(dim=1).to(torch.float64) if t[0].numel() else \
        torch.zeros(t.shape[0], dtype=torch.float64)


def _positions(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return int(inp[0].numel() // max(1, inp.shape[-1]))
    return int(out[0].numel() // max(1, out.shape[1]))


@dataclass
class DenseData:
    """Per-sample results of the dense pass (float64 tensors of length |T|)."""

    logits: torch.Tensor
    labels: torch.Tensor
    label_policy: str
    sup: dict[tuple[str, str], torch.Tensor]          # (variant, layer) -> ‖R v_s‖_∞
    sup_P: dict[tuple[str, str], torch.Tensor]        # prune–restore: ‖P v_s‖_∞
    input_sup: dict[str, torch.Tensor]                # layer -> max |v_s|
    positions: dict[str, int]
    input_shape: list[int] = field(default_factory=list)


def dense_pass(model: nn.Module, calibration, layers: Sequence[str],
               removed: Mapping[tuple[str, str], torch.Tensor],
               removed_P: Mapping[tuple[str, str], torch.Tensor], *, batch_size: int,
               progress: bool) -> DenseData:
    """One pass over T; see the module docstring. ``removed[(variant, layer)] = R`` (weight
    shape)."""
    mods = dict(model.named_modules())
    n = len(calibration)
    sup = {k: torch.empty(n, dtype=torch.float64) for k in removed}
    sup_P = {k: torch.empty(n, dtype=torch.float64) for k in removed_P}
    input_sup = {ln: torch.empty(n, dtype=torch.float64) for ln in layers}
    positions: dict[str, int] = {}
    by_layer: dict[str, list[tuple[tuple[str, str], torch.Tensor, dict]]] = {ln: [] for ln in layers}
    for k, R in removed.items():
        by_layer[k[1]].append((k, R, sup))
    for k, P in removed_P.items():
        by_layer[k[1]].append((k, P, sup_P))
    current: dict[str, range] = {}

    def make_hook(ln):
        def hook(mod, args, out):
            idx = current["idx"]
            inp = args[0].detach()
            positions[ln] = _positions(mod, inp, out)
            input_sup[ln][idx.start:idx.stop] = _sup(inp)
            for key, R, store in by_layer[ln]:
                store[key][idx.start:idx.stop] = _sup(removed_output(mod, inp, R))
        return hook

    handles = [mods[ln].register_forward_hook(make_hook(ln)) for ln in layers]
    logits, labels, given = [], [], None
    input_shape: list[int] = []
    try:
        with torch.no_grad():
            for idx in _progress(batches(n, batch_size), enabled=progress, desc="dense pass"):
                x, y = calibration.load(list(idx))
                if not input_shape:
                    input_shape = list(x.shape[1:])
                current["idx"] = idx
                z = model(x).to(torch.float64)
                logits.append(z)
                if given is None:
                    given = y is not None
                if (y is not None) != given:
                    raise ValueError("the calibration set returned labels for some batches only")
                labels.append(y.to(torch.int64) if y is not None else z.argmax(dim=1))
    finally:
        for h in handles:
            h.remove()
    z = torch.cat(logits)
    if z.ndim != 2:
        raise ValueError(f"the model must return logits of shape (batch, classes), got "
                         f"{tuple(z.shape[1:])} per sample")
    return DenseData(z, torch.cat(labels), "given" if given else "dense-prediction", sup, sup_P,
                     input_sup, positions, input_shape)


@dataclass(frozen=True)
class PathSpec:
    """A segment ``{S + θR}`` of one layer in one network, whose L_s is to be estimated.

    ``others`` are weights of *other* layers set for this network (intermediate networks of
    M-Thm 5.8); ``base`` is the layer's weight at θ = 0 and ``direction`` its ``R``.
    """

    key: tuple[str, str, str]          # (variant, layer, kind) with kind single|multi|pr
    layer: str
    base: torch.Tensor
    direction: torch.Tensor
    others: Mapping[str, torch.Tensor] | None = None


#: Step (in θ units) of the one-sided difference quotient of the E1 estimate.
FD_STEP = 1e-2


def _directional(model: nn.Module, module: nn.Module, x: torch.Tensor, spec: PathSpec,
                 theta: float, cache: UpstreamCache, base_out: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Per sample ``‖f(θ') − f(θ)‖_∞ / |θ' − θ|`` with ``θ' = θ ± FD_STEP`` inside [0, 1]:
    a difference quotient of ``f(θ) = ψ2((S + θR)v_s)``, i.e. ``‖J d_s‖_∞`` up to O(step).
    ``base_out`` = f(θ) when already known (float64 logits of ``x``)."""
    step = FD_STEP if theta + FD_STEP <= 1.0 else -FD_STEP
    W0 = module.weight.detach()
    outs = [] if base_out is None else [base_out]
    for th in ((theta, theta + step) if base_out is None else (theta + step,)):
        point = (spec.base + th * spec.direction).to(W0.dtype)
        with torch.no_grad(), swapped_weights(model, {spec.layer: point}), \
                cache.replaying(spec.layer):
            outs.append(model(x).to(torch.float64))
    diff = (outs[1] - outs[0]) / abs(step)
    return diff.reshape(diff.shape[0], -1).abs().amax(dim=1)


def outcome_pass(model: nn.Module, calibration, order: Sequence[str],
                 replaced: Mapping[tuple[str, str], torch.Tensor], n_outcome: int,
                 paths: Sequence[PathSpec], n_lipschitz: int, theta_grid: Sequence[float],
                 sup: Mapping[tuple[str, str], torch.Tensor], cache: UpstreamCache, *,
                 batch_size: int, progress: bool,
                 on_batch: Callable[[], None] | None = None):
    """Per-layer outcomes on T_o and E1 estimates on T_L.

    Parameters
    ----------
    replaced : mapping (variant, key) -> (layer, weight)
        Networks to evaluate: only ``layer`` set to ``weight``; key names the result.
    paths : sequence of PathSpec
        Segments whose directional Lipschitz estimate is wanted.
    sup : mapping path-key -> ‖d_s‖_∞ for the samples of T (from the dense pass).

    Returns
    -------
    (logits, estimates): ``logits[key]`` (n_outcome, K) float64; ``estimates[path.key]`` the max
    over T_L × θ-grid of ``‖J d_s‖_∞/‖d_s‖_∞`` (0 where every ``d_s`` vanishes).
    """
    mods = dict(model.named_modules())
    out: dict[tuple[str, str], list[torch.Tensor]] = {k: [] for k in replaced}
    est: dict[tuple[str, str, str], float] = {p.key: 0.0 for p in paths}
    rank = {ln: i for i, ln in enumerate(order)}
    jobs = sorted(replaced.items(), key=lambda kv: rank[kv[1][0]])
    bl = batches(n_outcome, batch_size)
    total = len(bl) * (len(jobs) + len(paths) * len(theta_grid))
    bar = _progress(None, enabled=progress, desc="per-layer outcomes", total=total) \
        if progress else None
    try:
        for idx in bl:
            x, _ = calibration.load(list(idx))
            with torch.no_grad(), cache.recording():
                dense_out = model(x).to(torch.float64)
            for key, (ln, W) in jobs:
                with torch.no_grad(), swapped_weights(model, {ln: W}), cache.replaying(ln):
                    out[key].append(model(x).to(torch.float64))
                if bar is not None:
                    bar.update(1)
            k = max(0, min(idx.stop, n_lipschitz) - idx.start)
            if k and paths:
                if k < len(idx):  # replayed outputs must have the batch size of x[:k]
                    with torch.no_grad(), cache.recording():
                        model(x[:k])
                for p in paths:
                    d_sup = sup[p.key][idx.start:idx.start + k]
                    for theta in theta_grid:
                        base = None  # single-layer path: f(1) = dense, f(0) = the job's logits
                        if p.key[2] == "single" and theta in (0.0, 1.0):
                            base = (dense_out if theta == 1.0 else out[p.key[:2]][-1])[:k]
                        with swapped_weights(model, p.others or {}):
                            tan = _directional(model, mods[p.layer], x[:k], p, theta, cache, base)
                        ok = d_sup > 0
                        if bool(ok.any()):
                            est[p.key] = max(est[p.key], float((tan[ok] / d_sup[ok]).max()))
                        if bar is not None:
                            bar.update(1)
            elif bar is not None:
                bar.update(len(paths) * len(theta_grid))
            cache.clear()
            if on_batch is not None:
                on_batch()
    finally:
        if bar is not None:
            bar.close()
    return {k: torch.cat(v) for k, v in out.items()}, est


def variant_pass(model: nn.Module, calibration, weights: Mapping[str, torch.Tensor], *,
                 batch_size: int, progress: bool, desc: str = "pruned pass") -> torch.Tensor:
    """Logits (float64) over all of T with every layer of ``weights`` replaced."""
    n = len(calibration)
    logits = []
    with torch.no_grad(), swapped_weights(model, weights):
        for idx in _progress(batches(n, batch_size), enabled=progress, desc=desc):
            x, _ = calibration.load(list(idx))
            logits.append(model(x).to(torch.float64))
    return torch.cat(logits)
