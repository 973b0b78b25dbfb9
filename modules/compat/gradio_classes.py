"""Subclassing Gradio 6 component classes for A1111 names (`InputAccordion(gr.Checkbox)`, `ToolButton(gr.Button)`, …).

Gradio's `ComponentMeta` writes a `.pyi` stub next to the file of every component subclass it creates (for its own
component templates). A stub next to one of our modules would shadow the module for the type checker, so the
compatibility classes use `QuietComponentMeta`, which creates the class the plain ABC way: events, `__init__` and
everything else are inherited from the Gradio class unchanged. `RendersAsGradio` makes the page see the Gradio
class ("checkbox", "button", "row", …) and its properties, since a subclass would otherwise ask for its own
Svelte file; the metaclass gives a subclass's `__init__` the Gradio class's signature, from which Gradio reads the
properties it sends to the page.
"""

from __future__ import annotations

import inspect
from abc import ABCMeta
from typing import Any

from gradio.component_meta import ComponentMeta


class QuietComponentMeta(ComponentMeta):
    """Creates component subclasses without Gradio's stub generation (see the module docstring)."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        cls = ABCMeta.__new__(mcs, name, bases, attrs)
        init = attrs.get("__init__")
        if init is not None:  # Gradio reads the page properties from the `__init__` signature: the Gradio class's
            base: Any = gradio_base(cls)
            init.__signature__ = inspect.signature(base.__init__)
        return cls


def gradio_base(cls: type) -> type:
    """The Gradio class a compatibility subclass stands for: the first class from the `gradio` package in its MRO."""
    for base in cls.__mro__:
        if base.__module__.startswith("gradio."):
            return base
    return cls


def frontend_name(cls: type) -> str:
    """The name the page knows the component by ("checkbox", "button", "row", …; "tabitem" for `gr.Tab`,
    "nativeplot" for the plots: the Gradio classes that name their Svelte file themselves)."""
    from gradio.blocks import Block

    base: Any = gradio_base(cls)
    if base.get_block_name is not Block.get_block_name:
        return str(base.get_block_name(base.__new__(base)))
    return base.__name__.lower()


class RendersAsGradio:
    """Mixin (listed before the Gradio class): the page sees the Gradio class, not the subclass."""

    def get_block_name(self) -> str:
        return frontend_name(type(self))

    def get_block_class(self) -> str:
        return frontend_name(type(self))
