"""The README's Python examples run as written (documentation cannot drift from the API)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert len(_python_blocks()) >= 2


def test_readme_example_runs():
    ns: dict = {}
    exec(compile(_python_blocks()[0], "README example", "exec"), ns)  # noqa: S102
    assert ns["B"].certified and ns["ms"].holds


def test_readme_property_suite_example_runs():
    from hypothesis import settings

    ns: dict = {}
    exec(compile(_python_blocks()[1], "README property example", "exec"), ns)  # noqa: S102
    settings(max_examples=25)(ns["test_my_pruning_rule_is_certified"])()


def test_readme_masks_example_runs():
    blocks = [b for b in _python_blocks() if "certkit.masks as M" in b]
    assert blocks, "README lost its masks example"
    ns: dict = {}
    exec(compile(blocks[0], "README masks example", "exec"), ns)  # noqa: S102
    assert ns["ms"].achieved_sparsity == 0.5 and ns["R"]


def test_readme_audit_example_runs():
    blocks = [b for b in _python_blocks() if "from audits import run_audit" in b]
    assert blocks, "README lost its audit example"
    ns: dict = {}
    exec(compile(blocks[0], "README audit example", "exec"), ns)  # noqa: S102
    s = ns["res"].summary
    assert s["violations"] == 0 and s["certified"] == s["n_layers"] == 2
