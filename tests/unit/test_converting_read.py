"""The loader's read: each network's tensors converted to its dtype in file order, mapped pages released as it goes."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from modules.memory.precision import PrecisionFlags, resolve_dtype_policy
from modules.models.loader import network_dtypes
from modules.models.state_dict_io import read_safetensors_converted, read_state_dict

TENSORS = {
    "model.diffusion_model.input_blocks.0.0.weight": torch.randn(8, 4, 3, 3).half(),
    "model.diffusion_model.input_blocks.0.0.bias": torch.randn(8).half(),
    "first_stage_model.quant_conv.weight": torch.randn(8, 8, 1, 1).half(),
    "cond_stage_model.transformer.text_model.embeddings.position_ids": torch.arange(77)[None],
    "cond_stage_model.transformer.embeddings.token_embedding.weight": torch.randn(10, 4).half(),  # legacy spelling
    "model_ema.decay": torch.tensor(0.999),
    "empty": torch.zeros(0, 3).half(),
}


def _mapped_rss_bytes(path: Path) -> int:
    """Resident bytes of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if "-" in line.split(" ", 1)[0] and len(line.split()) >= 5:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1]) * 1024
    return total


def test_each_network_gets_its_dtype_and_the_values_of_a_plain_conversion(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file(TENSORS, path)
    dtypes = resolve_dtype_policy("cpu", PrecisionFlags(no_half=True, no_half_vae=True))
    dtypes = type(dtypes)(**{**dtypes.__dict__, "unet": torch.bfloat16})  # three different targets
    got = read_state_dict(path, dtype_for=network_dtypes(dtypes, own_vae=True))
    plain = read_state_dict(path)
    assert got.keys() == plain.keys()
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in got  # key normalised
    expected = {"model.diffusion_model.": torch.bfloat16, "first_stage_model.": torch.float32,
                "cond_stage_model.": torch.float32}
    for key, tensor in got.items():
        want = next((d for prefix, d in expected.items() if key.startswith(prefix)), plain[key].dtype)
        if not plain[key].is_floating_point():
            want = plain[key].dtype
        assert tensor.dtype == want, key
        assert torch.equal(tensor, plain[key].to(want)), key
    external = read_state_dict(path, dtype_for=network_dtypes(dtypes, own_vae=False))
    assert external["first_stage_model.quant_conv.weight"].dtype == torch.float16  # an external VAE replaces it


def test_converted_tensors_do_not_keep_the_file_resident(tmp_path: Path) -> None:
    path = tmp_path / "big.safetensors"
    tensors = {f"model.diffusion_model.w{i:02d}": torch.ones(1024, 1024, dtype=torch.float16) for i in range(64)}
    save_file({**tensors, "zz.kept": torch.ones(4)}, path)  # 128 MiB; the last key stays a view (mapping alive)
    state = read_safetensors_converted(path, lambda key: None if key == "zz.kept" else torch.float32)
    assert all(t.dtype == torch.float32 and t[1023, 1023].item() == 1.0 for k, t in state.items() if k != "zz.kept")
    resident = _mapped_rss_bytes(path)
    assert resident < 4 * 2**20, f"{resident >> 20} MiB of the file stayed mapped after its tensors were converted"
    kept = read_safetensors_converted(path, lambda key: torch.float16)  # same dtype: zero-copy views of the file
    assert all(torch.equal(kept[k], v) for k, v in tensors.items())
    assert _mapped_rss_bytes(path) >= 128 * 2**20


def test_channels_last_is_written_in_the_same_pass(tmp_path: Path) -> None:
    path = tmp_path / "conv.safetensors"
    weight = torch.randn(8, 4, 3, 3).half()
    save_file({"model.diffusion_model.conv.weight": weight, "cond_stage_model.proj.weight": weight.clone()}, path)
    state = read_safetensors_converted(path, lambda key: torch.float32,
                                       channels_last=lambda key: key.startswith("model.diffusion_model."))
    unet, text = state["model.diffusion_model.conv.weight"], state["cond_stage_model.proj.weight"]
    assert unet.is_contiguous(memory_format=torch.channels_last) and not unet.is_contiguous()
    assert text.is_contiguous()
    assert torch.equal(unet, text)  # same values either way
    assert unet.to(memory_format=torch.channels_last).data_ptr() == unet.data_ptr()  # the later pass copies nothing
