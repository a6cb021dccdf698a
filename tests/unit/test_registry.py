"""Every catalogue result certkit implements is registered, and every [D] result has a test."""

import re
from pathlib import Path

import certkit
from certkit import registered_results

TESTS = Path(__file__).resolve().parents[1]

#: [D] rows of THEORY §6 that this library evaluates (ids as registered).
REQUIRED_D = [
    "M-Lemma 5.1", "M-Cor 5.2", "M-Thm 5.3", "M-Thm 5.4", "M-Thm 5.5", "M-Cor 5.6",
    "M-Thm 5.7", "M-Thm 5.8", "M-Thm 5.9", "E-Cor 1.1", "E-Cor 1.2", "E-Cor 1.3",
    "M-Thm 4.7",
]
#: Probabilistic right-hand sides (THEORY §2.3).
REQUIRED_P = ["M-Cor 5.10", "M-Cor 5.11", "E-Cor 1.4", "E-Cor 1.5", "E-Cor 1.6"]


def _test_corpus() -> str:
    return "\n".join(p.read_text() for p in TESTS.rglob("test_*.py"))


def _slug(rid: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", rid.lower()).strip("_")


def test_required_results_are_registered():
    reg = registered_results()
    missing = [r for r in REQUIRED_D + REQUIRED_P if r not in reg]
    assert not missing, f"not implemented/registered: {missing}"
    for r in REQUIRED_D:
        assert any(e.kind == "D" for e in reg[r]), r


def test_every_registered_deterministic_result_has_a_test():
    corpus = _test_corpus()
    lowered = corpus.lower()
    untested = [r for r, entries in registered_results().items()
                if any(e.kind == "D" for e in entries)
                and r not in corpus and _slug(r) not in lowered]
    assert not untested, f"[D] results without a test mentioning them: {untested}"


def test_public_api_is_importable_and_documented():
    for name in certkit.__all__:
        obj = getattr(certkit, name)
        assert obj.__doc__, f"certkit.{name} has no docstring"


def test_registered_functions_name_their_result_in_the_docstring():
    import importlib

    for rid, entries in registered_results().items():
        for e in entries:
            mod, _, qual = e.qualname.rpartition(".")
            while mod and not _importable(mod):
                mod, _, head = mod.rpartition(".")
                qual = f"{head}.{qual}"
            obj = importlib.import_module(mod)
            for part in qual.split("."):
                obj = getattr(obj, part)
            docs = (obj.__doc__ or "") + (importlib.import_module(obj.__module__).__doc__ or "")
            assert any(c in docs for c in _citations(rid)), f"{e.qualname} does not cite {rid}"


def _citations(rid: str) -> tuple[str, ...]:
    """Accepted spellings: the id itself; for spec ids "THEORY-1.6-L0" also "THEORY §1.6"."""
    if rid.startswith("THEORY-"):
        return (rid, f"THEORY §{rid.split('-')[1]}")
    return (rid,)


def _importable(mod: str) -> bool:
    import importlib

    try:
        importlib.import_module(mod)
        return True
    except ImportError:
        return False
