"""Input validation shared by every public function (scikit-learn ``check_*`` style).

Every helper converts and returns its input, and raises ``ValueError``/``TypeError`` with a
message of the form ``"<name> ...; expected ..."`` so that no public function ever returns a
silent wrong number (THEORY §0.3, STYLE §2.1).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
import torch

ArrayLike = "torch.Tensor | np.ndarray | list | float"


def as_tensor(
    x,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    dtype: torch.dtype = torch.float64,
    allow_empty: bool = False,
    shape_hint: str = "",
) -> torch.Tensor:
    """Convert ``x`` (tensor, ndarray, list, scalar) to a finite tensor of ``dtype``.

    Raises
    ------
    TypeError
        If ``x`` is not numeric.
    ValueError
        If the number of dimensions is wrong, the array is empty, or it holds NaN/Inf.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.is_complex():
            raise TypeError(f"{name} must be real, got a complex tensor")
        if t.dtype != dtype and t.device.type == "cpu" and t.dtype in _NUMPY_FLOATS \
                and dtype in _NUMPY_FLOATS:
            # numpy converts single-threaded: no OpenMP barrier that competes with BLAS
            # threads still spinning after a previous LAPACK call (fit_mp loops).
            t = torch.from_numpy(t.numpy().astype(_NUMPY_FLOATS[dtype]))
        else:
            t = t.to(dtype=dtype)
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - numpy message is informative
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from exc
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real, got a complex array")
        t = torch.as_tensor(arr.astype(np.float64 if dtype == torch.float64 else np.float32))
        t = t.to(dtype=dtype)
    hint = f" {shape_hint}" if shape_hint else ""
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(
                f"{name} must be {want}{hint}, got shape {tuple(t.shape)} ({t.ndim}-D)"
            )
    if not allow_empty and t.numel() == 0:
        raise ValueError(f"{name} must not be empty{hint}, got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point and not _all_finite(t):
        raise ValueError(f"{name} contains NaN or Inf; all entries must be finite")
    return t


_NUMPY_FLOATS = {torch.float64: np.float64, torch.float32: np.float32}


def _all_finite(t: torch.Tensor) -> bool:
    """True iff every entry is finite.

    A finite sum implies finite entries (an Inf/NaN entry makes the sum Inf/NaN), so the
    allocating elementwise check only runs when the sum is not finite (NaN/Inf, or overflow).
    CPU float tensors are summed by numpy (single-threaded, see :func:`as_tensor`).
    """
    if t.device.type == "cpu" and t.dtype in _NUMPY_FLOATS:
        total = float(np.sum(t.numpy()))
    else:
        total = float(t.sum())
    return math.isfinite(total) or bool(torch.isfinite(t).all())


def check_matrix(A, name: str, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Return ``A`` as a finite 2-D tensor (rows = outputs, cols = inputs)."""
    return as_tensor(A, name, ndim=2, dtype=dtype, shape_hint="(rows, cols)")


def check_scalar(
    x,
    name: str,
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    include_min: bool = True,
    include_max: bool = True,
) -> float:
    """Return ``x`` as a finite python float inside the given interval."""
    if isinstance(x, torch.Tensor | np.ndarray):
        if x.size == 0 if isinstance(x, np.ndarray) else x.numel() == 0:
            raise ValueError(f"{name} must be a scalar, got an empty array")
        if (x.size if isinstance(x, np.ndarray) else x.numel()) != 1:
            raise ValueError(f"{name} must be a scalar, got shape {tuple(x.shape)}")
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, Real):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} == {v}, must be finite")
    if min_val is not None and (v < min_val or (v == min_val and not include_min)):
        op = ">=" if include_min else ">"
        raise ValueError(f"{name} == {v}, must be {op} {min_val}")
    if max_val is not None and (v > max_val or (v == max_val and not include_max)):
        op = "<=" if include_max else "<"
        raise ValueError(f"{name} == {v}, must be {op} {max_val}")
    return v


def check_int(x, name: str, *, min_val: int | None = None) -> int:
    """Return ``x`` as an int (bools rejected) that is ``>= min_val``."""
    if isinstance(x, bool) or not isinstance(x, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    v = int(x)
    if min_val is not None and v < min_val:
        raise ValueError(f"{name} == {v}, must be >= {min_val}")
    return v


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )


def check_disjoint(*named: tuple[str, torch.Tensor]) -> None:
    """Raise :class:`~certkit.exceptions.PreconditionError` if two supports overlap.

    A mask decomposition needs pairwise disjoint supports (S ⊙ R = 0, THEORY §1.4, Trap T8).
    """
    from .exceptions import PreconditionError

    for i in range(len(named)):
        for j in range(i + 1, len(named)):
            (na, a), (nb, b) = named[i], named[j]
            check_same_shape(a, b, na, nb)
            overlap = int(((a != 0) & (b != 0)).sum())
            if overlap:
                raise PreconditionError(
                    f"{na} and {nb} overlap on {overlap} entries, but this result needs a mask "
                    f"decomposition with disjoint supports ({na} ⊙ {nb} = 0). For an additive "
                    "decomposition (e.g. fine-tuned kept weights) use frobenius_certificate "
                    "(M-Thm 5.3) instead."
                )


def check_probability(x, name: str) -> float:
    """Return ``x`` as a float in the open interval (0, 1)."""
    return check_scalar(x, name, min_val=0.0, max_val=1.0, include_min=False, include_max=False)


def check_generator(seed) -> np.random.Generator:
    """Normalise ``seed`` (None, int or Generator) to a ``numpy.random.Generator``."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, int | np.integer):
        return np.random.default_rng(seed)
    raise TypeError(f"seed must be None, an int or a numpy Generator, got {type(seed).__name__}")
