r"""Factorisation of a torch model around one target layer (THEORY §1.4, M-§5.1).

For a target weight ``A`` (``nn.Linear.weight``, or an ``nn.Conv2d`` kernel viewed as the
``C_out × (C_in·k_h·k_w)`` matrix of ALGORITHMS §1.7) the logits are ``z_A(s) = ψ2(A v_s)``:

* :func:`layer_inputs` returns ``v_s = ψ1(s)`` as a ``(|T|, P, m)`` tensor, one row per
  *position* the layer is applied at (tokens of a transformer linear, output pixels of a
  convolution, ``P = 1`` for a plain vector input). Then ``‖R v_s‖_∞`` — the largest entry of
  the change of the layer's output over all positions and channels — is exactly what the
  data-path budget needs (a single flattened vector per input would be wrong, THEORY §1.4);
* :func:`weight_matrix` / :func:`weight_from_matrix` convert between the module's weight and the
  matrix ``A``;
* :func:`swapped_weight` temporarily replaces ``A`` (e.g. by ``S`` or ``S + θR``) so that
  observed logits ``z_{A_θ}(s)`` come from the real model.

The layer's own bias and activation belong to ψ2 and never enter ``R v_s``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from ._validation import as_tensor, check_int

__all__ = ["layer_inputs", "swapped_weight", "weight_from_matrix", "weight_matrix"]


def _check_module(module) -> torch.nn.Module:
    if isinstance(module, torch.nn.Linear):
        return module
    if type(module) is torch.nn.Conv2d:
        if module.groups != 1:
            raise NotImplementedError(
                f"Conv2d with groups == {module.groups} is block-diagonal as a matrix; only "
                "groups == 1 is supported (factor each group as its own layer)"
            )
        if module.padding_mode != "zeros":
            raise NotImplementedError(
                f"Conv2d padding_mode == {module.padding_mode!r}; only 'zeros' is supported"
            )
        return module
    raise TypeError(
        f"module must be an nn.Linear or a plain nn.Conv2d, got {type(module).__name__} "
        "(subclasses with their own forward, e.g. dynamic 'same' padding, are not supported)"
    )


def weight_matrix(module: torch.nn.Module) -> torch.Tensor:
    """The target matrix ``A`` of a Linear (``out × in``) or Conv2d (``C_out × C_in·k_h·k_w``)."""
    module = _check_module(module)
    W = module.weight.detach()
    return W.reshape(W.shape[0], -1)


def weight_from_matrix(module: torch.nn.Module, A) -> torch.Tensor:
    """Reshape a matrix of :func:`weight_matrix`'s shape back into the module's weight shape."""
    module = _check_module(module)
    shape = tuple(module.weight.shape)
    A = as_tensor(A, "A", ndim=2, dtype=module.weight.dtype)
    if tuple(A.shape) != (shape[0], int(torch.tensor(shape[1:]).prod())):
        raise ValueError(
            f"A must have shape {tuple(weight_matrix(module).shape)} (the module's weight as a "
            f"matrix), got {tuple(A.shape)}"
        )
    return A.reshape(shape)


def _conv_padding(module: torch.nn.Conv2d) -> tuple[int, int]:
    if isinstance(module.padding, str):
        if module.padding == "valid":
            return (0, 0)
        # 'same' (stride 1): torch pads total d·(k−1), the extra pixel on the right/bottom;
        # F.unfold only takes symmetric padding, so asymmetric totals are rejected.
        pads = []
        for k, d in zip(module.kernel_size, module.dilation, strict=True):
            total = d * (k - 1)
            if total % 2:
                raise NotImplementedError(
                    "padding='same' with an even receptive field needs asymmetric padding; "
                    "not supported"
                )
            pads.append(total // 2)
        return tuple(pads)
    return tuple(module.padding)


def _positions(module: torch.nn.Module, inp: torch.Tensor) -> torch.Tensor:
    """Layer input of one batch as ``(B, P, m)``."""
    if isinstance(module, torch.nn.Linear):
        return inp.reshape(inp.shape[0], -1, inp.shape[-1])
    cols = F.unfold(inp, module.kernel_size, dilation=module.dilation,
                    padding=_conv_padding(module), stride=module.stride)  # (B, m, P)
    return cols.transpose(1, 2)


def layer_inputs(model: torch.nn.Module, module: torch.nn.Module, x, *,
                 batch_size: int | None = None, return_outputs: bool = False):
    r"""Inputs ``v_s = ψ1(s)`` of ``module`` for every sample of ``x``, shape ``(|T|, P, m)``.

    Implements the factorisation of THEORY §1.4 (M-§5.1) for real torch models: with
    ``A = weight_matrix(module)`` and any decomposition ``A = S + R``, the change of the
    module's output at sample s is ``R v_s`` (position by position), so
    ``certkit.data_path_budget(R, layer_inputs(...), L)`` is the budget of M-eq. 8.

    Parameters
    ----------
    model : nn.Module
        The whole network (run in inference mode, without gradients).
    module : nn.Linear or nn.Conv2d (groups = 1)
        The target layer; it must run exactly once per forward pass.
    x : tensor
        A batch of model inputs (first dimension = samples).
    batch_size : int, optional
        Forward in chunks of this many samples.
    return_outputs : bool, default False
        Also return the model's outputs (e.g. logits) of the same forward passes.

    Returns
    -------
    torch.Tensor, shape (|T|, P, m)
        ``P`` positions per sample (tokens, output pixels; 1 for vector inputs),
        ``m = A.shape[1]`` (``C_in·k_h·k_w`` for a convolution, im2col order).
        With ``return_outputs=True`` a pair ``(inputs, outputs)``.
    """
    module = _check_module(module)
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] == 0:
        raise ValueError("x must be a non-empty tensor whose first dimension indexes samples")
    n = x.shape[0]
    bs = n if batch_size is None else check_int(batch_size, "batch_size", min_val=1)
    store: list[torch.Tensor] = []

    def hook(_m, inp, _out):
        store.append(_positions(module, inp[0].detach()))

    out, outputs = [], []
    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for i in range(0, n, bs):
                before = len(store)
                outputs.append(model(x[i : i + bs]))
                if len(store) - before != 1:
                    raise RuntimeError(
                        f"the target module ran {len(store) - before} times in one forward "
                        "pass, expected exactly once (weight sharing is not a single layer)"
                    )
                out.append(store[-1])
    finally:
        handle.remove()
    if return_outputs:
        return torch.cat(out), torch.cat(outputs)
    return torch.cat(out)


@contextlib.contextmanager
def swapped_weight(module: torch.nn.Module, A) -> Iterator[torch.nn.Module]:
    """Context manager: ``module`` computes with the matrix ``A`` (restored on exit).

    Examples
    --------
    >>> with swapped_weight(layer, S):          # doctest: +SKIP
    ...     pruned_logits = model(x)
    """
    module = _check_module(module)
    new = weight_from_matrix(module, A).to(module.weight.device)
    old = module.weight.detach().clone()
    with torch.no_grad():
        module.weight.copy_(new)
    try:
        yield module
    finally:
        with torch.no_grad():
            module.weight.copy_(old)
