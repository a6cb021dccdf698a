"""permute=True: input-channel permutation alignment folded into producers (ALGORITHMS §7.8)."""

import copy

import pytest
import torch

from certkit.masks import MaskSet, build_masks, validate_masks, validate_nm
from certkit.masks import permutation as P
from certkit.masks._modules import get_module

FAST = {"permute_max_iters": 3}


def _randomize(model, seed=0):
    """Random parameters and BN statistics, so every permuted tensor matters (timm zero-inits
    bn2/biases, which would make a broken permutation invisible)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point():
                continue
            r = torch.randn(t.shape, generator=g, dtype=t.dtype)
            if name.endswith("running_var"):
                t.copy_(0.5 + r.abs())
            elif name.endswith(("bn1.weight", "bn2.weight", "bn3.weight")):
                t.copy_(1 + 0.3 * r)
            else:
                t.copy_(t.std().clamp(min=0.02) * r if t.ndim > 1 else 0.1 * r)
    return model.eval()


@pytest.fixture(scope="module")
def vit():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    m = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8)
    return _randomize(m)


@pytest.fixture(scope="module")
def resnet():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    return _randomize(timm.create_model("resnet18", pretrained=False))


@pytest.fixture(scope="module")
def vit_permuted(vit):
    """(permuted copy, its MaskSet): one permutation run shared by several tests."""
    model = copy.deepcopy(vit)
    return model, build_masks(model, "magnitude", pattern="2:4", permute=True, **FAST)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def _kept_abs(model, maskset):
    return {n: float(get_module(model, n).weight.detach().abs()[m].sum())
            for n, m in maskset.masks.items()}


# ----------------------------------------------------------------------------- structure
def test_sites_vit_and_resnet(vit, resnet):
    sites, rejected = P.find_permutation_sites(vit)
    assert sorted(sites) == sorted(f"blocks.{i}.mlp.fc2" for i in range(12)) and not rejected
    s = sites["blocks.0.mlp.fc2"]
    assert s.producer == "blocks.0.mlp.fc1" and s.channelwise == ()  # norm is Identity
    rs, _ = P.find_permutation_sites(resnet)
    assert sorted(rs) == sorted(f"layer{i}.{j}.conv2" for i in range(1, 5) for j in (0, 1))
    assert rs["layer1.0.conv2"].modules == ["layer1.0.conv1", "layer1.0.bn1"]


def test_bottleneck_sites_and_rejections():
    timm = pytest.importorskip("timm")
    from timm.models.resnet import Bottleneck

    blk = Bottleneck(32, 8)
    sites, _ = P.find_permutation_sites(blk)
    assert set(sites) == {"conv2", "conv3"} and sites["conv3"].modules == ["conv2", "bn2"]
    grouped = Bottleneck(32, 8, cardinality=2, base_width=64)  # ResNeXt: conv2 grouped
    sites, rejected = P.find_permutation_sites(grouped)
    assert not sites and "groups" in rejected["conv2"] and "groups" in rejected["conv3"]
    glu = timm.layers.GluMlp(16, 32)  # gated: fc1 width != fc2 width, not matched
    assert P.find_permutation_sites(glu)[0] == {}
    mlp = timm.layers.Mlp(8, 16, act_layer=torch.nn.Softmax)  # softmax couples channels
    sites, rejected = P.find_permutation_sites(mlp)
    assert not sites and "elementwise" in rejected["fc2"]


# ----------------------------------------------------------------------------- (1) function
def test_vit_dense_function_unchanged_and_skips(vit, vit_permuted):
    model, ms = vit_permuted
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y0, y1 = vit(x), model(x)
    assert _rel(y1, y0) <= 1e-5
    assert sorted(ms.permutations) == sorted(f"blocks.{i}.mlp.fc2" for i in range(12))
    assert ms.params["permutation_producers"]["blocks.3.mlp.fc2"] == ["blocks.3.mlp.fc1"]
    skipped = ms.params["permutation_skipped"]
    assert "residual" in skipped["blocks.0.attn.qkv"]
    assert "head" in skipped["blocks.0.attn.proj"]
    assert "residual" in skipped["blocks.0.mlp.fc1"]
    assert "head" in skipped["head"] and "image" in skipped["patch_embed.proj"]
    # weights really moved: fc1 rows and fc2 columns of the original, reordered
    p = ms.permutations["blocks.0.mlp.fc2"]
    assert torch.equal(model.blocks[0].mlp.fc2.weight, vit.blocks[0].mlp.fc2.weight[:, p])
    assert torch.equal(model.blocks[0].mlp.fc1.bias, vit.blocks[0].mlp.fc1.bias[p])


def test_resnet_dense_function_unchanged(resnet):
    model = copy.deepcopy(resnet)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y0 = model(x)
    ms = build_masks(model, "magnitude", pattern="2:4", permute=True,
                     permute_max_iters=1)
    with torch.no_grad():
        y1 = model(x)
    assert _rel(y1, y0) <= 1e-5
    assert ms.permutations and set(ms.permutations) <= set(P.find_permutation_sites(model)[0])
    name = next(iter(ms.permutations))
    blk = model.get_submodule(name.rpartition(".")[0])
    ref = resnet.get_submodule(name.rpartition(".")[0])
    p = ms.permutations[name]
    assert torch.equal(blk.bn1.running_var, ref.bn1.running_var[p])
    assert torch.equal(blk.conv1.weight, ref.conv1.weight[p])
    assert "residual" in ms.params["permutation_skipped"]["layer1.0.conv1"]


def test_float64_bottleneck_exact():
    pytest.importorskip("timm")
    from timm.models.resnet import Bottleneck

    blk = _randomize(Bottleneck(32, 8).double(), seed=3)
    x = torch.randn(2, 32, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y0 = blk(x)
    ms = build_masks(blk, "magnitude", pattern="2:4", permute=True, layers=["conv2", "conv3"])
    with torch.no_grad():
        y1 = blk(x)
    assert set(ms.permutations) == {"conv2", "conv3"}  # conv3 is 1x1: r = 1 path
    assert _rel(y1, y0) <= 1e-12


# ----------------------------------------------------------------------------- (2) score
def test_kept_score_never_worse_on_every_layer(vit, vit_permuted):
    model, ms = vit_permuted
    before = _kept_abs(vit, build_masks(vit, "magnitude", pattern="2:4"))
    after = _kept_abs(model, ms)
    for name in ms.params["permutation_scores"]:
        assert after[name] >= before[name] * (1 - 1e-6)
        sc = ms.params["permutation_scores"][name]
        assert sc["after"] >= sc["before"]
        assert sc["after"] == pytest.approx(after[name], rel=1e-5)
    for name in ms.permutations:
        assert after[name] > before[name]
    for name in set(before) - set(ms.params["permutation_scores"]):  # untouched layers
        assert after[name] == pytest.approx(before[name], rel=1e-6)


def test_constructed_example_strictly_better():
    # big columns 0..3 share one group: identity keeps 2 big + 2 small per row, a permutation
    # can keep all 4 big ones
    W = torch.tensor([[10.0, 9, 8, 7, 1, 2, 3, 4]] * 4)
    res = P.search_permutation(W.abs(), 2, 4, init="identity")
    assert res.score_before == pytest.approx(4 * (19 + 7))
    assert res.score_after == pytest.approx(4 * (10 + 9 + 8 + 7))
    assert P.kept_score(W.abs(), 2, 4, res.perm) == pytest.approx(res.score_after)
    assert sorted(res.perm.tolist()) == list(range(8)) and res.swaps >= 1
    # r > 1 path (3x3 conv, groups straddle channels) also strictly improves here
    Wc = torch.zeros(4, 8, 1, 2)
    Wc[:, :2] = 10.0
    Wc[:, 2:] = torch.arange(1.0, 13.0).reshape(1, 6, 1, 2)
    rc = P.search_permutation(Wc.abs(), 2, 4, seed=0)
    assert rc.strategy == "batched_random_swap" and rc.score_after > rc.score_before


def test_search_properties_random():
    g = torch.Generator().manual_seed(5)
    for shape, (k, n) in [((6, 16), (2, 4)), ((5, 24), (4, 8)), ((4, 8, 3, 3), (2, 4)),
                          ((3, 12, 1, 1), (1, 4)), ((4, 8, 2, 2), (2, 4))]:
        imp = torch.rand(shape, generator=g)
        res = P.search_permutation(imp, k, n)
        assert sorted(res.perm.tolist()) == list(range(shape[1]))
        assert res.score_before == pytest.approx(P.kept_score(imp, k, n))
        assert res.score_after == pytest.approx(P.kept_score(imp, k, n, res.perm))
        assert res.score_after >= res.score_before
    assert P.search_permutation(torch.rand(4, 8, 2, 2), 2, 4).strategy == "none"  # n | r
    big = torch.rand(8, 64, generator=g)  # blocked search (2 shifted passes) stays consistent
    res = P.search_permutation(big, 2, 4, block_size=16)
    assert res.score_after == pytest.approx(P.kept_score(big, 2, 4, res.perm))
    assert res.score_after >= res.score_before
    w12 = torch.rand(6, 120, generator=g)  # 6:12, half-block shift rounded to whole groups
    res = P.search_permutation(w12, 6, 12, block_size=36)
    assert res.score_after == pytest.approx(P.kept_score(w12, 6, 12, res.perm))
    assert res.score_after > res.score_before


# ----------------------------------------------------------------------------- (3) masks
def test_masks_refer_to_permuted_weights(vit_permuted):
    model, ms = vit_permuted
    validate_masks(ms, model)
    for mask in ms.masks.values():
        validate_nm(mask, 2, 4)
    ref = build_masks(model, "magnitude", pattern="2:4")  # recomputed on the permuted model
    assert ref.same_masks(ms)


def test_importance_param_changes_search(vit):
    model = copy.deepcopy(vit)
    name = "blocks.0.mlp.fc2"
    W = model.get_submodule(name).weight.detach()
    imp = torch.ones(W.shape[1])
    imp[:4] = 100.0  # channels 0..3 in one group under the identity: the search splits them
    ms = build_masks(model, "magnitude", pattern="2:4", permute=True,
                     layers=[name], importance={name: imp}, **FAST)
    assert ms.params["permutation_search"]["importance"] == "given"
    p = ms.permutations[name]
    pos = torch.argsort(p)[:4] // 4
    assert len(set(pos.tolist())) >= 2
    with pytest.raises(ValueError, match="shape"):
        build_masks(copy.deepcopy(vit), "magnitude", pattern="2:4", permute=True,
                    layers=[name], importance={name: torch.ones(3)})


# ----------------------------------------------------------------------------- (4)(5) I/O
def test_save_load_roundtrip_and_determinism(vit, vit_permuted, tmp_path):
    a, ma = vit_permuted
    b = copy.deepcopy(vit)
    mb = build_masks(b, "magnitude", pattern="2:4", permute=True, **FAST)
    assert ma == mb
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))
    path = ma.save(tmp_path / "m.safetensors")
    back = MaskSet.load(path)
    assert back == ma and set(back.permutations) == set(ma.permutations)
    for n, p in ma.permutations.items():
        assert torch.equal(back.permutations[n], p) and back.permutations[n].dtype == torch.int64


# ----------------------------------------------------------------------------- (6) bad input
def test_bad_input(vit, tiny_net):
    with pytest.raises(ValueError, match="permute=True needs pattern"):
        build_masks(tiny_net, "magnitude", sparsity=0.5, permute=True)
    # a builder error after permuting leaves the model unchanged
    model = copy.deepcopy(vit)
    with pytest.raises(ValueError, match="not both"):
        build_masks(model, "magnitude", pattern="2:4", sparsity=0.5, permute=True,
                    layers=["blocks.0.mlp.fc2", "blocks.1.mlp.fc2"], **FAST)
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(),
                                                 vit.state_dict().values(), strict=True))
    # no recognised site: nothing permuted, every layer explained
    ms = build_masks(tiny_net, "magnitude", pattern="2:4", permute=True)
    assert ms.permutations == {} and set(ms.params["permutation_skipped"]) == set(
        ["stem", "pw", "fc1", "head"]) | set(ms.params["skipped"])
    with pytest.raises(ValueError, match="init"):
        P.search_permutation(torch.rand(2, 8), 2, 4, init="random")
    with pytest.raises(ValueError, match="perm has"):
        P.kept_score(torch.rand(2, 8), 2, 4, torch.arange(4))
