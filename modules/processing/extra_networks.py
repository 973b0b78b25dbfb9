"""Extra networks for one job: LoRA/LyCORIS and hypernetwork patches, textual-inversion lookup, infotext hashes.

Behaviour follows A1111 (a1111-features.md §5, §4.2, §11.4–11.6; A1111 ``modules/extra_networks.py``,
``extensions-builtin/Lora/extra_networks_lora.py``, ``modules/extra_networks_hypernet.py``,
``modules/textual_inversion/textual_inversion.py``):

* Tags ``<lora:name:te:unet:dyn>`` and ``<hypernet:name:multiplier>`` are read from the first prompt of each batch
  (A1111 ``parse_prompts``); the hires pass uses the networks of the hires prompt. The ``sd_hypernetwork`` setting
  appends ``<hypernet:name:extra_networks_default_multiplier>`` to every prompt that does not name it (so the
  infotext shows it, as in A1111).
* A network is found by name or alias (:class:`~modules.models.networks.lora.LoraRegistry`); a missing one gives the
  notice ``Networks not found: …`` and a broken one ``Network X could not be loaded: …``; generation continues.
* Patches go into a clone of a :class:`~modules.models.patcher.ModelPatcher` over the model's components (prefix →
  module in the checkpoint key layout of ``docs/architecture.md``); they are applied when the pass's conds are built
  and restored when the job ends, fails or is interrupted, so base weights are bit-identical afterwards.
* Textual inversion: the :class:`EmbeddingDatabase` is kept in step with the loaded text encoders (expected width
  768 SD1, 1024 SD2, 768+1280 SDXL, 1280 refiner) and its lookup is passed to the text encoders' TI splice hook.
  Embeddings made for another width are skipped; naming one in the prompt gives a notice. Embeddings bundled in a
  LoRA file (A1111 1.7 ``bundle_emb.*``) are usable while that LoRA is active (a folder embedding of the same name
  wins); their ``TI hashes`` entry is the network's name, left out with ``lora_bundled_ti_to_infotext`` off
  (A1111 ``BundledTIHash``).
* Infotext: ``Lora hashes: "name: hash12, …"`` (the name as written in the prompt) and ``TI hashes: "name: hash12"``,
  each behind its setting (``lora_add_hashes_to_infotext``, ``textual_inversion_add_hashes_to_infotext``).
  On paste, :meth:`NetworkLibrary.rewrite_pasted_prompt` maps ``<lora:alias:`` back to local files by hash.
* "Networks not found" goes to the job's notices; the console gets it only with ``lora_not_found_warning_console``.
  ``textual_inversion_print_at_load`` logs the loaded (and skipped) embeddings whenever that list changes;
  ``print_hypernet_extra`` logs a hypernetwork's structure the first time a job uses it.
"""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn

from modules.models.hashes import HashCache
from modules.models.networks.embeddings import Embedding, EmbeddingDatabase
from modules.models.networks.hashes import format_hashes, parse_hashes, rewrite_lora_names, shorthash
from modules.models.networks.hypernetworks import (
    Hypernetwork,
    HypernetworkLoadError,
    add_hypernetworks,
    describe_hypernetwork,
    list_hypernetworks,
    load_hypernetwork,
    parse_hypernet_args,
    with_default_hypernetwork,
)
from modules.models.networks.lora import LoadedLora, LoraRegistry, LoraRequest, add_loras, bundled_embeddings
from modules.models.networks.names import ModuleNameIndex
from modules.models.patcher import ModelPatcher
from modules.prompts import parse_prompt
from modules.prompts.tokenizer import get_tokenizer

if TYPE_CHECKING:  # the context names this module's classes: import only for the checker
    from modules.processing.context import AppContext

log = logging.getLogger(__name__)

LORA_TAGS = ("lora", "lyco")
"""Tag names the Lora extension answers to (``lyco`` is the LyCORIS back-compat name)."""


# ------------------------------------------------------------------------------------------------ model components
def text_encoder_components(model: Any) -> dict[str, nn.Module]:
    """Checkpoint prefix → text-encoder module holding those keys, per family (docs/architecture.md).

    transformers 5 ``CLIPTextModel`` has no ``text_model`` level; the module that holds ``embeddings``/``encoder``
    (the wrapper's ``_text``) is the one that ``…text_model.`` keys address in both versions.
    """
    encoders = getattr(model, "text_encoders", None)
    clip_l = getattr(encoders, "clip_l", None)
    open_clip = getattr(encoders, "open_clip", None)
    parts: dict[str, nn.Module] = {}
    if clip_l is not None:
        text = getattr(clip_l, "_text", None) or getattr(clip_l.model, "text_model", clip_l.model)
        root = "conditioner.embedders.0.transformer." if model.is_sdxl else "cond_stage_model.transformer."
        parts[root + "text_model."] = text
    if open_clip is not None:
        if not model.is_sdxl:
            parts["cond_stage_model.model."] = open_clip.model
        elif clip_l is None:  # SDXL refiner: bigG is embedder 0
            parts["conditioner.embedders.0.model."] = open_clip.model
        else:
            parts["conditioner.embedders.1.model."] = open_clip.model
    return parts


def model_components(model: Any) -> dict[str, nn.Module]:
    """``{prefix: module}`` of a loaded StableDiffusionModel for a :class:`ModelPatcher` (UNet, text, VAE)."""
    return {"model.diffusion_model.": model.unet, **text_encoder_components(model), "first_stage_model.": model.vae}


def embedding_width(model: Any) -> int | None:
    """The embedding width a TI file must have for this model (A1111 ``expected_shape``), None without text."""
    encoders = getattr(model, "text_encoders", None)
    width = 0
    clip_l, open_clip = getattr(encoders, "clip_l", None), getattr(encoders, "open_clip", None)
    if clip_l is not None:
        width += int(clip_l.token_embeddings(_one_token(clip_l)).shape[-1])
    if open_clip is not None:
        width += int(open_clip.model.token_embedding.weight.shape[-1])
    return width or None


def _one_token(encoder: Any) -> Any:
    import torch

    return torch.zeros(1, dtype=torch.long, device=encoder.device)


# ---------------------------------------------------------------------------------------------- the library (files)
@dataclass(frozen=True)
class _SpliceVectors:
    """What the chunker and the splice hook read from an embedding (``vector_count``, ``vec``, ``name``)."""

    name: str
    vector_count: int
    vec: Any


@dataclass
class NetworkLibrary:
    """The network files of this install: LoRAs, embeddings and hypernetworks (one per app, ``ctx.networks``)."""

    loras: LoraRegistry
    embeddings: EmbeddingDatabase
    hypernetwork_dirs: list[Path] = field(default_factory=list)
    safe_unpickle: bool = True
    _hypernetworks: dict[tuple[str, float], Hypernetwork] = field(default_factory=dict)
    _text_module: Any = None
    _displayed: tuple[list[str], list[str]] | None = None
    described: set[str] = field(default_factory=set)
    """Hypernetworks whose details were logged (`print_hypernet_extra`)."""
    handlers: dict[str, Any] = field(default_factory=dict)
    """Extra networks extensions registered (A1111 `extra_networks.extra_network_registry`): tag name → object with
    `activate(p, params_list)` / `deactivate(p)` (`modules.extra_networks.register_extra_network`)."""
    handler_aliases: dict[str, Any] = field(default_factory=dict)
    """Other tag names of registered extra networks (A1111 `extra_network_aliases`)."""

    @classmethod
    def from_paths(cls, paths: Any, *, hash_cache: HashCache | None = None, safe_unpickle: bool = True,
                   prefer_filename: bool = False) -> NetworkLibrary:
        """Library over ``--lora-dir`` (+ LyCORIS), ``--embeddings-dir`` and ``--hypernetwork-dir``."""
        loras = LoraRegistry([paths.lora_dir, paths.lyco_dir], hash_cache=hash_cache, prefer_filename=prefer_filename)
        loras.refresh()
        tokenizer = get_tokenizer("clip")
        embeddings = EmbeddingDatabase(tokenize=tokenizer.encode, dirs=[Path(paths.embeddings_dir)],
                                       hash_cache=hash_cache, safe_unpickle=safe_unpickle)
        return cls(loras, embeddings, [Path(paths.hypernetwork_dir)], safe_unpickle)

    # -- embeddings
    def sync_embeddings(self, model: Any | None, *, print_loaded: bool = False) -> None:
        """Adopt the loaded model's embedding width (reloading when it changed) and pick up changed files. With
        `print_loaded` (A1111 `textual_inversion_print_at_load`) the loaded and skipped embeddings are logged
        whenever that list changed since it was last logged."""
        text = getattr(model, "text_encoders", None) if model is not None else None
        if text is not None and text is not self._text_module:
            self._text_module = text
            self.embeddings.set_model(get_tokenizer("clip").encode, embedding_width(model))
        self.embeddings.load()
        if print_loaded:
            loaded, skipped = sorted(self.embeddings.word_embeddings), sorted(self.embeddings.skipped)
            if (loaded, skipped) != self._displayed:
                self._displayed = (loaded, skipped)
                log.info("Textual inversion embeddings loaded(%d): %s", len(loaded), ", ".join(loaded))
                if skipped:
                    log.info("Textual inversion embeddings skipped(%d): %s", len(skipped), ", ".join(skipped))

    def lookup(self) -> Any:
        """The chunker's lookup (``tokens, position -> (embedding, trigger length)``) over the loaded embeddings."""
        adapters: dict[int, _SpliceVectors] = {}

        def find(tokens: Sequence[int], position: int) -> tuple[_SpliceVectors, int] | None:
            found = self.embeddings.lookup(tokens, position)
            if found is None:
                return None
            embedding, length = found
            adapter = adapters.get(id(embedding))
            if adapter is None:
                adapter = adapters[id(embedding)] = _SpliceVectors(embedding.name, embedding.vectors, embedding.vec)
            return adapter, length

        return find

    # -- hypernetworks
    def list_hypernetworks(self) -> dict[str, Path]:
        """``{name: path}`` of the hypernetwork files."""
        return list_hypernetworks(self.hypernetwork_dirs)

    def load_hypernetwork(self, name: str) -> Hypernetwork | None:
        """A hypernetwork by name (cached while its file is unchanged); None when no file has that name."""
        path = self.list_hypernetworks().get(name)
        if path is None:
            return None
        key = (str(path), path.stat().st_mtime)
        if key not in self._hypernetworks:
            self._hypernetworks = {k: v for k, v in self._hypernetworks.items() if k[0] != key[0]}
            self._hypernetworks[key] = load_hypernetwork(path, safe_unpickle=self.safe_unpickle)
        return self._hypernetworks[key]

    # -- paste
    def alias_for_hash(self, short: str) -> str | None:
        """The display name of the local LoRA whose shorthash starts with ``short`` (None if none)."""
        entry = self.loras.find_by_shorthash(short)
        return self.loras.display_name(entry) if entry is not None else None

    def rewrite_pasted_prompt(self, prompt: str, fields: Mapping[str, Any]) -> str:
        """A1111 Lora ``infotext_pasted``: ``<lora:alias:`` → the local network with the pasted hash."""
        return rewrite_lora_names(prompt, fields.get("Lora hashes"), self.alias_for_hash)


def rewrite_pasted_fields(library: NetworkLibrary | None, fields: dict[str, Any]) -> dict[str, Any]:
    """Apply :meth:`NetworkLibrary.rewrite_pasted_prompt` to ``Prompt`` / ``Hires prompt`` of parsed infotext fields
    (for the UI paste button and the API ``infotext`` field); returns ``fields``."""
    if library is None or not parse_hashes(fields.get("Lora hashes")):
        return fields
    for key in ("Prompt", "Hires prompt"):
        if isinstance(fields.get(key), str):
            fields[key] = library.rewrite_pasted_prompt(fields[key], fields)
    return fields


# -------------------------------------------------------------------------------------------- per-job activation
class JobLike(Protocol):
    """What the activation reads from a running job (``modules.processing.run._Job``)."""

    ctx: AppContext
    params: Any
    model: Any
    settings: Any
    prompts: list[str]
    extra_fields: dict[str, Any]
    notices: list[str]


_ACTIVE: weakref.WeakKeyDictionary[nn.Module, NetworkActivation] = weakref.WeakKeyDictionary()
"""Registry: UNet module → the activation of the job running on that model (read by the prompt encoder)."""


def active_networks(model: Any) -> NetworkActivation | None:
    """The activation of the running job on ``model`` (None outside a job or for another model, e.g. a refiner)."""
    unet = getattr(model, "unet", None)
    return _ACTIVE.get(unet) if isinstance(unet, nn.Module) else None


def _setting(settings: Any, key: str, default: Any) -> Any:
    try:
        value = settings[key]
    except (KeyError, LookupError, TypeError):
        return default
    return default if value is None else value


@dataclass
class NetworkActivation:
    """Networks of one job on one model; :meth:`use` switches to the networks of a pass's prompts."""

    library: NetworkLibrary
    model: Any
    settings: Any
    extra_fields: dict[str, Any]
    notices: list[str]
    enabled: bool = True
    patcher: ModelPatcher | None = None
    _index: ModuleNameIndex | None = None
    _current: tuple[Any, ...] = ()
    lora_hashes: dict[str, str] = field(default_factory=dict)
    ti_hashes: dict[str, str] = field(default_factory=dict)
    bundled: dict[str, str] = field(default_factory=dict)
    """Embeddings bundled in the active LoRA files, registered while they are active: name → network name."""

    def embedding_lookup(self) -> Any:
        """The TI lookup for the text encoders' splice hook."""
        return self.library.lookup()

    def signature(self) -> tuple[Any, ...]:
        """What the networks patched into the weights now are (A1111 `extra_network_data` in `cached_params`):
        equal signatures mean equal text-encoder weights, for the persistent cond cache."""
        return (self.enabled, self._current)

    def _note(self, message: str, *, console: bool = True) -> None:
        if message not in self.notices:
            self.notices.append(message)
            if console:
                log.warning("%s", message)

    def _requests(self, prompt: str) -> tuple[list[LoraRequest], list[tuple[str, float]]]:
        _text, tags = parse_prompt(prompt)
        loras: list[LoraRequest] = []
        hypernets: list[tuple[str, float]] = []
        for tag in LORA_TAGS:
            for params in tags.get(tag, []):
                try:
                    loras.append(LoraRequest.from_args(params.items))
                except ValueError as error:
                    self._note(str(error))
        for params in tags.get("hypernet", []):
            try:
                hypernets.append(parse_hypernet_args(params.items))
            except ValueError as error:
                self._note(str(error))
        return loras, hypernets

    def use(self, prompts: Sequence[str]) -> bool:
        """Activate the networks of ``prompts[0]`` (A1111: the batch's first prompt); True when the patched weights
        changed (cached conds made with other text-encoder weights are then stale)."""
        if not self.enabled or not prompts:
            return False
        self._note_skipped_embeddings(prompts)
        loras, hypernets = self._requests(prompts[0])
        key = (tuple(loras), tuple(hypernets))
        if key == self._current:
            return False
        self.release()
        self._current = key
        if not loras:
            self.library.loras.purge(int(_setting(self.settings, "lora_in_memory_limit", 0) or 0), 0)
        if not loras and not hypernets:
            return True
        patcher = ModelPatcher(model_components(self.model))
        self._add_loras(patcher, loras)
        self._add_hypernetworks(patcher, hypernets)
        patcher.apply()
        self.patcher = patcher
        return True

    def _add_loras(self, patcher: ModelPatcher, requests: Sequence[LoraRequest]) -> None:
        if not requests:
            return
        registry = self.library.loras
        missing: list[str] = []
        loaded: list[tuple[LoadedLora, LoraRequest]] = []
        for request in requests:
            entry = registry.find(request.name)
            if entry is None:
                missing.append(request.name)
                continue
            try:
                loaded.append((registry.load(entry, safe_unpickle=self.library.safe_unpickle), request))
            except Exception as error:  # any reader error: report, keep generating (A1111)
                self._note(f"Network {request.name} could not be loaded ({entry.path.name}): {error}")
                continue
            try:
                self.lora_hashes[request.name] = shorthash(entry.read_hash(registry.hash_cache))
            except OSError as error:
                log.warning("could not hash %s: %s", entry.path, error)
        # A1111 keeps the job's networks plus `lora_in_memory_limit` others in memory
        registry.purge(int(_setting(self.settings, "lora_in_memory_limit", 0) or 0), len(loaded))
        if missing:
            # A1111 adds the message to the job's notices and prints it only with `lora_not_found_warning_console`
            self._note("Networks not found: " + ", ".join(missing),
                       console=bool(_setting(self.settings, "lora_not_found_warning_console", False)))
        if self._index is None:
            self._index = ModuleNameIndex.from_modules(patcher.iter_modules())
        report = add_loras(patcher, loaded, self._index,
                           functional=bool(_setting(self.settings, "lora_functional", False)))
        for message in report.messages:
            self._note(message)
        for lora, request in loaded:
            if lora.name in report.skipped:
                self.lora_hashes.pop(request.name, None)
            else:
                self._register_bundled(lora, request.name)
        value = format_hashes(self.lora_hashes.items())
        if value and _setting(self.settings, "lora_add_hashes_to_infotext", True):
            self.extra_fields["Lora hashes"] = value

    def _register_bundled(self, lora: LoadedLora, network: str) -> None:
        """A1111 1.7 `bundle_emb.*`: the network's embeddings are usable in the prompt while it is active; one of
        the same name from the embeddings folder wins (A1111 "Skip bundle embedding"), one made for another text
        encoder width is reported."""
        db = self.library.embeddings
        found, errors = bundled_embeddings(lora)
        for message in errors:
            self._note(message)
        for embedding in found:
            if embedding.name in db.word_embeddings and embedding.name not in self.bundled:
                log.warning('Skip bundle embedding: "%s" as it has already been loaded from embeddings folders',
                            embedding.name)
            elif db.expected_shape is not None and embedding.shape != db.expected_shape:
                self._note(f"Network {network}: bundled embedding {embedding.name} was skipped: its vectors have "
                           f"size {embedding.shape}, this model uses {db.expected_shape}")
            else:
                db.register(embedding)
                self.bundled[embedding.name] = network

    def _add_hypernetworks(self, patcher: ModelPatcher, requests: Sequence[tuple[str, float]]) -> None:
        chain: list[tuple[Hypernetwork, float]] = []
        for name, multiplier in requests:
            try:
                network = self.library.load_hypernetwork(name)
            except HypernetworkLoadError as error:
                self._note(f"Hypernetwork {name} could not be loaded: {error}")
                continue
            if network is None:
                self._note(f"Hypernetwork not found: {name}")
                continue
            if _setting(self.settings, "print_hypernet_extra", False) and name not in self.library.described:
                self.library.described.add(name)  # A1111 prints these once, when the file is loaded
                log.info("Hypernetwork %s:\n%s", name, describe_hypernetwork(network))
            chain.append((network, multiplier))
        add_hypernetworks(patcher, chain)

    def _note_skipped_embeddings(self, prompts: Sequence[str]) -> None:
        skipped = self.library.embeddings.skipped
        if not skipped:
            return
        text = " ".join(prompts)
        for name, embedding in skipped.items():
            if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", text, flags=re.IGNORECASE):
                self._note(f"Textual inversion embedding {name} was skipped: its vectors have size "
                           f"{embedding.shape}, this model uses {self.library.embeddings.expected_shape}")

    def note_embeddings(self, used: Mapping[str, Any]) -> None:
        """Record the embeddings a prompt used, for ``TI hashes`` (A1111 ``sd_hijack_clip`` ``embeddings_used``)."""
        db = self.library.embeddings
        for name in used:
            embedding: Embedding | None = db.get(name)
            if embedding is None or name in self.ti_hashes:
                continue
            if name in self.bundled:
                # A1111 `BundledTIHash`: the network's name stands for the hash, left out with the setting off
                if _setting(self.settings, "lora_bundled_ti_to_infotext", True):
                    self.ti_hashes[name] = self.bundled[name]
                continue
            self.ti_hashes[name] = shorthash(db.ensure_hash(embedding))
        value = format_hashes(self.ti_hashes.items())
        if value and _setting(self.settings, "textual_inversion_add_hashes_to_infotext", True):
            self.extra_fields["TI hashes"] = value

    def release(self) -> None:
        """Restore the original weights and remove hooks (bit-identical, see ModelPatcher.restore)."""
        if self.patcher is not None:
            self.patcher.restore()
            self.patcher = None
        for name in self.bundled:
            self.library.embeddings.unregister(name)
        self.bundled.clear()
        self._current = ()


def add_default_lora(run: JobLike, library: NetworkLibrary, name: str, multiplier: float) -> None:
    """The `sd_lora` setting ("Add network to prompt", A1111 Lora extension): a known network is appended as
    ``<lora:name:extra_networks_default_multiplier>`` to every prompt of a job whose first prompt does not name it
    (A1111 checks the batch's parsed networks), so the infotext shows it."""
    if not name or name == "None" or library.loras.find(name) is None:
        return
    named = [p.items[0] for p in parse_prompt(run.prompts[0])[1].get("lora", []) if p.items] if run.prompts else []
    if name in named:
        return
    run.prompts[:] = [prompt + f"<lora:{name}:{multiplier:g}>" for prompt in run.prompts]


@contextmanager
def activate_networks(run: JobLike) -> Iterator[NetworkActivation | None]:
    """Extra networks for the job ``run`` on ``run.model``: registered for the prompt encoder while the block runs,
    always restored at the end (normal end, error or interrupt)."""
    library = run.ctx.networks
    model = run.model
    unet = getattr(model, "unet", None)
    if not isinstance(unet, nn.Module):
        yield None
        return
    library.sync_embeddings(model, print_loaded=bool(_setting(run.settings, "textual_inversion_print_at_load", False)))
    enabled = not bool(getattr(run.params, "disable_extra_networks", False))
    if enabled:
        multiplier = float(_setting(run.settings, "extra_networks_default_multiplier", 1.0))
        default = str(_setting(run.settings, "sd_hypernetwork", "None"))
        for i, prompt in enumerate(run.prompts):
            named = [(p.items[0], 0.0) for p in parse_prompt(prompt)[1].get("hypernet", []) if p.items]
            _requests, suffix = with_default_hypernetwork(named, default, multiplier)
            if suffix:
                run.prompts[i] = prompt + suffix
        add_default_lora(run, library, str(_setting(run.settings, "sd_lora", "None")), multiplier)
    activation = NetworkActivation(library, model, run.settings, run.extra_fields, run.notices, enabled=enabled)
    if _ACTIVE.get(unet) is not None:
        raise RuntimeError("extra networks are already active on this model (one job at a time)")
    _ACTIVE[unet] = activation
    try:
        yield activation
    finally:
        try:
            activation.release()
        finally:
            _ACTIVE.pop(unet, None)


# ------------------------------------------------------------------------------- extra networks of extensions
def _call_handler(handler: Any, method: str, *args: Any) -> None:
    try:
        getattr(handler, method)(*args)
    except Exception:  # A1111 `errors.display`: report, go on with the job
        log.exception("%s of extra network %s failed", method, getattr(handler, "name", handler))


def activate_extension_networks(library: NetworkLibrary, p: Any, data: Mapping[str, Sequence[Any]]) -> None:
    """A1111 `extra_networks.activate(p, extra_network_data)` for the networks extensions registered: each tag
    name of the batch's first prompt (`data`, `{name: [ExtraNetworkParams]}`, in prompt order) calls its network's
    `activate(p, params_list)`, then every other registered network gets `activate(p, [])`. Unknown names (other
    than the app's own `lora`/`lyco`/`hypernet`) are skipped with a log line; a raising network is logged."""
    activated: list[Any] = []
    for name, params_list in data.items():
        handler = library.handlers.get(name) or library.handler_aliases.get(name)
        if handler is None:
            if name not in (*LORA_TAGS, "hypernet"):
                log.info("Skipping unknown extra network: %s", name)
            continue
        _call_handler(handler, "activate", p, list(params_list))
        activated.append(handler)
    for handler in library.handlers.values():
        if not any(handler is done for done in activated):
            _call_handler(handler, "activate", p, [])


def deactivate_extension_networks(library: NetworkLibrary, p: Any) -> None:
    """A1111 `extra_networks.deactivate(p, extra_network_data)` once the job's batches are done: `deactivate(p)`
    of the networks named in `p.extra_network_data`, then of every other registered network (also when the job
    failed or was interrupted, so no network stays active)."""
    data = getattr(p, "extra_network_data", None) or {}
    named = [library.handlers.get(n) or library.handler_aliases.get(n) for n in data]
    handlers = [h for h in named if h is not None]
    handlers += [h for h in library.handlers.values() if not any(h is done for done in handlers)]
    for handler in handlers:
        _call_handler(handler, "deactivate", p)
