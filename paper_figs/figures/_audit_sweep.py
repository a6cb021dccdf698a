r"""The shared sparsity sweep of the certificate-audit figures (THEORY §5.3, rigorous analogs).

One sweep per ``(quick, seed)`` (:func:`sweep`, cached): three digits classifiers — an MLP and a
small CNN built as ``nn.Sequential`` chains (so every ``L_s`` is the proven ``chain_l1_bound`` of
ψ2, THEORY §1.6: *certified*) and the digits ViT of :mod:`audits.default` (attention and
LayerNorm have no proven ℓ∞ bound in certkit, so its ``L_s`` are E1 *estimates*, THEORY §1.7,
except the head whose ψ2 is the identity) — each pruned with layerwise-uniform magnitude masks
at every sparsity of the sweep, all masks of one model audited in one
:func:`audits.run_audit` call (nothing written: ``out=None``). The report gives per layer the
true budget ``B_T(R_ℓ) = (2/|T|)Σ_s L_s‖R_ℓ v_s‖_∞`` (M-eq. 8), the MP edge σ₊ of the dense
weight, the Trap-T12 proxy ``‖R_ℓ‖_op·mean_s‖v_s‖_∞``, and per variant the multi-layer
certificate (M-Thm 5.8 / E-Cor 1.3: budgets ``B_j`` in the intermediate networks, Trap T7) with
the measured ``ΔL_CE``, flips and at-risk counts on the same T (Trap T20). The only quantity the
report does not hold — the per-sample logit change ``‖z_S(s) − z_A(s)‖_∞`` — is recomputed here
with one forward pass of the dense and of the pruned network.
"""

from __future__ import annotations

import copy
import functools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._threads import one_thread

__all__ = ["ARCHITECTURES", "Sweep", "audit_architecture", "sweep", "sparsities", "trained_model"]

#: Architectures of the sweep (display names) in plotting order.
ARCHITECTURES = ("MLP", "CNN", "ViT")
#: Sparsities of the quick sweep and of the full one (THEORY §5.3: 0.05…0.70 step 0.05).
QUICK_SPARSITIES = (0.1, 0.3, 0.5, 0.7)
FULL_SPARSITIES = tuple(round(0.05 * k, 2) for k in range(1, 15))
#: The small digits ViT of the quick mode (cached by :func:`audits.default.default_model`).
QUICK_VIT = {"epochs": 20, "embed_dim": 40, "depth": 2, "num_heads": 2}
#: Coupled SGD weight decay of the MLP/CNN training (λ2 = wd/2, THEORY Trap T15a).
WEIGHT_DECAY = 1e-3


@dataclass(frozen=True)
class _Settings:
    """Sizes of one sweep."""

    n_calibration: int
    outcome_samples: int
    lipschitz_samples: int
    theta_grid: tuple[float, ...]
    epochs: int


_QUICK = _Settings(n_calibration=160, outcome_samples=40, lipschitz_samples=16,
                   theta_grid=(0.0, 0.5, 1.0), epochs=12)
_FULL = _Settings(n_calibration=450, outcome_samples=150, lipschitz_samples=64,
                  theta_grid=(0.0, 0.25, 0.5, 0.75, 1.0), epochs=40)


@dataclass(frozen=True)
class Sweep:
    """Long-form tables of one sweep.

    ``layers``: one row per (architecture, sparsity, layer); ``variants``: one row per
    (architecture, sparsity); ``samples``: one row per (architecture, sparsity, sample of T).
    """

    layers: pd.DataFrame
    variants: pd.DataFrame
    samples: pd.DataFrame


def sparsities(quick: bool) -> tuple[float, ...]:
    """The sparsities of the sweep."""
    return QUICK_SPARSITIES if quick else FULL_SPARSITIES


def _mlp() -> nn.Sequential:
    """64 → 128 → 64 → 32 → 10 ReLU MLP (the ``fc*`` layers are "mlp", ``head`` "embed/head")."""
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(64, 128)), ("act1", nn.ReLU()),
        ("fc2", nn.Linear(128, 64)), ("act2", nn.ReLU()), ("fc3", nn.Linear(64, 32)),
        ("act3", nn.ReLU()), ("head", nn.Linear(32, 10))]))


def _cnn() -> nn.Sequential:
    """Three 3×3 convs (16, 32, 32 channels; 8×8 → 4×4), a 512 → 64 ``fc1`` and the head."""
    features = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
    return nn.Sequential(OrderedDict([
        ("features", features), ("flatten", nn.Flatten()), ("fc1", nn.Linear(512, 64)),
        ("act", nn.ReLU()), ("head", nn.Linear(64, 10))]))


def trained_model(arch: str, *, quick: bool, seed: int) -> nn.Module:
    """The dense digits classifier ``arch`` (eval mode, float32), trained deterministically.

    MLP/CNN: initialised under ``torch.manual_seed(seed)`` and trained with
    :func:`audits.digits.train_dense` (SGD, coupled weight decay :data:`WEIGHT_DECAY`, seeded
    batch order) on the digits train split, one torch thread. ViT: the embedded-default digits
    ViT (:func:`audits.default.default_model`; small :data:`QUICK_VIT` config in quick mode),
    trained once per config and cached in :func:`audits.default.cache_dir`.
    """
    if arch == "ViT":
        from audits.default import default_model

        config = {**(QUICK_VIT if quick else {}), "seed": int(seed)}
        net, _ = default_model(config=config, threads=1)
        return net.eval()
    if arch not in ("MLP", "CNN"):
        raise ValueError(f"arch == {arch!r}, must be one of {ARCHITECTURES}")
    from audits.data import digits_split
    from audits.digits import train_dense

    settings = _QUICK if quick else _FULL
    Xtr, ytr, _, _ = digits_split(0)
    with one_thread(fork_rng=True):
        torch.manual_seed(seed)
        net = _mlp() if arch == "MLP" else _cnn()
        train_dense(net, Xtr, ytr, epochs=settings.epochs, lr=0.05, batch_size=64, seed=seed,
                    optimizer="sgd", weight_decay=WEIGHT_DECAY)
    return net.eval()


def audit_architecture(arch: str, net: nn.Module, levels: Sequence[float], *, quick: bool,
                       lipschitz: str = "auto") -> Sweep:
    """Audit ``net`` pruned by layerwise magnitude masks at each sparsity of ``levels``.

    Parameters
    ----------
    arch : str
        Display name written into the tables.
    net : nn.Module
        Dense model (not modified).
    levels : sequence of float
        Sparsities; one mask variant each, all audited in one :func:`audits.run_audit` call.
    quick : bool
        Calibration and estimate sizes (:data:`_QUICK` / :data:`_FULL`).
    lipschitz : str
        ``L_s`` mode of the audit (``"auto"``: proven where certkit has a bound, else estimated;
        ``"constant:<v>"`` reproduces the paper's held-constant L_s, never certified).

    Returns
    -------
    Sweep
    """
    from audits.data import DigitsCalibration
    from audits.lipschitz_modes import swapped_weights
    from audits.run import run_audit
    from audits.variants import variant_from_masks
    from certkit.masks import build_masks

    settings = _QUICK if quick else _FULL
    cal = DigitsCalibration(split="test", n=settings.n_calibration, split_seed=0)
    with one_thread(fork_rng=True):
        variants = []
        for s in levels:
            ms = build_masks(net, "magnitude", sparsity=float(s), scope="layerwise")
            variants.append(variant_from_masks(net, ms, name=f"magnitude-{s:.2f}"))
        report = run_audit(net, cal, variants=variants, weight_decay=WEIGHT_DECAY,
                           optimizer="sgd", lipschitz=lipschitz,
                           outcome_samples=settings.outcome_samples,
                           lipschitz_samples=settings.lipschitz_samples,
                           theta_grid=settings.theta_grid, batch_size=64, progress=False,
                           out=None, model_name=arch).report
        # per-sample ‖z_S(s) − z_A(s)‖_∞ (the only quantity the report does not hold)
        net64 = copy.deepcopy(net).double().eval()
        X64 = cal.X.to(torch.float64)
        with torch.no_grad():
            z_dense = net64(X64)
            gaps = []
            for v in variants:
                with swapped_weights(net64, {ln: S.double() for ln, S in v.weights.items()}):
                    gaps.append((net64(X64) - z_dense).abs().amax(dim=1).numpy())
    info = {e["name"]: e for e in report["layers"]}
    layer_rows, variant_rows, sample_rows = [], [], []
    for s, v, gap in zip(levels, report["variants"], gaps, strict=True):
        multi = v["multilayer"]
        steps = {st["layer"]: st for st in multi["steps"]}
        for e in v["layers"]:
            li = info[e["name"]]
            layer_rows.append({
                "architecture": arch, "sparsity": float(s), "layer": e["name"],
                "layer_type": li["layer_type"], "sigma_plus": li["mp"]["sigma_plus"],
                "budget": e["budget"]["value"], "proxy": e["proxy"]["op_norm_times_input_sup"],
                "lipschitz": e["lipschitz"]["value"], "lipschitz_method": e["lipschitz"]["method"],
                "certified": bool(e["budget"]["certified"]),
                "step_budget": steps[e["name"]]["budget"],
                "step_certified": bool(steps[e["name"]]["certified"]),
                "status": e["status"], "n_o": e["outcome"]["n"],
                "n_flips": e["outcome"]["n_flips"], "n_at_risk": e["outcome"]["n_at_risk"]})
        certified = all(st["certified"] for st in multi["steps"])  # every L_j,s proven
        out = multi["outcome"]
        variant_rows.append({
            "architecture": arch, "sparsity": float(s), "achieved_sparsity": v["sparsity"],
            "sum_budgets": multi["sum_budgets"], "abs_ce_change": abs(out["ce_change"]),
            "ce_change": out["ce_change"], "acc_change": out["acc_change"],
            "proxy_sum": float(sum(e["proxy"]["op_norm_times_input_sup"] or 0.0
                                   for e in v["layers"])),
            "layer_budget_sum": float(sum(e["budget"]["value"] for e in v["layers"])),
            "n_flips": out["n_flips"], "n_pred_flips": out["n_pred_flips"],
            "n_at_risk": out["n_at_risk"], "n": out["n"], "certified": bool(certified),
            "status": multi["status"], "n_violations": len(v["violations"]),
            "dense_accuracy": report["dense"]["accuracy"]})
        eta = 0.5 * np.asarray(v["margins"]["two_eta"], dtype=float)
        sample_rows += [{"architecture": arch, "sparsity": float(s), "sample": i,
                         "logit_gap": float(g), "eta": float(h), "certified": bool(certified)}
                        for i, (g, h) in enumerate(zip(gap, eta, strict=True))]
    return Sweep(pd.DataFrame(layer_rows), pd.DataFrame(variant_rows), pd.DataFrame(sample_rows))


@functools.lru_cache(maxsize=4)
def sweep(quick: bool, seed: int) -> Sweep:
    """The sweep of every architecture of :data:`ARCHITECTURES` (computed once per options)."""
    parts = [audit_architecture(a, trained_model(a, quick=quick, seed=seed), sparsities(quick),
                                quick=quick) for a in ARCHITECTURES]
    return Sweep(*(pd.concat([getattr(p, f) for p in parts], ignore_index=True)
                   for f in ("layers", "variants", "samples")))
