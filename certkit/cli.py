"""Command-line interface: ``certkit <command>`` / ``python -m certkit <command>``.

Commands (each handler only parses, calls the public API and writes JSON with sorted keys):

* ``demo``   — MP diagnostics of real MiniLM / EfficientNet-Lite0 weights and a certified
  pruning example on real photos (:func:`certkit.demo.run_demo`).
* ``mp-fit`` — Marchenko–Pastur fit of every weight of a checkpoint file (``.safetensors``,
  ``.pt``, ``.pth``) or of a packaged model (``minilm``, ``efficientnet-lite0``).

Apps add commands as plugins, so the library never imports them: every entry point of the
``certkit.cli`` group names a function ``add_parser(subparsers, common)`` that adds one
subcommand (e.g. ``mc = "synthetic.cli:add_parser"``). A plugin that fails to load is skipped
with a warning on stderr; the other commands keep working.

``main(argv=None)`` returns the exit status, so tests call it in-process (STYLE §5).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .exceptions import CertkitError

__all__ = ["EXIT_USAGE", "UsageErrorParser", "main", "build_parser", "usage_error"]

#: Exit status of usage errors in plugin commands (argparse's own status 2 is remapped to it).
EXIT_USAGE = 1


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("certkit")
    except metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
        return "unknown"


def _write_json(obj, dest: str | None) -> None:
    text = json.dumps(obj, sort_keys=True, indent=2, default=str) + "\n"
    if dest in (None, "-"):
        sys.stdout.write(text)
        return
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --------------------------------------------------------------------------- demo


def _add_demo(sub, common) -> None:
    p = sub.add_parser(
        "demo", parents=[common],
        help="MP fits of real weights + certified pruning of a real classifier",
        description="MP diagnostics (estimated) of the packaged all-MiniLM-L6-v2 and "
        "EfficientNet-Lite0 weights, then M-Lemma 5.1 / M-Cor 5.2 / M-Thm 5.4 certificates "
        "for magnitude-pruning EfficientNet-Lite0's classifier on real photos.",
    )
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output directory for the JSON files (default: ./out/demo)")
    p.add_argument("--quick", action="store_true",
                   help="8 images, one sparsity, 6 matrices per model (seconds, for tests)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, quick=args.quick, verbose=not args.quiet, progress=not args.quiet)
    return 0


# --------------------------------------------------------------------------- mp-fit


def _add_mp_fit(sub, common) -> None:
    from .packaged_weights import PACKAGED_MODELS

    names = ", ".join(sorted(PACKAGED_MODELS))
    p = sub.add_parser(
        "mp-fit", parents=[common],
        help="Marchenko-Pastur fit of every weight matrix of a checkpoint",
        description="Fit the MP bulk (THEORY §3.6; an estimate, not a theorem) to every "
        "floating weight with ndim >= 2 (conv kernels as C_out x C_in*k_h*k_w).",
    )
    p.add_argument("path", metavar="PATH",
                   help=f"checkpoint (.safetensors/.pt/.pth) or a packaged model: {names}")
    p.add_argument("--layer", action="append", default=None, metavar="GLOB",
                   help="only layers whose name matches this shell pattern (repeatable)")
    p.add_argument("--json", dest="json_out", default=None, metavar="OUT",
                   help="write the fits as JSON to OUT ('-' = stdout instead of the table)")
    p.set_defaults(func=_cmd_mp_fit)


def _cmd_mp_fit(args) -> int:
    from .demo import MP_COLUMNS, MP_NOTE, _versions, format_table, mp_diagnostics
    from .packaged_weights import (
        PACKAGED_MODELS,
        filter_names,
        load_checkpoint_matrices,
        packaged_matrices,
    )

    if args.path in PACKAGED_MODELS and not Path(args.path).exists():
        mats = packaged_matrices(args.path)
    else:
        mats = load_checkpoint_matrices(args.path)
    keep = filter_names(mats, args.layer)
    if not keep:
        raise ValueError(
            f"--layer {args.layer} matches none of the {len(mats)} weights of {args.path!r}; "
            f"first names: {list(mats)[:5]}"
        )
    rows = mp_diagnostics({k: mats[k] for k in keep}, progress=not args.quiet)
    result = {"source": str(args.path), "layer_patterns": args.layer, "note": MP_NOTE,
              "layers": rows, "versions": _versions()}
    if args.json_out != "-" and not args.quiet:
        print(f"MP fits of {args.path} ({len(rows)} matrices). {MP_NOTE}")
        print(format_table(rows, MP_COLUMNS))
    if args.json_out is not None:
        _write_json(result, args.json_out)
    return 0


# --------------------------------------------------------------------------- plugins

#: Entry-point group of CLI plugins: ``name = "module:add_parser"``.
PLUGIN_GROUP = "certkit.cli"


def usage_error(parser: argparse.ArgumentParser, message: str):
    """Print ``parser``'s usage and ``message`` to stderr and exit with :data:`EXIT_USAGE`.

    For plugins: ``parser.error = functools.partial(usage_error, parser)`` on a parser built by
    certkit's own parser class.
    """
    parser.print_usage(sys.stderr)
    parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")


class UsageErrorParser(argparse.ArgumentParser):
    """argparse parser whose usage errors exit with :data:`EXIT_USAGE` (for plugin subcommands)."""

    def error(self, message: str):
        usage_error(self, message)


def _plugin_entry_points():
    from importlib.metadata import entry_points

    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)


def _add_plugins(sub, common) -> None:
    for ep in _plugin_entry_points():
        try:
            ep.load()(sub, common)
        except Exception as exc:  # noqa: BLE001 - a broken app must not break certkit's own commands
            print(f"certkit: warning: CLI plugin {ep.name!r} ({ep.value}) not loaded: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser (exposed for documentation and tests)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars and no tables (JSON files are still written)")
    parser = argparse.ArgumentParser(
        prog="certkit",
        description="Pruning certificates and Marchenko-Pastur diagnostics (arXiv 2606.02608).",
    )
    parser.add_argument("--version", action="version", version=f"certkit {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _add_demo(sub, common)
    _add_mp_fit(sub, common)
    _add_plugins(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``certkit`` and ``python -m certkit``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (CertkitError, FileNotFoundError, ImportError, ValueError) as exc:
        print(f"certkit {args.command}: error: {exc}", file=sys.stderr)
        return 1
