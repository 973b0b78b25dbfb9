"""A plugin cannot switch the safe checkpoint loader off: an extension that replaces `torch.load` (as some do to
patch model loading) is loaded, and a pickle checkpoint that would run code is still refused, its code never run."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.acceptance.conftest import WebUIFactory

REPLACING_EXTENSION = '''
import torch

_original = torch.load


def permissive_load(*args, **kwargs):
    """What a careless extension does: force plain unpickling for every torch.load call."""
    kwargs.pop("pickle_module", None)
    kwargs["weights_only"] = False
    return _original(*args, **kwargs)


torch.load = permissive_load
'''


class _CreatesFile:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.target), "w"))


def test_extension_replacing_torch_load_does_not_disable_the_safe_unpickler(webui_app: WebUIFactory,
                                                                             tmp_path: Path) -> None:
    target = tmp_path / "pwned.txt"

    def prepare(data: Path) -> None:
        scripts = data / "extensions" / "sd-webui-fastload" / "scripts"
        scripts.mkdir(parents=True)
        (scripts / "fastload.py").write_text(REPLACING_EXTENSION, encoding="utf-8")
        torch.save({"state_dict": {"w": torch.zeros(2)}, "x": _CreatesFile(target)},
                   data / "models" / "Stable-diffusion" / "zz-evil.ckpt")

    original_load = torch.load
    try:
        app = webui_app(["--api"], prepare=prepare)
        assert torch.load is not original_load, "the extension's patch is in place"
        refused = app.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "zz-evil.ckpt"})
        assert refused.status_code >= 400 and "forbidden" in refused.text, refused.text
        assert not target.exists(), "the pickle's code ran"
        assert app.txt2img()["images"]  # the working checkpoint stays loaded
    finally:
        torch.load = original_load  # this test process is shared with other tests


def test_pickles_in_every_model_folder_never_run(webui_app: WebUIFactory, tmp_path: Path) -> None:
    """A stranger's `.pt`/`.ckpt` dropped into any folder the app reads (embeddings, LoRA, hypernetworks, VAE,
    checkpoints) is refused by the allow-list unpickler when the app touches it; its code never runs."""
    targets = {name: tmp_path / f"pwned-{name}.txt" for name in ("emb", "lora", "hn", "vae", "ckpt")}

    def evil(name: str) -> dict[str, object]:
        return {"string_to_param": {"*": torch.zeros(1, 768)}, "x": _CreatesFile(targets[name])}

    def prepare(data: Path) -> None:
        for folder in ("embeddings", "models/Lora", "models/hypernetworks", "models/VAE"):
            (data / folder).mkdir(parents=True, exist_ok=True)
        torch.save(evil("emb"), data / "embeddings" / "evilemb.pt")
        torch.save(evil("lora"), data / "models" / "Lora" / "evillora.pt")
        torch.save(evil("hn"), data / "models" / "hypernetworks" / "evilhn.pt")
        torch.save(evil("vae"), data / "models" / "VAE" / "evilvae.pt")
        torch.save(evil("ckpt"), data / "models" / "Stable-diffusion" / "zz-evil.ckpt")

    app = webui_app(["--api"], prepare=prepare)
    app.client.post("/sdapi/v1/refresh-embeddings")
    app.client.post("/sdapi/v1/refresh-loras")
    app.client.post("/sdapi/v1/options", json={"sd_vae": "evilvae.pt"})
    app.client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "zz-evil.ckpt"})
    app.client.post("/sdapi/v1/txt2img", json={"prompt": "evilemb <lora:evillora:1> <hypernet:evilhn:1>",
                                               "steps": 1, "width": 64, "height": 64})
    app.client.post("/sdapi/v1/options", json={"sd_vae": "None"})
    assert app.txt2img()["images"]
    assert not [name for name, target in targets.items() if target.exists()]


HANGING_EXTENSION = '''
import time

from modules import script_callbacks

time.sleep(30)  # a download that never ends, a prompt waiting for input …


def late(demo, app):
    raise RuntimeError("a skipped script must never join the running app")


script_callbacks.on_app_started(late)
'''


def test_an_extension_that_hangs_at_import_does_not_stop_the_start(webui_app: WebUIFactory) -> None:
    import time

    def prepare(data: Path) -> None:
        scripts = data / "extensions" / "sd-webui-slowpoke" / "scripts"
        scripts.mkdir(parents=True)
        (scripts / "slow.py").write_text(HANGING_EXTENSION, encoding="utf-8")

    started = time.monotonic()
    app = webui_app(["--api", "--script-import-timeout", "2"], prepare=prepare)
    assert time.monotonic() - started < 25, "the server waited for the hanging import"
    assert "slow.py" in app.console and "still importing after 2 s" in app.console
    assert app.txt2img()["images"]
