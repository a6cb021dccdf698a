"""Exact-count magnitude masks (ALGORITHMS §2.1, §2.2, §A.2): counts, order, ties, determinism."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from certkit.masks import (
    MagnitudeMask,
    exact_prune_mask,
    global_magnitude_masks,
    layerwise_magnitude_masks,
    magnitude_mask,
    n_prune_for_sparsity,
)
from certkit.testing.strategies import weight_matrices

sparsities = st.floats(0.0, 0.999, allow_nan=False)


def _tied(rows, cols, seed, levels=3):
    """Weights with many exact ties (and zeros): values in {0, ±1, ..., ±(levels-1)}."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-(levels - 1), levels, (rows, cols), generator=g).to(torch.float64)


def _check_order(W, keep, n_prune):
    """Exact count; every kept |w| >= every pruned |w|; among equal |w| at the threshold the
    pruned ones have smaller flat indices than the kept ones."""
    assert keep.dtype == torch.bool and keep.shape == W.shape
    assert int((~keep).sum()) == n_prune
    a = W.abs().reshape(-1)
    k = keep.reshape(-1)
    if 0 < n_prune < a.numel():
        assert a[k].min() >= a[~k].max()
        tau = a[~k].max()
        tie_kept = torch.nonzero(k & (a == tau)).reshape(-1)
        tie_pruned = torch.nonzero(~k & (a == tau)).reshape(-1)
        if len(tie_kept) and len(tie_pruned):
            assert tie_pruned.max() < tie_kept.min()


def test_n_prune_rounds_half_up_and_validates():
    assert n_prune_for_sparsity(0.5, 5) == 3  # 2.5 -> 3 (Python's round would give 2)
    assert n_prune_for_sparsity(0.0, 7) == 0
    assert n_prune_for_sparsity(0.3, 10) == 3
    for bad in (-0.1, 1.0, 1.5, math.nan):
        with pytest.raises(ValueError):
            n_prune_for_sparsity(bad, 10)
    with pytest.raises(TypeError):
        n_prune_for_sparsity(True, 10)


@given(weight_matrices(max_rows=6, max_cols=7), sparsities)
def test_single_tensor_exact_count_and_order(W, s):
    keep = magnitude_mask(W, s)
    _check_order(W, keep, n_prune_for_sparsity(s, W.numel()))
    assert torch.equal(keep, magnitude_mask(W.clone(), s))  # deterministic


@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 10_000), sparsities)
def test_ties_are_broken_by_flat_index(rows, cols, seed, s):
    W = _tied(rows, cols, seed)
    keep = magnitude_mask(W, s)
    _check_order(W, keep, n_prune_for_sparsity(s, W.numel()))


def test_all_equal_weights_prune_the_first_indices():
    keep = magnitude_mask(torch.ones(2, 5), 0.4)
    assert keep.reshape(-1).tolist() == [False] * 4 + [True] * 6


@given(st.lists(weight_matrices(max_rows=4, max_cols=5), min_size=1, max_size=4), sparsities)
def test_global_exact_count_and_order(Ws, s):
    weights = {f"l{i}": W for i, W in enumerate(Ws)}
    masks = global_magnitude_masks(weights, s)
    assert list(masks) == list(weights)
    W_all = torch.cat([W.reshape(-1) for W in Ws])
    keep_all = torch.cat([masks[n].reshape(-1) for n in weights])
    _check_order(W_all, keep_all, n_prune_for_sparsity(s, W_all.numel()))
    for n, W in weights.items():
        assert masks[n].shape == W.shape


@given(st.integers(0, 10_000), sparsities)
def test_global_ties_across_layers_follow_concatenation_order(seed, s):
    weights = {"a": _tied(3, 4, seed), "b": _tied(2, 3, seed + 1)}
    masks = global_magnitude_masks(weights, s)
    W_all = torch.cat([w.reshape(-1) for w in weights.values()])
    keep_all = torch.cat([m.reshape(-1) for m in masks.values()])
    _check_order(W_all, keep_all, n_prune_for_sparsity(s, W_all.numel()))


@given(st.lists(weight_matrices(max_rows=4, max_cols=5), min_size=1, max_size=3), sparsities)
def test_layerwise_exact_count_per_layer(Ws, s):
    weights = {f"l{i}": W for i, W in enumerate(Ws)}
    masks = layerwise_magnitude_masks(weights, s)
    for n, W in weights.items():
        _check_order(W, masks[n], n_prune_for_sparsity(s, W.numel()))


def test_already_zero_entries_are_pruned_first_even_with_external_scores():
    W = torch.tensor([[0.0, 5.0, 1.0, 0.0, 2.0, 3.0]])
    scores = torch.tensor([[9.0, 1.0, 2.0, 8.0, 3.0, 4.0]])
    keep = magnitude_mask(W, 0.5, scores=scores)
    # zeros (indices 0, 3) first, then the lowest score (index 1)
    assert keep.tolist() == [[False, False, True, False, True, True]]


def test_default_mask_composes_and_counts_towards_the_target():
    W = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    prev = torch.tensor([[False, True, True, True]])  # the largest weight was pruned before
    keep = MagnitudeMask(sparsity=0.5).compute_mask(W, default_mask=prev)
    assert keep.tolist() == [[False, True, True, False]]
    g = global_magnitude_masks({"a": W}, 0.5, default_masks={"a": prev})
    assert torch.equal(g["a"], keep)


def test_cumulative_pruning_keeps_earlier_zeros():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(8, 8, generator=g)
    m1 = magnitude_mask(W, 0.3)
    m2 = magnitude_mask(W * m1, 0.6)
    assert not (m2 & ~m1).any()
    assert int((~m2).sum()) == n_prune_for_sparsity(0.6, 64)


def test_n_prune_and_boundaries():
    W = torch.arange(1.0, 7.0).reshape(2, 3)
    assert MagnitudeMask(n_prune=2).compute_mask(W).reshape(-1).tolist() == [
        False, False, True, True, True, True]
    assert magnitude_mask(W, 0.0).all()
    assert exact_prune_mask(W, 6).sum() == 0
    with pytest.raises(ValueError, match="n_prune"):
        MagnitudeMask(n_prune=7).compute_mask(W)


def test_float16_and_bfloat16_weights():
    W = torch.tensor([[1.0, -3.0, 2.0, 0.5]], dtype=torch.bfloat16)
    assert magnitude_mask(W, 0.5).tolist() == [[False, True, True, False]]
    assert magnitude_mask(W.to(torch.float16), 0.5).tolist() == [[False, True, True, False]]


@pytest.mark.parametrize("bad", [-0.01, 1.0, 2.0, float("nan"), float("inf")])
def test_sparsity_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValueError, match="sparsity"):
        MagnitudeMask(sparsity=bad)
    with pytest.raises(ValueError, match="sparsity"):
        global_magnitude_masks({"a": torch.ones(2, 2)}, bad)


def test_bad_inputs():
    with pytest.raises(ValueError, match="exactly one"):
        MagnitudeMask()
    with pytest.raises(ValueError, match="exactly one"):
        MagnitudeMask(sparsity=0.5, n_prune=1)
    with pytest.raises(ValueError, match="NaN"):
        magnitude_mask(torch.tensor([[1.0, float("nan")]]), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        magnitude_mask(torch.ones(1, 2), 0.5, scores=torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match="shape"):
        magnitude_mask(torch.ones(2, 2), 0.5, scores=torch.ones(4))
    with pytest.raises(TypeError, match="bool"):
        magnitude_mask(torch.ones(2, 2), 0.5, default_mask=torch.ones(2, 2))
    with pytest.raises(TypeError, match="floating"):
        magnitude_mask(torch.ones(2, 2, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="empty"):
        global_magnitude_masks({}, 0.5)
