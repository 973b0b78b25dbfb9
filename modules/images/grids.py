"""Image grids: A1111's plain batch grid, annotated grids (X/Y/Z plot, prompt matrix) and grids of any size.

A1111 (`modules/images.py::image_grid`, `draw_grid_annotations`, `draw_prompt_matrix`):

* Rows: `n_rows` > 0 is used as is; 0 means the batch size; -1 (auto) is round(sqrt(n)), or with
  `grid_prevent_empty_spots` the largest divisor of n not above floor(sqrt(n)); never more rows than images.
  Columns = ceil(n / rows); cells are the size of the largest image, on `grid_background_color`.
* Annotations: font size (w + h) // 25, line spacing half of it; column labels are wrapped to the cell width and
  centred in a top band, row labels wrapped to a left band 3/4 of a cell wide; a label that still does not fit is
  drawn smaller; inactive labels (prompt matrix) are grey and struck through; `margin` px between cells.
* A1111 refuses grids above `img_max_size_mp` ("Resulting grid would be too large (N MPixels) (max configured size is
  M MPixels)").  `build_grid_pages` instead splits such a grid into pages of whole rows/columns, each within the
  limit and each with its own legends, without building the full image and without touching
  `PIL.Image.MAX_IMAGE_PIXELS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from PIL import Image, ImageColor, ImageDraw, ImageFont

GRID_DEFAULTS: dict[str, Any] = {
    "n_rows": -1,
    "grid_prevent_empty_spots": False,
    "font": "",
    "grid_text_active_color": "#000000",
    "grid_text_inactive_color": "#999999",
    "grid_background_color": "#ffffff",
    "img_max_size_mp": 200,
}

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _opt(settings: Mapping[str, Any] | None, key: str) -> Any:
    if settings is not None and key in settings:
        return settings[key]
    return GRID_DEFAULTS[key]


def grid_rows(n_images: int, *, n_rows: int = -1, batch_size: int = 1, prevent_empty_spots: bool = False) -> int:
    """Number of grid rows for `n_images` (A1111 `image_grid`, see module docstring)."""
    if n_images <= 0:
        raise ValueError("a grid needs at least one image")
    if n_rows > 0:
        rows = n_rows
    elif n_rows == 0:
        rows = max(1, batch_size)
    elif prevent_empty_spots:
        rows = math.floor(math.sqrt(n_images))
        while n_images % rows != 0:
            rows -= 1
    else:
        rows = round(math.sqrt(n_images))
    return min(rows, n_images)


def image_grid(images: Sequence[Image.Image], *, batch_size: int = 1, rows: int | None = None,
               settings: Mapping[str, Any] | None = None) -> Image.Image:
    """One grid image of `images` in row-major order (A1111 `image_grid`); empty spots show the background."""
    if rows is None:
        rows = grid_rows(len(images), n_rows=int(_opt(settings, "n_rows")), batch_size=batch_size,
                         prevent_empty_spots=bool(_opt(settings, "grid_prevent_empty_spots")))
    rows = min(rows, len(images))
    cols = math.ceil(len(images) / rows)
    width = max(img.width for img in images)
    height = max(img.height for img in images)
    background = ImageColor.getcolor(_opt(settings, "grid_background_color"), "RGB")
    grid = Image.new("RGB", (cols * width, rows * height), background)
    for i, img in enumerate(images):
        grid.paste(img.convert("RGB") if img.mode not in ("RGB", "L") else img, ((i % cols) * width, (i // cols) * height))
    return grid


@dataclass
class GridAnnotation:
    """One label line of a row or column legend; inactive ones are drawn grey and struck through."""

    text: str = ""
    is_active: bool = True
    size: tuple[int, int] = (0, 0)
    allowed_width: int = 0


@dataclass
class GridPage:
    """One page of a (possibly split) grid: the image and the grid rows/columns it shows."""

    image: Image.Image
    rows: range
    cols: range
    info: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=64)
def get_font(size: int, path: str = "") -> Font:
    """The legend font: the `font` setting's TrueType file if it loads, else Pillow's default font at `size`."""
    size = max(1, size)
    if path:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def wrap_text(draw: ImageDraw.ImageDraw, text: str, font: Font, max_width: float) -> list[str]:
    """Greedy word wrap to `max_width` pixels (a single word longer than that keeps its own line)."""
    lines = [""]
    for word in text.split():
        candidate = f"{lines[-1]} {word}".strip()
        if draw.textlength(candidate, font=font) <= max_width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


class _Legend:
    """Measured legends for a grid with cells of `width` x `height` (shared by every page of that grid)."""

    def __init__(self, width: int, height: int, hor_texts: Sequence[Sequence[GridAnnotation]],
                 ver_texts: Sequence[Sequence[GridAnnotation]], settings: Mapping[str, Any] | None) -> None:
        self.font_size = (width + height) // 25
        self.line_spacing = self.font_size // 2
        self.font_path = str(_opt(settings, "font") or "")
        self.font = get_font(self.font_size, self.font_path)
        self.active = ImageColor.getcolor(_opt(settings, "grid_text_active_color"), "RGB")
        self.inactive = ImageColor.getcolor(_opt(settings, "grid_text_inactive_color"), "RGB")
        self.background = ImageColor.getcolor(_opt(settings, "grid_background_color"), "RGB")
        has_ver = any(line.text for lines in ver_texts for line in lines)
        self.pad_left = width * 3 // 4 if has_ver else 0
        measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        self.hor = [self._wrap(measure, lines, width) for lines in hor_texts]
        self.ver = [self._wrap(measure, lines, self.pad_left) for lines in ver_texts]
        self.hor_heights = [sum(a.size[1] + self.line_spacing for a in lines) - self.line_spacing for lines in self.hor]
        self.ver_heights = [sum(a.size[1] for a in lines) for lines in self.ver]

    def _wrap(self, measure: ImageDraw.ImageDraw, lines: Sequence[GridAnnotation], allowed: int) -> list[GridAnnotation]:
        out = []
        for line in lines:
            for text in wrap_text(measure, line.text, self.font, allowed):
                left, top, right, bottom = measure.multiline_textbbox((0, 0), text, font=self.font)
                size = (int(right - left), int(bottom - top))  # ints at run time; Pillow's stubs say float
                out.append(GridAnnotation(text, line.is_active, size, allowed))
        return out

    def pad_top(self, cols: Sequence[int]) -> int:
        heights = [self.hor_heights[c] for c in cols if self.hor[c]]
        tallest = max(heights, default=0)
        return tallest + self.line_spacing * 2 if tallest > 0 else 0

    def draw(self, draw: ImageDraw.ImageDraw, x: float, y: float, lines: Sequence[GridAnnotation]) -> None:
        for line in lines:
            font, size = self.font, self.font_size
            while draw.multiline_textbbox((0, 0), line.text, font=font)[2] > line.allowed_width and size > 1:
                size -= 1
                font = get_font(size, self.font_path)
            color = self.active if line.is_active else self.inactive
            draw.multiline_text((x, y + line.size[1] / 2), line.text, font=font, fill=color, anchor="mm",
                                align="center")
            if not line.is_active:
                half_w, mid = line.size[0] // 2, y + line.size[1] // 2
                draw.line((x - half_w, mid, x + half_w, mid), fill=self.inactive, width=4)
            y += line.size[1] + self.line_spacing


def _compose(cell: Callable[[int, int], Image.Image | None], rows: range, cols: range, width: int, height: int,
             legend: _Legend, margin: int) -> Image.Image:
    """Draw the cells of rows x cols with their legends into a new image."""
    pad_top = legend.pad_top(cols)
    out_w = legend.pad_left + len(cols) * width + margin * (len(cols) - 1)
    out_h = pad_top + len(rows) * height + margin * (len(rows) - 1)
    result = Image.new("RGB", (out_w, out_h), legend.background)
    for j, row in enumerate(rows):
        for i, col in enumerate(cols):
            img = cell(row, col)
            if img is not None:
                img = img if img.mode in ("RGB", "L") else img.convert("RGB")
                result.paste(img, (legend.pad_left + (width + margin) * i, pad_top + (height + margin) * j))
    draw = ImageDraw.Draw(result)
    for i, col in enumerate(cols):
        x = legend.pad_left + (width + margin) * i + width / 2
        draw_y = pad_top / 2 - legend.hor_heights[col] / 2
        legend.draw(draw, x, draw_y, legend.hor[col])
    for j, row in enumerate(rows):
        y = pad_top + (height + margin) * j + height / 2 - legend.ver_heights[row] / 2
        legend.draw(draw, legend.pad_left / 2, y, legend.ver[row])
    return result


def _as_annotations(texts: Sequence[Sequence[GridAnnotation] | str | GridAnnotation]) -> list[list[GridAnnotation]]:
    out = []
    for item in texts:
        if isinstance(item, str):
            out.append([GridAnnotation(item)])
        elif isinstance(item, GridAnnotation):
            out.append([item])
        else:
            out.append([GridAnnotation(a.text, a.is_active) for a in item])
    return out


def draw_grid_annotations(im: Image.Image, width: int, height: int,
                          hor_texts: Sequence[Sequence[GridAnnotation] | str],
                          ver_texts: Sequence[Sequence[GridAnnotation] | str], margin: int = 0,
                          settings: Mapping[str, Any] | None = None) -> Image.Image:
    """Add column (`hor_texts`) and row (`ver_texts`) legends to a grid image of `width` x `height` cells."""
    cols, rows = im.width // width, im.height // height
    if cols != len(hor_texts) or rows != len(ver_texts):
        raise ValueError(f"grid has {cols} columns x {rows} rows but {len(hor_texts)} column and "
                         f"{len(ver_texts)} row labels were given")
    legend = _Legend(width, height, _as_annotations(hor_texts), _as_annotations(ver_texts), settings)

    def cell(row: int, col: int) -> Image.Image:
        return im.crop((width * col, height * row, width * (col + 1), height * (row + 1)))

    return _compose(cell, range(rows), range(cols), width, height, legend, margin)


def draw_prompt_matrix(im: Image.Image, width: int, height: int, all_prompts: Sequence[str], margin: int = 0,
                       settings: Mapping[str, Any] | None = None) -> Image.Image:
    """Legends of the Prompt matrix script: the optional parts (all but the first) split between columns and rows,
    each cell showing which are on (A1111 `draw_prompt_matrix`)."""
    prompts = list(all_prompts[1:])
    boundary = math.ceil(len(prompts) / 2)
    horiz, vert = prompts[:boundary], prompts[boundary:]
    hor_texts = [[GridAnnotation(x, pos & (1 << i) != 0) for i, x in enumerate(horiz)] for pos in range(1 << len(horiz))]
    ver_texts = [[GridAnnotation(x, pos & (1 << i) != 0) for i, x in enumerate(vert)] for pos in range(1 << len(vert))]
    return draw_grid_annotations(im, width, height, hor_texts, ver_texts, margin, settings)


def grid_megapixels(n_cols: int, n_rows: int, width: int, height: int) -> float:
    """Size in megapixels of the cells of a grid (what A1111's X/Y/Z plot compares with `img_max_size_mp`)."""
    return n_cols * n_rows * width * height / 1_000_000


def _even_split(n: int, parts: int) -> list[range]:
    base, extra = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        size = base + (1 if k < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def plan_grid_pages(n_rows: int, n_cols: int, width: int, height: int, max_pixels: int, *, pad_left: int = 0,
                    pad_top: int = 0, margin: int = 0) -> list[tuple[range, range]]:
    """Split an n_rows x n_cols grid into the fewest pages (row range, column range) within `max_pixels` each.

    A page of r rows and c columns is (pad_left + c*w + (c-1)*margin) x (pad_top + r*h + (r-1)*margin).  Among
    the column counts that fit, the one giving the fewest pages wins (ties: wider pages); rows and columns are then
    spread evenly over the pages.  Raises ValueError when not even one cell fits.
    """
    def page_w(c: int) -> int:
        return pad_left + c * width + (c - 1) * margin

    def page_h(r: int) -> int:
        return pad_top + r * height + (r - 1) * margin

    if page_w(1) * page_h(1) > max_pixels:
        raise ValueError(f"one grid cell of {width}x{height} with its labels needs {page_w(1) * page_h(1)} pixels, "
                         f"more than the limit of {max_pixels} pixels")
    best: tuple[int, int, int] | None = None  # (pages, -cols, rows)
    for c in range(n_cols, 0, -1):
        r_fit = (max_pixels // page_w(c) - pad_top + margin) // (height + margin)
        if r_fit < 1:
            continue
        r = min(n_rows, r_fit)
        pages = math.ceil(n_cols / c) * math.ceil(n_rows / r)
        if best is None or (pages, -c) < (best[0], best[1]):
            best = (pages, -c, r)
    assert best is not None  # c == 1 always fits after the check above
    col_parts = math.ceil(n_cols / -best[1])
    row_parts = math.ceil(n_rows / best[2])
    return [(rows, cols) for rows in _even_split(n_rows, row_parts) for cols in _even_split(n_cols, col_parts)]


def build_grid_pages(
    cells: Sequence[Image.Image | None] | Callable[[int, int], Image.Image | None],
    n_rows: int,
    n_cols: int,
    *,
    hor_texts: Sequence[Sequence[GridAnnotation] | str] | None = None,
    ver_texts: Sequence[Sequence[GridAnnotation] | str] | None = None,
    margin: int = 0,
    cell_size: tuple[int, int] | None = None,
    max_megapixels: float | None = None,
    settings: Mapping[str, Any] | None = None,
) -> list[GridPage]:
    """A grid of any size as one or more pages, each at most `max_megapixels` (default `img_max_size_mp`, 200).

    `cells` is a row-major list (None = empty cell) or a function (row, col) -> image, so the images of a huge
    grid may be loaded one page at a time.  Legends (optional) are repeated on every page for its own rows and
    columns.  A grid that fits gives a single page identical to `draw_grid_annotations` / `image_grid` output.
    """
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"a grid needs at least one row and one column, got {n_rows}x{n_cols}")
    if callable(cells):
        get_cell: Callable[[int, int], Image.Image | None] = cells
    else:
        if len(cells) > n_rows * n_cols:
            raise ValueError(f"{len(cells)} images do not fit a {n_rows}x{n_cols} grid")
        flat = cells

        def get_cell(row: int, col: int) -> Image.Image | None:
            index = row * n_cols + col
            return flat[index] if index < len(flat) else None

    if cell_size is None:
        samples = [get_cell(0, 0)] if callable(cells) else list(cells)
        present = [img for img in samples if img is not None]
        if not present:
            raise ValueError("cannot tell the cell size: pass cell_size or at least one image")
        cell_size = (max(img.width for img in present), max(img.height for img in present))
    width, height = cell_size
    hor = _as_annotations(hor_texts) if hor_texts is not None else [[] for _ in range(n_cols)]
    ver = _as_annotations(ver_texts) if ver_texts is not None else [[] for _ in range(n_rows)]
    if len(hor) != n_cols or len(ver) != n_rows:
        raise ValueError(f"grid has {n_cols} columns x {n_rows} rows but {len(hor)} column and {len(ver)} row "
                         "labels were given")
    legend = _Legend(width, height, hor, ver, settings)
    limit_mp = float(max_megapixels if max_megapixels is not None else _opt(settings, "img_max_size_mp"))
    plan = plan_grid_pages(n_rows, n_cols, width, height, int(limit_mp * 1_000_000), pad_left=legend.pad_left,
                           pad_top=legend.pad_top(range(n_cols)), margin=margin)
    pages = []
    for index, (rows, cols) in enumerate(plan):
        image = _compose(get_cell, rows, cols, width, height, legend, margin)
        pages.append(GridPage(image, rows, cols, {"page": index + 1, "pages": len(plan)}))
    return pages
