r"""Validate, render and atomically publish an audit report directory.

Layout of a report directory::

    <out_dir>/report.json     the report (sorted keys, indent 2, UTF-8)
    <out_dir>/report.md       Markdown rendering (links figures/*.png)
    <out_dir>/report.html     self-contained HTML (figures embedded)
    <out_dir>/figures/*.png   the four audit figures

Everything is written into a temporary sibling directory ``.<name>.tmp-<pid>-<random>`` and
published with one ``rename``: readers never see a half-written report, and a failure leaves
nothing behind.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

from .figures import render_figures
from .html import render_html
from .markdown import render_markdown
from .schema import ReportSchemaError, validate_report

__all__ = ["write_report", "load_report", "dump_report_json", "REPORT_FILES"]

#: Files of a report directory (besides ``figures/``).
REPORT_FILES = ("report.json", "report.md", "report.html")


def dump_report_json(report: Mapping) -> str:
    """The canonical ``report.json`` text: sorted keys, indent 2, no NaN/inf, trailing newline."""
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _write(path: Path, data: str | bytes) -> None:
    mode = "wb" if isinstance(data, bytes) else "w"
    kw = {} if isinstance(data, bytes) else {"encoding": "utf-8", "newline": "\n"}
    with open(path, mode, **kw) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _is_report_dir(path: Path) -> bool:
    """A directory we may replace: empty, or holding a ``report.json``."""
    return path.is_dir() and (not any(path.iterdir()) or (path / "report.json").is_file())


def write_report(report: Mapping, out_dir: str | os.PathLike, *, overwrite: bool = False,
                 figures: bool = True) -> Path:
    """Validate ``report`` and publish ``report.json``, ``report.md``, ``report.html`` and figures.

    Parameters
    ----------
    report : dict
        The audit report; validated first (nothing is written if it is invalid).
    out_dir : path
        Directory to create. Its parent is created if needed.
    overwrite : bool, default False
        Replace an existing report directory. The old directory is moved aside and deleted only
        after the new one is in place (on failure it is moved back). Only a directory that is
        empty or contains ``report.json`` is ever replaced.
    figures : bool, default True
        Render the four figures (``figures/*.png``, embedded in the HTML, linked from the
        Markdown).

    Returns
    -------
    pathlib.Path
        The published directory.

    Raises
    ------
    ReportSchemaError
        The report is invalid.
    FileExistsError
        ``out_dir`` exists and ``overwrite`` is False, or it exists but is not a report directory.
    """
    validate_report(report)
    out = Path(os.path.abspath(os.fspath(out_dir)))
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise FileExistsError(f"{out} already exists; pass overwrite=True to replace it")
        if out.is_symlink() or not _is_report_dir(out):
            raise FileExistsError(f"{out} exists and is not a report directory (no report.json); "
                                  "refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        pngs = render_figures(report) if figures else {}
        if pngs:
            (tmp / "figures").mkdir()
            for slug, png in pngs.items():
                _write(tmp / "figures" / f"{slug}.png", png)
        _write(tmp / "report.json", dump_report_json(report))
        _write(tmp / "report.md", render_markdown(report, figure_slugs=list(pngs)))
        _write(tmp / "report.html", render_html(report, pngs))
        _publish(tmp, out, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _publish(tmp: Path, out: Path, *, overwrite: bool) -> None:
    if not (out.exists() or out.is_symlink()):
        os.rename(tmp, out)
        return
    if not overwrite:
        raise FileExistsError(f"{out} appeared while the report was being written")
    old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_report(path: str | os.PathLike) -> dict:
    """Read and validate a report.

    Parameters
    ----------
    path : path
        A report directory or its ``report.json``.

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        No report at ``path``.
    ReportSchemaError
        The file is not valid JSON or not a valid report (NaN/Infinity literals included).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"

    def reject(const: str):
        raise ValueError(f"non-finite number {const} in JSON")

    try:
        report = json.loads(p.read_text(encoding="utf-8"), parse_constant=reject)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ReportSchemaError([("$", f"{p}: not valid JSON: {exc}")]) from exc
    validate_report(report)
    return report
