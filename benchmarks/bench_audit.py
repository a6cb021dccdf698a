"""Benchmark: ``run_audit`` on ``deit_tiny_patch16_224`` (random init), CAST 2:4, estimated L_s.

Issue 5 performance target: 256 calibration images at 224 px, CAST 2:4 masks (built inside the
audit from the first 64 images), estimated L_s (the default for a non-Sequential model):
under 3 minutes on 2 cores, peak memory under 4 GB and flat in |T|.

Each |T| ∈ {64, 256} runs in a fresh subprocess (so the peak resident set size, ``ru_maxrss``,
belongs to that run alone). The calibration images are generated lazily per batch (seeded,
smoothed noise), so the data itself costs O(batch) memory like an image folder would. The same
child also times one plain dense forward pass over T — the baseline: the audit's cost is
reported as a multiple of it.

Run: ``HF_HUB_OFFLINE=1 python benchmarks/bench_audit.py`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling helper module
from _results import write_section  # noqa: E402

MODEL = "deit_tiny_patch16_224"
SIZES = (64, 256)
#: Targets from the issue.
TARGET_SECONDS = 180.0
TARGET_GB = 4.0


class SyntheticImages:
    """Deterministic smoothed-noise 'images' generated per index (O(batch) memory)."""

    name = "synthetic-images"

    def __init__(self, n: int, size: int = 224, seed: int = 0):
        self.n, self.size, self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def load(self, indices):
        xs = []
        for i in indices:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
            low = torch.randn(1, 3, self.size // 8, self.size // 8, generator=g)
            xs.append(torch.nn.functional.interpolate(low, size=self.size, mode="bilinear")[0])
        return torch.stack(xs), None

    def describe(self) -> dict:
        return {"source": "synthetic smoothed noise", "n": self.n, "transform": "none",
                "label_policy": "dense-prediction", "skipped": []}


def child(n: int) -> dict:
    import timm

    from audits import run_audit
    from audits.data import CalibrationSet

    CalibrationSet.register(SyntheticImages)
    torch.manual_seed(0)
    model = timm.create_model(MODEL).eval()
    cal = SyntheticImages(n)
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, n, 32):
            model(cal.load(range(i, min(n, i + 32)))[0])
    t_forward = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = run_audit(model, cal, method="cast", pattern="2:4", progress=False, figures=False)
    t_audit = time.perf_counter() - t0
    s = res.summary
    return {"n": n, "audit_s": t_audit, "forward_s": t_forward,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            "layers": s["n_layers"], "estimated": s["estimated"], "violated": s["violated"],
            "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    rows = []
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n)], check=True,
                             capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"|T| = {n}: audit {r['audit_s']:.1f} s ({r['audit_s'] / r['forward_s']:.1f}x one "
              f"dense forward over T, {r['forward_s']:.1f} s), peak RSS {r['peak_gb']:.2f} GB",
              flush=True)
    ok_t = all(r["audit_s"] < TARGET_SECONDS for r in rows if r["n"] == 256)
    ok_m = all(r["peak_gb"] < TARGET_GB for r in rows)
    lines = [f"`run_audit` on {MODEL} (random init), CAST 2:4 masks built in the audit, "
             "estimated L_s (E1, 8 samples, θ ∈ {0, 1}), per-layer outcomes on 64 samples, "
             f"multi-layer M-Thm 5.8; {rows[0]['threads']} torch threads.", "",
             "| &#124;T&#124; | audit (s) | dense forward over T (s) | ratio | peak RSS (GB) | "
             "layers | estimated | violated |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']} | {r['audit_s']:.1f} | {r['forward_s']:.1f} | "
                     f"{r['audit_s'] / r['forward_s']:.1f}x | {r['peak_gb']:.2f} | {r['layers']} | "
                     f"{r['estimated']} | {r['violated']} |")
    lines += ["", f"Targets: |T| = 256 under {TARGET_SECONDS:.0f} s — "
              f"{'met' if ok_t else 'NOT met'}; peak memory under {TARGET_GB:.0f} GB and flat in "
              f"|T| — {'met' if ok_m else 'NOT met'} (peak RSS includes torch/timm, the model and "
              "the report)."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("audit", "## Audit (issue 5)\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
