"""report/index.html: one self-contained page (figures embedded as data URIs), readable from disk.

A small script counts the figures that decoded and writes "<loaded>/<total>" into the body's
``data-images-loaded`` attribute; the test renders the page in headless Chromium and reads it back.
"""

import base64
import html
import math
from pathlib import Path

escape = html.escape

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; font-size: .88em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
.missing { color: #b00; } .better { color: #070; font-weight: 600; } .worse { color: #b00; font-weight: 600; }
.problems { background: #fff4e5; border-left: 4px solid #f90; padding: .5em 1em; }
.note { color: #555; font-size: .9em; } img { max-width: 100%; border: 1px solid #eee; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
});
"""


def cell(value, fmt="{:.3f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td class="missing">–</td>'
    if isinstance(value, float):
        return f"<td>{fmt.format(value)}</td>"
    css = {"better than random": "better", "worse than random": "worse", "missing": "missing"}.get(str(value), "text")
    return f'<td class="{css}">{html.escape(str(value))}</td>'


def table(columns, rows, formats=None) -> str:
    """An HTML table of ``rows`` (dicts) with ``columns`` ({key: header} or a list of keys)."""
    columns = columns if isinstance(columns, dict) else {c: c for c in columns}
    formats = formats or {}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in columns.values())
    body = "".join("<tr>" + "".join(cell(r.get(k), formats.get(k, "{:.3f}")) for k in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure(path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    text = html.escape(caption)
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{text}">'
        f'<figcaption class="note">{text}</figcaption></figure>'
    )


def page(title: str, sections) -> str:
    """The page from (heading, html body) sections; a section with an empty body is left out."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for heading, body in sections:
        if body:
            parts.append(f"<h2>{html.escape(heading)}</h2>{body}" if heading else body)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>{''.join(parts)}</body></html>\n"
    )
