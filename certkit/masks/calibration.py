r"""Calibration statistics of layer inputs for data-aware masks (ALGORITHMS §7.4, Wanda).

One forward pass of the model over the calibration batches, with a forward pre-hook on every
selected layer, accumulates — streaming, in float64, never holding the activations — the
statistics that the data-aware scores need:

* per input coordinate j of the layer's matrix view (ALGORITHMS §1.7), the sum of squares
  ``Σ_rows h_j²`` (Wanda's ``‖x_j‖₂`` is its square root, :attr:`LayerStats.input_norm`);
* with ``group_size=n``, for every group g of ``n`` consecutive input coordinates
  (columns ``g·n … g·n+n−1``, ALGORITHMS §7.2), the uncentered block
  ``Σ_rows h_g h_gᵀ`` (CAST's ``C_g = (1/R)·Σ h_g h_gᵀ`` of §7.5 is
  :attr:`LayerStats.group_cov`). Only the within-group blocks are formed (the block-diagonal
  approximation of §7.5), ``O(R·N·n)`` work per layer.

A *row* is one position the layer is applied at, the layer-input view of
:func:`certkit.factorize.layer_inputs`: a Linear sees its input reshaped to ``(-1, in)`` (every
token of every image, the ViT cls token included); a Conv2d sees its im2col patches
(``F.unfold`` with the conv's kernel, stride, padding and dilation, zero padding included), one
row per output pixel of length ``C_in·k_h·k_w`` in the column order of the matrix view. Each row
has weight 1 (ALGORITHMS §7.4 [spec addition]); nothing is centered and there is no bias
coordinate.

Calibration batches: ``calibration`` is any iterable of batches. A tensor batch is passed as
``model(batch)``; a tuple/list (e.g. ``(images, labels)`` from a ``DataLoader``) as
``model(batch[0])``; a dict as ``model(**batch)``. Tensors are moved to the device of the
model's first parameter. The model runs in eval mode under ``torch.no_grad()`` (its training
flag is restored afterwards), so capture sees the *unprojected* network (§7.4 [spec addition]).

Row caps (§7.4, §11 item 23). The repository capped the captured rows (4096 per layer) because
it stored activations. Streaming second moments make a cap unnecessary, so the DEFAULT uses
every row of every calibration batch: the statistics are then the exact averages over the
calibration set that the capped versions estimate (and they are checkable by brute force).
``rows_per_call`` reproduces the repository's k:n Linear path (a seeded uniform subsample of at
most that many rows per forward call).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch

from .._validation import check_int
from ..factorize import _conv_padding
from ._modules import get_module

__all__ = ["LayerStats", "capture_ineligibility", "collect_input_stats", "run_calibration"]

#: Rows converted to float64 at a time inside a hook (bounds the temporary memory).
CHUNK_ROWS = 8192


@dataclass
class LayerStats:
    r"""Streaming input statistics of one layer (see the module docstring).

    Attributes
    ----------
    name : str
        Module name.
    width : int
        ``N``: input width of the matrix view (``in_features`` or ``C_in·k_h·k_w``).
    n_rows : int
        ``R``: number of rows (tokens / patches) accumulated.
    sq_sum : torch.Tensor, float64, shape (N,)
        ``Σ_rows h_j²`` per input coordinate.
    group_size : int or None
        ``n`` of the group blocks, or None when none were collected.
    group_sum : torch.Tensor, float64, shape (G, n, n), or None
        ``Σ_rows h_g h_gᵀ`` for the ``G = ⌊N/n⌋`` complete groups.
    calls : int
        Number of forward calls of the layer that were captured.
    """

    name: str
    width: int
    n_rows: int
    sq_sum: torch.Tensor
    group_size: int | None = None
    group_sum: torch.Tensor | None = None
    calls: int = 0

    @property
    def input_norm(self) -> torch.Tensor:
        """Wanda's ``‖x_j‖₂ = sqrt(Σ_rows h_j²)`` per input coordinate (float64, shape (N,))."""
        return self.sq_sum.sqrt()

    @property
    def second_moment(self) -> torch.Tensor:
        """``E[h_j²] = Σ_rows h_j² / R`` (zeros when no row was seen)."""
        return self.sq_sum / max(self.n_rows, 1)

    @property
    def group_cov(self) -> torch.Tensor:
        """CAST's ``C_g = (1/R)·Σ_rows h_g h_gᵀ`` (ALGORITHMS §7.5), shape (G, n, n)."""
        if self.group_sum is None:
            raise ValueError(f"layer {self.name!r}: group blocks were not collected; pass "
                             "group_size=n to collect_input_stats")
        return self.group_sum / max(self.n_rows, 1)


def capture_ineligibility(module: torch.nn.Module) -> str | None:
    """Why the inputs of ``module`` cannot be captured in the matrix view, or None.

    Supported: ``nn.Linear`` and ``nn.Conv2d`` with ``groups == 1`` and zero padding (the
    im2col view of :mod:`certkit.factorize`).
    """
    if isinstance(module, torch.nn.Linear):
        return None
    if isinstance(module, torch.nn.Conv2d):
        if module.groups != 1:
            return (f"conv with groups == {module.groups}: its matrix view is block-diagonal, "
                    "input statistics need groups == 1")
        if module.padding_mode != "zeros":
            return f"Conv2d padding_mode == {module.padding_mode!r}; only 'zeros' is supported"
        try:
            _conv_padding(module)
        except NotImplementedError as exc:
            return str(exc)
        return None
    return (f"{type(module).__name__}: input statistics are implemented for nn.Linear and "
            "nn.Conv2d only")


def _rows(module: torch.nn.Module, inp: torch.Tensor) -> torch.Tensor:
    """Layer input of one forward call as ``(rows, N)`` (module docstring)."""
    if isinstance(module, torch.nn.Linear):
        return inp.reshape(-1, inp.shape[-1])
    cols = torch.nn.functional.unfold(inp, module.kernel_size, dilation=module.dilation,
                                      padding=_conv_padding(module), stride=module.stride)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def _model_device(model: torch.nn.Module) -> torch.device | None:
    for p in model.parameters():
        return p.device
    return None


def _to(x, device):
    if device is None:
        return x
    if isinstance(x, torch.Tensor):
        return x.to(device)
    return x


def _forward(model: torch.nn.Module, batch, device) -> None:
    if isinstance(batch, torch.Tensor):
        model(_to(batch, device))
    elif isinstance(batch, tuple | list):
        if not batch:
            raise ValueError("calibration contains an empty tuple/list batch")
        model(_to(batch[0], device))
    elif isinstance(batch, Mapping):
        model(**{k: _to(v, device) for k, v in batch.items()})
    else:
        raise TypeError(f"calibration batches must be tensors, (inputs, ...) tuples or dicts of "
                        f"model keyword arguments, got {type(batch).__name__}")


def run_calibration(model: torch.nn.Module, calibration, *, max_batches: int | None = None,
                    name: str = "calibration") -> int:
    """Forward every calibration batch through ``model`` (eval mode, no grad).

    Returns the number of batches run. Raises ``ValueError`` when ``calibration`` is None or
    yields no batch (data-aware methods need data).
    """
    if calibration is None:
        raise ValueError(f"{name} is None: this method is data-aware and needs an iterable of "
                         "input batches")
    if isinstance(calibration, torch.Tensor):
        calibration = [calibration]
    if not isinstance(calibration, Iterable):
        raise TypeError(f"{name} must be an iterable of input batches, got "
                        f"{type(calibration).__name__}")
    if max_batches is not None:
        max_batches = check_int(max_batches, "max_batches", min_val=1)
    device = _model_device(model)
    was_training = model.training
    model.eval()
    n = 0
    try:
        with torch.no_grad():
            for batch in calibration:
                _forward(model, batch, device)
                n += 1
                if max_batches is not None and n >= max_batches:
                    break
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError(f"{name} yielded no batch; data-aware methods need at least one")
    return n


def collect_input_stats(model: torch.nn.Module, layers, calibration, *,
                        group_size: int | None = None, max_batches: int | None = None,
                        rows_per_call: int | None = None, seed: int = 0
                        ) -> dict[str, LayerStats]:
    r"""Input statistics of the selected layers from one pass over ``calibration``.

    Parameters
    ----------
    model : nn.Module
    layers : mapping name -> module, or sequence of module names
        The layers to hook (each must pass :func:`capture_ineligibility`).
    calibration : iterable of batches
        See the module docstring; a single tensor is treated as one batch.
    group_size : int, optional
        Also accumulate the ``n × n`` within-group blocks for groups of this many consecutive
        input coordinates (CAST, ALGORITHMS §7.5). Incomplete trailing columns get no block.
    max_batches : int, optional
        Stop after this many batches (the "n_calib images" of §7.4 at batch granularity).
    rows_per_call : int, optional
        Keep a seeded uniform random subset of at most this many rows per forward call (the
        repository's k:n Linear path, §7.4); default None = all rows.
    seed : int, default 0
        Seed of the row subsampling generator (used only with ``rows_per_call``).

    Returns
    -------
    dict of str to LayerStats
        In the order of ``layers``. A layer that never ran has ``n_rows == 0``.

    Raises
    ------
    ValueError
        ``calibration`` is None or empty, an unsupported layer, a bad ``group_size``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(layers, Mapping):
        mods = {str(k): v for k, v in layers.items()}
    elif isinstance(layers, Sequence) and not isinstance(layers, str):
        mods = {str(k): get_module(model, str(k)) for k in layers}
    else:
        raise TypeError("layers must be a mapping name -> module or a sequence of names")
    if not mods:
        raise ValueError("layers is empty; select at least one layer")
    if group_size is not None:
        group_size = check_int(group_size, "group_size", min_val=1)
    if rows_per_call is not None:
        rows_per_call = check_int(rows_per_call, "rows_per_call", min_val=1)
    if calibration is None:
        raise ValueError("calibration is None: data-aware statistics need an iterable of input "
                         "batches")
    for name, module in mods.items():
        reason = capture_ineligibility(module)
        if reason is not None:
            raise ValueError(f"layer {name!r}: {reason}")
    gen = torch.Generator().manual_seed(int(seed))
    stats: dict[str, LayerStats] = {}
    for name, module in mods.items():
        width = module.weight[0].numel()
        dev = module.weight.device
        G = width // group_size if group_size is not None else 0
        stats[name] = LayerStats(
            name=name, width=width, n_rows=0,
            sq_sum=torch.zeros(width, dtype=torch.float64, device=dev),
            group_size=group_size,
            group_sum=(None if group_size is None else
                       torch.zeros(G, group_size, group_size, dtype=torch.float64, device=dev)),
        )

    def make_hook(name, module):
        st = stats[name]

        def hook(_mod, args):
            if not args or not isinstance(args[0], torch.Tensor):
                raise TypeError(f"layer {name!r} received no tensor input")
            rows = _rows(module, args[0].detach())
            if rows.shape[1] != st.width:
                raise ValueError(f"layer {name!r}: input width {rows.shape[1]} differs from "
                                 f"its weight's {st.width}")
            if rows_per_call is not None and rows.shape[0] > rows_per_call:
                idx = torch.randperm(rows.shape[0], generator=gen)[:rows_per_call]
                rows = rows[idx.to(rows.device)]
            st.calls += 1
            st.n_rows += rows.shape[0]
            for start in range(0, rows.shape[0], CHUNK_ROWS):
                x = rows[start : start + CHUNK_ROWS].to(device=st.sq_sum.device,
                                                        dtype=torch.float64)
                st.sq_sum += (x * x).sum(dim=0)
                if st.group_sum is not None and st.group_sum.shape[0]:
                    n = st.group_size
                    xg = x[:, : st.group_sum.shape[0] * n].reshape(x.shape[0], -1, n)
                    xg = xg.transpose(0, 1)  # (G, rows, n)
                    st.group_sum += torch.bmm(xg.transpose(1, 2), xg)

        return hook

    handles = [m.register_forward_pre_hook(make_hook(n, m)) for n, m in mods.items()]
    try:
        run_calibration(model, calibration, max_batches=max_batches)
    finally:
        for h in handles:
            h.remove()
    return stats
