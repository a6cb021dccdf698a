"""Every k:n output passes validate_nm on every eligible layer of real timm architectures
(random init; masks only, no forward) — issue 4 test list, ALGORITHMS §7.2, §7.12."""

import pytest

from certkit.masks import (
    PAPER_PATTERNS,
    build_masks,
    format_pattern,
    nm_ineligibility,
    select_layers,
    validate_masks,
    validate_nm,
)

from .conftest import TIMM_MODELS


@pytest.mark.parametrize("model_name", TIMM_MODELS)
def test_every_pattern_on_every_eligible_layer(timm_model, model_name):
    model = timm_model(model_name)
    everything = select_layers(model)
    for k, n in PAPER_PATTERNS:
        pattern = format_pattern(k, n)
        ms = build_masks(model, "magnitude", pattern=pattern)
        eligible = select_layers(model, nm=pattern)
        assert list(ms.masks) == list(eligible), (model_name, pattern)
        for name, mask in ms.masks.items():
            validate_nm(mask, k, n)
            assert mask.shape == model.get_submodule(name).weight.shape
        # ineligible layers are skipped with a reason, never given an invalid mask
        skipped = ms.params["skipped"]
        assert set(skipped) == set(everything) - set(eligible)
        for name, reason in skipped.items():
            assert reason == nm_ineligibility(everything[name], k, n)
        validate_masks(ms, model)
        assert ms.params["pattern"] == pattern
        assert ms.achieved_sparsity == pytest.approx(1 - k / n, abs=1e-12)


def test_expected_skips(timm_model):
    vit = build_masks(timm_model("vit_tiny_patch16_224"), "magnitude", pattern="2:4")
    assert vit.params["skipped"] == {} and len(vit) == 50
    rn = build_masks(timm_model("resnet18"), "magnitude", pattern="2:4")
    assert list(rn.params["skipped"]) == ["conv1"]  # 3·7·7 = 147
    cn = build_masks(timm_model("convnext_atto"), "magnitude", pattern="12:16")
    assert "stem.0" not in cn.params["skipped"]  # 3·4·4 = 48 = 3·16
    assert "head.fc" in cn.masks


@pytest.mark.parametrize("model_name", TIMM_MODELS)
def test_cast_2_4_is_valid_on_every_eligible_layer(timm_model, model_name):
    """CAST 2:4 (data-aware, ALGORITHMS §7) on real timm architectures: every output layer
    passes validate_nm and every other selected layer is skipped with a reason."""
    import torch

    model = timm_model(model_name)
    calib = [torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))]
    ms = build_masks(model, "cast", calibration=calib, pattern="2:4")
    assert ms.masks
    for name, mask in ms.masks.items():
        validate_nm(mask, 2, 4)
        assert mask.shape == model.get_submodule(name).weight.shape
    assert set(ms.masks).isdisjoint(ms.params["skipped"])
    validate_masks(ms, model)
