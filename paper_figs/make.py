"""Make figures: run the data function, save the CSV, draw, save PNG + PDF + a JSON sidecar.

Every output is written atomically (temporary file + ``os.replace``), the JSON sidecar last,
so an interrupted run never leaves a figure that looks complete: a figure counts as made
only when its sidecar exists and names the same options. ``make_all`` skips such figures
unless ``force`` is set, so re-running after an interruption resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import pandas as pd

from .registry import FigureOptions, FigureSpec, get_figure, list_figures

__all__ = ["FigureError", "MadeFigure", "make_all", "make_figure", "output_paths", "plot_from_csv"]

#: Raster resolution of the PNGs (dots per inch).
PNG_DPI = 130
#: Output suffixes of one figure, in the order they are written (sidecar last).
SUFFIXES = (".csv", ".png", ".pdf", ".json")


class FigureError(RuntimeError):
    """A figure's data function returned a table that breaks the registry contract."""


@dataclass(frozen=True)
class MadeFigure:
    """Where one figure was written and how long it took (``skipped``: outputs were current)."""

    name: str
    csv: Path
    png: Path
    pdf: Path
    meta: Path
    seconds: float
    rows: int
    skipped: bool = False


def output_paths(out: Path, name: str) -> dict[str, Path]:
    """``{suffix: path}`` of figure ``name`` under ``out``."""
    return {s: Path(out) / f"{name}{s}" for s in SUFFIXES}


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("certkit", "numpy", "scipy", "torch", "pandas", "matplotlib", "timm"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def check_table(spec: FigureSpec, df: pd.DataFrame) -> None:
    """Raise :class:`FigureError` unless ``df`` is a non-empty table with ``spec.columns``."""
    if not isinstance(df, pd.DataFrame):
        raise FigureError(f"figure {spec.name!r}: data() returned {type(df).__name__}, not a DataFrame")
    missing = [c for c in spec.columns if c not in df.columns]
    if missing:
        raise FigureError(f"figure {spec.name!r}: data() table lacks columns {missing}")
    if df.empty:
        raise FigureError(f"figure {spec.name!r}: data() returned an empty table")


def code_fingerprint(spec: FigureSpec) -> str:
    """SHA-256 (16 hex digits) of the code a figure depends on inside ``paper_figs``.

    Hashes the source files of ``spec``'s data and plot functions plus the app's private
    helper modules (``paper_figs/_*.py``, ``paper_figs/figures/_*.py``). Recorded in the sidecar:
    a figure whose code changed since it was made is not current. (Changes in certkit, synthetic
    or audits are not tracked: use ``--force`` after upgrading them.)
    """
    here = Path(__file__).resolve().parent
    files = {Path(inspect.getsourcefile(fn)).resolve() for fn in (spec.data, spec.plot)}
    files |= set(here.glob("_*.py")) | set((here / "figures").glob("_*.py"))
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _sidecar(spec: FigureSpec, options: FigureOptions, df: pd.DataFrame, seconds: float) -> dict:
    return {
        "figure": spec.name,
        "title": spec.title,
        "description": spec.description,
        "kind": spec.kind,
        "paper": spec.paper,
        "options": asdict(options),
        "code": code_fingerprint(spec),
        "rows": int(len(df)),
        "columns": list(map(str, df.columns)),
        "seconds": round(seconds, 3),
        "command": f"python -m paper_figs make {spec.name} --out DIR"
                   + (" --quick" if options.quick else "") + f" --seed {options.seed}",
        "versions": _versions(),
    }


def is_current(out: Path, name: str, options: FigureOptions) -> bool:
    """True when all outputs of ``name`` exist and the sidecar records the same options and code."""
    paths = output_paths(out, name)
    if not all(p.exists() for p in paths.values()):
        return False
    try:
        meta = json.loads(paths[".json"].read_text())
    except (OSError, ValueError):
        return False
    return (meta.get("options") == asdict(options)
            and meta.get("code") == code_fingerprint(get_figure(name)))


def render(spec: FigureSpec, df: pd.DataFrame, paths: dict[str, Path]) -> None:
    """Draw ``df`` with ``spec.plot`` and write the PNG and the PDF."""
    fig = spec.plot(df)
    try:
        _atomic_write(paths[".png"], lambda p: fig.savefig(p, dpi=PNG_DPI, format="png"))
        _atomic_write(paths[".pdf"], lambda p: fig.savefig(p, format="pdf"))
    finally:
        fig.clear()


def make_figure(name: str, out: str | os.PathLike, options: FigureOptions | None = None, *,
                force: bool = True) -> MadeFigure:
    """Make figure ``name`` under ``out``: ``name.csv``, ``name.png``, ``name.pdf``, ``name.json``.

    With ``force=False`` a figure whose outputs are current (same options) is not remade.
    """
    spec = get_figure(name)
    options = options or FigureOptions()
    out = Path(out)
    paths = output_paths(out, name)
    if not force and is_current(out, name, options):
        meta = json.loads(paths[".json"].read_text())
        return MadeFigure(name, paths[".csv"], paths[".png"], paths[".pdf"], paths[".json"],
                          float(meta.get("seconds", math.nan)), int(meta.get("rows", 0)), skipped=True)
    t0 = time.perf_counter()
    df = spec.data(options)
    check_table(spec, df)
    paths[".json"].unlink(missing_ok=True)  # the figure is not current until the sidecar is back
    _atomic_write(paths[".csv"], lambda p: df.to_csv(p, index=False))
    render(spec, df, paths)
    seconds = time.perf_counter() - t0
    meta = _sidecar(spec, options, df, seconds)
    _atomic_write(paths[".json"], lambda p: p.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n"))
    return MadeFigure(name, paths[".csv"], paths[".png"], paths[".pdf"], paths[".json"], seconds, len(df))


def plot_from_csv(name: str, out: str | os.PathLike) -> Path:
    """Re-draw figure ``name`` from its saved CSV under ``out`` (no recomputation)."""
    spec = get_figure(name)
    paths = output_paths(Path(out), name)
    if not paths[".csv"].exists():
        raise FileNotFoundError(f"{paths['.csv']} does not exist; run `make {name}` first")
    df = pd.read_csv(paths[".csv"])
    check_table(spec, df)
    render(spec, df, paths)
    return paths[".png"]


def make_all(out: str | os.PathLike, options: FigureOptions | None = None, *,
             names: Sequence[str] | None = None, force: bool = False,
             progress: Callable[[int, int, str], None] | None = None) -> list[MadeFigure]:
    """Make every figure (or ``names``) under ``out``, skipping current ones unless ``force``."""
    names = list(names) if names is not None else list_figures()
    made = []
    for i, name in enumerate(names):
        if progress is not None:
            progress(i, len(names), name)
        made.append(make_figure(name, out, options, force=force))
    if progress is not None:
        progress(len(names), len(names), "")
    return made
