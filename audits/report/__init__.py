"""Validate, render and atomically write ``certkit audit`` reports.

The audit engine produces a report dict (layout: :data:`REPORT_SCHEMA`); this package

* validates it (:func:`validate_report`, strict JSON Schema + finite numbers),
* renders it as Markdown (:func:`render_markdown`) and self-contained HTML (:func:`render_html`),
* draws the four audit figures (:mod:`audits.report.figures`),
* publishes ``report.json``/``report.md``/``report.html``/``figures/`` atomically
  (:func:`write_report`) and reads them back (:func:`load_report`).

Every number is labelled *certified* or *estimated*; the Trap-T12 op-norm proxy is always
labelled "proxy — not a bound".
"""

from .example import example_report
from .figures import FIGURE_SLUGS, FIGURES, render_figures
from .html import render_html
from .markdown import build_document, render_markdown
from .schema import (
    REPORT_SCHEMA,
    SCHEMA_VERSION,
    ReportSchemaError,
    certificate_dict,
    report_errors,
    to_jsonable,
    validate_report,
)
from .writer import REPORT_FILES, dump_report_json, load_report, write_report

__all__ = [
    "FIGURES",
    "FIGURE_SLUGS",
    "REPORT_FILES",
    "REPORT_SCHEMA",
    "SCHEMA_VERSION",
    "ReportSchemaError",
    "build_document",
    "certificate_dict",
    "dump_report_json",
    "example_report",
    "load_report",
    "render_figures",
    "render_html",
    "render_markdown",
    "report_errors",
    "to_jsonable",
    "validate_report",
    "write_report",
]
