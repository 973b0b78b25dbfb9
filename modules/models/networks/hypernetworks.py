"""Hypernetworks (A1111/NovelAI ``.pt`` format) applied to attention k/v inputs through patcher wrap points.

Format and math as A1111 ``modules/hypernetworks/hypernetwork.py`` (a1111-features.md §11.6):

* The file is a torch dict. Integer keys are context widths (320, 640, 768, 1024, 1280) mapping to
  ``[k_state_dict, v_state_dict]``, each the state dict of an MLP named ``linear.N.weight/bias``. Metadata:
  ``layer_structure`` (default ``[1, 2, 1]``; must start and end with 1), ``activation_func`` (``None``/``"linear"``
  = none, else a ``torch.nn`` activation by lower-cased class name, plus ``swish`` = Hardswish), ``is_layer_norm``,
  ``activate_output`` (default True), ``use_dropout``, ``dropout_structure``, ``last_layer_dropout``,
  ``weight_initialization``, ``name``, ``step``, ``sd_checkpoint``, ``sd_checkpoint_name``, ``optional_info``.
* The MLP for width ``d``: for each step ``i`` a ``Linear(d·ls[i], d·ls[i+1])``, then the activation (not after the
  last linear unless ``activate_output``), then ``LayerNorm`` if ``is_layer_norm``, then ``Dropout`` where the
  dropout structure is non-zero. Dropout is identity at inference but occupies a position, so the indices in the
  state dict only line up when it is kept. Old files name the layers ``linear1``/``linear2``.
* Each module computes ``x + mlp(x) · multiplier``. In every attention layer, the context fed to ``to_k`` goes
  through the k module and the context fed to ``to_v`` through the v module of the hypernetwork entry for the
  context's width (self-attention included, where the context is the hidden state); several hypernetworks chain.
  Computed in fp32 and cast back.
* ``<hypernet:name:multiplier>`` (default 1); the ``sd_hypernetwork`` setting adds
  ``<hypernet:name:extra_networks_default_multiplier>`` unless the prompt already names it.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from modules.models.patcher import ModelPatcher
from modules.models.safe_unpickle import CheckpointLoadError, load_torch_file

log = logging.getLogger(__name__)

KV_SUFFIXES = (".to_k", ".to_v")
DEFAULT_LAYER_STRUCTURE = (1.0, 2.0, 1.0)
OLD_KEY_NAMES = {
    "linear1.weight": "linear.0.weight", "linear1.bias": "linear.0.bias",
    "linear2.weight": "linear.1.weight", "linear2.bias": "linear.1.bias",
}


def _current_key_name(key: str) -> str:
    return OLD_KEY_NAMES.get(key, key)


class HypernetworkLoadError(ValueError):
    """A hypernetwork file could not be read or does not describe a valid network; names the file."""


def _activations() -> dict[str, type[nn.Module]]:
    table: dict[str, type[nn.Module]] = {
        name.lower(): cls
        for name, cls in inspect.getmembers(torch.nn.modules.activation, inspect.isclass)
        if issubclass(cls, nn.Module) and cls.__module__ == "torch.nn.modules.activation"
    }
    table.update({"linear": nn.Identity, "relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "elu": nn.ELU,
                  "swish": nn.Hardswish, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid})
    return table


def dropout_structure_for(layer_structure: Sequence[float], use_dropout: bool, last_layer_dropout: bool) -> list[float]:
    """A1111 ``parse_dropout_structure`` for files without an explicit ``dropout_structure``."""
    if not use_dropout:
        return [0.0] * len(layer_structure)
    values = [0.0] + [0.3] * (len(layer_structure) - 3)
    values.append(0.3 if last_layer_dropout else 0.0)
    values.append(0.0)
    return values


class HypernetworkModule(nn.Module):
    """The residual MLP of one width and one of k/v (layout in the module docstring)."""

    def __init__(self, dim: int, layer_structure: Sequence[float], activation: str | None, add_layer_norm: bool,
                 activate_output: bool, dropout_structure: Sequence[float]) -> None:
        super().__init__()
        if len(layer_structure) < 2 or layer_structure[0] != 1 or layer_structure[-1] != 1:
            raise ValueError(f"layer_structure {list(layer_structure)} must start and end with 1")
        activations = _activations()
        if activation not in (None, "linear") and activation not in activations:
            raise ValueError(f"unsupported activation function {activation!r}")
        layers: list[nn.Module] = []
        last = len(layer_structure) - 2
        for i in range(len(layer_structure) - 1):
            layers.append(nn.Linear(int(dim * layer_structure[i]), int(dim * layer_structure[i + 1])))
            if activation not in (None, "linear") and (i < last or activate_output):
                layers.append(activations[activation]())
            if add_layer_norm:
                layers.append(nn.LayerNorm(int(dim * layer_structure[i + 1])))
            if i + 1 < len(dropout_structure) and dropout_structure[i + 1] > 0:
                layers.append(nn.Dropout(p=float(dropout_structure[i + 1])))
        self.linear = nn.Sequential(*layers)

    def forward(self, x: Tensor, multiplier: float = 1.0) -> Tensor:
        """``x + mlp(x) · multiplier``."""
        return x + self.linear(x) * multiplier


@dataclass
class Hypernetwork:
    """A loaded hypernetwork: ``layers[width] = (k_module, v_module)`` plus its metadata."""

    name: str
    path: Path | None
    layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]]
    metadata: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device) -> Hypernetwork:
        """Move every module (fp32 stays fp32, as A1111 computes hypernetworks in fp32)."""
        for k_module, v_module in self.layers.values():
            k_module.to(device)
            v_module.to(device)
        return self


def hypernetwork_from_dict(data: Mapping[Any, Any], name: str, path: Path | None = None) -> Hypernetwork:
    """Build a :class:`Hypernetwork` from the dict stored in a ``.pt`` file."""
    where = str(path) if path is not None else name
    layer_structure = [float(v) for v in (data.get("layer_structure") or DEFAULT_LAYER_STRUCTURE)]
    activation = data.get("activation_func")
    add_layer_norm = bool(data.get("is_layer_norm", False))
    activate_output = bool(data.get("activate_output", True))
    dropout = data.get("dropout_structure")
    use_dropout = bool(dropout is not None and any(dropout)) or bool(data.get("use_dropout", False))
    if dropout is None:
        dropout = dropout_structure_for(layer_structure, use_dropout, bool(data.get("last_layer_dropout", False)))
    layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]] = {}
    for size, pair in data.items():
        if not isinstance(size, int) or isinstance(size, bool):
            continue
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise HypernetworkLoadError(f"{where}: entry {size} must be a [k, v] pair of state dicts")
        modules = []
        for part, state in zip("kv", pair, strict=True):
            try:
                module = HypernetworkModule(size, layer_structure, activation, add_layer_norm, activate_output, dropout)
                fixed = {_current_key_name(k): v for k, v in dict(state).items()}
                module.load_state_dict(fixed)
            except (ValueError, RuntimeError, TypeError) as error:
                raise HypernetworkLoadError(f"{where}: width {size} {part} module does not match its metadata "
                                            f"({error})") from None
            module.eval().requires_grad_(False)
            modules.append(module)
        layers[size] = (modules[0], modules[1])
    if not layers:
        raise HypernetworkLoadError(f"{where}: no layers (integer context-width keys) found")
    metadata = {k: v for k, v in data.items() if isinstance(k, str)}
    metadata.update(layer_structure=layer_structure, dropout_structure=list(dropout), use_dropout=use_dropout)
    return Hypernetwork(name, path, layers, metadata)


def describe_hypernetwork(network: Hypernetwork) -> str:
    """The extra facts A1111 prints at load with `print_hypernet_extra`: optional info, layer structure, activation,
    weight initialization, layer norm, dropout use, last-layer activation and dropout structure."""
    meta = network.metadata
    lines = [f"  INFO:\n {meta['optional_info']}\n"] if meta.get("optional_info") is not None else []
    lines += [f"  Layer structure: {meta.get('layer_structure')}",
              f"  Activation function: {meta.get('activation_func')}",
              f"  Weight initialization: {meta.get('weight_initialization')}",
              f"  Layer norm: {bool(meta.get('is_layer_norm', False))}",
              f"  Dropout usage: {meta.get('use_dropout')}",
              f"  Activate last layer: {bool(meta.get('activate_output', True))}",
              f"  Dropout structure: {meta.get('dropout_structure')}"]
    return "\n".join(lines)


def load_hypernetwork(path: str | os.PathLike[str], *, safe_unpickle: bool = True) -> Hypernetwork:
    """Read a hypernetwork ``.pt`` file; its name is the file stem (the name used in ``<hypernet:…>``)."""
    path = Path(path)
    try:
        data = load_torch_file(path, safe=safe_unpickle)
    except CheckpointLoadError as error:
        raise HypernetworkLoadError(str(error)) from None
    except Exception as error:  # pickle/torch raise many types
        raise HypernetworkLoadError(f"{path}: not a readable hypernetwork ({type(error).__name__}: {error})") from None
    if not isinstance(data, Mapping):
        raise HypernetworkLoadError(f"{path}: expected a dict, found {type(data).__name__}")
    return hypernetwork_from_dict(data, path.stem, path)


def list_hypernetworks(dirs: Iterable[str | os.PathLike[str]]) -> dict[str, Path]:
    """``{stem: path}`` of ``*.pt`` files under ``dirs`` (recursive, case-insensitive order; "None" excluded)."""
    found: list[Path] = []
    for root in dirs:
        if Path(root).is_dir():
            found.extend(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() == ".pt")
    return {p.stem: p for p in sorted(found, key=lambda p: str(p).lower()) if p.stem != "None"}


def with_default_hypernetwork(requests: Sequence[tuple[str, float]], sd_hypernetwork: str | None,
                              default_multiplier: float) -> tuple[list[tuple[str, float]], str]:
    """Add the ``sd_hypernetwork`` setting's network unless the prompt names it; returns the requests and the text
    A1111 appends to each prompt (``<hypernet:name:multiplier>``, or "")."""
    result = list(requests)
    if not sd_hypernetwork or sd_hypernetwork == "None" or any(name == sd_hypernetwork for name, _ in result):
        return result, ""
    result.append((sd_hypernetwork, default_multiplier))
    return result, f"<hypernet:{sd_hypernetwork}:{default_multiplier:g}>"


def parse_hypernet_args(args: Sequence[str] | str) -> tuple[str, float]:
    """``name[:multiplier]`` from the arguments of a ``<hypernet:…>`` tag (multiplier default 1)."""
    items = args.split(":") if isinstance(args, str) else list(args)
    if not items or not items[0].strip():
        raise ValueError("<hypernet:…>: the hypernetwork name is missing")
    try:
        return items[0].strip(), float(items[1]) if len(items) > 1 else 1.0
    except ValueError:
        raise ValueError(f"<hypernet:{':'.join(items)}>: the multiplier must be a number") from None


def _kv_fn(chain: Sequence[tuple[Hypernetwork, float]], slot: int) -> Callable[[Tensor], Tensor]:
    def transform(context: Tensor) -> Tensor:
        width = context.shape[-1]
        out = context
        for hypernetwork, multiplier in chain:
            pair = hypernetwork.layers.get(width)
            if pair is None:
                continue
            module = pair[slot]
            first = next(module.parameters())
            if first.device != context.device:
                module.to(context.device)
            out = module(out.float(), multiplier).to(context.dtype)
        return out

    return transform


def add_hypernetworks(patcher: ModelPatcher, hypernetworks: Sequence[tuple[Hypernetwork, float]],
                      module_prefix: str = "model.diffusion_model.") -> int:
    """Wrap the inputs of every attention ``to_k`` / ``to_v`` under ``module_prefix``; returns how many.

    Widths without an entry in a hypernetwork pass through unchanged, exactly as in A1111.
    """
    chain = [(h, m) for h, m in hypernetworks if m != 0]
    if not chain:
        return 0
    count = 0
    source = "hypernetworks:" + ",".join(h.name for h, _ in chain)
    for key, _module in patcher.iter_modules():
        if key.startswith(module_prefix) and key.endswith(KV_SUFFIXES):
            slot = 0 if key.endswith(".to_k") else 1
            patcher.add_input_wrap(key, _kv_fn(chain, slot), source=source)
            count += 1
    return count
