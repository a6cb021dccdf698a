"""Shared by the benchmark scripts: replace one marked section of ``benchmarks/RESULTS.md``.

Each script owns the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; other
sections are left untouched. A missing section is appended.
"""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    """Write ``text`` as the section ``name`` of ``path`` (created if missing)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in old and end in old:
        a, b = old.index(start), old.index(end) + len(end)
        new = old[:a] + block + old[b:]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)
