"""Reading and writing the infotext stored inside image files, as A1111 does (`modules/images.py`).

Storage per format (A1111 `save_image_with_geninfo` / `read_info_from_image`):

* PNG: a text chunk named "parameters" (`PngInfo.add_text`: tEXt when Latin-1, else iTXt UTF-8); other text keys
  of the image (e.g. "postprocessing", "extras") are kept.
* JPEG / WebP / AVIF: EXIF UserComment (tag 0x9286 in the Exif IFD), written as piexif's
  `UserComment.dump(text, encoding="unicode")`: the 8-byte prefix b"UNICODE\\0" and the text in UTF-16 big-endian,
  in a big-endian ("MM") TIFF block.  Built here with Pillow's `Image.Exif`, no piexif needed.
* GIF: the "comment" extension.

Reading order: PNG "parameters", then a non-empty EXIF UserComment, else a GIF comment; NovelAI PNGs
(Software "NovelAI") are converted to an A1111 infotext.  Unreadable or unsupported files give None, never raise.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, cast

from PIL import Image, PngImagePlugin

log = logging.getLogger(__name__)

EXIF_IFD_TAG = 0x8769
USER_COMMENT_TAG = 0x9286

USER_COMMENT_PREFIXES: dict[bytes, str] = {
    b"UNICODE\x00": "utf-16",
    b"ASCII\x00\x00\x00": "ascii",
    b"JIS\x00\x00\x00\x00\x00": "shift_jis",
}
UNDEFINED_PREFIX = b"\x00" * 8

# info keys that are not generation metadata (A1111 `IGNORED_INFO_KEYS`)
IGNORED_INFO_KEYS = frozenset({
    "jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "exif", "loop", "background", "timestamp",
    "duration", "progressive", "progression", "icc_profile", "chromaticity", "photoshop",
})

# NovelAI sampler ids -> A1111 sampler names (A1111 `sd_samplers.samplers_map`: lower-cased names and aliases);
# unknown ids become "Euler a" as in A1111.
NOVELAI_SAMPLERS: dict[str, str] = {
    "k_euler_ancestral": "Euler a", "k_euler_a": "Euler a", "k_euler": "Euler", "k_lms": "LMS", "k_heun": "Heun",
    "k_dpm_2": "DPM2", "k_dpm_2_a": "DPM2 a", "k_dpm_2_ancestral": "DPM2 a", "k_dpmpp_2s_a": "DPM++ 2S a",
    "k_dpmpp_2m": "DPM++ 2M", "k_dpmpp_sde": "DPM++ SDE", "k_dpmpp_2m_sde": "DPM++ 2M SDE",
    "k_dpmpp_3m_sde": "DPM++ 3M SDE", "k_dpm_fast": "DPM fast", "k_dpm_ad": "DPM adaptive", "ddim": "DDIM",
    "plms": "PLMS", "euler a": "Euler a", "euler": "Euler", "dpm++ 2m": "DPM++ 2M",
}

# Pillow format name per file extension for the formats A1111 writes.
FORMAT_BY_EXTENSION: dict[str, str] = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".avif": "AVIF", ".gif": "GIF",
}


# ---------------------------------------------------------------------------------------------- EXIF

def encode_user_comment(text: str) -> bytes:
    """piexif `UserComment.dump(text, encoding="unicode")`: b"UNICODE\\0" + UTF-16BE text."""
    return b"UNICODE\x00" + text.encode("utf-16-be")


def decode_user_comment(data: bytes | str, byte_order: str = ">") -> str:
    """Decode an EXIF UserComment (A1111: piexif `UserComment.load`, else UTF-8 with errors ignored).

    The UNICODE body is read as UTF-16BE like piexif; a body that is clearly little-endian (an "II" TIFF block
    whose odd bytes are the zeros) is read as UTF-16LE, which some non-A1111 tools write.
    """
    if isinstance(data, str):
        return data
    prefix, body = data[:8], data[8:]
    encoding = USER_COMMENT_PREFIXES.get(prefix)
    if encoding is None:
        return data.decode("utf-8", errors="ignore")
    if encoding == "utf-16":
        encoding = "utf-16-be"
        if byte_order == "<" and _looks_little_endian(body):
            encoding = "utf-16-le"
    return body.decode(encoding, errors="replace")


def _looks_little_endian(body: bytes) -> bool:
    even_zeros = body[0::2].count(0)
    odd_zeros = body[1::2].count(0)
    return odd_zeros > even_zeros


def build_exif(text: str) -> bytes:
    """APP1 payload "Exif\\0\\0" + big-endian TIFF holding `text` as UserComment, laid out like piexif's dump.

    IFD0 has one entry, the Exif IFD pointer (LONG); the Exif IFD has one entry, UserComment as UNDEFINED (type 7)
    with the encoded comment after it.  Pillow's own `Exif.tobytes` would store the bytes as type BYTE.
    """
    comment = encode_user_comment(text)
    header = b"MM" + struct.pack(">HI", 42, 8)
    exif_ifd_offset = len(header) + 2 + 12 + 4
    comment_offset = exif_ifd_offset + 2 + 12 + 4
    ifd0 = struct.pack(">H", 1) + struct.pack(">HHII", EXIF_IFD_TAG, 4, 1, exif_ifd_offset) + struct.pack(">I", 0)
    exif_ifd = struct.pack(">H", 1) + struct.pack(">HHII", USER_COMMENT_TAG, 7, len(comment), comment_offset)
    exif_ifd += struct.pack(">I", 0)
    return b"Exif\x00\x00" + header + ifd0 + exif_ifd + comment


def read_exif_user_comment(exif_data: bytes) -> str | None:
    """UserComment of a raw EXIF block ("Exif\\0\\0" header optional); None when absent or unreadable."""
    try:
        exif = Image.Exif()
        exif.load(exif_data)
        comment = exif.get_ifd(EXIF_IFD_TAG).get(USER_COMMENT_TAG)
    except Exception as exc:  # malformed EXIF from arbitrary files
        log.debug("unreadable EXIF block: %s", exc)
        return None
    if not comment:
        return None
    raw = exif_data[6:] if exif_data.startswith(b"Exif\x00\x00") else exif_data
    return decode_user_comment(comment, "<" if raw[:2] == b"II" else ">") or None


# ---------------------------------------------------------------------------------------------- writing

def png_info(text_chunks: Mapping[str, Any]) -> PngImagePlugin.PngInfo:
    """PngInfo with one text chunk per key (tEXt for Latin-1 text, iTXt UTF-8 otherwise, as Pillow decides)."""
    info = PngImagePlugin.PngInfo()
    for key, value in text_chunks.items():
        if value is not None:
            info.add_text(key, str(value))
    return info


def save_image_with_geninfo(
    image: Image.Image,
    geninfo: str | None,
    target: str | os.PathLike[str] | IO[bytes],
    extension: str,
    *,
    existing_pnginfo: Mapping[str, Any] | None = None,
    pnginfo_section_name: str = "parameters",
    enable_pnginfo: bool = True,
    jpeg_quality: int = 80,
    webp_lossless: bool = False,
) -> None:
    """Write `image` in the format of `extension` (".png", ".jpg", ".webp", …) with the infotext embedded.

    Follows A1111 `save_image_with_geninfo`: PNG keeps `existing_pnginfo` text keys and adds the section; JPEG/WebP
    /AVIF convert RGBA to RGB (16-bit grayscale is scaled to 8 bits) and store the infotext as EXIF UserComment;
    `enable_pnginfo=False` writes no metadata at all.  `target` may be a path with any suffix (e.g. a temp file).
    """
    ext = extension.lower() if extension.startswith(".") else f".{extension.lower()}"
    image_format = FORMAT_BY_EXTENSION.get(ext) or Image.registered_extensions().get(ext)
    if image_format is None:
        raise ValueError(f"cannot save image: unknown file extension {extension!r}")
    if ext == ".png":
        chunks = dict(existing_pnginfo or {})
        if geninfo is not None:
            chunks[pnginfo_section_name] = geninfo
        pnginfo = png_info(chunks) if enable_pnginfo else None
        image.save(target, format=image_format, pnginfo=pnginfo)
    elif ext in (".jpg", ".jpeg", ".webp", ".avif"):
        if image.mode not in ("RGB", "L"):
            image = _to_8bit(image, ext)
        kwargs: dict[str, Any] = {"quality": jpeg_quality}
        if ext == ".webp":
            kwargs["lossless"] = webp_lossless
        if enable_pnginfo and geninfo is not None:
            kwargs["exif"] = build_exif(geninfo)
        image.save(target, format=image_format, **kwargs)
    elif ext == ".gif":
        image.save(target, format=image_format, comment=geninfo or "")
    else:
        image.save(target, format=image_format, quality=jpeg_quality)


def _to_8bit(image: Image.Image, ext: str) -> Image.Image:
    """RGB/L version of an image JPEG/WebP cannot store (A1111 scales "I;16" by 255/65535)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        scaled = image.point(lambda v: v * (255 / 65535))
        return scaled.convert("RGB" if ext in (".webp", ".avif") else "L")
    return image.convert("RGB")


# ---------------------------------------------------------------------------------------------- reading

def info_items(image: Image.Image) -> dict[str, Any]:
    """A copy of `image.info`, typed by its text keys.

    PIL types the keys as `str | tuple[int, int]`; tuple keys come only from IPTC files and are passed on as they are.
    """
    return cast(dict[str, Any], dict(image.info or {}))


def read_info_from_image(image: Image.Image) -> tuple[str | None, dict[str, Any]]:
    """A1111 `read_info_from_image`: (infotext or None, the other info items minus `IGNORED_INFO_KEYS`)."""
    items = info_items(image)
    geninfo = items.pop("parameters", None)
    if "exif" in items:
        comment = read_exif_user_comment(items["exif"]) if isinstance(items["exif"], bytes) else None
        if comment:
            geninfo = comment
    elif "comment" in items:
        comment = items["comment"]
        geninfo = comment.decode("utf-8", errors="ignore") if isinstance(comment, bytes) else comment
    for key in IGNORED_INFO_KEYS:
        items.pop(key, None)
    if items.get("Software") == "NovelAI":
        converted = novelai_to_infotext(items, image.width, image.height)
        if converted is not None:
            geninfo = converted
    if isinstance(geninfo, bytes):
        geninfo = geninfo.decode("utf-8", errors="ignore")
    return geninfo, items


def novelai_to_infotext(items: Mapping[str, Any], width: int, height: int) -> str | None:
    """Convert NovelAI's "Description" + "Comment" JSON into an A1111 infotext (A1111 adds Clip skip 2, ENSD 31337)."""
    try:
        info = json.loads(items["Comment"])
        sampler = NOVELAI_SAMPLERS.get(str(info["sampler"]).lower(), "Euler a")
        return (
            f"{items['Description']}\nNegative prompt: {info['uc']}\n"
            f"Steps: {info['steps']}, Sampler: {sampler}, CFG scale: {info['scale']}, Seed: {info['seed']}, "
            f"Size: {width}x{height}, Clip skip: 2, ENSD: 31337"
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("could not read NovelAI metadata: %s", exc)
        return None


def read_infotext(source: str | os.PathLike[str] | bytes | IO[bytes] | Image.Image) -> str | None:
    """The infotext stored in an image file, file object, bytes or open image; None if there is none.

    Never raises: missing, truncated or non-image files give None.  Huge images that Pillow refuses to open
    (decompression-bomb limit) are read from their PNG text chunks or JPEG/WebP EXIF directly, without changing
    `PIL.Image.MAX_IMAGE_PIXELS`.
    """
    try:
        if isinstance(source, Image.Image):
            return read_info_from_image(source)[0]
        data = _read_bytes(source)
    except Exception as exc:
        log.debug("cannot read image metadata: %s", exc)
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                geninfo, _ = read_info_from_image(image)
                if geninfo is None and image.format == "PNG":
                    geninfo = _raw_png_text(data).get("parameters")
                return geninfo
    except Exception as exc:  # includes DecompressionBombError and UnidentifiedImageError
        log.debug("Pillow could not open image (%s); reading metadata directly", exc)
    try:
        return _raw_infotext(data)
    except Exception as exc:
        log.debug("no readable metadata: %s", exc)
        return None


def _read_bytes(source: str | os.PathLike[str] | bytes | IO[bytes]) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, (str, os.PathLike)):
        return Path(source).read_bytes()
    return source.read()


def _raw_infotext(data: bytes) -> str | None:
    """Metadata straight from the container bytes (PNG chunks, JPEG APP1, WebP EXIF chunk)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        chunks = _raw_png_text(data)
        if "parameters" in chunks:
            return chunks["parameters"]
        return None
    if data.startswith(b"\xff\xd8"):
        exif = _jpeg_exif(data)
        return read_exif_user_comment(exif) if exif else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        exif = _riff_chunk(data, b"EXIF")
        return read_exif_user_comment(exif) if exif else None
    return None


def _raw_png_text(data: bytes) -> dict[str, str]:
    """tEXt / zTXt / iTXt chunks of a PNG file, parsed from the bytes (for images Pillow will not open)."""
    out: dict[str, str] = {}
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        pos += 12 + length
        if kind == b"IEND" or len(crc) < 4:
            break  # end of image, or a truncated file
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            log.debug("skipping PNG chunk %r with a bad CRC", kind)
            continue
        try:
            if kind == b"tEXt":
                key, _, value = body.partition(b"\x00")
                out[key.decode("latin-1")] = value.decode("latin-1")
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\x00")
                out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\x00")
                compressed, _method = rest[0], rest[1]
                _lang, _, rest = rest[2:].partition(b"\x00")
                _translated, _, text = rest.partition(b"\x00")
                out[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8", "replace")
        except (IndexError, zlib.error, UnicodeDecodeError) as exc:
            log.debug("skipping bad PNG text chunk: %s", exc)
    return out


def _jpeg_exif(data: bytes) -> bytes | None:
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image / start of scan: no more metadata segments
            return None
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        segment = data[pos + 4:pos + 2 + length]
        if marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            return segment
        pos += 2 + length
    return None


def _riff_chunk(data: bytes, name: bytes) -> bytes | None:
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if kind == name:
            return data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None
