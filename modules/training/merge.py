"""Checkpoint merger: weighted sum / add difference / no interpolation, streamed tensor by tensor.

A1111 behaviour implemented (reference §3.6, A1111 ``modules/extras.run_modelmerger``):

* Methods: ``No interpolation`` (A alone: format conversion, fp16, VAE bake, discarding weights), ``Weighted sum``
  ``A·(1−M) + B·M`` (needs B), ``Add difference`` ``A + (B − C)·M`` (needs B and C). Only keys containing
  ``model`` that B also has are merged (``…embeddings.position_ids`` never is); A's other keys are kept; keys only
  B has are dropped. In add difference a key B has but C lacks contributes nothing.
* Inpainting / instruct-pix2pix: when A's first UNet conv has 9 (8) input channels and B's has 4, only the first 4
  channels are merged and the result is named ``….inpainting`` (``….instruct-pix2pix``); B being the 9/8-channel
  model is refused ("A must be the inpainting model"). Any other shape difference is refused before anything is
  written (A1111 fails half-way with a torch broadcast error).
* ``Save as float16`` turns float32 tensors into float16; ``Bake in VAE`` replaces every ``first_stage_model.*``
  tensor with the VAE file's; ``Discard weights with matching name`` drops keys where the regex matches anywhere
  (``re.search``). Our ``prune`` option also drops EMA and optimizer tensors (``model_ema.*``, ``optimizer*``).
* Output ``<models/Stable-diffusion or --ckpt-dir>/<name>.<safetensors|ckpt>``, the default name being
  ``"{1-M}(A) + {M}(B)"`` / ``"A + {M}(B - C)"`` / ``"A"`` with A1111's ``round(x, 2)`` numbers. The config
  sidecar (``.yaml``) is copied from "A, B or C" (first that has one), "B", "C" or not at all (a stale one is
  removed).
* Metadata (safetensors only): with "Save metadata", the merged models' own metadata (when "Copy metadata from
  merged models"), then the user's JSON, then with "Add merge recipe metadata" ``sd_merge_recipe`` (JSON: ``type``
  "webui", the three model sha256s, ``interp_method``, ``multiplier``, ``save_as_half``, ``custom_name``,
  ``config_source`` (index), ``bake_in_vae``, ``discard_weights``, ``is_inpainting``, ``is_instruct_pix2pix``) and
  ``sd_merge_models`` (JSON: sha256 → ``{name, legacy_hash, sd_merge_recipe}`` for each input, plus the inputs' own
  ``sd_merge_models``).

Memory: inputs are read one tensor at a time (safetensors ``safe_open``; pickles memory-mapped), each result tensor
is computed in float32 and written at once by the streaming safetensors writer, so a merge needs a few tensors of RAM
beyond the page cache (a ``.ckpt`` result is pickled whole: one model's size). Output goes through a temp file and
``os.replace``: a failed or interrupted merge leaves no file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from modules.models.checkpoints import CheckpointInfo
from modules.models.hashes import HashCache, legacy_model_hash
from modules.models.safe_unpickle import CheckpointLoadError
from modules.models.state_dict_io import read_safetensors_metadata
from modules.models.vae_files import read_vae_state_dict
from modules.training.atomic import atomic_copy, atomic_torch_save
from modules.training.safetensors_stream import StreamingSafetensorsWriter, TensorSource

METHOD_NONE = "No interpolation"
METHOD_WEIGHTED_SUM = "Weighted sum"
METHOD_ADD_DIFFERENCE = "Add difference"
METHODS = (METHOD_NONE, METHOD_WEIGHTED_SUM, METHOD_ADD_DIFFERENCE)
CONFIG_SOURCES = ("A, B or C", "B", "C", "Don't")
CHECKPOINT_FORMATS = ("ckpt", "safetensors")
SKIP_ON_MERGE = frozenset({"cond_stage_model.transformer.text_model.embeddings.position_ids"})
PRUNED_PREFIXES = ("model_ema.", "model_ema_", "optimizer")
VAE_PREFIX = "first_stage_model."
UNET_INPUT_KEY = "model.diffusion_model.input_blocks.0.0.weight"

Progress = Callable[[int, int, str], None]
"""``progress(done, total, text)``."""


class MergeError(ValueError):
    """A merge that cannot be done as asked; the message is shown to the user as it is."""


@dataclass(frozen=True)
class MergeModel:
    """One input checkpoint: its file and the names/hashes the recipe metadata records."""

    path: Path
    name: str
    model_name: str
    sha256: str | None = None
    config_path: Path | None = None

    @classmethod
    def from_checkpoint(cls, info: CheckpointInfo) -> MergeModel:
        return cls(Path(info.filename), info.name, info.model_name, info.sha256, info.config_path)


@dataclass
class MergeOptions:
    """The Checkpoint Merger tab's fields (A1111 names and defaults)."""

    primary: MergeModel | None
    secondary: MergeModel | None = None
    tertiary: MergeModel | None = None
    method: str = METHOD_WEIGHTED_SUM
    multiplier: float = 0.3
    custom_name: str = ""
    checkpoint_format: str = "safetensors"
    save_as_half: bool = False
    config_source: str = CONFIG_SOURCES[0]
    bake_in_vae: Path | None = None
    bake_in_vae_name: str = "None"
    discard_weights: str = ""
    save_metadata: bool = True
    add_merge_recipe: bool = True
    copy_metadata_fields: bool = True
    metadata_json: str = ""
    prune: bool = False


@dataclass
class MergeResult:
    """What was written."""

    path: Path
    tensors: int
    merged: int
    discarded: list[str] = field(default_factory=list)
    config_path: Path | None = None
    is_inpainting: bool = False
    is_instruct_pix2pix: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def message(self) -> str:
        """A1111's result line."""
        return f"Checkpoint saved to {self.path}"


@dataclass(frozen=True)
class _Entry:
    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    op: str  # "copy" | "merge" | "channels" | "vae"


def models_used(options: MergeOptions) -> dict[str, MergeModel]:
    """``{"A": …, "B": …, "C": …}`` as the method needs them; MergeError naming what is missing."""
    if options.method not in METHODS:
        raise MergeError(f"Unknown interpolation method {options.method!r}; choose one of {', '.join(METHODS)}")
    if options.primary is None:
        raise MergeError("Failed: Merging requires a primary model (A).")
    used = {"A": options.primary}
    if options.method in (METHOD_WEIGHTED_SUM, METHOD_ADD_DIFFERENCE):
        if options.secondary is None:
            raise MergeError(f"Failed: {options.method} requires a secondary model (B).")
        used["B"] = options.secondary
    if options.method == METHOD_ADD_DIFFERENCE:
        if options.tertiary is None:
            raise MergeError("Failed: Interpolation method (Add difference) requires a tertiary model (C).")
        used["C"] = options.tertiary
    return used


def default_name(options: MergeOptions) -> str:
    """A1111's file name (without flags and extension) when no custom name is given."""
    used = models_used(options)
    m = options.multiplier
    if options.method == METHOD_WEIGHTED_SUM:
        return f"{round(1 - m, 2)}({used['A'].model_name}) + {round(m, 2)}({used['B'].model_name})"
    if options.method == METHOD_ADD_DIFFERENCE:
        return f"{used['A'].model_name} + {round(m, 2)}({used['B'].model_name} - {used['C'].model_name})"
    return used["A"].model_name


def with_hashes(options: MergeOptions, cache: HashCache | None) -> MergeOptions:
    """Fill in each input's sha256 (the recipe metadata is keyed by it), computing and caching it when unknown."""
    def hashed(model: MergeModel | None) -> MergeModel | None:
        if model is None or model.sha256 or cache is None:
            return model
        return replace(model, sha256=cache.sha256(model.path, f"checkpoint/{model.name}"))

    return replace(options, primary=hashed(options.primary), secondary=hashed(options.secondary),
                   tertiary=hashed(options.tertiary))


def _validate(options: MergeOptions) -> re.Pattern[str] | None:
    if options.checkpoint_format not in CHECKPOINT_FORMATS:
        raise MergeError(f"Checkpoint format must be one of {', '.join(CHECKPOINT_FORMATS)}")
    if options.config_source not in CONFIG_SOURCES:
        raise MergeError(f"Copy config from must be one of {', '.join(CONFIG_SOURCES)}")
    if not 0.0 <= float(options.multiplier) <= 1.0 and options.method != METHOD_NONE:
        raise MergeError(f"Multiplier (M) must be between 0 and 1, got {options.multiplier}")
    for letter, model in models_used(options).items():
        if not model.path.is_file():
            raise MergeError(f"Model {letter} ({model.name}) was not found at {model.path}; refresh the list")
    if not options.discard_weights:
        return None
    try:
        return re.compile(options.discard_weights)
    except re.error as error:
        raise MergeError(f"Discard weights: {options.discard_weights!r} is not a valid regular expression "
                         f"({error})") from None


def _user_metadata(text: str) -> dict[str, str]:
    if not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except ValueError as error:
        raise MergeError(f"Metadata is not valid JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise MergeError("Metadata must be a JSON object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in parsed.items()}


def _decode(value: str | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def build_metadata(options: MergeOptions, is_inpainting: bool, is_ip2p: bool) -> dict[str, str]:
    """The safetensors ``__metadata__`` of the merged file (rules in the module docstring)."""
    if not options.save_metadata:
        return {}
    used = models_used(options)
    sources = {letter: (read_safetensors_metadata(m.path) if m.path.suffix.lower() == ".safetensors" else {})
               for letter, m in used.items()}
    metadata: dict[str, str] = {}
    if options.copy_metadata_fields:
        for letter in used:
            metadata.update(sources[letter])
    metadata.update(_user_metadata(options.metadata_json))
    if options.add_merge_recipe:
        recipe = {
            "type": "webui",
            "primary_model_hash": used["A"].sha256,
            "secondary_model_hash": used["B"].sha256 if "B" in used else None,
            "tertiary_model_hash": used["C"].sha256 if "C" in used else None,
            "interp_method": options.method,
            "multiplier": options.multiplier,
            "save_as_half": options.save_as_half,
            "custom_name": options.custom_name,
            "config_source": CONFIG_SOURCES.index(options.config_source),
            "bake_in_vae": options.bake_in_vae_name if options.bake_in_vae is not None else "None",
            "discard_weights": options.discard_weights,
            "is_inpainting": is_inpainting,
            "is_instruct_pix2pix": is_ip2p,
        }
        models: dict[str, Any] = {}
        for letter, model in used.items():
            models[str(model.sha256)] = {"name": model.name, "legacy_hash": legacy_model_hash(model.path),
                                         "sd_merge_recipe": _decode(sources[letter].get("sd_merge_recipe"))}
            earlier = _decode(sources[letter].get("sd_merge_models"))
            if isinstance(earlier, dict):
                models.update(earlier)
        metadata["sd_merge_recipe"] = json.dumps(recipe)
        metadata["sd_merge_models"] = json.dumps(models)
    return metadata


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape) or "scalar"


def _plan(options: MergeOptions, a: TensorSource, b: TensorSource | None, c: TensorSource | None,
          vae: Mapping[str, torch.Tensor] | None, discard: re.Pattern[str] | None
          ) -> tuple[list[_Entry], list[str], bool, bool]:
    """Every output tensor's shape, dtype and operation; refuses incompatible inputs before any file is written."""
    entries: list[_Entry] = []
    dropped: list[str] = []
    inpainting = ip2p = False
    for key in a.names():
        if (discard is not None and discard.search(key)) or (options.prune and key.startswith(PRUNED_PREFIXES)):
            dropped.append(key)
            continue
        shape, dtype, op = a.shape(key), a.dtype(key), "copy"
        if (b is not None and key in b and "model" in key and key not in SKIP_ON_MERGE
                and dtype.is_floating_point and b.dtype(key).is_floating_point
                and (c is None or key in c)):
            other = b.shape(key)
            if c is not None and c.shape(key) != other:
                raise MergeError(f"Models B and C are incompatible: {key} is {_shape_text(other)} in B but "
                                 f"{_shape_text(c.shape(key))} in C")
            op = "merge"
            if other != shape:
                same_but_channels = len(shape) == 4 and len(other) == 4 and shape[0] == other[0] \
                    and shape[2:] == other[2:]
                if same_but_channels and shape[1] == 4 and other[1] in (8, 9):
                    kind = "inpainting" if other[1] == 9 else "instruct-pix2pix"
                    raise MergeError(f"When merging an {kind} model with a normal one, A must be the {kind} model.")
                if not (same_but_channels and other[1] == 4 and shape[1] in (8, 9)):
                    raise MergeError(f"Models A and B are incompatible (different architectures?): {key} is "
                                     f"{_shape_text(shape)} in A but {_shape_text(other)} in B")
                op = "channels"
                inpainting, ip2p = inpainting or shape[1] == 9, ip2p or shape[1] == 8
            dtype = torch.promote_types(dtype, b.dtype(key))
            if c is not None:
                dtype = torch.promote_types(dtype, c.dtype(key))
        if vae is not None and key.startswith(VAE_PREFIX) and key[len(VAE_PREFIX):] in vae:
            baked = vae[key[len(VAE_PREFIX):]]
            if tuple(baked.shape) != shape:
                raise MergeError(f"The VAE does not fit model A: {key} is {_shape_text(shape)} in A but "
                                 f"{_shape_text(tuple(baked.shape))} in the VAE")
            op, dtype = "vae", baked.dtype
        if options.save_as_half and dtype == torch.float32:
            dtype = torch.float16
        entries.append(_Entry(key, shape, dtype, op))
    if b is not None and not any(entry.op in ("merge", "channels") for entry in entries):
        raise MergeError("Models A and B have no weights in common: they are of different model families and "
                         "cannot be merged")
    return entries, dropped, inpainting, ip2p


def _compute(entry: _Entry, method: str, m: float, a: TensorSource, b: TensorSource | None,
             c: TensorSource | None, vae: Mapping[str, torch.Tensor] | None) -> torch.Tensor:
    if entry.op == "vae":
        assert vae is not None
        return vae[entry.key[len(VAE_PREFIX):]].to(entry.dtype)
    value = a.get(entry.key)
    if entry.op == "copy":
        return value.to(entry.dtype)
    assert b is not None
    theirs = b.get(entry.key).float()
    if method == METHOD_ADD_DIFFERENCE:
        assert c is not None
        difference = theirs - c.get(entry.key).float()

        def apply(x: torch.Tensor) -> torch.Tensor:
            return x + difference * m
    else:
        def apply(x: torch.Tensor) -> torch.Tensor:
            return x * (1 - m) + theirs * m

    ours = value.float()
    if entry.op == "channels":
        merged = ours.clone()
        merged[:, 0:4] = apply(ours[:, 0:4])
        return merged.to(entry.dtype)
    return apply(ours).to(entry.dtype)


def output_path(options: MergeOptions, out_dir: Path, inpainting: bool = False, ip2p: bool = False) -> Path:
    """``<out_dir>/<name>[.inpainting|.instruct-pix2pix].<format>``; refuses names leaving ``out_dir``."""
    name = options.custom_name.strip() or default_name(options)
    name += ".inpainting" if inpainting else ""
    name += ".instruct-pix2pix" if ip2p else ""
    target = (out_dir / f"{name}.{options.checkpoint_format}").resolve()
    if not target.is_relative_to(out_dir.resolve()) or "/" in name or "\\" in name:
        raise MergeError(f"Custom name {options.custom_name!r} must be a plain file name")
    return target


def _copy_config(options: MergeOptions, target: Path) -> Path | None:
    used = models_used(options)
    order = {"A, B or C": ("A", "B", "C"), "B": ("B",), "C": ("C",)}.get(options.config_source, ())
    source = next((used[k].config_path for k in order if k in used and used[k].config_path), None)
    sidecar = target.with_suffix(".yaml")
    if source is None or not Path(source).is_file():
        sidecar.unlink(missing_ok=True)  # a stale config would mis-describe the new model
        return None
    return atomic_copy(source, sidecar)


def merge_checkpoints(options: MergeOptions, out_dir: str | Path, *, progress: Progress | None = None,
                      check: Callable[[], object] | None = None, safe_unpickle: bool = True) -> MergeResult:
    """Merge as ``options`` say and save into ``out_dir``; MergeError for bad input (nothing is written then)."""
    out_dir = Path(out_dir)
    discard = _validate(options)
    used = models_used(options)
    vae: dict[str, torch.Tensor] | None = None
    if options.bake_in_vae is not None:
        try:
            vae = read_vae_state_dict(options.bake_in_vae, safe_unpickle=safe_unpickle)
        except CheckpointLoadError as error:
            raise MergeError(f"Bake in VAE: {error}") from None
    sources: dict[str, TensorSource] = {}
    try:
        for letter, model in used.items():
            try:
                sources[letter] = TensorSource(model.path, safe_unpickle=safe_unpickle)
            except CheckpointLoadError as error:
                raise MergeError(f"Model {letter}: {error}") from None
        a, b, c = sources["A"], sources.get("B"), sources.get("C")
        entries, dropped, inpainting, ip2p = _plan(options, a, b, c, vae, discard)
        if not entries:
            raise MergeError("Every weight was discarded; nothing would be saved")
        target = output_path(options, out_dir, inpainting, ip2p)
        if any(target == model.path.resolve() for model in used.values()):
            raise MergeError(f"The result would overwrite input model {target.name}; choose a custom name")
        metadata = build_metadata(options, inpainting, ip2p) if options.checkpoint_format == "safetensors" else {}
        total = len(entries)

        def produce(index: int, entry: _Entry) -> torch.Tensor:
            if check is not None:
                check()
            if progress is not None:
                progress(index, total, f"Merging {entry.key}")
            return _compute(entry, options.method, float(options.multiplier), a, b, c, vae)

        if options.checkpoint_format == "safetensors":
            plan = [(e.key, e.shape, e.dtype) for e in entries]
            with StreamingSafetensorsWriter(target, plan, metadata) as writer:
                for index, entry in enumerate(entries):
                    writer.write(entry.key, produce(index, entry))
        else:
            result = {entry.key: produce(index, entry) for index, entry in enumerate(entries)}
            if progress is not None:
                progress(total, total, "Saving")
            atomic_torch_save(result, target)
            del result
    finally:
        for source in sources.values():
            source.close()
    if progress is not None:
        progress(total, total, "Saved")
    config = _copy_config(options, target)
    return MergeResult(target, total, sum(e.op in ("merge", "channels") for e in entries), dropped, config,
                       inpainting, ip2p, metadata)
