"""Grids: A1111's row rule, placement, legends, and grids larger than the pixel limit split into pages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from modules.images.grids import (
    GridAnnotation,
    _Legend,
    build_grid_pages,
    draw_grid_annotations,
    draw_prompt_matrix,
    grid_megapixels,
    grid_rows,
    image_grid,
    plan_grid_pages,
)

WHITE = (255, 255, 255)


def colored(index: int, size: tuple[int, int] = (32, 24)) -> Image.Image:
    """A cell whose colour encodes its index (distinct from the white background and black text)."""
    return Image.new("RGB", size, (40 + index % 200, 60 + (index * 7) % 150, 90 + (index * 13) % 120))


@pytest.mark.parametrize(("n", "auto", "no_empty"), [
    (1, 1, 1), (2, 1, 1), (3, 2, 1), (4, 2, 2), (5, 2, 1), (6, 2, 2), (7, 3, 1), (8, 3, 2), (9, 3, 3),
    (10, 3, 2), (12, 3, 3), (16, 4, 4), (20, 4, 4), (30, 5, 5),
])
def test_auto_rows(n: int, auto: int, no_empty: int) -> None:
    assert grid_rows(n) == auto == min(round(math.sqrt(n)), n)
    assert grid_rows(n, prevent_empty_spots=True) == no_empty
    assert n % no_empty == 0


def test_fixed_rows_and_batch_rows() -> None:
    assert grid_rows(8, n_rows=2) == 2
    assert grid_rows(3, n_rows=5) == 3  # never more rows than images
    assert grid_rows(8, n_rows=0, batch_size=4) == 4
    with pytest.raises(ValueError):
        grid_rows(0)


def test_image_grid_places_row_major_with_background() -> None:
    images = [colored(i) for i in range(5)]
    grid = image_grid(images, settings={"grid_background_color": "#102030"})  # 5 -> 2 rows x 3 cols
    assert grid.size == (3 * 32, 2 * 24)
    for i in range(5):
        assert grid.getpixel(((i % 3) * 32 + 5, (i // 3) * 24 + 5)) == images[i].getpixel((0, 0))
    assert grid.getpixel((2 * 32 + 5, 24 + 5)) == (16, 32, 48)  # the empty spot
    assert image_grid(images, settings={"n_rows": 1}).size == (5 * 32, 24)
    assert image_grid(images[:4], settings={"n_rows": 0}, batch_size=4).size == (32, 4 * 24)


def text_pixels(region: Image.Image, color: tuple[int, int, int] | None = None, tolerance: int = 100) -> int:
    """Pixels of drawn text: those near `color`, or (color None) all that differ from the white background."""
    arr = np.asarray(region.convert("RGB")).astype(int)
    if color is None:
        return int((arr != np.array(WHITE)).any(axis=2).sum())
    return int((np.abs(arr - np.array(color)).sum(axis=2) < tolerance).sum())


def test_annotated_grid_layout_and_legends() -> None:
    w, h = 256, 192  # A1111's font size is (w + h) // 25 = 17 px
    cells = [colored(i, (w, h)) for i in range(6)]
    plain = image_grid(cells, rows=2)
    out = draw_grid_annotations(plain, w, h, ["first", "second", "third"], ["row A", "row B"], margin=4)
    legend = _Legend(w, h, [[GridAnnotation("first")], [GridAnnotation("second")], [GridAnnotation("third")]],
                     [[GridAnnotation("row A")], [GridAnnotation("row B")]], None)
    pad_left, pad_top = w * 3 // 4, legend.pad_top(range(3))
    assert pad_top > 0
    assert out.size == (pad_left + 3 * w + 2 * 4, pad_top + 2 * h + 4)
    # cells land after the legends and margins
    for i, cell in enumerate(cells):
        x = pad_left + (i % 3) * (w + 4) + 10
        y = pad_top + (i // 3) * (h + 4) + 10
        assert out.getpixel((x, y)) == cell.getpixel((0, 0))
    # every column label is drawn above its own column, every row label left of its row
    for col in range(3):
        x0 = pad_left + col * (w + 4)
        assert text_pixels(out.crop((x0, 0, x0 + w, pad_top))) > 20
    for row in range(2):
        y0 = pad_top + row * (h + 4)
        assert text_pixels(out.crop((0, y0, pad_left, y0 + h))) > 20
    assert out.getpixel((pad_left + w + 1, pad_top + 5)) == WHITE  # margin shows the background


def test_long_labels_wrap_and_inactive_labels_are_grey() -> None:
    w, h = 200, 150
    long_label = "a very long column label that needs several lines to fit into the narrow cell"
    legend = _Legend(w, h, [[GridAnnotation(long_label)]], [[GridAnnotation("")]], None)
    assert len(legend.hor[0]) >= 3 and " ".join(a.text for a in legend.hor[0]) == long_label
    assert all(a.size[0] <= w for a in legend.hor[0])
    assert legend.pad_left == 0  # no row labels -> no left band
    grid = Image.new("RGB", (2 * w, 2 * h), (0, 128, 0))
    out = draw_prompt_matrix(grid, w, h, ["base", "opt1", "opt2"])
    top = out.crop((0, 0, out.width, out.height - 2 * h))
    assert text_pixels(top, (0x99, 0x99, 0x99), 30) > 10  # "opt1" inactive in the first column
    assert text_pixels(top, (0, 0, 0), 60) > 10  # and active in the second
    with pytest.raises(ValueError, match="2 columns"):
        draw_grid_annotations(grid, w, h, ["only one"], ["a", "b"])


def test_single_page_equals_the_one_piece_grid() -> None:
    w, h = 48, 40
    cells = [colored(i, (w, h)) for i in range(6)]
    hor, ver = ["x=1", "x=2", "x=3"], ["y=1", "y=2"]
    pages = build_grid_pages(cells, 2, 3, hor_texts=hor, ver_texts=ver, margin=3)
    assert len(pages) == 1 and pages[0].rows == range(2) and pages[0].cols == range(3)
    expected = draw_grid_annotations(image_grid(cells, rows=2), w, h, hor, ver, margin=3)
    assert np.array_equal(np.asarray(pages[0].image), np.asarray(expected))
    no_legend = build_grid_pages(cells, 2, 3)
    assert np.array_equal(np.asarray(no_legend[0].image), np.asarray(image_grid(cells, rows=2)))


def test_grid_over_the_limit_is_split_into_pages_within_it() -> None:
    limit_before = Image.MAX_IMAGE_PIXELS
    w, h, n_rows, n_cols, margin = 160, 120, 9, 7, 2
    cells = [colored(i, (w, h)) for i in range(n_rows * n_cols)]
    hor = [f"col {c}" for c in range(n_cols)]
    ver = [f"row {r}" for r in range(n_rows)]
    whole = draw_grid_annotations(image_grid(cells, rows=n_rows), w, h, hor, ver, margin=margin)
    limit_mp = whole.width * whole.height / 1_000_000 / 3  # "too large": about three times the limit
    pages = build_grid_pages(cells, n_rows, n_cols, hor_texts=hor, ver_texts=ver, margin=margin,
                             max_megapixels=limit_mp)
    assert len(pages) >= 3
    seen = set()
    for page in pages:
        assert page.image.width * page.image.height <= limit_mp * 1_000_000
        legend = _Legend(w, h, [[GridAnnotation(t)] for t in hor], [[GridAnnotation(t)] for t in ver], None)
        pad_left, pad_top = legend.pad_left, legend.pad_top(page.cols)
        for j, row in enumerate(page.rows):
            for i, col in enumerate(page.cols):
                seen.add((row, col))
                x, y = pad_left + i * (w + margin) + 5, pad_top + j * (h + margin) + 5
                assert page.image.getpixel((x, y)) == cells[row * n_cols + col].getpixel((0, 0))
        assert text_pixels(page.image.crop((0, pad_top, pad_left, page.image.height))) > 20  # row legend repeated
        assert page.info["pages"] == len(pages)
    assert seen == {(r, c) for r in range(n_rows) for c in range(n_cols)}  # every cell exactly on one page
    assert sum(len(p.rows) * len(p.cols) for p in pages) == n_rows * n_cols
    assert limit_before == Image.MAX_IMAGE_PIXELS


def test_a1111_367_megapixel_grid_is_planned_within_200_megapixels() -> None:
    # 10 x 35 images of 1024x1024: A1111 says "Resulting grid would be too large (367 MPixels)"
    assert round(grid_megapixels(10, 35, 1024, 1024)) == 367
    plan = plan_grid_pages(35, 10, 1024, 1024, 200_000_000, pad_left=768, pad_top=120)
    # full-width pages fit 17 rows each (11008 px wide): 3 pages is the fewest, rows spread evenly
    assert [(r.start, r.stop, len(c)) for r, c in plan] == [(0, 12, 10), (12, 24, 10), (24, 35, 10)]
    for rows, cols in plan:
        assert (768 + len(cols) * 1024) * (120 + len(rows) * 1024) <= 200_000_000


def test_plan_prefers_fewest_pages_and_rejects_impossible_cells() -> None:
    plan = plan_grid_pages(1, 100, 100, 100, 100 * 100 * 30)
    assert len(plan) == 4 and [len(c) for _, c in plan] == [25, 25, 25, 25]
    with pytest.raises(ValueError, match="one grid cell"):
        plan_grid_pages(2, 2, 1000, 1000, 500_000)


def test_lazy_cells_load_only_what_a_page_needs() -> None:
    calls: list[tuple[int, int]] = []

    def cell(row: int, col: int) -> Image.Image | None:
        calls.append((row, col))
        return None if (row, col) == (1, 1) else colored(row * 4 + col, (20, 20))

    pages = build_grid_pages(cell, 3, 4, cell_size=(20, 20), max_megapixels=20 * 20 * 4 / 1_000_000)
    assert all(p.image.width * p.image.height <= 1600 for p in pages)
    assert sorted(set(calls)) == [(r, c) for r in range(3) for c in range(4)]
    page = next(p for p in pages if 1 in p.rows and 1 in p.cols)
    x = (list(page.cols).index(1)) * 20 + 5
    y = (list(page.rows).index(1)) * 20 + 5
    assert page.image.getpixel((x, y)) == WHITE  # empty cell shows the background


def test_bad_grid_arguments() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        build_grid_pages([], 0, 3)
    with pytest.raises(ValueError, match="do not fit"):
        build_grid_pages([colored(i) for i in range(5)], 2, 2)
    with pytest.raises(ValueError, match="labels"):
        build_grid_pages([colored(i) for i in range(4)], 2, 2, hor_texts=["a"])
    with pytest.raises(ValueError, match="cell size"):
        build_grid_pages([None, None], 1, 2)
