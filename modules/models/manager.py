"""The one ModelManager: which checkpoint is current, switching, the RAM cache, unload/reload.

A1111 behaviour it keeps (``sd_models.reload_model_weights`` / ``unload_model_weights``, settings
``sd_checkpoints_limit``, ``sd_checkpoints_keep_in_cpu``, ``sd_checkpoint_cache``, ``sd_vae_checkpoint_cache``, read
at each switch through :class:`CacheLimits`):

* Switching loads the new checkpoint **first** and only then lets go of the old one, so a file that fails to load
  (garbage, truncated, unknown architecture, unsafe pickle) leaves the current model loaded and usable, and the error
  names the file.
* Up to ``sd_checkpoints_limit - 1`` previously used models stay loaded, plus ``sd_checkpoint_cache`` more kept in
  RAM (A1111 caches that many checkpoints' weights in RAM; here the built networks are kept, least recently used
  evicted); switching back to one is a move to the device instead of a read from disk ("Loading weights … from
  cache", as A1111 logs it). Loaded models go to RAM when they stop being current, unless
  ``sd_checkpoints_keep_in_cpu`` ("Only keep one model on device") is off: then the ``sd_checkpoints_limit - 1``
  most recent stay on the device (A1111 leaves them where they are) and switching back costs no transfer.
* With ``sd_vae_checkpoint_cache`` > 0, VAEs read from files that a VAE switch replaced are kept in RAM (that many,
  least recently used evicted), so switching back to one does not read the file again (A1111 caches VAE weights).
* ``unload()`` moves the current model to RAM ("Unload SD checkpoint to RAM", ``POST /sdapi/v1/unload-checkpoint``),
  ``reload()`` puts it back ("Load SD checkpoint to VRAM", ``reload-checkpoint``).
* After a load the checkpoint's sha256 is computed in the background (never delaying the first image); the title
  gains its ``[shorthash]`` when it is done.
* The offload policy (``--medvram``/``--medvram-sdxl``/``--lowvram``) is resolved per model, since
  ``--medvram-sdxl`` depends on the family, and applied with a :class:`ModelOffloader`.
* When RAM is short — the new model's weights (estimated from the file header) do not fit in the available memory —
  and the current model would not be kept anyway (no cache slot), it is dropped **before** the new one is read, as
  A1111 reuses/trashes the old model before loading (``reuse_model_from_already_loaded``, ``send_model_to_trash``);
  if the new file then fails, the previous checkpoint is read again ("Failed to load checkpoint, restoring
  previous") and the error raised.
* FP8 weight storage (``fp8_storage``, ``cache_fp16_weight``, :mod:`modules.models.fp8_storage`) is decided per load
  from the job's settings (so the X/Y/Z "FP8 mode" axis and ``override_settings`` act per job); a loaded or cached
  model whose storage differs is read from its file again, as A1111 forces a reload when ``check_fp8`` changes
  ("load from state dict again to prevent extra numerical errors").

All public methods hold one re-entrant lock: one switch at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modules.memory.attention import AttentionSelector, free_memory_bytes, set_attention_backend
from modules.memory.devices import free_memory
from modules.memory.offload import DeviceBudget, ModelOffloader, resolve_offload_policy
from modules.models.checkpoints import CheckpointInfo, CheckpointRegistry
from modules.models.fp8_storage import WeightStorage, fp8_state, store_fp8
from modules.models.hashes import BackgroundHasher
from modules.models.loader import DevicePolicy, estimated_weight_bytes, load_checkpoint
from modules.models.nn.cpu_fast import enable_cpu_fast_path, should_pack
from modules.models.nn.unet import apply_channels_last
from modules.models.sd_model import StableDiffusionModel
from modules.models.vae_files import VaeResolution

log = logging.getLogger(__name__)

Loader = Callable[..., StableDiffusionModel]
"""``loader(info, device_policy, *, vae=VaeResolution, device="cpu") -> StableDiffusionModel`` (load_checkpoint)."""
VaeResolver = Callable[[CheckpointInfo, Mapping[str, Any] | None], VaeResolution]
"""``resolver(info, options)``: the VAE for a checkpoint under ``options`` (a job's settings snapshot with its
``override_settings``), or under the global settings when ``options`` is None."""
StorageReader = Callable[[Mapping[str, Any] | None], WeightStorage]
"""``reader(options)``: the ``fp8_storage``/``cache_fp16_weight`` settings of a job (or the global ones for None)."""


def _trim_host_heap() -> None:
    """Give freed heap memory back to the OS after a model is dropped. glibc keeps freed blocks below its (adaptive,
    up to 32 MiB) mmap threshold in its arenas, so without ``malloc_trim(0)`` a dropped model's weights stay in the
    resident set and the next load grows it further. A no-op off glibc."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):  # musl and other C libraries have no malloc_trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class UnknownCheckpointError(LookupError):
    """No known checkpoint matches the requested name/hash (A1111: "Unknown checkpoint")."""


@dataclass(frozen=True)
class OffloadFlags:
    """``--medvram``, ``--medvram-sdxl``, ``--lowvram``."""

    medvram: bool = False
    medvram_sdxl: bool = False
    lowvram: bool = False


@dataclass(frozen=True)
class CacheLimits:
    """The cache settings, read at each switch: ``loaded`` = ``sd_checkpoints_limit``, ``keep_in_cpu`` =
    ``sd_checkpoints_keep_in_cpu``, ``ram`` = ``sd_checkpoint_cache``, ``vae_ram`` = ``sd_vae_checkpoint_cache``."""

    loaded: int = 1
    keep_in_cpu: bool = True
    ram: int = 0
    vae_ram: int = 0

    @property
    def cached_models(self) -> int:
        """How many models besides the current one are kept (loaded ones and RAM-cached ones)."""
        return max(0, self.loaded - 1) + max(0, self.ram)


class ModelManager:
    """Owns the current :class:`StableDiffusionModel` and the RAM cache of others."""

    def __init__(
        self,
        registry: CheckpointRegistry,
        policy: DevicePolicy,
        *,
        hasher: BackgroundHasher,
        vae_resolver: VaeResolver,
        attention: AttentionSelector,
        offload: OffloadFlags,
        loader: Loader = load_checkpoint,
        cache_size: int = 0,
        budget: DeviceBudget | None = None,
        limits: Callable[[], CacheLimits] | None = None,
        storage: StorageReader | None = None,
        available_ram: Callable[[], int] | None = None,
    ) -> None:
        """Every collaborator is required (the composition root, `webui.build_context`, passes them): `hasher`
        fills in sha256/shorthash after a load (a disabled `HashCache` with `--no-hashing` makes it answer None),
        `vae_resolver` decides the VAE per checkpoint (`sd_vae`, `--vae-path`, sidecars, per-model preferences),
        `attention` the attention backend applied to every model the manager hands out. `limits` reads the cache
        settings at each switch (the app reads them from its settings); without it ``cache_size`` models are kept
        in RAM. `storage` reads the FP8 settings per load (None: FP8 off); `available_ram` is the free host memory in
        bytes (default: MemAvailable), compared with the next model's size to decide whether the old one must go
        first."""
        self.registry = registry
        self.storage = storage or (lambda options: WeightStorage())
        self.available_ram = available_ram or (lambda: free_memory_bytes(torch.device("cpu")))
        self.policy = policy
        self.loader = loader
        self.cache_size = max(0, cache_size)
        self.limits = limits or (lambda: CacheLimits(loaded=1 + self.cache_size))
        self.offload = offload
        self.hasher = hasher
        self.vae_resolver = vae_resolver
        self.attention = attention
        self.attention_backend: str | None = None
        """Name of the backend applied last (A1111 prints it as "Applying attention optimization: …")."""
        self.budget = budget or DeviceBudget()
        self._lock = threading.RLock()
        self._current: StableDiffusionModel | None = None
        self._on_device = False
        self._cache: OrderedDict[Path, StableDiffusionModel] = OrderedDict()
        self._vae_cache: OrderedDict[tuple[Path, str], torch.nn.Module] = OrderedDict()
        self._cache_on_device: set[Path] = set()
        self._cache_in_ram: set[Path] = set()
        self._hash_futures: dict[Path, Future[str | None]] = {}
        self.on_loaded: list[Callable[[StableDiffusionModel], None]] = []
        """Called with the model after a checkpoint became current (A1111 `model_loaded` callbacks; the
        composition root wires them)."""

    @property
    def current(self) -> StableDiffusionModel | None:
        """The model generation uses (None before the first load or after :meth:`free`)."""
        return self._current

    @property
    def cached(self) -> list[CheckpointInfo]:
        """Checkpoints held in the RAM cache, least recently used first."""
        return [model.checkpoint for model in self._cache.values()]

    def cached_on_device(self) -> list[CheckpointInfo]:
        """Cached models left on the device (``sd_checkpoints_keep_in_cpu`` off), least recently used first."""
        return [model.checkpoint for path, model in self._cache.items() if path in self._cache_on_device]

    def resolve(self, checkpoint: str | CheckpointInfo | None) -> CheckpointInfo:
        """A :class:`CheckpointInfo` for a title/name/hash (closest match, as A1111) or the registry default."""
        if isinstance(checkpoint, CheckpointInfo):
            return checkpoint
        if checkpoint is None:
            found = self.registry.default
            if found is None:
                raise UnknownCheckpointError(
                    f"No checkpoints found in {self.registry.model_dir}; put a .safetensors or .ckpt file there")
            return found
        found = self.registry.get_closest(checkpoint)
        if found is None:
            raise UnknownCheckpointError(f"Unknown checkpoint: {checkpoint}")
        return found

    def load(self, checkpoint: str | CheckpointInfo | None = None, *,
             options: Mapping[str, Any] | None = None) -> StableDiffusionModel:
        """Make ``checkpoint`` current (no-op if it already is); on failure the previous model stays current.
        ``options`` (a job's settings snapshot) decide the VAE, so ``override_settings: {"sd_vae": …}`` acts for
        that job as in A1111; without it the global settings do."""
        with self._lock:
            info = self.resolve(checkpoint)
            vae = self.vae_resolver(info, options)
            storage = self.storage(options)
            current = self._current
            if current is not None and current.checkpoint.filename == info.filename and not self._storage_matches(
                    current, storage):
                log.info("FP8 weight setting changed: reading %s again", info.title)
                self._current = None
                self._release_budget(current)
                current.to("cpu")
                current = None
            if current is not None and current.checkpoint.filename == info.filename:
                if vae != current.vae_resolution:
                    self.reload_vae(options)
                elif not self._on_device:
                    self.reload()
                self._apply_attention(current)
                return current
            model = self._cache.get(info.filename)
            if model is None or model.vae_resolution != vae or not self._storage_matches(model, storage):
                # cached with another VAE or storage (or not cached): load from disk; a failure raises here, before
                # anything about the current model or the cache has changed (unless RAM is short, see below)
                current = None  # no reference of ours may keep the old model alive if it has to go first
                model = self._load_from_disk(info, vae, storage)
                current = self._current
            else:
                log.info("Loading weights of %s from cache", info.title)
            self._cache.pop(info.filename, None)
            self._cache_on_device.discard(info.filename)
            self._cache_in_ram.discard(info.filename)
            self._retire_current()
            try:
                self._current = model
                self._place(model)
            except Exception:
                # the device could not take it (out of memory): put the previous model back
                model.to("cpu")
                self._release_budget(model)
                self._current = None
                if current is not None:
                    self._cache.pop(current.checkpoint.filename, None)
                    self._current = current
                    self._place(current)
                raise
            if current is not None:
                dropped = weakref.ref(current)
                current = None  # the last reference of ours: the old model's memory can go back to the OS now
                self._release_dropped(dropped)
            self._hash_in_background(info)
            self._apply_attention(model)
            for listener in list(self.on_loaded):
                listener(model)
            return model

    def _release_dropped(self, dropped: weakref.ref[StableDiffusionModel]) -> None:
        """After the last reference of ours to a model was dropped: refcounting has freed it unless reference cycles
        keep it, so the (full, process-wide, slow) cycle collection runs only when it is still alive and not kept in
        the RAM cache on purpose; then the freed heap goes back to the OS."""
        model = dropped()
        if model is not None and all(cached is not model for cached in self._cache.values()):
            model = None
            gc.collect()
        _trim_host_heap()

    def _storage_matches(self, model: StableDiffusionModel, storage: WeightStorage) -> bool:
        state = fp8_state(model.unet)
        if not storage.fp8_for(model.is_sdxl):
            return state is None
        return state is not None and state.fp16_cached == storage.cache_fp16_weight

    def _load_from_disk(self, info: CheckpointInfo, vae: VaeResolution, storage: WeightStorage
                        ) -> StableDiffusionModel:
        """Read ``info`` (dropping the current model first when RAM is short, see the module docstring) and apply
        the FP8 storage setting."""
        previous = self._current
        if previous is not None and self.limits().cached_models == 0 and self._ram_is_short(info):
            log.info("Not enough free RAM for %s next to %s: unloading it first", info.title,
                     previous.checkpoint.title)
            self._retire_current()
            self._cache.pop(previous.checkpoint.filename, None)
            previous_info, previous_vae = previous.checkpoint, previous.vae_resolution
            del previous
            gc.collect()
            try:
                model = self.loader(info, self.policy, vae=vae, device=torch.device("cpu"))
            except Exception:
                log.warning("Failed to load checkpoint %s, restoring previous %s", info.title, previous_info.title)
                restored = self.loader(previous_info, self.policy, vae=previous_vae, device=torch.device("cpu"))
                self._apply_storage(restored, storage)
                self._current = restored
                self._place(restored)
                raise
        else:
            model = self.loader(info, self.policy, vae=vae, device=torch.device("cpu"))
        self._apply_storage(model, storage)
        return model

    def _ram_is_short(self, info: CheckpointInfo) -> bool:
        need = estimated_weight_bytes(info, self.policy.dtypes)
        return need is not None and need > self.available_ram()

    def _apply_storage(self, model: StableDiffusionModel, storage: WeightStorage) -> None:
        """FP8 weight storage of the UNet when the settings ask for it (A1111 ``check_fp8``)."""
        if storage.fp8_for(model.is_sdxl) and isinstance(model.unet, torch.nn.Module):
            state = store_fp8(model.unet, model.dtypes.unet, keep_fp16=storage.cache_fp16_weight)
            log.info("%s: %s", model.checkpoint.title, state.summary())

    def _apply_attention(self, model: StableDiffusionModel) -> None:
        """Point the model's attention layers at the selected backend (the `cross_attention_optimization` setting
        and the command-line preference); logged when it changes, as A1111's "Applying attention optimization"."""
        backend = self.attention.current()
        for module in (model.unet, model.vae):
            set_attention_backend(module, backend)
        if backend.name != self.attention_backend:
            log.info("Applying attention optimization: %s... done.", backend.name)
            self.attention_backend = backend.name

    def _place(self, model: StableDiffusionModel) -> None:
        """Put the model's networks where the offload policy says (all on the device unless medvram/lowvram)."""
        policy = resolve_offload_policy(medvram=self.offload.medvram, medvram_sdxl=self.offload.medvram_sdxl,
                                        lowvram=self.offload.lowvram, family=model.family)
        model.detach_offloader()
        if self.policy.channels_last:
            apply_channels_last(model.unet)
            log.info("%s: UNet weights in channels_last memory format (--opt-channelslast)", model.checkpoint.title)
        if self.policy.cpu_fast_path and self.policy.device.type == "cpu":
            self._cpu_fast_path(model)
        model.offloader = ModelOffloader(model.components(), policy, self.policy.device, budget=self.budget)
        self._on_device = True

    def _cpu_fast_path(self, model: StableDiffusionModel) -> None:
        """The CPU fast paths (:mod:`modules.models.nn.cpu_fast`) for the UNet and VAE: oneDNN linears and
        convolutions and NHWC weights, prepacked while the copies fit a quarter of the free RAM (the UNet's not with
        ``--disable-opt-cpu-prepack``: 1.6 GiB less for SD1.5 in bf16, ~10 % slower steps, docs/benchmarks.md);
        one log line."""
        free = free_memory_bytes(self.policy.device)
        pack_unet = self.policy.cpu_prepack and should_pack(model.unet, free)
        report = enable_cpu_fast_path(model.unet, pack=pack_unet, name=model.checkpoint.title)
        enable_cpu_fast_path(model.vae, pack=should_pack(model.vae, free), name=model.checkpoint.title)
        layers = ("prepacked oneDNN" if report.packed else "oneDNN") if report.linear else "plain"
        log.info("%s: CPU fast path: %s linears/convolutions, NHWC weights (--disable-opt-cpu-fast-path turns it off)",
                 model.checkpoint.title, layers)

    def _retire_current(self) -> None:
        """The current model stops being current: cached (see module docstring) or dropped."""
        old = self._current
        if old is None:
            return
        self._current = None
        limits = self.limits()
        self._release_budget(old)
        size = limits.cached_models
        if size > 0:
            self._cache[old.checkpoint.filename] = old
            while len(self._cache) > size:
                evicted_path, evicted = self._cache.popitem(last=False)
                evicted.to("cpu")
                self._cache_in_ram.discard(evicted_path)
                log.info("Dropping %s from the checkpoint RAM cache", evicted_path)
        # the most recent `loaded - 1` stay on the device when "Only keep one model on device" is off
        on_device = 0 if limits.keep_in_cpu else max(0, limits.loaded - 1)
        self._cache_on_device.clear()
        for position, (path, model) in enumerate(reversed(self._cache.items())):
            if position >= on_device:
                if path not in self._cache_in_ram:
                    model.to("cpu")
                self._cache_in_ram.add(path)
            else:
                model.detach_offloader()
                self._cache_on_device.add(path)
                self._cache_in_ram.discard(path)
        if size == 0:
            old.to("cpu")
        free_memory(self.policy.device, collect=False)  # the caller still holds ``old``: a collection frees nothing

    def _release_budget(self, model: StableDiffusionModel) -> None:
        for name in list(self.budget.resident):
            if name.split("/", 1)[0] in model.components():
                self.budget.evict(name)

    def _hash_in_background(self, info: CheckpointInfo) -> None:
        if info.sha256 is not None:
            return

        def remember(value: str | None) -> None:
            if value is not None:
                info.sha256 = value
                log.info("Calculated sha256 of %s: %s", info.name, value[:10])

        self._hash_futures[info.filename] = self.hasher.submit(info.filename, info.hash_cache_key, on_done=remember)

    def shorthash(self, info: CheckpointInfo | None = None, timeout: float | None = 0.0) -> str | None:
        """The checkpoint's shorthash for infotext ``Model hash``, waiting up to ``timeout`` seconds (None: until
        done) for the background hash; None if not ready, hashing is off (--no-hashing) or it failed.

        Processing asks with a short timeout when it writes infotext (after sampling, when the hash of a normal
        file is long done) instead of hashing before the first step as A1111 does.
        """
        info = info or (self._current.checkpoint if self._current is not None else None)
        if info is None:
            return None
        future = self._hash_futures.get(info.filename)
        if info.sha256 is None and future is not None:
            try:
                value = future.result(timeout=timeout)
            except (FutureTimeout, OSError):
                return None
            if value is not None:
                info.sha256 = value  # the done-callback may not have run yet
        return info.shorthash

    def reload_vae(self, options: Mapping[str, Any] | None = None) -> StableDiffusionModel | None:
        """Re-resolve the VAE (after ``sd_vae`` changed) and swap it in without reloading the checkpoint."""
        from modules.models.loader import load_vae_module

        with self._lock:
            model = self._current
            if model is None:
                return model
            resolution = self.vae_resolver(model.checkpoint, options)
            if resolution == model.vae_resolution:
                return model
            family = model.family
            cached = self._vae_cache.pop((resolution.path, family), None) if resolution.path is not None else None
            if cached is not None:
                log.info("Loading VAE weights %s from cache", resolution.name)
                vae = cached
            else:
                vae = load_vae_module(model.checkpoint, model.architecture, None, resolution, self.policy,
                                      torch.device("cpu"))
            model.to("cpu")
            self._release_budget(model)
            self._keep_vae(model.vae_resolution.path, family, model.vae)
            model.vae, model.vae_resolution = vae, resolution
            self._place(model)
            return model

    def _keep_vae(self, path: Path | None, family: str, module: torch.nn.Module) -> None:
        """Keep a VAE read from a file that a switch replaced, up to ``sd_vae_checkpoint_cache`` of them."""
        size = max(0, self.limits().vae_ram)
        if path is not None and size > 0:
            self._vae_cache[(path, family)] = module.to("cpu")
        while len(self._vae_cache) > size:
            self._vae_cache.popitem(last=False)

    def unload(self) -> None:
        """Move the current model to RAM (A1111 "Unload SD checkpoint to RAM"); :meth:`reload` brings it back."""
        with self._lock:
            if self._current is not None and self._on_device:
                self._current.to("cpu")
                self._release_budget(self._current)
                self._on_device = False
                free_memory(self.policy.device)

    def reload(self) -> StableDiffusionModel | None:
        """Put the current model back on the device (loading the default checkpoint if none is loaded)."""
        with self._lock:
            if self._current is None:
                return self.load(None)
            if not self._on_device:
                self._place(self._current)
            return self._current

    @property
    def on_device(self) -> bool:
        """False after :meth:`unload` until :meth:`reload`."""
        return self._current is not None and self._on_device

    def free(self) -> None:
        """Drop the current model and the RAM cache."""
        with self._lock:
            if self._current is not None:
                self._current.detach_offloader()
                self._release_budget(self._current)
            self._current = None
            self._on_device = False
            self._cache.clear()
            self._cache_on_device.clear()
            self._cache_in_ram.clear()
            self._vae_cache.clear()
            free_memory(self.policy.device)
