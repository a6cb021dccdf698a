"""Private module helpers shared by the mask modules (name lookup, dense weight, matrix view)."""

from __future__ import annotations

import torch

__all__ = ["dense_weight", "get_module", "matrix_view", "weight_parameter"]


def get_module(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """``model.get_submodule(name)`` with a ``ValueError`` naming the missing layer."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        module = model.get_submodule(name)
    except AttributeError as exc:
        raise ValueError(f"the model has no submodule named {name!r}") from exc
    if not isinstance(getattr(module, "weight", None), torch.Tensor):
        raise ValueError(f"submodule {name!r} ({type(module).__name__}) has no weight tensor")
    return module


def weight_parameter(module: torch.nn.Module) -> torch.Tensor:
    """The tensor that stores the weight values: ``weight_orig`` when
    ``torch.nn.utils.prune`` reparametrised the module, ``weight`` otherwise."""
    orig = getattr(module, "weight_orig", None)
    return orig if isinstance(orig, torch.Tensor) else module.weight


def dense_weight(module: torch.nn.Module) -> torch.Tensor:
    """Detached weight values before any attached prune mask (see :func:`weight_parameter`)."""
    return weight_parameter(module).detach()


def matrix_view(t: torch.Tensor) -> torch.Tensor:
    """The ``rows × inputs`` matrix of a weight (ALGORITHMS §1.7).

    Linear ``(out, in)`` is unchanged; a conv kernel ``(C_out, C_in/groups, k_h, k_w)`` becomes
    ``C_out × (C_in/groups)·k_h·k_w`` by row-major flattening (im2col column order
    ``c·k_h·k_w + y·k_w + x``), as in :func:`certkit.factorize.weight_matrix`.
    """
    if t.ndim < 2:
        raise ValueError(f"a weight needs at least 2 dimensions (rows, inputs), got shape "
                         f"{tuple(t.shape)}")
    return t.reshape(t.shape[0], -1)
