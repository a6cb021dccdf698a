r"""A small but genuine audit report, for tests, docs and renderer development.

:func:`example_report` audits a 3-layer ReLU MLP (``fc1`` 96×48, ``fc2`` 64×96, ``head`` 10×64)
on 64 random calibration inputs against two variants, computing every number with certkit:

* ``magnitude-50`` — magnitude masks on all layers (mask decomposition). ``L_s`` is the
  rigorous L1 bound (THEORY §1.6), so every certificate is *certified*; ``fc2`` also carries a
  prune–restore split (M-Thm 5.5 / M-Cor 5.6), and the three layers are pruned from the output
  backwards (M-Thm 5.8 / E-Cor 1.3; with original downstream weights L1 stays valid for the
  intermediate networks and the inputs are unchanged, Trap T7).
* ``ft-drift`` — the same masks, but the kept weights of ``fc1``/``fc2`` moved ("fine-tuned"),
  so those layers are *additive* decompositions (Trap T8): the mask theorems are listed as not
  applicable and M-Thm 5.3 is used instead. ``L_s`` of ``fc1``/``fc2`` is a Jacobian-sampling
  *estimate*; for ``fc2`` it is deliberately shrunk by 10⁻³, which produces one (estimated)
  violation of M-Lemma 5.1 — what a too-small Lipschitz estimate looks like in a report.

The report is deterministic (fixed seeds, fixed ``created`` time and wall time).
"""

from __future__ import annotations

import math
import platform
import sys

import numpy as np
import torch

import certkit
from certkit import MLP, compute_budget, fit_mp
from certkit.certificates import (
    MaskStep,
    ce_path_bound,
    elastic_net_certificate,
    frobenius_certificate,
    margin_stability,
    multilayer_certificate,
    multilayer_margin_stability,
    prune_restore_certificate,
    restoration_criterion,
)
from certkit.classification import accuracy, correct, mean_ce, true_margins
from certkit.lipschitz import jacobian_estimate, lipschitz_L1
from certkit.rmt import covariance_eigenvalues

from .schema import SCHEMA_VERSION, certificate_dict, to_jsonable

__all__ = ["example_report"]

_LAYERS = ("fc1", "fc2", "head")
_WIDTHS = (48, 96, 64, 10)
_N = 64
_LAM1, _LAM2 = 1e-3, 2.0
_PROXY_LABEL = "proxy — not a bound (Trap T12)"
_MASK_ONLY = (
    ("M-Thm 5.4", "elastic-net mask certificate needs S ⊙ R = 0; the kept weights moved (Trap T8)"),
    ("M-Thm 5.5", "prune–restore needs disjoint S, Q, P (Trap T8)"),
    ("M-Thm 5.7", "stationarity bound is stated for mask decompositions (Trap T8)"),
    ("M-Thm 5.8", "sequential multi-layer certificate needs mask steps (Trap T8)"),
)


def _network(gen: torch.Generator) -> MLP:
    """Random MLP whose weights are MP noise plus a rank-2 signal (so the fits show spikes)."""
    ws, bs = [], []
    for rows, cols in zip(_WIDTHS[1:], _WIDTHS[:-1], strict=True):
        noise = torch.randn(rows, cols, generator=gen, dtype=torch.float64) / math.sqrt(cols)
        u = torch.randn(rows, 2, generator=gen, dtype=torch.float64) / math.sqrt(rows)
        v = torch.randn(cols, 2, generator=gen, dtype=torch.float64) / math.sqrt(cols)
        ws.append(noise + 3.0 * u @ v.T)
        bs.append(0.1 * torch.randn(rows, generator=gen, dtype=torch.float64))
    return MLP(tuple(ws), tuple(bs), activation="relu")


def _keep_mask(W: torch.Tensor, sparsity: float) -> torch.Tensor:
    k = int(round(sparsity * W.numel()))
    order = W.abs().flatten().argsort()
    keep = torch.ones(W.numel(), dtype=torch.bool)
    keep[order[:k]] = False
    return keep.reshape(W.shape)


def _mp_entry(W: torch.Tensor) -> dict:
    rows = int(W.shape[0])
    try:
        fit = fit_mp(W)
    except ValueError as exc:
        return {"status": "skipped", "reason": str(exc).split(";")[0], "sigma_plus": None,
                "lambda_plus": None, "entry_variance": None, "c": None, "rows": rows,
                "bulk_fraction": None, "fit_error": None, "n_spikes": None, "spikes": [],
                "hist": None, "label": "estimated"}
    density, edges = np.histogram(covariance_eigenvalues(W, drop_zeros=True), bins=30, density=True)
    return {"status": "fitted", "reason": None, "sigma_plus": fit.sigma_plus,
            "lambda_plus": fit.lambda_plus, "entry_variance": fit.entry_variance, "c": fit.ratio,
            "rows": rows, "bulk_fraction": fit.bulk_fraction, "fit_error": fit.fit_error,
            "n_spikes": fit.n_spikes, "spikes": list(fit.spikes),
            "hist": {"edges": edges.tolist(), "density": density.tolist()}, "label": "estimated"}


def _layer_status(certs: list[dict], budget_certified: bool) -> str:
    if any(c["kind"] == "check" and c["holds"] is False for c in certs):
        return "violated"
    if budget_certified and all(c["certified"] for c in certs):
        return "certified"
    return "estimated"


def _violations(layer: str, certs: list[dict]) -> list[dict]:
    out = []
    for c in certs:
        if c["kind"] == "check" and c["holds"] is False:
            why = ("a certified bound failed: a bug or a broken hypothesis" if c["certified"] else
                   "the estimated L_s was too small; not a counterexample to the theorem")
            out.append({"layer": layer, "result": c["result"], "lhs": c["lhs"], "rhs": c["rhs"],
                        "certified": c["certified"],
                        "message": f"{c['result']}: lhs {c['lhs']:.4g} > rhs {c['rhs']:.4g} ({why})"})
    return out


class _Audit:
    """Shared state of the example audit (network, calibration set, dense logits)."""

    def __init__(self):
        gen = torch.Generator().manual_seed(20260602)
        self.mlp = _network(gen)
        self.x = torch.randn(_N, _WIDTHS[0], generator=gen, dtype=torch.float64)
        self.z = self.mlp(self.x)
        labels = self.z.argmax(1)
        relabel = torch.rand(_N, generator=gen) < 0.25
        self.y = torch.where(relabel, torch.randint(0, _WIDTHS[-1], (_N,), generator=gen), labels)
        self.V = [self.mlp.layer_input(k, self.x) for k in range(3)]
        self.A = list(self.mlp.weights)

    def layer(self, k: int, S: torch.Tensor, lip, lip_detail: str, mask: bool,
              split: tuple | None = None) -> tuple[dict, object]:
        A, V = self.A[k], self.V[k]
        R = A - S
        budget = compute_budget(R, V, lip)
        after = self.mlp.with_weight(k, S)(self.x)
        ce_change = mean_ce(after, self.y) - mean_ce(self.z, self.y)
        ms = margin_stability(self.z, budget, self.y, logits_after=after)
        certs = [ce_path_bound(budget, observed=abs(ce_change)), ms.certificate()]
        fro2, l1 = float((R * R).sum()), float(R.abs().sum())
        if mask:
            certs.append(elastic_net_certificate(R, budget, _LAM1, _LAM2, S=S))
            na = []
        else:
            certs.append(frobenius_certificate(S, R, budget, _LAM2))
            na = [{"result": r, "reason": why} for r, why in _MASK_ONLY]
        cert_dicts = [certificate_dict(c) for c in certs]
        prune_restore = None
        if split is not None:
            Sx, Q, P = split
            b_p = budget  # path S + Q + θP is the layer's own path
            b_r = compute_budget(Q + P, V, lip)
            prune_restore = {"budget_P": b_p.value, "budget_R": b_r.value, "certificates": [
                certificate_dict(prune_restore_certificate(Sx, Q, P, b_p, _LAM1, _LAM2, A=A)),
                certificate_dict(restoration_criterion(Q, P, b_r, b_p, _LAM1, _LAM2)),
            ]}
        n_flips = int(ms.flips.sum())
        entry = {
            "name": _LAYERS[k],
            "decomposition": "mask" if mask else "additive",
            "sparsity": float((S == 0).double().mean()),
            "removed_fro2": fro2,
            "removed_l1": l1,
            "cross_term": float((S * R).sum()),
            "penalty": _LAM2 * fro2 + _LAM1 * l1,
            "lipschitz": {"value": max(lip.values), "certified": lip.certified, "method": lip.method,
                          "detail": lip_detail},
            "budget": {"value": budget.value, "certified": budget.certified,
                       "method": budget.lipschitz_method, "label": budget.label},
            "eta_max": max(budget.eta),
            "eta_mean": float(np.mean(budget.eta)),
            "proxy": {"op_norm_times_input_sup": float(torch.linalg.matrix_norm(R, 2))
                      * float(V.abs().amax(1).mean()), "label": _PROXY_LABEL},
            "certificates": cert_dicts,
            "not_applicable": na,
            "outcome": {
                "n": _N, "ce_change": ce_change, "budget": budget.value,
                "acc_change": accuracy(after, self.y) - accuracy(self.z, self.y),
                "n_pred_flips": int(ms.pred_flips.sum()), "n_flips": n_flips,
                "n_at_risk": ms.n_at_risk, "n_pred_at_risk": int(ms.pred_at_risk.sum()),
                "flips_within_at_risk": not bool((ms.flips & ~ms.at_risk).any()),
                "ce_within_budget": bool(cert_dicts[0]["holds"]),
            },
            "prune_restore": prune_restore,
            "status": _layer_status(cert_dicts + (prune_restore or {}).get("certificates", []),
                                    budget.certified),
            "decrease_certified": bool(cert_dicts[2]["holds"] and cert_dicts[2]["certified"]),
        }
        return entry, budget

    def variant(self, name: str, description: str, weights: list[torch.Tensor], lips: list,
                details: list[str], masks: list[bool], splits: dict, source: dict,
                multilayer: bool) -> dict:
        layers, budgets = [], []
        for k in range(3):
            entry, b = self.layer(k, weights[k], lips[k], details[k], masks[k], splits.get(k))
            layers.append(entry)
            budgets.append(b)
        final = MLP(tuple(weights), self.mlp.biases, "relu")
        after = final(self.x)
        flipped = correct(after, self.y) != correct(self.z, self.y)
        eta_tot = torch.tensor([sum(b.eta[s] for b in budgets) for s in range(_N)])
        ml = None
        if multilayer:
            order = [2, 1, 0]
            steps = [MaskStep(self.A[k] - weights[k], budgets[k], _LAM1, _LAM2, S=weights[k],
                              layer=_LAYERS[k]) for k in order]
            ce_change = mean_ce(after, self.y) - mean_ce(self.z, self.y)
            d_j = ce_change - sum(layers[k]["penalty"] for k in order)
            mms = multilayer_margin_stability(self.z, [budgets[k] for k in order], self.y,
                                              logits_after=after)
            certs = [certificate_dict(multilayer_certificate(steps, observed=d_j)),
                     certificate_dict(mms.certificate())]
            ml = {
                "order": [_LAYERS[k] for k in order],
                "order_rule": "output-backwards: inputs of each step are unchanged and L1 with the "
                              "original downstream weights bounds every intermediate network (Trap T7)",
                "steps": [{"layer": _LAYERS[k], "budget": budgets[k].value, "lipschitz": max(lips[k].values),
                           "certified": budgets[k].certified, "method": budgets[k].lipschitz_method}
                          for k in order],
                "sum_budgets": sum(b.value for b in budgets),
                "certificates": certs,
                "outcome": {"n": _N, "ce_change": ce_change,
                            "acc_change": accuracy(after, self.y) - accuracy(self.z, self.y),
                            "n_flips": int(flipped.sum()), "n_pred_flips": int(mms.pred_flips.sum()),
                            "n_at_risk": mms.n_at_risk},
                "status": _layer_status(certs, all(b.certified for b in budgets)),
            }
        violations = [v for e in layers for v in _violations(e["name"], e["certificates"])]
        decomps = {e["decomposition"] for e in layers}
        n_removed = sum(int((w == 0).sum()) for w in weights)
        return {
            "name": name,
            "description": description,
            "decomposition": decomps.pop() if len(decomps) == 1 else "mixed",
            "sparsity": n_removed / sum(w.numel() for w in weights),
            "source": source,
            "other_changes": [],
            "layers": layers,
            "multilayer": ml,
            "margins": {"true_margin": true_margins(self.z, self.y).tolist(),
                        "two_eta": (2.0 * eta_tot).tolist(), "flipped": flipped.tolist()},
            "violations": violations,
            "summary": {
                "n_layers": len(layers),
                "certified": sum(e["status"] == "certified" for e in layers),
                "estimated": sum(e["status"] == "estimated" for e in layers),
                "violated": sum(e["status"] == "violated" for e in layers),
                "decrease_certified": sum(e["decrease_certified"] is True for e in layers),
            },
        }


def example_report() -> dict:
    """Build the example audit report (valid against :data:`~audits.report.schema.REPORT_SCHEMA`).

    Returns
    -------
    dict
        A report with 3 layers and 2 variants (``magnitude-50``: mask, certified;
        ``ft-drift``: mixed additive/mask, estimated, one violation), computed with certkit.
    """
    torch_threads = torch.get_num_threads()
    audit = _Audit()
    mlp, A = audit.mlp, audit.A
    sparsities = (0.5, 0.5, 0.3)
    keep = [_keep_mask(W, s) for W, s in zip(A, sparsities, strict=True)]
    l1 = [lipschitz_L1(mlp, k) for k in range(3)]
    l1_detail = "‖|W_L|⋯|W_{k+1}|‖_∞→∞ of the original downstream weights (THEORY §1.6)"

    # variant 1: masks; fc2 additionally pruned from 60 % with the 50–60 % band restored.
    mask_w = [A[k] * keep[k] for k in range(3)]
    over = _keep_mask(A[1], 0.6)
    Q = A[1] * (keep[1] & ~over)
    P = A[1] * ~keep[1]
    v1 = audit.variant(
        "magnitude-50", "global magnitude masks (50 % / 50 % / 30 %), L_s = L1 bound",
        mask_w, l1, [l1_detail] * 3, [True] * 3, {1: (A[1] * over, Q, P)},
        {"method": "magnitude", "sparsity": list(sparsities)}, multilayer=True)

    # variant 2: the kept weights of fc1/fc2 drift (fine-tuning): additive decompositions.
    gen = torch.Generator().manual_seed(7)
    drift_w = [mask_w[k] + 0.05 * keep[k] * torch.randn(A[k].shape, generator=gen, dtype=torch.float64)
               * A[k].std() if k < 2 else mask_w[k] for k in range(3)]
    lips, details = [], []
    for k, factor in ((0, 1.0), (1, 1e-3)):
        est = jacobian_estimate(lambda u, k=k: mlp.psi2(k, u), drift_w[k], A[k] - drift_w[k],
                                audit.V[k], n_grid=9, safety_factor=factor)
        lips.append(est)
        details.append("E1 Jacobian sampling on a 9-point θ-grid (a lower estimate, THEORY §1.7)"
                       + ("" if factor == 1.0 else "; deliberately ×1e-3 to show a violation"))
    lips.append(l1[2])
    details.append(l1_detail)
    v2 = audit.variant(
        "ft-drift", "same masks, kept weights of fc1/fc2 moved by fine-tuning",
        drift_w, lips, details, [False, False, True], {},
        {"method": "magnitude+finetune", "checkpoint": None}, multilayer=False)

    variants = [v1, v2]
    layers = []
    for k, name in enumerate(_LAYERS):
        V = audit.V[k]
        layers.append({"name": name, "module_type": "Linear",
                       "layer_type": "head" if name == "head" else "mlp",
                       "shape": list(A[k].shape), "positions": 1,
                       "input_sup_mean": float(V.abs().amax(1).mean()), "mp": _mp_entry(A[k])})
    report = {
        "schema": "certkit.audit",
        "schema_version": SCHEMA_VERSION,
        "created": "2026-06-02T12:00:00+00:00",
        "status": "complete",
        "environment": {"certkit": certkit.__version__, "python": platform.python_version(),
                        "torch": torch.__version__, "timm": None, "numpy": np.__version__,
                        "platform": f"{sys.platform}-{platform.machine()}",
                        "torch_threads": torch_threads},
        "model": {"name": "example-mlp-48-96-64-10", "source": "audits.report.example",
                  "checkpoint": None, "n_params": sum(W.numel() + W.shape[0] for W in A),
                  "dtype": "float64", "activation": "relu"},
        "calibration": {"source": "synthetic N(0, I) inputs (seed 20260602)", "n": _N,
                        "label_policy": "given", "input_shape": [_WIDTHS[0]],
                        "skipped": [{"path": "calib/broken_0007.png", "reason": "cannot decode image"}]},
        "config": {"lam1": _LAM1, "lam2": _LAM2, "weight_decay": None,
                   "lambda_source": "chosen by hand for the example", "lipschitz": "L1",
                   "lipschitz_samples": _N, "outcome_samples": _N, "batch_size": 32, "seed": 20260602,
                   "theta_grid": [0.0, 0.5, 1.0], "safety_factor": 1.0,
                   "tolerance": {"atol": 1e-10, "rtol": 1e-9}},
        "dense": {"ce": mean_ce(audit.z, audit.y), "accuracy": accuracy(audit.z, audit.y), "n": _N},
        "layers": layers,
        "variants": variants,
        "summary": {
            "n_layers": len(layers), "n_variants": len(variants),
            "certified": sum(v["summary"]["certified"] for v in variants),
            "estimated": sum(v["summary"]["estimated"] for v in variants),
            "violated": sum(v["summary"]["violated"] for v in variants),
            "violations": sum(len(v["violations"]) for v in variants),
            "wall_time_s": 1.25,
        },
        "notes": [
            "Example report built by audits.report.example on a random MLP; not a real model.",
            "ft-drift: the margins figure sums per-layer η_s computed in the original network; "
            "that sum is not covered by E-Cor 1.3 (Trap T7) and is shown for illustration only.",
        ],
    }
    return to_jsonable(report)
