"""The paper_figs app itself: registry contract, make/replot/resume, gallery and CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from paper_figs import registry
from paper_figs._plot import new_figure, ols_log10
from paper_figs.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from paper_figs.gallery import write_gallery
from paper_figs.make import FigureError, is_current, make_all, make_figure, plot_from_csv
from paper_figs.registry import FigureOptions, FigureSpec

from ._helpers import check_outputs

CALLS: list[FigureOptions] = []


def _data_toy(options: FigureOptions) -> pd.DataFrame:
    CALLS.append(options)
    rng = np.random.default_rng(options.seed)
    x = np.arange(20 if options.quick else 50, dtype=float)
    return pd.DataFrame({"x": x, "y": x + rng.normal(size=x.size)})


def _plot_toy(df: pd.DataFrame):
    fig, ax = new_figure(6, 4)
    ax.plot(df["x"], df["y"], "o-", lw=3, label="toy")
    ax.set_xlabel("x (dimensionless)")
    ax.set_ylabel("y (dimensionless)")
    ax.legend()
    fig.suptitle("toy")
    return fig


def _data_broken(options: FigureOptions) -> pd.DataFrame:
    return pd.DataFrame({"other": [1.0]})


def _data_raises(options: FigureOptions) -> pd.DataFrame:
    raise RuntimeError("boom")


@pytest.fixture
def toy_registry(monkeypatch):
    """A registry holding only three test figures (the real figures are tested elsewhere)."""
    figs = {}
    monkeypatch.setattr(registry, "_FIGURES", figs)
    monkeypatch.setattr(registry, "_load_all", lambda: None)
    registry.register(FigureSpec("toy", "Toy", "A toy line.", _data_toy, _plot_toy, ("x", "y")))
    registry.register(FigureSpec("broken", "Broken", "Wrong columns.", _data_broken, _plot_toy, ("x", "y")))
    registry.register(FigureSpec("raises", "Raises", "Raises.", _data_raises, _plot_toy, ("x",)))
    CALLS.clear()
    return figs


def test_registry_rejects_duplicates_and_bad_specs(toy_registry):
    with pytest.raises(ValueError, match="already registered"):
        registry.register(FigureSpec("toy", "T", "d", _data_toy, _plot_toy, ("x",)))
    with pytest.raises(ValueError, match="kind"):
        FigureSpec("t2", "T", "d", _data_toy, _plot_toy, ("x",), kind="guess")
    with pytest.raises(ValueError, match="lower_snake_case"):
        FigureSpec("Bad-Name", "T", "d", _data_toy, _plot_toy, ("x",))
    with pytest.raises(ValueError, match="unknown figure 'nope'.*toy"):
        registry.get_figure("nope")


def test_make_writes_all_outputs_and_sidecar(toy_registry, tmp_path):
    made = make_figure("toy", tmp_path, FigureOptions(quick=True, seed=3))
    df = check_outputs("toy", tmp_path)
    assert len(df) == 20 and made.rows == 20 and not made.skipped
    meta = json.loads(made.meta.read_text())
    assert meta["options"] == {"quick": True, "seed": 3}
    assert meta["command"] == "python -m paper_figs make toy --out DIR --quick --seed 3"
    assert "matplotlib" in meta["versions"]
    assert not list(tmp_path.glob(".*")), "temporary files left behind"


def test_make_is_deterministic_given_seed(toy_registry, tmp_path):
    make_figure("toy", tmp_path / "a", FigureOptions(seed=1))
    make_figure("toy", tmp_path / "b", FigureOptions(seed=1))
    make_figure("toy", tmp_path / "c", FigureOptions(seed=2))
    a, b, c = (pd.read_csv(tmp_path / d / "toy.csv") for d in "abc")
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_contract_violations_are_caught(toy_registry, tmp_path):
    with pytest.raises(FigureError, match=r"lacks columns \['x', 'y'\]"):
        make_figure("broken", tmp_path)
    assert not (tmp_path / "broken.json").exists()


def test_resume_skips_current_figures_and_remakes_on_new_options(toy_registry, tmp_path):
    make_all(tmp_path, FigureOptions(quick=True), names=["toy"])
    assert len(CALLS) == 1 and is_current(tmp_path, "toy", FigureOptions(quick=True))
    made = make_all(tmp_path, FigureOptions(quick=True), names=["toy"])
    assert made[0].skipped and len(CALLS) == 1
    make_all(tmp_path, FigureOptions(quick=False), names=["toy"])
    assert len(CALLS) == 2
    # an interrupted figure (sidecar missing) is not current and gets remade
    (tmp_path / "toy.json").unlink()
    make_all(tmp_path, FigureOptions(quick=False), names=["toy"])
    assert len(CALLS) == 3


def test_replot_from_csv(toy_registry, tmp_path):
    make_figure("toy", tmp_path)
    (tmp_path / "toy.png").unlink()
    plot_from_csv("toy", tmp_path)
    check_outputs("toy", tmp_path)
    with pytest.raises(FileNotFoundError, match="run `make raises` first"):
        plot_from_csv("raises", tmp_path)


def test_gallery_lists_made_and_missing_figures(toy_registry, tmp_path):
    make_figure("toy", tmp_path, FigureOptions(quick=True))
    index, readme = write_gallery(tmp_path)
    md = readme.read_text()
    assert "![Toy](toy.png)" in md and "A toy line." in md
    assert "python -m paper_figs make toy --out DIR --quick --seed 0" in md
    assert "## `raises`" in md and "*(not made yet)*" in md
    page = index.read_text()
    assert "<img src='toy.png'" in page and "not made yet" in page


def test_cli_list(toy_registry, capsys):
    assert main(["list"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "toy" in out and "A toy line." in out
    assert main(["list", "--json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["toy", "broken", "raises"]


def test_cli_make_keeps_going_and_reports_failures(toy_registry, tmp_path, capsys):
    assert main(["make", "all", "--out", str(tmp_path), "--quick"]) == EXIT_FAILED
    captured = capsys.readouterr()
    assert "broken: FAILED" in captured.err and "raises: FAILED: RuntimeError: boom" in captured.err
    check_outputs("toy", tmp_path)
    assert (tmp_path / "index.html").exists()
    assert main(["make", "toy", "--out", str(tmp_path), "--quick"]) == EXIT_OK
    assert "up to date" in capsys.readouterr().out
    assert main(["replot", "toy", "--out", str(tmp_path), "-q"]) == EXIT_OK


def test_cli_usage_errors(toy_registry, tmp_path, capsys):
    assert main(["make", "nope", "--out", str(tmp_path)]) == EXIT_USAGE
    assert "unknown figure 'nope'" in capsys.readouterr().err
    assert main(["make", "all", "toy", "--out", str(tmp_path)]) == EXIT_USAGE
    with pytest.raises(SystemExit) as exc:
        main(["make", "toy"])  # --out missing
    assert exc.value.code == EXIT_USAGE


def test_certkit_plugin_exposes_figs(toy_registry, capsys):
    from certkit.cli import main as certkit_main

    assert certkit_main(["figs", "list"]) == EXIT_OK
    assert "toy" in capsys.readouterr().out


def test_ols_log10_recovers_a_known_line():
    x = np.array([1.0, 10.0, 100.0, 1000.0])
    slope, intercept, r, n = ols_log10(x, 2.0 - 3.0 * np.log10(x))
    assert (n, round(slope, 12), round(intercept, 12), round(r, 12)) == (4, -3.0, 2.0, -1.0)
    assert np.isnan(ols_log10([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])[0])


def test_gallery_readme_links_images_relative_to_the_readme(toy_registry, tmp_path):
    out = tmp_path / "pkg" / "gallery"
    make_figure("toy", out, FigureOptions(quick=True))
    readme = tmp_path / "pkg" / "README.md"
    assert main(["gallery", "--out", str(out), "--readme", str(readme), "--no-data-links", "-q"]) == EXIT_OK
    md = readme.read_text()
    assert "![Toy](gallery/toy.png)" in md and "toy.csv" not in md
    assert main(["gallery", "--out", str(out), "--readme", str(readme), "-q"]) == EXIT_OK
    assert "(gallery/toy.csv)" in readme.read_text()
