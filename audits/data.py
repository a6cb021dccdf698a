"""Calibration sets: the inputs (and labels, when known) a certificate audit runs through a model.

Every set implements :class:`CalibrationSet` — ``len(set)``, ``set.load(indices)`` returning a
batch ``(inputs float32 (B, ...), labels int64 (B,) or None)``, and ``set.describe()`` (a
JSON-able provenance record). Image folders decode their files inside ``load`` only, so memory
stays O(batch) whatever the folder size.

* :class:`TensorCalibration` — tensors already in memory.
* :class:`ImageFolderCalibration` — a folder of images (class subfolders give labels).
* :class:`PackagedPhotosCalibration` — real photos shipped in PyPI packages, cropped and flipped.
* :class:`DigitsCalibration` — scikit-learn's digits (8×8, labelled), split by :func:`digits_split`.

:func:`make_calibration` turns a CLI spec (``"packaged-photos"``, ``"digits"``, a folder) into one.
timm, PIL and scikit-learn are imported inside the functions that need them.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from certkit._validation import as_tensor, check_int
from certkit.exceptions import CertkitError
from certkit.packaged_weights import EFFNET_MEAN, EFFNET_STD, calibration_images

__all__ = [
    "CALIBRATION_SPECS",
    "IMAGE_EXTENSIONS",
    "CalibrationError",
    "CalibrationSet",
    "DigitsCalibration",
    "ImageFolderCalibration",
    "PackagedPhotosCalibration",
    "TensorCalibration",
    "digits_split",
    "make_calibration",
    "timm_transform",
]

#: File suffixes :class:`ImageFolderCalibration` treats as images (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff", ".webp",
                    ".gif")
#: Named calibration sets of :func:`make_calibration` (a folder path is the other choice).
CALIBRATION_SPECS = ("packaged-photos", "digits", "digits:train", "digits:test", "digits:all")
#: Most skipped files named in the warning of :class:`ImageFolderCalibration`.
_MAX_WARNED = 10


class CalibrationError(CertkitError, ValueError):
    """A calibration set cannot be built or read (the message names the input and the fix)."""


class CalibrationSet(abc.ABC):
    """Indexable calibration data: ``len``, ``load(indices)`` and ``describe()``.

    Attributes
    ----------
    name : str
        Short label used in reports.
    """

    name: str = "calibration"

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abc.abstractmethod
    def load(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inputs ``(B, ...)`` float32 and labels ``(B,)`` int64, or None when the set has no labels.

        Parameters
        ----------
        indices : sequence of int
            Sample indices in ``[0, len(self))`` (list, range, ndarray or 1-D tensor; not empty).
        """

    @abc.abstractmethod
    def describe(self) -> dict:
        """JSON-able provenance: ``source``, ``n``, ``transform``, ``label_policy``, ``skipped``, ..."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={len(self)})"

    def _indices(self, indices: Sequence[int]) -> list[int]:
        """``indices`` as a list of ints in ``[0, len(self))`` (ValueError/TypeError otherwise)."""
        if isinstance(indices, torch.Tensor):
            indices = indices.detach().cpu().numpy()
        arr = np.asarray(indices)
        if arr.ndim != 1:
            raise ValueError(f"indices must be a 1-D sequence of ints, got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"indices must not be empty ({self.name!r} has {len(self)} samples)")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"indices must be integers, got dtype {arr.dtype}")
        n = len(self)
        bad = arr[(arr < 0) | (arr >= n)]
        if bad.size:
            raise IndexError(f"indices {bad[:5].tolist()} out of range for {self.name!r}, which has "
                             f"{n} samples (valid: 0 .. {n - 1})")
        return arr.tolist()


# --------------------------------------------------------------------------- tensors


class TensorCalibration(CalibrationSet):
    """Calibration samples already in memory.

    Parameters
    ----------
    X : array-like, shape (N, ...)
        Inputs; a float64 tensor stays float64 (audits of float64 models then see the exact
        inputs), anything else is stored as float32 (a float32 tensor without a copy); finite.
    y : array-like of int, shape (N,), optional
        Class labels (non-negative integers), stored as int64.
    name : str
        Label used in reports.
    """

    def __init__(self, X, y=None, *, name: str = "tensors"):
        keep64 = isinstance(X, torch.Tensor) and X.dtype == torch.float64
        X = as_tensor(X, "X", dtype=torch.float64 if keep64 else torch.float32)
        if X.ndim < 2:
            raise ValueError(f"X must have shape (N, ...) with at least 2 dimensions, got shape "
                             f"{tuple(X.shape)}; reshape a single feature to (N, 1)")
        if y is not None:
            y_arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
            if y_arr.ndim != 1 or len(y_arr) != len(X):
                raise ValueError(f"y must have shape ({len(X)},) to match X, got shape {y_arr.shape}")
            if not (np.issubdtype(y_arr.dtype, np.integer)
                    or (np.issubdtype(y_arr.dtype, np.floating)
                        and np.all(np.isfinite(y_arr)) and np.all(y_arr == np.round(y_arr)))):
                raise TypeError(f"y must hold integer class labels, got dtype {y_arr.dtype}")
            if y_arr.size and y_arr.min() < 0:
                raise ValueError(f"y must hold class labels >= 0, got minimum {y_arr.min()}")
            y = torch.as_tensor(y_arr.astype(np.int64))
        self.X, self.y, self.name = X, y, str(name)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def load(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.as_tensor(self._indices(indices), dtype=torch.long)
        return self.X[idx], None if self.y is None else self.y[idx]

    def describe(self) -> dict:
        return {"source": "tensors", "name": self.name, "n": len(self),
                "sample_shape": list(self.X.shape[1:]), "transform": None,
                "label_policy": "none" if self.y is None else "given", "skipped": []}


# --------------------------------------------------------------------------- image folders


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _files_under(folder: Path) -> list[Path]:
    """Non-hidden files below ``folder`` (recursive, sorted by relative path; hidden dirs skipped)."""
    out = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if p.is_file() and all(not part.startswith(".") for part in rel.parts):
            out.append(p)
    return sorted(out, key=lambda p: p.relative_to(folder).as_posix())


def _verify_image(path: Path) -> str | None:
    """None if PIL can identify and verify ``path``, else the reason."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError, ...
        return f"not a readable image ({type(exc).__name__}: {exc})"
    return None


def _spread_order(n: int, k: int) -> list[int]:
    """0..n-1 with ``k`` evenly spaced positions first (a class-balanced subsample of a sorted list)."""
    first = list(dict.fromkeys(np.linspace(0, n - 1, num=min(k, n)).round().astype(int).tolist()))
    chosen = set(first)
    return first + [i for i in range(n) if i not in chosen]


class ImageFolderCalibration(CalibrationSet):
    """Images in a folder, decoded lazily in :meth:`load`.

    Two layouts:

    * class subfolders ``root/<class>/**/<image>`` — the label of an image is the index of its
      class folder among the sorted subfolder names (torchvision ``ImageFolder`` convention,
      so an ImageNet-style ``val/`` folder sorted by synset gives ImageNet indices);
      files directly in ``root`` are skipped;
    * a flat folder ``root/<image>`` — no labels.

    Files are listed in sorted order (deterministic). Each is opened and verified with PIL at
    construction; files with another suffix or that PIL cannot read are skipped with one
    warning and listed in ``describe()["skipped"]``. Hidden files and folders (``.name``) are
    ignored.

    Parameters
    ----------
    root : str or Path
        The folder.
    transform : callable or None
        Maps a ``PIL.Image`` (converted to ``mode``) to a tensor, e.g. :func:`timm_transform`.
        None: ``uint8 -> [0, 1]`` float tensors (every image must then have the same size).
    labels : {"folder", "none"}
        ``"folder"``: labels from class subfolders (a flat folder has none); ``"none"``: no labels,
        every image below ``root`` is used.
    max_images : int, optional
        Keep this many valid images, evenly spread over the sorted list (so every class is
        represented); only the files needed are verified.
    extensions : tuple of str
        Image file suffixes (case-insensitive).
    mode : str
        PIL mode every image is converted to before ``transform`` (``"RGB"``, ``"L"``).

    Raises
    ------
    CalibrationError
        If ``root`` does not exist or is not a folder, holds no files, or no valid image remains.
    """

    def __init__(self, root: str | Path, transform: Callable | None, *, labels: str = "folder",
                 max_images: int | None = None, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 mode: str = "RGB"):
        if labels not in ("folder", "none"):
            raise ValueError(f"labels == {labels!r}, must be 'folder' or 'none'")
        if max_images is not None:
            max_images = check_int(max_images, "max_images", min_val=1)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable (PIL image -> tensor) or None, got "
                            f"{type(transform).__name__}")
        root = Path(root)
        if not root.exists():
            raise CalibrationError(f"calibration folder {str(root)!r} does not exist; pass a folder of "
                                   "images (optionally in class subfolders)")
        if not root.is_dir():
            raise CalibrationError(f"calibration folder {str(root)!r} is not a folder; pass a folder "
                                   "of images (optionally in class subfolders)")
        self.root, self.transform, self.mode, self.max_images = root, transform, mode, max_images
        self.extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        self.name = root.name or str(root)

        subdirs = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))
        self.layout = "class_folders" if subdirs else "flat"
        self.classes = [p.name for p in subdirs] if labels == "folder" and subdirs else None
        self.skipped: list[dict] = []
        if self.classes is not None:
            candidates: list[tuple[Path, int | None]] = []
            for label, sub in enumerate(subdirs):
                candidates += [(p, label) for p in _files_under(sub)]
            for p in sorted(p for p in root.iterdir() if p.is_file() and _visible(p)):
                self.skipped.append({"path": str(p), "reason": "file at the top level of a folder "
                                     "with class subfolders (images must be inside a class folder)"})
        else:
            candidates = [(p, None) for p in _files_under(root)]
        n_listed = len(candidates) + len(self.skipped)
        if n_listed == 0:
            raise CalibrationError(f"calibration folder {str(root)!r} is empty; put images in it "
                                   "(optionally in class subfolders)")
        images = []
        for p, label in candidates:
            if p.suffix.lower() in self.extensions:
                images.append((p, label))
            else:
                self.skipped.append({"path": str(p), "reason": f"suffix {p.suffix!r} is not an image "
                                     f"suffix ({', '.join(self.extensions)})"})
        order = _spread_order(len(images), max_images) if max_images else range(len(images))
        kept = []
        for i in order:
            reason = _verify_image(images[i][0])
            if reason is None:
                kept.append(i)
                if max_images is not None and len(kept) == max_images:
                    break
            else:
                self.skipped.append({"path": str(images[i][0]), "reason": reason})
        self.samples: list[tuple[Path, int | None]] = [images[i] for i in sorted(kept)]
        self.skipped.sort(key=lambda d: d["path"])
        self.n_listed = n_listed
        if self.skipped:
            names = [Path(d["path"]).name for d in self.skipped]
            shown = ", ".join(names[:_MAX_WARNED]) + (" ..." if len(names) > _MAX_WARNED else "")
            warnings.warn(f"skipped {len(self.skipped)} of {n_listed} files in {str(root)!r} "
                          f"(not images or unreadable): {shown}; see describe()['skipped']",
                          UserWarning, stacklevel=2)
        if not self.samples:
            raise CalibrationError(f"calibration folder {str(root)!r} holds no readable image "
                                   f"({len(self.skipped)} file(s) skipped: "
                                   f"{'; '.join(d['path'] + ': ' + d['reason'] for d in self.skipped[:3])})")

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, path: Path) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(path) as img:
                img = img.convert(self.mode) if self.mode else img
                img.load()
        except Exception as exc:
            raise CalibrationError(f"calibration image {str(path)!r} became unreadable after the folder "
                                   f"was listed ({type(exc).__name__}: {exc}); restore or remove it "
                                   "and build the calibration set again") from exc
        if self.transform is None:
            arr = np.asarray(img, dtype=np.uint8)
            arr = arr[:, :, None] if arr.ndim == 2 else arr
            return torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32) / 255.0
        out = self.transform(img)
        if not isinstance(out, torch.Tensor):
            raise CalibrationError(f"transform returned a {type(out).__name__} for {str(path)!r}; it "
                                   "must return a torch.Tensor (end it with ToTensor())")
        return out.to(torch.float32)

    def load(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = self._indices(indices)
        xs = [self._read(self.samples[i][0]) for i in idx]
        shapes = {tuple(x.shape) for x in xs}
        if len(shapes) > 1:
            raise CalibrationError(f"images of {str(self.root)!r} give tensors of different shapes "
                                   f"{sorted(shapes)}; pass a transform that resizes and crops them "
                                   "(e.g. timm_transform(model))")
        labels = None
        if self.classes is not None:
            labels = torch.tensor([self.samples[i][1] for i in idx], dtype=torch.long)
        return torch.stack(xs), labels

    def describe(self) -> dict:
        return {"source": "image_folder", "root": str(self.root), "n": len(self),
                "n_listed": self.n_listed, "layout": self.layout,
                "classes": self.classes, "max_images": self.max_images,
                "transform": None if self.transform is None else " ".join(repr(self.transform).split()),
                "label_policy": "folder" if self.classes is not None else "none",
                "skipped": [dict(d) for d in self.skipped]}


def timm_transform(model: torch.nn.Module, *, size: int | None = None) -> Callable:
    """timm's eval transform for ``model`` (resize, centre crop, to tensor, normalise).

    Parameters
    ----------
    model : torch.nn.Module
        A timm model (its pretrained config gives size, interpolation, crop and mean/std); other
        modules get timm's ImageNet defaults.
    size : int, optional
        Override the input side length.
    """
    from timm.data import create_transform, resolve_data_config

    args = {} if size is None else {"input_size": (3, check_int(size, "size", min_val=1),
                                                   check_int(size, "size", min_val=1))}
    cfg = resolve_data_config(args, model=model)
    return create_transform(**cfg, is_training=False)


# --------------------------------------------------------------------------- packaged photos


def _imagenet_mean_std() -> tuple[tuple[float, ...], tuple[float, ...]]:
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    return tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD)


class PackagedPhotosCalibration(CalibrationSet):
    """Real photos shipped in PyPI packages (scikit-image, scikit-learn, matplotlib), cropped and
    flipped into up to ~96 views (:func:`certkit.packaged_weights.calibration_images`). No labels.

    The views are small and bounded in number, so they are computed once at construction and
    kept in memory.

    Parameters
    ----------
    n : int
        Number of views; fewer are used (with a warning) when fewer are installed.
    size : int
        Side length of the square images.
    transform : callable, optional
        Maps one ``(3, size, size)`` image in ``[0, 1]`` to the model input tensor (then ``mean``
        and ``std`` must be None).
    mean, std : sequence of 3 floats, optional
        Per-channel normalisation ``(x - mean) / std`` of the ``[0, 1]`` images when no
        ``transform`` is given; default timm's ImageNet mean/std. The packaged EfficientNet-Lite0
        needs ``mean = std = (0.5, 0.5, 0.5)`` (what :func:`make_calibration` reads from its timm
        config).
    """

    def __init__(self, n: int = 64, *, size: int = 224, transform: Callable | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None):
        n = check_int(n, "n", min_val=1)
        size = check_int(size, "size", min_val=8)
        if transform is not None and (mean is not None or std is not None):
            raise ValueError("pass either transform or mean/std, not both (the transform normalises)")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        if transform is None:
            d_mean, d_std = _imagenet_mean_std()
            mean, std = (d_mean if mean is None else mean), (d_std if std is None else std)
            mean = tuple(float(m) for m in mean)
            std = tuple(float(s) for s in std)
            if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
                raise ValueError(f"mean and std must be 3 floats with std > 0, got mean={mean}, std={std}")
        self.n_requested, self.size, self.transform, self.mean, self.std = n, size, transform, mean, std
        self.name = "packaged-photos"
        try:
            images, names = calibration_images(size=size, n=n)
        except CertkitError as exc:
            raise CalibrationError(str(exc)) from exc
        if len(names) < n:
            warnings.warn(f"only {len(names)} packaged photo views are available (n={n} requested); "
                          "using all of them. Install scikit-image for more photos",
                          UserWarning, stacklevel=2)
        # calibration_images normalises with the EfficientNet-Lite0 convention; undo it once.
        base_mean = torch.tensor(EFFNET_MEAN).view(1, 3, 1, 1)
        base_std = torch.tensor(EFFNET_STD).view(1, 3, 1, 1)
        self._images = (images * base_std + base_mean).clamp_(0.0, 1.0)
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.names)

    def load(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self._images[torch.as_tensor(self._indices(indices), dtype=torch.long)]
        if self.transform is not None:
            return torch.stack([self.transform(img).to(torch.float32) for img in x]), None
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (x - mean) / std, None

    def describe(self) -> dict:
        norm = (f"normalise mean={list(self.mean)} std={list(self.std)}" if self.transform is None
                else " ".join(repr(self.transform).split()))
        return {"source": "packaged_photos", "n": len(self), "n_requested": self.n_requested,
                "size": self.size, "mean": None if self.mean is None else list(self.mean),
                "std": None if self.std is None else list(self.std),
                "transform": f"square crops (centre at crop_pct 0.875, zoom, corners) and flips, "
                             f"bicubic antialiased resize to {self.size}, [0, 1], {norm}",
                "label_policy": "none", "images": list(self.names), "skipped": []}


# --------------------------------------------------------------------------- digits


def digits_split(split_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn digits as ``(N, 1, 8, 8)`` float32 in [0, 1], 75/25 stratified split.

    Parameters
    ----------
    split_seed : int
        ``random_state`` of ``sklearn.model_selection.train_test_split``.

    Returns
    -------
    X_train, y_train, X_test, y_test : torch.Tensor
        1347 / 450 samples; labels int64 in 0..9.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.long)
    idx_tr, idx_te = train_test_split(np.arange(len(y)), test_size=0.25,
                                      random_state=split_seed, stratify=d.target)
    return X[idx_tr], y[idx_tr], X[idx_te], y[idx_te]


class DigitsCalibration(TensorCalibration):
    """scikit-learn digits (real handwritten 8×8 images, 10 classes) with labels.

    Parameters
    ----------
    split : {"test", "train", "all"}
        Part of the :func:`digits_split` split (``"all"``: train then test).
    n : int, optional
        Keep the first ``n`` samples of the split (the split is already shuffled).
    split_seed : int
        Seed of the split (the digits benchmark uses 0).
    """

    def __init__(self, split: str = "test", n: int | None = None, split_seed: int = 0):
        if split not in ("test", "train", "all"):
            raise ValueError(f"split == {split!r}, must be 'test', 'train' or 'all'")
        split_seed = check_int(split_seed, "split_seed", min_val=0)
        Xtr, ytr, Xte, yte = digits_split(split_seed)
        X, y = {"train": (Xtr, ytr), "test": (Xte, yte),
                "all": (torch.cat([Xtr, Xte]), torch.cat([ytr, yte]))}[split]
        if n is not None:
            n = check_int(n, "n", min_val=1)
            if n > len(X):
                raise ValueError(f"n == {n}, but the digits {split!r} split has only {len(X)} samples")
            X, y = X[:n], y[:n]
        super().__init__(X, y, name=f"digits-{split}")
        self.split, self.split_seed = split, split_seed

    def describe(self) -> dict:
        return {"source": "sklearn.datasets.load_digits", "name": self.name, "n": len(self),
                "split": self.split, "split_seed": self.split_seed,
                "split_policy": "train_test_split(test_size=0.25, stratify=labels)",
                "transform": "pixel / 16 -> [0, 1], shape (1, 8, 8)",
                "label_policy": "dataset", "skipped": []}


# --------------------------------------------------------------------------- CLI specs


def make_calibration(spec: str, model: torch.nn.Module | None, *, n: int | None = None,
                     size: int | None = None) -> CalibrationSet:
    """Calibration set from a CLI spec.

    Parameters
    ----------
    spec : str
        ``"packaged-photos"`` (real photos, normalised with the model's timm mean/std),
        ``"digits"`` / ``"digits:test"`` / ``"digits:train"`` / ``"digits:all"``, or the path of a
        folder of images (:class:`ImageFolderCalibration` with :func:`timm_transform`).
    model : torch.nn.Module or None
        Gives the input size and normalisation (timm data config); may be None for digits.
    n : int, optional
        Number of samples (default: 64 photos, the whole digits split, every image of a folder).
    size : int, optional
        Image side length (default: the model's timm input size). Not allowed for digits.

    Raises
    ------
    CalibrationError
        If ``spec`` is neither a named set nor an existing folder (the choices are listed).
    """
    if not isinstance(spec, str | Path) or not str(spec):
        raise CalibrationError(f"calibration spec must be a non-empty string, got {spec!r}; choices: "
                               f"{', '.join(CALIBRATION_SPECS)} or a folder of images")
    spec = str(spec)
    if spec.startswith("digits") and spec in CALIBRATION_SPECS:
        if size is not None and size != 8:
            raise ValueError(f"size == {size}: the digits images are 8x8 and cannot be resized")
        return DigitsCalibration(split=spec.partition(":")[2] or "test", n=n)
    needs_model = spec == "packaged-photos" or Path(spec).is_dir()
    if needs_model and not isinstance(model, torch.nn.Module):
        raise TypeError(f"calibration {spec!r} needs the model (for its input size and normalisation), "
                        f"got {type(model).__name__}")
    if spec == "packaged-photos":
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=model)
        side = int(cfg["input_size"][-1]) if size is None else size
        return PackagedPhotosCalibration(64 if n is None else n, size=side,
                                         mean=cfg["mean"], std=cfg["std"])
    path = Path(spec)
    if path.is_dir():
        return ImageFolderCalibration(path, timm_transform(model, size=size), max_images=n)
    what = "is a file, not a folder" if path.exists() else "is neither a named set nor an existing folder"
    raise CalibrationError(f"calibration {spec!r} {what}; choices: {', '.join(CALIBRATION_SPECS)}, "
                           "or the path of a folder of images (optionally in class subfolders)")
