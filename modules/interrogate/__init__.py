"""Image interrogation: the CLIP interrogator (BLIP caption + CLIP-ranked categories) and DeepBooru tags.

A1111 `modules/interrogate.py`, `modules/deepbooru.py`, `modules/deepbooru_model.py`; design notes in
docs/interrogate.md. The app builds one :class:`Interrogators` in `webui.build_context` (`ctx.interrogators`).
"""

from modules.interrogate.service import (
    INTERROGATORS,
    InterrogateError,
    InterrogatorPaths,
    Interrogators,
    ModelFilesMissing,
)
from modules.interrogate.weights import WeightsSource

__all__ = ["INTERROGATORS", "InterrogateError", "InterrogatorPaths", "Interrogators", "ModelFilesMissing",
           "WeightsSource"]
