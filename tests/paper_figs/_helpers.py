"""Shared checks of made figures: valid, non-trivial images and the registered CSV columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from paper_figs.make import make_figure, plot_from_csv
from paper_figs.registry import FigureOptions, get_figure

QUICK = FigureOptions(quick=True, seed=0)


def check_outputs(name: str, out: Path) -> pd.DataFrame:
    """Assert figure ``name``'s outputs under ``out`` are complete and non-trivial; return its CSV."""
    spec = get_figure(name)
    png, pdf, csv, meta = (out / f"{name}{s}" for s in (".png", ".pdf", ".csv", ".json"))
    for p in (png, pdf, csv, meta):
        assert p.exists() and p.stat().st_size > 0, p
    assert pdf.read_bytes()[:5] == b"%PDF-"
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.width >= 400 and im.height >= 250, im.size
        px = np.asarray(im.convert("L"), dtype=float)
    assert px.std() > 5.0, "image is (nearly) blank"
    assert (px < 128).mean() > 0.005, "image has almost no ink"
    df = pd.read_csv(csv)
    missing = [c for c in spec.columns if c not in df.columns]
    assert not missing, f"{name}.csv lacks {missing}"
    assert len(df) > 0
    return df


def make_and_check(name: str, out: Path, options: FigureOptions = QUICK) -> pd.DataFrame:
    """Make ``name`` under ``out``, check the outputs, re-draw from the CSV, check again."""
    make_figure(name, out, options)
    df = check_outputs(name, out)
    plot_from_csv(name, out)
    check_outputs(name, out)
    return df
