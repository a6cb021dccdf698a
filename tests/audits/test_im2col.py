"""audits.im2col: exact im2col lowering of Conv2d, eligibility reasons, masked lowering."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from audits.im2col import (
    Im2colConv2d,
    conv_matrix,
    im2col_conv2d,
    lowering_reason,
    output_hw,
    resolve_padding,
    sparse_gemm_reason,
)
from certkit.masks import validate_nm
from certkit.masks.nm import nm_magnitude_mask

GRID = list(itertools.product(
    [(1, 1), (3, 3), (1, 3), (5, 2)],      # kernel
    [1, 2, (2, 1)],                       # stride
    [0, 1, (2, 0)],                       # padding
    [1, 2],                               # dilation
    [True, False],                        # bias
))


def _conv(cin, cout, k, **kw) -> torch.nn.Conv2d:
    return torch.nn.Conv2d(cin, cout, k, **kw).double()


@pytest.mark.parametrize("kernel,stride,padding,dilation,bias", GRID)
def test_lowering_equals_conv2d(kernel, stride, padding, dilation, bias):
    g = torch.Generator().manual_seed(hash((kernel, stride, padding, dilation, bias)) % 2**31)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
    conv = _conv(3, 5, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)
    x = torch.randn(2, 3, 13, 11, dtype=torch.float64, generator=g)
    with torch.no_grad():
        ref = conv(x)
        low = Im2colConv2d(conv)(x)
    assert low.shape == ref.shape
    assert tuple(ref.shape[2:]) == output_hw((13, 11), kernel, stride, padding, dilation)
    torch.testing.assert_close(low, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel,dilation", [(3, 1), (5, 1), (3, 2), ((3, 5), (2, 1)), (1, 1)])
def test_same_padding_odd_receptive_field(kernel, dilation):
    torch.manual_seed(0)
    conv = _conv(4, 6, kernel, padding="same", dilation=dilation)
    assert lowering_reason(conv) is None
    x = torch.randn(1, 4, 9, 10, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(Im2colConv2d(conv)(x), conv(x), rtol=0, atol=1e-12)
    assert resolve_padding(_conv(4, 6, 3, padding="valid")) == (0, 0)


def test_masked_lowering_equals_masked_conv():
    torch.manual_seed(1)
    conv = _conv(16, 32, 3, stride=2, padding=1, bias=True)
    mask = nm_magnitude_mask(conv.weight.detach(), 2, 4)
    validate_nm(mask, 2, 4)  # valid on the (C_out, C_in·k_h·k_w) view
    assert mask.shape == conv.weight.shape
    x = torch.randn(3, 16, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        ref = F.conv2d(x, conv.weight * mask, conv.bias, stride=2, padding=1)
        via_mask = Im2colConv2d(conv, mask=mask)(x)
        masked_matrix = conv_matrix(conv) * mask.reshape(32, -1)
        via_matrix = Im2colConv2d(conv, weight=masked_matrix)(x)
        functional = im2col_conv2d(x, masked_matrix, conv.bias, 3, 2, 1, 1)
    for y in (via_mask, via_matrix, functional):
        torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    # the GEMM weight matrix keeps exactly 2 of every 4 consecutive columns
    validate_nm(Im2colConv2d(conv, mask=mask).weight, 2, 4)


@pytest.mark.parametrize("conv,match", [
    (torch.nn.Conv2d(8, 8, 3, groups=2), "groups == 2"),
    (torch.nn.Conv2d(8, 8, 3, groups=8), "groups == 8"),
    (torch.nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), "padding_mode == 'reflect'"),
    (torch.nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular"), "padding_mode"),
    (torch.nn.Conv2d(8, 8, 4, padding="same"), "even receptive field"),
    (torch.nn.Conv2d(8, 8, (3, 2), padding="same"), "even receptive field"),
    (torch.nn.Conv1d(8, 8, 3), "not a Conv2d"),
    (torch.nn.Linear(8, 8), "not a Conv2d"),
])
def test_ineligible_convs_have_a_reason(conv, match):
    why = lowering_reason(conv)
    assert why is not None and match in why
    assert sparse_gemm_reason(conv) == why
    if isinstance(conv, torch.nn.Conv2d):
        with pytest.raises(ValueError, match="cannot lower"):
            Im2colConv2d(conv)


def test_subclass_overriding_forward_is_ineligible():
    class Std(torch.nn.Conv2d):
        def forward(self, x):  # pragma: no cover - never called
            return super().forward(x) * 2

    assert "overrides Conv2d.forward" in lowering_reason(Std(8, 8, 3))


def test_sparse_gemm_conditions():
    assert sparse_gemm_reason(torch.nn.Conv2d(16, 32, 3)) is None       # (32, 144)
    assert sparse_gemm_reason(torch.nn.Conv2d(64, 128, 1, stride=2)) is None
    assert "C_in == 3 < 4" in sparse_gemm_reason(torch.nn.Conv2d(3, 64, 7))
    why = sparse_gemm_reason(torch.nn.Conv2d(4, 24, 1))                 # (24, 4)
    assert "(24, 4)" in why and "multiples of 16" in why
    assert sparse_gemm_reason(torch.nn.Conv2d(4, 24, 1), align=4) is None


def test_weight_shape_checked():
    conv = torch.nn.Conv2d(4, 8, 3)
    with pytest.raises(ValueError, match=r"\(8, 36\)"):
        Im2colConv2d(conv, weight=torch.zeros(8, 35))
    m = Im2colConv2d(conv, weight=torch.ones(8, 4, 3, 3))  # a kernel is flattened
    assert m.weight.shape == (8, 36) and not m.weight.requires_grad
    assert "kernel_size=(3, 3)" in repr(m)
