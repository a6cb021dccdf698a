"""Benchmark: certkit.rmt.fit_mp vs WeightWatcher on timm vit_base_patch16_224 (random init).

Run:  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_mp.py [--no-write] [--repeat 1]

Fits the MP bulk (c-aware BEMA, ``fit_mp``) of every ``nn.Linear`` weight, times it, then times
``weightwatcher.WeightWatcher(model=model).analyze()`` on the same model in the same process.
Prints both times and the ratio (target: fit_mp ≥ 5× faster) and appends/replaces the
``bench_mp`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import platform
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling helper module
from _results import write_section  # noqa: E402

MODEL = "vit_base_patch16_224"


def _linear_weights(model) -> list[tuple[str, torch.Tensor]]:
    return [(n, m.weight.detach()) for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear)]


def time_fit_mp(layers) -> tuple[float, list]:
    from certkit.rmt import fit_mp

    t0 = time.perf_counter()
    fits = [(name, fit_mp(W)) for name, W in layers]
    return time.perf_counter() - t0, fits


def time_weightwatcher(model) -> float:
    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        ww.WeightWatcher(model=model).analyze()
        return time.perf_counter() - t0


def bench(model, repeat: int) -> tuple[float, float, list]:
    """Best of ``repeat`` for both, interleaved so that machine load affects both alike."""
    layers = _linear_weights(model)
    t_fit = t_ww = float("inf")
    fits: list = []
    for _ in range(repeat):
        t, fits = time_fit_mp(layers)
        t_fit = min(t_fit, t)
        t_ww = min(t_ww, time_weightwatcher(model))
    return t_fit, t_ww, fits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2,
                    help="interleaved repetitions of both (best time of each)")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args(argv)

    import timm

    torch.manual_seed(0)
    model = timm.create_model(MODEL, pretrained=False).eval()
    n_layers = len(_linear_weights(model))

    t_fit, t_ww, fits = bench(model, args.repeat)
    ratio = t_ww / t_fit
    today = _dt.date.today().isoformat()
    sample = ", ".join(f"{n}: σ₊={f.sigma_plus:.3f}, spikes={f.n_spikes}"
                       for n, f in fits[:2])
    lines = [
        f"## MP fit vs WeightWatcher ({MODEL}, random init) — {today}",
        "",
        f"- layers: {n_layers} nn.Linear weights (float32 model, fitted in float64)",
        f"- certkit.rmt.fit_mp (all layers, best of {args.repeat}): {t_fit:.2f} s",
        f"- weightwatcher {_ww_version()} WeightWatcher(model).analyze() (best of "
        f"{args.repeat}): {t_ww:.2f} s",
        f"- speed-up: {ratio:.1f}x (target >= 5x)",
        f"- machine: {platform.machine()}, torch threads {torch.get_num_threads()}, "
        f"Python {platform.python_version()}",
        f"- sample: {sample}",
        "- command: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_mp.py`",
        "- note: timings are wall-clock on a shared 2-core machine; concurrent load inflates "
        "both numbers.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("bench_mp", text)
    return 0


def _ww_version() -> str:
    try:
        from importlib.metadata import version

        return version("weightwatcher")
    except Exception:  # pragma: no cover - metadata missing
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
