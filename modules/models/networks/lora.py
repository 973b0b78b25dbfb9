"""LoRA / LyCORIS networks: discovery in ``models/Lora``, ``<lora:…>`` arguments, loading, and patching a model.

Behaviour follows A1111's built-in Lora extension (a1111-features.md §11.5):

* Files ``.pt``, ``.ckpt``, ``.safetensors`` anywhere under the Lora dirs (``--lora-dir`` and the LyCORIS backcompat
  dir). Name = file stem; alias = safetensors metadata ``ss_output_name`` (else the name); an alias shared by two
  files is "forbidden" and only the names work. SD version from metadata: ``ss_base_model_version`` ``sdxl_…`` ->
  SDXL, ``ss_v2 == "True"`` -> SD2, any other metadata -> SD1.
* ``<lora:name:te:unet:dyn>`` with named ``te=``, ``unet=``, ``dyn=``: te multiplier default 1, unet multiplier
  defaults to te, ``dyn`` truncates DyLoRA ranks (``extra_networks_lora.py``).
* Application: for each network module the matching model weight gets ``updown * scale * multiplier`` added (text
  encoder modules take the te multiplier, UNet modules the unet multiplier); several networks add up. Keys that match
  no module are reported by name and skipped; a module whose delta cannot fit its weight makes the whole network
  be skipped with a message naming the file, and generation continues.
* ``lora_functional`` ("use old method …", A1111 ``networks.network_forward``): instead of merging, each patched
  ``Linear``/``Conv2d``/``LayerNorm``/``GroupNorm`` gets a forward term ``y + op(x, ΔW, Δb)`` with the same
  ``op`` as the layer (``F.linear``, ``F.conv2d`` with its stride/padding, ``F.layer_norm``, ``F.group_norm``); the
  ops are linear in the weight, so both paths give the same output up to float rounding. Fused q/k/v projections
  (``MultiheadAttention``) have no forward term in A1111 either and stay merged.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modules.models.checkpoints import natural_sort_key
from modules.models.hashes import HashCache
from modules.models.networks.embeddings import Embedding, EmbeddingLoadError, embedding_from_data
from modules.models.networks.hashes import lora_hash, shorthash
from modules.models.networks.lora_formats import (
    LoraFormatError,
    ModuleWeights,
    NetworkModule,
    fit_delta,
    group_keys,
    parse_module,
)
from modules.models.networks.names import ModuleNameIndex, Target
from modules.models.patcher import ForwardTermFn, ModelPatcher
from modules.models.state_dict_io import CheckpointLoadError, read_safetensors_metadata, read_state_dict

log = logging.getLogger(__name__)

LORA_EXTENSIONS = (".pt", ".ckpt", ".safetensors")


@dataclass
class LoraOnDisk:
    """A network file found on disk (A1111 ``NetworkOnDisk``)."""

    name: str
    path: Path
    metadata: dict[str, str] = field(default_factory=dict)
    hash: str | None = None

    @property
    def alias(self) -> str:
        """``ss_output_name`` from the metadata, else the file stem."""
        return self.metadata.get("ss_output_name") or self.name

    @property
    def sd_version(self) -> str:
        """``SDXL`` / ``SD2`` / ``SD1`` from kohya metadata, ``Unknown`` without metadata."""
        if str(self.metadata.get("ss_base_model_version", "")).startswith("sdxl_"):
            return "SDXL"
        if str(self.metadata.get("ss_v2", "")) == "True":
            return "SD2"
        return "SD1" if self.metadata else "Unknown"

    def read_hash(self, cache: HashCache | None = None) -> str:
        """Compute (or take from cache/metadata) the full hash; see :func:`~.hashes.lora_hash`."""
        if not self.hash:
            self.hash = lora_hash(self.path, self.metadata, cache=cache, name=self.name)
        return self.hash

    @property
    def shorthash(self) -> str:
        """First 12 hex digits of the hash, "" until :meth:`read_hash` ran."""
        return shorthash(self.hash)


def list_lora_files(dirs: Iterable[str | os.PathLike[str]], *, include_hidden: bool = False) -> list[Path]:
    """Network files under ``dirs`` (recursive), naturally sorted by path."""
    found: list[Path] = []
    for root in dirs:
        root_path = Path(root)
        if not root_path.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root_path, followlinks=True):
            if not include_hidden:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for filename in filenames:
                if filename.lower().endswith(LORA_EXTENSIONS) and (include_hidden or not filename.startswith(".")):
                    found.append(Path(dirpath) / filename)
    return sorted(found, key=lambda p: natural_sort_key(str(p)))


class LoraRegistry:
    """The networks available on disk, addressable by name, alias or shorthash."""

    def __init__(self, dirs: Sequence[str | os.PathLike[str]], *, hash_cache: HashCache | None = None,
                 prefer_filename: bool = False) -> None:
        """``prefer_filename`` mirrors the ``lora_preferred_name`` setting ("Filename" vs "Alias from file")."""
        self.dirs = list(dirs)
        self.hash_cache = hash_cache
        self.prefer_filename = prefer_filename
        self.available: dict[str, LoraOnDisk] = {}
        self.aliases: dict[str, LoraOnDisk] = {}
        self.forbidden_aliases: set[str] = set()
        self._loaded: OrderedDict[str, tuple[float, LoadedLora]] = OrderedDict()

    def refresh(self) -> None:
        """Re-list the Lora dirs (A1111 ``list_available_networks``)."""
        self.available.clear()
        self.aliases.clear()
        self.forbidden_aliases = {"none"}
        for path in list_lora_files(self.dirs):
            metadata: dict[str, str] = {}
            if path.suffix.lower() == ".safetensors":
                try:
                    metadata = read_safetensors_metadata(path)
                except CheckpointLoadError as error:
                    log.warning("%s", error)
            entry = LoraOnDisk(path.stem, path, metadata)
            if self.hash_cache is not None:
                entry.hash = entry.metadata.get("sshs_model_hash") or self.hash_cache.cached(
                    path, f"lora/{entry.name}", "hashes-addnet" if path.suffix.lower() == ".safetensors" else "hashes"
                )
            self.available[entry.name] = entry
            if entry.alias in self.aliases:
                self.forbidden_aliases.add(entry.alias.lower())
            self.aliases[entry.name] = entry
            self.aliases[entry.alias] = entry

    def display_name(self, entry: LoraOnDisk) -> str:
        """The name the UI shows and infotext uses (A1111 ``get_alias``)."""
        if self.prefer_filename or entry.alias.lower() in self.forbidden_aliases:
            return entry.name
        return entry.alias

    def find(self, name: str) -> LoraOnDisk | None:
        """A network by name or (non-forbidden) alias."""
        entry = self.available.get(name)
        if entry is not None:
            return entry
        if name.lower() in self.forbidden_aliases:
            return None
        return self.aliases.get(name)

    def find_by_shorthash(self, short: str) -> LoraOnDisk | None:
        """A network whose 12-hex shorthash equals ``short`` (hashes are computed on demand)."""
        for entry in self.available.values():
            if entry.read_hash(self.hash_cache)[: len(short)] == short:
                return entry
        return None

    def load(self, entry: LoraOnDisk, *, safe_unpickle: bool = True) -> LoadedLora:
        """Read a network (kept in memory while the file's mtime is unchanged, until :meth:`purge` drops it)."""
        key, mtime = str(entry.path), entry.path.stat().st_mtime
        held = self._loaded.pop(key, None)
        loaded = held[1] if held is not None and held[0] == mtime else None
        if loaded is None:
            loaded = load_lora(entry.path, name=entry.name, safe_unpickle=safe_unpickle)
        self._loaded[key] = (mtime, loaded)
        return loaded

    def purge(self, limit: int, in_use: int) -> None:
        """Drop the least recently used networks from memory until at most ``limit`` besides the ``in_use`` ones
        the current job loaded are left (A1111 ``purge_networks_from_memory`` with ``lora_in_memory_limit``)."""
        while len(self._loaded) > max(0, limit) + max(0, in_use):
            self._loaded.popitem(last=False)

    @property
    def in_memory(self) -> list[str]:
        """Names of the networks held in memory, least recently used first."""
        return [loaded.name for _, loaded in self._loaded.values()]


@dataclass(frozen=True)
class LoraRequest:
    """One ``<lora:…>`` use: name and multipliers."""

    name: str
    te_multiplier: float = 1.0
    unet_multiplier: float = 1.0
    dyn_dim: int | None = None

    @classmethod
    def from_args(cls, args: Sequence[str] | str) -> LoraRequest:
        """Parse the ``:``-separated arguments after ``lora:`` (A1111 ``ExtraNetworkParams`` + ``activate``).

        ``name[:te[:unet[:dyn]]]``; items containing ``=`` are named (``te=``, ``unet=``, ``dyn=``) and win over
        positional ones. Raises ``ValueError`` naming the bad argument.
        """
        items = args.split(":") if isinstance(args, str) else list(args)
        positional = [item for item in items if "=" not in item]
        named = dict(item.split("=", 1) for item in items if "=" in item)
        if not positional or not positional[0].strip():
            raise ValueError(f"<lora:{':'.join(items)}>: the network name is missing")
        try:
            te = float(named.get("te", positional[1] if len(positional) > 1 else 1.0))
            unet = float(named.get("unet", positional[2] if len(positional) > 2 else te))
            dyn_text = named.get("dyn", positional[3] if len(positional) > 3 else None)
            dyn = int(dyn_text) if dyn_text is not None else None
        except ValueError:
            raise ValueError(f"<lora:{':'.join(items)}>: multipliers must be numbers") from None
        return cls(positional[0].strip(), te, unet, dyn)


@dataclass
class LoadedLora:
    """A network file read into modules grouped by kohya name."""

    name: str
    path: Path
    modules: dict[str, ModuleWeights]
    bundled_embeddings: dict[str, dict[str, Tensor]] = field(default_factory=dict)


def load_lora(path: str | os.PathLike[str], *, name: str | None = None, safe_unpickle: bool = True) -> LoadedLora:
    """Read a LoRA/LyCORIS file (safetensors, or a torch pickle through the safe unpickler)."""
    path = Path(path)
    state_dict = read_state_dict(path, safe_unpickle=safe_unpickle)
    modules, bundled = group_keys(state_dict)
    return LoadedLora(name or path.stem, path, modules, bundled)


def bundled_embeddings(lora: LoadedLora) -> tuple[list[Embedding], list[str]]:
    """Embeddings bundled in a network file (A1111 1.7 ``bundle_emb.*``) as :class:`Embedding` objects, plus error
    messages for bundles that are not valid embeddings. Register them while the network is in use."""
    found: list[Embedding] = []
    errors: list[str] = []
    for name, data in lora.bundled_embeddings.items():
        try:
            found.append(embedding_from_data(data, name, lora.path))
        except EmbeddingLoadError as error:
            errors.append(f"Network {lora.name}: bundled embedding {name}: {error}")
    return found, errors


@dataclass
class LoraApplyReport:
    """What happened when networks were added to a patcher; :attr:`messages` is user-facing text."""

    applied: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    unmatched: dict[str, list[str]] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        """One line per problem, naming the network and the keys."""
        lines = [f"Network {name} was skipped: {reason}" for name, reason in self.skipped.items()]
        lines += [f"Network {name} didn't match keys: {', '.join(keys)}" for name, keys in self.unmatched.items()]
        return lines + self.notices


@dataclass
class _Planned:
    target: Target
    module: NetworkModule
    fit: str
    delta_shape: tuple[int, ...]


def _plan(lora: LoadedLora, request: LoraRequest, patcher: ModelPatcher, index: ModuleNameIndex,
          report: LoraApplyReport) -> list[_Planned] | None:
    """Resolve and shape-check every module of one network; None (and a report entry) if it must be skipped."""
    planned: list[_Planned] = []
    unmatched: list[str] = []
    for weights in lora.modules.values():
        target = index.resolve(weights.name)
        if target is None:
            unmatched.append(weights.name)
            continue
        try:
            module = parse_module(weights, request.dyn_dim)
        except LoraFormatError as error:
            report.notices.append(f"Network {lora.name} ({lora.path.name}): {error}; module skipped")
            continue
        param = patcher.parameter(target.weight_key)
        if param is None:
            unmatched.append(weights.name)
            continue
        shape = tuple(int(s) for s in param.shape)
        if target.qkv_index is not None:
            shape = (shape[0] // 3, *shape[1:])
        try:
            delta_shape = module.delta_shape(torch.Size(shape))
        except LoraFormatError as error:
            report.skipped[lora.name] = f"{lora.path}: {error}"
            return None
        fit = fit_delta(delta_shape, shape)
        if fit is None:
            report.skipped[lora.name] = (
                f"{lora.path}: module {weights.name} has delta shape {delta_shape} but {target.weight_key} is "
                f"{shape} (a network for a different model architecture?)"
            )
            return None
        planned.append(_Planned(target, module, fit, delta_shape))
    if unmatched:
        report.unmatched[lora.name] = unmatched
    return planned


def _fitted(delta: Tensor, plan: _Planned, shape: Sequence[int]) -> Tensor:
    if plan.fit == "pad":
        delta = delta.reshape(plan.delta_shape)
        return F.pad(delta, (0, 0, 0, 0, 0, shape[1] - delta.shape[1]))
    return delta.reshape(shape)


def _weight_fn(plans: Mapping[int | None, _Planned], multiplier: float) -> Callable[[Tensor], Tensor]:
    def delta(base: Tensor) -> Tensor:
        if None in plans:
            plan = plans[None]
            return _fitted(plan.module.weight_delta(base), plan, base.shape) * multiplier
        out = torch.zeros_like(base)
        third = base.shape[0] // 3
        for index, plan in plans.items():
            assert index is not None
            rows = slice(index * third, (index + 1) * third)
            part = base[rows]
            out[rows] = _fitted(plan.module.weight_delta(part), plan, part.shape) * multiplier
        return out

    return delta


def _bias_fn(parts: Mapping[int | None, Tensor], multiplier: float) -> Callable[[Tensor], Tensor]:
    def delta(base: Tensor) -> Tensor:
        out = torch.zeros_like(base)
        third = base.shape[0] // 3
        for index, bias in parts.items():
            value = bias.to(device=base.device, dtype=torch.float32).flatten() * multiplier
            if index is None:
                out += value.reshape(base.shape)
            else:
                out[index * third:(index + 1) * third] += value
        return out

    return delta


_FUNCTIONAL_TYPES = (nn.Linear, nn.Conv2d, nn.LayerNorm, nn.GroupNorm)


def _layer_op(module: nn.Module, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``module``'s own operation with another weight/bias (A1111 ``NetworkModule.ops`` + ``extra_kwargs``)."""
    if isinstance(module, nn.Conv2d):
        return F.conv2d(x, weight, bias, module.stride, module.padding, module.dilation, module.groups)
    if isinstance(module, nn.LayerNorm):
        return F.layer_norm(x, module.normalized_shape, weight, bias, module.eps)
    if isinstance(module, nn.GroupNorm):
        return F.group_norm(x, module.num_groups, weight, bias, module.eps)
    return F.linear(x, weight, bias)


def _forward_term(module: nn.Module, weight_fn: Callable[[Tensor], Tensor],
                  bias_fn: Callable[[Tensor], Tensor] | None) -> ForwardTermFn:
    """``(x, y) -> y + op(x, ΔW, Δb)``; the deltas are computed from the layer's weights on first use."""
    cache: dict[str, Tensor | None] = {}

    def term(x: Tensor, y: Tensor) -> Tensor:
        if "weight" not in cache:
            weight = module.get_parameter("weight").detach().float()
            cache["weight"] = weight_fn(weight).reshape(weight.shape)
            bias = getattr(module, "bias", None)
            cache["bias"] = bias_fn(bias.detach().float()) if bias_fn is not None and bias is not None else None
        delta_w, delta_b = cache["weight"], cache["bias"]
        assert delta_w is not None
        return y + _layer_op(module, x, delta_w.to(x.dtype), delta_b.to(x.dtype) if delta_b is not None else None)

    return term


def _functional_module(patcher: ModelPatcher, group: Mapping[int | None, _Planned]) -> nn.Module | None:
    """The layer a forward term can serve (one whole weight, reshape fit, a supported layer type), else None."""
    plan = group.get(None)
    if plan is None or len(group) != 1 or plan.fit != "reshape":
        return None
    module = patcher.module(plan.target.module_key)
    return module if isinstance(module, _FUNCTIONAL_TYPES) else None


def add_loras(patcher: ModelPatcher, networks: Sequence[tuple[LoadedLora, LoraRequest]],
              index: ModuleNameIndex | None = None, *, functional: bool = False) -> LoraApplyReport:
    """Add weight patches for ``networks`` to ``patcher`` (call on a clone, then ``apply()``); with ``functional``
    (the ``lora_functional`` setting) layers get forward terms instead where they can (see the module docstring).

    ``index`` may be reused across calls for the same model (building it walks all modules).
    """
    index = index or ModuleNameIndex.from_modules(patcher.iter_modules())
    report = LoraApplyReport()
    for lora, request in networks:
        plans = _plan(lora, request, patcher, index, report)
        if plans is None:
            log.warning("Network %s was skipped: %s", lora.name, report.skipped[lora.name])
            continue
        by_weight: dict[str, dict[int | None, _Planned]] = {}
        by_bias: dict[str, dict[int | None, Tensor]] = {}
        multipliers: dict[str, float] = {}
        for plan in plans:
            target = plan.target
            multiplier = request.unet_multiplier if target.is_unet else request.te_multiplier
            multipliers[target.weight_key] = multiplier
            by_weight.setdefault(target.weight_key, {})[target.qkv_index] = plan
            bias = plan.module.bias_delta()
            if bias is None:
                continue
            if target.bias_key is None:
                report.notices.append(f"Network {lora.name}: {target.module_key} has no bias; bias part ignored")
                continue
            bias_param = patcher.parameter(target.bias_key)
            expected = bias_param.numel() // (3 if target.qkv_index is not None else 1) if bias_param is not None else -1
            if bias.numel() != expected:
                report.notices.append(f"Network {lora.name}: bias for {target.module_key} has {bias.numel()} values, "
                                      f"expected {expected}; bias part ignored")
                continue
            multipliers[target.bias_key] = multiplier
            by_bias.setdefault(target.bias_key, {})[target.qkv_index] = bias
        for key, group in by_weight.items():
            if multipliers[key] == 0:
                continue
            layer = _functional_module(patcher, group) if functional else None
            if layer is None:
                patcher.add_weight_patch(key, _weight_fn(group, multipliers[key]), source=lora.name)
                continue
            bias_key = group[None].target.bias_key
            bias_parts = by_bias.pop(bias_key, None) if bias_key is not None else None
            bias_fn = _bias_fn(bias_parts, multipliers[bias_key]) if bias_parts and bias_key is not None else None
            patcher.add_forward_term(group[None].target.module_key,
                                     _forward_term(layer, _weight_fn(group, multipliers[key]), bias_fn),
                                     source=lora.name)
        for key, parts in by_bias.items():
            if multipliers[key] != 0:
                patcher.add_weight_patch(key, _bias_fn(parts, multipliers[key]), source=lora.name)
        report.applied.append(lora.name)
        if lora.name in report.unmatched:
            log.warning("Network %s didn't match keys: %s", lora.name, ", ".join(report.unmatched[lora.name]))
    return report
