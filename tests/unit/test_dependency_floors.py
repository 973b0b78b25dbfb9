"""Dependency floors: requirements.txt asks for at least the fixed releases, and start-up names outdated ones."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from modules.runtime.dependency_floors import FLOORS, below_floor, outdated_dependencies

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def test_requirements_pin_at_least_every_floor() -> None:
    text = REQUIREMENTS.read_text(encoding="utf-8").lower()
    for package, floor in FLOORS.items():
        match = re.search(rf"^{package}\s*(==|>=)\s*([0-9.]+)", text, re.MULTILINE)
        assert match is not None, f"{package} has no floor in requirements.txt"
        assert not below_floor(match.group(2), floor), (package, match.group(2), floor)


def test_outdated_packages_are_named_with_the_fix() -> None:
    installed = {"gradio": "5.49.1", "starlette": "0.47.0", "pillow": "12.3.0", "torch": "2.14.1+cu130",
                 "h11": "0.16.0", "fastapi": "0.115.0", "transformers": "4.48.0", "safetensors": "0.8.0",
                 "python-multipart": "0.0.18"}

    def version_of(name: str) -> str:
        return installed[name]

    messages = outdated_dependencies(version_of)
    assert len(messages) == 2
    assert "gradio 5.49.1 is older than 6.0" in messages[0] and "pip install -U 'gradio>=6.0'" in messages[0]
    assert "starlette 0.47.0" in messages[1]
    assert below_floor("0.49.0", "0.49.1") and not below_floor("0.49.1", "0.49.1")
    assert not below_floor("2.14.1+cu130", "2.6.0") and below_floor("2.5.1", "2.6.0")


def test_this_environment_meets_the_floors() -> None:
    assert outdated_dependencies(metadata.version) == []
