"""X/Y/Z plot: one image per combination of up to three axes of values, assembled into labelled grids.

Behaviour of A1111 `scripts/xyz_grid.py` (reference §9); the value parsing, the axis types and the cell order live
in `modules.extensions.xyz`.  Arguments keep A1111's positional order so API clients' `script_args` work:
x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type, z_values, z_values_dropdown,
draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, vary_seeds_x, vary_seeds_y, vary_seeds_z,
margin_size, csv_mode.  Axis types may be given by label or by index in the tab's axis list.

The grid's infotext carries `Script: X/Y/Z plot`, each used axis' "X Type" / "X Values" (and "Fixed X Values",
the seeds actually used, for seed axes unless "Keep -1 for seeds") as A1111 writes them into the grid's extra
generation params; `infotext_fields` paste them back into the controls.

Difference: A1111 refuses a grid above `img_max_size_mp`; here the grid is split into pages within the limit
(`modules.images.build_grid_pages`), so every cell is still shown.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from modules.extensions import xyz
from modules.extensions.api import Script, ScriptArg, copy_params, process_images
from modules.images import build_grid_pages, image_grid, quote, split_infotext


def _sampler_check(values: Sequence[Any]) -> None:
    from modules.sampling import UnknownSamplerError, resolve_sampler

    for value in values:
        try:
            resolve_sampler(str(value))
        except UnknownSamplerError:
            raise xyz.AxisValueError(f"Unknown sampler: {value}") from None


def _scheduler_check(values: Sequence[Any]) -> None:
    from modules.sampling import find_scheduler

    unknown = [str(v) for v in values if find_scheduler(str(v)) is None]
    if unknown:
        raise xyz.AxisValueError(f"Unknown schedule type: {', '.join(unknown)}")


def _sampler_names() -> list[str]:
    from modules.sampling import list_samplers

    return [s.name for s in list_samplers()]


def _scheduler_labels() -> list[str]:
    from modules.sampling import list_schedulers

    return [s.label for s in list_schedulers()]


def tab_axes(is_img2img: bool) -> list[xyz.Axis]:
    """The axis types of a tab, with the sampler/schedule checks and choice lists attached."""
    axes = xyz.axes_for("img2img" if is_img2img else "txt2img")
    for axis in axes:
        if axis.label in ("Sampler", "Hires sampler"):
            axis.validate, axis.extra["choices"] = _sampler_check, _sampler_names
        elif axis.label == "Schedule type":
            axis.validate, axis.extra["choices"] = _scheduler_check, _scheduler_labels
    return axes


@dataclasses.dataclass
class AxisPlan:
    """One axis of a run: its type and its parsed values."""

    axis: xyz.Axis
    values: list[Any]
    text: str = ""

    @property
    def labels(self) -> list[str]:
        return [self.axis.format(v) for v in self.values]


def build_axis(axes: Sequence[xyz.Axis], type_: Any, text: str, dropdown: Sequence[Any] | None, *,
               csv_mode: bool, keep_random_seeds: bool, p: Any) -> AxisPlan:
    """Parse one axis (dropdown values are used when given and not in CSV mode) and check its values."""
    axis = xyz.find_axis(type_, axes)
    if axis.kind == "none":
        return AxisPlan(axis, [None], "")
    if dropdown and not csv_mode:
        text = ",".join(f'"{v}"' if "," in str(v) else str(v) for v in dropdown)
    try:
        values = axis.parse(text or "")
    except xyz.AxisValueError as exc:
        raise xyz.AxisValueError(f"{axis.label}: {exc}") from None
    if axis.is_seed:
        values = xyz.fix_seeds(values, keep_random=keep_random_seeds)
    xyz.check_values(axis, values, p)
    return AxisPlan(axis, values, text or "")


def plot_fields(title: str, plans: Sequence[AxisPlan], *, fixed_seeds: bool) -> dict[str, str]:
    """The grid's extra infotext fields (A1111: "Script", "X Type", "X Values", "Fixed X Values", … per used
    axis)."""
    out = {"Script": title}
    for name, plan in zip("XYZ", plans, strict=True):
        if plan.axis.kind == "none":
            continue
        out[f"{name} Type"] = plan.axis.label
        out[f"{name} Values"] = plan.text
        if plan.axis.is_seed and fixed_seeds:
            out[f"Fixed {name} Values"] = ", ".join(str(v) for v in plan.values)
    return out


def with_fields(infotext: str, fields: dict[str, str]) -> str:
    """`infotext` with `fields` appended to its parameters line (values quoted as A1111 `quote` does)."""
    if not infotext:
        return infotext
    extra = ", ".join(f"{key}: {quote(value)}" for key, value in fields.items())
    _prompt, _negative, existing = split_infotext(infotext)
    if not existing:
        return f"{infotext}\n{extra}"
    return f"{infotext.rstrip()}, {extra}"


def cell_image(result: Any) -> Any:
    """The picture of one cell: the job's single image, or a grid of its batch."""
    images = list(result.images[getattr(result, "index_of_first_image", 0):]) or list(result.images)
    if not images:
        return None
    return images[0] if len(images) == 1 else image_grid(images)


def assemble(results: dict[tuple[int, int, int], Any], x: AxisPlan, y: AxisPlan, z: AxisPlan, *,
             draw_legend: bool, margin: int, settings: Any = None) -> tuple[list[Any], list[Any]]:
    """(combined grid pages, per-Z sub-grid pages) from the cell results."""
    nx, ny, nz = len(x.values), len(y.values), len(z.values)
    cells = {k: cell_image(r) for k, r in results.items()}
    size = next(((im.width, im.height) for im in cells.values() if im is not None), (64, 64))
    sub_grids = []
    for iz in range(nz):
        pages = build_grid_pages(lambda row, col, iz=iz: cells.get((col, row, iz)), ny, nx,
                                 hor_texts=x.labels if draw_legend else None,
                                 ver_texts=y.labels if draw_legend else None,
                                 margin=margin, cell_size=size, settings=settings)
        sub_grids.append(pages)
    if nz == 1:
        return [page.image for page in sub_grids[0]], []
    if any(len(pages) > 1 for pages in sub_grids):  # already paged: the Z pages themselves are the result
        return [page.image for pages in sub_grids for page in pages], []
    firsts = [pages[0].image for pages in sub_grids]
    combined = build_grid_pages(firsts, 1, nz, hor_texts=z.labels if draw_legend else None, margin=margin,
                                settings=settings)
    return [page.image for page in combined], [page.image for pages in sub_grids for page in pages]


def merge_results(first: Any, grids: list[Any], sub_grids: list[Any], cell_results: list[Any],
                  *, include_lone_images: bool, grid_fields: dict[str, str] | None = None) -> Any:
    """One result: grid pages first, then the Z sub-grids and lone images when asked (A1111 order); the grid
    pages' infotext is the first cell's plus `grid_fields`."""
    grid_info = first.infotexts[0] if getattr(first, "infotexts", None) else ""
    grid_info = with_fields(grid_info, grid_fields or {})
    images = [*grids, *sub_grids]
    infotexts = [grid_info] * len(images)
    if include_lone_images:
        for r in cell_results:
            start = getattr(r, "index_of_first_image", 0)
            images += list(r.images[start:])
            infotexts += list(r.infotexts[start:])
    changes: dict[str, Any] = {"images": images, "infotexts": infotexts, "index_of_first_image": len(grids)}
    for name in ("all_prompts", "all_negative_prompts", "all_seeds", "all_subseeds"):
        if hasattr(first, name):
            changes[name] = [v for r in cell_results for v in getattr(r, name)]
    return dataclasses.replace(first, **changes) if dataclasses.is_dataclass(first) else changes


class XYZPlot(Script):
    """The "X/Y/Z plot" entry of the Script dropdown."""

    def title(self) -> str:
        return "X/Y/Z plot"

    def ui(self, is_img2img: bool) -> list[Any]:
        labels = [a.label for a in tab_axes(is_img2img)]
        self.infotext_fields = [(f"{axis}_{part}", f"{axis.upper()} {part.title()}") for axis in "xyz"
                                for part in ("type", "values")]  # pasting the grid's infotext restores the plot
        out: list[Any] = []
        for axis, default in (("x", "Seed"), ("y", "Nothing"), ("z", "Nothing")):
            out += [ScriptArg(f"{axis}_type", f"{axis.upper()} type", default, kind="dropdown", choices=labels),
                    ScriptArg(f"{axis}_values", f"{axis.upper()} values", "", kind="textarea"),
                    ScriptArg(f"{axis}_values_dropdown", f"{axis.upper()} values", [], kind="multiselect")]
        return [*out,
                ScriptArg("draw_legend", "Draw legend", True, kind="checkbox"),
                ScriptArg("include_lone_images", "Include Sub Images", False, kind="checkbox"),
                ScriptArg("include_sub_grids", "Include Sub Grids", False, kind="checkbox"),
                ScriptArg("no_fixed_seeds", "Keep -1 for seeds", False, kind="checkbox"),
                ScriptArg("vary_seeds_x", "Vary seeds for X", False, kind="checkbox"),
                ScriptArg("vary_seeds_y", "Vary seeds for Y", False, kind="checkbox"),
                ScriptArg("vary_seeds_z", "Vary seeds for Z", False, kind="checkbox"),
                ScriptArg("margin_size", "Grid margins (px)", 0, kind="slider", minimum=0, maximum=500, step=2),
                ScriptArg("csv_mode", "Use text inputs instead of dropdowns", False, kind="checkbox")]

    def run(self, p: Any, x_type: Any, x_values: str, x_values_dropdown: Any, y_type: Any, y_values: str,
            y_values_dropdown: Any, z_type: Any, z_values: str, z_values_dropdown: Any, draw_legend: bool,
            include_lone_images: bool, include_sub_grids: bool, no_fixed_seeds: bool, vary_seeds_x: bool,
            vary_seeds_y: bool, vary_seeds_z: bool, margin_size: int, csv_mode: bool) -> Any:
        axes = tab_axes(self.is_img2img)
        plans = [build_axis(axes, t, v, d, csv_mode=csv_mode, keep_random_seeds=no_fixed_seeds, p=p)
                 for t, v, d in ((x_type, x_values, x_values_dropdown), (y_type, y_values, y_values_dropdown),
                                 (z_type, z_values, z_values_dropdown))]
        x, y, z = plans
        if not no_fixed_seeds and getattr(p, "seed", -1) in (-1, None):
            p.seed = random.randrange(xyz.MAX_RANDOM_SEED)
        vary = (vary_seeds_x, vary_seeds_y, vary_seeds_z)
        order = xyz.plan_cells(len(x.values), len(y.values), len(z.values), (x.axis.cost, y.axis.cost, z.axis.cost))
        results: dict[tuple[int, int, int], Any] = {}
        for ix, iy, iz in order:
            cell = [(plan.axis, plan.values[i], plan.values) for plan, i in zip(plans, (ix, iy, iz), strict=True)]
            q = xyz.apply_cell(p, cell, copy=copy_params)
            if any(vary) and q.seed not in (-1, None):
                q.seed = xyz.vary_seed(q.seed, ix, iy, iz, len(x.values), len(y.values), vary=vary)
            results[(ix, iy, iz)] = process_images(q)
        ordered = [results[k] for k in sorted(results, key=lambda k: (k[2], k[1], k[0]))]
        grids, sub_grids = assemble(results, x, y, z, draw_legend=draw_legend, margin=int(margin_size),
                                    settings=getattr(p, "settings", None))
        return merge_results(ordered[0], grids, sub_grids if include_sub_grids else [], ordered,
                             include_lone_images=include_lone_images,
                             grid_fields=plot_fields(self.title(), plans, fixed_seeds=not no_fixed_seeds))
