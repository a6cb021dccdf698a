r"""Turn the measured quantities of an audit into certificates, outcome checks and a status.

Per (variant, layer) — THEORY §2.2, ALGORITHMS §8.1:

* M-Lemma 5.1 bound on all of T, and as a *check* ``|ΔCE| ≤ B_{T_o}(R)`` on the outcome subset
  T_o (budget and loss on the **same** samples, Trap T20);
* M-Cor 5.2 on T_o: prediction / correctness flips must lie in the at-risk sets and every
  logit change must be ≤ η_s (this is where an undersized L_s shows up);
* mask decomposition: M-Thm 5.4 condition (B_T < λ2‖R‖²_F + λ1‖R‖₁) and check;
  additive decomposition (Trap T8): M-Thm 5.3 condition and check, M-Thm 5.4/5.5 not applicable;
* prune–restore splits: M-Thm 5.5 (condition + check on T_o) and M-Cor 5.6.

Whole variant — M-Thm 5.8 for masks (steps pruned from the output backwards, budgets in the
intermediate networks, Trap T7), the telescoped M-Lemma 5.1 for any decomposition, E-Cor 1.3.

Status: ``violated`` when a check fails, else ``certified`` when L_s is a proven bound, else
``estimated``. A violation with ``certified=True`` would refute a theorem or reveal a bug.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from certkit.budget import BudgetResult
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
from certkit.certificates._common import penalties
from certkit.classification import correct, per_sample_ce, true_margins
from certkit.results import Certificate

__all__ = ["Tolerance", "LipschitzValue", "make_budget", "layer_report", "multilayer_report",
           "finite_or_none"]


@dataclass(frozen=True)
class Tolerance:
    """THEORY §0.3 tolerances of the audited precision."""

    atol: float
    rtol: float


@dataclass(frozen=True)
class LipschitzValue:
    """One L_s constant used for every sample of a path, with provenance."""

    value: float
    certified: bool
    method: str
    detail: str = ""

    def to_dict(self) -> dict:
        return {"value": self.value, "certified": self.certified, "method": self.method,
                "detail": self.detail}


def finite_or_none(x):
    """Recursively replace non-finite floats (and their ``str`` forms) by None (JSON null)."""
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite_or_none(v) for v in x]
    if isinstance(x, str) and x in ("inf", "-inf", "nan"):
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def make_budget(sup: torch.Tensor, lip: LipschitzValue) -> BudgetResult:
    """``B_T = (2/|T|) Σ_s L ‖R v_s‖_∞`` with ``η_s = L‖R v_s‖_∞`` (M-eq. 8)."""
    eta = lip.value * sup.to(torch.float64)
    return BudgetResult(value=float(2.0 * eta.mean()) if eta.numel() else 0.0,
                        eta=tuple(eta.tolist()), removed_sup=tuple(sup.tolist()),
                        certified=lip.certified, lipschitz_method=lip.method)


def _tol(cert: Certificate, tol: Tolerance) -> Certificate:
    return dataclasses.replace(cert, atol=tol.atol, rtol=tol.rtol)


def _cert_dict(cert: Certificate) -> dict:
    return finite_or_none(cert.to_dict())


def _violation(layer: str, cert: Certificate, message: str) -> dict:
    return {"layer": layer, "result": cert.result, "lhs": cert.lhs, "rhs": cert.rhs,
            "certified": cert.certified, "message": message}


def _margin_violations(layer: str, ms, result: str, certified: bool,
                       secant: tuple[float, float] | None = None) -> list[dict]:
    out = []
    if ms.pred_flips is not None and bool((ms.pred_flips & ~ms.pred_at_risk).any()):
        n = int((ms.pred_flips & ~ms.pred_at_risk).sum())
        out.append({"layer": layer, "result": result, "lhs": float(n), "rhs": 0.0,
                    "certified": certified,
                    "message": f"{n} prediction flip(s) outside the at-risk set "
                               "{Δ_pred ≤ 2η_s}"})
    if ms.flips is not None and bool((ms.flips & ~ms.at_risk).any()):
        n = int((ms.flips & ~ms.at_risk).sum())
        out.append({"layer": layer, "result": result, "lhs": float(n), "rhs": 0.0,
                    "certified": certified,
                    "message": f"{n} correctness flip(s) outside the at-risk set "
                               "{|Δ_true| ≤ 2η_s}"})
    if ms.max_logit_excess is not None and ms.max_logit_excess > ms.tol:
        extra = ""
        if secant is not None:
            extra = (f"; the observed endpoint secant needs L_s ≥ {secant[0]:.4g} "
                     f"(used {secant[1]:.4g})")
        out.append({"layer": layer, "result": result, "lhs": ms.max_logit_excess, "rhs": ms.tol,
                    "certified": certified,
                    "message": "a logit moved by more than η_s = L_s‖R v_s‖_∞ "
                               f"(max excess {ms.max_logit_excess:.3g}){extra}: L_s is not an "
                               "upper bound of the local Lipschitz constant on this path "
                               "(Trap T5)"})
    return out


def _secant(z_before: torch.Tensor, z_after: torch.Tensor, sup: torch.Tensor) -> float:
    """Largest ``‖Δz_s‖_∞ / ‖R v_s‖_∞`` — the smallest constant L the observation allows
    (a diagnostic only: used as L_s it would make M-Lemma 5.1 tautological, Trap T6)."""
    dev = (z_after - z_before).abs().amax(dim=1)
    ok = sup > 0
    return float((dev[ok] / sup[ok]).max()) if bool(ok.any()) else 0.0


def _penalties(R: torch.Tensor, lam1: float, lam2: float) -> tuple[float, float]:
    """(λ2‖R‖²_F, λ1‖R‖₁) through the certificates' own :func:`penalties`."""
    R = R.to(torch.float64)
    return penalties(R, R.new_tensor(lam1), R.new_tensor(lam2))


def layer_report(name: str, A: torch.Tensor, S: torch.Tensor, kind: str, *, sup: torch.Tensor,
                 lip: LipschitzValue, dense_logits: torch.Tensor, labels: torch.Tensor,
                 pruned_logits: torch.Tensor | None, lam1: float, lam2: float, tol: Tolerance,
                 input_sup_mean: float, split=None, sup_P: torch.Tensor | None = None,
                 lip_P: LipschitzValue | None = None, split_logits=None,
                 sup_R: torch.Tensor | None = None, lip_R: LipschitzValue | None = None
                 ) -> tuple[dict, list[dict]]:
    """Certificates, outcome and status of one layer of one variant.

    ``pruned_logits`` are the logits of the first ``n_o`` samples with only this layer set to S
    (None: no outcome). ``split_logits = (logits at S+Q, logits at S+Q+P)`` on the same samples.
    ``sup_R``/``lip_R``: ``‖(Q + P) v_s‖_∞`` and L_s on the path ``S + θ(Q + P)`` (M-Cor 5.6).
    """
    A64, S64 = A.to(torch.float64).reshape(A.shape[0], -1), S.to(torch.float64).reshape(A.shape[0], -1)
    R64 = A64 - S64
    fro2, l1 = float((R64 * R64).sum()), float(R64.abs().sum())
    cross = float((S64 * R64).sum())
    pen2, pen1 = _penalties(R64, lam1, lam2)
    budget = make_budget(sup, lip)
    certs: list[Certificate] = [_tol(ce_path_bound(budget), tol)]
    not_applicable, violations = [], []
    n_o = 0 if pruned_logits is None else pruned_logits.shape[0]
    outcome = None
    if kind == "mask":
        certs.append(_tol(elastic_net_certificate(R64, budget, lam1, lam2, S=S64), tol))
        penalty = pen2 + pen1
    else:
        certs.append(_tol(frobenius_certificate(S64, R64, budget, lam2), tol))
        # the report's "penalty" is λ2‖R‖²_F + λ1‖R‖₁ for every decomposition (schema: >= 0); the
        # M-Thm 5.3 decrease term λ2(‖R‖²_F + 2⟨S,R⟩_F) can be negative and lives in its certificate
        penalty = pen2 + pen1
        reason = ("additive decomposition: S is not M ⊙ A (kept weights moved, e.g. after "
                  "fine-tuning), so the removed and kept supports overlap (Trap T8)")
        not_applicable += [{"result": r, "reason": reason}
                           for r in ("M-Thm 5.4", "M-Thm 5.5", "M-Cor 5.6", "M-Thm 5.8")]
    if n_o:
        zd, zp, y = dense_logits[:n_o], pruned_logits, labels[:n_o]
        ce_d, ce_p = per_sample_ce(zd, y), per_sample_ce(zp, y)
        d_ce = float(ce_p.mean() - ce_d.mean())
        b_o = make_budget(sup[:n_o], lip)
        scale = float(torch.maximum(ce_d.abs(), ce_p.abs()).max())
        c51 = _tol(ce_path_bound(b_o, observed=abs(d_ce), scale=scale), tol)
        ms = margin_stability(zd, torch.tensor(b_o.eta, dtype=torch.float64), y, logits_after=zp,
                              certified=lip.certified, rtol=tol.rtol)
        c52 = _tol(ms.certificate(), tol)
        certs += [c51, c52]
        if kind == "mask":
            certs.append(_tol(elastic_net_certificate(R64, b_o, lam1, lam2, S=S64,
                                                      observed=d_ce - pen2 - pen1, scale=scale), tol))
        else:
            d_j2 = d_ce + lam2 * (float((S64 * S64).sum()) - float((A64 * A64).sum()))
            certs.append(_tol(frobenius_certificate(S64, R64, b_o, lam2, observed=d_j2,
                                                    scale=scale), tol))
        violations += _margin_violations(name, ms, "M-Cor 5.2", lip.certified,
                                         (_secant(zd, zp, sup[:n_o]), lip.value))
        outcome = {"n": n_o, "ce_change": d_ce, "budget": b_o.value,
                   "acc_change": ms.observed_acc_change,
                   "n_pred_flips": int(ms.pred_flips.sum()), "n_flips": int(ms.flips.sum()),
                   "n_at_risk": ms.n_at_risk, "n_pred_at_risk": int(ms.pred_at_risk.sum()),
                   "flips_within_at_risk": not bool((ms.flips & ~ms.at_risk).any()
                                                    or (ms.pred_flips & ~ms.pred_at_risk).any()),
                   "ce_within_budget": bool(c51.holds)}
    pr = None
    if split is not None and kind == "mask":
        pr, pr_certs = _prune_restore(split, sup_R, sup_P, lip_R, lip_P, dense_logits, labels,
                                      split_logits, lam1, lam2, tol)
        certs += pr_certs
    for c in certs:
        if c.kind == "check" and c.holds is False:
            violations.append(_violation(name, c, f"{c.result} check failed: observed "
                                         f"{c.lhs:.6g} > bound {c.rhs:.6g}"))
    cond = next(c for c in certs if c.kind == "condition")
    status = "violated" if violations else ("certified" if lip.certified else "estimated")
    op = float(torch.linalg.matrix_norm(R64, ord=2)) if R64.numel() else 0.0
    entry = {
        "name": name, "decomposition": kind,
        "sparsity": float((S64 == 0).double().mean()) if S64.numel() else 0.0,
        "removed_fro2": fro2, "removed_l1": l1, "cross_term": cross, "penalty": penalty,
        "lipschitz": lip.to_dict(),
        "budget": {"value": budget.value, "certified": budget.certified,
                   "method": budget.lipschitz_method, "label": budget.label},
        "eta_max": max(budget.eta) if budget.eta else 0.0,
        "eta_mean": budget.value / 2.0,
        "proxy": {"op_norm_times_input_sup": op * input_sup_mean,
                  "label": "proxy ‖R‖_op·mean_s‖v_s‖_∞ of the authors' audit — not a bound "
                           "(Trap T12)"},
        "certificates": [_cert_dict(c) for c in certs],
        "not_applicable": not_applicable,
        "outcome": outcome,
        "prune_restore": pr,
        "status": status,
        "decrease_certified": bool(cond.holds and cond.certified),
    }
    return finite_or_none(entry), finite_or_none(violations)


def _prune_restore(split, sup_R, sup_P, lip_R, lip_P, dense_logits, labels, split_logits, lam1,
                   lam2, tol) -> tuple[dict, list[Certificate]]:
    S, Q, P = (t.to(torch.float64).reshape(t.shape[0], -1) for t in split)
    b_P, b_R = make_budget(sup_P, lip_P), make_budget(sup_R, lip_R)
    certs = [_tol(prune_restore_certificate(S, Q, P, b_P, lam1, lam2), tol),
             _tol(restoration_criterion(Q, P, b_R, b_P, lam1, lam2), tol)]
    if split_logits is not None:
        z_sq, z_a = split_logits
        n_o = z_sq.shape[0]
        y = labels[:n_o]
        ce_sq, ce_a = per_sample_ce(z_sq, y), per_sample_ce(z_a, y)
        pen2, pen1 = _penalties(P, lam1, lam2)
        obs = float(ce_sq.mean() - ce_a.mean()) - pen2 - pen1
        scale = float(torch.maximum(ce_sq.abs(), ce_a.abs()).max())
        certs.append(_tol(prune_restore_certificate(S, Q, P, make_budget(sup_P[:n_o], lip_P),
                                                    lam1, lam2, observed=obs, scale=scale), tol))
    return {"budget_P": b_P.value, "budget_R": b_R.value,
            "certificates": [_cert_dict(c) for c in certs]}, certs


def multilayer_report(steps_data: Sequence[dict], kind: str, *,
                      dense_logits: torch.Tensor, labels: torch.Tensor,
                      variant_logits: torch.Tensor, tol: Tolerance) -> tuple[dict, list[dict], dict]:
    """Whole-variant certificates. ``steps_data`` (in pruning order) holds per step: ``layer``,
    ``A``, ``S``, ``sup`` (|T|), ``lip`` (LipschitzValue in the intermediate network), ``lam1``,
    ``lam2``. Returns (multilayer dict, violations, margins dict)."""
    budgets = [make_budget(st["sup"], st["lip"]) for st in steps_data]
    certified = all(b.certified for b in budgets)
    sum_b = sum(b.value for b in budgets)
    ce_d, ce_v = per_sample_ce(dense_logits, labels), per_sample_ce(variant_logits, labels)
    d_ce = float(ce_v.mean() - ce_d.mean())
    scale = float(torch.maximum(ce_d.abs(), ce_v.abs()).max())
    methods = "+".join(sorted({b.lipschitz_method for b in budgets}))
    tele = Certificate(
        "M-Lemma 5.1 (telescoped)",
        "|L_CE(α^(M)) − L_CE(α^(0))| ≤ Σ_j B_j(R_j), each B_j in the intermediate network α^(j−1)",
        "check", abs(d_ce), sum_b, certified, methods,
        ("L_{j,s} ≥ L*_{j,s} on every step's path (intermediate networks, Trap T7)",),
        {"sum_budgets": sum_b, "ce_change": d_ce}, scale=scale)
    certs = [_tol(tele, tol)]
    if kind == "mask":
        ms_steps = []
        pen = 0.0
        for st, b in zip(steps_data, budgets, strict=True):
            A = st["A"].to(torch.float64).reshape(st["A"].shape[0], -1)
            S = st["S"].to(torch.float64).reshape(A.shape[0], -1)
            R = A - S
            ms_steps.append(MaskStep(R, b, st["lam1"], st["lam2"], S=S, layer=st["layer"]))
            p2, p1 = _penalties(R, st["lam1"], st["lam2"])
            pen += p2 + p1
        certs.append(_tol(multilayer_certificate(ms_steps), tol))
        certs.append(_tol(multilayer_certificate(ms_steps, observed=d_ce - pen, scale=scale), tol))
    etas = [torch.tensor(b.eta, dtype=torch.float64) for b in budgets]
    ms = multilayer_margin_stability(dense_logits, etas, labels, logits_after=variant_logits,
                                     certified=certified, rtol=tol.rtol)
    certs.append(_tol(ms.certificate(), tol))
    violations = _margin_violations("(all layers)", ms, "E-Cor 1.3", certified)
    for c in certs:
        if c.kind == "check" and c.holds is False:
            violations.append(_violation("(all layers)", c, f"{c.result} check failed: observed "
                                         f"{c.lhs:.6g} > bound {c.rhs:.6g}"))
    two_eta = 2.0 * torch.stack(etas).sum(0)
    flipped = correct(variant_logits, labels) != correct(dense_logits, labels)
    status = "violated" if violations else ("certified" if certified else "estimated")
    multi = {
        "order": [st["layer"] for st in steps_data],
        "order_rule": ("reverse execution order (output layer first): every step's inputs v_j "
                       "are the dense network's, and L_j is computed in the intermediate network "
                       "in which all later layers are already pruned (Trap T7)"),
        "steps": [{"layer": st["layer"], "budget": b.value, "lipschitz": st["lip"].value,
                   "certified": b.certified, "method": b.lipschitz_method}
                  for st, b in zip(steps_data, budgets, strict=True)],
        "sum_budgets": sum_b,
        "certificates": [_cert_dict(c) for c in certs],
        "outcome": {"n": int(labels.numel()), "ce_change": d_ce,
                    "acc_change": ms.observed_acc_change, "n_flips": int(ms.flips.sum()),
                    "n_pred_flips": int(ms.pred_flips.sum()), "n_at_risk": ms.n_at_risk},
        "status": status,
    }
    margins = {"true_margin": true_margins(dense_logits, labels).tolist(),
               "two_eta": two_eta.tolist(), "flipped": [bool(b) for b in flipped]}
    return finite_or_none(multi), finite_or_none(violations), finite_or_none(margins)
