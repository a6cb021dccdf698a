r"""Exact im2col lowering of ``nn.Conv2d`` to one GEMM (ALGORITHMS §1.7, §9.1 "Conv rows" (b)).

A Conv2d with ``groups == 1`` and zero padding is, exactly,

.. code-block:: text

    cols = F.unfold(x, kernel_size, dilation, padding, stride)      # (B, C_in·k_h·k_w, L)
    y    = F.linear(cols.transpose(1, 2).reshape(B·L, C_in·k_h·k_w),
                    W.reshape(C_out, −1), bias)                      # (B·L, C_out)
    y    = y.reshape(B, H_out, W_out, C_out).permute(0, 3, 1, 2)     # (B, C_out, H_out, W_out)

with ``L = H_out·W_out``. The column order of ``F.unfold`` is ``c·(k_h k_w) + (y·k_w + x)``, i.e.
the row-major flattening of the kernel used by every matrix view of a conv in this project, so a
2:4 mask validated on the ``(C_out, C_in·k_h·k_w)`` view is the 2:4 pattern of the GEMM's weight
matrix, and that matrix can be packed with ``torch.sparse.to_sparse_semi_structured``.

:func:`lowering_reason` says why a conv cannot be lowered (grouped, non-zero padding mode,
``padding="same"`` with an even receptive field, which PyTorch pads asymmetrically, or a
subclass with its own ``forward`` such as timm's ``Conv2dSame``/``StdConv2d``);
:func:`sparse_gemm_reason` adds the conditions of the CUDA 2:4 kernels (``C_in >= 4``, rows and
columns of the matrix multiples of 16). :class:`Im2colConv2d` is the lowered module; its weight
matrix may be any tensor ``F.linear`` accepts, including a semi-structured sparse one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["Im2colConv2d", "conv_matrix", "im2col_conv2d", "lowering_reason", "output_hw",
           "resolve_padding", "sparse_gemm_reason"]

#: Matrix dims of the CUDA semi-structured kernels must be multiples of this (ALGORITHMS §9.3).
KERNEL_ALIGN = 16
#: ALGORITHMS §9.1 (b) / §9.4: convs with fewer input channels (the stem) are not lowered.
MIN_IN_CHANNELS = 4


def _pair(v) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    t = tuple(int(a) for a in v)
    return (t[0], t[0]) if len(t) == 1 else (t[0], t[1])


def _is_dense(t: torch.Tensor) -> bool:
    """A plain strided tensor (or Parameter), not a tensor subclass such as a packed 2:4 matrix."""
    return type(t) in (torch.Tensor, torch.nn.Parameter) and t.layout == torch.strided


def resolve_padding(conv: torch.nn.Conv2d) -> tuple[int, int] | str:
    """Symmetric ``(pad_h, pad_w)`` of ``conv``, or a string saying why there is none.

    ``padding="valid"`` is ``(0, 0)``; ``padding="same"`` (stride 1 in PyTorch) pads
    ``d·(k−1)`` in total per dimension, split evenly only when that total is even (an odd
    receptive field ``d·(k−1)+1``); otherwise PyTorch puts the extra row/column at the end, which
    ``F.unfold`` cannot express.

    Parameters
    ----------
    conv : torch.nn.Conv2d
        The convolution.

    Returns
    -------
    tuple of int or str
        The padding, or the reason it is not a symmetric zero padding.
    """
    pad = conv.padding
    if isinstance(pad, str):
        if pad == "valid":
            return (0, 0)
        if pad != "same":  # pragma: no cover - nn.Conv2d rejects other strings
            return f"padding={pad!r} is not supported"
        out = []
        for k, d in zip(_pair(conv.kernel_size), _pair(conv.dilation), strict=True):
            total = d * (k - 1)
            if total % 2:
                return (f"padding='same' with an even receptive field d·(k−1)+1 == {total + 1} pads "
                        "asymmetrically, which F.unfold cannot express")
            out.append(total // 2)
        return (out[0], out[1])
    return _pair(pad)


def lowering_reason(conv: torch.nn.Module) -> str | None:
    """Why ``conv`` has no exact im2col lowering, or ``None`` if it has one.

    Parameters
    ----------
    conv : torch.nn.Module
        Candidate layer.

    Returns
    -------
    str or None
        ``None`` for a plain ``nn.Conv2d`` (or a subclass keeping its ``forward``) with
        ``groups == 1``, ``padding_mode == "zeros"`` and a symmetric padding.
    """
    if not isinstance(conv, torch.nn.Conv2d):
        return f"not a Conv2d ({type(conv).__name__})"
    if type(conv).forward is not torch.nn.Conv2d.forward:
        return (f"{type(conv).__name__} overrides Conv2d.forward (e.g. dynamic padding or weight "
                "standardisation); its output is not F.conv2d of its weight")
    if conv.groups != 1:
        return f"groups == {conv.groups} (im2col lowering to one GEMM needs groups == 1)"
    if conv.padding_mode != "zeros":
        return f"padding_mode == {conv.padding_mode!r} (only zero padding is lowered)"
    pad = resolve_padding(conv)
    return pad if isinstance(pad, str) else None


def sparse_gemm_reason(conv: torch.nn.Module, *, align: int = KERNEL_ALIGN,
                       min_in_channels: int = MIN_IN_CHANNELS) -> str | None:
    """:func:`lowering_reason` plus the 2:4 CUDA kernel conditions on the matrix view.

    Parameters
    ----------
    conv : torch.nn.Module
        Candidate layer.
    align : int, default 16
        Rows ``C_out`` and columns ``C_in·k_h·k_w`` must be multiples of ``align``.
    min_in_channels : int, default 4
        Smallest ``C_in`` lowered (ALGORITHMS §9.1 (b)).

    Returns
    -------
    str or None
        The first failing condition, or ``None``.
    """
    why = lowering_reason(conv)
    if why is not None:
        return why
    rows, cols = conv_matrix(conv).shape
    if conv.in_channels < min_in_channels:
        return f"C_in == {conv.in_channels} < {min_in_channels}"
    if rows % align or cols % align:
        return (f"matrix view ({rows}, {cols}) = (C_out, C_in·k_h·k_w): both dims must be "
                f"multiples of {align} for the CUDA 2:4 kernels")
    return None


def conv_matrix(conv: torch.nn.Conv2d, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The ``(C_out, C_in·k_h·k_w)`` matrix view of a kernel (``conv.weight`` by default)."""
    w = conv.weight if weight is None else weight
    return w.detach().reshape(w.shape[0], -1)


def output_hw(in_hw: tuple[int, int], kernel_size, stride, padding, dilation) -> tuple[int, int]:
    """``(H_out, W_out)`` of a conv/unfold: ``⌊(H + 2p − d(k−1) − 1)/s⌋ + 1`` per dimension."""
    out = []
    for h, k, s, p, d in zip(in_hw, _pair(kernel_size), _pair(stride), _pair(padding),
                             _pair(dilation), strict=True):
        out.append((h + 2 * p - d * (k - 1) - 1) // s + 1)
    return (out[0], out[1])


def im2col_conv2d(x: torch.Tensor, matrix: torch.Tensor, bias: torch.Tensor | None,
                  kernel_size, stride=1, padding=0, dilation=1) -> torch.Tensor:
    """``F.conv2d`` (groups 1, zero padding) as unfold → ``F.linear`` → reshape.

    Parameters
    ----------
    x : torch.Tensor
        Input ``(B, C_in, H, W)``.
    matrix : torch.Tensor
        Weight matrix ``(C_out, C_in·k_h·k_w)``; dense, or anything ``F.linear`` accepts as a
        weight (e.g. a ``SparseSemiStructuredTensor``).
    bias : torch.Tensor or None
        ``(C_out,)``.
    kernel_size, stride, padding, dilation : int or tuple of int
        As for ``F.unfold``; ``padding`` must be symmetric (see :func:`resolve_padding`).

    Returns
    -------
    torch.Tensor
        ``(B, C_out, H_out, W_out)``, a permuted (channels-last strided) view of the GEMM output.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be (B, C, H, W), got shape {tuple(x.shape)}")
    b = x.shape[0]
    h_out, w_out = output_hw(tuple(x.shape[2:]), kernel_size, stride, padding, dilation)
    cols = F.unfold(x, _pair(kernel_size), dilation=_pair(dilation), padding=_pair(padding),
                    stride=_pair(stride))
    k = cols.shape[1]
    if k != matrix.shape[1]:
        raise ValueError(f"unfold gives {k} columns but the weight matrix has {matrix.shape[1]}")
    # contiguous: at B == 1 the reshape can be a strided view; the packed 2:4 kernels (and a fair
    # dense/sparse comparison) want the same row-major (B·L, K) operand on both sides
    y = F.linear(cols.transpose(1, 2).reshape(b * h_out * w_out, k).contiguous(), matrix, bias)
    return y.reshape(b, h_out, w_out, matrix.shape[0]).permute(0, 3, 1, 2)


class Im2colConv2d(torch.nn.Module):
    """A Conv2d executed as im2col + one GEMM (module docstring).

    Parameters
    ----------
    conv : torch.nn.Conv2d
        Source layer; must pass :func:`lowering_reason` (else ``ValueError`` with the reason).
    weight : torch.Tensor, optional
        Replacement weight: the ``(C_out, C_in·k_h·k_w)`` matrix (dense or semi-structured
        sparse) or a kernel shaped like ``conv.weight``. Default: ``conv.weight``.
    mask : torch.Tensor, optional
        Keep-mask shaped like ``conv.weight`` or its matrix view, multiplied into a dense weight.

    Attributes
    ----------
    weight : torch.nn.Parameter
        The GEMM weight matrix (``requires_grad=False``).
    bias : torch.nn.Parameter or None
        Copy of ``conv.bias``.
    """

    def __init__(self, conv: torch.nn.Conv2d, weight: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None) -> None:
        super().__init__()
        why = lowering_reason(conv)
        if why is not None:
            raise ValueError(f"cannot lower this conv with im2col: {why}")
        pad = resolve_padding(conv)
        assert not isinstance(pad, str)
        self.kernel_size = _pair(conv.kernel_size)
        self.stride = _pair(conv.stride)
        self.padding = pad
        self.dilation = _pair(conv.dilation)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        cols = conv.in_channels * self.kernel_size[0] * self.kernel_size[1]
        if weight is None:
            w = conv.weight.detach()
        elif _is_dense(weight):
            w = weight.detach()
        else:  # a packed (tensor-subclass) matrix is used as given
            w = weight
        if _is_dense(w) and w.ndim != 2:
            w = w.reshape(w.shape[0], -1)
        if tuple(w.shape) != (conv.out_channels, cols):
            raise ValueError(f"weight matrix must be ({conv.out_channels}, {cols}), got "
                             f"{tuple(w.shape)}")
        if mask is not None:
            if not _is_dense(w):
                raise ValueError("mask needs a dense weight (apply it before packing)")
            w = w * mask.reshape(w.shape).to(w.dtype)
        elif _is_dense(w):
            w = w.contiguous()
        self.weight = torch.nn.Parameter(w, requires_grad=False)
        self.bias = (None if conv.bias is None
                     else torch.nn.Parameter(conv.bias.detach().clone(), requires_grad=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` → ``(B, C_out, H_out, W_out)`` via :func:`im2col_conv2d`."""
        return im2col_conv2d(x, self.weight, self.bias, self.kernel_size, self.stride,
                             self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"bias={self.bias is not None}, weight={type(self.weight).__name__}")
