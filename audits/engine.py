r"""The audit engine: measured quantities → per-layer and whole-variant certificates.

:func:`audit_model` runs, for a model, a calibration set T and a list of
:class:`~audits.variants.Variant`:

1. MP fits of every audited dense weight (σ₊, bulk fraction, fit error, spikes — *estimated*,
   THEORY §3.6) with an ESD histogram for the report;
2. the dense pass over T (:func:`audits.measure.dense_pass`): exact ``‖R v_s‖_∞`` per sample;
3. L_s for every path (:mod:`audits.lipschitz_modes`): the single-layer path ``S + θR``, the
   multi-layer step in its intermediate network (Trap T7) and the prune–restore path;
4. per-layer outcomes on T_o (first ``outcome_samples`` samples of T) and E1 estimates on
   T_L (first ``lipschitz_samples``);
5. one pass of each whole variant over T;
6. certificates, violations and status (:mod:`audits.certify`).

Returns the ``layers``, ``variants``, ``dense`` and ``summary`` parts of the report (the caller
adds environment, model, calibration and config).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from certkit._constants import FLOAT32_ATOL, FLOAT32_RTOL, FLOAT64_ATOL, FLOAT64_RTOL
from certkit.classification import accuracy, mean_ce
from certkit.masks import layer_type

from .certify import LipschitzValue, Tolerance, finite_or_none, layer_report, multilayer_report
from .forward_cache import UpstreamCache, trace_plan
from .lipschitz_modes import (
    LipschitzMode,
    layer_output_shapes,
    layer_outputs,
    rigorous_bound,
    rigorous_reason,
    swapped_weights,
)
from .measure import PathSpec, dense_pass, outcome_pass, variant_pass
from .variants import Variant, decomposition_kind

__all__ = ["AuditSettings", "AuditError", "audit_model", "check_layers", "output_layers"]

#: Number of ESD histogram bins stored per layer for the MP-fit figure.
HIST_BINS = 40


class AuditError(ValueError):
    """An audit cannot run with the given inputs (the message says why and what to change)."""


@dataclass(frozen=True)
class AuditSettings:
    """Numerical settings of one audit (see :func:`audits.run_audit` for their meaning)."""

    lam1: float
    lam2: float
    lipschitz: LipschitzMode
    lipschitz_samples: int = 8
    outcome_samples: int = 64
    batch_size: int = 32
    theta_grid: tuple[float, ...] = (0.0, 1.0)
    safety_factor: float = 1.0
    multilayer: bool = True
    mp: bool = True
    progress: bool = True


def check_layers(model: nn.Module, variants: Sequence[Variant]) -> list[str]:
    """Audited layer names (union over variants, model order); clear errors for layers the
    model lacks (with close names), non-Linear/Conv layers and shape mismatches."""
    import difflib

    mods = dict(model.named_modules())
    names: list[str] = []
    for v in variants:
        for ln, S in v.weights.items():
            if ln not in mods:
                close = difflib.get_close_matches(ln, list(mods), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise AuditError(f"variant {v.name!r} has weights for layer {ln!r}, which the "
                                 f"model does not have{hint}")
            mod = mods[ln]
            if not isinstance(mod, nn.Linear | nn.modules.conv._ConvNd) or \
                    getattr(mod, "transposed", False):
                raise AuditError(f"layer {ln!r} is a {type(mod).__name__}; audits factor "
                                 "nn.Linear and (non-transposed) convolution layers only")
            if tuple(S.shape) != tuple(mod.weight.shape):
                raise AuditError(f"variant {v.name!r}: pruned weight of {ln!r} has shape "
                                 f"{tuple(S.shape)}, the layer's weight {tuple(mod.weight.shape)}")
            if ln not in names:
                names.append(ln)
    order = {n: i for i, n in enumerate(mods)}
    return sorted(names, key=order.__getitem__)


def _mp_entry(W: torch.Tensor, enabled: bool) -> dict:
    from certkit.rmt import fit_mp

    rows = int(W.shape[0])
    base = {"status": "skipped", "reason": None, "sigma_plus": None, "lambda_plus": None,
            "entry_variance": None, "c": None, "rows": rows, "bulk_fraction": None,
            "fit_error": None, "n_spikes": None, "spikes": [], "hist": None, "label": "estimated"}
    if not enabled:
        return {**base, "reason": "MP fits disabled"}
    M = W.detach().to(torch.float64).reshape(rows, -1)
    try:
        fit, ev = fit_mp(M, return_spectrum=True)
    except (ValueError, NotImplementedError) as exc:
        return {**base, "reason": str(exc)}
    eig = torch.as_tensor(ev, dtype=torch.float64).reshape(-1)
    eig = eig[eig > 1e-12 * max(float(eig.max()), 1e-300)]
    hi = 1.05 * max(float(eig.max()), fit.lambda_plus)
    counts, edges = torch.histogram(eig, bins=HIST_BINS, range=(0.0, hi), density=True)
    return {**base, "status": "fitted", "sigma_plus": fit.sigma_plus, "lambda_plus": fit.lambda_plus,
            "entry_variance": fit.entry_variance, "c": fit.ratio, "bulk_fraction": fit.bulk_fraction,
            "fit_error": fit.fit_error, "n_spikes": int(fit.n_spikes),
            "spikes": [float(s) for s in fit.spikes],
            "hist": {"edges": edges.tolist(), "density": counts.tolist()}}


def _qp_key(variant: str, layer: str) -> tuple:
    """Dense-pass key of ``‖(Q + P) v_s‖_∞`` for a prune–restore split (layer name second)."""
    return ((variant, "Q+P"), layer)


def output_layers(model: nn.Module, layers: Sequence[str], x: torch.Tensor) -> set[str]:
    """Layers whose output tensor *is* the model's output (ψ2 = identity, so ``L_s = 1``
    exactly: the layer's bias is an ℓ∞ isometry). Found with one forward pass of ``x``."""
    outs, z = layer_outputs(model, layers, x)
    return {ln for ln, out in outs.items() if out is z}


def _lipschitz_plan(model, layers, mode: LipschitzMode, probe,
                    identity: set[str]) -> dict[str, str | None]:
    """Per layer: None = rigorous bound available, else the reason it is not. ``probe()``
    returns one input sample; it is only called when some layer has no structural bound.
    Layers whose ψ2 is the identity (and have no chain bound) are added to ``identity``."""
    reasons = {ln: rigorous_reason(model, ln) for ln in layers}
    if mode.kind != "constant" and any(r is not None for r in reasons.values()):
        for ln in output_layers(model, layers, probe()):
            if reasons[ln] is not None:
                reasons[ln] = None
                identity.add(ln)
    if mode.kind == "rigorous":
        bad = {ln: r for ln, r in reasons.items() if r is not None}
        if bad:
            ln, r = next(iter(bad.items()))
            raise AuditError(f"--lipschitz rigorous: no proven bound for {len(bad)} layer(s), e.g. "
                             f"{ln!r}: {r}. Use --lipschitz auto or estimate (labelled estimated)")
    return reasons


def audit_model(model: nn.Module, calibration, variants: Sequence[Variant],
                settings: AuditSettings) -> dict:
    """Run the audit; returns ``{"dense", "layers", "variants", "summary", "notes"}``."""
    t0 = time.perf_counter()
    if len(calibration) == 0:
        raise AuditError("the calibration set is empty")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise AuditError(f"variant names must be unique, got {names}")
    layers = check_layers(model, variants)
    mods = dict(model.named_modules())
    mode = settings.lipschitz
    outputs: set[str] = set()

    def probe():
        return calibration.load([0])[0]

    reasons = _lipschitz_plan(model, layers, mode, probe, outputs)
    dtype = next(model.parameters()).dtype
    tol = (Tolerance(FLOAT64_ATOL, FLOAT64_RTOL) if dtype == torch.float64
           else Tolerance(FLOAT32_ATOL, FLOAT32_RTOL))
    dense_w = {ln: mods[ln].weight.detach().clone() for ln in layers}

    # decompositions ------------------------------------------------------------------
    kinds: dict[tuple[str, str], str] = {}
    removed, removed_P, splits = {}, {}, {}
    for v in variants:
        for ln, S in v.weights.items():
            S = S.to(dtype=dtype, device=dense_w[ln].device)
            mask = None if v.masks is None else v.masks.get(ln)
            kinds[(v.name, ln)] = decomposition_kind(dense_w[ln], S, mask)
            removed[(v.name, ln)] = dense_w[ln] - S
            if v.splits and ln in v.splits:
                sp = tuple(t.to(dtype=dtype, device=S.device) for t in v.splits[ln])
                splits[(v.name, ln)] = sp
                removed_P[(v.name, ln)] = sp[2]
                # M-Cor 5.6 needs B_T(Q + P) on the path S + θ(Q + P) (Trap T5), whatever S_ℓ is
                removed_P[_qp_key(v.name, ln)] = sp[1] + sp[2]

    # MP fits ---------------------------------------------------------------------------
    layer_entries = []
    for ln in layers:
        mod = mods[ln]
        layer_entries.append({"name": ln, "module_type": type(mod).__name__,
                              "layer_type": layer_type(ln, mod),
                              "shape": [int(mod.weight.shape[0]), int(mod.weight[0].numel())],
                              "mp": _mp_entry(mod.weight, settings.mp)})

    # dense pass ------------------------------------------------------------------------
    was_training = model.training
    model.eval()
    try:
        dense = dense_pass(model, calibration, layers, removed, removed_P,
                           batch_size=settings.batch_size, progress=settings.progress)
        n = dense.logits.shape[0]
        n_o = min(settings.outcome_samples, n)
        n_L = min(settings.lipschitz_samples, n_o)
        x0, _ = calibration.load([0, 1] if n > 1 else [0])
        plan = trace_plan(model, x0, layers)
        cache = UpstreamCache(model, plan)
        cache_ok = cache.verify(x0[:1], rtol=tol.rtol, atol=tol.atol)
        chained = [ln for ln in layers if reasons[ln] is None and ln not in outputs]
        out_shapes = layer_output_shapes(model, chained, x0[:1]) if chained else {}

        # Lipschitz paths ----------------------------------------------------------------
        order = list(plan.order)
        rank = {ln: i for i, ln in enumerate(order)}
        lips: dict[tuple[str, str, str], LipschitzValue] = {}
        paths: list[PathSpec] = []
        for v in variants:
            v_layers = sorted(v.weights, key=rank.__getitem__)
            pruned = {ln: dense_w[ln] - removed[(v.name, ln)] for ln in v_layers}
            for ln in v_layers:
                S = pruned[ln]
                later = {m: pruned[m] for m in v_layers if rank[m] > rank[ln]}
                kinds_here = [("single", S, removed[(v.name, ln)], None)]
                if settings.multilayer:
                    kinds_here.append(("multi", S, removed[(v.name, ln)], later))
                if (v.name, ln) in splits:
                    Ssp, Qsp, Psp = splits[(v.name, ln)]
                    kinds_here.append(("pr", Ssp + Qsp, Psp, None))
                    kinds_here.append(("pr-R", Ssp, Qsp + Psp, None))
                for kind, base, direction, others in kinds_here:
                    key = (v.name, ln, kind)
                    if mode.kind == "constant":
                        lips[key] = LipschitzValue(mode.value, False, "user-constant",
                                                   "L_s held constant (as in the paper's audits)")
                    elif ln in outputs and mode.kind != "estimate":
                        lips[key] = LipschitzValue(1.0, True, "identity",
                                                   "ψ2 is the identity (the layer's output is the "
                                                   "model's output): L_s = 1 exactly")
                    elif reasons[ln] is None and mode.kind != "estimate":
                        with swapped_weights(model, others or {}):
                            val = rigorous_bound(model, ln, out_shapes.get(ln))
                        lips[key] = LipschitzValue(val, True, "L1-chain",
                                                   "proven ℓ∞ bound of the chain after the layer "
                                                   "(THEORY §1.6)")
                    else:
                        paths.append(PathSpec(key, ln, base, direction, others))
        sup_for = {}
        for p in paths:
            v, ln, kind = p.key
            sup_for[p.key] = (dense.sup_P[(v, ln)] if kind == "pr" else
                              dense.sup_P[_qp_key(v, ln)] if kind == "pr-R" else dense.sup[(v, ln)])

        # outcomes on T_o, estimates on T_L ----------------------------------------------
        replaced = {}
        for v in variants:
            for ln in v.weights:
                replaced[(v.name, ln)] = (ln, dense_w[ln] - removed[(v.name, ln)])
                if (v.name, ln) in splits:
                    Ssp, Qsp, Psp = splits[(v.name, ln)]
                    replaced[(v.name, ln + "#S+Q")] = (ln, Ssp + Qsp)
                    replaced[(v.name, ln + "#S+Q+P")] = (ln, Ssp + Qsp + Psp)
        logits_o, est = outcome_pass(model, calibration, order, replaced, n_o, paths, n_L,
                                     settings.theta_grid, sup_for, cache,
                                     batch_size=min(settings.batch_size, 16),
                                     progress=settings.progress)
        for p in paths:
            why = ("" if mode.kind == "estimate" else f"no proven bound: {reasons[p.layer]}; ")
            lips[p.key] = LipschitzValue(
                settings.safety_factor * est[p.key], False, "estimate:jacobian-fd",
                f"{why}E1 directional derivative (difference quotient) max over {n_L} sample(s) × θ ∈ "
                f"{list(settings.theta_grid)}" + (f" × safety {settings.safety_factor:g}"
                                                  if settings.safety_factor != 1 else "")
                + " — a lower estimate, not a bound (THEORY §1.7)")
        if mode.scale != 1.0:
            lips = {k: LipschitzValue(lv.value * mode.scale, False, lv.method + f"×{mode.scale:g}",
                                      lv.detail + f"; scaled by {mode.scale:g} (not certified)")
                    for k, lv in lips.items()}

        # whole variants + certificates --------------------------------------------------
        variant_entries = []
        all_viol = 0
        for v in variants:
            logits_v = variant_pass(model, calibration,
                                    {ln: dense_w[ln] - removed[(v.name, ln)] for ln in v.weights},
                                    batch_size=settings.batch_size, progress=settings.progress,
                                    desc=f"variant {v.name}")
            entries, violations = [], []
            for ln in sorted(v.weights, key=rank.__getitem__):
                key = (v.name, ln)
                S = dense_w[ln] - removed[key]
                sl = None
                if key in splits:
                    sl = (logits_o[(v.name, ln + "#S+Q")], logits_o[(v.name, ln + "#S+Q+P")])
                e, viol = layer_report(
                    ln, dense_w[ln], S, kinds[key], sup=dense.sup[key], lip=lips[(v.name, ln, "single")],
                    dense_logits=dense.logits, labels=dense.labels, pruned_logits=logits_o[key],
                    lam1=settings.lam1, lam2=settings.lam2, tol=tol,
                    input_sup_mean=float(dense.input_sup[ln].mean()),
                    split=splits.get(key), sup_P=dense.sup_P.get(key),
                    lip_P=lips.get((v.name, ln, "pr")), split_logits=sl,
                    sup_R=dense.sup_P.get(_qp_key(v.name, ln)), lip_R=lips.get((v.name, ln, "pr-R")))
                entries.append(e)
                violations += viol
            v_kinds = {kinds[(v.name, ln)] for ln in v.weights}
            v_kind = v_kinds.pop() if len(v_kinds) == 1 else "mixed"
            multi = None
            margins = {"true_margin": [], "two_eta": [], "flipped": []}
            if settings.multilayer:
                steps = [{"layer": ln, "A": dense_w[ln], "S": dense_w[ln] - removed[(v.name, ln)],
                          "sup": dense.sup[(v.name, ln)], "lip": lips[(v.name, ln, "multi")],
                          "lam1": settings.lam1, "lam2": settings.lam2}
                         for ln in sorted(v.weights, key=rank.__getitem__, reverse=True)]
                multi, viol, margins = multilayer_report(
                    steps, v_kind if v_kind == "mask" else "additive", dense_logits=dense.logits,
                    labels=dense.labels, variant_logits=logits_v, tol=tol)
                violations += viol
            n_tot = sum(int(w.numel()) for w in v.weights.values())
            n_zero = sum(int((dense_w[ln] - removed[(v.name, ln)] == 0).sum()) for ln in v.weights)
            counts = {s: sum(1 for e in entries if e["status"] == s)
                      for s in ("certified", "estimated", "violated")}
            all_viol += len(violations)
            variant_entries.append({
                "name": v.name, "description": v.description, "decomposition": v_kind,
                "sparsity": n_zero / max(1, n_tot), "source": v.source,
                "other_changes": list(v.other_changes), "layers": entries, "multilayer": multi,
                "margins": margins, "violations": violations,
                "summary": {"n_layers": len(entries), **counts,
                            "decrease_certified": sum(1 for e in entries if e["decrease_certified"])},
            })
    finally:
        model.train(was_training)

    for e in layer_entries:
        e["positions"] = int(dense.positions.get(e["name"], 1))
        e["input_sup_mean"] = float(dense.input_sup[e["name"]].mean())
    totals = {s: sum(v["summary"][s] for v in variant_entries)
              for s in ("certified", "estimated", "violated")}
    notes = []
    if not cache_ok:
        notes.append("upstream replay failed its self-check; every per-layer outcome used a "
                     "full forward pass")
    if n_o < n:
        notes.append(f"per-layer outcomes (|ΔCE| vs B, flips vs at-risk) are measured on the first "
                     f"{n_o} of {n} calibration samples, with the budget recomputed on exactly "
                     "those samples; whole-variant results use all of T")
    if any(v["other_changes"] for v in variant_entries):
        notes.append("some variants change parameters outside the audited weights (other_changes); "
                     "the certificates cover the network with only the audited weights replaced")
    return finite_or_none({
        "dense": {"ce": mean_ce(dense.logits, dense.labels),
                  "accuracy": accuracy(dense.logits, dense.labels), "n": n},
        "label_policy": dense.label_policy,
        "input_shape": dense.input_shape,
        "layers": layer_entries,
        "variants": variant_entries,
        "summary": {"n_layers": len(layers), "n_variants": len(variant_entries), **totals,
                    "violations": all_viol, "wall_time_s": time.perf_counter() - t0},
        "notes": notes,
        "outcome_samples": n_o,
        "lipschitz_samples": n_L,
    })
