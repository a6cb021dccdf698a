"""audits.data: calibration sets (tensors, image folders, packaged photos, digits) and CLI specs."""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm must never wait for the hub

from audits.data import (  # noqa: E402
    CALIBRATION_SPECS,
    CalibrationError,
    CalibrationSet,
    DigitsCalibration,
    ImageFolderCalibration,
    PackagedPhotosCalibration,
    TensorCalibration,
    digits_split,
    make_calibration,
    timm_transform,
)
from certkit.exceptions import CertkitError  # noqa: E402

Image = pytest.importorskip("PIL.Image")


def _png(path, size=(12, 10), color=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _to_tensor(img):
    """Tiny fixed-size transform (no timm needed)."""
    img = img.resize((8, 8))
    return torch.from_numpy(np.asarray(img, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0


def _class_folder(root):
    _png(root / "cat" / "b.png", color=(10, 0, 0))
    _png(root / "cat" / "a.png", color=(0, 10, 0))
    _png(root / "dog" / "sub" / "c.jpg", color=(0, 0, 10))
    return root


def _json_ok(d: dict) -> dict:
    assert {"source", "n", "transform", "label_policy", "skipped"} <= set(d)
    return json.loads(json.dumps(d))


# --------------------------------------------------------------------------- tensors


def test_tensor_calibration():
    X = torch.randn(6, 3, 4, 4)
    cal = TensorCalibration(X, [0, 1, 2, 0, 1, 2], name="toy")
    assert isinstance(cal, CalibrationSet) and len(cal) == 6 and cal.name == "toy"
    x, y = cal.load([4, 1])
    assert x.dtype == torch.float32 and torch.equal(x, X[[4, 1]])
    assert y.dtype == torch.int64 and y.tolist() == [1, 1]
    assert cal.load(range(2))[0].shape == (2, 3, 4, 4)
    d = _json_ok(cal.describe())
    assert d["n"] == 6 and d["label_policy"] == "given" and d["sample_shape"] == [3, 4, 4]

    x, y = TensorCalibration(np.ones((3, 2))).load(np.array([0, 2]))
    assert y is None and x.dtype == torch.float32
    X64 = torch.randn(3, 2, dtype=torch.float64) / 3   # not representable in float32
    x, _ = TensorCalibration(X64).load([1])
    assert x.dtype == torch.float64 and torch.equal(x, X64[[1]])
    assert TensorCalibration(np.ones((3, 2))).describe()["label_policy"] == "none"


def test_tensor_calibration_validation():
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        TensorCalibration(torch.zeros(3, 2), [0, 1])
    with pytest.raises(TypeError, match="integer class labels"):
        TensorCalibration(torch.zeros(2, 2), [0.5, 1.0])
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        TensorCalibration(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        TensorCalibration(torch.tensor([[float("nan")]]))
    cal = TensorCalibration(torch.zeros(3, 2))
    with pytest.raises(IndexError, match=r"\[3\] out of range.*3 samples"):
        cal.load([0, 3])
    with pytest.raises(IndexError, match="out of range"):
        cal.load([-1])
    with pytest.raises(ValueError, match="empty"):
        cal.load([])
    with pytest.raises(TypeError, match="integers"):
        cal.load([0.5])


# --------------------------------------------------------------------------- image folders


def test_image_folder_class_subfolders(tmp_path):
    root = _class_folder(tmp_path / "calib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal = ImageFolderCalibration(root, _to_tensor)
    assert len(cal) == 3 and cal.classes == ["cat", "dog"]
    x, y = cal.load([0, 1, 2])
    assert x.shape == (3, 3, 8, 8) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == [0, 0, 1]
    assert [p.name for p, _ in cal.samples] == ["a.png", "b.png", "c.jpg"]  # sorted, deterministic
    assert x[0, 1].mean() > x[0, 0].mean()  # a.png is the green one
    d = _json_ok(cal.describe())
    assert d["layout"] == "class_folders" and d["label_policy"] == "folder" and d["skipped"] == []

    x2, y2 = ImageFolderCalibration(root, _to_tensor, labels="none").load([2, 0])
    assert y2 is None and torch.equal(x2, x[[2, 0]])


def test_image_folder_flat_no_labels_and_default_transform(tmp_path):
    for i in range(3):
        _png(tmp_path / f"img{i}.png", color=(i * 50, 0, 0))
    cal = ImageFolderCalibration(tmp_path, None)
    x, y = cal.load([1])
    assert y is None and x.shape == (1, 3, 10, 12)
    assert float(x[0, 0, 0, 0]) == pytest.approx(50 / 255)
    d = cal.describe()
    assert d["layout"] == "flat" and d["label_policy"] == "none" and d["transform"] is None


def test_image_folder_skips_corrupt_and_non_images(tmp_path):
    root = _class_folder(tmp_path / "calib")
    (root / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    (root / "dog" / "notes.txt").write_text("labels are folders")
    (root / "dog" / ".DS_Store").write_bytes(b"\0")  # hidden: ignored silently
    (root / "README.md").write_text("loose file at the top level")
    with pytest.warns(UserWarning, match=r"skipped 3 of 6 files") as rec:
        cal = ImageFolderCalibration(root, _to_tensor)
    assert "broken.jpg" in str(rec[0].message) and "notes.txt" in str(rec[0].message)
    assert len(cal) == 3
    skipped = {os.path.basename(d["path"]): d["reason"] for d in cal.describe()["skipped"]}
    assert set(skipped) == {"broken.jpg", "notes.txt", "README.md"}
    assert "not a readable image" in skipped["broken.jpg"]
    assert "'.txt'" in skipped["notes.txt"]
    assert "class folder" in skipped["README.md"]
    _json_ok(cal.describe())


def test_image_folder_errors(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist") as exc:
        ImageFolderCalibration(tmp_path / "missing", None)
    assert isinstance(exc.value, CertkitError) and isinstance(exc.value, ValueError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="is empty"):
        ImageFolderCalibration(tmp_path / "empty", None)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"nope")
    (bad / "b.txt").write_text("nope")
    with pytest.warns(UserWarning, match="skipped 2 of 2"):
        with pytest.raises(CalibrationError, match="no readable image"):
            ImageFolderCalibration(bad, None)
    with pytest.raises(CalibrationError, match="not a folder"):
        ImageFolderCalibration(bad / "b.txt", None)
    with pytest.raises(ValueError, match="labels"):
        ImageFolderCalibration(bad, None, labels="auto")


def test_image_folder_file_unreadable_later(tmp_path):
    root = _class_folder(tmp_path / "calib")
    cal = ImageFolderCalibration(root, _to_tensor)
    victim = root / "cat" / "b.png"
    victim.write_bytes(b"corrupted after listing")
    cal.load([0])  # a.png still fine
    with pytest.raises(CalibrationError, match="b.png"):
        cal.load([0, 1])
    victim.unlink()
    with pytest.raises(CalibrationError, match="b.png"):
        cal.load([1])


def test_image_folder_sizes_differ_without_transform(tmp_path):
    _png(tmp_path / "a.png", size=(8, 8))
    _png(tmp_path / "b.png", size=(9, 8))
    cal = ImageFolderCalibration(tmp_path, None)
    with pytest.raises(CalibrationError, match="different shapes.*timm_transform"):
        cal.load([0, 1])


def test_image_folder_max_images_spreads_over_classes(tmp_path):
    for c in ("a", "b", "c"):
        for i in range(4):
            _png(tmp_path / c / f"{i}.png")
    (tmp_path / "b" / "0.png").write_bytes(b"broken")  # not among the files checked
    cal = ImageFolderCalibration(tmp_path, _to_tensor, max_images=3)
    assert len(cal) == 3
    assert cal.load([0, 1, 2])[1].tolist() == [0, 1, 2]
    assert cal.describe()["max_images"] == 3


# --------------------------------------------------------------------------- packaged photos


def test_packaged_photos_shapes_and_normalisation():
    from certkit.packaged_weights import calibration_images

    cal = PackagedPhotosCalibration(4, size=32)
    assert len(cal) == 4 and cal.name == "packaged-photos"
    x, y = cal.load([0, 3])
    assert y is None and x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    d = _json_ok(cal.describe())
    assert d["label_policy"] == "none" and len(d["images"]) == 4 and d["size"] == 32
    assert d["mean"] == pytest.approx([0.485, 0.456, 0.406])  # timm ImageNet default

    half = PackagedPhotosCalibration(4, size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    ref, _ = calibration_images(32, n=4)
    torch.testing.assert_close(half.load(range(4))[0], ref, atol=1e-5, rtol=0)
    x01 = half.load([3])[0] * 0.5 + 0.5
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x[1:], (x01 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1),
                               atol=1e-5, rtol=0)

    flipped = PackagedPhotosCalibration(2, size=16, transform=lambda im: im.flip(-1))
    assert flipped.load([0])[0].shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match="either transform or mean/std"):
        PackagedPhotosCalibration(2, size=16, transform=lambda im: im, mean=(0.5,) * 3)


def test_packaged_photos_fewer_available_warns():
    with pytest.warns(UserWarning, match="packaged photo views are available"):
        cal = PackagedPhotosCalibration(10_000, size=8)
    assert 0 < len(cal) < 10_000 and cal.describe()["n_requested"] == 10_000


# --------------------------------------------------------------------------- digits


def test_digits_split_sizes_stratified_and_deterministic():
    Xtr, ytr, Xte, yte = digits_split()
    assert Xtr.shape == (1347, 1, 8, 8) and Xte.shape == (450, 1, 8, 8)
    assert Xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert float(Xtr.min()) >= 0.0 and float(Xtr.max()) <= 1.0
    counts = torch.bincount(yte, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46  # stratified: ~25 % of each class
    again = digits_split(0)
    assert torch.equal(again[3], yte) and torch.equal(again[2], Xte)
    assert not torch.equal(digits_split(1)[3], yte)


def test_digits_calibration():
    test = DigitsCalibration()
    assert len(test) == 450 and test.name == "digits-test"
    x, y = test.load([0, 1])
    Xte, yte = digits_split()[2:]
    assert torch.equal(x, Xte[:2]) and torch.equal(y, yte[:2])
    assert len(DigitsCalibration("train")) == 1347 and len(DigitsCalibration("all")) == 1797
    small = DigitsCalibration(n=20, split_seed=0)
    assert len(small) == 20 and torch.equal(small.load(range(20))[1], yte[:20])
    d = _json_ok(small.describe())
    assert d["split"] == "test" and d["split_seed"] == 0 and d["label_policy"] == "dataset"
    with pytest.raises(ValueError, match="split"):
        DigitsCalibration("val")
    with pytest.raises(ValueError, match="only 450"):
        DigitsCalibration(n=451)


# --------------------------------------------------------------------------- timm / CLI specs


@pytest.fixture(scope="module")
def lite0():
    timm = pytest.importorskip("timm")
    return timm.create_model("tf_efficientnet_lite0").eval()  # random init: config only


def test_timm_transform(tmp_path, lite0):
    img = Image.new("RGB", (300, 260), (255, 255, 255))
    out = timm_transform(lite0)(img)
    assert out.shape == (3, 224, 224)
    assert float(out.max()) == pytest.approx(1.0)  # mean = std = 0.5: white -> 1
    assert timm_transform(lite0, size=64)(img).shape == (3, 64, 64)


def test_make_calibration_specs(tmp_path, lite0):
    digits = make_calibration("digits", None)
    assert isinstance(digits, DigitsCalibration) and digits.split == "test" and len(digits) == 450
    assert make_calibration("digits:train", lite0, n=5).split == "train"
    with pytest.raises(ValueError, match="8x8"):
        make_calibration("digits", None, size=32)

    photos = make_calibration("packaged-photos", lite0, n=2, size=32)
    assert isinstance(photos, PackagedPhotosCalibration) and len(photos) == 2
    assert photos.mean == (0.5, 0.5, 0.5) and photos.std == (0.5, 0.5, 0.5)  # from timm's config
    assert photos.load([0])[0].shape == (1, 3, 32, 32)

    root = _class_folder(tmp_path / "calib")
    folder = make_calibration(str(root), lite0, n=2, size=40)
    assert isinstance(folder, ImageFolderCalibration) and len(folder) == 2
    x, y = folder.load([0, 1])
    assert x.shape == (2, 3, 40, 40) and y.tolist() == [0, 1]

    with pytest.raises(CalibrationError) as exc:
        make_calibration("imagenet", lite0)
    for choice in CALIBRATION_SPECS:
        assert choice in str(exc.value)
    assert "folder" in str(exc.value)
    with pytest.raises(CalibrationError, match="is a file"):
        make_calibration(str(root / "cat" / "a.png"), lite0)
    with pytest.raises(TypeError, match="needs the model"):
        make_calibration("packaged-photos", None)
