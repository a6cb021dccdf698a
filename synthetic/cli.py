"""``certkit mc`` — Monte Carlo experiments from the command line (a certkit CLI plugin).

certkit (the library) never imports this app: ``pyproject.toml`` registers :func:`add_parser`
under the ``certkit.cli`` entry-point group and ``certkit.cli.build_parser`` discovers it.
``python -m synthetic mc ...`` runs the same commands without the plugin mechanism.

Commands::

    certkit mc list
    certkit mc run NAME [--quick] [--trials N] [--jobs J] [--store PATH] [--seed S] [--out DIR]
                        [--backend NAME [--backend-param KEY=VALUE ...]] [--chunk-size C]
    certkit mc show NAME [--store PATH] [--quick | --full [--trials N] [--seed S]] [--out DIR]

Exit status: 0 if the experiment's check passed, 2 if it FAILED, 1 on usage errors (bad
arguments, unknown experiment, missing store).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

__all__ = ["EXIT_FAILED", "EXIT_PASSED", "EXIT_USAGE", "add_parser", "main"]

EXIT_PASSED = 0
#: The experiment ran but its check FAILED (``Conclusion.passed`` is False).
EXIT_FAILED = 3
#: Bad arguments, unknown experiment, missing store (argparse's own status 2 is remapped to this).
EXIT_USAGE = 1
#: Default ``--store`` (``synthetic.store.DEFAULT_STORE_PATH``; repeated so ``--help`` needs no import).
DEFAULT_STORE = "runs/mc.sqlite"
#: Default parent directory of ``--out``: ``out/mc/NAME``.
DEFAULT_OUT_ROOT = Path("out") / "mc"


def _usage_error(parser: argparse.ArgumentParser, message: str):
    parser.print_usage(sys.stderr)
    parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")


class _UsageParser(argparse.ArgumentParser):
    """argparse parser whose usage errors exit with :data:`EXIT_USAGE`."""

    def error(self, message: str):
        _usage_error(self, message)


def add_parser(subparsers, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``mc`` command to ``subparsers`` (the ``certkit.cli`` plugin hook).

    ``common`` is the parent parser of certkit's options (``-q/--quiet``) shared by every command.
    """
    mc = subparsers.add_parser(
        "mc", help="Monte Carlo checks of the probabilistic / asymptotic results (synthetic app)",
        description="Run the registered Monte Carlo experiments into a resumable SQLite store. "
        "Exit status: 0 passed, 3 FAILED, 1 error (bad arguments, unknown experiment).",
    )
    mc.error = partial(_usage_error, mc)  # this parser is built by certkit's parser class
    sub = mc.add_subparsers(dest="mc_command", metavar="MC_COMMAND", parser_class=_UsageParser)
    sub.required = True

    p = sub.add_parser("list", parents=[common], help="registered experiments and the results they check")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("run", parents=[common], help="run (or resume) an experiment",
                       description="Run or resume experiment NAME; trials already in --store are reused. "
                       "Prints the summary and PASSED/FAILED; writes trials.csv, summary.csv and "
                       "result.json under --out.")
    p.add_argument("name", metavar="NAME", help="experiment name (see `certkit mc list`)")
    p.add_argument("--quick", action="store_true", help="the quick grid and trial count (seconds, for CI)")
    p.add_argument("--trials", type=int, default=None, metavar="N",
                   help="trials per configuration (default: the experiment's own)")
    p.add_argument("--jobs", type=int, default=1, metavar="J",
                   help="parallel workers (joblib n_jobs; -1 = all cores; default 1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="base seed (default 0)")
    p.add_argument("--chunk-size", type=int, default=None, metavar="C",
                   help="trials per dispatched task (default: automatic, at most 256)")
    p.add_argument("--backend", default=None, metavar="NAME",
                   help="joblib backend: loky (default), threading, multiprocessing, dask (needs a "
                   "scheduler: --backend-param scheduler_host=tcp://HOST:8786), ray (RAY_ADDRESS)")
    p.add_argument("--backend-param", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument of the backend (repeatable; VALUE parsed as JSON if it can be)")
    _add_store_out(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("show", parents=[common], help="summary and verdict of stored trials (no run)",
                       description="Rebuild the summary and verdict of NAME from --store without running. "
                       "By default every stored trial is used; --quick/--full select the trials of "
                       "the matching `run` (with --trials/--seed).")
    p.add_argument("name", metavar="NAME", help="experiment name (see `certkit mc list`)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--quick", dest="select", action="store_const", const=True, default=None,
                       help="only the trials of `run NAME --quick`")
    which.add_argument("--full", dest="select", action="store_const", const=False,
                       help="only the trials of `run NAME` (full size)")
    p.add_argument("--trials", type=int, default=None, metavar="N", help="with --quick/--full")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="with --quick/--full (default 0)")
    _add_store_out(p, out_default=False)
    p.set_defaults(func=_cmd_show)
    return mc


def _add_store_out(p, *, out_default: bool = True) -> None:
    p.add_argument("--store", default=DEFAULT_STORE, metavar="PATH",
                   help=f"SQLite results store (default: {DEFAULT_STORE})")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="directory for trials.csv, summary.csv, result.json "
                   + (f"(default: {DEFAULT_OUT_ROOT}/NAME)" if out_default else "(default: none written)"))


# --------------------------------------------------------------------------- handlers


def _cmd_list(args) -> int:
    from .registry import get_experiment, list_experiments

    rows = [(n, ", ".join(get_experiment(n).results), get_experiment(n).description)
            for n in list_experiments()]
    if not rows:
        print("no experiments registered")
        return EXIT_PASSED
    print(_format_rows(("name", "results", "description"), rows))
    return EXIT_PASSED


def _runner():
    try:
        from . import runner
    except ImportError as exc:
        raise ImportError(f"certkit mc needs the [synthetic] extra (pandas, joblib): "
                          f"pip install 'certkit[synthetic]' ({exc})") from exc
    return runner


def _cmd_run(args) -> int:
    result = _runner().run_experiment(
        args.name, quick=args.quick, trials=args.trials, jobs=args.jobs, store=args.store, seed=args.seed,
        progress=not args.quiet, backend=args.backend, backend_params=_backend_params(args.backend_param),
        chunk_size=args.chunk_size,
    )
    run = result.run
    tps = run.get("trials_per_s")
    print(f"{result.name}: {len(result.trials)} trials ({run['n_new_trials']} new, {run['n_reused_trials']} "
          f"reused from {run['store']}) in {run['wall_s']:.2f} s"
          + (f" ({tps:.1f} new trials/s)" if tps else ""), file=sys.stderr)
    return _report(result, args, Path(args.out) if args.out else DEFAULT_OUT_ROOT / args.name)


def _cmd_show(args) -> int:
    if args.select is None and (args.trials is not None or args.seed is not None):
        raise ValueError("--trials/--seed select a run's trials and need --quick or --full")
    result = _runner().load_results(args.name, args.store, quick=args.select, trials=args.trials,
                                    seed=0 if args.seed is None else args.seed)
    return _report(result, args, Path(args.out) if args.out else None)


def _report(result, args, out_dir: Path | None) -> int:
    """Print the summary and verdict, write the output files; return the exit status."""
    from .registry import get_experiment

    if not args.quiet:
        print(result.summary.to_string(index=False))
    verdict = "PASSED" if result.passed else "FAILED"
    print(f"{result.name}: {verdict}")
    for msg in result.conclusion.messages:
        print(f"  - {msg}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        result.trials.to_csv(out_dir / "trials.csv", index=False)
        result.summary.to_csv(out_dir / "summary.csv", index=False)
        digest = result.to_dict()
        digest["result_ids"] = list(get_experiment(result.name).results)
        (out_dir / "result.json").write_text(json.dumps(digest, sort_keys=True, indent=2, default=str) + "\n")
        if not args.quiet:
            print(f"wrote {out_dir}/trials.csv, summary.csv, result.json", file=sys.stderr)
    return EXIT_PASSED if result.passed else EXIT_FAILED


def _backend_params(items: Sequence[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--backend-param == {item!r}, must be KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _format_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, ["-" * w for w in widths] + ["-" * len(header[-1])], *rows]:
        lines.append("  ".join([str(c).ljust(w) for c, w in zip(r, widths, strict=False)] + [str(r[-1])]))
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------- python -m synthetic


def build_parser() -> argparse.ArgumentParser:
    """Parser of ``python -m synthetic`` (the same ``mc`` commands as ``certkit mc``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars and no tables (files are still written)")
    parser = _UsageParser(prog="python -m synthetic",
                          description="Monte Carlo experiments of certkit (same as `certkit mc`).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m synthetic``; returns the exit status."""
    args = build_parser().parse_args(argv)
    from certkit.exceptions import CertkitError  # after parsing: `--help` needs no torch import

    try:
        return int(args.func(args))
    except (CertkitError, FileNotFoundError, ImportError, ValueError) as exc:
        print(f"synthetic {args.command} {args.mc_command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
