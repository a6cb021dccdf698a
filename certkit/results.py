"""Result objects: :class:`Certificate` (a proven inequality evaluated on data).

Every number certkit reports is labelled *certified* (a proven bound evaluated exactly, with
rigorous ingredients) or *estimated* (some ingredient, typically the Lipschitz constant
``L_s``, is only an estimate). See THEORY §1.5–1.7 and Trap T25.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._constants import FLOAT64_ATOL, FLOAT64_RTOL

__all__ = ["Certificate", "LipschitzBound", "holds_with_tolerance"]

#: ``check``: lhs is an observed quantity and rhs the theorem's bound on it.
#: ``condition``: a sufficient condition (e.g. certified decrease iff lhs < rhs).
#: ``bound``: only the right-hand side is known (no observation given).
CertificateKind = Literal["check", "condition", "bound"]


def holds_with_tolerance(
    lhs: float,
    rhs: float,
    *,
    atol: float = FLOAT64_ATOL,
    rtol: float = FLOAT64_RTOL,
    scale: float = 0.0,
    strict: bool = False,
) -> bool:
    """THEORY §0.3 rule: ``lhs <= rhs + atol + rtol*max(|lhs|, |rhs|, scale)``.

    With ``strict=True`` (sufficient conditions such as "B_T < reward") no tolerance is
    granted: ``lhs < rhs`` exactly.
    """
    if strict:
        return lhs < rhs
    return lhs <= rhs + atol + rtol * max(abs(lhs), abs(rhs), abs(scale))


@dataclass(frozen=True)
class Certificate:
    """One paper inequality evaluated on concrete data.

    Attributes
    ----------
    result : str
        Paper id, e.g. ``"M-Thm 5.4"`` (main text) or ``"E-Cor 1.1"`` (ESM_1).
    statement : str
        The inequality in words/formula.
    kind : {"check", "condition", "bound"}
        ``check``: ``lhs`` is observed, ``rhs`` the bound; ``holds`` False with
        ``certified=True`` would refute the theorem or reveal a bug.
        ``condition``: sufficient condition (``holds`` = condition met, e.g. certified decrease).
        ``bound``: only ``rhs`` is available (``lhs`` and ``holds`` are None).
    lhs, rhs : float
        Left and right side, float64.
    certified : bool
        True only if every ingredient is rigorous (Lipschitz bounds certified, preconditions
        checked). Estimates make the result *estimated* (THEORY §1.7, T25).
    lipschitz_method : str
        ``"L0"``, ``"L1"``, ``"L2"``, ``"L3"``, ``"estimate"``, ``"user"`` or ``"n/a"``.
    assumptions : tuple of str
        Modelling preconditions that were asserted (and whether they were verified).
    details : mapping
        Intermediate terms (norms, budgets, penalties).
    """

    result: str
    statement: str
    kind: CertificateKind
    lhs: float | None
    rhs: float
    certified: bool
    lipschitz_method: str = "n/a"
    assumptions: tuple[str, ...] = ()
    details: Mapping[str, float] = field(default_factory=dict)
    atol: float = FLOAT64_ATOL
    rtol: float = FLOAT64_RTOL
    scale: float = 0.0

    @property
    def holds(self) -> bool | None:
        """Whether ``lhs <= rhs`` (tolerance of §0.3; strict ``<`` for conditions)."""
        if self.lhs is None:
            return None
        return holds_with_tolerance(
            self.lhs,
            self.rhs,
            atol=self.atol,
            rtol=self.rtol,
            scale=self.scale,
            strict=self.kind == "condition",
        )

    @property
    def slack(self) -> float | None:
        """``rhs - lhs`` (positive: inequality satisfied with room)."""
        return None if self.lhs is None else self.rhs - self.lhs

    @property
    def label(self) -> str:
        """``"certified"`` or ``"estimated"``."""
        return "certified" if self.certified else "estimated"

    def to_dict(self) -> dict:
        """JSON-ready dict (``holds``, ``slack`` and ``label`` included)."""

        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return str(v)
            return v

        return {
            "result": self.result,
            "statement": self.statement,
            "kind": self.kind,
            "lhs": clean(self.lhs),
            "rhs": clean(self.rhs),
            "holds": self.holds,
            "slack": clean(self.slack),
            "certified": self.certified,
            "label": self.label,
            "lipschitz_method": self.lipschitz_method,
            "assumptions": list(self.assumptions),
            "details": {k: clean(float(v)) for k, v in self.details.items()},
            "atol": self.atol,
            "rtol": self.rtol,
            "scale": self.scale,
        }

    def to_json(self, **kw) -> str:
        """Serialise :meth:`to_dict` with sorted keys."""
        return json.dumps(self.to_dict(), sort_keys=True, **kw)

    def __repr__(self) -> str:
        lhs = "—" if self.lhs is None else f"{self.lhs:.6g}"
        return (
            f"Certificate({self.result}, {self.kind}: lhs={lhs} rhs={self.rhs:.6g} "
            f"holds={self.holds} [{self.label}, L={self.lipschitz_method}])"
        )


@dataclass(frozen=True)
class LipschitzBound:
    """Per-sample local Lipschitz constants ``L_s`` of ψ2 (THEORY §1.5).

    Attributes
    ----------
    values : tuple of float
        One value per sample of T (or a single value shared by all samples).
    certified : bool
        True for rigorous upper bounds (``L0``–``L3``, THEORY §1.6), False for estimates
        (Jacobian / secant sampling, §1.7).
    method : str
        ``"L0"``, ``"L1"``, ``"L2"``, ``"L3"``, ``"estimate:jacobian"``, ``"estimate:secant"``,
        ``"user"``...
    path_dependent : bool
        True when the bound depends on the removed component R (L2, L3, estimates); such a
        bound may not be used where an R-independent ``L_s`` is required (M-Cor 5.10, Trap T9).
    """

    values: tuple[float, ...]
    certified: bool
    method: str
    path_dependent: bool = False

    def __post_init__(self):
        vals = tuple(float(v) for v in self.values)
        if not vals:
            raise ValueError("LipschitzBound.values must not be empty")
        for v in vals:
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"LipschitzBound.values must be finite and >= 0, got {v}")
        object.__setattr__(self, "values", vals)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def to_dict(self) -> dict:
        return {
            "values": list(self.values),
            "certified": self.certified,
            "method": self.method,
            "path_dependent": self.path_dependent,
        }
