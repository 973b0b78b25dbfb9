"""The prompt row of txt2img/img2img (reference §3.1): prompts with token counters, Generate/Interrupt/Skip,
↙️ paste, 🗑️ clear, 📋 apply styles, the Styles dropdown and 💾 save-as-style; img2img adds Interrogate CLIP and
Interrogate DeepBooru.

A1111 `modules/ui_toprow.py`; element ids are A1111's (`txt2img_prompt`, `txt2img_generate`, …) so user.css and
extension scripts written for A1111 find the same elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from modules.extensions.callbacks import BeforeTokenCounterParams
from modules.processing.context import AppContext
from modules.ui.common import APPLY_STYLE_ICON, CLEAR_ICON, PASTE_ICON, SAVE_STYLE_ICON, style_names, tool_button

EDIT_ICON = "\u270f\ufe0f"  # ✏️ style editor
PROMPT_PLACEHOLDER = "Prompt\n(Press Ctrl+Enter to generate, Alt+Enter to skip, Esc to interrupt)"
NEGATIVE_PLACEHOLDER = ("Negative prompt\n(Press Ctrl+Enter to generate, Alt+Enter to skip, Esc to interrupt)")


@dataclass
class Toprow:
    """Components of one tab's prompt row."""

    prompt: gr.Textbox
    negative_prompt: gr.Textbox
    token_counter: gr.HTML
    negative_token_counter: gr.HTML
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    paste: gr.Button
    clear: gr.Button
    apply_styles: gr.Button
    styles: gr.Dropdown
    style_name: gr.Textbox
    save_style: gr.Button
    edit_styles: gr.Button | None = None
    editor: dict[str, Any] | None = None
    interrogate: gr.Button | None = None
    """img2img only: 📎 Interrogate CLIP (A1111 id `interrogate`); wired by modules/ui/interrogate_buttons.py."""
    deepbooru: gr.Button | None = None
    """img2img only: 📦 Interrogate DeepBooru (A1111 id `deepbooru`)."""


def build_toprow(ctx: AppContext, tab: str) -> Toprow:
    """Lay out the prompt row for `tab` ("txt2img" or "img2img")."""
    with gr.Row(elem_id=f"{tab}_toprow", elem_classes=["toprow"]):
        with gr.Column(scale=6, elem_id=f"{tab}_prompt_container"):
            prompt = gr.Textbox(label="Prompt", elem_id=f"{tab}_prompt", show_label=False, lines=3,
                                placeholder=PROMPT_PLACEHOLDER, elem_classes=["prompt"])
            token_counter = gr.HTML("<span>0/75</span>", elem_id=f"{tab}_token_counter",
                                    elem_classes=["token-counter"])
            negative = gr.Textbox(label="Negative prompt", elem_id=f"{tab}_neg_prompt", show_label=False, lines=3,
                                  placeholder=NEGATIVE_PLACEHOLDER, elem_classes=["prompt"])
            negative_counter = gr.HTML("<span>0/75</span>", elem_id=f"{tab}_negative_token_counter",
                                       elem_classes=["token-counter"])
        interrogate = deepbooru = None
        if tab == "img2img":  # A1111 ui_toprow: the interrogate column of the img2img prompt row
            with gr.Column(scale=1, elem_id="interrogate_col", min_width=100):
                interrogate = gr.Button("Interrogate\nCLIP", elem_id="interrogate")
                deepbooru = gr.Button("Interrogate\nDeepBooru", elem_id="deepbooru")
        with gr.Column(scale=1, elem_id=f"{tab}_actions_column", min_width=220):
            with gr.Row(elem_id=f"{tab}_generate_box", elem_classes=["generate-box"]):
                interrupt = gr.Button("Interrupt", elem_id=f"{tab}_interrupt", elem_classes=["generate-box-interrupt"])
                skip = gr.Button("Skip", elem_id=f"{tab}_skip", elem_classes=["generate-box-skip"])
                generate = gr.Button("Generate", elem_id=f"{tab}_generate", variant="primary")
            with gr.Row(elem_id=f"{tab}_tools", elem_classes=["tools-row"]):
                paste = tool_button(PASTE_ICON, f"{tab}_paste")
                clear = tool_button(CLEAR_ICON, f"{tab}_clear_prompt")
                apply_styles = tool_button(APPLY_STYLE_ICON, f"{tab}_style_apply")
                edit_styles = tool_button(EDIT_ICON, f"{tab}_styles_edit_button")
            styles = gr.Dropdown(label="Styles", elem_id=f"{tab}_styles", choices=style_names(ctx), value=[],
                                 multiselect=True)
            with gr.Row():
                style_name = gr.Textbox(label="Style name", elem_id=f"{tab}_style_name", scale=3,
                                        placeholder="Save the current prompts as a style")
                save_style = tool_button(SAVE_STYLE_ICON, f"{tab}_style_create")
    editor = build_style_editor(ctx, tab)
    return Toprow(prompt, negative, token_counter, negative_counter, generate, interrupt, skip, paste, clear,
                  apply_styles, styles, style_name, save_style, edit_styles, editor, interrogate, deepbooru)


def build_style_editor(ctx: AppContext, tab: str) -> dict[str, Any]:
    """✏️ style editor (A1111 `ui_prompt_styles.py`): pick a style, edit name/prompt/negative, save or delete;
    "copy" fills the editor from the current prompt boxes. Hidden until ✏️ is pressed."""
    with gr.Group(visible=False, elem_id=f"{tab}_styles_dialog") as box:
        with gr.Row():
            name = gr.Dropdown(style_names(ctx), value=None, label="Style", allow_custom_value=True,
                               elem_id=f"{tab}_edit_style_name", scale=4)
            copy = tool_button("\u2199\ufe0f", f"{tab}_style_copy")
        prompt = gr.Textbox(label="Prompt", lines=2, elem_id=f"{tab}_edit_style_prompt")
        negative = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{tab}_edit_style_neg_prompt")
        with gr.Row():
            save = gr.Button("Save", variant="primary", elem_id=f"{tab}_edit_style_save")
            delete = gr.Button("Delete", variant="stop", elem_id=f"{tab}_edit_style_delete")
            close = gr.Button("Close", elem_id=f"{tab}_edit_style_close")
    return {"box": box, "name": name, "copy": copy, "prompt": prompt, "negative": negative, "save": save,
            "delete": delete, "close": close}


def wire_style_editor(ctx: AppContext, row: Toprow) -> None:
    """Events of the ✏️ dialog; saving or deleting rewrites styles.csv and refreshes both dropdowns."""
    ed = row.editor
    if ed is None or row.edit_styles is None:
        return
    def open_editor(selected: list[str] | None) -> tuple[Any, Any, Any, Any]:
        """✏️ opens on the first selected style, its name, prompt and negative prompt filled (A1111
        `ui_prompt_styles.UiPromptStyles`: the dropdown starts at the selection); nothing selected → as it was."""
        first = next((n for n in selected or [] if ctx.styles is not None and n in ctx.styles.styles), None)
        if first is None or ctx.styles is None:
            return gr.update(visible=True), gr.update(), gr.update(), gr.update()
        style = ctx.styles.styles[first]
        return (gr.update(visible=True), gr.update(choices=style_names(ctx), value=first), style.prompt or "",
                style.negative_prompt or "")

    row.edit_styles.click(open_editor, row.styles, [ed["box"], ed["name"], ed["prompt"], ed["negative"]],
                          queue=False)
    ed["close"].click(lambda: gr.update(visible=False), None, ed["box"], queue=False)
    ed["copy"].click(lambda p, n: (p, n), [row.prompt, row.negative_prompt], [ed["prompt"], ed["negative"]],
                     queue=False)

    def select(name: str) -> tuple[Any, Any]:
        style = ctx.styles.styles.get(name) if ctx.styles is not None and name else None
        if style is None:
            return gr.update(), gr.update()
        return style.prompt or "", style.negative_prompt or ""

    ed["name"].change(select, ed["name"], [ed["prompt"], ed["negative"]], queue=False)

    def save(name: str, prompt: str, negative: str) -> tuple[Any, Any]:
        name = (name or "").strip()
        if not name:
            raise gr.Error("Style editor: enter a style name")
        if ctx.styles is None:
            raise gr.Error("No styles file is configured")
        ctx.styles.add_style(name, prompt or "", negative or "")
        ctx.styles.save_styles()
        names = style_names(ctx)
        return gr.update(choices=names), gr.update(choices=names, value=name)

    def delete(name: str) -> tuple[Any, Any, str, str]:
        if ctx.styles is None or not name or not ctx.styles.delete_style(name):
            raise gr.Error(f"Style editor: there is no style named {name!r}")
        ctx.styles.save_styles()
        names = style_names(ctx)
        return gr.update(choices=names), gr.update(choices=names, value=None), "", ""

    ed["save"].click(save, [ed["name"], ed["prompt"], ed["negative"]], [row.styles, ed["name"]], queue=False)
    ed["delete"].click(delete, ed["name"], [row.styles, ed["name"], ed["prompt"], ed["negative"]], queue=False)


def count_tokens(ctx: AppContext, text: str, steps: int | float | None, styles: list[str] | None,
                 negative: bool = False) -> str:
    """Counter text "N/75" (A1111 `update_token_counter`): the longest prompt-editing variant, chunks of 75.

    Styles are included when `include_styles_into_token_counters` is on (A1111 default True). The
    `before_token_counter` callbacks see the prompt first and may rewrite it (A1111 1.10, e.g. wildcards).
    """
    from modules.prompts.token_counter import count_prompt_tokens, format_token_counter
    from modules.prompts.tokenizer import get_tokenizer

    params = BeforeTokenCounterParams(text or "", int(steps or 20), list(styles or []), is_positive=not negative)
    ctx.callbacks.fire("before_token_counter", params)
    text = params.prompt
    if styles and ctx.styles is not None and ctx.settings.get("include_styles_into_token_counters"):
        apply = ctx.styles.apply_negative_styles_to_prompt if negative else ctx.styles.apply_styles_to_prompt
        text = apply(text, styles)
    try:
        count, limit = count_prompt_tokens(text, get_tokenizer("clip"), steps=max(1, int(steps or 20)),
                                           is_positive=not negative)
    except Exception as exc:  # a malformed prompt must not break typing; show the error as the tooltip
        return f"<span class='error' title='{exc}'>?/75</span>"
    css = " class='over'" if count > limit else ""
    return f"<span{css}>{format_token_counter(count, limit)}</span>"


def wire_toprow(ctx: AppContext, row: Toprow, steps: gr.components.Component) -> None:
    """Token counters, clear, apply-styles and save-style events."""
    row.prompt.change(lambda t, s, st: count_tokens(ctx, t, s, st), [row.prompt, steps, row.styles],
                      row.token_counter, show_progress="hidden", trigger_mode="always_last", queue=False)
    row.negative_prompt.change(lambda t, s, st: count_tokens(ctx, t, s, st, True),
                               [row.negative_prompt, steps, row.styles], row.negative_token_counter,
                               show_progress="hidden", trigger_mode="always_last", queue=False)
    row.styles.change(lambda t, n, s, st: (count_tokens(ctx, t, s, st), count_tokens(ctx, n, s, st, True)),
                      [row.prompt, row.negative_prompt, steps, row.styles],
                      [row.token_counter, row.negative_token_counter], show_progress="hidden", queue=False)
    row.clear.click(lambda: ("", ""), None, [row.prompt, row.negative_prompt], queue=False)

    def apply_styles(prompt: str, negative: str, styles: list[str]) -> tuple[str, str, list[str]]:
        """A1111 📋: write the selected styles into the prompt boxes and clear the selection."""
        if ctx.styles is None or not styles:
            return prompt, negative, styles
        return (ctx.styles.apply_styles_to_prompt(prompt, styles),
                ctx.styles.apply_negative_styles_to_prompt(negative, styles), [])

    row.apply_styles.click(apply_styles, [row.prompt, row.negative_prompt, row.styles],
                           [row.prompt, row.negative_prompt, row.styles], queue=False)

    def save_style(name: str, prompt: str, negative: str) -> tuple[Any, str]:
        """A1111 style editor "Save": add or replace the style in styles.csv."""
        name = (name or "").strip()
        if not name:
            raise gr.Error("Enter a style name to save the current prompts as a style")
        if ctx.styles is None:
            raise gr.Error("No styles file is configured")
        ctx.styles.add_style(name, prompt or "", negative or "")
        ctx.styles.save_styles()
        return gr.update(choices=style_names(ctx)), ""

    wire_style_editor(ctx, row)
    row.save_style.click(save_style, [row.style_name, row.prompt, row.negative_prompt],
                         [row.styles, row.style_name], queue=False)
