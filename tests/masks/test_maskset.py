"""MaskSet: sparsity accounting, S/R decomposition, manifest, safetensors round trip, equality."""

import json

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from certkit.masks import MaskSet, build_masks, validate_masks
from certkit.testing.strategies import masks as mask_strategy


def _maskset(net, s=0.5, scope="global"):
    return build_masks(net, "magnitude", sparsity=s, scope=scope)


def test_sparsity_accounting(tiny_net):
    ms = _maskset(tiny_net, 0.5)
    sizes = {n: tiny_net.get_submodule(n).weight.numel() for n in ms.names}
    total = sum(sizes.values())
    assert ms.n_total == total
    assert ms.n_pruned == int(0.5 * total + 0.5)
    assert ms.achieved_sparsity == ms.n_pruned / total
    lw = _maskset(tiny_net, 0.3, scope="layerwise")
    for n, v in lw.layer_sparsity.items():
        assert v == int(0.3 * sizes[n] + 0.5) / sizes[n]
    assert len(ms) == 4 and "fc1" in ms and ms["fc1"].dtype == torch.bool


@given(st.integers(0, 10_000), st.floats(0.0, 0.99))
def test_removed_plus_kept_reconstructs_the_weights(seed, s):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Conv1d(7, 3, 2))
    ms = build_masks(net, "magnitude", sparsity=s)
    R, S = ms.removed(net), ms.kept(net)
    for name in ms.names:
        W = net.get_submodule(name).weight.detach()
        assert torch.equal(S[name] + R[name], W)
        assert not ((S[name] != 0) & (R[name] != 0)).any()  # S ⊙ R = 0
        assert torch.equal(R[name] != 0, (~ms[name]) & (W != 0))


def test_manifest_is_json_and_complete(tiny_net):
    import certkit

    ms = _maskset(tiny_net, 0.4)
    man = json.loads(json.dumps(ms.to_manifest()))
    assert man["method"] == "magnitude"
    assert man["params"]["sparsity"] == 0.4 and man["params"]["scope"] == "global"
    assert man["certkit_version"] == certkit.__version__
    assert man["achieved_sparsity"] == ms.achieved_sparsity
    assert set(man["layers"]) == set(ms.names)
    assert man["layers"]["fc1"]["sparsity"] == ms.layer_sparsity["fc1"]
    assert man["layer_order"] == ms.names


def test_save_load_round_trip(tmp_path, tiny_net):
    pytest.importorskip("safetensors")
    ms = build_masks(tiny_net, "magnitude", pattern="2:4")
    perm = MaskSet(ms.masks, ms.method, ms.params,
                   permutations={"fc1": torch.randperm(16, generator=torch.Generator()
                                                       .manual_seed(1))})
    for original in (ms, perm):
        path = original.save(tmp_path / "sub" / "masks.safetensors")
        assert path.is_file() and (tmp_path / "sub" / "masks.json").is_file()
        loaded = MaskSet.load(path)
        assert loaded == original and loaded.equals(original)
        assert loaded.names == original.names
        assert loaded.params == original.params
        assert loaded.achieved_sparsity == original.achieved_sparsity
        validate_masks(loaded, tiny_net)
    # the header copy of the manifest suffices when the JSON file is gone
    (tmp_path / "sub" / "masks.json").unlink()
    assert MaskSet.load(tmp_path / "sub" / "masks.safetensors") == perm
    with pytest.raises(FileNotFoundError):
        MaskSet.load(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="json"):
        ms.save(tmp_path / "masks.json")


def test_equality_helpers(tiny_net):
    a = _maskset(tiny_net, 0.5)
    b = _maskset(tiny_net, 0.5)
    assert a == b and a.same_masks(b) and not a.mask_differences(b)  # deterministic
    c = _maskset(tiny_net, 0.6)
    assert a != c and not a.same_masks(c)
    diff = a.mask_differences(c)
    assert diff and all(v > 0 for v in diff.values())
    d = MaskSet(a.masks, "magnitude", {**a.params, "note": "x"})
    assert d != a and d.equals(a, check_params=False)
    e = MaskSet({k: v for k, v in a.masks.items() if k != "head"}, "magnitude", a.params)
    assert e.mask_differences(a) == {"head": -1}
    assert a != "not a maskset"


@given(mask_strategy((3, 5)))
def test_any_bool_mask_is_accepted_and_counted(mask):
    ms = MaskSet({"layer": mask}, "custom")
    assert ms.n_pruned == int((~mask).sum())


def test_bad_constructor_inputs():
    with pytest.raises(TypeError, match="bool"):
        MaskSet({"a": torch.ones(2, 2)}, "m")
    with pytest.raises(TypeError, match="method"):
        MaskSet({"a": torch.ones(2, 2, dtype=torch.bool)}, "")
    with pytest.raises(TypeError, match="JSON"):
        MaskSet({"a": torch.ones(2, 2, dtype=torch.bool)}, "m", {"f": object()})
    with pytest.raises(ValueError, match="finite"):
        MaskSet({"a": torch.ones(2, 2, dtype=torch.bool)}, "m", {"x": float("nan")})
    with pytest.raises(ValueError, match="permutation"):
        MaskSet({}, "m", permutations={"a": torch.tensor([0, 0, 2])})
    with pytest.raises(TypeError, match="integer"):
        MaskSet({}, "m", permutations={"a": torch.tensor([0.0, 1.0])})
    assert MaskSet({}, "m", {"t": (1, 2)}).params == {"t": [1, 2]}


def test_decomposition_rejects_a_mismatched_model(tiny_net):
    ms = _maskset(tiny_net)
    other = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no submodule"):
        ms.removed(other)
    bad = MaskSet({"fc1": torch.ones(3, 3, dtype=torch.bool)}, "m")
    with pytest.raises(ValueError, match="shape"):
        bad.kept(tiny_net)
    with pytest.raises(ValueError, match="shape"):
        validate_masks(bad, tiny_net)
