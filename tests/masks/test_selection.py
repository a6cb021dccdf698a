"""Layer selection and layer types (ALGORITHMS §A.1, §1.7, §8.2)."""

import pytest
import torch

from certkit.masks import (
    PRESETS,
    VIT_BLOCK_LINEARS,
    is_depthwise,
    layer_type,
    nm_ineligibility,
    select_layers,
)


def _vit_tiny_weight_count(depth=12, d=192, mlp=768, patch=16, classes=1000):
    block = d * 3 * d + d * d + 2 * d * mlp
    return depth * block + d * 3 * patch * patch + classes * d


def test_vit_tiny_default_selection_is_the_50_tensors_of_table_a1(timm_model):
    m = timm_model("vit_tiny_patch16_224")
    sel = select_layers(m)
    assert len(sel) == 50  # patch_embed.proj + 12 × {qkv, proj, fc1, fc2} + head
    assert sum(mod.weight.numel() for mod in sel.values()) == _vit_tiny_weight_count()
    assert list(sel)[0] == "patch_embed.proj" and list(sel)[-1] == "head"
    assert len(select_layers(m, include_head=False, include_patch_embed=False)) == 48
    blocks = select_layers(m, **PRESETS["vit_blocks"])
    assert len(blocks) == 48 and all(n.startswith("blocks.") for n in blocks)
    assert set(select_layers(m, include_names=VIT_BLOCK_LINEARS)) == set(blocks)
    assert len(select_layers(m, include=("conv",))) == 1
    no_qkv = select_layers(m, exclude_names=("*.qkv",))
    assert len(no_qkv) == 38 and not any(n.endswith("qkv") for n in no_qkv)
    # CAST-2E linear path: Linear with in % n == 0 and out >= n, head included (49)
    assert len(select_layers(m, nm="2:4", **PRESETS["cast_linear"])) == 49


def test_cnn_selection_heads_stems_and_depthwise(timm_model):
    r = timm_model("resnet18")
    sel = select_layers(r)
    assert len(sel) == 21 and "conv1" in sel and "fc" in sel
    assert "fc" not in select_layers(r, include_head=False)
    assert "conv1" not in select_layers(r, include_patch_embed=False)
    assert "conv1" not in select_layers(r, nm="2:4")  # 3·7·7 = 147 not divisible by 4
    c = timm_model("convnext_atto")
    dw = [n for n in select_layers(c, depthwise=True) if n.endswith("conv_dw")]
    assert len(dw) == 12 and all(is_depthwise(c.get_submodule(n)) for n in dw)
    assert not any(n.endswith("conv_dw") for n in select_layers(c))
    assert "head.fc" in select_layers(c) and "head.fc" not in select_layers(c, include_head=False)
    assert "stem.0" not in select_layers(c, include_patch_embed=False)


def test_small_model_without_get_classifier(tiny_net):
    sel = select_layers(tiny_net)
    assert list(sel) == ["stem", "pw", "fc1", "head"]
    assert list(select_layers(tiny_net, depthwise=True)) == ["stem", "dw", "pw", "fc1", "head"]
    assert list(select_layers(tiny_net, include_head=False, include_patch_embed=False)) == [
        "pw", "fc1"]
    assert list(select_layers(tiny_net, include=("linear",))) == ["fc1", "head"]
    assert list(select_layers(tiny_net, nm="2:4")) == ["pw", "fc1", "head"]  # stem: 27 cols


def test_nm_ineligibility_reasons():
    assert nm_ineligibility(torch.nn.Linear(8, 4), 2, 4) is None
    assert "in_features" in nm_ineligibility(torch.nn.Linear(6, 4), 2, 4)
    assert "out_features" in nm_ineligibility(torch.nn.Linear(8, 2), 2, 4)
    assert "depthwise" in nm_ineligibility(torch.nn.Conv2d(8, 8, 3, groups=8), 2, 4)
    assert "grouped" in nm_ineligibility(torch.nn.Conv2d(8, 8, 3, groups=2), 2, 4)
    assert "im2col" in nm_ineligibility(torch.nn.Conv2d(3, 8, 3), 2, 4)
    assert nm_ineligibility(torch.nn.Conv2d(4, 8, 3), 2, 4) is None  # 36 % 4 == 0
    assert nm_ineligibility(torch.nn.Conv2d(3, 8, 4), 2, 4) is None  # 48 % 4 == 0
    assert "out_channels" in nm_ineligibility(torch.nn.Conv2d(4, 2, 1), 2, 4)
    assert "neither" in nm_ineligibility(torch.nn.LayerNorm(8), 2, 4)


def test_empty_selection_raises(tiny_net):
    with pytest.raises(ValueError, match="empty"):
        select_layers(tiny_net, exclude_names=("*",))
    with pytest.raises(ValueError, match="empty"):
        select_layers(torch.nn.Sequential(torch.nn.ReLU()))
    with pytest.raises(ValueError, match="empty"):
        select_layers(tiny_net, include_names=("nothing*",))
    with pytest.raises(ValueError, match="include"):
        select_layers(tiny_net, include=("attention",))
    with pytest.raises(TypeError):
        select_layers("not a model")


@pytest.mark.parametrize("name,module,audit,seb", [
    ("blocks.3.attn.qkv", torch.nn.Linear(4, 12), "attn", "attn"),
    ("blocks.3.attn.proj", torch.nn.Linear(4, 4), "attn", "attn"),
    ("blocks.3.mlp.fc1", torch.nn.Linear(4, 16), "mlp", "mlp"),
    ("layers.0.blocks.1.mlp.fc2", torch.nn.Linear(16, 4), "mlp", "mlp"),
    ("head", torch.nn.Linear(4, 10), "embed/head", "other"),
    ("head.fc", torch.nn.Linear(4, 10), "embed/head", "mlp"),  # §A.1 rule, reproduced literally
    ("fc", torch.nn.Linear(4, 10), "embed/head", "other"),
    ("patch_embed.proj", torch.nn.Conv2d(3, 4, 16), "embed/head", "other"),
    ("conv1", torch.nn.Conv2d(3, 4, 7), "embed/head", "other"),
    ("stem.0", torch.nn.Conv2d(3, 4, 4), "embed/head", "other"),
    ("layer2.0.downsample.0", torch.nn.Conv2d(4, 8, 1), "downsample", "other"),
    ("stages.1.downsample.1", torch.nn.Conv2d(4, 8, 2), "downsample", "other"),
    ("layers.1.downsample.reduction", torch.nn.Linear(16, 8), "downsample", "other"),
    ("layer1.0.conv1", torch.nn.Conv2d(4, 4, 3), "conv", "other"),
    ("stages.0.blocks.0.conv_dw", torch.nn.Conv2d(4, 4, 7, groups=4), "conv", "other"),
    ("layer1.0.conv3", torch.nn.Conv2d(4, 16, 1), "mlp", "other"),  # pointwise
    ("encoder.layer.0.attention.self.query", torch.nn.Linear(4, 4), "attn", "other"),
    ("pre_logits.dense", torch.nn.Linear(4, 4), "other", "other"),
])
def test_layer_type_rules(name, module, audit, seb):
    assert layer_type(name, module) == audit
    assert layer_type(name, module, scheme="seb") == seb


def test_layer_type_of_every_timm_layer_is_known(timm_model):
    for model_name in ("vit_tiny_patch16_224", "resnet18", "convnext_atto"):
        m = timm_model(model_name)
        types = {layer_type(n, mod) for n, mod in select_layers(m, depthwise=True).items()}
        assert "other" not in types, model_name
    with pytest.raises(ValueError, match="scheme"):
        layer_type("x", scheme="five")
