r"""Self-contained HTML rendering of an audit report.

One file, no external resources: inline CSS, no JavaScript, figures embedded as
``data:image/png;base64`` images. The content is the Markdown document of
:func:`audits.report.markdown.build_document` plus the figures; every string from the report is
escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

from .figures import FIGURE_SLUGS
from .markdown import Block, Bullets, FigureRef, Heading, Para, Table, Text, build_document

__all__ = ["render_html", "CSS"]

#: Inline style sheet of the report.
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1250px; padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #ddd; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #eee; }
h3 { font-size: 1.08rem; margin-top: 1.5rem; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; font-size: .92em; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .86rem; display: block;
        overflow-x: auto; }
th, td { border: 1px solid #d8d8d8; padding: .25rem .5rem; vertical-align: top; text-align: left; }
th { background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fbfbfb; }
.st-certified { color: #1a7f37; font-weight: 600; }
.st-estimated { color: #9a6700; font-weight: 600; }
.st-violated { color: #cf222e; font-weight: 700; }
.note { border-left: 4px solid #8aa4c8; background: #f4f7fb; padding: .4rem .8rem; }
.warn { border-left: 4px solid #cf222e; background: #fff3f3; padding: .4rem .8rem; }
figure { margin: 1.2rem 0; }
figure img { max-width: 100%; border: 1px solid #e4e4e4; }
figcaption { font-size: .9rem; color: #444; }
.missing { color: #777; font-style: italic; }
"""

_STATUS_CLASS = {"certified": "st-certified", "estimated": "st-estimated", "violated": "st-violated"}


def _inline(text: Text) -> str:
    parts = [text] if isinstance(text, str) else text
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(html.escape(p))
            continue
        kind, s = p
        e = html.escape(s)
        if kind == "code":
            out.append(f"<code>{e}</code>")
        elif kind == "b":
            out.append(f"<strong>{e}</strong>")
        elif kind == "em":
            out.append(f"<em>{e}</em>")
        elif kind == "status":
            cls = _STATUS_CLASS.get(s)
            out.append(f'<span class="{cls}">{e}</span>' if cls else e)
        else:
            out.append(e)
    return "".join(out)


def _data_uri(value: str | bytes) -> str:
    """``data:image/png;base64,...`` from PNG bytes, a base64 string, or an existing data URI."""
    if isinstance(value, bytes):
        return "data:image/png;base64," + base64.b64encode(value).decode("ascii")
    value = value.strip()
    if value.startswith("data:image/png;base64,"):
        return value
    # Validate: must be base64 (raises binascii.Error otherwise) — never a URL.
    base64.b64decode(value, validate=True)
    return "data:image/png;base64," + value


def _block(b: Block, figures: Mapping[str, str | bytes]) -> str:
    if isinstance(b, Heading):
        level = max(1, min(6, b.level))
        ident = f' id="{html.escape(b.anchor)}"' if b.anchor else ""
        return f"<h{level}{ident}>{_inline(b.text)}</h{level}>"
    if isinstance(b, Para):
        cls = f' class="{b.style}"' if b.style in ("note", "warn") else ""
        prefix = "<strong>Warning.</strong> " if b.style == "warn" else ""
        return f"<p{cls}>{prefix}{_inline(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>\n" + "\n".join(f"<li>{_inline(i)}</li>" for i in b.items) + "\n</ul>"
    if isinstance(b, Table):
        head = "".join(f"<th>{_inline(h)}</th>" for h in b.headers)
        body = []
        for row in b.rows:
            cells = "".join(
                f'<td class="num">{_inline(c)}</td>' if i in b.numeric else f"<td>{_inline(c)}</td>"
                for i, c in enumerate(row)
            )
            body.append(f"<tr>{cells}</tr>")
        rows = "\n".join(body)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    if isinstance(b, FigureRef):
        cap = html.escape(b.caption)
        if b.slug not in figures:
            return f'<p class="missing">Figure {html.escape(b.slug)} was not rendered.</p>'
        src = _data_uri(figures[b.slug])
        return (f'<figure id="fig-{html.escape(b.slug)}"><img src="{src}" alt="{html.escape(b.slug)}">'
                f"<figcaption>{cap}</figcaption></figure>")
    raise TypeError(f"unknown block {type(b).__name__}")


def render_html(report: Mapping, figures: Mapping[str, str | bytes] | None = None) -> str:
    """Render the report as one self-contained HTML page.

    Parameters
    ----------
    report : dict
        A valid audit report.
    figures : dict of str to str or bytes, optional
        Figure slug -> PNG, as raw bytes, a base64 string or a ``data:image/png;base64,`` URI.
        Only these figures are shown (in report order); None shows none.

    Returns
    -------
    str
        HTML5 document with inline CSS, no scripts and no external URLs.
    """
    figures = dict(figures or {})
    slugs = [s for s in FIGURE_SLUGS if s in figures]
    blocks = build_document(report, figure_slugs=slugs)
    title = f"certkit audit — {report['model']['name']}"
    body = "\n".join(_block(b, figures) for b in blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )
