"""A report as a list of blocks, rendered to Markdown here and to self-contained HTML in ``html.py``.

Inline text may use Markdown's `code` and **bold**; both renderers understand them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    path: str  # relative to the report's directory
    caption: str


Block = Heading | Text | Bullets | Table | Figure


def alt_text(caption: str) -> str:
    """A caption as the alt text of a Markdown image: brackets (which would end the alt text and break the
    image, e.g. an interval "[0, 1]") become parentheses, backticks and asterisks are dropped."""
    return caption.translate(str.maketrans({"[": "(", "]": ")", "`": None, "*": None}))


def to_markdown(blocks: list[Block]) -> str:
    """The report as GitHub-flavoured Markdown (figures embedded as images by relative path)."""
    parts = []
    for b in blocks:
        if isinstance(b, Heading):
            parts.append(f"{'#' * b.level} {b.text}")
        elif isinstance(b, Text):
            parts.append(b.text)
        elif isinstance(b, Bullets):
            parts.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(b.header) + " |", "|" + "---|" * len(b.header)]
            lines += ["| " + " | ".join(row) + " |" for row in b.rows]
            parts.append("\n".join(lines))
        else:
            parts.append(f"![{alt_text(b.caption)}]({b.path})\n\n*{b.caption}*")
    return "\n\n".join(parts) + "\n"
