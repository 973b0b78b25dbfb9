"""The A1111 infotext: the "generation parameters" text stored in every image and shown in PNG Info.

Layout (A1111 `processing.create_infotext`)::

    <prompt, may span several lines>
    Negative prompt: <negative prompt, may span several lines>        (omitted when empty)
    Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, …, Version: v1.10.1

The parameters line is `", ".join("Key: value")` over the fields in order, skipping None values; a field whose value
equals its key is written as the bare key (a flag).  Values containing "," ":" or a newline are written as JSON
strings (A1111 `infotext_utils.quote`).  Parsing (`parse_generation_parameters`) treats the last line as the
parameters line only if at least three `key: value` pairs are found in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from modules.images.infotext_compat import (
    V180_HR_STYLES,
    apply_missing_defaults,
    apply_version_backcompat,
    parse_version,
)

# Order of the core keys in A1111 1.10 `create_infotext`; extra generation params follow in insertion order (a key
# that is already listed keeps its place and takes the extra value), then Version and User.
INFOTEXT_FIELD_ORDER: tuple[str, ...] = (
    "Steps", "Sampler", "Schedule type", "CFG scale", "Image CFG scale", "Seed", "Face restoration", "Size",
    "Model hash", "Model", "FP8 weight", "Cache FP16 weight for LoRA", "VAE hash", "VAE", "Variation seed",
    "Variation seed strength", "Seed resize from", "Denoising strength", "Conditional mask weight", "Clip skip",
    "ENSD", "Token merging ratio", "Token merging ratio hr", "Init image hash", "RNG", "Tiling",
)
TRAILING_FIELDS: tuple[str, ...] = ("Version", "User")

# Keys whose value is a size written as "WxH"; the parser splits any "WxH" value into "<key>-1" and "<key>-2".
SIZE_FIELDS: tuple[str, ...] = ("Size", "Seed resize from", "Hires resize", "First pass size")

NEGATIVE_PROMPT_PREFIX = "Negative prompt:"

# One `key: value` pair of the parameters line (the format A1111 writes; value is a JSON string or runs to ",").
PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
IMAGE_SIZE_RE = re.compile(r"^(\d+)x(\d+)$")
_FLAG_RE = re.compile(r"^\w[\w \-/]*$")

StyleExtractor = Callable[[str, str], "tuple[list[str], str, str]"]


def format_value(value: Any) -> str:
    """Text of one field value: whole floats lose ".0" (the UI writes "CFG scale: 7"), (w, h) pairs become "WxH"."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}x{value[1]}"
    return str(value)


def quote(value: Any) -> str:
    """A1111 `quote`: a value containing "," ":" or a newline is written as a JSON string (ensure_ascii off).

    One addition: a value that starts and ends with '"' is quoted too; A1111 would write it bare and then read it
    back as a JSON string, so the round trip would lose the quotes.
    """
    text = format_value(value)
    needs = "," in text or "\n" in text or ":" in text or (len(text) >= 2 and text[0] == '"' and text[-1] == '"')
    return json.dumps(text, ensure_ascii=False) if needs else text


def unquote(text: str) -> str:
    """A1111 `unquote`: JSON-decode a value written as '"…"'; anything that does not decode is kept as is."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    return decoded if isinstance(decoded, str) else text


def assemble_fields(
    core: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    *,
    version: str | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """Order the fields as A1111's `create_infotext` does.

    Keys of `INFOTEXT_FIELD_ORDER` come first in that order, whether given in `core` or `extra` (A1111's core dict
    lists them all, so an extra param such as "Denoising strength" or "Schedule type" takes the core position);
    other core keys follow, then the other `extra` keys (`p.extra_generation_params`) in insertion order; an extra
    value replaces a core value.  Version and User close the line.
    """
    extra = extra or {}
    fields: dict[str, Any] = {key: core.get(key) for key in INFOTEXT_FIELD_ORDER if key in core or key in extra}
    fields.update((key, value) for key, value in core.items() if key not in fields and key not in TRAILING_FIELDS)
    fields.update(extra)
    fields["Version"] = version if version is not None else core.get("Version")
    fields["User"] = user if user is not None else core.get("User")
    return fields


def build_parameters_line(fields: Mapping[str, Any]) -> str:
    """The last line of an infotext: "K: V" pairs joined by ", "; None values skipped, key == value as a flag."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        parts.append(key if key == value else f"{key}: {quote(value)}")
    return ", ".join(parts)


def build_infotext(prompt: str, negative_prompt: str | None, fields: Mapping[str, Any]) -> str:
    """Build the whole infotext exactly as A1111 writes it (see the module docstring).

    `fields` maps A1111 labels to values in the order they are written; use `assemble_fields` to get A1111's order
    from a core dict and the extra generation params.
    """
    negative = f"\n{NEGATIVE_PROMPT_PREFIX} {negative_prompt}" if negative_prompt else ""
    return f"{prompt or ''}{negative}\n{build_parameters_line(fields)}".strip()


def split_infotext(text: str) -> tuple[str, str, dict[str, str]]:
    """Split an infotext into (prompt, negative prompt, raw fields) without any normalisation.

    Lines are stripped and "\\r\\n" is read as "\\n".  Raw fields keep the written order and text ("Size": "512x512");
    quoted values are unquoted.  A last line with fewer than three `key: value` pairs belongs to the prompt.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    pairs = _parameter_pairs(lines[-1])
    if pairs:
        lines = lines[:-1]
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PROMPT_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PROMPT_PREFIX):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    fields = {key: unquote(value.strip()) for key, value in pairs}
    return "\n".join(prompt_lines), "\n".join(negative_lines), fields


def _parameter_pairs(line: str) -> list[tuple[str, str]]:
    """The (key, value) pairs of a parameters line, or [] when the line has fewer than three `key: value` pairs.

    Bare flags between pairs (written by A1111 when value == key) are read back as key == value; A1111's own parser
    skips them.
    """
    matches = list(PARAM_RE.finditer(line))
    if len(matches) < 3:
        return []
    pairs: list[tuple[str, str]] = []
    position = 0
    for m in matches:
        for flag in line[position:m.start()].split(","):
            if _FLAG_RE.match(flag.strip()):
                pairs.append((flag.strip(), flag.strip()))
        pairs.append((m.group(1), m.group(2)))
        position = m.end()
    for flag in line[position:].split(","):
        if _FLAG_RE.match(flag.strip()):
            pairs.append((flag.strip(), flag.strip()))
    return pairs


def parse_infotext(
    text: str | bytes | None,
    *,
    normalize: bool = True,
    skip_fields: Iterable[str] = (),
    style_extractor: StyleExtractor | None = None,
    infotext_styles: str = "Apply if any",
    use_old_hires_fix_width_height: bool = False,
    auto_backcompat: bool = True,
) -> dict[str, Any]:
    """Parse any A1111/Forge infotext into A1111's paste dict (`parse_generation_parameters`).

    The result has "Prompt", "Negative prompt" and every field of the parameters line (unknown keys kept, values as
    text); a "WxH" value becomes "<key>-1"/"<key>-2" ("Size-1", "Size-2", "Hires resize-1", …).  With `normalize`
    (the default) A1111's defaults for missing keys (Clip skip "1", RNG "GPU", Schedule type "Automatic", Hires
    resize 0x0, …), the old sampler-name split ("DPM++ 2M Karras"), the old hires-fix conversion and the `Version`
    compatibility flags are applied; `normalize=False` returns only what the text says.
    `style_extractor` (e.g. `StyleDatabase.extract_styles_from_prompt`) removes styles from the prompts according to
    `infotext_styles` ("Ignore", "Apply", "Discard", "Apply if any") and sets "Styles array".
    """
    if text is None:
        text = ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    prompt, negative_prompt, raw = split_infotext(text)
    res: dict[str, Any] = {}
    for key, value in raw.items():
        m = IMAGE_SIZE_RE.match(value)
        if m is not None:
            res[f"{key}-1"], res[f"{key}-2"] = m.group(1), m.group(2)
        else:
            res[key] = value

    if style_extractor is not None and infotext_styles != "Ignore":
        prompt, negative_prompt = _extract_styles(res, prompt, negative_prompt, style_extractor, infotext_styles)

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt
    if normalize:
        apply_missing_defaults(res, use_old_hires_fix_width_height=use_old_hires_fix_width_height)
        if auto_backcompat:
            apply_version_backcompat(res)
    for key in skip_fields:
        res.pop(key, None)
    return res


def _extract_styles(
    res: dict[str, Any], prompt: str, negative_prompt: str, extractor: StyleExtractor, mode: str
) -> tuple[str, str]:
    """Remove style text from the prompts as A1111 does on paste; hires prompts too when their styles match."""
    found, prompt_no_styles, negative_no_styles = extractor(prompt, negative_prompt)
    same_hr_styles = True
    if "Hires prompt" in res or "Hires negative prompt" in res:
        ver = parse_version(res.get("Version"))
        if ver is None or ver > V180_HR_STYLES:
            hr_prompt = res.get("Hires prompt", prompt)
            hr_negative = res.get("Hires negative prompt", negative_prompt)
            hr_found, hr_prompt_no_styles, hr_negative_no_styles = extractor(hr_prompt, hr_negative)
            same_hr_styles = found == hr_found
            if same_hr_styles:
                res["Hires prompt"] = "" if hr_prompt_no_styles == prompt_no_styles else hr_prompt_no_styles
                res["Hires negative prompt"] = "" if hr_negative_no_styles == negative_no_styles else hr_negative_no_styles
    if not same_hr_styles:
        return prompt, negative_prompt
    if (mode == "Apply if any" and found) or mode == "Apply":
        res["Styles array"] = found
    return prompt_no_styles, negative_no_styles


def fields_from_parsed(parsed: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a parse result back into ordered fields for `build_infotext` ("Size-1"/"Size-2" -> "Size": "WxH").

    "Prompt", "Negative prompt" and "Styles array" are left out; the order of the parsed dict is kept.
    """
    fields: dict[str, Any] = {}
    for key, value in parsed.items():
        if key in ("Prompt", "Negative prompt", "Styles array"):
            continue
        if key.endswith("-1") and f"{key[:-2]}-2" in parsed:
            fields[key[:-2]] = f"{value}x{parsed[f'{key[:-2]}-2']}"
        elif key.endswith("-2") and f"{key[:-2]}-1" in parsed:
            continue
        else:
            fields[key] = value
    return fields
