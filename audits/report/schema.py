r"""JSON Schema of the ``certkit audit`` report and its validator.

The report is a plain JSON document (``report.json``) produced by the audit engine. This module
fixes its shape (:data:`REPORT_SCHEMA`, JSON Schema draft 2020-12) and checks it
(:func:`validate_report`) before anything is rendered or written. Objects are *strict*
(``additionalProperties: false``) so that a misspelt key is an error; only ``model``,
``calibration`` and ``config`` accept extra keys, and ``details`` of a certificate and
``source`` of a variant are free-form.

Conventions that the schema cannot express but the renderers rely on:

* Every number is finite. The engine writes a value it does not have, or a non-finite one,
  as ``null`` where the schema allows it; NaN and ±inf are rejected wherever they occur.
* ``layers[i].mp.hist`` is ``numpy.histogram(eigs, bins, density=True)`` of the
  ``min(rows, cols)`` eigenvalues of ``X = WᵀW/rows`` *without* the ``max(0, cols − rows)``
  structural zeros (``certkit.rmt.covariance_eigenvalues(W, drop_zeros=True)``, the values that
  :func:`certkit.rmt.fit_mp` fits). ``c = cols/rows`` and ``entry_variance`` = σ̂² follow
  :mod:`certkit.rmt.marchenko_pastur` (THEORY §3.1, Trap T1); the fitted density overlaid on
  the histogram is therefore the continuous part of MP(c, σ̂²) renormalised to mass 1.
* Counts agree: ``variants[i].summary`` counts the statuses of ``variants[i].layers``;
  ``summary.certified``/``estimated``/``violated`` sum them over variants, ``summary.violations``
  counts ``variants[*].violations``, ``summary.n_layers`` is ``len(layers)``. Variant layer names
  and multi-layer orders refer to ``layers[*].name`` (unique); margin arrays have equal lengths.
* Labels are honest (THEORY §1.5–1.7, Trap T25): a ``certified`` flag and its ``label`` agree,
  the MP fit is always ``"estimated"``, and the Trap-T12 op-norm proxy carries a label that
  says it is not a bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import jsonschema

from certkit.exceptions import CertkitError

__all__ = [
    "SCHEMA_VERSION",
    "REPORT_SCHEMA",
    "ReportSchemaError",
    "validate_report",
    "report_errors",
    "to_jsonable",
    "certificate_dict",
]

#: Version of the report layout written by this package (``report["schema_version"]``).
SCHEMA_VERSION = "1.0"

#: How many problems :class:`ReportSchemaError` lists in its message.
MAX_REPORTED_ERRORS = 10

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_NONNEG = {"type": "number", "minimum": 0}
_COUNT = {"type": "integer", "minimum": 0}
_COUNT_OR_NULL = {"type": ["integer", "null"], "minimum": 0}
_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_BOOL = {"type": "boolean"}
_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}
_LABEL = {"enum": ["certified", "estimated"]}


def _obj(props: dict, *, required: list[str] | None = None, extra: bool = False, **kw) -> dict:
    """Object schema: every listed property required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": extra,
        **kw,
    }


def _arr(items: dict, **kw) -> dict:
    return {"type": "array", "items": items, **kw}


def _label_matches(flag: str = "certified", label: str = "label") -> dict:
    """``label`` must read "certified" exactly when ``flag`` is true (honesty rule, T25)."""
    return {
        "if": {"properties": {flag: {"const": True}}, "required": [flag]},
        "then": {"properties": {label: {"const": "certified"}}},
        "else": {"properties": {label: {"const": "estimated"}}},
    }


_CERTIFICATE = _obj(
    {
        "result": _STR,
        "statement": _STR,
        "kind": {"enum": ["check", "condition", "bound"]},
        "lhs": _NUM_OR_NULL,
        "rhs": _NUM_OR_NULL,
        "holds": {"type": ["boolean", "null"]},
        "slack": _NUM_OR_NULL,
        "certified": _BOOL,
        "label": _LABEL,
        "lipschitz_method": _STR,
        "assumptions": _arr(_STR),
        "details": {"type": "object", "additionalProperties": _NUM_OR_NULL},
        "atol": _NONNEG,
        "rtol": _NONNEG,
        "scale": _NUM,
    },
    description="certkit.results.Certificate.to_dict() with non-finite numbers written as null",
    **_label_matches(),
)

_HIST = {
    "type": ["object", "null"],
    "properties": {"edges": _arr(_NUM, minItems=2), "density": _arr(_NONNEG, minItems=1)},
    "required": ["edges", "density"],
    "additionalProperties": False,
    "description": "numpy.histogram(density=True) of the nonzero-part eigenvalues of WᵀW/rows",
}

_MP = _obj(
    {
        "status": {"enum": ["fitted", "skipped"]},
        "reason": _STR_OR_NULL,
        "sigma_plus": _NUM_OR_NULL,
        "lambda_plus": _NUM_OR_NULL,
        "entry_variance": _NUM_OR_NULL,
        "c": _NUM_OR_NULL,
        "rows": _COUNT,
        "bulk_fraction": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "fit_error": _NUM_OR_NULL,
        "n_spikes": _COUNT_OR_NULL,
        "spikes": _arr(_NUM),
        "hist": _HIST,
        "label": {"const": "estimated"},
    }
)

_LAYER_INFO = _obj(
    {
        "name": _STR,
        "module_type": _STR,
        "layer_type": _STR,
        "shape": _arr(_COUNT, minItems=2, maxItems=2),
        "positions": _COUNT,
        "input_sup_mean": _NUM,
        "mp": _MP,
    }
)

_LIPSCHITZ = _obj({"value": _NONNEG, "certified": _BOOL, "method": _STR, "detail": _STR})

_BUDGET = _obj(
    {"value": _NONNEG, "certified": _BOOL, "method": _STR, "label": _LABEL},
    **_label_matches(),
)

_PROXY = _obj(
    {
        "op_norm_times_input_sup": _NUM_OR_NULL,
        "label": {"type": "string", "pattern": "not a bound"},
    },
    description="Trap T12: ‖R‖_op · mean_s ‖v_s‖_∞ is not an upper bound on B_T",
)

_LAYER_OUTCOME = {
    "oneOf": [
        {"type": "null"},
        _obj(
            {
                "n": _COUNT,
                "ce_change": _NUM,
                "budget": _NONNEG,
                "acc_change": _NUM,
                "n_pred_flips": _COUNT,
                "n_flips": _COUNT,
                "n_at_risk": _COUNT,
                "n_pred_at_risk": _COUNT,
                "flips_within_at_risk": _BOOL,
                "ce_within_budget": _BOOL,
            }
        ),
    ]
}

_PRUNE_RESTORE = {
    "oneOf": [
        {"type": "null"},
        _obj({"budget_P": _NONNEG, "budget_R": _NONNEG, "certificates": _arr({"$ref": "#/$defs/cert"})}),
    ]
}

_VARIANT_LAYER = _obj(
    {
        "name": _STR,
        "decomposition": {"enum": ["mask", "additive"]},
        "sparsity": _FRACTION,
        "removed_fro2": _NONNEG,
        "removed_l1": _NONNEG,
        "cross_term": _NUM,
        "penalty": _NONNEG,
        "lipschitz": _LIPSCHITZ,
        "budget": _BUDGET,
        "eta_max": _NONNEG,
        "eta_mean": _NONNEG,
        "proxy": _PROXY,
        "certificates": _arr({"$ref": "#/$defs/cert"}),
        "not_applicable": _arr(_obj({"result": _STR, "reason": _STR})),
        "outcome": _LAYER_OUTCOME,
        "prune_restore": _PRUNE_RESTORE,
        "status": {"enum": ["certified", "estimated", "violated"]},
        "decrease_certified": {"type": ["boolean", "null"]},
    },
    # A layer can only be "certified" when its budget rests on a rigorous L_s.
    **{
        "if": {"properties": {"status": {"const": "certified"}}, "required": ["status"]},
        "then": {"properties": {"budget": {"properties": {"certified": {"const": True}}}}},
    },
)

_MULTILAYER = {
    "oneOf": [
        {"type": "null"},
        _obj(
            {
                "order": _arr(_STR),
                "order_rule": _STR,
                "steps": _arr(
                    _obj(
                        {
                            "layer": _STR,
                            "budget": _NONNEG,
                            "lipschitz": _NONNEG,
                            "certified": _BOOL,
                            "method": _STR,
                        }
                    )
                ),
                "sum_budgets": _NONNEG,
                "certificates": _arr({"$ref": "#/$defs/cert"}),
                "outcome": _obj(
                    {
                        "n": _COUNT,
                        "ce_change": _NUM,
                        "acc_change": _NUM,
                        "n_flips": _COUNT,
                        "n_pred_flips": _COUNT,
                        "n_at_risk": _COUNT,
                    }
                ),
                "status": {"enum": ["certified", "estimated", "violated"]},
            }
        ),
    ]
}

_VARIANT = _obj(
    {
        "name": _STR,
        "description": _STR,
        "decomposition": {"enum": ["mask", "additive", "mixed"]},
        "sparsity": _FRACTION,
        "source": {"type": "object"},
        "other_changes": _arr(_STR),
        "layers": _arr(_VARIANT_LAYER),
        "multilayer": _MULTILAYER,
        "margins": _obj(
            {"true_margin": _arr(_NUM), "two_eta": _arr(_NONNEG), "flipped": _arr(_BOOL)}
        ),
        "violations": _arr(
            _obj(
                {
                    "layer": _STR,
                    "result": _STR,
                    "lhs": _NUM_OR_NULL,
                    "rhs": _NUM_OR_NULL,
                    "certified": _BOOL,
                    "message": _STR,
                }
            )
        ),
        "summary": _obj(
            {
                "n_layers": _COUNT,
                "certified": _COUNT,
                "estimated": _COUNT,
                "violated": _COUNT,
                "decrease_certified": _COUNT,
            }
        ),
    }
)

#: JSON Schema (draft 2020-12) of ``report.json``, schema version :data:`SCHEMA_VERSION`.
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:certkit:audit-report:" + SCHEMA_VERSION,
    "title": "certkit audit report",
    "$defs": {"cert": _CERTIFICATE},
    **_obj(
        {
            "schema": {"const": "certkit.audit"},
            "schema_version": {"const": SCHEMA_VERSION},
            "created": {"type": "string", "minLength": 10},
            "status": {"const": "complete"},
            "environment": _obj(
                {
                    "certkit": _STR,
                    "python": _STR,
                    "torch": _STR,
                    "timm": _STR_OR_NULL,
                    "numpy": _STR,
                    "platform": _STR,
                    "torch_threads": _COUNT,
                }
            ),
            "model": _obj(
                {
                    "name": _STR,
                    "source": _STR,
                    "checkpoint": _STR_OR_NULL,
                    "n_params": _COUNT,
                    "dtype": _STR,
                },
                extra=True,
            ),
            "calibration": _obj(
                {
                    "source": _STR,
                    "n": _COUNT,
                    "label_policy": {"enum": ["given", "dense-prediction"]},
                    "input_shape": _arr(_COUNT),
                    "skipped": _arr(_obj({"path": _STR, "reason": _STR})),
                },
                extra=True,
            ),
            "config": _obj(
                {
                    "lam1": _NONNEG,
                    "lam2": _NONNEG,
                    "weight_decay": {"type": ["number", "null"], "minimum": 0},
                    "lambda_source": _STR,
                    "lipschitz": _STR,
                    "lipschitz_samples": _COUNT,
                    "outcome_samples": _COUNT,
                    "batch_size": _COUNT,
                    "seed": {"type": "integer"},
                    "theta_grid": _arr(_FRACTION),
                    "safety_factor": _NUM,
                    "tolerance": _obj({"atol": _NONNEG, "rtol": _NONNEG}),
                },
                extra=True,
            ),
            "dense": _obj({"ce": _NUM, "accuracy": _FRACTION, "n": _COUNT}),
            "layers": _arr(_LAYER_INFO),
            "variants": _arr(_VARIANT),
            "summary": _obj(
                {
                    "n_layers": _COUNT,
                    "n_variants": _COUNT,
                    "certified": _COUNT,
                    "estimated": _COUNT,
                    "violated": _COUNT,
                    "violations": _COUNT,
                    "wall_time_s": _NONNEG,
                }
            ),
            "notes": _arr(_STR),
        }
    ),
}


class ReportSchemaError(CertkitError, ValueError):
    """The report does not match :data:`REPORT_SCHEMA` (or holds NaN/inf or non-JSON values).

    Attributes
    ----------
    errors : list of (str, str)
        ``(json_path, message)`` of every problem found, sorted by path.
    """

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = list(errors)
        shown = "\n".join(f"  {p}: {m}" for p, m in self.errors[:MAX_REPORTED_ERRORS])
        more = len(self.errors) - MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(f"invalid certkit audit report ({len(self.errors)} problem(s)):\n{shown}{tail}")


def _json_path(parts) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _walk(obj: Any, path: tuple) -> Iterator[tuple[str, str]]:
    """Yield (path, message) for non-finite floats and values JSON cannot represent."""
    if obj is None or isinstance(obj, (bool, str, int)):
        return
    if isinstance(obj, float):
        if not math.isfinite(obj):
            yield _json_path(path), f"{obj!r} is not a finite number (write missing values as null)"
        return
    if isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, (*path, i))
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                yield _json_path(path), f"key {k!r} is not a string"
                continue
            yield from _walk(v, (*path, k))
        return
    yield _json_path(path), f"value of type {type(obj).__name__} is not JSON (use to_jsonable)"


_VALIDATOR = jsonschema.Draft202012Validator(REPORT_SCHEMA)


def report_errors(report: Any) -> list[tuple[str, str]]:
    """All problems of ``report`` as ``(json_path, message)`` pairs, sorted by path (empty if valid).

    Parameters
    ----------
    report : object
        Candidate report dict.

    Returns
    -------
    list of (str, str)
    """
    problems = list(_walk(report, ()))
    if not problems:
        for err in _VALIDATOR.iter_errors(report):
            problems.append((_json_path(err.absolute_path), _message(err)))
    if not problems:
        problems = list(_consistency(report))
    return sorted(set(problems), key=lambda pm: (pm[0], pm[1]))


def _consistency(report: dict) -> Iterator[tuple[str, str]]:
    """Cross-field rules the schema cannot state (run on a schema-valid report)."""
    try:
        datetime.fromisoformat(report["created"])
    except ValueError:
        yield "$.created", f"{report['created']!r} is not an ISO-8601 date-time"
    names = [layer["name"] for layer in report["layers"]]
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield f"$.layers[{i}].name", f"duplicate layer name {name!r}"
        seen.add(name)
        hist = report["layers"][i]["mp"]["hist"]
        if hist is not None:
            e, d = hist["edges"], hist["density"]
            if len(e) != len(d) + 1:
                yield (f"$.layers[{i}].mp.hist",
                       f"len(edges) == {len(e)} must be len(density) + 1 == {len(d) + 1}")
            elif any(b <= a for a, b in zip(e, e[1:], strict=False)):
                yield f"$.layers[{i}].mp.hist.edges", "edges must be strictly increasing"
    for vi, v in enumerate(report["variants"]):
        base = f"$.variants[{vi}]"
        for li, layer in enumerate(v["layers"]):
            if layer["name"] not in seen:
                yield f"{base}.layers[{li}].name", f"{layer['name']!r} is not in $.layers"
        m = v["margins"]
        lengths = {k: len(m[k]) for k in ("true_margin", "two_eta", "flipped")}
        if len(set(lengths.values())) > 1:
            yield f"{base}.margins", f"arrays must have equal lengths, got {lengths}"
        ml = v["multilayer"]
        if ml is not None:
            for j, name in enumerate(ml["order"]):
                if name not in seen:
                    yield f"{base}.multilayer.order[{j}]", f"{name!r} is not in $.layers"
        counts = {
            "n_layers": len(v["layers"]),
            **{st: sum(la["status"] == st for la in v["layers"])
               for st in ("certified", "estimated", "violated")},
            "decrease_certified": sum(la["decrease_certified"] is True for la in v["layers"]),
        }
        for key, n in counts.items():
            if v["summary"][key] != n:
                yield f"{base}.summary.{key}", f"is {v['summary'][key]}, but the layers give {n}"
    top = {
        "n_layers": len(report["layers"]),
        "n_variants": len(report["variants"]),
        **{st: sum(la["status"] == st for v in report["variants"] for la in v["layers"])
           for st in ("certified", "estimated", "violated")},
        "violations": sum(len(v["violations"]) for v in report["variants"]),
    }
    for key, n in top.items():
        if report["summary"][key] != n:
            yield f"$.summary.{key}", f"is {report['summary'][key]}, but the report gives {n}"


def _message(err: jsonschema.ValidationError) -> str:
    if err.validator in ("oneOf", "anyOf") and err.context:
        # Report the deepest sub-error of the non-null branch: far more useful than
        # "... is not valid under any of the given schemas".
        best = max(err.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        sub = _json_path(best.absolute_path)
        return f"{best.message}" + (f" (at {sub})" if best.absolute_path else "")
    return err.message


def validate_report(report: Any) -> None:
    """Check ``report`` against :data:`REPORT_SCHEMA` and for finite, JSON-only values.

    Parameters
    ----------
    report : dict
        The audit report.

    Raises
    ------
    ReportSchemaError
        With the JSON paths (``$.variants[0].layers[2].budget.label``) of the problems.
    """
    problems = report_errors(report)
    if problems:
        raise ReportSchemaError(problems)


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars and arrays, tuples and mappings to plain JSON values.

    Non-finite floats become ``None`` (the report's convention for missing numbers).

    Parameters
    ----------
    obj : object

    Returns
    -------
    object
        Built from dict, list, str, int, float, bool and None only.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # numpy arrays/scalars, torch tensors
    if callable(tolist):
        if hasattr(obj, "detach"):
            obj = obj.detach().cpu()
        return to_jsonable(obj.tolist())
    raise TypeError(f"cannot convert {type(obj).__name__} to JSON")


_NONFINITE_STRINGS = {"inf": None, "-inf": None, "nan": None}


def certificate_dict(cert: Any) -> dict:
    """``Certificate.to_dict()`` in the report's convention (non-finite numbers as ``null``).

    :meth:`certkit.results.Certificate.to_dict` writes non-finite numbers as the strings
    ``"inf"``/``"-inf"``/``"nan"``; the report schema wants ``null`` there.

    Parameters
    ----------
    cert : certkit.results.Certificate or dict
        A certificate or its ``to_dict()``.

    Returns
    -------
    dict
    """
    d = dict(cert.to_dict() if hasattr(cert, "to_dict") else cert)
    for key in ("lhs", "rhs", "slack"):
        if isinstance(d.get(key), str) and d[key] in _NONFINITE_STRINGS:
            d[key] = None
    d["details"] = {
        k: (None if isinstance(v, str) and v in _NONFINITE_STRINGS else v)
        for k, v in dict(d.get("details", {})).items()
    }
    return to_jsonable(d)
