r"""Rigorous global ℓ∞ Lipschitz bounds for chains of torch modules (THEORY §1.6, "friends").

An L0-style bound: the ℓ∞→ℓ∞ Lipschitz constant of a composition is at most the product of the
per-module constants,

.. math:: \mathrm{Lip}_\infty(f_p\circ\cdots\circ f_1) \le \prod_i \mathrm{Lip}_\infty(f_i),

and a residual block ``x ↦ x + f(x)`` contributes ``1 + Lip f``. Per-module constants
(THEORY §1.6):

* ``nn.Linear``: induced norm ``‖W‖_{∞→∞}`` (max absolute row sum); biases cancel.
* ``nn.Conv1d/2d/3d``: max over output channels of Σ|kernel| over the channel's input group and
  kernel positions (any padding mode, stride or dilation: each output is a weighted sum of input
  entries with these weights, so its change is ≤ Σ|w|·‖Δx‖_∞; equality at interior pixels).
  ``nn.ConvTranspose*``: max over output channels of Σ|kernel| over its input group.
* 1-Lipschitz coordinatewise maps: ReLU, ReLU6, Hardtanh, Tanh, Softsign, Softplus, CELU,
  :class:`Abs`; ``nn.Sigmoid`` 1/4; ``nn.LeakyReLU`` max(1, |slope|); ``nn.PReLU`` max(1, max|a|);
  ``nn.ELU`` max(1, |α|); ``nn.Hardswish`` 3/2; ``nn.Hardsigmoid`` 1/6; GELU and SiLU below.
* Max / average / adaptive pooling: 1 (an average has non-negative weights summing to 1;
  ``divisor_override`` scales by ``kernel_numel / divisor``).
* Eval-mode BatchNorm: ``max_i |γ_i| / sqrt(var_i + eps)``.
* Flatten, Unflatten, Identity, constant padding, Dropout in eval mode: 1.

Unknown modules raise :class:`UnsupportedModuleError`; with ``allow_estimate=True`` they fall back
to an E1 Jacobian estimate at example inputs and the whole result is ``certified=False``
(THEORY §1.7, Trap T25).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._registry import implements
from .._validation import as_tensor
from ..results import LipschitzBound

__all__ = [
    "Abs",
    "Residual",
    "UnsupportedModuleError",
    "ModuleFactor",
    "ChainLipschitzReport",
    "module_lipschitz_constant",
    "chain_lipschitz_bound",
    "chain_lipschitz_report",
    "chain_l1_bound",
    "residual_lipschitz",
    "GELU_LIPSCHITZ",
    "GELU_TANH_LIPSCHITZ",
    "SILU_LIPSCHITZ",
    "HARDSWISH_LIPSCHITZ",
]

#: sup|GELU'| = Φ(√2) + √2·φ(√2) = 1.12890414518515…, rounded up (THEORY §1.6; closed form,
#: verified numerically in tests/lipschitz/test_module_bounds.py).
GELU_LIPSCHITZ = 1.1289041451852
#: sup|d/dx ½x(1 + tanh(√(2/π)(x + 0.044715x³)))| = 1.12899306865877… (at x ≈ 1.4185), rounded up
#: (THEORY §1.6; computed numerically, verified in tests).
GELU_TANH_LIPSCHITZ = 1.1289930686588
#: sup|SiLU'| = sup|σ(x)(1 + x(1 − σ(x)))| = 1.09983932012886… (at x ≈ 2.3994), rounded up
#: (THEORY §1.6; computed numerically, verified in tests).
SILU_LIPSCHITZ = 1.0998393201289
#: sup|Hardswish'| = (2·3 + 3)/6 = 3/2 (left limit at x = 3).
HARDSWISH_LIPSCHITZ = 1.5


class UnsupportedModuleError(NotImplementedError, ValueError):
    """No rigorous ℓ∞ Lipschitz constant is known to certkit for this module type."""


class Abs(nn.Module):
    """Coordinatewise absolute value (the paper's activation λ = |·|); 1-Lipschitz."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


class Residual(nn.Module):
    """Residual block ``x ↦ x + body(x)``; :func:`chain_lipschitz_bound` uses ``1 + Lip(body)``."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def residual_lipschitz(inner: float) -> float:
    r"""Lipschitz constant of a residual block ``x ↦ x + f(x)``: at most ``1 + Lip f``.

    THEORY §1.6 (triangle inequality, any norm).
    """
    if isinstance(inner, bool) or not isinstance(inner, int | float) or not math.isfinite(inner):
        raise ValueError(f"inner == {inner!r}, must be a finite number >= 0")
    if inner < 0:
        raise ValueError(f"inner == {inner}, must be >= 0 (a Lipschitz constant)")
    return 1.0 + float(inner)


# ----------------------------------------------------------------------------- per-module rules
def _linear(m: nn.Linear) -> float:
    W = m.weight.detach().to(torch.float64)
    return float(W.abs().sum(dim=1).max()) if W.numel() else 0.0


def _conv(m: nn.modules.conv._ConvNd) -> float:
    w = m.weight.detach().to(torch.float64).abs()
    if not m.transposed:
        # (C_out, C_in/groups, *k): output channel o sees only its group's inputs
        return float(w.reshape(w.shape[0], -1).sum(dim=1).max()) if w.numel() else 0.0
    # transposed: (C_in, C_out/groups, *k); output channel o = g*(C_out/groups) + j
    g = m.groups
    cin, cout_g = w.shape[0], w.shape[1]
    per = w.reshape(g, cin // g, cout_g, -1).sum(dim=(1, 3))  # (groups, C_out/groups)
    return float(per.max()) if per.numel() else 0.0


def _batchnorm(m: nn.modules.batchnorm._BatchNorm) -> float:
    if m.training:
        raise ValueError(
            f"{type(m).__name__} is in training mode (batch statistics); call .eval() so that it "
            "is a fixed per-channel affine map"
        )
    if m.running_var is None:
        raise ValueError(
            f"{type(m).__name__} has track_running_stats=False, so it normalises with batch "
            "statistics even in eval mode; no fixed Lipschitz constant"
        )
    var = m.running_var.detach().to(torch.float64)
    gamma = (m.weight.detach().to(torch.float64) if m.weight is not None
             else torch.ones_like(var))
    return float((gamma.abs() / torch.sqrt(var + m.eps)).max())


def _dropout(m: nn.Module) -> float:
    if m.training:
        raise ValueError(f"{type(m).__name__} is in training mode; call .eval() (identity)")
    return 1.0


def _avgpool(m: nn.Module) -> float:
    div = getattr(m, "divisor_override", None)
    if not div:
        return 1.0
    ks = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,)
    dims = {"AvgPool1d": 1, "AvgPool2d": 2, "AvgPool3d": 3}[type(m).__name__]
    if len(ks) == 1:
        ks = ks * dims
    return float(math.prod(ks)) / float(div)


def _gelu(m: nn.GELU) -> float:
    return GELU_TANH_LIPSCHITZ if m.approximate == "tanh" else GELU_LIPSCHITZ


def _one(_m: nn.Module) -> float:
    return 1.0


_RULES: tuple[tuple[tuple[type, ...], object], ...] = (
    ((nn.Linear,), _linear),
    ((nn.modules.conv._ConvNd,), _conv),
    ((nn.modules.batchnorm._BatchNorm,), _batchnorm),
    ((nn.modules.dropout._DropoutNd,), _dropout),
    ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), _avgpool),
    ((nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Tanh, nn.Softsign, nn.Softplus, nn.CELU, Abs,
      nn.Identity, nn.Flatten, nn.Unflatten, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
      nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
      nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
      nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d, nn.ZeroPad2d), _one),
    ((nn.Sigmoid,), lambda m: 0.25),
    ((nn.Hardsigmoid,), lambda m: 1.0 / 6.0),
    ((nn.Hardswish,), lambda m: HARDSWISH_LIPSCHITZ),
    ((nn.LeakyReLU,), lambda m: max(1.0, abs(float(m.negative_slope)))),
    ((nn.PReLU,), lambda m: max(1.0, float(m.weight.detach().abs().max()))),
    ((nn.ELU,), lambda m: max(1.0, abs(float(m.alpha)))),
    ((nn.GELU,), _gelu),
    ((nn.SiLU,), lambda m: SILU_LIPSCHITZ),
)


@implements("THEORY-1.6-modules", kind="D")
def module_lipschitz_constant(module: nn.Module, *, constants: Mapping[type, float] | None = None
                              ) -> float:
    r"""Rigorous ℓ∞→ℓ∞ Lipschitz constant of one module (THEORY §1.6).

    ``nn.Sequential`` gives the product of its children, :class:`Residual` gives ``1 + Lip(body)``.

    Parameters
    ----------
    module : torch.nn.Module
    constants : mapping from module type to float, optional
        User-supplied constants (the caller vouches for them) that override the built-in rules.

    Raises
    ------
    UnsupportedModuleError
        For a module type without a known rigorous constant (e.g. LayerNorm, attention).
    ValueError
        For modules in training mode whose map is not fixed (BatchNorm, Dropout).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if constants:
        for cls, val in constants.items():
            if isinstance(module, cls):
                return float(val)
    if isinstance(module, nn.Sequential):
        val = 1.0
        for child in module:
            val *= module_lipschitz_constant(child, constants=constants)
        return val
    if isinstance(module, Residual):
        return residual_lipschitz(module_lipschitz_constant(module.body, constants=constants))
    for types, rule in _RULES:
        if isinstance(module, types):
            return float(rule(module))
    raise UnsupportedModuleError(
        f"no rigorous l-inf Lipschitz constant for module type {type(module).__name__}; "
        "pass constants={Type: value}, or allow_estimate=True with example_input for an "
        "uncertified Jacobian estimate (THEORY §1.7)"
    )


@dataclass(frozen=True)
class ModuleFactor:
    """One factor of a chain bound: module type name, constant, and whether it is rigorous."""

    name: str
    value: float
    certified: bool


@dataclass(frozen=True)
class ChainLipschitzReport:
    """Per-module factors of :func:`chain_lipschitz_bound` and the resulting bound."""

    factors: tuple[ModuleFactor, ...]
    bound: LipschitzBound


def _as_modules(modules) -> list[nn.Module]:
    if isinstance(modules, nn.Sequential):
        return list(modules)
    if isinstance(modules, nn.Module):
        return [modules]
    if isinstance(modules, Iterable):
        mods = list(modules)
        for i, m in enumerate(mods):
            if not isinstance(m, nn.Module):
                raise TypeError(f"modules[{i}] must be a torch.nn.Module, got {type(m).__name__}")
        return mods
    raise TypeError(f"modules must be an nn.Module or an iterable of modules, got "
                    f"{type(modules).__name__}")


def _estimate_induced(module: nn.Module, inp: torch.Tensor) -> float:
    """Max over samples of ‖J‖_{∞→∞} (per-sample Jacobian) at the given inputs — an estimate."""
    best = 0.0
    for s in range(inp.shape[0]):
        xs = inp[s : s + 1].detach()
        J = torch.autograd.functional.jacobian(lambda z: module(z).reshape(-1), xs)
        J = J.reshape(J.shape[0], -1).to(torch.float64)
        if J.numel():
            best = max(best, float(J.abs().sum(dim=1).max()))
    return best


def chain_lipschitz_report(
    modules,
    *,
    allow_estimate: bool = False,
    example_input=None,
    constants: Mapping[type, float] | None = None,
) -> ChainLipschitzReport:
    """Like :func:`chain_lipschitz_bound` but also returns the per-module factors."""
    mods = _as_modules(modules)
    if allow_estimate and example_input is not None:
        h = example_input if isinstance(example_input, torch.Tensor) else as_tensor(
            example_input, "example_input", ndim=(1, 2, 3, 4, 5))
        if h.ndim == 0 or h.shape[0] == 0:
            raise ValueError("example_input must be a non-empty batch (B, ...)")
    else:
        h = None
    factors = []
    for i, m in enumerate(mods):
        try:
            val, cert = module_lipschitz_constant(m, constants=constants), True
        except UnsupportedModuleError:
            if not allow_estimate:
                raise
            if h is None:
                raise ValueError(
                    f"modules[{i}] ({type(m).__name__}) has no rigorous constant; the E1 fallback "
                    "needs example_input (a batch fed to the first module)"
                ) from None
            val, cert = _estimate_induced(m, h), False
        factors.append(ModuleFactor(type(m).__name__, float(val), cert))
        if h is not None and i + 1 < len(mods):
            with torch.no_grad():
                h = m(h)
    total = math.prod(f.value for f in factors) if factors else 1.0
    certified = all(f.certified for f in factors)
    bound = LipschitzBound((total,), certified=certified,
                           method="L0" if certified else "estimate:jacobian",
                           path_dependent=False)
    return ChainLipschitzReport(tuple(factors), bound)


@implements("THEORY-1.6-modules", kind="D")
def chain_lipschitz_bound(
    modules,
    *,
    allow_estimate: bool = False,
    example_input=None,
    constants: Mapping[type, float] | None = None,
) -> LipschitzBound:
    r"""Global ℓ∞ Lipschitz bound of a module chain: product of per-module constants.

    Implements THEORY §1.6 (L0 rule extended to conv, pooling, BatchNorm, residual and
    κ-Lipschitz activations; arXiv 2606.02608, spec addition).

    .. math:: L_s \le \prod_i \mathrm{Lip}_\infty(f_i)

    Parameters
    ----------
    modules : nn.Sequential, nn.Module or iterable of nn.Module
        The chain ψ2 (applied in order).
    allow_estimate : bool, default False
        If True, modules without a rigorous rule are replaced by an E1 estimate of
        ``max ‖J‖_{∞→∞}`` at ``example_input`` (propagated through the chain); the result is then
        ``certified=False`` and ``method="estimate:jacobian"`` — a lower estimate, not a bound.
    example_input : tensor, optional
        Batch (B, ...) fed to the first module; needed only for the estimate fallback.
    constants : mapping type -> float, optional
        User-vouched constants overriding the built-in rules.

    Returns
    -------
    LipschitzBound
        One shared value; ``method="L0"``, ``certified=True`` when every factor is rigorous.

    Raises
    ------
    UnsupportedModuleError
        For an unknown module type when ``allow_estimate=False``.
    """
    return chain_lipschitz_report(modules, allow_estimate=allow_estimate,
                                  example_input=example_input, constants=constants).bound


# ----------------------------------------------------------------------------- L1 chains
def _coordinatewise_factor(m: nn.Module) -> float | None:
    """Factor of a coordinatewise map, None for anything else. (BatchNorm is not treated per
    feature: its channel axis need not be the axis a following Linear acts on, e.g. on
    (N, C, L) inputs, so it collapses the bound like any other module.)"""
    if isinstance(m, nn.Linear | nn.modules.conv._ConvNd | nn.modules.batchnorm._BatchNorm
                  | nn.Sequential | Residual | nn.Flatten | nn.Unflatten):
        return None
    pooling = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
               nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
               nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
               nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d, nn.ZeroPad2d)
    if isinstance(m, pooling):  # not coordinatewise: change the shape
        return None
    try:
        return module_lipschitz_constant(m)
    except UnsupportedModuleError:
        return None


def _gmax(g: torch.Tensor | float) -> float:
    if isinstance(g, torch.Tensor):
        return float(g.max()) if g.numel() else 0.0
    return float(g)


def _bn_scale(m: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """|γ| / sqrt(var + eps) per channel of an eval-mode BatchNorm (raises like the L0 rule)."""
    module_lipschitz_constant(m)  # validates: eval mode with running statistics
    scale = (m.running_var.detach().to(torch.float64) + m.eps).rsqrt()
    if m.weight is not None:
        scale = scale * m.weight.detach().to(torch.float64).abs()
    return scale


def _shaped_step(m: nn.Module, g: torch.Tensor) -> torch.Tensor | None:
    """Coordinatewise bound after ``m`` for a per-sample bound ``g`` of the input's shape.

    Sound because each rule maps |Δ_in| ≤ g·ε to |Δ_out| ≤ g'·ε coordinatewise: a convolution is a
    weighted sum (|Σ w Δ| ≤ Σ |w| g; zero padding adds Δ = 0, the other padding modes copy input
    coordinates, so g is padded the same way), an average pool has non-negative weights, a max
    pool satisfies |max a − max b| ≤ max |a − b|, eval BatchNorm scales each channel, and
    Flatten only reshapes. Returns None where no shape rule applies (the caller falls back to
    the scalar L0 factor).
    """
    convs = {nn.Conv1d: (F.conv1d, 1), nn.Conv2d: (F.conv2d, 2), nn.Conv3d: (F.conv3d, 3)}
    if type(m) in convs:
        conv, d = convs[type(m)]
        if g.dim() != d + 1 or g.shape[0] != m.in_channels:
            return None
        x = g.unsqueeze(0)
        padding = m.padding
        if m.padding_mode != "zeros" and any(p > 0 for p in m._reversed_padding_repeated_twice):
            x = F.pad(x, m._reversed_padding_repeated_twice, mode=m.padding_mode)
            padding = 0
        W = m.weight.detach().to(torch.float64).abs()
        return conv(x, W, None, m.stride, padding, m.dilation, m.groups)[0]
    pools = {nn.MaxPool1d: F.max_pool1d, nn.MaxPool2d: F.max_pool2d, nn.MaxPool3d: F.max_pool3d}
    if type(m) in pools:
        return pools[type(m)](g.unsqueeze(0), m.kernel_size, m.stride, m.padding, m.dilation,
                              ceil_mode=m.ceil_mode)[0]
    if isinstance(m, nn.AvgPool2d):
        return F.avg_pool2d(g.unsqueeze(0), m.kernel_size, m.stride, m.padding, m.ceil_mode,
                            m.count_include_pad, m.divisor_override)[0]
    if isinstance(m, nn.AvgPool1d):
        return F.avg_pool1d(g.unsqueeze(0), m.kernel_size, m.stride, m.padding, m.ceil_mode,
                            m.count_include_pad)[0]
    adaptive = {nn.AdaptiveAvgPool1d: F.adaptive_avg_pool1d, nn.AdaptiveAvgPool2d: F.adaptive_avg_pool2d,
                nn.AdaptiveMaxPool1d: F.adaptive_max_pool1d, nn.AdaptiveMaxPool2d: F.adaptive_max_pool2d}
    if type(m) in adaptive and not getattr(m, "return_indices", False):
        return adaptive[type(m)](g.unsqueeze(0), m.output_size)[0]
    if isinstance(m, nn.modules.batchnorm._BatchNorm) and g.dim() >= 1 and g.shape[0] == m.num_features:
        return g * _bn_scale(m).reshape(-1, *([1] * (g.dim() - 1)))
    if isinstance(m, nn.Flatten):
        return g.unsqueeze(0).flatten(m.start_dim, m.end_dim)[0] if m.start_dim >= 1 else None
    if isinstance(m, nn.Linear) and g.shape[-1] == m.in_features:
        return g @ m.weight.detach().to(torch.float64).abs().T
    return None


@implements("THEORY-1.6-L1-chain", kind="D")
def chain_l1_bound(modules, *, constants: Mapping[type, float] | None = None,
                   input_shape: tuple[int, ...] | None = None) -> LipschitzBound:
    r"""L1-style bound of a module chain: entrywise-absolute products where the chain is linear
    in features, L0 factors elsewhere (THEORY §1.6, L1 extended to module chains).

    Keeps a per-coordinate bound ``g`` on ``|Δ|`` (``|Δ_out| ≤ g·‖u − u'‖_∞`` coordinatewise):
    ``nn.Linear`` maps ``g ↦ |W| g``, coordinatewise activations multiply by their κ; any
    other module (BatchNorm included) collapses ``g`` to ``max g`` times its
    rigorous ℓ∞ constant (:func:`module_lipschitz_constant`). The result is ``max g`` and is never
    larger than :func:`chain_lipschitz_bound`. For a ReLU/|·| MLP tail it equals ``lipschitz_L1``.

    With ``input_shape`` (the per-sample shape of the chain's input, e.g. ``(C, H, W)``) ``g``
    keeps the full activation shape, and convolutions (``g ↦ conv(g, |W|)`` with the layer's
    stride, padding, dilation and groups), max / average / adaptive pooling, eval BatchNorm
    (per-channel ``|γ|/sqrt(var + eps)``), Flatten and nested ``nn.Sequential`` propagate it
    coordinatewise instead of collapsing it, which can be far tighter for convolutional chains.
    Modules without a shape rule still collapse ``g`` to a scalar, after which the scalar rules
    apply.

    Returns
    -------
    LipschitzBound
        ``certified=True``, ``method="L1-chain"``, path independent.

    Raises
    ------
    UnsupportedModuleError
        For a module without a rigorous constant.
    """
    mods = _as_modules(modules)
    g: torch.Tensor | float = 1.0  # scalar: the same bound for every coordinate
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"input_shape == {input_shape!r}, must be a non-empty tuple of positive ints")
        g = torch.ones(shape, dtype=torch.float64)
    value = _gmax(_propagate_l1(mods, g, constants))
    return LipschitzBound((value,), certified=True, method="L1-chain", path_dependent=False)


def _propagate_l1(mods, g: torch.Tensor | float, constants) -> torch.Tensor | float:
    """The loop of :func:`chain_l1_bound`: per-coordinate bound after every module of ``mods``."""
    for m in mods:
        if constants and any(isinstance(m, cls) for cls in constants):
            g = _gmax(g) * module_lipschitz_constant(m, constants=constants)
            continue
        shaped = isinstance(g, torch.Tensor) and g.dim() >= 2
        if shaped and isinstance(m, nn.Sequential):
            g = _propagate_l1(list(m), g, constants)
            continue
        if shaped:
            if isinstance(m, nn.modules.dropout._DropoutNd | nn.Identity):
                module_lipschitz_constant(m)  # raises for training-mode dropout
                continue
            f = _coordinatewise_factor(m)
            if f is not None:
                g = g * f
                continue
            out = _shaped_step(m, g)
            g = out if out is not None else _gmax(g) * module_lipschitz_constant(m, constants=constants)
            continue
        if isinstance(m, nn.Linear):
            W = m.weight.detach().to(torch.float64).abs()
            g = W @ (torch.full((W.shape[1],), float(g), dtype=torch.float64)
                     if not isinstance(g, torch.Tensor) else g)
            continue
        if isinstance(m, nn.Sequential):
            inner = chain_l1_bound(list(m), constants=constants).max
            g = _gmax(g) * inner
            continue
        f = _coordinatewise_factor(m)
        if f is not None and not isinstance(m, nn.modules.dropout._DropoutNd | nn.Identity):
            g = g * f
            continue
        if isinstance(m, nn.modules.dropout._DropoutNd | nn.Identity):
            module_lipschitz_constant(m)  # raises for training-mode dropout
            continue
        g = _gmax(g) * module_lipschitz_constant(m, constants=constants)
    return g
