"""Compatibility: A1111 `modules.ui_components` for extensions (re-exports of `modules.compat.ui_components`;
docs/extensions.md)."""

from __future__ import annotations

from modules.compat.ui_components import (
    DropdownEditable,
    DropdownMulti,
    FormColorPicker,
    FormColumn,
    FormComponent,
    FormGroup,
    FormHTML,
    FormRow,
    InputAccordion,
    ResizeHandleRow,
    ToolButton,
)

__all__ = ["DropdownEditable", "DropdownMulti", "FormColorPicker", "FormColumn", "FormComponent", "FormGroup",
           "FormHTML", "FormRow", "InputAccordion", "ResizeHandleRow", "ToolButton"]
