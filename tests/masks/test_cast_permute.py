"""CAST with permute=True: free restoration from dense weights given in original coordinates."""

import copy

import pytest
import torch

from certkit.masks import build_masks, validate_nm
from certkit.masks import cast as C
from certkit.masks.build import permute_dense

OPTS = {"permute_max_iters": 2, "dtype": torch.float64}


@pytest.fixture(scope="module")
def setup():
    """(dense model, sparse source model, dense state dict, calibration)."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    dense = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                              patch_size=8, depth=2).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random biases/LN params so every permuted tensor matters
        for name, p in dense.named_parameters():
            if p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g) + (1.0 if "norm" in name
                                                                    and name.endswith("weight")
                                                                    else 0.0))
    state = {k: v.detach().clone() for k, v in dense.state_dict().items()}
    source = copy.deepcopy(dense)
    with torch.no_grad():  # unstructured 50% magnitude source: zeros to restore into
        for m in source.modules():
            if isinstance(m, torch.nn.Linear):
                w = m.weight
                w.mul_(w.abs() > w.abs().flatten().median())
    calib = [torch.randn(4, 3, 32, 32, generator=g) for _ in range(2)]
    return dense, source, state, calib


def test_dense_mapped_through_permutation(setup):
    dense, source, state, calib = setup
    model = copy.deepcopy(source)
    ms = build_masks(model, "cast", calibration=calib, pattern="2:4", permute=True,
                     dense=state, **OPTS)
    assert ms.permutations, "the search should permute at least one fc2"
    assert ms.params["dense_permuted"] is True
    for mask in ms.masks.values():
        validate_nm(mask, 2, 4)
    pdense = permute_dense(state, ms, model)
    # the mapped dense weights are the original ones permuted like the model
    for c, perm in ms.permutations.items():
        prod = ms.params["permutation_producers"][c][0]
        assert torch.equal(pdense[f"{c}.weight"], state[f"{c}.weight"][:, perm])
        assert torch.equal(pdense[f"{prod}.weight"], state[f"{prod}.weight"][perm])
        assert torch.equal(pdense[f"{prod}.bias"], state[f"{prod}.bias"][perm])
        assert not torch.equal(perm, torch.arange(perm.numel()))
    # restored slots (kept, source zero) carry the permuted original dense values
    values = C.cast_values(model, ms, pdense)
    n_restored = 0
    for name, v in values.items():
        w = model.get_submodule(name).weight.detach()
        mask = ms.masks[name]
        restored = mask & (w == 0)
        ref = pdense[f"{name}.weight"]
        assert torch.equal(v[restored], ref[restored])
        assert torch.equal(v[mask & (w != 0)], w[mask & (w != 0)])
        n_restored += int(restored.sum())
        assert ms.params["restored"][name] == int((restored & (ref != 0)).sum())
    assert n_restored > 0
    permuted_layers = [c for c in ms.permutations] + [
        ms.params["permutation_producers"][c][0] for c in ms.permutations]
    assert any(ms.params["restored"][nm] > 0 for nm in permuted_layers)
    # same masks as CAST run directly on the permuted model with hand-permuted dense weights
    direct = build_masks(model, "cast", calibration=calib, pattern="2:4",
                         layers=list(ms.masks), dense=pdense, dtype=torch.float64)
    for name in ms.masks:
        assert torch.equal(direct.masks[name], ms.masks[name]), name
    # the dense model with the mapped weights is the same function
    permuted_dense = copy.deepcopy(dense)
    permuted_dense.load_state_dict(pdense)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref, out = dense(x), permuted_dense(x)
    assert float((out - ref).abs().max() / ref.abs().max()) <= 1e-5


def test_permute_dense_module_and_alias(setup):
    dense, source, state, calib = setup
    model = copy.deepcopy(source)
    ms = build_masks(model, "cast", calibration=calib, pattern="2:4", permute=True,
                     dense=dense, **OPTS)  # dense as a module, original coordinates
    pd = permute_dense(dense, ms)
    for c, perm in ms.permutations.items():
        assert torch.equal(pd[c], state[f"{c}.weight"][:, perm])
    ref = build_masks(copy.deepcopy(source), "cast", calibration=calib, pattern="2:4",
                      permute=True, dense=state, **OPTS)
    for name in ms.masks:
        assert torch.equal(ms.masks[name], ref.masks[name])
    assert permute_dense(model, ms, model) is model  # already permuted in place
    alias = dict(model.named_parameters())
    mapped = permute_dense(alias, ms, model)
    for c in ms.permutations:
        assert mapped[f"{c}.weight"] is alias[f"{c}.weight"]
    assert permute_dense(None, ms) is None
    with pytest.raises(TypeError, match="dense"):
        permute_dense([1, 2], ms)
