"""A1111 `modules/ui_components.py` names for extensions, as Gradio 6 components of this app.

A1111 facts followed: `InputAccordion(value, **kwargs)` is a checkbox (its value is what `ui()` returns and the
script receives) shown as an accordion; while linked (the default), opening the accordion turns it on and closing
turns it off; `with InputAccordion(...) as enabled:` puts components inside the accordion; `.accordion` is the
accordion, `.extra()` a column for extra controls. The checkbox's elem_id is `<accordion elem_id>-checkbox`.
`ToolButton` is a small button with the `tool` class; `FormRow`/`FormColumn`/`FormGroup`/`FormHTML`/
`FormColorPicker` are the plain layouts/components; `DropdownMulti` a multi-select dropdown; `DropdownEditable` a
dropdown that accepts custom values; `ResizeHandleRow` a row with the `resize-handle-row` class.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

import gradio as gr

from modules.compat.gradio_classes import QuietComponentMeta, RendersAsGradio


def _classes(kwargs: dict[str, Any], *extra: str) -> list[str]:
    given = kwargs.pop("elem_classes", None) or []
    return [*extra, *([given] if isinstance(given, str) else list(given))]


class FormComponent(RendersAsGradio):
    """Base of A1111's form components (they render as their Gradio class)."""


class ToolButton(FormComponent, gr.Button, metaclass=QuietComponentMeta):
    """A small icon button (A1111 `ToolButton`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, elem_classes=_classes(kwargs, "tool"), **kwargs)


class FormRow(FormComponent, gr.Row, metaclass=QuietComponentMeta):
    """A row (A1111 `FormRow`)."""


class FormColumn(FormComponent, gr.Column, metaclass=QuietComponentMeta):
    """A column (A1111 `FormColumn`)."""


class FormGroup(FormComponent, gr.Group, metaclass=QuietComponentMeta):
    """A group (A1111 `FormGroup`)."""


class FormHTML(FormComponent, gr.HTML, metaclass=QuietComponentMeta):
    """An HTML block (A1111 `FormHTML`)."""


class FormColorPicker(FormComponent, gr.ColorPicker, metaclass=QuietComponentMeta):
    """A colour picker (A1111 `FormColorPicker`)."""


class DropdownMulti(FormComponent, gr.Dropdown, metaclass=QuietComponentMeta):
    """A multi-select dropdown (A1111 `DropdownMulti`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, multiselect=True, **kwargs)


class DropdownEditable(FormComponent, gr.Dropdown, metaclass=QuietComponentMeta):
    """A dropdown that accepts typed values (A1111 `DropdownEditable`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, allow_custom_value=True, **kwargs)


class ResizeHandleRow(FormComponent, gr.Row, metaclass=QuietComponentMeta):
    """A row whose columns the user can resize (A1111 `ResizeHandleRow`; the class marks it for the page)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(elem_classes=_classes(kwargs, "resize-handle-row"), **kwargs)


class InputAccordion(FormComponent, gr.Checkbox, metaclass=QuietComponentMeta):
    """A checkbox shown as an accordion: the value is True while the accordion is open (A1111 `InputAccordion`).

    The checkbox itself is kept in the page but hidden; the accordion's expand/collapse events set it (in the
    browser, no server round trip) and a value set from elsewhere (paste, API of the page) opens or closes it.
    """

    def __init__(self, value: bool = False, **kwargs: Any) -> None:
        elem_id = kwargs.pop("elem_id", None)
        label = kwargs.pop("label", None) or "Accordion"
        visible = kwargs.pop("visible", True)
        classes = _classes(kwargs)
        kwargs.pop("open", None)
        self.accordion_id: str = elem_id or f"input-accordion-{uuid.uuid4().hex[:10]}"
        super().__init__(bool(value), label=label, visible="hidden", elem_id=f"{self.accordion_id}-checkbox",
                         elem_classes=["input-accordion-checkbox"], **kwargs)
        self.accordion = gr.Accordion(label, open=bool(value), visible=visible, elem_id=self.accordion_id,
                                      elem_classes=["input-accordion", *classes])
        self.accordion.expand(None, None, self, js="() => true", queue=False, show_progress="hidden")
        self.accordion.collapse(None, None, self, js="() => false", queue=False, show_progress="hidden")
        self.change(lambda checked: gr.Accordion(open=bool(checked)), self, self.accordion, queue=False,
                    show_progress="hidden")

    def extra(self) -> gr.Column:
        """A column for extra controls next to the accordion (A1111 puts it in the accordion's header)."""
        return gr.Column(elem_id=f"{self.accordion_id}-extra", elem_classes=["input-accordion-extra"], min_width=0)

    def __enter__(self) -> InputAccordion:
        self.accordion.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.accordion.__exit__(exc_type, exc, tb)


__all__ = ["DropdownEditable", "DropdownMulti", "FormColorPicker", "FormColumn", "FormComponent", "FormGroup",
           "FormHTML", "FormRow", "InputAccordion", "ResizeHandleRow", "ToolButton"]
