"""audits — certificate audits of real timm models and pruned checkpoints (``certkit audit``).

Public API:

* :func:`run_audit` → :class:`AuditResult` (report dict + path): the whole audit;
* :class:`~audits.variants.Variant`, :func:`variant_from_masks`, :func:`variant_from_state_dict`;
* calibration sets (:mod:`audits.data`), model loading (:mod:`audits.models`);
* reports: :func:`write_report`, :func:`load_report`, :func:`validate_report`.
"""

from .data import (
    CalibrationError,
    CalibrationSet,
    DigitsCalibration,
    ImageFolderCalibration,
    PackagedPhotosCalibration,
    TensorCalibration,
    make_calibration,
)
from .engine import AuditError, AuditSettings, audit_model
from .models import CheckpointMismatchError, UnknownModelError, load_masks, load_model, load_state_dict
from .report import load_report, validate_report, write_report
from .run import AuditResult, resolve_lambdas, run_audit
from .variants import Variant, variant_from_masks, variant_from_state_dict

__all__ = [
    "AuditError",
    "AuditResult",
    "AuditSettings",
    "CalibrationError",
    "CalibrationSet",
    "CheckpointMismatchError",
    "DigitsCalibration",
    "ImageFolderCalibration",
    "PackagedPhotosCalibration",
    "TensorCalibration",
    "UnknownModelError",
    "Variant",
    "audit_model",
    "load_masks",
    "load_model",
    "load_report",
    "load_state_dict",
    "make_calibration",
    "resolve_lambdas",
    "run_audit",
    "validate_report",
    "variant_from_masks",
    "variant_from_state_dict",
    "write_report",
]
