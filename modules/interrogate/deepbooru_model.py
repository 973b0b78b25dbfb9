"""The DeepDanbooru tagger network (`model-resnet_custom_v3.pt`) in its original state-dict key layout.

Architecture facts (A1111 `modules/deepbooru_model.py`, a PyTorch port of KichangKim's DeepDanbooru
"resnet_custom_v3", see github.com/AUTOMATIC1111/TorchDeepDanbooru): 179 convolutions named `n_Conv_0` …
`n_Conv_178` (batch norm folded into the conv biases; only the classifier `n_Conv_178` has no bias), plus a
`tags` entry in the state dict holding the tag names. Input is NHWC RGB in [0, 1] at 512×512.

- stem: pad (left 2, right 3, top 2, bottom 3) with 0, 7×7 conv stride 2 (3 → w), ReLU, pad right/bottom by 1
  with -inf, 3×3 max-pool stride 2;
- bottleneck blocks: 1×1 reduce, ReLU, 3×3 (padded 1 on every side at stride 1, right/bottom only at stride 2),
  ReLU, 1×1 expand, add the shortcut, ReLU;
- stages (w = 64 in the released model): 3 blocks (mid w, out 4w), 8 blocks (2w, 8w), 20 + 20 blocks (4w, 16w)
  with a second stride-2 block between the two runs of 20, 3 blocks (8w, 32w), 3 blocks (16w, 64w);
- each stage's first block has a 1×1 projection shortcut numbered before its main path; the mid-stage stride-2
  block of stage 3 numbers its projection (`n_Conv_100`, 16w → 16w stride 2) after its main path;
- head: 1×1 conv 64w → number of tags (9176), global average pool, sigmoid.

The widths here are read from the weights (`n_Conv_0` output channels, `n_Conv_178` output channels), so tests
can use a narrow random-weight network with the same key names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DeepDanbooruModel", "block_layout", "conv_specs"]


@dataclass(frozen=True)
class Block:
    """One bottleneck block: conv indices of reduce/3×3/expand, the projection (or None), and the 3×3 stride."""

    reduce: int
    conv3: int
    expand: int
    projection: int | None
    stride: int


def block_layout() -> list[Block]:
    """The 57 bottleneck blocks in forward order, with the conv index numbering of the original model."""
    blocks: list[Block] = []
    index = 1

    def first(stride: int) -> None:
        nonlocal index  # projection numbered first, then the main path
        blocks.append(Block(index + 1, index + 2, index + 3, index, stride))
        index += 4

    def plain(count: int) -> None:
        nonlocal index
        for _ in range(count):
            blocks.append(Block(index, index + 1, index + 2, None, 1))
            index += 3

    first(1)
    plain(2)          # stage 1: 3 blocks
    first(2)
    plain(7)          # stage 2: 8 blocks
    first(2)
    plain(19)         # stage 3a: 20 blocks
    blocks.append(Block(index, index + 1, index + 2, index + 3, 2))  # projection numbered after the main path
    index += 4
    plain(19)         # stage 3b: 20 blocks
    first(2)
    plain(2)          # stage 4: 3 blocks
    first(2)
    plain(2)          # stage 5: 3 blocks
    assert index == 178
    return blocks


_STAGE_OF_BLOCK = [0] * 3 + [1] * 8 + [2] * 40 + [3] * 3 + [4] * 3
_MID = (1, 2, 4, 8, 16)
_OUT = (4, 8, 16, 32, 64)


def conv_specs(width: int = 64, tags: int = 9176) -> dict[int, tuple[int, int, int, int, bool]]:
    """Conv index → (in channels, out channels, kernel, stride, bias) for base width `width` (64 = released)."""
    specs: dict[int, tuple[int, int, int, int, bool]] = {0: (3, width, 7, 2, True)}
    channels = width
    for stage, block in zip(_STAGE_OF_BLOCK, block_layout(), strict=True):
        mid, out = _MID[stage] * width, _OUT[stage] * width
        if block.projection is not None:
            specs[block.projection] = (channels, out, 1, block.stride, True)
        specs[block.reduce] = (channels, mid, 1, 1, True)
        specs[block.conv3] = (mid, mid, 3, block.stride, True)
        specs[block.expand] = (mid, out, 1, 1, True)
        channels = out
    specs[178] = (channels, tags, 1, 1, False)
    return specs


class DeepDanbooruModel(nn.Module):
    """ResNet-style multi-label tagger; `forward` takes NHWC images in [0, 1] and returns per-tag sigmoid scores."""

    def __init__(self, width: int = 64, tag_count: int = 9176, tags: list[str] | None = None) -> None:
        super().__init__()
        self.tags: list[str] = list(tags or [])
        self.blocks = block_layout()
        for index, (cin, cout, kernel, stride, bias) in sorted(conv_specs(width, tag_count).items()):
            self.add_module(f"n_Conv_{index}", nn.Conv2d(cin, cout, kernel, stride=stride, bias=bias))
        self.n_MaxPool_0 = nn.MaxPool2d(kernel_size=3, stride=2)

    def conv(self, index: int) -> nn.Conv2d:
        """The convolution `n_Conv_<index>`."""
        module = getattr(self, f"n_Conv_{index}")
        assert isinstance(module, nn.Conv2d)
        return module

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Any]) -> DeepDanbooruModel:
        """Build a model sized from the weights and load them (strictly); `tags` comes from the `tags` entry."""
        try:
            width = int(state_dict["n_Conv_0.weight"].shape[0])
            tag_count = int(state_dict["n_Conv_178.weight"].shape[0])
        except (KeyError, AttributeError, IndexError) as exc:
            raise ValueError(f"not a DeepDanbooru state dict (missing or malformed {exc})") from None
        tags = [str(t) for t in state_dict.get("tags", [])]
        if len(tags) != tag_count:
            raise ValueError(f"the DeepDanbooru file lists {len(tags)} tags for {tag_count} outputs")
        model = cls(width, tag_count, tags)
        model.load_state_dict({k: v for k, v in state_dict.items() if k != "tags"}, strict=True)
        return model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """`(N, H, W, 3)` in [0, 1] → `(N, tags)` probabilities."""
        x = images.permute(0, 3, 1, 2).to(self.conv(0).weight.dtype)
        x = F.relu(self.conv(0)(F.pad(x, [2, 3, 2, 3], value=0.0)))
        x = self.n_MaxPool_0(F.pad(x, [0, 1, 0, 1], value=float("-inf")))
        for block in self.blocks:
            shortcut = x if block.projection is None else self.conv(block.projection)(x)
            h = F.relu(self.conv(block.reduce)(x))
            h = F.pad(h, [1, 1, 1, 1] if block.stride == 1 else [0, 1, 0, 1], value=0.0)
            h = F.relu(self.conv(block.conv3)(h))
            x = F.relu(self.conv(block.expand)(h) + shortcut)
        logits = self.conv(178)(x).mean(dim=(2, 3))
        return torch.sigmoid(logits)
