r"""M-Cor 5.2 (margin stability) and its multi-layer form E-Cor 1.3.

With per-sample logit perturbation bounds ``η_s`` (``‖z_{A_θ}(s) − z_A(s)‖_∞ ≤ η_s``, e.g.
``η_s(θ) = (1−θ) L_s ‖R v_s‖_∞``):

* a prediction can change only if ``Δ_pred(s) ≤ 2η_s``;
* ``|Δ_true^{A_θ}(s) − Δ_true^{A}(s)| ≤ 2η_s``, hence correctness can flip only on the
  at-risk set ``{s : |Δ_true(s)| ≤ 2η_s}`` and
  ``|acc_{A_θ}(T) − acc_A(T)| ≤ #at-risk / |T|``.

The factor 2 here ("two logits each move by ≤ η") is not the CE factor of B_T (Trap T4).
Also known as legacy "Corollary 5.5".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._constants import FLOAT64_ATOL, FLOAT64_RTOL
from .._registry import implements
from .._validation import as_tensor, check_scalar
from ..budget import BudgetResult
from ..classification import correct, prediction_margins, true_margins
from ..results import Certificate

__all__ = ["MarginStability", "margin_stability", "multilayer_margin_stability"]


@dataclass(frozen=True)
class MarginStability:
    """Outcome of M-Cor 5.2 / E-Cor 1.3 on a labelled set T.

    Attributes
    ----------
    result : str
        ``"M-Cor 5.2"`` or ``"E-Cor 1.3"``.
    eta : torch.Tensor
        Per-sample logit perturbation bounds used (shape (|T|,)).
    at_risk : torch.Tensor of bool
        ``|Δ_true(s)| ≤ 2η_s`` (samples whose correctness may flip); all False without labels.
    pred_at_risk : torch.Tensor of bool
        ``Δ_pred(s) ≤ 2η_s`` (samples whose predicted label may change).
    acc_change_bound : float
        ``#at_risk / |T|``, the bound on ``|acc_{A_θ}(T) − acc_A(T)|``.
    ce_change_bound : float
        ``(2/|T|) Σ_s η_s`` (M-Lemma 5.1 / E-Cor 1.3 CE bound).
    certified : bool
    flips, pred_flips : torch.Tensor of bool or None
        Observed correctness / prediction flips (only when ``logits_after`` is given).
    observed_acc_change : float or None
    max_logit_excess : float or None
        ``max_s(‖z_after − z‖_∞ − η_s)``: ≤ 0 (up to tolerance) iff the η_s were valid.
    max_margin_excess : float or None
        ``max_s(|Δ_true^after − Δ_true| − 2η_s)`` (labels only).
    """

    result: str
    eta: torch.Tensor
    at_risk: torch.Tensor
    pred_at_risk: torch.Tensor
    acc_change_bound: float
    ce_change_bound: float
    certified: bool
    flips: torch.Tensor | None = None
    pred_flips: torch.Tensor | None = None
    observed_acc_change: float | None = None
    max_logit_excess: float | None = None
    max_margin_excess: float | None = None
    tol: float = FLOAT64_ATOL

    @property
    def holds(self) -> bool | None:
        """All implied [D] statements hold on the observed logits (None without them)."""
        if self.pred_flips is None:
            return None
        ok = not bool((self.pred_flips & ~self.pred_at_risk).any())
        ok &= not bool((self.flips & ~self.at_risk).any())
        ok &= self.max_logit_excess <= self.tol
        if self.max_margin_excess is not None:
            ok &= self.max_margin_excess <= self.tol
        ok &= self.observed_acc_change <= self.acc_change_bound + self.tol
        return bool(ok)

    @property
    def n_at_risk(self) -> int:
        return int(self.at_risk.sum())

    def certificate(self) -> Certificate:
        """The accuracy statement as a :class:`~certkit.results.Certificate`."""
        return Certificate(
            result=self.result,
            statement="|acc_{A_θ}(T) − acc_A(T)| ≤ #{s : |Δ_true(s)| ≤ 2η_s} / |T|",
            kind="bound" if self.observed_acc_change is None else "check",
            lhs=self.observed_acc_change,
            rhs=self.acc_change_bound,
            certified=self.certified,
            lipschitz_method="see budget",
            assumptions=("‖z_{A_θ}(s) − z_A(s)‖_∞ ≤ η_s for every s ∈ T",),
            details={
                "n_at_risk": float(self.n_at_risk),
                "n_pred_at_risk": float(self.pred_at_risk.sum()),
                "ce_change_bound": self.ce_change_bound,
            },
        )

    def to_dict(self) -> dict:
        def lst(t):
            return None if t is None else [bool(x) for x in t.tolist()]

        return {
            "result": self.result,
            "eta": self.eta.tolist(),
            "at_risk": lst(self.at_risk),
            "pred_at_risk": lst(self.pred_at_risk),
            "acc_change_bound": self.acc_change_bound,
            "ce_change_bound": self.ce_change_bound,
            "certified": self.certified,
            "flips": lst(self.flips),
            "pred_flips": lst(self.pred_flips),
            "observed_acc_change": self.observed_acc_change,
            "max_logit_excess": self.max_logit_excess,
            "max_margin_excess": self.max_margin_excess,
            "holds": self.holds,
        }


def _eta(eta, n: int, theta: float, certified: bool | None) -> tuple[torch.Tensor, bool]:
    if isinstance(eta, BudgetResult):
        vals = torch.tensor(eta.eta, dtype=torch.float64)
        cert = eta.certified
    else:
        vals = as_tensor(eta, "eta", ndim=(0, 1), shape_hint="(|T|,)")
        cert = False
    if vals.ndim == 0 or vals.numel() == 1:
        vals = vals.reshape(1).expand(n).clone()
    if vals.numel() != n:
        raise ValueError(f"eta must have shape (|T|,) = ({n},), got {tuple(vals.shape)}")
    if bool((vals < 0).any()):
        raise ValueError("eta must be >= 0 (perturbation bounds)")
    if certified is not None:
        cert = bool(certified) and (cert or not isinstance(eta, BudgetResult))
    return (1.0 - theta) * vals, cert


def _stability(result, logits, eta_vals, cert, labels, logits_after, rtol) -> MarginStability:
    z = as_tensor(logits, "logits", ndim=2, shape_hint="(|T|, K)")
    two_eta = 2.0 * eta_vals
    pred_at_risk = prediction_margins(z) <= two_eta
    if labels is not None:
        d_true = true_margins(z, labels)
        at_risk = d_true.abs() <= two_eta
    else:
        at_risk = torch.zeros(z.shape[0], dtype=torch.bool)
    kw = {}
    if logits_after is not None:
        za = as_tensor(logits_after, "logits_after", ndim=2, shape_hint="(|T|, K)")
        if za.shape != z.shape:
            raise ValueError(
                f"logits_after must have the shape of logits {tuple(z.shape)}, got {tuple(za.shape)}"
            )
        kw["pred_flips"] = za.argmax(1) != z.argmax(1)
        dev = (za - z).abs().amax(dim=1)
        scale = z.abs().max().item() + za.abs().max().item()
        tol = FLOAT64_ATOL + rtol * scale
        kw["max_logit_excess"] = float((dev - eta_vals).max())
        if labels is not None:
            kw["flips"] = correct(za, labels) != correct(z, labels)
            kw["max_margin_excess"] = float(((true_margins(za, labels) - d_true).abs() - two_eta).max())
            acc_b = float(correct(z, labels).double().mean())
            acc_a = float(correct(za, labels).double().mean())
            kw["observed_acc_change"] = abs(acc_a - acc_b)
        else:
            kw["flips"] = torch.zeros(z.shape[0], dtype=torch.bool)
            kw["observed_acc_change"] = 0.0
        kw["tol"] = tol
    return MarginStability(
        result=result,
        eta=eta_vals,
        at_risk=at_risk,
        pred_at_risk=pred_at_risk,
        acc_change_bound=float(at_risk.double().mean()),
        ce_change_bound=float(2.0 * eta_vals.mean()),
        certified=cert,
        **kw,
    )


@implements("M-Cor 5.2", kind="D")
def margin_stability(logits, eta, labels=None, *, logits_after=None, theta: float = 0.0,
                     certified: bool | None = None, rtol: float = FLOAT64_RTOL) -> MarginStability:
    r"""Margin stability: which samples can change prediction or correctness (M-Cor 5.2).

    Implements M-Cor 5.2 [D] (arXiv 2606.02608): if
    :math:`\|z_{A_\theta}(s)-z_A(s)\|_\infty\le\eta_s` then a prediction can change only if
    :math:`\Delta_{pred}(s)\le 2\eta_s`, and

    .. math:: |acc_{A_\theta}(T) - acc_A(T)| \le \frac{1}{|T|}\#\{s : |\Delta_{true}(s)| \le 2\eta_s\}.

    Parameters
    ----------
    logits : array-like, shape (|T|, K)
        Logits ``z_A(s)`` of the *original* layer.
    eta : array-like of shape (|T|,), scalar, or BudgetResult
        ``η_s(0) = L_s‖R v_s‖_∞``; with a :class:`~certkit.budget.BudgetResult` the
        certified flag is taken from it. It is scaled by ``(1 − theta)``.
    labels : array-like of int, shape (|T|,), optional
        True labels C(s); without them only prediction changes are bounded.
    logits_after : array-like, shape (|T|, K), optional
        Logits of the pruned layer ``A_θ``; enables the observed-flip checks (``holds``).
    theta : float in [0, 1]
    certified : bool, optional
        Override for raw ``eta`` arrays (default: raw arrays are not certified).

    Returns
    -------
    MarginStability
        ``.at_risk`` (bool per sample) and ``.acc_change_bound``.
    """
    theta = check_scalar(theta, "theta", min_val=0.0, max_val=1.0)
    z = as_tensor(logits, "logits", ndim=2, shape_hint="(|T|, K)")
    eta_vals, cert = _eta(eta, z.shape[0], theta, certified)
    return _stability("M-Cor 5.2", z, eta_vals, cert, labels, logits_after, rtol)


@implements("E-Cor 1.3", kind="D")
def multilayer_margin_stability(logits, eta_steps, labels=None, *, logits_after=None,
                                certified: bool | None = None,
                                rtol: float = FLOAT64_RTOL) -> MarginStability:
    r"""Multi-layer margin stability with :math:`\eta_s^{tot} = \sum_j \eta_{j,s}` (E-Cor 1.3).

    Implements E-Cor 1.3 [D]: for an ordered sequence of M mask steps with per-step bounds
    :math:`\|z^{(j)}(s) - z^{(j-1)}(s)\|_\infty \le \eta_{j,s}` (each computed in the
    intermediate network α^{(j−1)}, Trap T7),
    :math:`|L_{CE}(α^{(M)}) - L_{CE}(α^{(0)})| \le (2/|T|)\sum_s \eta^{tot}_s`, predictions change
    only if :math:`\Delta_{pred}^{(0)}(s) \le 2\eta^{tot}_s`, and the accuracy change is at most
    the at-risk fraction w.r.t. the *original* margins.

    Parameters
    ----------
    logits : (|T|, K) original logits z^{(0)}.
    eta_steps : sequence of per-step η arrays (|T|,) or BudgetResults.
    """
    z = as_tensor(logits, "logits", ndim=2, shape_hint="(|T|, K)")
    if len(eta_steps) == 0:
        raise ValueError("eta_steps must contain at least one step")
    total = torch.zeros(z.shape[0], dtype=torch.float64)
    cert_all = True
    for j, e in enumerate(eta_steps):
        try:
            vals, cert = _eta(e, z.shape[0], 0.0, certified)
        except ValueError as exc:
            raise ValueError(f"eta_steps[{j}]: {exc}") from exc
        total = total + vals
        cert_all &= cert
    return _stability("E-Cor 1.3", z, total, cert_all, labels, logits_after, rtol)
