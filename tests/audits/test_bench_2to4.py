"""audits.bench_2to4 / ``certkit bench-2to4``: masks, equivalence, MAC table, CUDA skip row."""

from __future__ import annotations

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audits.bench_2to4 import SKIP_REASON, run_bench  # noqa: E402
from certkit.cli import main  # noqa: E402
from certkit.masks import MaskSet, build_masks  # noqa: E402

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
    assert res["conv_im2col"]["status"] == "not implemented"
    assert res["environment"]["gpu"] is None
    printed = capsys.readouterr().out
    assert "MAC red." in printed and SKIP_REASON in printed


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
