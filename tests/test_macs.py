"""certkit.macs: exact dense / k:n sparse-execution MACs (ALGORITHMS §9.4, paper Table 3)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import certkit  # noqa: E402
from certkit.macs import MacReport, count_macs  # noqa: E402
from certkit.masks import MaskSet, build_masks  # noqa: E402

timm = pytest.importorskip("timm")


def _meta(name: str) -> torch.nn.Module:
    with torch.device("meta"):  # MACs do not depend on weights: no init, no memory
        return timm.create_model(name, pretrained=False)


@pytest.fixture(scope="module")
def vitb():
    return _meta("vit_base_patch16_224")


@pytest.fixture(scope="module")
def r50():
    return _meta("resnet50")


def test_reexported():
    assert certkit.count_macs is count_macs and certkit.MacReport is MacReport
    assert "count_macs" in certkit.__all__ and "MacReport" in certkit.__all__


def test_vitb_analytic_dense(vitb):
    rep = count_macs(vitb)
    assert rep.convention == "vit" and rep.input_shape == (3, 224, 224)
    assert rep.dense_macs == 17_563_828_224
    assert abs(rep.dense_macs / 1e9 - 17.564) < 1e-3
    assert rep.sparse_macs == rep.dense_macs and rep.mac_reduction == 0.0


def test_vitb_tome_and_2to4(vitb):
    tome = count_macs(vitb, tome_r=8)
    assert round(100 * tome.mac_reduction, 2) == 22.81
    assert round(100 * tome.token_reduction, 2) == 22.81
    both = count_macs(vitb, tome_r=8, pattern="2:4")
    assert round(both.sparse_macs / 1e9, 3) == 7.059
    assert round(100 * both.mac_reduction, 2) == 59.81
    assert both.theoretical_speedup == pytest.approx(1 / (1 - both.mac_reduction))
    plain = count_macs(vitb, pattern="2:4")
    assert round(100 * plain.mac_reduction, 1) == 47.6


def test_vitb_hooks(vitb):
    no_attn = count_macs(vitb, convention="hooks", include_attention=False)
    assert round(no_attn.dense_macs / 1e9, 2) == 16.85
    assert not any(r.kind == "attention" for r in no_attn.rows)
    # with the attention matmuls the hook count equals the analytic one, with ToMe too
    assert count_macs(vitb, convention="hooks").dense_macs == 17_563_828_224
    h = count_macs(vitb, convention="hooks", tome_r=8, pattern="2:4")
    a = count_macs(vitb, convention="vit", tome_r=8, pattern="2:4")
    assert h.sparse_macs == pytest.approx(a.sparse_macs) and h.dense_macs == a.dense_macs


def test_resnet50(r50):
    rep = count_macs(r50, pattern="2:4")
    assert rep.convention == "hooks"
    assert round(rep.dense_macs / 1e9, 3) == 4.089
    assert round(100 * rep.mac_reduction, 2) == 48.53
    dense = {r.name: r for r in rep.rows if r.pattern == "dense"}
    assert "conv1" in dense and "fc" in dense  # stem and classifier stay dense


def test_rows_add_up(vitb, r50):
    for rep in (count_macs(vitb, tome_r=8, pattern="2:4"), count_macs(r50, pattern="2:4")):
        assert sum(r.dense_macs for r in rep.rows) == rep.dense_macs
        assert sum(r.sparse_macs for r in rep.rows) == pytest.approx(rep.sparse_macs)
        d = rep.to_dict()
        assert d["dense_macs"] == sum(r["dense_macs"] for r in d["rows"])
        assert sum(v["dense_macs"] for v in d["by_kind"].values()) == rep.dense_macs
        assert "G" in rep.table() and "MAC red." in rep.table()


def test_grouped_and_depthwise_conv():
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, padding=1, groups=4),
                                torch.nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16))
    rep = count_macs(model, (8, 10, 10))
    a, b = rep.rows
    assert a.dense_macs == 16 * 10 * 10 * (8 // 4) * 9 and a.positions == 100
    assert b.dense_macs == 16 * 5 * 5 * 1 * 9
    linear = torch.nn.Sequential(torch.nn.Linear(12, 8))
    assert count_macs(linear, (5, 12)).dense_macs == 5 * 12 * 8  # 5 tokens


def test_sparse_from_maskset():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    ms = build_masks(model, "magnitude", pattern="2:4")
    rep = count_macs(model, (16,), masks=ms)
    assert rep.pattern == "2:4"
    assert rep.dense_macs == 16 * 32 + 32 * 8
    assert rep.sparse_macs == pytest.approx(0.5 * rep.dense_macs)
    # only one layer masked, 4:8
    m4 = MaskSet({"2": torch.ones(8, 32, dtype=torch.bool)}, "manual", {"pattern": "4:8"})
    rep = count_macs(model, (16,), masks=m4)
    assert rep.sparse_macs == pytest.approx(16 * 32 + 0.5 * 32 * 8)
    assert [r.pattern for r in rep.rows] == ["dense", "4:8"]


def test_bad_input(vitb):
    model = torch.nn.Sequential(torch.nn.Linear(16, 8))
    with pytest.raises(ValueError, match="convention"):
        count_macs(model, (16,), convention="flops")
    with pytest.raises(TypeError, match="tome_r"):
        count_macs(vitb, tome_r=2.5)
    with pytest.raises(ValueError, match="tome_r"):
        count_macs(vitb, tome_r=-1)
    with pytest.raises(ValueError, match="no submodule"):
        count_macs(model, (16,), masks=MaskSet({"nope": torch.ones(8, 16, dtype=torch.bool)},
                                              "manual", {"pattern": "2:4"}))
    with pytest.raises(ValueError, match="k:n pattern"):
        count_macs(model, (16,), masks=MaskSet({"0": torch.ones(8, 16, dtype=torch.bool)},
                                              "manual", {}))
    with pytest.raises(ValueError, match="input_shape is required"):
        count_macs(model)
    with pytest.raises(ValueError, match="vit"):
        count_macs(model, (16,), convention="vit")
