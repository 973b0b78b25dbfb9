"""The Extra Networks tabs next to "Generation": Textual Inversion, Hypernetworks, Checkpoints, Lora (reference §3.1).

A1111 ``modules/ui_extra_networks*.py`` behaviour, restated:

* one tab per page, each a grid of cards with a search box, sort by Path / Name / Date Created / Date Modified,
  ascending/descending, and a 🔄 refresh button that rescans the folders;
* a card's thumbnail is ``<stem>.png`` / ``<stem>.preview.png`` (also ``.jpg``, ``.jpeg``, ``.webp``) beside the
  file (an embedding stored in an image is its own preview). Thumbnails are copied, downscaled, into the temp dir and
  served only through the server's allowed-file route (``/file=`` — the temp dir is one of its roots); model
  folders are never served;
* clicking a card inserts ``<lora:alias:m>`` / the embedding name / ``<hypernet:name:m>`` into the tab's prompt (``m``
  = ``extra_networks_default_multiplier``, separator ``extra_networks_add_text_separator``), or loads a checkpoint.

Searching and sorting run in the browser (``javascript/extra-networks.js``) on the cards' ``data-*`` attributes.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from modules.processing.context import AppContext
from modules.processing.extra_networks import NetworkLibrary
from modules.ui.common import REFRESH_ICON, tool_button

log = logging.getLogger(__name__)

PREVIEW_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
THUMB_SIZE = 512
SORT_FIELDS = ("Path", "Name", "Date Created", "Date Modified")
PAGES = (("textual_inversion", "Textual Inversion"), ("hypernetworks", "Hypernetworks"),
         ("checkpoints", "Checkpoints"), ("lora", "Lora"))


@dataclass
class Card:
    """One card: what it shows, what a click does (``insert`` text, or ``checkpoint`` title), sort keys."""

    name: str
    path: Path
    insert: str = ""
    checkpoint: str = ""
    description: str = ""
    preview: Path | None = None


def _setting(ctx: AppContext, key: str, default: Any) -> Any:
    try:
        value = ctx.settings.get(key)
    except Exception:
        return default
    return default if value is None else value


def find_preview(path: Path) -> Path | None:
    """``<stem>.png`` / ``<stem>.preview.png`` (or jpg/jpeg/webp) beside ``path`` (A1111 ``find_preview``)."""
    base = path.with_suffix("")
    for stem in (str(base), str(base) + ".preview"):
        for extension in PREVIEW_EXTENSIONS:
            candidate = Path(stem + extension)
            if candidate != path and candidate.is_file():
                return candidate
    return path if path.suffix.lower() in PREVIEW_EXTENSIONS else None


def user_description(path: Path) -> str:
    """The description a user wrote for a network (A1111 ``find_description`` + ``read_user_metadata``): the
    ``description`` of ``<stem>.json`` (the user-metadata editor's file), else ``<stem>.txt`` or
    ``<stem>.description.txt``; "" when there is none. Shown as HTML with
    ``extra_networks_card_description_is_html``, else as text."""
    base = str(path.with_suffix(""))
    try:
        metadata = json.loads(Path(base + ".json").read_text(encoding="utf-8"))
        if isinstance(metadata, dict) and isinstance(metadata.get("description"), str):
            return str(metadata["description"])
    except (OSError, ValueError):
        pass
    for candidate in (base + ".txt", base + ".description.txt"):
        try:
            return Path(candidate).read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
    return ""


def thumbnail_url(ctx: AppContext, preview: Path | None) -> str | None:
    """A ``./file=`` URL of a downscaled copy of ``preview`` in the temp dir (cached by path and mtime)."""
    if preview is None:
        return None
    from PIL import Image

    from modules.server import temp_dir

    try:
        stat = preview.stat()
        key = hashlib.sha1(f"{preview.resolve()}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:20]
        target = temp_dir(ctx) / "extra-networks" / f"{key}.webp"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(preview) as image:
                image.thumbnail((THUMB_SIZE, THUMB_SIZE))
                image.convert("RGB").save(target, "WEBP", quality=85)
    except (OSError, ValueError) as error:
        log.warning("extra networks: no thumbnail for %s (%s)", preview, error)
        return None
    return "./file=" + str(target.resolve())


def model_version(ctx: AppContext) -> str | None:
    """"SDXL" / "SD2" / "SD1" for the loaded checkpoint (A1111 `is_sdxl`, `is_sd2`, else `is_sd1`); None when no
    checkpoint is loaded."""
    current = ctx.models.current if ctx.models is not None else None
    if current is None:
        return None
    family = str(getattr(current, "family", "") or "").lower()
    return "SDXL" if family.startswith("sdxl") else "SD2" if family.startswith("sd2") else "SD1"


def lora_shown(ctx: AppContext, sd_version: str) -> bool:
    """A1111 Lora page filter: with `lora_show_all` off, networks made for another SD version than the loaded
    checkpoint's are hidden; networks of unknown version are hidden for the versions in
    `lora_hide_unknown_for_versions`. Without a loaded checkpoint every network shows."""
    version = model_version(ctx)
    if _setting(ctx, "lora_show_all", False) or version is None:
        return True
    if sd_version == "Unknown":
        return version not in (_setting(ctx, "lora_hide_unknown_for_versions", []) or [])
    return sd_version == version


def lora_cards(ctx: AppContext, library: NetworkLibrary) -> list[Card]:
    """Lora page: ``<lora:alias:multiplier>`` (the name when ``lora_preferred_name`` is "Filename"); networks for
    other SD versions are left out (`lora_shown`)."""
    multiplier = float(_setting(ctx, "extra_networks_default_multiplier", 1.0))
    registry = library.loras
    registry.prefer_filename = _setting(ctx, "lora_preferred_name", "Alias from file") == "Filename"
    return [Card(entry.name, entry.path, insert=f"<lora:{registry.display_name(entry)}:{multiplier:g}>",
                 description=entry.sd_version if entry.sd_version != "Unknown" else "",
                 preview=find_preview(entry.path))
            for entry in registry.available.values() if lora_shown(ctx, entry.sd_version)]


def embedding_cards(ctx: AppContext, library: NetworkLibrary) -> list[Card]:
    """Textual Inversion page: the embedding's name; skipped ones (other model width) say so."""
    library.sync_embeddings(ctx.models.current)
    db = library.embeddings
    cards = []
    for skipped, items in ((False, db.word_embeddings.values()), (True, db.skipped.values())):
        for embedding in items:
            if embedding.path is None:
                continue
            note = f"{embedding.vectors} vectors" + (f", made for width {embedding.shape} (skipped)" if skipped else "")
            cards.append(Card(embedding.name, embedding.path, insert=embedding.name, description=note,
                              preview=find_preview(embedding.path)))
    return cards


def hypernetwork_cards(ctx: AppContext, library: NetworkLibrary) -> list[Card]:
    """Hypernetworks page: ``<hypernet:name:multiplier>``."""
    multiplier = float(_setting(ctx, "extra_networks_default_multiplier", 1.0))
    return [Card(name, path, insert=f"<hypernet:{name}:{multiplier:g}>", preview=find_preview(path))
            for name, path in library.list_hypernetworks().items()]


def checkpoint_cards(ctx: AppContext) -> list[Card]:
    """Checkpoints page: a click loads the checkpoint."""
    if ctx.models is None:
        return []
    return [Card(Path(info.filename).stem, Path(info.filename), checkpoint=info.title,
                 preview=find_preview(Path(info.filename))) for info in ctx.models.registry]


def page_cards(ctx: AppContext, page: str) -> list[Card]:
    """The cards of one page (``textual_inversion``, ``hypernetworks``, ``checkpoints``, ``lora``); with
    `extra_networks_hidden_models` "Never" the models inside hidden (dot) folders are left out."""
    if page == "checkpoints":
        cards = checkpoint_cards(ctx)
    else:
        builders = {"lora": lora_cards, "textual_inversion": embedding_cards, "hypernetworks": hypernetwork_cards}
        cards = builders[page](ctx, ctx.networks)
    if _setting(ctx, "extra_networks_hidden_models", "When searched") == "Never":
        cards = [card for card in cards if not in_hidden_dir(ctx, page, card.path)]
    return cards


def in_hidden_dir(ctx: AppContext, page: str, path: Path) -> bool:
    """True when a folder between the page's model folder and the file starts with "." (A1111 hidden
    directories; the model folder itself may be anywhere)."""
    root = Path(_page_dir(ctx, page))
    try:
        parts = path.parent.resolve().relative_to(root.resolve()).parts
    except (OSError, ValueError):
        parts = (path.parent.name,)
    return any(part.startswith(".") for part in parts)


def _card_html(ctx: AppContext, tab: str, page: str, card: Card) -> str:
    try:
        stat = card.path.stat()
        created, modified = stat.st_ctime, stat.st_mtime
    except OSError:
        created = modified = 0.0
    url = thumbnail_url(ctx, card.preview)
    image = f'<img class="extra-network-thumb" src="{html.escape(url)}" loading="lazy" alt="">' if url else \
        '<div class="extra-network-thumb extra-network-nopreview"></div>'
    action = {"tab": tab, "insert": card.insert, "checkpoint": card.checkpoint}
    attrs = {"data-name": card.name.lower(), "data-path": str(card.path).lower(), "data-created": f"{created:.3f}",
             "data-modified": f"{modified:.3f}", "data-search": f"{card.name} {card.path.name} {card.description}"
             .lower(), "data-action": json.dumps(action)}
    if _setting(ctx, "extra_networks_hidden_models", "When searched") == "When searched" and \
            in_hidden_dir(ctx, page, card.path):  # shown only while searching (javascript/extra-networks.js)
        attrs |= {"data-hidden-dir": "1", "style": "display:none"}
    attr_text = " ".join(f'{key}="{html.escape(value)}"' for key, value in attrs.items())
    text = user_description(card.path) or card.description
    shown = text if _setting(ctx, "extra_networks_card_description_is_html", False) else html.escape(text)
    description = f'<div class="extra-network-desc">{shown}</div>' if text else ""
    return (f'<div class="extra-network-card" tabindex="0" title="{html.escape(str(card.path))}" {attr_text}>'
            f'{image}<div class="extra-network-name">{html.escape(card.name)}</div>{description}</div>')


def cards_html(ctx: AppContext, tab: str, page: str) -> str:
    """The page's controls (search, sort field, order) and its card grid, as HTML for a ``gr.HTML``."""
    cards = page_cards(ctx, page)
    default_field = str(_setting(ctx, "extra_networks_card_order_field", "Path"))
    descending = str(_setting(ctx, "extra_networks_card_order", "Ascending")) == "Descending"
    options = "".join(f'<option value="{f}"{" selected" if f == default_field else ""}>{f}</option>'
                      for f in SORT_FIELDS)
    controls = (f'<div class="extra-network-controls"><input type="search" class="extra-network-search" '
                f'placeholder="Search" aria-label="Search {page}"><select class="extra-network-sort" '
                f'aria-label="Sort by">{options}</select><button type="button" class="extra-network-order" '
                f'data-descending="{"1" if descending else "0"}" title="Invert sort order">'
                f'{"↓" if descending else "↑"}</button></div>')
    body = "".join(_card_html(ctx, tab, page, card) for card in cards) or \
        f'<div class="extra-network-empty">Nothing here. Add files to {html.escape(_page_dir(ctx, page))}.</div>'
    return (f'<div class="extra-network-page" data-tab="{tab}" data-page="{page}">{controls}'
            f'<div class="extra-network-cards">{body}</div></div>')


def _page_dir(ctx: AppContext, page: str) -> str:
    paths = ctx.paths
    folder = {"lora": "lora_dir", "textual_inversion": "embeddings_dir", "hypernetworks": "hypernetwork_dir",
              "checkpoints": "checkpoint_dir"}[page]
    return os.fspath(getattr(paths, folder, "") or "")


def refresh_page(ctx: AppContext, tab: str, page: str) -> str:
    """🔄: rescan the page's folders and rebuild its cards."""
    library = ctx.networks
    if page == "lora":
        library.loras.refresh()
    elif page == "textual_inversion":
        library.embeddings.load(force=True)
    elif page == "checkpoints":
        ctx.models.registry.refresh()
    return cards_html(ctx, tab, page)


def select_checkpoint(ctx: AppContext, title: str) -> None:
    """A checkpoint card click: store ``sd_model_checkpoint`` and load it (as the quicksettings dropdown does)."""
    if not title or ctx.models is None:
        return
    try:
        ctx.settings.set("sd_model_checkpoint", title)
        ctx.settings.save()
        with ctx.jobs.exclusive():
            ctx.models.load(title)
    except Exception as error:
        raise gr.Error(f"Could not load checkpoint {title}: {error}") from None


def ordered_pages(ctx: AppContext) -> list[tuple[str, str]]:
    """The pages in `ui_extra_networks_tab_reorder` order: comma-separated words, a page goes to the place of the
    first word its title contains (case-insensitive), pages matching none keep their order at the end (A1111)."""
    words = [w.strip().lower() for w in str(_setting(ctx, "ui_extra_networks_tab_reorder", "")).split(",")]
    words = [w for w in words if w]

    def score(item: tuple[str, str]) -> int:
        return next((i for i, word in enumerate(words) if word in item[1].lower()), len(words))

    return sorted(PAGES, key=score)


def build_extra_networks(ctx: AppContext, tab: str) -> None:
    """Add the four extra-network tabs to the open ``gr.Tabs`` of ``tab`` ("txt2img" or "img2img").

    Only ``gr.Tab`` children go into the ``gr.Tabs``: the hidden checkpoint box/button that a checkpoint card
    click fills live inside the Checkpoints tab."""
    for page, title in ordered_pages(ctx):
        with gr.Tab(title, elem_id=f"{tab}_{page}_tab", elem_classes=["extra-networks-tab"]):
            if page == "checkpoints":
                hidden = ["sd-hidden"]  # in the DOM for extra-networks.js (visible=False would not render it)
                checkpoint_box = gr.Textbox(elem_id=f"{tab}_extra_networks_checkpoint", elem_classes=hidden,
                                            show_label=False)
                checkpoint_button = gr.Button(elem_id=f"{tab}_extra_networks_checkpoint_apply", elem_classes=hidden)
                checkpoint_button.click(lambda title: select_checkpoint(ctx, title), checkpoint_box, None)
            with gr.Row(elem_classes=["extra-network-toolbar"]):
                refresh = tool_button(REFRESH_ICON, f"{tab}_{page}_extra_refresh")
            cards = gr.HTML(lambda page=page: cards_html(ctx, tab, page), elem_id=f"{tab}_{page}_cards")
            refresh.click(lambda page=page: refresh_page(ctx, tab, page), None, cards)
