"""Tests of audits.report: schema, renderers, figures and the atomic writer."""

from __future__ import annotations

import copy
import json
import math
import re

import numpy as np
import pytest

from audits.report import (
    FIGURE_SLUGS,
    FIGURES,
    REPORT_SCHEMA,
    SCHEMA_VERSION,
    ReportSchemaError,
    certificate_dict,
    example_report,
    load_report,
    render_html,
    render_markdown,
    report_errors,
    to_jsonable,
    validate_report,
    write_report,
)
from audits.report import figures as figmod
from audits.report import writer as writer_mod
from certkit import Certificate
from certkit.exceptions import CertkitError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def _example() -> dict:
    return example_report()


@pytest.fixture
def report(_example) -> dict:
    return copy.deepcopy(_example)


def _paths(report: dict) -> list[str]:
    return [p for p, _ in report_errors(report)]


# ------------------------------------------------------------------------------------ example
def test_example_is_valid_and_realistic(report):
    validate_report(report)
    assert report["schema_version"] == SCHEMA_VERSION == "1.0"
    assert len(report["layers"]) == 3 and len(report["variants"]) == 2
    kinds = {v["name"]: v["decomposition"] for v in report["variants"]}
    assert kinds == {"magnitude-50": "mask", "ft-drift": "mixed"}
    additive = [la for la in report["variants"][1]["layers"] if la["decomposition"] == "additive"]
    assert additive and all(la["not_applicable"] for la in additive)
    assert report["summary"]["violations"] >= 1
    assert {x["layer"] for v in report["variants"] for x in v["violations"]} == {"fc2"}
    assert not any(x["certified"] for v in report["variants"] for x in v["violations"])
    fitted = [la for la in report["layers"] if la["mp"]["status"] == "fitted"]
    assert len(fitted) == 2 and all(la["mp"]["hist"] for la in fitted)
    # certified mask variant: every certificate certified and holding
    v1 = report["variants"][0]
    assert all(c["certified"] for la in v1["layers"] for c in la["certificates"])
    assert v1["multilayer"]["status"] == "certified"
    # the report survives a JSON round trip unchanged
    assert json.loads(json.dumps(report)) == report


def test_schema_is_a_valid_draft_2020_12_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)


# ------------------------------------------------------------------------------------ schema
def test_rejects_missing_key(report):
    del report["dense"]["ce"]
    with pytest.raises(ReportSchemaError) as exc:
        validate_report(report)
    assert "$.dense" in str(exc.value) and "'ce' is a required property" in str(exc.value)
    assert isinstance(exc.value, CertkitError) and isinstance(exc.value, ValueError)


def test_rejects_typo_key(report):
    layer = report["variants"][0]["layers"][1]
    layer["budjet"] = layer.pop("budget")
    paths = _paths(report)
    assert "$.variants[0].layers[1]" in paths
    msg = str(pytest.raises(ReportSchemaError, validate_report, report).value)
    assert "budjet" in msg


def test_extra_keys_allowed_only_where_marked(report):
    report["model"]["arch"] = "mlp"
    report["calibration"]["transform"] = "none"
    report["config"]["engine"] = {"chunk": 4}
    validate_report(report)
    report["dense"]["extra"] = 1
    assert _paths(report) == ["$.dense"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_rejects_non_finite(report, value):
    report["variants"][0]["layers"][0]["eta_max"] = value
    with pytest.raises(ReportSchemaError) as exc:
        validate_report(report)
    assert "$.variants[0].layers[0].eta_max" in str(exc.value)
    # also deep inside a certificate's free-form details and in a nullable field
    r2 = example_report()
    r2["variants"][1]["layers"][0]["certificates"][0]["details"]["budget"] = value
    r2["layers"][0]["mp"]["sigma_plus"] = value
    paths = _paths(r2)
    assert "$.variants[1].layers[0].certificates[0].details.budget" in paths
    assert "$.layers[0].mp.sigma_plus" in paths


def test_rejects_wrong_enum(report):
    report["layers"][0]["mp"]["status"] = "fit"
    report["variants"][0]["layers"][0]["status"] = "ok"
    assert _paths(report) == ["$.layers[0].mp.status", "$.variants[0].layers[0].status"]


def test_rejects_wrong_types_and_non_json_values(report):
    report["dense"]["n"] = 64.5
    report["summary"]["n_layers"] = np.int64(3)
    report["layers"][0]["shape"] = (96, 48)
    paths = _paths(report)
    assert "$.summary.n_layers" in paths and "$.layers[0].shape" in paths
    fixed = to_jsonable(report)
    fixed["dense"]["n"] = 64
    validate_report(fixed)


def test_honesty_rules(report):
    b = report["variants"][1]["layers"][0]["budget"]
    assert b["certified"] is False
    b["label"] = "certified"  # an estimate labelled certified
    assert _paths(report) == ["$.variants[1].layers[0].budget.label"]
    r = example_report()
    r["variants"][1]["layers"][0]["status"] = "certified"  # estimated budget, certified status
    assert "$.variants[1].layers[0].budget.certified" in _paths(r)
    r = example_report()
    r["variants"][0]["layers"][0]["proxy"]["label"] = "empirical upper bound"  # Trap T12
    assert _paths(r) == ["$.variants[0].layers[0].proxy.label"]
    r = example_report()
    r["layers"][0]["mp"]["label"] = "certified"
    assert _paths(r) == ["$.layers[0].mp.label"]
    r = example_report()
    c = r["variants"][0]["layers"][0]["certificates"][0]
    c["certified"] = False  # label still says certified
    assert _paths(r) == ["$.variants[0].layers[0].certificates[0].label"]


def test_nullable_outcome_and_multilayer(report):
    report["variants"][0]["layers"][0]["outcome"] = None
    report["variants"][0]["layers"][0]["prune_restore"] = None
    report["variants"][0]["multilayer"] = None
    validate_report(report)
    report["variants"][0]["layers"][0]["outcome"] = {"n": 3}
    msg = str(pytest.raises(ReportSchemaError, validate_report, report).value)
    assert "$.variants[0].layers[0].outcome" in msg and "required" in msg


def test_summary_counts_must_agree(report):
    report["variants"][0]["summary"]["certified"] = 2
    report["summary"]["violations"] = 0
    report["created"] = "yesterday-ish"
    assert _paths(report) == ["$.created", "$.summary.violations", "$.variants[0].summary.certified"]


def test_consistency_rules(report):
    report["variants"][0]["margins"]["two_eta"].pop()
    report["variants"][1]["layers"][0]["name"] = "nope"
    report["layers"][0]["mp"]["hist"]["density"].pop()
    paths = _paths(report)
    assert "$.variants[0].margins" in paths
    assert "$.variants[1].layers[0].name" in paths
    assert "$.layers[0].mp.hist" in paths


def test_certificate_dict_maps_non_finite_strings_to_null():
    cert = Certificate("M-Lemma 5.1", "|ΔL_CE| ≤ B_T", "bound", None, math.inf, False, "user",
                       details={"budget": math.inf})
    assert cert.to_dict()["rhs"] == "inf"  # Certificate.to_dict() writes non-finite as strings
    d = certificate_dict(cert)
    assert d["rhs"] is None and d["details"]["budget"] is None
    r = example_report()
    r["variants"][0]["layers"][0]["certificates"].append(d)
    validate_report(r)


# ------------------------------------------------------------------------------------ markdown
def test_markdown_content(report):
    md = render_markdown(report)
    assert "proxy" in md and "not a bound" in md and "Trap T12" in md
    # summary sentence per variant
    assert "3 layers: 3 certified, 0 estimated-only, 0 violated; certified decrease in 1" in md
    assert "3 layers: 1 certified, 1 estimated-only, 1 violated" in md
    # the violation with lhs/rhs and its label
    viol = md.split("## Violations", 1)[1].split("\n## ", 1)[0]
    assert "`fc2`" in viol and "M-Lemma 5.1" in viol and "lhs = " in viol and "rhs = " in viol
    assert "[estimated]" in viol
    # config, calibration, multilayer order, figures
    assert "chosen by hand for the example" in md and "`L1`" in md
    assert "calib/broken_0007.png" in md
    assert "`head` → `fc2` → `fc1`" in md and "output-backwards" in md
    for slug in FIGURE_SLUGS:
        assert f"(figures/{slug}.png)" in md
    assert "How to read this report" in md and "estimated" in md and "certified" in md
    # every table row has as many cells as its header (pipes escaped)
    for block in md.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("| "):
            counts = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
            assert len(counts) == 1, block


def test_markdown_without_figures(report):
    md = render_markdown(report, figure_slugs=())
    assert "figures/" not in md and "## Figures" not in md


# ------------------------------------------------------------------------------------ html
def test_html_self_contained_and_escaped(report):
    report["model"]["name"] = "<script>alert(1)</script>"
    report["notes"].append('see "https://example.org" & <b>bold</b>')
    figures = {"budget_bars": PNG_MAGIC + b"fake", "mp_fits": "iVBORw0KGgo="}
    html = render_html(report, figures)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert html.count('<img src="data:image/png;base64,') == 2
    assert "not a bound" in html and "M-Lemma 5.1" in html
    with pytest.raises(ValueError):
        render_html(report, {"budget_bars": "http://evil.example/x.png"})


# ------------------------------------------------------------------------------------ writer
def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_write_report_files_and_roundtrip(report, tmp_path):
    out = write_report(report, tmp_path / "audit")
    assert out == tmp_path / "audit"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["figures", "report.html", "report.json", "report.md"]
    pngs = sorted(p.name for p in (out / "figures").iterdir())
    assert pngs == sorted(f"{s}.png" for s in FIGURE_SLUGS)
    for p in (out / "figures").iterdir():
        assert p.read_bytes().startswith(PNG_MAGIC)
    text = (out / "report.json").read_text(encoding="utf-8")
    assert text == json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert load_report(out) == report == load_report(out / "report.json")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('<img src="data:image/png;base64,') == len(FIGURE_SLUGS)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert _leftovers(tmp_path) == []


def test_write_report_invalid_writes_nothing(report, tmp_path):
    report["status"] = "partial"
    with pytest.raises(ReportSchemaError):
        write_report(report, tmp_path / "audit")
    assert list(tmp_path.iterdir()) == []


def test_write_report_is_atomic(report, tmp_path, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(writer_mod, "render_html", boom)
    with pytest.raises(RuntimeError, match="renderer failed"):
        write_report(report, tmp_path / "audit", figures=False)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_semantics(report, tmp_path, monkeypatch):
    out = write_report(report, tmp_path / "audit", figures=False)
    assert not (out / "figures").exists()
    with pytest.raises(FileExistsError):
        write_report(report, out, figures=False)
    # a failed overwrite leaves the old report in place
    second = copy.deepcopy(report)
    second["model"]["name"] = "second"
    real = writer_mod.render_html
    monkeypatch.setattr(writer_mod, "render_html", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report(second, out, overwrite=True, figures=False)
    assert load_report(out)["model"]["name"] == report["model"]["name"]
    assert _leftovers(tmp_path) == []
    # a successful overwrite replaces it and removes the old copy
    monkeypatch.setattr(writer_mod, "render_html", real)
    write_report(second, out, overwrite=True, figures=False)
    assert load_report(out)["model"]["name"] == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit"]


def test_refuses_to_replace_a_non_report_directory(report, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a report directory"):
        write_report(report, tmp_path / "data", overwrite=True, figures=False)
    assert (tmp_path / "data" / "precious.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        write_report(report, tmp_path / "file", overwrite=True, figures=False)


def test_load_report_rejects_nan_literals(report, tmp_path):
    out = write_report(report, tmp_path / "audit", figures=False)
    p = out / "report.json"
    p.write_text(p.read_text().replace('"ce": ' + json.dumps(report["dense"]["ce"]), '"ce": NaN', 1))
    with pytest.raises(ReportSchemaError, match="NaN"):
        load_report(out)


# ------------------------------------------------------------------------------------ figures
def test_figure_data_functions(report):
    bars = figmod.data_budget_bars(report)
    assert [v["name"] for v in bars["variants"]] == ["magnitude-50", "ft-drift"]
    fc2 = bars["variants"][1]["layers"][1]
    assert fc2["violated"] and not fc2["certified"]
    mp = figmod.data_mp_fits(report)
    assert [p["layer"] for p in mp["panels"]] == ["fc1", "fc2"]
    assert mp["skipped"] and mp["skipped"][0][0] == "head"
    for p in mp["panels"]:
        # the overlaid MP density (renormalised continuous part) has mass ~1 and sits under λ₊
        x, y = np.asarray(p["curve_x"]), np.asarray(p["curve_y"])
        assert abs(float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x))) - 1.0) < 0.05
        assert x[y > 0].max() <= p["lambda_plus"] * 1.2
    margins = figmod.data_margin_histogram(report)
    m0 = margins["variants"][0]
    assert m0["n"] == report["dense"]["n"] and m0["n_flipped_outside"] == 0
    scatter = figmod.data_sigma_budget_scatter(report)
    assert scatter["variants"][0]["n_r"] == 2 and scatter["variants"][0]["r"] is None


def test_mp_fits_selects_evenly(report):
    base = report["layers"][0]
    report["layers"] = [dict(copy.deepcopy(base), name=f"blocks.{i}.fc") for i in range(20)]
    report["variants"] = []
    data = figmod.data_mp_fits(report, max_panels=16)
    names = [p["layer"] for p in data["panels"]]
    assert len(names) == 16 and names[0] == "blocks.0.fc" and names[-1] == "blocks.19.fc"
    assert "16 of 20" in data["selection"]


def test_pearson_log():
    r, n = figmod.pearson_log([1, 10, 100, None, 0], [2, 20, 200, 5, 5])
    assert n == 3 and r == pytest.approx(1.0)
    assert figmod.pearson_log([1, 2], [1, 2]) == (None, 2)
    assert figmod.pearson_log([1, 1, 1], [1, 2, 3]) == (None, 3)


def _resummarize(report: dict) -> dict:
    """Recount the summaries after a test edited layers or violations."""
    for v in report["variants"]:
        s = v["summary"]
        s["n_layers"] = len(v["layers"])
        for st in ("certified", "estimated", "violated"):
            s[st] = sum(la["status"] == st for la in v["layers"])
        s["decrease_certified"] = sum(la["decrease_certified"] is True for la in v["layers"])
    top = report["summary"]
    top.update(n_layers=len(report["layers"]), n_variants=len(report["variants"]),
               violations=sum(len(v["violations"]) for v in report["variants"]))
    for st in ("certified", "estimated", "violated"):
        top[st] = sum(v["summary"][st] for v in report["variants"])
    return report


def _degenerate_variants(report: dict) -> list[dict]:
    """Reports that must still render: zeros, one layer, no MP fit, empty margins, no variants."""
    out = []
    zero = copy.deepcopy(report)
    for v in zero["variants"]:
        for la in v["layers"]:
            la["budget"]["value"] = 0.0
            la["penalty"] = 0.0
            la["proxy"]["op_norm_times_input_sup"] = 0.0
        v["margins"] = {"true_margin": [0.0] * 5, "two_eta": [0.0] * 5, "flipped": [False] * 5}
    out.append(zero)
    one = copy.deepcopy(report)
    one["layers"] = one["layers"][:1]
    for v in one["variants"]:
        v["layers"] = v["layers"][:1]
        v["margins"] = {"true_margin": [1.5], "two_eta": [0.5], "flipped": [True]}
        v["multilayer"] = None
        v["violations"] = []
    out.append(one)
    nofit = copy.deepcopy(report)
    for la in nofit["layers"]:
        la["mp"].update(status="skipped", reason="too small", sigma_plus=None, lambda_plus=None,
                        entry_variance=None, c=None, bulk_fraction=None, fit_error=None,
                        n_spikes=None, spikes=[], hist=None)
    for v in nofit["variants"]:
        v["margins"] = {"true_margin": [], "two_eta": [], "flipped": []}
        for la in v["layers"]:
            la["proxy"]["op_norm_times_input_sup"] = None
    out.append(nofit)
    empty = copy.deepcopy(report)
    empty["variants"] = []
    out.append(empty)
    return [_resummarize(r) for r in out]


def test_figures_survive_degenerate_data(report):
    for r in _degenerate_variants(report):
        validate_report(r)
        for slug, (data_fn, plot_fn, _) in FIGURES.items():
            fig = plot_fn(data_fn(r))
            png = figmod.figure_png(fig, dpi=40)
            assert png.startswith(PNG_MAGIC), slug
        # the renderers cope too
        assert "not a bound" in render_markdown(r)
        render_html(r)


def test_degenerate_figures_say_no_data(report):
    empty = _degenerate_variants(report)[3]
    fig = figmod.plot_budget_bars(figmod.data_budget_bars(empty))
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no data" in t for t in texts)
    nofit = _degenerate_variants(report)[2]
    fig = figmod.plot_mp_fits(figmod.data_mp_fits(nofit))
    assert any("no data" in t.get_text() for ax in fig.axes for t in ax.texts)


def test_no_pyplot_state_leaks(report):
    import sys

    figmod.render_figures(report, slugs=["budget_bars"], dpi=30)
    if "matplotlib.pyplot" in sys.modules:
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []


def test_figure_values_are_finite_in_data(report):
    for slug, (data_fn, _, _) in FIGURES.items():
        blob = json.dumps(data_fn(report), default=str)
        assert "NaN" not in blob and "Infinity" not in blob, slug
    assert all(math.isfinite(x) for x in figmod.data_margin_histogram(report)["variants"][0]["two_eta"])
