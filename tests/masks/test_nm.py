"""k:n masks (ALGORITHMS §7.2, §7.12): validate_nm accepts every magnitude k:n mask and rejects
corrupted ones; groups run along the input axis of the im2col view (§1.7)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from certkit.masks import (
    PAPER_PATTERNS,
    NMMagnitudeMask,
    format_pattern,
    nm_magnitude_mask,
    parse_pattern,
    validate_nm,
)
from certkit.testing.strategies import nm_masks


def _weight(rows, groups, n, seed, *, tied=False):
    g = torch.Generator().manual_seed(seed)
    if tied:
        return torch.randint(-1, 2, (rows, groups * n), generator=g).to(torch.float64)
    return torch.randn(rows, groups * n, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("k,n", PAPER_PATTERNS)
@given(rows=st.integers(1, 4), groups=st.integers(1, 3), seed=st.integers(0, 10_000),
       tied=st.booleans())
def test_nm_magnitude_passes_validation_and_keeps_the_largest(k, n, rows, groups, seed, tied):
    W = _weight(rows, groups, n, seed, tied=tied)
    keep = nm_magnitude_mask(W, k, n)
    validate_nm(keep, k, n)
    a = W.abs().reshape(rows, groups, n)
    kg = keep.reshape(rows, groups, n)
    for i in range(rows):
        for j in range(groups):
            kept, pruned = a[i, j][kg[i, j]], a[i, j][~kg[i, j]]
            assert kept.min() >= pruned.max()
            # ties at the threshold: the smaller input index is pruned first
            tau = pruned.max()
            idx = torch.arange(n)
            tk, tp = idx[kg[i, j] & (a[i, j] == tau)], idx[~kg[i, j] & (a[i, j] == tau)]
            if len(tk) and len(tp):
                assert tp.max() < tk.min()
    assert torch.equal(keep, nm_magnitude_mask(W.clone(), k, n))  # deterministic


@pytest.mark.parametrize("k,n", PAPER_PATTERNS)
@given(rows=st.integers(1, 4), groups=st.integers(1, 3), seed=st.integers(0, 10_000),
       where=st.integers(0, 10_000), add=st.booleans())
def test_corrupted_mask_is_rejected_naming_row_and_group(k, n, rows, groups, seed, where, add):
    keep = nm_magnitude_mask(_weight(rows, groups, n, seed), k, n)
    flat = keep.reshape(-1).clone()
    candidates = torch.nonzero(~flat if add else flat).reshape(-1)
    pos = int(candidates[where % len(candidates)])
    flat[pos] = add
    bad = flat.reshape(keep.shape)
    row, group = pos // (groups * n), (pos % (groups * n)) // n
    with pytest.raises(ValueError, match=rf"row {row}, group {group} .*keeps {k + (1 if add else -1)}"
                       rf" of {n}, expected {k}"):
        validate_nm(bad, k, n)


@given(nm_masks(st.tuples(st.integers(1, 5), st.sampled_from([4, 8, 12])), n=2, m=4))
def test_validate_nm_accepts_the_exported_strategy(mask):
    validate_nm(mask, 2, 4)


def test_conv_groups_run_along_the_im2col_axis():
    # (C_out=2, C_in=2, 2, 2): row width 8 = c·4 + (y·2 + x); group 1 of row 0 = channel 1
    W = torch.zeros(2, 2, 2, 2)
    W[0, 0] = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    W[0, 1] = torch.tensor([[8.0, 7.0], [6.0, 5.0]])
    W[1] = torch.arange(8.0).reshape(2, 2, 2)
    keep = nm_magnitude_mask(W, 2, 4)
    assert keep.shape == W.shape
    assert keep[0, 0].tolist() == [[False, False], [True, True]]
    assert keep[0, 1].tolist() == [[True, True], [False, False]]
    validate_nm(keep, 2, 4)
    # a mask right per kernel slice but wrong along the flattened rows is rejected
    wrong = torch.zeros(2, 2, 2, 2, dtype=torch.bool)
    wrong[:, 0] = True
    with pytest.raises(ValueError, match="row 0, group 0 .*keeps 4 of 4"):
        validate_nm(wrong, 2, 4)


def test_validate_nm_accepts_numeric_masks_and_sparse_weights():
    W = torch.randn(3, 8)
    keep = nm_magnitude_mask(W, 2, 4)
    validate_nm(keep.to(torch.float32), 2, 4)
    validate_nm(W * keep, 2, 4)


def test_scores_and_default_mask():
    W = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert nm_magnitude_mask(W, 2, 4, scores=torch.tensor([[4.0, 3.0, 2.0, 1.0]])).tolist() == [
        [True, True, False, False]]
    prev = torch.tensor([[True, True, True, False]])
    assert nm_magnitude_mask(W, 2, 4, default_mask=prev).tolist() == [[False, True, True, False]]
    assert NMMagnitudeMask(2, 4).compute_mask(W).tolist() == [[False, False, True, True]]
    assert NMMagnitudeMask.KIND == "k:n"


@pytest.mark.parametrize("k,n", [(4, 4), (5, 4), (0, 4), (1, 1)])
def test_k_not_below_n_is_rejected(k, n):
    with pytest.raises(ValueError, match="k"):
        validate_nm(torch.ones(2, 8, dtype=torch.bool), k, n)
    with pytest.raises(ValueError, match="k"):
        nm_magnitude_mask(torch.ones(2, 8), k, n)


def test_n_not_dividing_the_width_is_rejected():
    with pytest.raises(ValueError, match="width 6 .*n == 4"):
        validate_nm(torch.ones(2, 6, dtype=torch.bool), 2, 4)
    with pytest.raises(ValueError, match="width 147"):
        nm_magnitude_mask(torch.ones(4, 3, 7, 7), 2, 4)
    with pytest.raises(ValueError, match="2 dimensions"):
        validate_nm(torch.ones(8, dtype=torch.bool), 2, 4)


def test_parse_and_format_pattern():
    assert parse_pattern("2:4") == (2, 4)
    assert parse_pattern(" 12 : 16 ") == (12, 16)
    assert parse_pattern((6, 12)) == (6, 12)
    assert format_pattern(8, 16) == "8:16"
    for bad in ("4:4", "2-4", "a:b", "5:4"):
        with pytest.raises(ValueError):
            parse_pattern(bad)
    with pytest.raises(TypeError):
        parse_pattern(2.4)
