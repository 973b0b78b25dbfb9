"""OFT / BOFT, GLoRA and DoRA against hand-computed formulas (explicit block-diagonal / permutation matrices and
per-column loops), and the ``lora_functional`` forward terms against merged weights on real layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from modules.models.networks.lora import LoadedLora, LoraRequest, add_loras
from modules.models.networks.lora_formats import (
    GloraModule,
    LoraFormatError,
    ModuleWeights,
    OftModule,
    group_keys,
    parse_module,
    split_key,
)
from modules.models.networks.names import Target
from modules.models.patcher import ModelPatcher


def mw(**parts: torch.Tensor) -> ModuleWeights:
    return ModuleWeights("lora_unet_x", dict(parts))


def cayley_by_solve(block: torch.Tensor) -> torch.Tensor:
    """(I + Q)(I − Q)⁻¹ with Q = B − Bᵀ, computed through a linear solve: X (I − Q) = (I + Q)."""
    q = block - block.T
    eye = torch.eye(block.shape[0], dtype=torch.float64)
    return torch.linalg.solve((eye - q).T, (eye + q).T).T


def test_kohya_oft_is_block_diagonal_cayley_rotation_of_the_rows() -> None:
    torch.manual_seed(0)
    blocks, weight = torch.randn(2, 3, 3) * 0.2, torch.randn(6, 5)
    module = parse_module(mw(oft_blocks=blocks, alpha=torch.tensor(10.0)))  # constraint 60: no clamping
    assert isinstance(module, OftModule) and module.scale == 1.0
    r = torch.block_diag(*[cayley_by_solve(b.double()) for b in blocks])
    expected = r.T @ weight.double() - weight.double()  # A1111 einsum 'k n m, k n ... -> k m ...' = Rᵀ·W per block
    assert torch.allclose(module.weight_delta(weight).double(), expected, atol=1e-5)
    assert torch.allclose(r.T @ r, torch.eye(6, dtype=torch.float64), atol=1e-10)


def test_oft_alpha_clamps_the_skew_norm_to_alpha_times_out_dim() -> None:
    torch.manual_seed(1)
    blocks, weight = torch.randn(2, 2, 2), torch.randn(4, 3)
    alpha = 0.01
    q = blocks - blocks.transpose(1, 2)
    norm = q.flatten().norm()
    clamped = (blocks * (alpha * 4 + 1e-8) / (norm + 1e-8)).double()  # (B − Bᵀ)·c = cB − (cB)ᵀ
    r = torch.block_diag(*[cayley_by_solve(b) for b in clamped])
    module = parse_module(mw(oft_blocks=blocks, alpha=torch.tensor(alpha)))
    assert torch.allclose(module.weight_delta(weight).double(), r.T @ weight.double() - weight.double(), atol=1e-5)


def test_lycoris_oft_diag_blocks_are_used_as_rotations() -> None:
    torch.manual_seed(2)
    rotations = torch.stack([torch.linalg.qr(torch.randn(2, 2))[0] for _ in range(3)])
    weight = torch.randn(6, 2, 3, 3)  # a conv weight: rows are output channels
    module = parse_module(mw(oft_diag=rotations))
    expected = (torch.block_diag(*rotations).T @ weight.reshape(6, -1)).reshape(weight.shape) - weight
    assert torch.allclose(module.weight_delta(weight), expected, atol=1e-5)


def test_oft_rescale_multiplies_each_output_row() -> None:
    rotations = torch.eye(2).repeat(2, 1, 1)
    weight = torch.ones(4, 2)
    module = parse_module(mw(oft_diag=rotations, rescale=torch.tensor([1.0, 2.0, 3.0, 4.0])))
    assert torch.equal(module.weight_delta(weight) + weight, torch.tensor([[1.0] * 2, [2.0] * 2, [3.0] * 2, [4.0] * 2]))


def butterfly_permutation(rows: int, stride: int) -> torch.Tensor:
    """P with (P·x)[c·2s + k·2 + g] = x[c·2s + g·s + k] (rows regrouped (c g k) -> (c k g))."""
    p = torch.zeros(rows, rows, dtype=torch.float64)
    for c in range(rows // (2 * stride)):
        for g in range(2):
            for k in range(stride):
                p[c * 2 * stride + k * 2 + g, c * 2 * stride + g * stride + k] = 1.0
    return p


def test_boft_is_a_product_of_permuted_block_diagonal_rotations() -> None:
    torch.manual_seed(3)
    factors, num, size = 2, 2, 2
    blocks, weight = torch.randn(factors, num, size, size) * 0.3, torch.randn(4, 3)
    module = parse_module(mw(oft_blocks=blocks))
    total = torch.eye(4, dtype=torch.float64)
    for i in range(factors):
        p = butterfly_permutation(4, 2**i * size // 2)
        d = torch.block_diag(*[cayley_by_solve(b.double()) for b in blocks[i]])  # BOFT multiplies Rᵢ·rows
        total = p.T @ d @ p @ total
    expected = total @ weight.double() - weight.double()
    assert torch.allclose(module.weight_delta(weight).double(), expected, atol=1e-5)


def test_oft_blocks_that_do_not_tile_the_rows_are_refused() -> None:
    module = parse_module(mw(oft_blocks=torch.zeros(3, 2, 2)))
    with pytest.raises(LoraFormatError, match="do not tile 8 output rows"):
        module.delta_shape(torch.Size([8, 4]))


def test_glora_is_b2_b1_plus_w_a2_a1_with_scale_one() -> None:
    torch.manual_seed(4)
    out_dim, in_dim, rank = 5, 4, 2
    a1, a2 = torch.randn(rank, in_dim), torch.randn(in_dim, rank)
    b1, b2 = torch.randn(rank, in_dim), torch.randn(out_dim, rank)
    weight = torch.randn(out_dim, in_dim)
    module = parse_module(mw(**{"a1.weight": a1, "a2.weight": a2, "b1.weight": b1, "b2.weight": b2,
                                "alpha": torch.tensor(1.0)}))
    assert isinstance(module, GloraModule) and module.scale == 1.0
    expected = torch.zeros(out_dim, in_dim)
    for o in range(out_dim):
        for i in range(in_dim):
            expected[o, i] = sum(b2[o, r] * b1[r, i] for r in range(rank))
            expected[o, i] += sum(weight[o, j] * a2[j, r] * a1[r, i] for j in range(in_dim) for r in range(rank))
    assert module.delta_shape(weight.shape) == (out_dim, in_dim)
    assert torch.allclose(module.weight_delta(weight), expected, atol=1e-5)


def test_dora_rescales_each_input_column_of_the_merged_weight() -> None:
    torch.manual_seed(5)
    up, down, weight = torch.randn(3, 2), torch.randn(2, 4), torch.randn(3, 4)
    magnitude = torch.rand(1, 4) + 0.5
    module = parse_module(mw(**{"lora_up.weight": up, "lora_down.weight": down, "alpha": torch.tensor(1.0),
                                "dora_scale": magnitude}))
    merged = weight + up @ down * 0.5  # alpha / rank = 1 / 2, applied before the decomposition (A1111)
    expected = torch.zeros_like(weight)
    for i in range(4):
        column = merged[:, i]
        expected[:, i] = magnitude[0, i] * column / column.pow(2).sum().sqrt()
    assert torch.allclose(module.weight_delta(weight), expected - weight, atol=1e-5)
    patched = module.weight_delta(weight) + weight
    assert torch.allclose(patched.norm(dim=0), magnitude.flatten(), atol=1e-5)


def test_dora_on_a_conv_takes_the_norm_over_output_and_kernel_axes() -> None:
    torch.manual_seed(6)
    weight = torch.randn(4, 3, 3, 3)
    hada = {"hada_w1_a": torch.randn(4, 2), "hada_w1_b": torch.randn(2, 27), "hada_w2_a": torch.randn(4, 2),
            "hada_w2_b": torch.randn(2, 27), "dora_scale": torch.rand(1, 3, 1, 1) + 0.5}
    module = parse_module(mw(**hada))
    patched = module.weight_delta(weight) + weight
    for i in range(3):
        assert torch.allclose(patched[:, i].norm(), hada["dora_scale"][0, i, 0, 0], atol=1e-5)
    direction = weight + module.updown(weight).reshape(weight.shape)
    assert torch.allclose(patched[:, 1] / patched[:, 1].norm(), direction[:, 1] / direction[:, 1].norm(), atol=1e-5)


def test_kohya_oft_prefix_names_the_unet() -> None:
    assert split_key("oft_unet_down_blocks_0_attentions_0_proj_in.oft_blocks") == (
        "lora_unet_down_blocks_0_attentions_0_proj_in", "oft_blocks")
    groups, _ = group_keys({"oft_unet_mid_block_attentions_0_proj_in.oft_blocks": torch.zeros(2, 2, 2),
                            "oft_unet_mid_block_attentions_0_proj_in.alpha": torch.tensor(1.0)})
    assert set(groups["lora_unet_mid_block_attentions_0_proj_in"].parts) == {"oft_blocks", "alpha"}


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 6)
        self.conv = nn.Conv2d(6, 4, 3, padding=1)
        self.norm = nn.GroupNorm(2, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x).permute(0, 3, 1, 2)
        return self.norm(self.conv(h))


def _networks() -> list[tuple[LoadedLora, LoraRequest]]:
    torch.manual_seed(7)
    state = {
        "lora_unet_proj.lora_up.weight": torch.randn(6, 2), "lora_unet_proj.lora_down.weight": torch.randn(2, 4),
        "lora_unet_proj.dora_scale": torch.rand(1, 4) + 0.5,
        "lora_unet_conv.oft_blocks": torch.randn(2, 2, 2) * 0.3, "lora_unet_conv.alpha": torch.tensor(5.0),
        "lora_unet_norm.w_norm": torch.randn(4), "lora_unet_norm.b_norm": torch.randn(4),
    }
    glora = {"lora_unet_proj.a1.weight": torch.randn(2, 4), "lora_unet_proj.a2.weight": torch.randn(4, 2),
             "lora_unet_proj.b1.weight": torch.randn(2, 4), "lora_unet_proj.b2.weight": torch.randn(6, 2)}
    first = LoadedLora("first", Path("first.safetensors"), group_keys(state)[0])
    second = LoadedLora("second", Path("second.safetensors"), group_keys(glora)[0])
    return [(first, LoraRequest("first", 0.7, 0.7)), (second, LoraRequest("second", 0.4, 0.4))]


class _Index:
    """Resolves ``lora_unet_<attr>`` to the Tiny module ``<attr>`` (the real index needs a full UNet)."""

    def resolve(self, name: str) -> Target:
        attr = name.removeprefix("lora_unet_")
        return Target(f"model.diffusion_model.{attr}", f"model.diffusion_model.{attr}.weight",
                      f"model.diffusion_model.{attr}.bias")


def test_functional_forward_terms_give_the_merged_output() -> None:
    model = Tiny()
    x = torch.randn(1, 5, 5, 4)
    base = model(x)
    outputs = {}
    for functional in (False, True):
        patcher = ModelPatcher({"model.diffusion_model.": model})
        report = add_loras(patcher, _networks(), _Index(), functional=functional)  # type: ignore[arg-type]
        assert report.applied == ["first", "second"] and not report.messages
        assert bool(patcher.forward_terms) is functional and bool(patcher.weight_patches) is not functional
        with patcher, torch.no_grad():
            outputs[functional] = model(x)
    assert not torch.allclose(outputs[False], base, atol=1e-3)
    assert torch.allclose(outputs[True], outputs[False], atol=1e-4)
    assert torch.equal(model(x), base)
