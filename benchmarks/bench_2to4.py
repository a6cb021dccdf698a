"""Benchmark: 2:4 semi-structured kernels and exact MAC accounting (issue 6).

1. MAC tables (ALGORITHMS §9.4, the paper's Table 3 "MAC red." / "Th. spd."), per sample at
   224 px, from :func:`certkit.count_macs` on timm models built on the ``meta`` device:
   ``vit_base_patch16_224`` (analytic ViT convention: dense, 2:4, ToMe r=8, ToMe r=8 + 2:4; hook
   count without attention matmuls), ``deit_tiny_patch16_224`` (same), ``resnet50`` (hooks,
   2:4 on the eligible convs, stem and fc dense).
2. :func:`audits.bench_2to4.run_bench` on ``vit_base_patch16_224`` (the code behind
   ``certkit bench-2to4``): 2:4 magnitude masks validated, masked-dense equivalence, and — with
   CUDA — dense vs ``to_sparse_semi_structured`` timing per Linear shape and end to end
   (batches 64, 256; fp16, bf16). Without CUDA the timing rows are skip rows.

Run: ``HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_2to4.py`` (about 20 s on CPU);
``--no-write`` leaves ``benchmarks/RESULTS.md`` alone. On a GPU machine use
``benchmarks/gpu_2to4.sh``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import sys
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from audits.bench_2to4 import format_summary, run_bench  # noqa: E402
from certkit.macs import count_macs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling helper module
from _results import write_section  # noqa: E402

MODELS = ("vit_base_patch16_224", "deit_tiny_patch16_224", "resnet50")


def mac_rows() -> list[tuple[str, str, float, float, float, float]]:
    """(model, setting, dense G, sparse-exec G, MAC red. %, Th. spd.) per Table-3-style row."""
    import timm

    out = []
    for name in MODELS:
        with torch.device("meta"):
            model = timm.create_model(name, pretrained=False)
        if name.startswith("resnet"):
            settings = [("dense (hooks)", {}), ("2:4 eligible convs (hooks)", {"pattern": "2:4"})]
        else:
            settings = [("dense (ViT analytic)", {}), ("2:4 block Linears", {"pattern": "2:4"}),
                        ("ToMe r=8", {"tome_r": 8}),
                        ("ToMe r=8 + 2:4", {"tome_r": 8, "pattern": "2:4"}),
                        ("dense, hooks w/o attention matmuls",
                         {"convention": "hooks", "include_attention": False})]
        for label, kw in settings:
            rep = count_macs(model, name=name, **kw)
            out.append((name, label, rep.dense_macs / 1e9, rep.sparse_macs / 1e9,
                        100 * rep.mac_reduction, rep.theoretical_speedup))
        if name == "vit_base_patch16_224":
            print(count_macs(model, name=name, pattern="2:4", tome_r=8).table())
        elif name == "resnet50":
            print(count_macs(model, name=name, pattern="2:4").table(per_layer=False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()
    rows = mac_rows()
    print(f"\n{'model':<24} {'setting':<36} {'dense G':>9} {'sparse G':>9} {'red. %':>7} "
          f"{'Th. spd.':>8}")
    for m, s, d, sp, r, t in rows:
        print(f"{m:<24} {s:<36} {d:>9.3f} {sp:>9.3f} {r:>7.2f} {t:>8.3f}")
    torch.manual_seed(0)
    res = run_bench("vit_base_patch16_224", batches=[64, 256], dtypes=["fp16", "bf16"])
    print()
    print(format_summary(res))
    if args.no_write:
        return
    env = res["environment"]
    lines = [
        "## 2:4 kernels and MAC accounting (`benchmarks/bench_2to4.py`, issue 6)",
        "",
        f"Run {_dt.date.today().isoformat()}, torch {env['torch']}, "
        f"GPU: {env['gpu'] or 'none'}. MACs per sample at 224 px (ALGORITHMS §9.4; paper Table 3). "
        "ToMe rows: MAC red. against the dense model without token reduction.",
        "",
        "| model | setting | dense G-MACs | sparse-exec G-MACs | MAC red. % | Th. spd. |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {m} | {s} | {d:.3f} | {sp:.3f} | {r:.2f} | {t:.3f} |" for m, s, d, sp, r, t
              in rows]
    mv, eq = res["mask_validation"], res["equivalence"]
    lines += ["", f"ViT-B/16 2:4 magnitude masks: {len(mv['layers'])} layers, all valid: "
              f"{mv['all_valid']}; masked-dense equivalence (CPU fp32): "
              f"{'passed' if eq['passed'] else 'FAILED'} (max abs diff {eq['max_abs_diff']:.3g})."]
    if res["skip"] is not None:
        lines += ["", "GPU timing not available on this machine: " + res["skip"]["reason"]
                  + ". Run `benchmarks/gpu_2to4.sh` on a GPU machine."]
    else:
        lines += ["", "| rows | dtype | backend | batch | dense ms | sparse ms | speedup | status |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in res["end_to_end_rows"]:
            fmt = (lambda v: "—" if v is None else f"{v:.3f}")  # noqa: E731
            lines.append(f"| end-to-end | {r['dtype']} | {r['backend']} | {r['batch']} | "
                         f"{fmt(r['dense_ms'])} | {fmt(r['sparse_ms'])} | {fmt(r['speedup'])} | "
                         f"{r['status']} |")
    write_section("2to4", "\n".join(lines))
    print("updated benchmarks/RESULTS.md section 2to4")


if __name__ == "__main__":
    main()
