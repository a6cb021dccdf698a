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
