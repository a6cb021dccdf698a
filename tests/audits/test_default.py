"""The embedded default of ``certkit audit``: cached digits ViT and its four variants."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("sklearn")
pytest.importorskip("safetensors")

from audits import default as D  # noqa: E402
from audits.variants import decomposition_kind  # noqa: E402
from certkit.masks import validate_nm  # noqa: E402
from certkit.masks._modules import dense_weight, get_module  # noqa: E402

#: Caching tests: one block, narrow, two epochs (~1 s to train).
TINY = {"epochs": 2, "embed_dim": 40, "depth": 1, "num_heads": 2}
#: Accuracy / variant tests: two narrower blocks, 20 epochs (~5 s, ~92 % test accuracy).
SHORT = {"epochs": 20, "embed_dim": 40, "depth": 2, "num_heads": 2}


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return D.default_model(cache=tmp_path_factory.mktemp("cache"), config=SHORT)


@pytest.fixture(scope="module")
def variants(trained):
    model, _ = trained
    before = _state(model)
    calib_x, _ = D.default_calibration(64).load(range(64))     # as the audit engine passes it
    out = D.default_variants(model, calib_x=calib_x, config=SHORT, threads=1)
    return model, before, out


# ---------------------------------------------------------------------------- config / cache
def test_config_and_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(D.CACHE_ENV, str(tmp_path / "c"))
    assert D.cache_dir() == tmp_path / "c"
    monkeypatch.delenv(D.CACHE_ENV)
    assert D.cache_dir() == Path.home() / ".cache" / "certkit"
    assert D.config_hash() == D.config_hash(dict(D.DEFAULT_CONFIG))
    assert D.config_hash({"epochs": 3}) != D.config_hash()
    assert D.config_hash({"ft_epochs": 5}) == D.config_hash()   # variants only: same weights
    assert D.cache_path(tmp_path).parent == tmp_path / "audit-default"
    with pytest.raises(ValueError, match="unknown config"):
        D.default_model(cache=tmp_path, config={"epoch": 3})
    with pytest.raises(ValueError, match="decoupled"):
        D.default_model(cache=tmp_path, config={"optimizer": "adamw"})


def test_second_call_loads_identical_weights(tmp_path):
    m1, i1 = D.default_model(cache=tmp_path, config=TINY)
    folder = D.cache_path(tmp_path, TINY)
    assert not i1["loaded_from_cache"]
    assert (folder / "model.safetensors").is_file() and (folder / "info.json").is_file()
    assert i1["cache_path"] == str(folder / "model.safetensors")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m2, i2 = D.default_model(cache=tmp_path, config=TINY)
    assert i2["loaded_from_cache"]
    assert _same(_state(m1), _state(m2))
    assert i2["test_accuracy"] == i1["test_accuracy"]
    for m, info in ((m1, i1), (m2, i2)):
        assert not m.training
        assert all(p.dtype == torch.float32 for p in m.parameters())
        assert info["source"] == "embedded-default" and info["name"] == D.MODEL_NAME
        assert info["optimizer"] == "sgd"
        assert info["lambda2"] == pytest.approx(info["weight_decay"] / 2)
        assert info["lambda1"] == 0.0
        assert info["config"]["epochs"] == 2
        assert len(info["layers"]) == 4       # qkv, proj, fc1, fc2 of the one block
    _, i3 = D.default_model(cache=tmp_path, config=TINY, retrain=True)
    assert not i3["loaded_from_cache"]


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "no_record", "garbage"])
def test_corrupt_cache_is_retrained(tmp_path, damage):
    m1, _ = D.default_model(cache=tmp_path, config=TINY)
    folder = D.cache_path(tmp_path, TINY)
    path = folder / "model.safetensors"
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip_byte":                  # still parseable: only the hash catches it
        path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))
    elif damage == "no_record":
        (folder / "info.json").unlink()
    else:
        path.write_bytes(b"not a safetensors file")
    with pytest.warns(RuntimeWarning, match="incomplete or corrupt"):
        m2, i2 = D.default_model(cache=tmp_path, config=TINY)
    assert not i2["loaded_from_cache"]
    assert _same(_state(m1), _state(m2))        # deterministic retraining
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, i3 = D.default_model(cache=tmp_path, config=TINY)   # the cache is valid again
    assert i3["loaded_from_cache"]
    assert json.loads((folder / "info.json").read_text())["config_hash"] == folder.name


def test_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    import audits.default as mod

    def crash(fd):  # the bytes are written to the temporary file, the rename never happens
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(mod.os, "fsync", crash)
    with pytest.warns(RuntimeWarning, match="could not write"):
        model, info = D.default_model(cache=tmp_path, config=TINY)
    assert not info["loaded_from_cache"] and not model.training
    folder = D.cache_path(tmp_path, TINY)
    assert sorted(p.name for p in folder.iterdir()) == []      # no model, no temporary file
    monkeypatch.undo()
    _, i2 = D.default_model(cache=tmp_path, config=TINY)
    assert not i2["loaded_from_cache"]
    assert sorted(p.name for p in folder.iterdir()) == ["info.json", "model.safetensors"]


def test_threads_and_rng_of_the_caller_are_kept(tmp_path):
    n0 = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    D.default_model(cache=tmp_path, config=TINY, threads=1)
    assert torch.get_num_threads() == n0
    assert torch.equal(torch.rand(3), expected)
    with pytest.raises(ValueError, match="threads"):
        D.default_model(cache=tmp_path, config=TINY, retrain=True, threads=0)


# ---------------------------------------------------------------------------- model / variants
def test_default_model_accuracy(trained):
    model, info = trained
    assert info["test_accuracy"] >= 0.9, info["test_accuracy"]
    assert info["n_test"] == 450 and info["n_train"] == 1347


def test_variants_order_and_model_unchanged(variants):
    model, before, out = variants
    assert [v.name for v in out] == ["cast-2:4", "cast-2:4+ft", "hybrid-ser-0.5",
                                     "hybrid-ser-0.5+ft"]
    assert _same(before, _state(model))
    layers = [f"blocks.{i}.{n}" for i in range(SHORT["depth"])
              for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")]
    for v in out:
        assert sorted(v.layers) == sorted(layers)


def test_mask_variants_are_exact_mask_decompositions(variants):
    model, _, out = variants
    for v in (out[0], out[2]):
        assert v.masks is not None
        kept = sum(int(m.sum()) for m in v.masks.values())
        total = sum(m.numel() for m in v.masks.values())
        assert kept == total // 2                      # exactly 50 % over the block linears
        for n, S in v.weights.items():
            A = dense_weight(get_module(model, n))
            M = v.masks[n]
            assert torch.equal(S, torch.where(M, A, torch.zeros_like(A)))
            assert decomposition_kind(A, S, M) == "mask"
    for m in out[0].masks.values():
        validate_nm(m, 2, 4)                           # raises unless every group is 2:4
    assert out[0].splits is None


def test_hybrid_splits_sum_to_dense(variants):
    model, _, out = variants
    v = out[2]
    assert v.splits is not None and set(v.splits) == set(v.weights)
    n_q = 0
    for n, (S, Q, P) in v.splits.items():
        A = dense_weight(get_module(model, n))
        assert S.shape == Q.shape == P.shape == A.shape
        assert torch.equal(S + Q + P, A)
        assert torch.equal(S + Q, v.weights[n])
        assert not bool(((S != 0) & (Q != 0)).any() | ((S != 0) & (P != 0)).any()
                        | ((Q != 0) & (P != 0)).any())
        n_q += int((Q != 0).sum())
    assert n_q > 0                                     # SER restored something


def test_finetuned_variants_are_additive(variants):
    model, _, out = variants
    for mv, fv in ((out[0], out[1]), (out[2], out[3])):
        assert fv.masks is None and fv.splits is None
        assert fv.source["base_variant"] == mv.name
        assert any(not torch.equal(fv.weights[n], mv.weights[n]) for n in mv.weights)
        kinds = set()
        for n, S in fv.weights.items():
            A = dense_weight(get_module(model, n))
            kinds.add(decomposition_kind(A, S, None))
            assert not bool((S[~mv.masks[n]] != 0).any())   # frozen masks: support ⊆ M
        assert "additive" in kinds
        assert fv.other_changes, "fine-tuning moves biases and norms"
        assert "head.weight" in fv.other_changes
        assert not any(c in {f"{n}.weight" for n in fv.weights} for c in fv.other_changes)


def test_default_calibration():
    cal = D.default_calibration(n=32)
    assert len(cal) == 32
    x, y = cal.load(range(4))
    assert tuple(x.shape) == (4, 1, 8, 8) and y is not None and y.dtype == torch.int64
