"""Re-use upstream computation when only one layer of a network changes.

An audit runs the network once per (variant, layer) with only layer ℓ modified. Everything that
finished *before* ℓ started does not depend on ℓ, so its outputs can be recorded during the dense
pass of a batch and replayed: :func:`trace_plan` finds, for every target layer, the maximal
modules that ran exactly once and ended before the target began (never an ancestor of the
target); :class:`UpstreamCache` records their outputs (cloned, so later in-place operations such
as ``x += shortcut`` cannot corrupt them) and replays them by shadowing ``module.forward``.

The plan is verified on the first batch (:meth:`UpstreamCache.verify`): replaying with unchanged
weights must reproduce the dense outputs, otherwise the audit falls back to full forward passes.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch

__all__ = ["ForwardPlan", "UpstreamCache", "trace_plan"]


@dataclass(frozen=True)
class ForwardPlan:
    """Execution-order facts of a model for one input shape.

    Attributes
    ----------
    order : tuple of str
        Target layers in the order they run (each exactly once).
    cache_points : dict of str to tuple of str
        Target -> maximal upstream modules whose outputs may be replayed.
    """

    order: tuple[str, ...]
    cache_points: dict[str, tuple[str, ...]]

    @property
    def recorded(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for pts in self.cache_points.values():
            seen.update(dict.fromkeys(pts))
        return tuple(seen)


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def trace_plan(model: torch.nn.Module, x: torch.Tensor, targets: Iterable[str]) -> ForwardPlan:
    """Run ``model`` once on ``x`` and derive the :class:`ForwardPlan` for ``targets``.

    Raises
    ------
    RuntimeError
        If a target does not run exactly once per forward pass (weight sharing).
    """
    targets = list(targets)
    clock = itertools.count()
    start: dict[str, int] = {}
    end: dict[str, int] = {}
    calls: Counter[str] = Counter()
    handles = []
    for name, mod in model.named_modules():
        if not name:
            continue

        def pre(_m, _a, name=name):
            calls[name] += 1
            start.setdefault(name, next(clock))

        def post(_m, _a, _o, name=name):
            end[name] = next(clock)

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    for t in targets:
        if calls[t] != 1:
            raise RuntimeError(f"layer {t!r} ran {calls[t]} times in one forward pass; an audited "
                               "layer must run exactly once (weight sharing is not one layer)")
    order = tuple(sorted(targets, key=lambda t: start[t]))
    points = {}
    for t in targets:
        cand = {n for n in calls if calls[n] == 1 and n in end and end[n] < start[t]
                and not t.startswith(n + ".")}
        points[t] = tuple(sorted((n for n in cand if _parent(n) not in cand),
                                 key=lambda n: start[n]))
    return ForwardPlan(order, points)


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, tuple):
        return tuple(_clone(o) for o in obj)
    if isinstance(obj, list):
        return [_clone(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    return obj


def _versions(obj) -> tuple[int, ...]:
    if isinstance(obj, torch.Tensor):
        return (obj._version,)
    if isinstance(obj, tuple | list):
        return tuple(v for o in obj for v in _versions(o))
    if isinstance(obj, dict):
        return tuple(v for o in obj.values() for v in _versions(o))
    return ()


class UpstreamCache:
    """Record upstream outputs during a dense pass and replay them for one target.

    Recorded outputs are clones. Replay hands out the stored tensors themselves; if a consumer
    modifies one in place (detected with the tensor version counter when the replay ends), that
    cache point is dropped for the rest of the batch and cloned on every later replay.

    Usage::

        cache = UpstreamCache(model, plan)
        with cache.recording():
            dense_out = model(x)
        with cache.replaying("blocks.3.mlp.fc1"):
            out = model(x)            # modules upstream of fc1 are not recomputed
    """

    def __init__(self, model: torch.nn.Module, plan: ForwardPlan | None):
        self.model = model
        self.plan = plan
        self.enabled = plan is not None
        self._store: dict[str, object] = {}
        self._version: dict[str, tuple[int, ...]] = {}
        self._clone_on_replay: set[str] = set()
        self._modules: Mapping[str, torch.nn.Module] = dict(model.named_modules())

    def clear(self) -> None:
        self._store.clear()
        self._version.clear()

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """Record the outputs of every cache point during the enclosed forward pass."""
        self.clear()
        if not self.enabled:
            yield
            return
        handles = []
        for n in self.plan.recorded:
            def post(_m, _a, out, n=n):
                self._store[n] = _clone(out)
                self._version[n] = _versions(self._store[n])

            handles.append(self._modules[n].register_forward_hook(post))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    @contextlib.contextmanager
    def replaying(self, target: str) -> Iterator[None]:
        """Within the block, the cache points of ``target`` return their recorded outputs."""
        if not self.enabled:
            yield
            return
        patched = []
        try:
            for n in self.plan.cache_points.get(target, ()):
                if n not in self._store:
                    continue
                mod = self._modules[n]
                value = self._store[n]
                if n in self._clone_on_replay:
                    mod.forward = (lambda *a, _v=value, **k: _clone(_v))  # shadows the class method
                else:
                    mod.forward = (lambda *a, _v=value, **k: _v)
                patched.append((n, mod))
            yield
        finally:
            for n, mod in patched:
                with contextlib.suppress(AttributeError):
                    del mod.forward
                if n in self._store and _versions(self._store[n]) != self._version[n]:
                    self._clone_on_replay.add(n)   # modified in place by a consumer
                    del self._store[n]

    def verify(self, x: torch.Tensor, *, rtol: float, atol: float) -> bool:
        """Replaying with unchanged weights must reproduce the dense output of ``x`` for every
        target; disables the cache (and returns False) otherwise. Use a small batch."""
        if not self.enabled:
            return False
        try:
            with torch.no_grad():
                with self.recording():
                    reference = self.model(x)
                for t in self.plan.order:
                    with self.replaying(t):
                        out = self.model(x)
                    if not torch.allclose(out, reference, rtol=rtol, atol=atol):
                        self.enabled = False
                        return False
                    if any(n not in self._store for n in self.plan.cache_points.get(t, ())):
                        with self.recording():  # a point was dropped: record again
                            self.model(x)
        finally:
            self.clear()
        return True
