"""Smoke test of benchmarks/digits_pruning.py with tiny settings (< 20 s)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("timm")
pytest.importorskip("sklearn")

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "digits_pruning.py"


def _load():
    spec = importlib.util.spec_from_file_location("digits_pruning", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_digits_pruning_smoke(tmp_path):
    import certkit.masks  # noqa: F401

    d = _load()
    data = d.load_data(0)
    data = (data[0][:256], data[1][:256], data[2][:128], data[3][:128])
    cfg = dict(d.DEFAULTS, embed_dim=40, depth=1, num_heads=2, epochs=1, ft_epochs=1,
               calib_batches=2)
    res = {0: d.run_seed(0, data, cfg, methods=("magnitude", "cast"), sparsities=(0.5,),
                         log=lambda *_: None)}
    for m in ("magnitude", "cast"):
        rec = res[0][(m, 0.5)]
        assert rec["error"] is None, rec["error"]
        assert abs(rec["achieved"] - 0.5) < 1e-9
        assert 0.0 <= rec["post"] <= 100.0
    tab = d.table(res, [0], methods=("magnitude", "cast"), sparsities=(0.5,))
    assert "CAST 2:4" in tab and "magnitude (global)" in tab
    out = tmp_path / "R.md"
    out.write_text("# x\n\n<!-- other:start -->\nkeep\n<!-- other:end -->\n")
    d.write_section("digits", "first", out)   # benchmarks/_results.py, shared by all scripts
    d.write_section("digits", "second", out)
    txt = out.read_text()
    assert "keep" in txt and "second" in txt and "first" not in txt
    assert txt.count("<!-- digits:start -->") == 1
