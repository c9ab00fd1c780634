"""A report as a list of blocks, rendered to Markdown (beside its files) and to one
self-contained HTML page (figures as base64 PNG, attached files as data: links).

Building blocks once and rendering twice keeps the two reports saying the same thing, without
a Markdown-to-HTML dependency. Text may hold `code` spans; nothing else is interpreted.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """Cells are shown as given (strings are best: the caller chooses the number format)."""

    frame: pd.DataFrame


@dataclass(frozen=True)
class Figure:
    png: Path
    svg: Path
    caption: str


@dataclass(frozen=True)
class Attachment:
    """A file written beside the report: linked from the Markdown, embedded in the HTML."""

    path: Path
    description: str
    mime: str = "text/csv"


Block = Heading | Paragraph | Bullets | Table | Figure | Attachment

_CODE = re.compile(r"`([^`]+)`")


def to_markdown(blocks: Sequence[Block]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Bullets):
            parts.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            parts.append(markdown_table(block.frame))
        elif isinstance(block, Figure):
            parts.append(
                f"![{block.png.stem}]({block.png.name})\n\n"
                f"*{block.caption}* ([SVG]({block.svg.name}))"
            )
        else:
            parts.append(f"[`{block.path.name}`]({block.path.name}): {block.description}")
    return "\n\n".join(parts) + "\n"


def to_html(blocks: Sequence[Block], title: str) -> str:
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{_inline(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Table):
            body.append(_html_table(block.frame))
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png.read_bytes()).decode("ascii")
            body.append(
                f'<figure><img alt="{html.escape(block.png.stem)}" '
                f'src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
            )
        else:
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            body.append(
                f'<p><a download="{html.escape(block.path.name)}" '
                f'href="data:{block.mime};base64,{data}"><code>{html.escape(block.path.name)}'
                f"</code></a>: {_inline(block.description)}</p>"
            )
    return _PAGE.format(title=html.escape(title), body="\n".join(body))


def markdown_table(frame: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *rows])


def text_table(frame: pd.DataFrame) -> str:
    """Columns aligned with spaces, for a terminal."""
    cells = [list(map(str, frame.columns))] + [list(map(str, r)) for r in frame.itertuples(False)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(frame.columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _inline(text: str) -> str:
    return _CODE.sub(r"<code>\1</code>", html.escape(text))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.45; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; font-size: 0.85rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }}
th {{ background: #f3f3f3; }}
figure {{ margin: 1.5rem 0; }}
figure img {{ max-width: 100%; }}
figcaption {{ font-size: 0.9rem; color: #555; }}
code {{ background: #f5f5f5; padding: 0 0.2rem; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
