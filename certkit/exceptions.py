"""Errors and warnings raised by certkit (one public module, scikit-learn style)."""

from __future__ import annotations

__all__ = ["CertkitError", "PreconditionError", "NotCertifiedWarning"]


class CertkitError(Exception):
    """Base class of every certkit error."""


class PreconditionError(CertkitError, ValueError):
    """A checkable hypothesis of a theorem is violated (e.g. overlapping mask supports).

    Subclasses ``ValueError`` so that ``except ValueError`` keeps working.
    """


class NotCertifiedWarning(UserWarning):
    """A reported number rests on an estimate (e.g. an empirical Lipschitz constant)."""
