"""Output file names: A1111's filename pattern tokens, sanitising and the sequence number.

A1111 `modules/images.py` (`FilenameGenerator`, `sanitize_filename_part`, `get_next_sequence_number`):

* A pattern is text with `[token]`, `[token<arg>]` or `[token<arg1><arg2>]` parts; tokens are case-insensitive;
  an unknown token (or one whose value is unknown) stays as literal text "[token]".
* Some tokens are meaningless for a job (e.g. `[batch_number]` with batch size 1); they vanish together with the
  text written just before them, so "x-[batch_number]" gives "x".
* Each value is sanitised: `#<>:"/\\|?*` and newlines/tabs become "_" (only "/" with
  `--unix-filenames-sanitization`), leading spaces and trailing " ." are stripped, and parts are cut to
  `--filenames-max-length` (128) characters; `[prompt]` also turns spaces into "_".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from PIL import Image

from modules.images.infotext_compat import scheduler_for_filename

DEFAULT_TIME_FORMAT = "%Y%m%d%H%M%S"
DEFAULT_FILENAMES_MAX_LENGTH = 128
INVALID_FILENAME_CHARS = '#<>:"/\\|?*\n\r\t'
INVALID_FILENAME_PREFIX = " "
INVALID_FILENAME_POSTFIX = " ."

_NON_LETTERS_RE = re.compile(r"[\s" + re.escape(string.punctuation) + "]+")
_PATTERN_RE = re.compile(r"(.*?)(?:\[([^\[\]]+)\]|$)", re.DOTALL)
_PATTERN_ARG_RE = re.compile(r"(.*)<([^>]*)>$")


class _SkipPrevious:
    """Marker: the token is meaningless for this job; drop it and the text before it."""


SKIP = _SkipPrevious()


def sanitize_filename_part(
    text: str | None,
    replace_spaces: bool = True,
    *,
    max_length: int = DEFAULT_FILENAMES_MAX_LENGTH,
    unix_only: bool = False,
) -> str | None:
    """A1111 `sanitize_filename_part` (see module docstring); None stays None."""
    if text is None:
        return None
    if replace_spaces:
        text = text.replace(" ", "_")
    invalid = "/" if unix_only else INVALID_FILENAME_CHARS
    text = text.translate({ord(ch): "_" for ch in invalid})
    text = text.lstrip(INVALID_FILENAME_PREFIX)[:max_length]
    return text.rstrip(INVALID_FILENAME_POSTFIX)


@dataclass
class FilenameJob:
    """What the filename tokens may refer to: the job (A1111's `p`) and the image's place in it.

    `prompt` passed to `FilenameGenerator` is the image's own prompt with styles applied; `style_prompts` are the
    prompt texts of the applied styles (for `[prompt_no_styles]`).
    """

    prompt: str = ""
    negative_prompt: str = ""
    styles: Sequence[str] = ()
    style_prompts: Sequence[str] = ()
    steps: int | None = None
    cfg_scale: float | None = None
    sampler_name: str | None = None
    scheduler: str | None = None
    model_name: str | None = None
    model_hash: str | None = None
    batch_size: int = 1
    batch_index: int = 0
    n_iter: int = 1
    iteration: int = 0
    all_seeds: Sequence[int] = ()
    job_timestamp: str | None = None
    denoising_strength: float | None = None
    clip_skip: int | None = None
    user: str | None = None
    vae_file: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class FilenameGenerator:
    """Expand A1111 filename patterns for one image (A1111 `FilenameGenerator.apply`)."""

    def __init__(
        self,
        job: FilenameJob | None,
        seed: int | None,
        prompt: str | None,
        image: Image.Image | None,
        *,
        basename: str = "",
        zip: bool = False,
        max_prompt_words: int = 8,
        filenames_max_length: int = DEFAULT_FILENAMES_MAX_LENGTH,
        unix_filenames_sanitization: bool = False,
        now: dt.datetime | None = None,
    ) -> None:
        self.job = job
        self.seed = seed
        self.prompt = prompt
        self.image = image
        self.basename = basename
        self.zip = zip
        self.max_prompt_words = max_prompt_words
        self.max_length = filenames_max_length
        self.unix_only = unix_filenames_sanitization
        self.now = now or dt.datetime.now()

    # -- helpers ---------------------------------------------------------------------------------------------
    def sanitize(self, text: str | None, replace_spaces: bool = True) -> str | None:
        return sanitize_filename_part(text, replace_spaces, max_length=self.max_length, unix_only=self.unix_only)

    def _job(self) -> FilenameJob:
        if self.job is None:
            raise LookupError("no job information")
        return self.job

    def prompt_no_styles(self) -> str | None:
        """The prompt with the text of each applied style removed (A1111 `prompt_no_style`)."""
        if self.prompt is None or self.job is None:
            return None
        text = self.prompt
        for style in self.job.style_prompts:
            if not style:
                continue
            for part in style.split("{prompt}"):
                text = text.replace(part, "").replace(", ,", ",").strip().strip(",")
            text = text.replace(style, "").strip().strip(",").strip()
        return self.sanitize(text, replace_spaces=False)

    def prompt_words(self) -> str | None:
        words = [w for w in _NON_LETTERS_RE.split(self.prompt or "") if w] or ["empty"]
        return self.sanitize(" ".join(words[: self.max_prompt_words]), replace_spaces=False)

    def datetime(self, *args: str) -> str | None:
        """`[datetime]`, `[datetime<fmt>]`, `[datetime<fmt><Time/Zone>]`; a bad format falls back to the default."""
        time_format = args[0] if args and args[0] else DEFAULT_TIME_FORMAT
        moment = self.now
        if len(args) > 1 and args[1]:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                moment = moment.astimezone(ZoneInfo(args[1]))
        try:
            text = moment.strftime(time_format)
        except (ValueError, TypeError):
            text = moment.strftime(DEFAULT_TIME_FORMAT)
        return self.sanitize(text, replace_spaces=False)

    def hasprompt(self, *args: str) -> str | None:
        """`[hasprompt<word|default><word2>…]`: each word found in the prompt, else its default."""
        if self.job is None or self.prompt is None:
            return None
        lower = self.prompt.lower()
        out = ""
        for arg in args:
            if arg:
                expected, _, default = arg.partition("|")
                expected = expected.lower()
                out += expected if expected in lower else default
        return self.sanitize(out)

    @staticmethod
    def string_hash(text: str, *args: str) -> str:
        length = int(args[0]) if args and args[0] else 8
        return hashlib.sha256(text.encode()).hexdigest()[:length]

    def image_hash(self, *args: str) -> str | None:
        if self.image is None:
            return None
        length = int(args[0]) if args and args[0] else None
        return hashlib.sha256(self.image.tobytes()).hexdigest()[:length]

    def vae_filename(self) -> str:
        """Loaded VAE file name without extension ("NoneType" when none is loaded, as A1111 writes)."""
        job = self._job()
        if not job.vae_file:
            return "NoneType"
        parts = os.path.basename(job.vae_file).split(".")
        return parts[1] if len(parts) > 1 and parts[0] == "" else parts[0]

    def sampler_scheduler(self, with_sampler: bool) -> Any:
        job = self._job()
        if job.sampler_name is None:
            return SKIP
        text = scheduler_for_filename(job.sampler_name, job.scheduler)
        if with_sampler:
            text = f"{job.sampler_name} {text}"
        return self.sanitize(text, replace_spaces=False)

    # -- token table -----------------------------------------------------------------------------------------
    replacements: ClassVar[dict[str, Callable[..., Any]]] = {
        "basename": lambda self: self.basename,
        "seed": lambda self: self.seed if self.seed is not None else "",
        "seed_first": lambda self: self.seed if self._job().batch_size == 1 else self._job().all_seeds[0],
        "seed_last": lambda self: SKIP if self._job().batch_size == 1 else self._job().all_seeds[-1],
        "steps": lambda self: self.job and self.job.steps,
        "cfg": lambda self: self.job and _number(self.job.cfg_scale),
        "width": lambda self: self.image.width if self.image else None,
        "height": lambda self: self.image.height if self.image else None,
        "styles": lambda self: self.job and self.sanitize(
            ", ".join(s for s in self.job.styles if s != "None") or "None", replace_spaces=False),
        "sampler": lambda self: self.job and self.sanitize(self.job.sampler_name, replace_spaces=False),
        "sampler_scheduler": lambda self: self.sampler_scheduler(True),
        "scheduler": lambda self: self.sampler_scheduler(False),
        "model_hash": lambda self: self._job().model_hash,
        "model_name": lambda self: self.sanitize(self._job().model_name, replace_spaces=False),
        "date": lambda self: self.now.strftime("%Y-%m-%d"),
        "datetime": lambda self, *args: self.datetime(*args),
        "job_timestamp": lambda self: self._job().job_timestamp or self.now.strftime(DEFAULT_TIME_FORMAT),
        "prompt_hash": lambda self, *args: self.string_hash(self.prompt or "", *args),
        "negative_prompt_hash": lambda self, *args: self.string_hash(self._job().negative_prompt, *args),
        "full_prompt_hash": lambda self, *args: self.string_hash(
            f"{self._job().prompt} {self._job().negative_prompt}", *args),
        "prompt": lambda self: self.sanitize(self.prompt),
        "prompt_no_styles": lambda self: self.prompt_no_styles(),
        "prompt_spaces": lambda self: self.sanitize(self.prompt, replace_spaces=False),
        "prompt_words": lambda self: self.prompt_words(),
        "batch_number": lambda self: SKIP if self._job().batch_size == 1 or self.zip else self._job().batch_index + 1,
        "batch_size": lambda self: self._job().batch_size,
        "generation_number": lambda self: SKIP if (self._job().n_iter == 1 and self._job().batch_size == 1) or self.zip
        else self._job().iteration * self._job().batch_size + self._job().batch_index + 1,
        "hasprompt": lambda self, *args: self.hasprompt(*args),
        "clip_skip": lambda self: self._job().clip_skip,
        "denoising": lambda self: _number(self._job().denoising_strength) if self._job().denoising_strength else SKIP,
        "user": lambda self: self._job().user,
        "vae_filename": lambda self: self.vae_filename(),
        "none": lambda self: "",
        "image_hash": lambda self, *args: self.image_hash(*args),
    }

    def apply(self, pattern: str) -> str:
        """Expand every `[token]` of `pattern` (see module docstring)."""
        out = ""
        for m in _PATTERN_RE.finditer(pattern):
            text, token = m.groups()
            if token is None:
                out += text
                continue
            args: list[str] = []
            name = token
            while (am := _PATTERN_ARG_RE.match(name)) is not None:
                name, arg = am.groups()
                args.insert(0, arg)
            fun = self.replacements.get(name.lower())
            if fun is not None:
                try:
                    value = fun(self, *args)
                except (LookupError, ValueError, TypeError, AttributeError):
                    value = None
                if value is SKIP:
                    continue
                if value is not None:
                    out += text + str(value)
                    continue
            out += f"{text}[{token}]"
        return out


def _number(value: float | None) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def get_next_sequence_number(path: str | os.PathLike[str], basename: str = "") -> int:
    """1 + the largest leading number among files in `path` that start with "basename-" (0 for an empty folder).

    A1111: the number is the first "-"-separated part after the basename prefix; names without one are ignored.
    """
    prefix = f"{basename}-" if basename else ""
    result = -1
    directory = Path(path)
    if not directory.is_dir():
        return 0
    for name in os.listdir(directory):
        if not name.startswith(prefix):
            continue
        first = os.path.splitext(name[len(prefix):])[0].split("-")[0]
        try:
            result = max(result, int(first))
        except ValueError:
            continue
    return result + 1


def truncate_filename(stem: str, extension: str, directory: str | os.PathLike[str]) -> str:
    """Cut `stem` so that stem + extension fits the filesystem's name limit (in UTF-8 bytes).

    A1111 cuts to `os.statvfs(path).f_namemax - max(4, len(extension))`; it applies that to the whole path, here it
    is applied to the file name only, which is what the limit is about.
    """
    try:
        name_max = os.statvfs(directory).f_namemax
    except (AttributeError, OSError):
        name_max = 255
    limit = name_max - max(4, len(extension))
    encoded = stem.encode("utf-8")
    if len(encoded) <= limit:
        return stem
    return encoded[:limit].decode("utf-8", errors="ignore")
