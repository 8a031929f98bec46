"""A PDF's pages as images: rendered with PDFium (pypdfium2), kept under test-artifacts/pdf/ for a person to
look at, and checked for what a reader would notice first: a blank page, or ink at the paper's edge (text
running off the page or into the printer's unprintable margin)."""

from __future__ import annotations

from pathlib import Path

import pypdfium2

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "pdf"
EDGE_POINTS = 18  # a quarter inch: office printers cannot print closer to the edge
INK = 160  # a pixel darker than this (0-255 grey) is ink


def look(document: bytes, name: str) -> list[Path]:
    """Render every page at 100 dpi to test-artifacts/pdf/{name}-{n}.png; assert each page has ink and none of
    it within EDGE_POINTS of the paper's edge. Returns the image paths."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf = pypdfium2.PdfDocument(document)
    paths = []
    try:
        assert len(pdf) >= 1, f"{name}: the PDF has no pages"
        for index in range(len(pdf)):
            scale = 100 / 72
            image = pdf[index].render(scale=scale).to_pil().convert("L")
            path = ARTIFACTS / f"{name}-{index + 1}.png"
            image.save(path)
            paths.append(path)
            width, height = image.size
            inked = image.point(lambda grey: 255 if grey < INK else 0)
            box = inked.getbbox()
            assert box is not None, f"{name} page {index + 1} is blank ({path})"
            edge = round(EDGE_POINTS * scale)
            left, top, right, bottom = box
            assert left >= edge and top >= edge and right <= width - edge and bottom <= height - edge, (
                f"{name} page {index + 1} has ink within {EDGE_POINTS} pt of the edge: {box} on {image.size} ({path})"
            )
    finally:
        pdf.close()
    return paths
