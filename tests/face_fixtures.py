"""RetinaFace and GFPGAN weights for tests, in the exact key layouts of the released files.

* `random_retinaface` — facexlib's `detection_Resnet50_Final.pth` layout (`body.` = a torchvision ResNet with
  bottlenecks, `fpn.`, `ssh1..3.`, `ClassHead/BboxHead/LandmarkHead.0..2.conv1x1`), narrow and one block per layer,
  random weights and BatchNorm statistics; also returns the torchvision trunk it was taken from (the reference).
* `firing_retinaface` — the same layout with weights chosen so the detector fires: the trunk carries the
  brightness (or, with `always=True`, a constant) through channel 0 to the stride-32 level, whose class head
  scores the 256-px anchor as a face; the box head shrinks it to `box` pixels and the landmark head puts the five
  points where FFHQ's template has them. Everything else is zero, BatchNorms are identities.
* `random_gfpgan_file` — full-size GFPGANv1Clean (spandrel's architecture, the layout of GFPGANv1.4.pth) with random
  weights stored in fp16.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchvision.models.resnet import Bottleneck, ResNet

FPN_WIDTH = 8
TEMPLATE = ((192.98138, 239.94708), (318.90277, 240.1936), (256.63416, 314.01935), (201.26117, 371.41043),
            (313.08905, 371.15118))


def tiny_trunk(seed: int = 0) -> ResNet:
    """torchvision ResNet-50 structure with one bottleneck per layer and narrow bottlenecks (width_per_group 8)."""
    torch.manual_seed(seed)
    net = ResNet(Bottleneck, [1, 1, 1, 1], width_per_group=8)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    return net.eval()


def _heads_and_neck(sd: dict[str, torch.Tensor], init: str, g: torch.Generator) -> None:
    width = FPN_WIDTH

    def conv_bn(key: str, cin: int, cout: int, k: int) -> None:
        sd[f"{key}.0.weight"] = (torch.randn(cout, cin, k, k, generator=g) / math.sqrt(cin * k * k)
                                 if init == "random" else torch.zeros(cout, cin, k, k))
        sd[f"{key}.1.weight"] = torch.ones(cout)
        sd[f"{key}.1.bias"] = torch.zeros(cout)
        sd[f"{key}.1.running_mean"] = torch.zeros(cout)
        sd[f"{key}.1.running_var"] = torch.ones(cout)
        sd[f"{key}.1.num_batches_tracked"] = torch.tensor(0)

    for n, cin in zip((1, 2, 3), (512, 1024, 2048), strict=True):
        conv_bn(f"fpn.output{n}", cin, width, 1)
    conv_bn("fpn.merge1", width, width, 3)
    conv_bn("fpn.merge2", width, width, 3)
    for level in (1, 2, 3):
        conv_bn(f"ssh{level}.conv3X3", width, width // 2, 3)
        conv_bn(f"ssh{level}.conv5X5_1", width, width // 4, 3)
        conv_bn(f"ssh{level}.conv5X5_2", width // 4, width // 4, 3)
        conv_bn(f"ssh{level}.conv7X7_2", width // 4, width // 4, 3)
        conv_bn(f"ssh{level}.conv7x7_3", width // 4, width // 4, 3)
    for head, per in (("ClassHead", 4), ("BboxHead", 8), ("LandmarkHead", 20)):
        for level in range(3):
            scale = 1.0 if init == "random" else 0.0
            sd[f"{head}.{level}.conv1x1.weight"] = torch.randn(per, width, 1, 1, generator=g) * scale
            sd[f"{head}.{level}.conv1x1.bias"] = torch.randn(per, generator=g) * 0.1 * scale


def random_retinaface(seed: int = 0) -> tuple[dict[str, torch.Tensor], ResNet]:
    """(state dict in facexlib's layout with random weights, the torchvision trunk inside it)."""
    trunk = tiny_trunk(seed)
    sd = {f"body.{k}": v.clone() for k, v in trunk.state_dict().items() if not k.startswith("fc.")}
    _heads_and_neck(sd, "random", torch.Generator().manual_seed(seed + 1))
    return sd, trunk


def firing_retinaface(box: float = 160.0, always: bool = False, face: float | None = None
                      ) -> dict[str, torch.Tensor]:
    """Weights that detect one face per bright blob (or, with `always`, at the brightest stride-32 cell); boxes are
    `box` detector-input pixels wide (a huge box makes NMS keep one face), landmarks span a `face`-pixel face."""
    face = box if face is None else face
    trunk = tiny_trunk(0)
    sd = {f"body.{k}": torch.zeros_like(v) for k, v in trunk.state_dict().items() if not k.startswith("fc.")}
    for key in sd:
        if key.endswith("running_var") or (key.split(".")[-2].startswith("bn") and key.endswith("weight")):
            sd[key] = torch.ones_like(sd[key])
        if ".downsample.1." in key and (key.endswith("weight") or key.endswith("running_var")):
            sd[key] = torch.ones_like(sd[key])
    if always:
        sd["body.conv1.weight"][0, :, 3, 3] = 0.2 / 3  # a little content, so the brightest cell wins NMS
        sd["body.bn1.bias"][0] = 40.0
    else:
        sd["body.conv1.weight"][0, :, 3, 3] = 1.0 / 3  # mean of B, G, R minus the mean pixel
    for n in range(1, 5):
        sd[f"body.layer{n}.0.downsample.0.weight"][0, 0] = 1.0
    _heads_and_neck(sd, "zero", torch.Generator().manual_seed(0))
    sd["fpn.output3.0.weight"][0, 0] = 1.0
    sd["fpn.merge1.0.weight"][0, 0, 1, 1] = 1.0
    sd["fpn.merge2.0.weight"][0, 0, 1, 1] = 1.0
    for level in (1, 2, 3):
        sd[f"ssh{level}.conv3X3.0.weight"][0, 0, 1, 1] = 1.0
    for level in range(3):  # anchors: background unless the stride-32 head says otherwise
        sd[f"ClassHead.{level}.conv1x1.bias"][0] = 8.0
        sd[f"ClassHead.{level}.conv1x1.bias"][2] = 8.0
    if always:
        sd["ClassHead.2.conv1x1.weight"][1, 0] = 0.02
        sd["ClassHead.2.conv1x1.bias"][0] = 0.0
        sd["ClassHead.2.conv1x1.bias"][1] = 2.0
    else:
        sd["ClassHead.2.conv1x1.weight"][1, 0] = 0.1
        sd["ClassHead.2.conv1x1.bias"][0] = 0.0
        sd["ClassHead.2.conv1x1.bias"][1] = -6.0
    shrink = math.log(box / 256.0) / 0.2
    sd["BboxHead.2.conv1x1.bias"][2] = shrink
    sd["BboxHead.2.conv1x1.bias"][3] = shrink
    for k, (tx, ty) in enumerate(TEMPLATE):  # template offsets from the face centre, at `box` pixels per face
        sd["LandmarkHead.2.conv1x1.bias"][2 * k] = (tx - 256.0) * face / 512.0 / 25.6
        sd["LandmarkHead.2.conv1x1.bias"][2 * k + 1] = (ty - 256.0) * face / 512.0 / 25.6
    return sd


def random_gfpgan_file(path: Path, seed: int = 0) -> Path:
    """Save a random-weight GFPGANv1Clean (512, channel multiplier 2: GFPGANv1.4's layout) in fp16 at `path`."""
    from spandrel.architectures.GFPGAN import GFPGAN

    torch.manual_seed(seed)
    net = GFPGAN(out_size=512, num_style_feat=512, channel_multiplier=2, decoder_load_path=None, fix_decoder=False,
                 num_mlp=8, input_is_latent=True, different_w=True, narrow=1, sft_half=True)
    torch.save({"params_ema": {k: v.half() for k, v in net.state_dict().items()}}, path)
    return path
