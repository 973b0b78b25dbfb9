"""ModelPatcher: fp32 weight patches written in the model dtype, bit-identical restore, instance hooks, clones."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from modules.models.patcher import ModelPatcher, PatcherError


def _tree(spec: dict[str, nn.Module]) -> nn.Module:
    """An nn.Module whose submodule names are the dotted keys of ``spec`` (checkpoint-style layout)."""
    root = nn.Module()
    for path, module in spec.items():
        node = root
        *parents, leaf = path.split(".")
        for part in parents:
            if part not in node._modules:
                node.add_module(part, nn.Module())
            node = node._modules[part]
        node.add_module(leaf, module)
    return root


def _unet(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return _tree({
        "input_blocks.1.1.transformer_blocks.0.attn1.to_q": nn.Linear(8, 8, bias=False),
        "input_blocks.1.0.in_layers.2": nn.Conv2d(4, 8, 3, padding=1),
    }).to(dtype)


Q = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
CONV = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_apply_writes_fp32_sum_in_model_dtype_and_restore_is_bit_identical(dtype: torch.dtype) -> None:
    unet = _unet(dtype)
    original = {k: v.clone() for k, v in unet.state_dict().items()}
    delta_a = torch.randn(8, 8)
    delta_b = torch.randn(8, 8)
    seen: list[torch.dtype] = []
    patcher = ModelPatcher({"model.diffusion_model.": unet})

    def first(base: torch.Tensor) -> torch.Tensor:
        seen.append(base.dtype)
        return 0.5 * delta_a

    patcher.add_weight_patch(Q, first, source="a")
    patcher.add_weight_patch(Q, lambda base: base * 0 + delta_b, source="b")
    patcher.apply()
    weight = unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn1.to_q").weight
    expected = (original["input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"].float() + 0.5 * delta_a + delta_b)
    assert seen == [torch.float32]
    assert weight.dtype == dtype
    assert torch.equal(weight, expected.to(dtype))
    patcher.restore()
    for key, value in unet.state_dict().items():
        assert torch.equal(value, original[key]), key
        assert value.dtype == original[key].dtype


def test_deltas_are_computed_against_the_original_not_the_running_sum() -> None:
    unet = _unet()
    base = unet.get_submodule("input_blocks.1.0.in_layers.2").weight.detach().clone()
    patcher = ModelPatcher({"model.diffusion_model.": unet})
    for _ in range(2):
        patcher.add_weight_patch(CONV, lambda w: w * 0.5)  # IA3-style delta, depends on the weight
    with patcher:
        assert torch.allclose(unet.get_submodule("input_blocks.1.0.in_layers.2").weight, base * 2.0)
    assert torch.equal(unet.get_submodule("input_blocks.1.0.in_layers.2").weight, base)


def test_parameter_identity_is_kept_and_class_methods_untouched() -> None:
    unet = _unet()
    module = unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn1.to_q")
    param_before = module.weight
    forward_before = nn.Linear.forward
    patcher = ModelPatcher({"model.diffusion_model.": unet})
    patcher.add_weight_patch(Q, torch.ones_like)
    patcher.add_input_wrap(Q.removesuffix(".weight"), lambda x: x * 2)
    with patcher:
        assert module.weight is param_before
        assert "forward" not in vars(module)
    assert nn.Linear.forward is forward_before


def test_input_and_output_wraps_are_instance_hooks_removed_on_restore() -> None:
    unet = _unet()
    module = unet.get_submodule("input_blocks.1.1.transformer_blocks.0.attn1.to_q")
    other = nn.Linear(8, 8, bias=False)
    other.load_state_dict(module.state_dict())
    x = torch.randn(2, 8)
    patcher = ModelPatcher({"model.diffusion_model.": unet})
    key = Q.removesuffix(".weight")
    patcher.add_input_wrap(key, lambda t: t * 3)
    patcher.add_input_wrap(key, lambda t: t + 1)  # chained in order: (x*3)+1
    patcher.add_output_wrap(key, lambda t: -t)
    with patcher:
        assert torch.allclose(module(x), -(other(x * 3 + 1)))
        assert torch.allclose(other(x), x @ other.weight.T)  # an identical module elsewhere is not hooked
    assert not module._forward_pre_hooks and not module._forward_hooks
    assert torch.equal(module(x), other(x))


def test_clone_is_independent_and_patches_cannot_change_while_applied() -> None:
    unet = _unet()
    base = ModelPatcher({"model.diffusion_model.": unet})
    base.add_weight_patch(Q, torch.ones_like, source="base")
    clone = base.clone()
    clone.add_weight_patch(CONV, torch.ones_like, source="lora")
    assert list(base.weight_patches) == [Q]
    assert set(clone.weight_patches) == {Q, CONV}
    clone.apply()
    with pytest.raises(PatcherError, match="restore"):
        clone.add_weight_patch(Q, torch.ones_like)
    with pytest.raises(PatcherError, match="another patcher"):
        base.apply()
    clone.restore()
    base.apply()
    base.restore()
    clone.remove_source("lora")
    assert list(clone.weight_patches) == [Q]


def test_unknown_keys_and_bad_delta_shapes_are_clear_errors_and_leave_the_model_unchanged() -> None:
    unet = _unet()
    original = {k: v.clone() for k, v in unet.state_dict().items()}
    patcher = ModelPatcher({"model.diffusion_model.": unet})
    with pytest.raises(PatcherError, match=re.escape("no parameter 'model.diffusion_model.nope.weight'")):
        patcher.add_weight_patch("model.diffusion_model.nope.weight", torch.ones_like)
    with pytest.raises(PatcherError, match="no module"):
        patcher.add_input_wrap("model.diffusion_model.nope", lambda t: t)
    patcher.add_weight_patch(Q, torch.ones_like, source="good")
    patcher.add_weight_patch(CONV, lambda w: torch.ones(3), source="broken.safetensors")
    with pytest.raises(PatcherError, match=re.escape("broken.safetensors")):
        patcher.apply()
    assert not patcher.is_applied
    for key, value in unet.state_dict().items():
        assert torch.equal(value, original[key])


def test_components_resolve_by_longest_prefix_and_whole_model_prefix() -> None:
    te = nn.Linear(4, 4)
    unet = _unet()
    patcher = ModelPatcher({"cond_stage_model.": nn.Module(), "cond_stage_model.transformer.": te,
                            "model.diffusion_model.": unet})
    assert patcher.parameter("cond_stage_model.transformer.weight") is te.weight
    assert patcher.module("model.diffusion_model.input_blocks.1.0.in_layers.2") is not None
    whole = nn.Module()
    whole.add_module("model", nn.Module())
    whole.model.add_module("diffusion_model", unet)
    flat = ModelPatcher({"": whole})
    assert flat.parameter(Q) is unet.get_parameter(Q.removeprefix("model.diffusion_model."))
    with pytest.raises(ValueError, match="end with"):
        ModelPatcher({"model": unet})


def test_backup_on_same_device_option() -> None:
    unet = _unet(torch.float16)
    original = unet.state_dict()[Q.removeprefix("model.diffusion_model.")].clone()
    patcher = ModelPatcher({"model.diffusion_model.": unet}, backup_device=None)
    patcher.add_weight_patch(Q, lambda w: torch.full_like(w, 1e-3))
    with patcher:
        assert not torch.equal(unet.state_dict()[Q.removeprefix("model.diffusion_model.")], original)
    assert torch.equal(unet.state_dict()[Q.removeprefix("model.diffusion_model.")], original)
