"""Images: infotext text format, metadata in image files, saving with A1111's naming, and grids.

Layer 2; imports only the standard library, Pillow and numpy (settings are passed in as mappings).
"""

from modules.images.filenames import FilenameGenerator, FilenameJob, get_next_sequence_number, sanitize_filename_part
from modules.images.grids import (
    GridAnnotation,
    GridPage,
    build_grid_pages,
    draw_grid_annotations,
    draw_prompt_matrix,
    grid_rows,
    image_grid,
    plan_grid_pages,
)
from modules.images.infotext import (
    INFOTEXT_FIELD_ORDER,
    assemble_fields,
    build_infotext,
    fields_from_parsed,
    parse_infotext,
    quote,
    split_infotext,
    unquote,
)
from modules.images.metadata import info_items, read_info_from_image, read_infotext, save_image_with_geninfo
from modules.images.saving import (
    SAVING_DEFAULTS,
    SavedImage,
    atomic_write,
    output_dir,
    save_grid,
    save_image,
    write_params_txt,
)

__all__ = [
    "INFOTEXT_FIELD_ORDER",
    "SAVING_DEFAULTS",
    "FilenameGenerator",
    "FilenameJob",
    "GridAnnotation",
    "GridPage",
    "SavedImage",
    "assemble_fields",
    "atomic_write",
    "build_grid_pages",
    "build_infotext",
    "draw_grid_annotations",
    "draw_prompt_matrix",
    "fields_from_parsed",
    "get_next_sequence_number",
    "grid_rows",
    "image_grid",
    "info_items",
    "output_dir",
    "parse_infotext",
    "plan_grid_pages",
    "quote",
    "read_info_from_image",
    "read_infotext",
    "sanitize_filename_part",
    "save_grid",
    "save_image",
    "save_image_with_geninfo",
    "split_infotext",
    "unquote",
    "write_params_txt",
]
