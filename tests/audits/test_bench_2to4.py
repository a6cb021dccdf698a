"""audits.bench_2to4 / ``certkit bench-2to4``: masks, equivalence, MAC table, CUDA skip row."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audits.bench_2to4 import LOWERING_RTOL, SKIP_REASON, run_bench  # noqa: E402
from certkit.cli import main  # noqa: E402
from certkit.masks import MaskSet, build_masks  # noqa: E402
from certkit.masks.nm import nm_magnitude_mask  # noqa: E402

pytest.importorskip("timm")

MODEL = "deit_tiny_patch16_224"
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU skip path")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="2:4 semi-structured kernels need a CUDA GPU")


@no_cuda
def test_cli_cpu_skip_row(tmp_path, capsys):
    out = tmp_path / "b.json"
    rc = main(["bench-2to4", "--model", MODEL, "--img-size", "32", "--batch", "1", "4",
               "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    res = json.loads(text)
    assert list(res) == sorted(res)  # sorted keys
    assert res["skip"]["reason"] == SKIP_REASON == (
        "2:4 timing needs a CUDA GPU (torch.cuda.is_available() is False)")
    assert res["skip"]["speedup"] is None and res["skip"]["dense_throughput"] is None
    for row in res["shape_rows"] + res["end_to_end_rows"]:
        assert row["status"] == "skipped" and row["reason"] == SKIP_REASON
        assert row["dense_ms"] is None and row["sparse_ms"] is None and row["speedup"] is None
    assert res["shape_rows"] and res["end_to_end_rows"]
    assert res["mask_validation"]["all_valid"]
    assert all(v["valid"] for v in res["mask_validation"]["layers"].values())
    assert res["equivalence"]["passed"] and res["equivalence"]["max_abs_diff"] <= 1e-5
    macs = res["macs"]
    assert macs["pattern"] == "2:4" and macs["dense_macs"] > macs["sparse_macs"] > 0
    assert sum(r["dense_macs"] for r in macs["rows"]) == macs["dense_macs"]
    cv = res["conv_im2col"]  # DeiT's only masked conv is the 3-channel patch embedding
    assert cv["status"] == "skipped" and cv["groups"] == 0 and "no eligible conv" in cv["reason"]
    assert [r["layers"] for r in cv["rows"]] == [["patch_embed.proj"]]
    assert cv["rows"][0]["reason"] == "C_in == 3 < 4" and cv["rows"][0]["speedup"] is None
    assert res["environment"]["gpu"] is None
    printed = capsys.readouterr().out
    assert "MAC red." in printed and SKIP_REASON in printed


CONV_NULLS = ("dense_ms", "sparse_ms", "cudnn_ms", "speedup", "speedup_vs_cudnn",
              "dense_throughput", "sparse_throughput", "cudnn_throughput")


@no_cuda
def test_cli_cpu_conv_im2col_rows(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["bench-2to4", "--model", "resnet18", "--img-size", "64", "--batch", "1", "8",
               "--dtype", "fp16", "--out", str(out)])
    assert rc == 0
    cv = json.loads(out.read_text())["conv_im2col"]
    assert cv["status"] == "skipped" and cv["reason"] == SKIP_REASON and cv["best"] is None
    # per-conv eligibility: every masked conv of resnet18 (the 3-channel stem is not masked)
    assert len(cv["layers"]) == 19 and all(v["eligible"] and v["reason"] is None
                                           for v in cv["layers"].values())
    l20 = cv["layers"]["layer2.0.conv1"]
    assert l20["matrix"] == [128, 576] and l20["stride"] == [2, 2] and l20["padding"] == [1, 1]
    assert l20["input_hw"] == [16, 16] and l20["output_hw"] == [8, 8]
    # deduplicated problems: layer1's four 64x64x3x3 convs share one
    assert cv["groups"] == 10
    assert len(cv["rows"]) == cv["groups"] * 2  # x 1 dtype x 2 batches
    for r in cv["rows"]:
        assert r["status"] == "skipped" and r["reason"] == SKIP_REASON
        assert all(r[k] is None for k in CONV_NULLS)
    assert any(r["layers"] == ["layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1",
                               "layer1.1.conv2"] for r in cv["rows"])
    # the exact lowering is still checked on CPU (float64) for every problem
    assert len(cv["lowering_checks"]) == 10
    assert all(c["passed"] and c["max_abs_diff"] <= LOWERING_RTOL * c["scale"]
               for c in cv["lowering_checks"])
    printed = capsys.readouterr().out
    assert "conv im2col endpoint: skipped" in printed and "10/10 passed" in printed


@no_cuda
def test_no_conv_flag(tmp_path):
    out = tmp_path / "r.json"
    assert main(["bench-2to4", "--model", "resnet18", "--img-size", "32", "--batch", "2",
                 "--no-conv", "--out", str(out)]) == 0
    cv = json.loads(out.read_text())["conv_im2col"]
    assert cv["status"] == "disabled" and cv["rows"] == [] and len(cv["layers"]) == 19


class _TinyCNN(torch.nn.Module):
    """Eligible and ineligible convs side by side (input 16x8x8)."""

    pretrained_cfg = {"input_size": (16, 8, 8)}

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.ok = nn.Conv2d(16, 32, 3, padding=1, bias=True)
        self.ok_same = nn.Conv2d(32, 32, 3, padding="same", dilation=2)
        self.grouped = nn.Conv2d(32, 32, 3, padding=1, groups=2)
        self.reflect = nn.Conv2d(32, 32, 3, padding=1, padding_mode="reflect")
        self.even_same = nn.Conv2d(32, 32, 4, padding="same")
        self.narrow = nn.Conv2d(32, 24, 1)       # matrix (24, 32): rows not a multiple of 16
        self.bad_mask = nn.Conv2d(24, 32, 1)     # matrix (32, 24): 24 not a multiple of 16 ...
        self.bad_mask16 = nn.Conv2d(32, 16, 1)   # ... this one is eligible but its mask is broken
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        x = self.even_same(self.reflect(self.grouped(self.ok_same(self.ok(x)))))
        x = self.bad_mask16(self.bad_mask(self.narrow(x)))
        return self.fc(x.mean((2, 3)))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_conv_eligibility_and_skip_reasons():
    torch.manual_seed(0)
    model = _TinyCNN().eval()
    masks = {nm: nm_magnitude_mask(m.weight.detach(), 2, 4) for nm, m in model.named_modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    bad = masks["bad_mask16"].clone()
    bad[0, :4] = True  # 4 of 4 kept
    masks["bad_mask16"] = bad
    res = run_bench("tiny", model=model, maskset=MaskSet(masks, "magnitude", {}), batches=[2],
                    dtypes=["bf16"], repeats=1, warmup=0, end_to_end=False, shapes=False)
    cv = res["conv_im2col"]
    lay = cv["layers"]
    assert lay["ok"]["eligible"] and lay["ok_same"]["eligible"]
    assert lay["ok_same"]["padding"] == [2, 2]
    expect = {"grouped": "groups == 2", "reflect": "padding_mode == 'reflect'",
              "even_same": "even receptive field", "narrow": "(24, 32)",
              "bad_mask": "(32, 24)", "bad_mask16": "invalid mask"}
    rows = {r["layers"][0]: r for r in cv["rows"] if r["batch"] is None}
    assert set(rows) == set(expect)
    for nm, frag in expect.items():
        assert not lay[nm]["eligible"] and frag in lay[nm]["reason"]
        assert frag in rows[nm]["reason"] and all(rows[nm][k] is None for k in CONV_NULLS)
        assert rows[nm]["status"] == ("aborted" if nm == "bad_mask16" else "skipped")
    assert cv["groups"] == 2 and all(c["passed"] for c in cv["lowering_checks"])
    timed = [r for r in cv["rows"] if r["batch"] is not None]
    assert {r["layers"][0] for r in timed} == {"ok", "ok_same"}
    if not torch.cuda.is_available():
        assert all(r["status"] == "skipped" and r["reason"] == SKIP_REASON for r in timed)


def test_corrupted_mask_aborts_row():
    import timm

    torch.manual_seed(0)
    model = timm.create_model(MODEL, pretrained=False, img_size=32).eval()
    ms = build_masks(model, "magnitude", pattern="2:4")
    masks = dict(ms.masks)
    bad = masks["blocks.0.mlp.fc1"].clone()
    bad[0, :4] = torch.tensor([True, True, True, False])  # 3 of 4 kept
    masks["blocks.0.mlp.fc1"] = bad
    res = run_bench(MODEL, model=model, maskset=MaskSet(masks, "magnitude", ms.params),
                    img_size=32, batches=[2], dtypes=["fp16"], repeats=1, warmup=0)
    v = res["mask_validation"]
    assert not v["all_valid"] and not v["layers"]["blocks.0.mlp.fc1"]["valid"]
    assert "keeps 3 of 4" in v["layers"]["blocks.0.mlp.fc1"]["error"]
    fc1 = [r for r in res["shape_rows"] if "blocks.0.mlp.fc1" in r["layers"]]
    assert fc1 and all(r["status"] == "aborted" and "invalid mask" in r["reason"]
                       and r["speedup"] is None for r in fc1)
    others = [r for r in res["shape_rows"] if "blocks.0.mlp.fc1" not in r["layers"]]
    assert others and all(r["status"] != "aborted" for r in others)
    assert all(r["status"] == "aborted" for r in res["end_to_end_rows"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="2:4 only"):
        run_bench(MODEL, pattern="4:8", img_size=32)
    with pytest.raises(ValueError, match="dtype"):
        run_bench(MODEL, dtypes=["fp32"], img_size=32)
    assert main(["bench-2to4", "--model", MODEL, "--img-size", "32", "--pattern", "1:4"]) == 1


@needs_cuda
def test_gpu_shape_rows_checked_and_timed(tmp_path):
    res = run_bench(MODEL, batches=[64], dtypes=["fp16"], repeats=3, warmup=1,
                    end_to_end=True)
    assert res["environment"]["gpu"] and res["skip"] is None
    for row in res["shape_rows"] + res["end_to_end_rows"]:
        assert row["status"] in {"ok", "skipped", "aborted"}
        if row["status"] == "ok":
            assert row["speedup"] > 0 and row["dense_ms"] > 0 and row["sparse_ms"] > 0
        else:
            assert row["speedup"] is None and row["reason"]


@needs_cuda
def test_gpu_conv_im2col_rows_checked_and_timed():
    res = run_bench("resnet18", img_size=64, batches=[8], dtypes=["fp16"], repeats=3, warmup=1,
                    shapes=False, end_to_end=False)
    cv = res["conv_im2col"]
    assert cv["rows"] and cv["status"] in {"ok", "skipped"}
    for r in cv["rows"]:
        assert r["status"] in {"ok", "skipped", "aborted"}
        if r["status"] == "ok":
            assert r["reason"] is None and r["backend"] in {"cusparselt", "cutlass"}
            assert min(r["dense_ms"], r["sparse_ms"], r["cudnn_ms"]) > 0
            assert r["speedup"] == pytest.approx(r["dense_ms"] / r["sparse_ms"])
            assert r["speedup_vs_cudnn"] == pytest.approx(r["cudnn_ms"] / r["sparse_ms"])
            assert r["max_abs_err"] >= 0  # checked against OUTPUT_RTOL before timing
        else:
            assert r["speedup"] is None and r["reason"]
