r"""Assertion helpers for users' property suites (scikit-learn ``check_estimator`` style).

* :func:`assert_certificate_holds` — a certified certificate whose inequality fails is a bug.
* :func:`check_lipschitz_sound` / :func:`assert_lipschitz_sound` — compare a
  :class:`~certkit.results.LipschitzBound` with a dense θ-grid of secants of
  ``f_s(θ) = ψ2((S + θR) v_s)`` (THEORY §1.5–1.6, Trap T5).

The grid check is a *necessary* condition for ``L_s ≥ L_s*``: it can refute a bound, never
prove one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._constants import FLOAT64_ATOL, FLOAT64_RTOL
from .._validation import as_tensor, check_int, check_matrix, check_same_shape
from ..mlp import MLP
from ..results import LipschitzBound

__all__ = [
    "LipschitzViolation",
    "LipschitzSoundnessReport",
    "assert_certificate_holds",
    "check_lipschitz_sound",
    "assert_lipschitz_sound",
    "DEFAULT_N_GRID",
]

#: Default θ-grid size of the soundness check (θ = 0 and 1 included).
DEFAULT_N_GRID = 65


def assert_certificate_holds(cert, *, require_certified: bool = False) -> None:
    """Raise ``AssertionError`` if a certified certificate's inequality fails.

    Parameters
    ----------
    cert : Certificate
        Any object with ``holds``, ``certified`` and ``to_json()``/``to_dict()``
        (:class:`certkit.results.Certificate`).
    require_certified : bool, default False
        Also fail when the certificate rests on an estimate (``certified=False``).

    Notes
    -----
    ``holds is None`` (a pure bound with no observed side) passes, and so does an unmet
    ``condition`` (a sufficient condition that is not satisfied refutes nothing). An
    *uncertified* certificate that fails is allowed: it rests on an estimate (THEORY §1.7,
    Trap T25).
    """
    holds = cert.holds
    certified = bool(cert.certified)
    # A "condition" (e.g. "certified decrease iff B_T < reward") that is not met refutes
    # nothing: only a failing "check" (observed vs bound) is a violation.
    is_check = getattr(cert, "kind", "check") == "check"
    problem = None
    if holds is False and certified and is_check:
        problem = "certified certificate does not hold (lhs > rhs beyond tolerance)"
    elif require_certified and not certified:
        problem = "certificate is not certified (some ingredient is an estimate)"
    if problem is None:
        return
    if hasattr(cert, "to_json"):
        body = cert.to_json(indent=2)
    elif hasattr(cert, "to_dict"):
        import json

        body = json.dumps(cert.to_dict(), sort_keys=True, indent=2, default=str)
    else:
        body = repr(cert)
    raise AssertionError(f"{problem}:\n{body}")


@dataclass(frozen=True)
class LipschitzViolation:
    """One grid pair where ``‖f(θ) − f(θ')‖_∞ > |θ − θ'|·L_s·‖d_s‖_∞`` beyond tolerance."""

    sample: int
    theta: float
    theta_prime: float
    lhs: float
    rhs: float

    @property
    def ratio(self) -> float:
        """``lhs / rhs``: observed logit change over the allowed one (``inf`` if rhs = 0)."""
        return self.lhs / self.rhs if self.rhs > 0 else float("inf")


@dataclass(frozen=True)
class LipschitzSoundnessReport:
    """Result of :func:`check_lipschitz_sound`.

    Attributes
    ----------
    ok : bool
        No violation on the grid.
    method : str
        Method of the checked bound.
    max_secant : tuple of float
        Per sample, the largest grid secant ``‖f(θ)−f(θ')‖_∞/(|θ−θ'|‖d_s‖_∞)`` (0 if d_s = 0).
    bound : tuple of float
        Per sample, the checked ``L_s``.
    violations : tuple of LipschitzViolation
        The worst violating pair of each failing sample.
    n_grid : int
    """

    ok: bool
    method: str
    max_secant: tuple[float, ...]
    bound: tuple[float, ...]
    violations: tuple[LipschitzViolation, ...]
    n_grid: int

    def summary(self) -> str:
        """Readable multi-line description."""
        lines = [f"Lipschitz bound {self.method!r}: {'sound' if self.ok else 'VIOLATED'} on a "
                 f"{self.n_grid}-point θ grid"]
        for v in self.violations:
            lines.append(
                f"  sample {v.sample}: θ={v.theta:.6g}, θ'={v.theta_prime:.6g}: "
                f"‖Δlogits‖_∞={v.lhs:.6g} > |Δθ|·L_s·‖d_s‖_∞={v.rhs:.6g} "
                f"(secant {self.max_secant[v.sample]:.6g} vs L_s {self.bound[v.sample]:.6g})"
            )
        return "\n".join(lines)


def check_lipschitz_sound(mlp: MLP, k: int, S, R, x, bound, *, n_grid: int = DEFAULT_N_GRID,
                          extra_thetas=None, atol: float = FLOAT64_ATOL,
                          rtol: float = FLOAT64_RTOL) -> LipschitzSoundnessReport:
    r"""Compare ``L_s`` with every secant of ``f_s(θ) = ψ2((S + θR)v_s)`` on a θ grid.

    For all grid pairs θ < θ' (which include the path inequality of M-Lemma 5.1(a),
    ``‖z_{A_θ} − z_A‖_∞ ≤ (1−θ) L_s ‖R v_s‖_∞``, at θ' = 1) it tests

    .. math:: \|f_s(\theta) - f_s(\theta')\|_\infty \le |\theta-\theta'|\,L_s\,\|d_s\|_\infty
              + \mathrm{atol} + \mathrm{rtol}\cdot\max(\mathrm{lhs}, \mathrm{rhs}, \max|f_s|)

    (THEORY §0.3; ``scale`` = the largest logit magnitude on the path, covering the cancellation
    error of the difference).

    Parameters
    ----------
    mlp : MLP
    k : int
        Target layer.
    S, R : array-like, shape of ``W_k``
    x : array-like, shape (|T|, d0)
    bound : LipschitzBound, float or array-like of shape (|T|,)
    n_grid : int, default 65
        Uniform grid size; θ = 0 and 1 included.
    extra_thetas : array-like, optional
        Additional θ values in [0, 1] (e.g. breakpoints).
    atol, rtol : float
        Tolerances of THEORY §0.3.

    Returns
    -------
    LipschitzSoundnessReport
    """
    if not isinstance(mlp, MLP):
        raise TypeError(f"mlp must be a certkit.mlp.MLP, got {type(mlp).__name__}")
    S = check_matrix(S, "S")
    R = check_matrix(R, "R")
    check_same_shape(S, R, "S", "R")
    x = as_tensor(x, "x", ndim=2, shape_hint="(|T|, d0)")
    n_grid = check_int(n_grid, "n_grid", min_val=2)
    v = mlp.layer_input(k, x)
    n = v.shape[0]
    if isinstance(bound, LipschitzBound):
        vals, method = np.asarray(bound.values, dtype=np.float64), bound.method
    else:
        vals = as_tensor(bound, "bound", ndim=(0, 1)).reshape(-1).numpy()
        method = "user"
    if vals.size == 1:
        vals = np.full(n, float(vals[0]))
    if vals.size != n:
        raise ValueError(f"bound must have 1 or |T| = {n} values, got {vals.size}")
    thetas = np.linspace(0.0, 1.0, n_grid)
    if extra_thetas is not None:
        extra = as_tensor(extra_thetas, "extra_thetas", ndim=1).numpy()
        if np.any((extra < 0) | (extra > 1)):
            raise ValueError("extra_thetas must lie in [0, 1]")
        thetas = np.unique(np.concatenate([thetas, extra]))
    f = torch.stack([mlp.psi2(k, v @ (S + float(t) * R).T) for t in thetas], dim=1).numpy()
    d = (v @ R.T).abs().amax(dim=1).numpy()
    lhs = np.abs(f[:, :, None, :] - f[:, None, :, :]).max(axis=3)  # (n, G, G)
    gap = np.abs(thetas[None, :] - thetas[:, None])  # (G, G)
    rhs = gap[None] * vals[:, None, None] * d[:, None, None]
    scale = np.abs(f).max(axis=(1, 2))[:, None, None]
    tol = atol + rtol * np.maximum(np.maximum(lhs, rhs), scale)
    excess = lhs - rhs - tol
    violations = []
    max_sec = []
    for s in range(n):
        with np.errstate(divide="ignore", invalid="ignore"):
            sec = np.where(gap > 0, lhs[s] / (gap * d[s]), 0.0) if d[s] > 0 else np.zeros_like(gap)
        max_sec.append(float(np.nanmax(sec)))
        if np.any(excess[s] > 0):
            i, j = np.unravel_index(np.argmax(excess[s]), gap.shape)
            i, j = min(i, j), max(i, j)
            violations.append(LipschitzViolation(s, float(thetas[i]), float(thetas[j]),
                                                 float(lhs[s, i, j]), float(rhs[s, i, j])))
    return LipschitzSoundnessReport(not violations, method, tuple(max_sec),
                                    tuple(float(v) for v in vals), tuple(violations),
                                    int(thetas.size))


def assert_lipschitz_sound(mlp: MLP, k: int, S, R, x, bound, **kwargs
                           ) -> LipschitzSoundnessReport:
    """Run :func:`check_lipschitz_sound`; raise ``AssertionError`` with its summary on failure."""
    report = check_lipschitz_sound(mlp, k, S, R, x, bound, **kwargs)
    if not report.ok:
        raise AssertionError(report.summary())
    return report
