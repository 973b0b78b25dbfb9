"""Hypernetworks: the A1111 .pt layout loads (layer indices incl. dropout/layer norm), k/v inputs change exactly as a
hand computation says, several chain, widths without an entry pass through, and restore removes the hooks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modules.models.networks.hypernetworks import (
    HypernetworkLoadError,
    HypernetworkModule,
    add_hypernetworks,
    dropout_structure_for,
    list_hypernetworks,
    load_hypernetwork,
    parse_hypernet_args,
    with_default_hypernetwork,
)
from modules.models.patcher import ModelPatcher

CTX = 6   # cross-attention context width
INNER = 8  # self-attention width

ATTN2 = "input_blocks.1.1.transformer_blocks.0.attn2"
ATTN1 = "input_blocks.1.1.transformer_blocks.0.attn1"


def tiny_unet() -> nn.Module:
    torch.manual_seed(0)
    root = nn.Module()
    for path, module in {
        f"{ATTN1}.to_k": nn.Linear(INNER, INNER, bias=False),
        f"{ATTN1}.to_v": nn.Linear(INNER, INNER, bias=False),
        f"{ATTN2}.to_k": nn.Linear(CTX, INNER, bias=False),
        f"{ATTN2}.to_v": nn.Linear(CTX, INNER, bias=False),
        f"{ATTN2}.to_q": nn.Linear(INNER, INNER, bias=False),
    }.items():
        node = root
        *parents, leaf = path.split(".")
        for part in parents:
            if part not in node._modules:
                node.add_module(part, nn.Module())
            node = node._modules[part]
        node.add_module(leaf, module)
    return root


def mlp_state(dim: int, hidden: int, seed: int) -> dict[str, torch.Tensor]:
    """State dict of a [1, 2, 1] relu MLP without layer norm: ``linear.0`` then (ReLU at 1) ``linear.2``."""
    g = torch.Generator().manual_seed(seed)
    return {
        "linear.0.weight": torch.randn(hidden, dim, generator=g) * 0.3, "linear.0.bias": torch.randn(hidden, generator=g),
        "linear.2.weight": torch.randn(dim, hidden, generator=g) * 0.3, "linear.2.bias": torch.randn(dim, generator=g),
    }


def save_hypernetwork(path: Path, seed: int = 0, **meta: object) -> tuple[Path, dict]:
    data: dict[object, object] = {
        CTX: [mlp_state(CTX, 2 * CTX, seed), mlp_state(CTX, 2 * CTX, seed + 1)],
        "layer_structure": [1, 2, 1], "activation_func": "relu", "is_layer_norm": False,
        "weight_initialization": "Normal", "use_dropout": False, "activate_output": False,
        "last_layer_dropout": False, "name": "stored-name", "step": 1234, "sd_checkpoint": "abcdef0123",
        "sd_checkpoint_name": "model",
    }
    data.update(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return path, data


def by_hand(state: dict[str, torch.Tensor], x: torch.Tensor, multiplier: float) -> torch.Tensor:
    hidden = F.relu(x @ state["linear.0.weight"].T + state["linear.0.bias"])
    return x + (hidden @ state["linear.2.weight"].T + state["linear.2.bias"]) * multiplier


def test_kv_inputs_follow_the_hand_computation_and_restore_removes_hooks(tmp_path: Path) -> None:
    path, data = save_hypernetwork(tmp_path / "hn" / "anime.pt")
    hypernetwork = load_hypernetwork(path)
    assert hypernetwork.name == "anime" and hypernetwork.metadata["step"] == 1234
    unet = tiny_unet()
    to_k, to_v = unet.get_submodule(f"{ATTN2}.to_k"), unet.get_submodule(f"{ATTN2}.to_v")
    self_k = unet.get_submodule(f"{ATTN1}.to_k")
    context = torch.randn(2, 5, CTX)
    hidden = torch.randn(2, 7, INNER)
    plain_k, plain_v, plain_self = to_k(context), to_v(context), self_k(hidden)
    patcher = ModelPatcher({"model.diffusion_model.": unet})
    assert add_hypernetworks(patcher, [(hypernetwork, 0.7)]) == 4  # every to_k / to_v, self-attention included
    with patcher:
        k_state, v_state = data[CTX]
        assert torch.allclose(to_k(context), by_hand(k_state, context, 0.7) @ to_k.weight.T, atol=1e-5)
        assert torch.allclose(to_v(context), by_hand(v_state, context, 0.7) @ to_v.weight.T, atol=1e-5)
        assert torch.equal(self_k(hidden), plain_self)  # no entry for width 8: unchanged
        assert not torch.allclose(to_k(context), plain_k)
    for module in (to_k, to_v, self_k):
        assert not module._forward_pre_hooks
    assert torch.equal(to_k(context), plain_k) and torch.equal(to_v(context), plain_v)


def test_several_hypernetworks_chain_and_half_precision_inputs(tmp_path: Path) -> None:
    first = load_hypernetwork(save_hypernetwork(tmp_path / "a.pt", seed=0)[0])
    second_path, second_data = save_hypernetwork(tmp_path / "b.pt", seed=10)
    second = load_hypernetwork(second_path)
    unet = tiny_unet()
    to_k = unet.get_submodule(f"{ATTN2}.to_k")
    context = torch.randn(1, 3, CTX)
    patcher = ModelPatcher({"model.diffusion_model.": unet})
    add_hypernetworks(patcher, [(first, 1.0), (second, 0.5)])
    first_data = torch.load(tmp_path / "a.pt")
    seen: list[torch.Tensor] = []
    with patcher:
        # Registered after apply(), so it runs after the hypernetwork hook and sees what to_k receives.
        observer = to_k.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        to_k(context)
        expected = by_hand(second_data[CTX][0], by_hand(first_data[CTX][0], context, 1.0), 0.5)
        assert torch.allclose(seen[-1], expected, atol=1e-5)
        half = context.to(torch.bfloat16)
        to_k.to(torch.bfloat16)(half)
        assert seen[-1].dtype == torch.bfloat16
        assert torch.allclose(seen[-1].float(), expected, atol=0.1)
        observer.remove()


def test_layer_indices_with_activation_layer_norm_and_dropout() -> None:
    # [1, 2, 2, 1] relu + layer norm + dropout (not on the last layer), activate_output True:
    # Linear0 ReLU1 LN2 Dropout3 | Linear4 ReLU5 LN6 | Linear7 ReLU8 LN9
    dropout = dropout_structure_for([1, 2, 2, 1], use_dropout=True, last_layer_dropout=False)
    assert dropout == [0.0, 0.3, 0.0, 0.0]
    module = HypernetworkModule(4, [1, 2, 2, 1], "relu", True, True, dropout)
    assert [k for k in module.state_dict() if k.endswith("weight")] == [
        "linear.0.weight", "linear.2.weight", "linear.4.weight", "linear.6.weight", "linear.7.weight", "linear.9.weight",
    ]
    assert isinstance(module.linear[3], nn.Dropout) and isinstance(module.linear[8], nn.ReLU)
    assert dropout_structure_for([1, 2, 2, 1], True, True) == [0.0, 0.3, 0.3, 0.0]
    swish = HypernetworkModule(4, [1, 2, 1], "swish", False, False, [0, 0, 0])
    assert isinstance(swish.linear[1], nn.Hardswish) and len(swish.linear) == 3


def test_old_key_names_and_explicit_dropout_structure(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(3)
    old = {"linear1.weight": torch.randn(12, CTX, generator=g), "linear1.bias": torch.randn(12, generator=g),
           "linear2.weight": torch.randn(CTX, 12, generator=g), "linear2.bias": torch.randn(CTX, generator=g)}
    torch.save({CTX: [old, old]}, tmp_path / "nai.pt")
    hypernetwork = load_hypernetwork(tmp_path / "nai.pt")
    k_module = hypernetwork.layers[CTX][0]
    x = torch.randn(2, CTX)
    hidden = x @ old["linear1.weight"].T + old["linear1.bias"]  # no activation: "activation_func" absent
    assert torch.allclose(k_module(x, 1.0), x + hidden @ old["linear2.weight"].T + old["linear2.bias"], atol=1e-5)
    state = {"linear.0.weight": torch.randn(12, CTX), "linear.0.bias": torch.randn(12),
             "linear.3.weight": torch.randn(CTX, 12), "linear.3.bias": torch.randn(CTX)}
    torch.save({CTX: [state, state], "activation_func": "relu", "dropout_structure": [0, 0.1, 0],
                "activate_output": False}, tmp_path / "drop.pt")
    dropped = load_hypernetwork(tmp_path / "drop.pt")
    assert dropped.metadata["use_dropout"] is True
    assert isinstance(dropped.layers[CTX][0].linear[2], nn.Dropout)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(HypernetworkLoadError, match=r"junk\.pt"):
        load_hypernetwork(tmp_path / "junk.pt")
    save_hypernetwork(tmp_path / "mismatch.pt", layer_structure=[1, 3, 1])
    with pytest.raises(HypernetworkLoadError, match=r"mismatch\.pt: width 6 k module does not match"):
        load_hypernetwork(tmp_path / "mismatch.pt")
    torch.save({"name": "x"}, tmp_path / "empty.pt")
    with pytest.raises(HypernetworkLoadError, match="no layers"):
        load_hypernetwork(tmp_path / "empty.pt")
    save_hypernetwork(tmp_path / "act.pt", activation_func="nonsense")
    with pytest.raises(HypernetworkLoadError, match="unsupported activation"):
        load_hypernetwork(tmp_path / "act.pt")


def test_listing_syntax_and_sd_hypernetwork_setting(tmp_path: Path) -> None:
    save_hypernetwork(tmp_path / "b" / "Zeta.pt")
    save_hypernetwork(tmp_path / "alpha.pt")
    save_hypernetwork(tmp_path / "None.pt")
    (tmp_path / "alpha.pt.optim").write_bytes(b"")
    assert list(list_hypernetworks([tmp_path, tmp_path / "missing"])) == ["alpha", "Zeta"]
    assert parse_hypernet_args("alpha") == ("alpha", 1.0)
    assert parse_hypernet_args("alpha:0.6") == ("alpha", 0.6)
    with pytest.raises(ValueError, match=re.escape("<hypernet:alpha:x>")):
        parse_hypernet_args("alpha:x")
    requests, extra = with_default_hypernetwork([("Zeta", 0.5)], "alpha", 1.0)
    assert requests == [("Zeta", 0.5), ("alpha", 1.0)] and extra == "<hypernet:alpha:1>"
    assert with_default_hypernetwork([("alpha", 0.3)], "alpha", 1.0) == ([("alpha", 0.3)], "")
    assert with_default_hypernetwork([], "None", 1.0) == ([], "")
