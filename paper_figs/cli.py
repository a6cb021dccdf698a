"""``python -m paper_figs`` (also ``certkit figs``) — list, make and re-draw the paper's figures.

Commands::

    python -m paper_figs list [--json]
    python -m paper_figs make NAME [NAME ...] | all --out DIR [--quick] [--seed S] [--force]
    python -m paper_figs replot NAME [NAME ...] | all --out DIR
    python -m paper_figs gallery --out DIR [--readme PATH [--no-data-links]]

``make`` writes ``NAME.csv`` (everything drawn), ``NAME.png``, ``NAME.pdf`` and ``NAME.json``
(options, seed, timing, versions) per figure, then the gallery (``index.html``, ``README.md``).
Figures already made with the same options are skipped unless ``--force``, so an interrupted
``make all`` resumes where it stopped. ``replot`` re-draws from the saved CSVs.

Exit status: 0 success, 1 usage error (unknown figure, bad arguments), 2 some figure failed
(the others are still made), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from functools import partial

from certkit.cli import EXIT_USAGE, UsageErrorParser, usage_error

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "add_parser", "build_parser", "main"]

EXIT_OK = 0
#: At least one figure raised (the others were still made).
EXIT_FAILED = 2
EXIT_INTERRUPTED = 130


def _names(args) -> list[str]:
    from .registry import get_figure, list_figures

    if args.names == ["all"]:
        return list_figures()
    if "all" in args.names:
        raise ValueError("'all' cannot be combined with figure names")
    for n in args.names:
        get_figure(n)  # unknown names raise ValueError listing the valid ones
    return list(dict.fromkeys(args.names))


def _say(args, msg: str) -> None:
    if not getattr(args, "quiet", False):
        print(msg, flush=True)


def _cmd_list(args) -> int:
    from .registry import get_figure, list_figures

    specs = [get_figure(n) for n in list_figures()]
    if args.json:
        print(json.dumps([{"name": s.name, "title": s.title, "kind": s.kind, "paper": s.paper,
                           "description": s.description, "columns": list(s.columns)} for s in specs],
                         indent=2))
        return EXIT_OK
    width = max((len(s.name) for s in specs), default=4)
    pw = max((len(s.paper) for s in specs), default=9)
    print(f"{'name':<{width}}  {'kind':<9}  {'analog of':<{pw}}  description")
    for s in specs:
        print(f"{s.name:<{width}}  {s.kind:<9}  {s.paper or '-':<{pw}}  {s.description}")
    return EXIT_OK


def _cmd_make(args) -> int:
    from .gallery import write_gallery
    from .make import make_figure
    from .registry import FigureOptions

    names = _names(args)
    options = FigureOptions(quick=args.quick, seed=args.seed)
    failed: list[str] = []
    t_all = time.perf_counter()
    try:
        for i, name in enumerate(names, 1):
            _say(args, f"[{i}/{len(names)}] {name} ...")
            try:
                made = make_figure(name, args.out, options, force=args.force)
            except Exception as exc:  # keep going: one broken figure must not lose the others
                failed.append(name)
                print(f"[{i}/{len(names)}] {name}: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
                if args.traceback:
                    traceback.print_exc()
                continue
            state = "up to date (use --force to remake)" if made.skipped else \
                f"{made.rows} rows, {made.seconds:.1f} s"
            _say(args, f"[{i}/{len(names)}] {name}: {state} -> {made.png}")
    except KeyboardInterrupt:
        print("interrupted: finished figures are kept; rerun the same command to resume",
              file=sys.stderr)
        write_gallery(args.out)
        return EXIT_INTERRUPTED
    index, _ = write_gallery(args.out)
    _say(args, f"gallery: {index}  ({time.perf_counter() - t_all:.1f} s in all)")
    if failed:
        print(f"{len(failed)} figure(s) failed: {', '.join(failed)} (rerun with --traceback)",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _cmd_replot(args) -> int:
    from .gallery import write_gallery
    from .make import plot_from_csv

    for name in _names(args):
        _say(args, f"{name}: {plot_from_csv(name, args.out)}")
    write_gallery(args.out)
    return EXIT_OK


def _cmd_gallery(args) -> int:
    from .gallery import write_gallery, write_readme

    index, readme = write_gallery(args.out)
    _say(args, f"{index}\n{readme}")
    if args.readme:
        _say(args, str(write_readme(args.out, args.readme, data_links=not args.no_data_links,
                                    header=args.header)))
    return EXIT_OK


def _add_commands(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("list", parents=[common], help="registered figures and what they show")
    p.add_argument("--json", action="store_true", help="machine-readable list")
    p.set_defaults(func=_cmd_list)

    names_help = "figure names (see `list`) or 'all'"
    p = sub.add_parser("make", parents=[common], help="make figures (CSV + PNG + PDF + JSON) and the gallery",
                       description="Make figures under --out; figures already made with the same options "
                       "are skipped unless --force (an interrupted run resumes).")
    p.add_argument("names", nargs="+", metavar="NAME", help=names_help)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p.add_argument("--quick", action="store_true", help="CI-sized computations (seconds per figure)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of every figure (default 0)")
    p.add_argument("--force", action="store_true", help="remake figures that are already up to date")
    p.add_argument("--traceback", action="store_true", help="print tracebacks of failing figures")
    p.set_defaults(func=_cmd_make)

    p = sub.add_parser("replot", parents=[common], help="re-draw figures from their saved CSVs")
    p.add_argument("names", nargs="+", metavar="NAME", help=names_help)
    p.add_argument("--out", required=True, metavar="DIR", help="folder holding the CSVs")
    p.set_defaults(func=_cmd_replot)

    p = sub.add_parser("gallery", parents=[common], help="(re)write index.html and README.md under --out")
    p.add_argument("--out", required=True, metavar="DIR", help="folder holding the made figures")
    p.add_argument("--readme", default=None, metavar="PATH",
                   help="also write a Markdown gallery to PATH (images linked relative to it)")
    p.add_argument("--no-data-links", action="store_true",
                   help="leave the CSV/PDF links out of --readme (e.g. when only PNGs are committed)")
    p.add_argument("--header", default="# paper_figs gallery", help="first line of --readme")
    p.set_defaults(func=_cmd_gallery)


def add_parser(subparsers, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``figs`` command to certkit's CLI (the ``certkit.cli`` entry-point plugin hook)."""
    figs = subparsers.add_parser("figs", help="regenerate the paper's figures (paper_figs app)",
                                 description=__doc__.split("\n\n")[0])
    figs.error = partial(usage_error, figs)
    sub = figs.add_subparsers(dest="figs_command", metavar="FIGS_COMMAND", parser_class=UsageErrorParser)
    sub.required = True
    _add_commands(sub, common)
    return figs


def build_parser() -> argparse.ArgumentParser:
    """The standalone parser of ``python -m paper_figs``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser = UsageErrorParser(prog="python -m paper_figs", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="figs_command", metavar="COMMAND", parser_class=UsageErrorParser)
    sub.required = True
    _add_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m paper_figs``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return run(args)


def run(args) -> int:
    """Run parsed ``args`` (shared by ``python -m paper_figs`` and ``certkit figs``)."""
    try:
        return int(args.func(args))
    except (FileNotFoundError, ImportError, ValueError) as exc:
        print(f"paper_figs {args.figs_command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
