"""The gallery: one page showing every made figure, what it shows and the command that made it.

:func:`write_gallery` writes ``index.html`` (images inline by relative path, captions, links
to the CSV/PDF) and ``README.md`` (the same as Markdown) into the output folder, from the
figures' JSON sidecars, so the page always describes the files that are really there.
Figures that were not made (yet) are listed as missing with the command to make them.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .make import output_paths
from .registry import get_figure, list_figures

__all__ = ["GalleryEntry", "gallery_entries", "gallery_markdown", "write_gallery", "write_readme"]

_LABELS = {"computed": "computed by certkit", "published": "published numbers (transcribed)"}


@dataclass(frozen=True)
class GalleryEntry:
    """One figure of the gallery (``meta`` is its sidecar, ``None`` when it was not made)."""

    name: str
    title: str
    description: str
    kind: str
    paper: str
    meta: dict | None

    @property
    def command(self) -> str:
        if self.meta and self.meta.get("command"):
            return self.meta["command"]
        return f"python -m paper_figs make {self.name} --out DIR"


def gallery_entries(out: str | os.PathLike, names: list[str] | None = None) -> list[GalleryEntry]:
    """Entries of every registered figure (or ``names``), with sidecars read from ``out``."""
    entries = []
    for name in names if names is not None else list_figures():
        spec = get_figure(name)
        meta_path = output_paths(Path(out), name)[".json"]
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
        except ValueError:
            meta = None
        entries.append(GalleryEntry(name, spec.title, spec.description, spec.kind, spec.paper, meta))
    return entries


def _facts(e: GalleryEntry) -> str:
    bits = [_LABELS[e.kind]]
    if e.paper:
        bits.append(f"analog of {e.paper}")
    if e.meta:
        opts = e.meta.get("options", {})
        bits.append(f"seed {opts.get('seed')}" + (", quick" if opts.get("quick") else ""))
        bits.append(f"{e.meta.get('seconds', 0):.1f} s")
    return " · ".join(bits)


def gallery_markdown(entries: list[GalleryEntry], *, image_prefix: str = "",
                     header: str = "# paper_figs gallery", data_links: bool = True) -> str:
    """The gallery as Markdown (images referenced as ``image_prefix + name + '.png'``).

    ``data_links=False`` leaves out the links to the CSV and PDF files (for a page whose folder
    keeps only the PNGs and sidecars, like the committed gallery).
    """
    beside = ("Each PNG has a PDF and the CSV of everything drawn beside it." if data_links else
              "`make` also writes a PDF and the CSV of everything drawn beside each PNG (only the PNGs "
              "and JSON sidecars are kept here).")
    lines = [header, "",
             "Every figure is regenerated from certkit's own computations (or, where marked, from the",
             f"paper's published table numbers) by the command under it. {beside}", ""]
    for e in entries:
        lines += [f"## `{e.name}` — {e.title}", ""]
        if e.meta:
            lines += [f"![{e.title}]({image_prefix}{e.name}.png)", ""]
        else:
            lines += ["*(not made yet)*", ""]
        facts = f"*{_facts(e)}*"
        if data_links:
            facts += (f" — data: [`{e.name}.csv`]({image_prefix}{e.name}.csv),"
                      f" vector: [`{e.name}.pdf`]({image_prefix}{e.name}.pdf)")
        lines += [e.description, "", facts, "", "```bash", e.command, "```", ""]
    return "\n".join(lines)


def _html(entries: list[GalleryEntry]) -> str:
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             "<title>paper_figs gallery</title><style>",
             "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;"
             "color:#222}figure{margin:2.5em 0;border-top:1px solid #ddd;padding-top:1em}"
             "img{max-width:100%;height:auto}code,pre{background:#f4f4f4;padding:.15em .35em}"
             ".facts{color:#666;font-size:.9em}.missing{color:#a00}</style></head><body>",
             "<h1>paper_figs gallery</h1>",
             "<p>Every figure is regenerated from certkit's own computations (or, where marked, from "
             "the paper's published table numbers) by the command under it.</p>"]
    for e in entries:
        n = html.escape(e.name)
        parts.append(f"<figure id='{n}'><h2><code>{n}</code> — {html.escape(e.title)}</h2>")
        if e.meta:
            parts.append(f"<a href='{n}.pdf'><img src='{n}.png' alt='{html.escape(e.title)}'></a>")
        else:
            parts.append("<p class='missing'>not made yet</p>")
        parts.append(f"<figcaption><p>{html.escape(e.description)}</p>"
                     f"<p class='facts'>{html.escape(_facts(e))} · <a href='{n}.csv'>CSV</a> · "
                     f"<a href='{n}.pdf'>PDF</a></p><pre>{html.escape(e.command)}</pre>"
                     "</figcaption></figure>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_readme(out: str | os.PathLike, readme: str | os.PathLike, *, data_links: bool = False,
                 header: str = "# paper_figs gallery") -> Path:
    """Write a Markdown gallery of the figures under ``out`` to ``readme`` (images by relative path)."""
    out, readme = Path(out), Path(readme)
    prefix = os.path.relpath(out, readme.parent).replace(os.sep, "/") + "/"
    readme.write_text(gallery_markdown(gallery_entries(out), image_prefix=prefix, header=header,
                                       data_links=data_links))
    return readme


def write_gallery(out: str | os.PathLike, names: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``index.html`` and ``README.md`` for the figures under ``out``; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entries = gallery_entries(out, names)
    index, readme = out / "index.html", out / "README.md"
    index.write_text(_html(entries))
    readme.write_text(gallery_markdown(entries))
    return index, readme
