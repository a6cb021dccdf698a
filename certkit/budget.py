r"""The data-path budget :math:`B_T(R)` (M-eq. 8) and per-sample perturbations η_s.

.. math::
    B_T(R) = \frac{2}{|T|}\sum_{s\in T} L_s \,\|R v_s\|_\infty ,
    \qquad \eta_s(\theta) = (1-\theta)\,L_s\,\|R v_s\|_\infty .

``v_s = ψ1(s)`` is the input of the target layer for sample s. For a layer applied at P
positions (tokens, patches, conv pixels) ``v_s`` is the ``P × m`` matrix of position inputs and
``‖R v_s‖_∞`` is the largest entry over all positions and outputs (THEORY §1.4, spec addition).
The factor 2 is the ℓ∞-Lipschitz constant of cross-entropy in the logits (Fact F1; Trap T4).

The computation streams over samples: :class:`BudgetAccumulator` takes batches of V and never
holds all of T; peak memory is set by ``chunk_elems`` and is independent of |T|.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._registry import implements
from ._validation import as_tensor, check_int, check_matrix
from .results import LipschitzBound

__all__ = [
    "BudgetAccumulator",
    "BudgetResult",
    "compute_budget",
    "data_path_budget",
    "perturbation_sizes",
    "removed_sup_norms",
]

#: Default number of float entries of one intermediate ``R v`` block (64 MiB in float64).
DEFAULT_CHUNK_ELEMS = 1 << 23


def _lipschitz_values(L, n_samples: int, name: str = "L") -> tuple[torch.Tensor, bool, str]:
    """Return (per-sample tensor, certified, method) from a scalar, array or LipschitzBound."""
    if isinstance(L, LipschitzBound):
        vals = torch.tensor(L.values, dtype=torch.float64)
        certified, method = L.certified, L.method
    else:
        vals = as_tensor(L, name, ndim=(0, 1), shape_hint="(scalar or (|T|,))")
        certified, method = False, "user"
    if vals.ndim == 0 or vals.numel() == 1:
        vals = vals.reshape(1).expand(n_samples)
    elif vals.numel() != n_samples:
        raise ValueError(
            f"{name} must be a scalar or have shape (|T|,) = ({n_samples},), "
            f"got shape {tuple(vals.shape)}"
        )
    if bool((vals < 0).any()):
        raise ValueError(f"{name} must be >= 0 (a Lipschitz constant), got min {float(vals.min())}")
    return vals, certified, method


def _check_inputs(V, m: int, name: str = "V") -> torch.Tensor:
    V = as_tensor(
        V, name, ndim=(2, 3), dtype=V.dtype if isinstance(V, torch.Tensor) and
        V.dtype in (torch.float32, torch.float64) else torch.float64,
        shape_hint="(|T|, m) or (|T|, P, m)",
    )
    if V.shape[-1] != m:
        raise ValueError(
            f"{name} must have last dimension m = R.shape[1] = {m} (shape (|T|, m) or "
            f"(|T|, P, m)), got shape {tuple(V.shape)}"
        )
    if V.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one sample (|T| >= 1), got shape {tuple(V.shape)}")
    return V if V.ndim == 3 else V.unsqueeze(1)


class BudgetAccumulator:
    r"""Streaming evaluation of ``‖R v_s‖_∞`` and :math:`B_T(R)` over batches of inputs.

    Implements M-eq. 8 (the data-path budget of M-Lemma 5.1).

    Parameters
    ----------
    R : array-like, shape (n, m)
        Removed component (rows = outputs, cols = inputs).
    dtype : torch.dtype, default float64
        Precision of the products ``R v_s`` (THEORY §0.3 recommends float64).
    chunk_elems : int
        Maximum number of entries of one intermediate block ``R v`` (bounds peak memory).

    Examples
    --------
    >>> acc = BudgetAccumulator(R)                     # doctest: +SKIP
    >>> for V_batch, L_batch in loader: acc.update(V_batch, L_batch)
    >>> acc.budget
    """

    def __init__(self, R, *, dtype: torch.dtype = torch.float64,
                 chunk_elems: int = DEFAULT_CHUNK_ELEMS):
        self.R = check_matrix(R, "R", dtype=dtype)
        self.dtype = dtype
        self.chunk_elems = check_int(chunk_elems, "chunk_elems", min_val=1)
        self._Rt = self.R.T.contiguous()
        self._sup: list[torch.Tensor] = []
        self._L: list[torch.Tensor] = []
        self._certified = True
        self._methods: set[str] = set()

    @property
    def n_samples(self) -> int:
        return int(sum(t.numel() for t in self._sup))

    def update(self, V, L=1.0) -> BudgetAccumulator:
        """Add a batch: ``V`` of shape (B, m) or (B, P, m), ``L`` scalar / (B,) / LipschitzBound."""
        V = _check_inputs(V, self.R.shape[1])
        B, P, m = V.shape
        Lv, cert, method = _lipschitz_values(L, B)
        n = self.R.shape[0]
        rows = max(1, self.chunk_elems // max(1, P * n))
        sups = torch.empty(B, dtype=torch.float64)
        for i in range(0, B, rows):
            blk = V[i : i + rows].to(self.dtype).reshape(-1, m)
            Y = blk @ self._Rt
            sups[i : i + rows] = torch.linalg.vector_norm(
                Y.reshape(-1, P * n), ord=float("inf"), dim=1
            ).to(torch.float64)
        self._sup.append(sups)
        self._L.append(Lv.to(torch.float64))
        self._certified &= cert
        self._methods.add(method)
        return self

    @property
    def removed_sup(self) -> torch.Tensor:
        """``‖R v_s‖_∞`` per sample, shape (|T|,)."""
        if not self._sup:
            raise ValueError("no samples were added (empty T); call update() first")
        return torch.cat(self._sup)

    @property
    def perturbations(self) -> torch.Tensor:
        """``η_s(0) = L_s ‖R v_s‖_∞`` per sample, shape (|T|,)."""
        return torch.cat(self._L) * self.removed_sup

    @property
    def budget(self) -> float:
        """:math:`B_T(R) = (2/|T|)\\sum_s L_s‖Rv_s‖_∞`."""
        return float(2.0 * self.perturbations.mean())

    def result(self) -> BudgetResult:
        """Freeze the accumulated values into a :class:`BudgetResult`."""
        eta = self.perturbations
        method = "+".join(sorted(self._methods))
        return BudgetResult(
            value=float(2.0 * eta.mean()),
            eta=tuple(eta.tolist()),
            removed_sup=tuple(self.removed_sup.tolist()),
            certified=self._certified,
            lipschitz_method=method,
        )


@dataclass(frozen=True)
class BudgetResult:
    """A data-path budget with its provenance.

    Attributes
    ----------
    value : float
        :math:`B_T(R)`.
    eta : tuple of float
        ``η_s(0) = L_s‖R v_s‖_∞`` per sample.
    removed_sup : tuple of float
        ``‖R v_s‖_∞`` per sample.
    certified : bool
        True iff every ``L_s`` came from a certified :class:`~certkit.results.LipschitzBound`.
        Plain numbers passed as ``L`` count as user-supplied (not certified).
    lipschitz_method : str
    """

    value: float
    eta: tuple[float, ...]
    removed_sup: tuple[float, ...]
    certified: bool
    lipschitz_method: str

    @property
    def label(self) -> str:
        return "certified" if self.certified else "estimated"

    def __float__(self) -> float:
        return self.value

    def to_dict(self) -> dict:
        return {
            "value": self.value,
            "eta": list(self.eta),
            "removed_sup": list(self.removed_sup),
            "certified": self.certified,
            "label": self.label,
            "lipschitz_method": self.lipschitz_method,
        }


@implements("M-eq. 8", kind="D")
def compute_budget(R, V, L, *, dtype: torch.dtype = torch.float64) -> BudgetResult:
    r"""Data-path budget with provenance: :math:`B_T(R) = (2/|T|)\sum_s L_s\|R v_s\|_\infty`.

    Implements M-eq. 8 (arXiv 2606.02608), the budget of M-Lemma 5.1 / M-Thm 5.3–5.9.

    Parameters
    ----------
    R : array-like, shape (n, m)
    V : array-like, shape (|T|, m) or (|T|, P, m)
        Inputs ``v_s = ψ1(s)`` of the target layer (P positions per sample).
    L : float, array-like of shape (|T|,), or LipschitzBound
        Upper bounds ``L_s ≥ L_s*`` on the local Lipschitz constant of ψ2 along the path.
        Only a certified :class:`~certkit.results.LipschitzBound` yields ``certified=True``.
    """
    return BudgetAccumulator(R, dtype=dtype).update(V, L).result()


@implements("M-eq. 8", kind="D")
def data_path_budget(R, V, L) -> float:
    r"""Data-path budget :math:`B_T(R) = \frac{2}{|T|}\sum_{s\in T} L_s\|R v_s\|_\infty` (M-eq. 8).

    Parameters
    ----------
    R : array-like, shape (n, m)
        Removed component of the target matrix A = S + R.
    V : array-like, shape (|T|, m) or (|T|, P, m)
        Layer inputs; with positions the sup norm runs over all positions and outputs.
    L : float or array-like of shape (|T|,) or LipschitzBound
        Local Lipschitz bounds ``L_s`` (must be ≥ 0).

    Returns
    -------
    float
    """
    return BudgetAccumulator(R).update(V, L).budget


def perturbation_sizes(R, V, L) -> torch.Tensor:
    r"""Per-sample logit perturbation bounds :math:`\eta_s(0) = L_s\|R v_s\|_\infty`, shape (|T|,).

    Implements the per-sample term of M-eq. 8 / M-Lemma 5.1(a): ``‖z_S(s) − z_A(s)‖_∞ ≤ η_s(0)``.
    """
    return BudgetAccumulator(R).update(V, L).perturbations


def removed_sup_norms(R, V) -> torch.Tensor:
    r"""``‖R v_s‖_∞`` per sample (max over positions and outputs), shape (|T|,)."""
    return BudgetAccumulator(R).update(V, 1.0).removed_sup
