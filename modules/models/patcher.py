"""Clone-then-patch model patcher: weight patches keyed by checkpoint names, and hooks at named wrap points.

Extra networks change a loaded model in two ways (A1111 ``extensions-builtin/Lora/networks.py`` and
``modules/hypernetworks/hypernetwork.py``):

* **Weight patches** (LoRA, LyCORIS, full diffs): A1111 backs up each touched weight, computes
  ``weight + Σ updown`` and writes it into the live module ("network_apply_weights"), restoring the backup when the
  set of networks changes. Here a :class:`WeightPatch` is a function ``original fp32 weight -> fp32 delta``, keyed by
  the checkpoint-style parameter name (``model.diffusion_model.input_blocks.1.1.proj_in.weight``,
  ``cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight``). :meth:`ModelPatcher.apply` sums all deltas
  of a key against the *original* weight (so several networks add, as in A1111), in fp32, then writes the result
  in the parameter's own dtype. An exact copy of every original tensor is kept and :meth:`ModelPatcher.restore`
  copies it back, bit-identical (same dtype, so ``torch.equal`` holds).
* **Wrap points** (hypernetworks): A1111 replaces ``CrossAttention.forward`` to feed ``hypernetwork(context)`` to
  ``to_k``/``to_v``. We never assign to class methods: a wrap point is a module *instance* named by its checkpoint
  key (``model.diffusion_model.….attn2.to_k``) plus a function applied to its first input (forward pre-hook) or its
  output (forward hook). Hooks are registered by :meth:`~ModelPatcher.apply` and removed by
  :meth:`~ModelPatcher.restore`.
* **Forward terms** (LoRA with the ``lora_functional`` setting, A1111 ``networks.network_forward``): a function
  ``(input, output) -> new output`` on a module instance, so a network adds ``op(x, ΔW, Δb)`` to the layer's output
  instead of being merged into its weight.

A patcher addresses the model through *components*: ``{checkpoint prefix: nn.Module}`` such as
``{"model.diffusion_model.": unet, "cond_stage_model.transformer.text_model.": clip}``; a module whose
``state_dict`` keys already are the full checkpoint keys is passed as ``{"": model}``. "Clone-then-patch": a base
patcher describes the model; :meth:`~ModelPatcher.clone` gives an independent patch list over the same modules, so
each generation builds its own set without touching another's. Only one patcher may be applied to a module at a time.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from modules.models.fp8_storage import fp16_copy

WeightDeltaFn = Callable[[Tensor], Tensor]
"""``original weight (fp32, on the parameter's device) -> delta`` with the same number of elements."""

TensorWrapFn = Callable[[Tensor], Tensor]
"""Applied to a module's first positional input (``"input"``) or to its output (``"output"``)."""

ForwardTermFn = Callable[[Tensor, Tensor], Tensor]
"""``(module's first positional input, its output) -> new output``."""

_ACTIVE_PATCHERS: weakref.WeakKeyDictionary[nn.Module, ModelPatcher] = weakref.WeakKeyDictionary()
"""Registry: component module -> the patcher currently applied to it (guards against double patching)."""


class PatcherError(RuntimeError):
    """A patch could not be added or applied; the message names the key and the patch's source."""


@dataclass(frozen=True)
class WeightPatch:
    """One additive change of one parameter: ``patched = original + delta(original)``."""

    key: str
    delta: WeightDeltaFn
    source: str = ""


@dataclass(frozen=True)
class WrapPoint:
    """A hook on one module instance, named by its checkpoint-style module key."""

    module_key: str
    kind: Literal["input", "output"]
    fn: TensorWrapFn
    source: str = ""


@dataclass(frozen=True)
class ForwardTerm:
    """A hook on one module instance that sees both its input and its output (see the module docstring)."""

    module_key: str
    fn: ForwardTermFn
    source: str = ""


class ModelPatcher:
    """Patches a model's weights and module inputs/outputs reversibly (see the module docstring)."""

    def __init__(self, components: Mapping[str, nn.Module], *, backup_device: str | torch.device | None = "cpu"):
        """``components`` maps checkpoint prefixes ("" or ending in ".") to modules; ``backup_device`` holds the
        original weights while patched (A1111 keeps them on the CPU; ``None`` keeps them on the weight's device)."""
        for prefix in components:
            if prefix and not prefix.endswith("."):
                raise ValueError(f"component prefix {prefix!r} must be empty or end with '.'")
        # Longest prefix first so "conditioner.embedders.1.model." wins over "conditioner.".
        self.components: dict[str, nn.Module] = dict(sorted(components.items(), key=lambda kv: -len(kv[0])))
        self.backup_device = backup_device
        self.weight_patches: dict[str, list[WeightPatch]] = {}
        self.wrap_points: list[WrapPoint] = []
        self.forward_terms: list[ForwardTerm] = []
        self._backups: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        self._applied = False

    # ----------------------------------------------------------------------------------------------- addressing
    def _split(self, key: str) -> tuple[nn.Module, str] | None:
        for prefix, module in self.components.items():
            if key.startswith(prefix):
                return module, key[len(prefix):]
        return None

    def parameter(self, key: str) -> nn.Parameter | None:
        """The live parameter for a checkpoint-style key, or None when no component holds it."""
        found = self._split(key)
        if found is None:
            return None
        module, rest = found
        try:
            return module.get_parameter(rest)
        except AttributeError:
            return None

    def module(self, key: str) -> nn.Module | None:
        """The live module for a checkpoint-style module key (no trailing ``.weight``), or None."""
        found = self._split(key + ".")
        if found is None:
            return None
        module, rest = found
        rest = rest[:-1]
        try:
            return module.get_submodule(rest) if rest else module
        except AttributeError:
            return None

    def iter_modules(self) -> Iterator[tuple[str, nn.Module]]:
        """Every submodule of every component with its checkpoint-style name (``prefix + name``)."""
        for prefix, component in self.components.items():
            for name, module in component.named_modules():
                if name:
                    yield prefix + name, module

    # ------------------------------------------------------------------------------------------------- patches
    def clone(self) -> ModelPatcher:
        """A patcher over the same modules with a copy of this one's patch lists, not applied."""
        other = ModelPatcher(self.components, backup_device=self.backup_device)
        other.weight_patches = {key: list(patches) for key, patches in self.weight_patches.items()}
        other.wrap_points = list(self.wrap_points)
        other.forward_terms = list(self.forward_terms)
        return other

    def _require_not_applied(self) -> None:
        if self._applied:
            raise PatcherError("patches cannot change while applied; restore() first or work on a clone()")

    def add_weight_patch(self, key: str, delta: WeightDeltaFn, *, source: str = "") -> None:
        """Register ``delta`` for the parameter ``key``; raises :class:`PatcherError` when the key does not exist."""
        self._require_not_applied()
        if self.parameter(key) is None:
            raise PatcherError(f"{source or 'patch'}: the model has no parameter {key!r}")
        self.weight_patches.setdefault(key, []).append(WeightPatch(key, delta, source))

    def add_input_wrap(self, module_key: str, fn: TensorWrapFn, *, source: str = "") -> None:
        """Transform the first positional input of module ``module_key`` (forward pre-hook on the instance)."""
        self._add_wrap(WrapPoint(module_key, "input", fn, source))

    def add_output_wrap(self, module_key: str, fn: TensorWrapFn, *, source: str = "") -> None:
        """Transform the output of module ``module_key`` (forward hook on the instance)."""
        self._add_wrap(WrapPoint(module_key, "output", fn, source))

    def add_forward_term(self, module_key: str, fn: ForwardTermFn, *, source: str = "") -> None:
        """Replace the output ``y`` of module ``module_key`` by ``fn(x, y)`` (forward hook on the instance)."""
        self._require_not_applied()
        if self.module(module_key) is None:
            raise PatcherError(f"{source or 'forward term'}: the model has no module {module_key!r}")
        self.forward_terms.append(ForwardTerm(module_key, fn, source))

    def _add_wrap(self, point: WrapPoint) -> None:
        self._require_not_applied()
        if self.module(point.module_key) is None:
            raise PatcherError(f"{point.source or 'wrap'}: the model has no module {point.module_key!r}")
        self.wrap_points.append(point)

    def remove_source(self, source: str) -> None:
        """Drop every patch and wrap point added with ``source``."""
        self._require_not_applied()
        for key in list(self.weight_patches):
            kept = [patch for patch in self.weight_patches[key] if patch.source != source]
            if kept:
                self.weight_patches[key] = kept
            else:
                del self.weight_patches[key]
        self.wrap_points = [point for point in self.wrap_points if point.source != source]
        self.forward_terms = [term for term in self.forward_terms if term.source != source]

    @property
    def is_applied(self) -> bool:
        """True between :meth:`apply` and :meth:`restore`."""
        return self._applied

    # --------------------------------------------------------------------------------------------- apply/restore
    def apply(self) -> None:
        """Write patched weights into the live parameters and register the wrap-point hooks.

        On any error the model is restored before the error propagates, so a failed apply never leaves it half
        patched.
        """
        if self._applied:
            raise PatcherError("this patcher is already applied")
        for component in self.components.values():
            other = _ACTIVE_PATCHERS.get(component)
            if other is not None and other is not self:
                raise PatcherError("another patcher is applied to this model; restore it first")
        for component in self.components.values():
            _ACTIVE_PATCHERS[component] = self
        self._applied = True
        try:
            with torch.no_grad():
                for key, patches in self.weight_patches.items():
                    self._patch_parameter(key, patches)
            for point in self.wrap_points:
                self._register(point)
            for term in self.forward_terms:
                self._register_term(term)
        except BaseException:
            self.restore()
            raise

    def _patch_parameter(self, key: str, patches: list[WeightPatch]) -> None:
        param = self.parameter(key)
        if param is None:
            raise PatcherError(f"{patches[0].source}: the model has no parameter {key!r}")
        original = param.detach()
        device = original.device if self.backup_device is None else self.backup_device
        self._backups[key] = original.to(device, copy=True)
        # an fp8-stored weight with "Cache FP16 weight for LoRA" is patched from its fp16 copy (A1111 fp16_weight)
        cached = fp16_copy(param)
        base = (original if cached is None else cached).to(device=original.device, dtype=torch.float32)
        total = base.clone()
        for patch in patches:
            delta = patch.delta(base)
            if delta.numel() != base.numel():
                raise PatcherError(
                    f"{patch.source}: delta for {key!r} has shape {tuple(delta.shape)}, the weight {tuple(base.shape)}"
                )
            total += delta.to(device=base.device, dtype=torch.float32).reshape(base.shape)
        with torch.no_grad():  # an in-place copy that bumps the version counter: caches keyed on it see the change
            param.copy_(total.to(param.dtype))

    def _register(self, point: WrapPoint) -> None:
        module = self.module(point.module_key)
        if module is None:
            raise PatcherError(f"{point.source}: the model has no module {point.module_key!r}")
        fn = point.fn
        if point.kind == "input":

            def pre_hook(_module: nn.Module, args: tuple[object, ...]) -> tuple[object, ...] | None:
                if not args or not isinstance(args[0], Tensor):
                    return None
                return (fn(args[0]), *args[1:])

            self._handles.append(module.register_forward_pre_hook(pre_hook))
        else:

            def hook(_module: nn.Module, _args: tuple[object, ...], output: object) -> object:
                return fn(output) if isinstance(output, Tensor) else output

            self._handles.append(module.register_forward_hook(hook))

    def _register_term(self, term: ForwardTerm) -> None:
        module = self.module(term.module_key)
        if module is None:
            raise PatcherError(f"{term.source}: the model has no module {term.module_key!r}")
        fn = term.fn

        def hook(_module: nn.Module, args: tuple[object, ...], output: object) -> object:
            if not args or not isinstance(args[0], Tensor) or not isinstance(output, Tensor):
                return output
            return fn(args[0], output)

        self._handles.append(module.register_forward_hook(hook))

    def restore(self) -> None:
        """Copy the original weights back (bit-identical) and remove every hook this patcher registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        with torch.no_grad():
            for key, backup in self._backups.items():
                param = self.parameter(key)
                if param is not None:
                    param.copy_(backup)  # under no_grad: bumps the version (cpu_fast's packed weights)
        self._backups.clear()
        for component in self.components.values():
            if _ACTIVE_PATCHERS.get(component) is self:
                del _ACTIVE_PATCHERS[component]
        self._applied = False

    def __enter__(self) -> ModelPatcher:
        self.apply()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.restore()
