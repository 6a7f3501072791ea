"""Self-contained HTML rendering of a report: figures embedded as base64 PNG, inline CSS, no external resources."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from pait.report.document import Block, Bullets, Heading, Table, Text

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}code{background:#f4f4f4;padding:0 3px}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #eee}figcaption{font-size:0.9em;color:#555}"""


def inline(text: str) -> str:
    """Escape text and render `code` and **bold**."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(blocks: list[Block], base_dir: Path, title: str) -> str:
    """One HTML page; figure paths are read relative to ``base_dir`` and embedded."""
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{inline(b.text)}</h{b.level}>")
        elif isinstance(b, Text):
            body.append(f"<p>{inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{inline(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            body.append(f'<figure><img alt="{html.escape(b.caption)}" src="{_image(base_dir / b.path)}">'
                        f"<figcaption>{inline(b.caption)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<link rel="icon" href="data:,"><style>{STYLE}</style></head>\n<body>\n' + "\n".join(body) + "\n</body></html>\n")
