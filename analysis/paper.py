"""The paper's accuracy-vs-compute comparison rebuilt from the published numbers, and our MAdds
beside the paper's for every registered architecture that reproduces a published row.

    python -m analysis.paper [out=DIR]        (default out=outputs/paper)

Writes `paper.md`, `madds_vs_paper.csv`, `published.csv` and `accuracy_vs_compute.png/.svg`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis import document as doc
from analysis.plots import published_figure, save_figure
from analysis.published_front import comparable_published, published_front
from analysis.tables import number
from search_space.cost import count_madds
from search_space.published import PublishedResult, find_published
from search_space.registry import arch_names, reference
from workbench.cli import CommandParser
from workbench.files import write_csv, write_text


def madds_comparison() -> pd.DataFrame:
    """One row per (registered architecture, published row it reproduces), counted at that
    row's input size."""
    rows = []
    for name in arch_names():
        arch = reference(name)
        for paper_row in arch.paper_rows:
            cost = count_madds(arch.spec.replace(input_size=paper_row.input_size))
            published = find_published(paper_row.table, paper_row.model)
            rows.append(
                {
                    "architecture": name,
                    "head": arch.spec.head,
                    "input": "x".join(map(str, paper_row.input_size)),
                    "paper row": f"{paper_row.table}: {paper_row.model}",
                    "split": published.split,
                    "paper mIoU": published.miou,
                    "paper GMAdds": published.gmadds,
                    "our GMAdds": cost.gmadds,
                    "ratio": cost.gmadds / published.gmadds if published.gmadds else None,
                    "paper params (M)": published.params_m,
                    "our params (M)": cost.params / 1e6,
                }
            )
    return pd.DataFrame(rows)


def published_table(rows: Sequence[PublishedResult]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": [r.source for r in rows],
            "table": [r.table for r in rows],
            "method": [r.model for r in rows],
            "split": [r.split for r in rows],
            "input": ["x".join(map(str, r.input_size)) if r.input_size else "" for r in rows],
            "GFLOPs": [r.gmadds for r in rows],
            "mIoU": [r.miou for r in rows],
            "on its split's front": published_front(rows),
        }
    )


def write_paper(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = comparable_published()
    published = published_table(rows)
    madds = madds_comparison()
    write_csv(published, out_dir / "published.csv")
    write_csv(madds, out_dir / "madds_vs_paper.csv")
    png, svg = save_figure(published_figure(rows), out_dir, "accuracy_vs_compute")
    shown = madds.copy()
    for column, digits in (
        ("paper GMAdds", 2),
        ("our GMAdds", 2),
        ("ratio", 2),
        ("paper params (M)", 1),
        ("our params (M)", 2),
        ("paper mIoU", 1),
    ):
        shown[column] = shown[column].map(lambda value, d=digits: number(value, d))
    front = published[published["on its split's front"]].sort_values(["split", "GFLOPs"])
    blocks: list[doc.Block] = [
        doc.Heading("The paper's numbers, rebuilt", level=1),
        doc.Paragraph(
            "Accuracy against compute as published (DFANet, CVPR 2019, Tables 2-5, and the "
            "other methods as DFANet quotes them). The val panel holds DFANet's ablations, the "
            "test panel the method comparison: different measurements, so each has its own "
            "front. Compute is each paper's GFLOPs, i.e. multiply-adds at the input size given."
        ),
        doc.Figure(png, svg, "Published mIoU against published GFLOPs, per split."),
        doc.Paragraph("The published methods on the front of their split:"),
        doc.Table(front[["split", "method", "input", "GFLOPs", "mIoU"]]),
        doc.Heading("Our MAdds against the paper's"),
        doc.Paragraph(
            "Every registered architecture with a published row, counted at that row's input "
            "size (conv + linear multiply-adds, batch 1, eval mode). Parameters do not "
            "reproduce the paper's: about 4x ours on every row, for any build faithful to its "
            "Table 1. Rows with a head other than DFA use a configuration the paper does not "
            "publish."
        ),
        doc.Table(shown),
        doc.Attachment(out_dir / "madds_vs_paper.csv", "the table above, unrounded"),
        doc.Attachment(out_dir / "published.csv", "the published points plotted"),
    ]
    path = out_dir / "paper.md"
    write_text(path, doc.to_markdown(blocks))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = CommandParser(prog="python -m analysis.paper", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("outputs/paper"))
    print(write_paper(parser.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
