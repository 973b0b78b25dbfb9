"""Custom code (txt2img and img2img): runs the Python typed into the UI with the job's `p`.

A1111 `scripts/custom_code.py` (reference §9): listed only when the server runs with `--allow-code` (and refused
with a message if it is called without it); fields "Python code" (default: an example that changes `p` and
returns `process_images(p)`) and "Indent level" (2). The code becomes the body of a function, indented by that
many spaces, and runs with `p`, `display` and `process_images` in scope. A returned result (what
`process_images(p)` gives) is the job's result; otherwise the images passed to `display(images, seed, info)` are
(A1111 builds `Processed(p, *display_result_data)`). An exception in the code is reported as the job's error.
"""

from __future__ import annotations

import textwrap
from typing import Any

from modules.compat.host import HOST
from modules.extensions.api import Script, ScriptArg, process_images
from modules.extensions.builtin_logic import ScriptInputError
from modules.processing import Processed

EXAMPLE = """from modules.processing import process_images

p.width = 768
p.height = 768
p.batch_size = 2
p.steps = 10

return process_images(p)
"""


def code_allowed() -> bool:
    """True when the running app was started with `--allow-code`."""
    return HOST.running() and bool(getattr(HOST.current().flags, "allow_code", False))


def run_code(p: Any, code: str, indent_level: int = 2) -> Any:
    """Run `code` as the body of a function with `p`, `display` and `process_images` in scope; the function's
    return value if it returned one, else a result holding the images given to `display(images, seed, info)`."""
    shown: list[Any] = [[], -1, ""]

    def display(images: Any, seed: int = -1, info: str = "") -> None:
        shown[0], shown[1], shown[2] = list(images), seed, info

    indent = " " * max(0, int(indent_level))
    body = "def __webuitemp__():\n" + textwrap.indent(code, indent if indent else " ")
    namespace: dict[str, Any] = {"p": p, "display": display, "process_images": process_images,
                                 "__name__": "custom_code"}
    try:
        compiled = compile(body, "<custom code>", "exec")
    except SyntaxError as error:
        raise ScriptInputError(f"Custom code: {error.msg} (line {error.lineno})") from None
    exec(compiled, namespace)  # the user's own code, only with --allow-code (A1111 custom_code.py)
    result = namespace["__webuitemp__"]()
    if result is not None:
        return result
    return Processed(p, shown[0], shown[1], shown[2])


class CustomCode(Script):
    """The "Custom code" entry of the Script dropdown (only with `--allow-code`)."""

    def title(self) -> str:
        return "Custom code"

    def show(self, is_img2img: bool) -> bool:
        return code_allowed()

    def ui(self, is_img2img: bool) -> list[Any]:
        return [ScriptArg("code", "Python code", EXAMPLE, kind="textarea"),
                ScriptArg("indent_level", "Indent level", 2, kind="number")]

    def run(self, p: Any, code: str, indent_level: int = 2) -> Any:
        if not code_allowed():
            raise ScriptInputError("Custom code: the server must be started with --allow-code")
        return run_code(p, code or "", int(indent_level or 0))
