r"""The embedded default audit: a tiny ViT trained on scikit-learn digits and four pruned variants.

``certkit audit`` without arguments audits this model with no network access:

* :func:`default_model` trains the digits ViT (:mod:`audits.digits`) once and caches its state
  dict as safetensors under ``<cache>/audit-default/<config-hash>/`` (:func:`cache_dir`);
* :func:`default_variants` prunes copies of it — CAST 2:4 and Hybrid Magnitude–SER at sparsity
  0.5 on the block linears — as mask variants, then fine-tunes each copy briefly with frozen
  masks and hands the fine-tuned weights over as additive variants;
* :func:`default_calibration` is the labelled digits test split.

The elastic-net constant (THEORY Trap T15a). The certificates' objective is
``L_CE + λ2‖A‖_F²``. The default model is trained with SGD (Nesterov momentum) and *coupled*
L2 weight decay ``wd`` on every parameter: the update direction is ``∇L_CE + wd·w`` =
``∇(L_CE + (wd/2)‖w‖²)``, so ``λ2 = wd/2`` (and λ1 = 0) is the honest constant recorded in the
model info. AdamW's decoupled decay would correspond to no penalty at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from .digits import (
    CAST_PATTERNS,
    accuracy,
    batches,
    finetune,
    make_digits_vit,
    prune_model,
    select_block_linears,
    train_dense,
)
from .variants import Variant, variant_from_masks, variant_from_state_dict

__all__ = [
    "CACHE_ENV",
    "DEFAULT_CONFIG",
    "MODEL_NAME",
    "TRAIN_KEYS",
    "cache_dir",
    "cache_path",
    "config_hash",
    "default_calibration",
    "default_model",
    "default_variants",
]

#: Environment variable overriding the cache root (default ``~/.cache/certkit``).
CACHE_ENV = "CERTKIT_CACHE"
MODEL_NAME = "digits-vit (embedded default)"
_SUBDIR = "audit-default"
_MODEL_FILE, _INFO_FILE = "model.safetensors", "info.json"
_FORMAT = "certkit-audit-default/1"

#: Configuration of the embedded default. Keys of :data:`TRAIN_KEYS` fix the trained weights
#: (and the cache folder); the others only affect :func:`default_variants`.
DEFAULT_CONFIG: dict = {
    "seed": 0,
    "split_seed": 0,
    "architecture": "timm vit_tiny_patch16_224 (img_size 8, patch_size 2, in_chans 1, 10 classes)",
    "embed_dim": 80,
    "depth": 4,
    "num_heads": 4,
    "weight_init": "jax",
    "optimizer": "sgd",
    "epochs": 40,
    "lr": 0.03,
    "weight_decay": 1e-3,
    "schedule": "one-cycle (pct_start 0.1, momentum 0.95 → 0.85 → 0.95, Nesterov)",
    "batch_size": 64,
    # variants
    "sparsity": 0.5,
    "calib_batches": 8,
    "ft_epochs": 1,
    "ft_lr": 5e-4,
}
#: The keys that determine the trained weights; their hash names the cache folder.
TRAIN_KEYS = ("seed", "split_seed", "architecture", "embed_dim", "depth", "num_heads",
              "weight_init", "optimizer", "epochs", "lr", "weight_decay", "schedule",
              "batch_size")


# ---------------------------------------------------------------------------- config / cache
def _config(config: Mapping | None) -> dict:
    cfg = dict(DEFAULT_CONFIG)
    if config:
        unknown = sorted(set(config) - set(DEFAULT_CONFIG))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(DEFAULT_CONFIG)}")
        cfg.update(config)
    if cfg["optimizer"] not in ("sgd", "adam"):
        raise ValueError(f"optimizer == {cfg['optimizer']!r}: the embedded default needs a coupled L2 "
                         "weight decay ('sgd' or 'adam') so that λ2 = wd/2 (THEORY T15a); AdamW's "
                         "decoupled decay is not an L2 penalty")
    if cfg["sparsity"] not in CAST_PATTERNS:
        raise ValueError(f"sparsity == {cfg['sparsity']!r}, must be one of {sorted(CAST_PATTERNS)} "
                         "(a CAST k:n pattern must give it exactly)")
    return cfg


def config_hash(config: Mapping | None = None) -> str:
    """First 16 hex digits of the SHA-256 of the training part of ``config`` (:data:`TRAIN_KEYS`)."""
    cfg = _config(config)
    blob = json.dumps({"format": _FORMAT, **{k: cfg[k] for k in TRAIN_KEYS}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    """Cache root: ``$CERTKIT_CACHE`` if set, else ``~/.cache/certkit``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "certkit"


def cache_path(cache: str | os.PathLike | None = None, config: Mapping | None = None) -> Path:
    """Folder ``<cache>/audit-default/<config-hash>`` holding ``model.safetensors`` and ``info.json``."""
    root = cache_dir() if cache is None else Path(cache).expanduser()
    return root / _SUBDIR / config_hash(config)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, fsync, then ``os.replace``: a killed or
    failed write never leaves a partial ``path`` (the temporary file is removed on errors)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _save(folder: Path, model: torch.nn.Module, info: dict) -> None:
    from safetensors.torch import save

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    blob = save(state, metadata={"format": _FORMAT, "config_hash": folder.name})
    # the model first, then the record naming its hash: a model without a (matching) record is
    # treated as corrupt and retrained
    _atomic_write(folder / _MODEL_FILE, blob)
    record = {**info, "model_sha256": hashlib.sha256(blob).hexdigest()}
    _atomic_write(folder / _INFO_FILE, json.dumps(record, indent=2, sort_keys=True).encode())


def _load(folder: Path, cfg: dict) -> tuple[torch.nn.Module, dict]:
    """Model and record from the cache; raises on a missing record, a hash mismatch, a file that
    safetensors cannot parse or a state dict that does not fit the architecture."""
    from safetensors.torch import load

    info = json.loads((folder / _INFO_FILE).read_text())
    blob = (folder / _MODEL_FILE).read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != info.get("model_sha256"):
        raise ValueError(f"SHA-256 of {_MODEL_FILE} is {digest[:12]}…, the record says "
                         f"{str(info.get('model_sha256'))[:12]}…")
    if info.get("config_hash") != folder.name:
        raise ValueError(f"the record's config hash {info.get('config_hash')!r} != {folder.name!r}")
    state = load(blob)
    model = _architecture(cfg)
    model.load_state_dict(state, strict=True)
    return model, info


def _architecture(cfg: dict) -> torch.nn.Module:
    return make_digits_vit(cfg["seed"], embed_dim=cfg["embed_dim"], depth=cfg["depth"],
                           num_heads=cfg["num_heads"], weight_init=cfg["weight_init"])


@contextlib.contextmanager
def _threads_and_rng(threads: int | None):
    """Run with ``threads`` torch threads (None: the caller's setting) and a forked global RNG, so
    the caller's thread count and random state are unchanged afterwards."""
    before = torch.get_num_threads()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads == {threads!r}, must be a positive int or None")
        torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.set_num_threads(before)


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"[certkit audit] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- model
def _train(cfg: dict, progress: bool) -> tuple[torch.nn.Module, dict]:
    from .data import digits_split

    Xtr, ytr, Xte, yte = digits_split(cfg["split_seed"])
    t0 = time.perf_counter()
    model = _architecture(cfg)

    def on_epoch(ep: int, loss: float) -> None:
        if ep == 0 or (ep + 1) % 10 == 0 or ep + 1 == cfg["epochs"]:
            _say(progress, f"  epoch {ep + 1}/{cfg['epochs']}: train loss {loss:.4f} "
                           f"({time.perf_counter() - t0:.0f} s)")

    _say(progress, f"training the embedded default digits ViT ({cfg['epochs']} epochs, "
                   f"{cfg['optimizer']}, wd {cfg['weight_decay']}; once, then cached)")
    train_dense(model, Xtr, ytr, epochs=cfg["epochs"], lr=cfg["lr"], batch_size=cfg["batch_size"],
                seed=cfg["seed"], optimizer=cfg["optimizer"], weight_decay=cfg["weight_decay"],
                on_epoch=on_epoch)
    train_s = time.perf_counter() - t0
    import timm

    info = {
        "format": _FORMAT,
        "config_hash": config_hash(cfg),
        "config": {k: cfg[k] for k in TRAIN_KEYS},
        "test_accuracy": accuracy(model, Xte, yte) / 100.0,
        "train_accuracy": accuracy(model, Xtr, ytr) / 100.0,
        "n_train": len(ytr), "n_test": len(yte),
        "train_time_s": round(train_s, 2),
        "torch_threads": torch.get_num_threads(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"torch": torch.__version__, "timm": timm.__version__,
                     "python": platform.python_version()},
    }
    _say(progress, f"  test accuracy {100 * info['test_accuracy']:.2f} % ({train_s:.0f} s)")
    return model, info


def default_model(*, cache: str | os.PathLike | None = None, retrain: bool = False,
                  progress: bool = False, config: Mapping | None = None,
                  threads: int | None = None) -> tuple[torch.nn.Module, dict]:
    """The embedded default model: the digits ViT, trained once and cached.

    Parameters
    ----------
    cache : path, optional
        Cache root (default :func:`cache_dir`); files go to ``<cache>/audit-default/<hash>/``.
    retrain : bool, default=False
        Train even when a valid cached model exists (and overwrite it).
    progress : bool, default=False
        Progress lines on stderr.
    config : mapping, optional
        Overrides of :data:`DEFAULT_CONFIG` (e.g. ``{"epochs": 3}`` in tests).
    threads : int, optional
        Torch threads while training (restored afterwards); default: the caller's setting. On
        a loaded 2-core machine 2 threads made a training step ~30× slower than 1 (1.8 s vs
        0.06 s): callers with a time budget should pass ``threads=1``.

    Returns
    -------
    (nn.Module, dict)
        The model (eval mode, float32, CPU) and its info: ``name``, ``source``
        (``"embedded-default"``), ``test_accuracy`` (fraction in [0, 1]), ``optimizer``,
        ``weight_decay``, ``lambda2`` (= wd/2, THEORY T15a), ``lambda1`` (0), ``config``,
        ``config_hash``, ``cache_path``, ``loaded_from_cache``, ``train_time_s``, ``layers``
        (the audited block linears) and the record of the training run.

    Notes
    -----
    The caller's global torch RNG state is left unchanged. A cached file that cannot be read,
    whose SHA-256 does not match its record, or whose record is missing, is retrained with a
    ``RuntimeWarning``.
    Writes are atomic (temporary file + ``os.replace``); if the cache cannot be written the
    trained model is still returned, with a ``RuntimeWarning``. Loading uses safetensors only.
    """
    cfg = _config(config)
    folder = cache_path(cache, cfg)
    model = info = None
    loaded = False
    present = [p.name for p in (folder / _MODEL_FILE, folder / _INFO_FILE) if p.exists()]
    if not retrain and present:
        try:
            model, info = _load(folder, cfg)
            loaded = True
            _say(progress, f"loaded the embedded default model from {folder}")
        except Exception as exc:  # any unreadable cache is retrained, never trusted
            warnings.warn(f"the cached embedded default model in {folder} is incomplete or corrupt "
                          f"({type(exc).__name__}: {exc}); retraining it", RuntimeWarning,
                          stacklevel=2)
            model = info = None
    if model is None:
        with _threads_and_rng(threads):
            model, info = _train(cfg, progress)
        try:
            _save(folder, model, info)
        except Exception as exc:
            warnings.warn(f"could not write the embedded default model to the cache {folder} "
                          f"({type(exc).__name__}: {exc}); it will be retrained next time "
                          f"(set ${CACHE_ENV} to a writable folder)", RuntimeWarning, stacklevel=2)
    model = model.float().eval()
    wd = float(cfg["weight_decay"])
    out = {
        **{k: v for k, v in info.items() if k != "format"},
        "name": MODEL_NAME,
        "source": "embedded-default",
        "optimizer": cfg["optimizer"],
        "weight_decay": wd,
        "weight_decay_kind": "coupled L2 on every parameter (gradient of (wd/2)‖w‖²)",
        "lambda2": wd / 2.0,
        "lambda1": 0.0,
        "config": dict(cfg),
        "cache_path": str(folder / _MODEL_FILE),
        "loaded_from_cache": loaded,
        "layers": list(select_block_linears(model)),
    }
    return model, out


# ---------------------------------------------------------------------------- variants
def _as_batches(x, batch_size: int) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x[i:i + batch_size] for i in range(0, len(x), batch_size)]
    out = [b[0] if isinstance(b, tuple | list) else b for b in x]
    if not out or not all(isinstance(b, torch.Tensor) for b in out):
        raise TypeError("calib_x must be a tensor (N, 1, 8, 8) or a non-empty sequence of tensors")
    return out


def default_variants(model: torch.nn.Module, *, calib_x=None,
                     train: tuple[torch.Tensor, torch.Tensor] | None = None, progress: bool = False,
                     seed: int = 0, config: Mapping | None = None,
                     threads: int | None = None) -> list[Variant]:
    """The four variants of the embedded default audit, built on copies of ``model``.

    Parameters
    ----------
    model : nn.Module
        The dense digits ViT (:func:`default_model`); never modified.
    calib_x : tensor (N, 1, 8, 8) or sequence of tensors, optional
        CAST calibration inputs (the second moments ``C_g`` of the layer inputs). Default: the
        SER calibration batches below.
    train : (X, y), optional
        Training data: SER phase-A batches (the first ``calib_batches`` shuffled batches, with
        labels) and fine-tuning. Default: the training part of :func:`audits.data.digits_split`.
    progress : bool, default=False
        Progress lines on stderr.
    seed : int, default=0
        Seed of the calibration batch order, the builders and the fine-tuning order.
    config : mapping, optional
        Overrides of :data:`DEFAULT_CONFIG` (``sparsity``, ``calib_batches``, ``ft_epochs``,
        ``ft_lr``, ``batch_size``).
    threads : int, optional
        Torch threads while building and fine-tuning (restored afterwards); default: the
        caller's setting (see :func:`default_model`).

    Returns
    -------
    list of Variant
        ``[cast-2:4, cast-2:4+ft, hybrid-ser-0.5, hybrid-ser-0.5+ft]`` (for sparsity 0.5):

        * ``cast-2:4`` — CAST 2:4 masks on the block linears qkv/proj/fc1/fc2 (head, patch
          embedding and norms dense), mask decomposition ``S = M ⊙ A``;
        * ``hybrid-ser-0.5`` — Hybrid Magnitude–SER masks (grid 0.05…0.5, no fine-tuning
          between cycles), mask decomposition with the prune–restore ``splits`` (S, Q, P) of its
          final SER step: ``S + Q + P = A`` (the dense weights, since the schedule never modifies
          the model when it does not fine-tune) and ``S + Q = M ⊙ A``;
        * ``…+ft`` — the pruned copy (CAST: ``cast.materialize``; Hybrid: restored entries with
          their phase-A values) after ``ft_epochs`` of frozen-mask fine-tuning
          (:func:`audits.digits.finetune`): an additive decomposition whose ``other_changes``
          list the biases, norms, head and embeddings that moved.
    """
    from .data import digits_split

    cfg = _config(config)
    s = float(cfg["sparsity"])
    k, n = CAST_PATTERNS[s]
    if train is None:
        Xtr, ytr = digits_split(cfg["split_seed"])[:2]
    else:
        Xtr, ytr = train
    bs = int(cfg["batch_size"])
    gen = torch.Generator().manual_seed(10_000 + seed)
    calib_xy = list(batches(Xtr, ytr, bs, gen))[:cfg["calib_batches"]]
    cx = [xb for xb, _ in calib_xy] if calib_x is None else _as_batches(calib_x, bs)
    layers = list(select_block_linears(model))
    ft = {"epochs": cfg["ft_epochs"], "lr": cfg["ft_lr"], "batch_size": bs, "seed": seed}
    out: list[Variant] = []
    with _threads_and_rng(threads):
        for method, label in (("cast", f"cast-{k}:{n}"), ("hybrid", f"hybrid-ser-{s:g}")):
            out += _variant_pair(model, method, label, s, cx, calib_xy, (Xtr, ytr), layers, ft,
                                 progress)
    return out


def _variant_pair(model: torch.nn.Module, method: str, label: str, s: float, calib_x: list,
                  calib_xy: list, train: tuple, layers: list[str], ft: dict,
                  progress: bool) -> list[Variant]:
    """``[mask variant, fine-tuned additive variant]`` of one method on a copy of ``model``."""
    Xtr, ytr = train
    t0 = time.perf_counter()
    torch.manual_seed(ft["seed"])
    build = {"ser_params": {"record_split": True}} if method == "hybrid" else None
    pruned, ms, achieved = prune_model(model, method, s, calib_x, calib_xy, build_params=build)
    if method == "cast":
        desc = (f"CAST {label.removeprefix('cast-')} masks on the block linears (calibration: "
                f"{len(calib_x)} batches), S = M ⊙ A")
        mv = variant_from_masks(model, ms, name=label, description=desc)
        # no splits: from a dense source CAST restores nothing (Q = 0 in cast.restoration_split)
    else:
        desc = (f"Hybrid magnitude→SER masks at sparsity {s:g} (grid 0.05…{s:g}, SER phase A on "
                f"{len(calib_xy)} labelled training batches), S = M ⊙ A with the restored entries "
                "at their dense values; splits = the final SER step's prune–restore split (S, Q, P) "
                "of the dense weights")
        mv = variant_from_masks(model, ms, name=label, description=desc)
        # ms.split was recorded from the final step's input weights, which are the dense weights
        # of `model` (build_masks never fine-tunes, so no cycle modifies the model): S + Q + P = A.
        splits = {name: (sp.S, sp.Q, sp.P) for name, sp in ms.split.items()}
        mv = dataclasses.replace(mv, splits=splits)
    mv = dataclasses.replace(mv, source={**mv.source, "achieved_sparsity": achieved,
                                         "layers": "block linears qkv/proj/fc1/fc2"})
    _say(progress, f"{label}: masks built ({time.perf_counter() - t0:.1f} s)")
    t1 = time.perf_counter()
    finetune(pruned, ms, Xtr, ytr, **ft)
    pruned.eval()
    steps = ft["epochs"] * math.ceil(len(ytr) / ft["batch_size"])
    start = ("cast.materialize (dense source, nothing restored)" if method == "cast" else
             "restored entries at their phase-A values")
    fv = variant_from_state_dict(
        model, pruned.state_dict(), layers, name=f"{label}+ft",
        description=(f"{label} after {steps} steps of frozen-mask fine-tuning (AdamW lr "
                     f"{ft['lr']:g}, wd 0; every parameter trained, so biases, norms, head and "
                     "embeddings moved)"),
        source={"method": method, "base_variant": label, "start": start,
                "achieved_sparsity": achieved,
                "finetune": {"optimizer": "adamw", "weight_decay": 0.0, "max_grad_norm": 1.0,
                             "frozen_masks": True, "steps": steps, **ft}})
    _say(progress, f"{label}+ft: fine-tuned ({time.perf_counter() - t1:.1f} s)")
    return [mv, fv]


# ---------------------------------------------------------------------------- calibration
def default_calibration(n: int = 256):
    """The labelled digits test split (first ``n`` of its 450 samples) as a
    :class:`audits.data.CalibrationSet` (:class:`audits.data.DigitsCalibration`)."""
    from .data import DigitsCalibration

    return DigitsCalibration(split="test", n=n, split_seed=DEFAULT_CONFIG["split_seed"])
