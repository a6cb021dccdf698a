r"""How an audit obtains ``L_s`` for each layer (THEORY §1.5–1.7, Trap T25).

Modes (the ``--lipschitz`` option):

* ``"rigorous"`` — a proven bound: the model must be built from ``nn.Sequential`` and
  :class:`certkit.lipschitz.Residual` containers (:func:`downstream_chain`); ψ2 is the chain
  after the target and ``L = chain_l1_bound(ψ2, input_shape=<layer output shape>)`` (THEORY §1.6:
  the L1 rule carried coordinatewise through Linear, convolutions, pooling, eval BatchNorm and
  activations; L0 factors elsewhere). ``certified=True``. Any layer without such a bound is an
  error.
* ``"estimate"`` — E1 directional Jacobian sampling (THEORY §1.7): on the calibration subset
  T_L and the θ-grid, ``max ‖J(θ) d_s‖_∞ / ‖d_s‖_∞`` with ``d_s = R v_s``, the directional
  derivative taken as a one-sided difference quotient over a θ-step of 0.01 (forward passes
  only, so any architecture works), times ``safety_factor``; one constant per layer. A *lower*
  estimate of ``L_s*`` — ``certified=False``, always.
* ``"auto"`` — rigorous where available, estimate elsewhere (per layer, each labelled).
* ``"constant:<v>"`` — ``L_s = v`` for every layer and sample (the paper's audits use 1);
  ``certified=False``.

``scale`` (``--lipschitz-scale``) multiplies every constant; any value other than 1 makes the
result uncertified (used to demonstrate that an undersized L_s produces listed violations).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from certkit.lipschitz import Residual, UnsupportedModuleError, chain_l1_bound

__all__ = ["LipschitzMode", "parse_mode", "downstream_chain", "layer_output_shapes", "layer_outputs",
           "rigorous_reason",
           "rigorous_bound", "swapped_weights", "MODES"]

MODES = ("auto", "rigorous", "estimate", "constant:<value>")


@dataclass(frozen=True)
class LipschitzMode:
    """Parsed ``--lipschitz`` option."""

    kind: str  # auto | rigorous | estimate | constant
    value: float | None = None
    scale: float = 1.0

    def __str__(self) -> str:
        base = f"constant:{self.value:g}" if self.kind == "constant" else self.kind
        return base if self.scale == 1.0 else f"{base}×{self.scale:g}"


def parse_mode(spec: str, scale: float = 1.0) -> LipschitzMode:
    """Parse ``"auto" | "rigorous" | "estimate" | "constant:<v>"`` (ValueError otherwise)."""
    if not isinstance(spec, str):
        raise TypeError(f"lipschitz must be a string, one of {MODES}, got {type(spec).__name__}")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0 \
            or scale == float("inf"):
        raise ValueError(f"lipschitz_scale == {scale!r}, must be a finite number > 0")
    s = spec.strip().lower()
    if s in ("auto", "rigorous", "estimate"):
        return LipschitzMode(s, None, float(scale))
    if s.startswith("constant:"):
        try:
            v = float(s.split(":", 1)[1])
        except ValueError:
            v = float("nan")
        if not (v >= 0 and v < float("inf")):
            raise ValueError(f"lipschitz == {spec!r}: the constant must be a finite number >= 0")
        return LipschitzMode("constant", v, float(scale))
    raise ValueError(f"lipschitz == {spec!r} is unknown; valid: {', '.join(MODES)}")


def downstream_chain(model: nn.Module, layer: str) -> list[nn.Module]:
    """ψ2 of ``layer`` as a module chain (everything after the layer's output), for models built
    from ``nn.Sequential`` and :class:`certkit.lipschitz.Residual` containers.

    Inside a residual block ``x ↦ x + body(x)`` the skip input ``x`` does not depend on a layer
    of the body, so the block contributes only the rest of its body; later modules (including
    later residual blocks, with ``1 + Lip(body)``) follow as they are.

    Raises
    ------
    ValueError
        With the reason, when the path to ``layer`` crosses any other kind of container.
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"{type(model).__name__} is not an nn.Sequential chain: ψ2 has no proven "
                         "ℓ∞ Lipschitz bound in certkit (attention/LayerNorm/general graphs: "
                         "THEORY §1.7)")

    def tail(container: nn.Module, rel: str) -> list[nn.Module]:
        if rel == "":
            return []
        head, _, rest = rel.partition(".")
        if isinstance(container, nn.Sequential):
            names = [n for n, _ in container.named_children()]
            if head not in names:
                raise ValueError(f"{layer!r} is not inside the Sequential chain")
            k = names.index(head)
            return tail(getattr(container, head), rest) + list(container)[k + 1:]
        if isinstance(container, Residual) and head == "body":
            return tail(container.body, rest)
        raise ValueError(f"{layer!r} sits inside a {type(container).__name__}, which is neither "
                         "an nn.Sequential nor a certkit Residual block")

    return tail(model, layer)


def rigorous_reason(model: nn.Module, layer: str) -> str | None:
    """Why no rigorous bound is available for ``layer`` (None when one is)."""
    try:
        chain_l1_bound(downstream_chain(model, layer))
    except UnsupportedModuleError as exc:
        return str(exc)
    except ValueError as exc:  # not a chain, or training-mode BatchNorm/Dropout
        return str(exc)
    return None


def rigorous_bound(model: nn.Module, layer: str, output_shape: tuple[int, ...] | None = None) -> float:
    """``chain_l1_bound`` of ψ2 of ``layer`` with the model's *current* weights.

    ``output_shape`` (the per-sample shape of the layer's output, :func:`layer_output_shapes`)
    lets the bound follow convolutions and pooling coordinatewise instead of collapsing to L0
    factors there (much tighter for convolutional chains; same guarantee).
    """
    return chain_l1_bound(downstream_chain(model, layer), input_shape=output_shape).max


def layer_outputs(model: nn.Module, layers, x: torch.Tensor) -> tuple[dict[str, object], object]:
    """``({layer: its output}, model output)`` of one no-grad forward pass of ``x`` (hooks)."""
    mods = dict(model.named_modules())
    outs: dict[str, object] = {}  # the tensors themselves: ids of freed objects get reused
    handles = [mods[ln].register_forward_hook(
        lambda _m, _a, out, ln=ln: outs.__setitem__(ln, out)) for ln in layers]
    try:
        with torch.no_grad():
            z = model(x)
    finally:
        for h in handles:
            h.remove()
    return outs, z


def layer_output_shapes(model: nn.Module, layers, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Per-sample output shape of every module in ``layers`` (one forward pass of ``x``)."""
    outs, _ = layer_outputs(model, layers, x)
    return {ln: tuple(out.shape[1:]) for ln, out in outs.items()}


@contextlib.contextmanager
def swapped_weights(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Temporarily set ``<layer>.weight`` to the given tensors (restored on exit)."""
    mods = dict(model.named_modules())
    saved = []
    try:
        with torch.no_grad():
            for name, W in weights.items():
                p = mods[name].weight
                saved.append((p, p.detach().clone()))
                p.copy_(W.to(device=p.device, dtype=p.dtype))
        yield
    finally:
        with torch.no_grad():
            for p, old in saved:
                p.copy_(old)
