"""Metadata in image files (PNG text chunk, EXIF UserComment) and A1111's output naming with atomic writes."""

from __future__ import annotations

import datetime as dt
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from modules.images import metadata, saving
from modules.images.filenames import FilenameGenerator, FilenameJob, get_next_sequence_number, sanitize_filename_part
from modules.images.infotext import parse_infotext
from modules.images.metadata import encode_user_comment, read_infotext, save_image_with_geninfo
from modules.images.saving import atomic_write, output_dir, save_grid, save_image, write_params_txt

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "infotexts"
REAL_INFOTEXTS = sorted(FIXTURES.glob("a1111_*.txt"))
NOW = dt.datetime(2024, 5, 1, 13, 45, 7)


def real(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8").rstrip("\n")


def picture(size: tuple[int, int] = (32, 24), color: tuple[int, ...] = (200, 30, 60), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


# ---------------------------------------------------------------------------------------------- independent readers

def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, pos = [], 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        out.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def tiff_user_comment(tiff: bytes) -> tuple[str, int, bytes]:
    """(byte order, field type, value) of UserComment, read with a minimal TIFF walker written for this test."""
    order = {b"MM": ">", b"II": "<"}[tiff[:2]]

    def entries(offset: int) -> dict[int, tuple[int, int, bytes]]:
        (count,) = struct.unpack(order + "H", tiff[offset:offset + 2])
        found = {}
        for k in range(count):
            tag, kind, n, value = struct.unpack(order + "HHI4s", tiff[offset + 2 + 12 * k:offset + 14 + 12 * k])
            found[tag] = (kind, n, value)
        return found

    (ifd0,) = struct.unpack(order + "I", tiff[4:8])
    _, _, pointer = entries(ifd0)[0x8769]
    (exif_offset,) = struct.unpack(order + "I", pointer)
    kind, n, value = entries(exif_offset)[0x9286]
    (data_offset,) = struct.unpack(order + "I", value)
    return order, kind, tiff[data_offset:data_offset + n]


def jpeg_app1(data: bytes) -> bytes:
    pos = 2
    while data[pos] == 0xFF:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if marker == 0xE1:
            return data[pos + 4:pos + 2 + length]
        pos += 2 + length
    raise AssertionError("no APP1 segment")


def piexif_style_jpeg(text: str, byte_order: str = ">", body: bytes | None = None) -> bytes:
    """A JPEG laid out the way A1111's piexif.insert leaves it: APP1 "Exif\\0\\0" + TIFF with IFD0 -> Exif IFD."""
    o = byte_order
    comment = body if body is not None else encode_user_comment(text)
    head = (b"MM" if o == ">" else b"II") + struct.pack(o + "HI", 42, 8)
    ifd0 = struct.pack(o + "H", 1) + struct.pack(o + "HHII", 0x8769, 4, 1, 26) + struct.pack(o + "I", 0)
    exif_ifd = struct.pack(o + "H", 1) + struct.pack(o + "HHII", 0x9286, 7, len(comment), 44) + struct.pack(o + "I", 0)
    tiff = head + ifd0 + exif_ifd + comment
    assert len(head + ifd0) == 26 and len(head + ifd0 + exif_ifd) == 44
    app1 = b"Exif\x00\x00" + tiff
    plain = io.BytesIO()
    picture().save(plain, format="JPEG")
    jpg = plain.getvalue()
    return jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:]


# ---------------------------------------------------------------------------------------------- PNG

@pytest.mark.parametrize("path", REAL_INFOTEXTS, ids=lambda p: p.name)
def test_png_parameters_chunk_round_trip(tmp_path: Path, path: Path) -> None:
    text = path.read_text(encoding="utf-8").rstrip("\n")
    target = tmp_path / "out.png"
    save_image_with_geninfo(picture(), text, target, ".png", existing_pnginfo={"extras": "upscaled"})
    chunks = png_chunks(target.read_bytes())
    kinds = {kind for kind, body in chunks if body.startswith(b"parameters\x00")}
    # Latin-1 text goes to tEXt, anything else to iTXt (UTF-8), as Pillow's PngInfo.add_text decides
    assert kinds == ({b"tEXt"} if text.isascii() else {b"iTXt"})
    assert any(body == b"extras\x00upscaled" for kind, body in chunks if kind == b"tEXt")
    assert read_infotext(target) == text
    assert parse_infotext(read_infotext(target))["Steps"] == parse_infotext(text)["Steps"]


def test_png_without_pnginfo_has_no_text(tmp_path: Path) -> None:
    target = tmp_path / "plain.png"
    save_image_with_geninfo(picture(), "cat\nSteps: 1, Seed: 2, CFG scale: 3", target, ".png", enable_pnginfo=False)
    assert not [k for k, _ in png_chunks(target.read_bytes()) if k in (b"tEXt", b"iTXt", b"zTXt")]
    assert read_infotext(target) is None


def test_text_chunk_after_image_data_is_found(tmp_path: Path) -> None:
    data = io.BytesIO()
    picture().save(data, format="PNG")
    raw = data.getvalue()
    body = b"parameters\x00late chunk, Steps: 1"
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    iend = raw.rindex(b"IEND") - 4
    assert read_infotext(raw[:iend] + chunk + raw[iend:]) == "late chunk, Steps: 1"


def test_huge_png_metadata_is_read_without_raising_the_pixel_limit() -> None:
    limit = Image.MAX_IMAGE_PIXELS

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tEXt", b"parameters\x00big grid\nSteps: 1, Seed: 2, "
            b"CFG scale: 3") + chunk(b"IEND", b""))
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    assert read_infotext(data) == "big grid\nSteps: 1, Seed: 2, CFG scale: 3"
    assert limit == Image.MAX_IMAGE_PIXELS


# ---------------------------------------------------------------------------------------------- EXIF

@pytest.mark.parametrize("ext", [".jpg", ".webp"])
@pytest.mark.parametrize("path", REAL_INFOTEXTS, ids=lambda p: p.name)
def test_exif_user_comment_byte_format_and_round_trip(tmp_path: Path, ext: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8").rstrip("\n")
    target = tmp_path / f"out{ext}"
    save_image_with_geninfo(picture(mode="RGBA", color=(1, 2, 3, 128)), text, target, ext, jpeg_quality=90)
    with Image.open(target) as im:
        assert im.format == ("JPEG" if ext == ".jpg" else "WEBP") and im.mode == "RGB"
        exif = im.info["exif"]
    tiff = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
    order, kind, value = tiff_user_comment(tiff)
    # piexif's layout: big-endian TIFF, UNDEFINED type, "UNICODE\0" + UTF-16BE
    assert (order, kind) == (">", 7)
    assert value == b"UNICODE\x00" + text.encode("utf-16-be")
    assert read_infotext(target) == text


def test_jpeg_segment_written_by_a1111_piexif_is_read() -> None:
    text = real("a1111_1.8.0-RC_hires_unicode_model.txt")
    data = piexif_style_jpeg(text)
    assert jpeg_app1(data).startswith(b"Exif\x00\x00MM")
    assert read_infotext(data) == text


def test_little_endian_utf16_comment_from_other_tools() -> None:
    text = "cat\nSteps: 3, Seed: 4, CFG scale: 5"
    data = piexif_style_jpeg(text, "<", b"UNICODE\x00" + text.encode("utf-16-le"))
    assert read_infotext(data) == text


def test_ascii_and_prefixless_user_comments() -> None:
    assert read_infotext(piexif_style_jpeg("", body=b"ASCII\x00\x00\x00a, Steps: 1")) == "a, Steps: 1"
    assert read_infotext(piexif_style_jpeg("", body="plain utf8 ü".encode())) == "plain utf8 ü"


@pytest.mark.skipif(not __import__("PIL.features").features.check("avif"), reason="Pillow built without AVIF")
def test_avif_keeps_the_infotext(tmp_path: Path) -> None:
    text = real("a1111_1.8.0-RC_sdxl.txt")
    saved = save_image(picture(), tmp_path, seed=1, prompt="1 girl", info=text, extension="avif", now=NOW)
    assert saved.path.suffix == ".avif" and read_infotext(saved.path) == text


def test_jpeg_quality_and_webp_lossless(tmp_path: Path) -> None:
    noisy = Image.effect_noise((128, 128), 60).convert("RGB")
    low, high = tmp_path / "low.jpg", tmp_path / "high.jpg"
    save_image_with_geninfo(noisy, "x", low, ".jpg", jpeg_quality=10)
    save_image_with_geninfo(noisy, "x", high, ".jpg", jpeg_quality=95)
    assert low.stat().st_size < high.stat().st_size
    lossless = tmp_path / "l.webp"
    save_image_with_geninfo(noisy, "x", lossless, ".webp", webp_lossless=True)
    with Image.open(lossless) as im:
        assert list(im.convert("RGB").getdata()) == list(noisy.getdata())


# ---------------------------------------------------------------------------------------------- other read paths

def test_novelai_png_is_converted(tmp_path: Path) -> None:
    target = tmp_path / "nai.png"
    comment = '{"steps": 28, "sampler": "k_euler_ancestral", "seed": 123, "scale": 11, "uc": "lowres, bad hands"}'
    save_image_with_geninfo(picture((512, 768)), None, target, ".png",
                            existing_pnginfo={"Software": "NovelAI", "Description": "1girl, solo", "Comment": comment})
    res = parse_infotext(read_infotext(target))
    assert res["Prompt"] == "1girl, solo" and res["Negative prompt"] == "lowres, bad hands"
    assert (res["Sampler"], res["Steps"], res["CFG scale"], res["Seed"]) == ("Euler a", "28", "11", "123")
    assert (res["Size-1"], res["Size-2"], res["Clip skip"], res["ENSD"]) == ("512", "768", "2", "31337")


def test_gif_comment(tmp_path: Path) -> None:
    target = tmp_path / "a.gif"
    save_image_with_geninfo(picture(), "gif prompt\nSteps: 1, Seed: 2, CFG scale: 3", target, ".gif")
    assert read_infotext(target) == "gif prompt\nSteps: 1, Seed: 2, CFG scale: 3"


@pytest.mark.parametrize("payload", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00", b"\xff\xd8\xff\xe1\x00",
                                     b"RIFF\x10\x00\x00\x00WEBPVP8 ", b"GIF89a"])
def test_bad_files_give_none(tmp_path: Path, payload: bytes) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(payload)
    assert read_infotext(bad) is None
    assert read_infotext(payload) is None


def test_truncated_png_and_missing_file(tmp_path: Path) -> None:
    target = tmp_path / "t.png"
    save_image_with_geninfo(picture(), "x\nSteps: 1, Seed: 2, CFG scale: 3", target, ".png")
    cut = target.read_bytes()[:60]
    assert read_infotext(cut) is None
    assert read_infotext(tmp_path / "missing.png") is None
    assert read_infotext(io.BytesIO(target.read_bytes())) == "x\nSteps: 1, Seed: 2, CFG scale: 3"


# ---------------------------------------------------------------------------------------------- file names

def job(**kw) -> FilenameJob:
    base = dict(prompt="masterpiece, a cat", negative_prompt="ugly", styles=["Pretty"], style_prompts=["masterpiece, {prompt}"],
                steps=20, cfg_scale=7.0, sampler_name="DPM++ 2M", scheduler="Automatic", model_name="v1-5-pruned",
                model_hash="6ce0161689", batch_size=1, all_seeds=[5], job_timestamp="20240501134500", clip_skip=2)
    base.update(kw)
    return FilenameJob(**base)


@pytest.mark.parametrize(("pattern", "expected"), [
    ("[seed]-[steps]-[cfg]-[width]x[height]", "5-20-7-32x24"),
    ("[sampler]_[scheduler]_[sampler_scheduler]", "DPM++ 2M_Karras_DPM++ 2M Karras"),
    ("[model_name]-[model_hash]", "v1-5-pruned-6ce0161689"),
    ("[date]/[datetime]/[datetime<%Y%m%d>]", "2024-05-01/20240501134507/20240501"),
    ("[prompt]|[prompt_spaces]", "masterpiece,_a_cat|masterpiece, a cat"),
    ("[prompt_words]", "masterpiece a cat"),
    ("[prompt_no_styles]", "a cat"),
    ("[styles]", "Pretty"),
    ("[job_timestamp]", "20240501134500"),
    ("[none]", ""),
    ("[SEED]", "5"),
    ("[clip_skip]-[prompt_hash<4>]", "2-" + __import__("hashlib").sha256(b"masterpiece, a cat").hexdigest()[:4]),
    ("x[seed]-[batch_number]-[generation_number]-[seed_last]-[denoising]", "x5"),
    ("[hasprompt<cat|nocat><dog|nodog>]", "catnodog"),
    ("[unknown_token]-[seed]", "[unknown_token]-5"),
])
def test_filename_tokens(pattern: str, expected: str) -> None:
    gen = FilenameGenerator(job(), 5, "masterpiece, a cat", picture(), now=NOW)
    assert gen.apply(pattern) == expected


def test_batch_tokens_when_meaningful() -> None:
    gen = FilenameGenerator(job(batch_size=4, batch_index=2, n_iter=2, iteration=1, all_seeds=[5, 6, 7, 8],
                                denoising_strength=0.75), 7, "p", picture(), now=NOW)
    assert gen.apply("[batch_number]-[generation_number]-[seed_first]-[seed_last]-[denoising]") == "3-7-5-8-0.75"


def test_sanitize_and_length_limits() -> None:
    assert sanitize_filename_part(' a<b>:c"d/e\\f|g?h*i#j\n ', replace_spaces=False) == "a_b__c_d_e_f_g_h_i_j_"
    assert sanitize_filename_part(" a b ") == "_a_b_"  # spaces become "_" before the edges are stripped
    assert sanitize_filename_part("  lead and trail . . ", replace_spaces=False) == "lead and trail"
    assert sanitize_filename_part("x" * 300) == "x" * 128
    assert sanitize_filename_part("a:b/c", replace_spaces=False, unix_only=True) == "a:b_c"
    long_prompt = "word " * 100
    gen = FilenameGenerator(job(), 1, long_prompt, None, filenames_max_length=20)
    assert gen.apply("[prompt]") == ("word_" * 4)


def test_sequence_number_continues_after_the_highest(tmp_path: Path) -> None:
    assert get_next_sequence_number(tmp_path / "missing") == 0
    for name in ("00003-1.png", "00041-7-cat.png", "00007-x.txt", "grid-0005.png", "notes.txt", ".hidden.tmp"):
        (tmp_path / name).write_bytes(b"")
    assert get_next_sequence_number(tmp_path) == 42
    assert get_next_sequence_number(tmp_path, "grid") == 6


# ---------------------------------------------------------------------------------------------- saving

def test_default_layout_and_counter(tmp_path: Path) -> None:
    out = output_dir("txt2img", {}, base_dir=tmp_path)
    assert out == tmp_path / "outputs" / "txt2img-images"
    text = real("a1111_1.8.0-RC_sdxl.txt")
    first = save_image(picture(), out, seed=1957970079, prompt="1 girl", info=text, now=NOW)
    second = save_image(picture(), out, seed=12, prompt="1 girl", info=text, now=NOW)
    day = out / "2024-05-01"
    assert first.path == day / "00000-1957970079.png" and second.path == day / "00001-12.png"
    assert read_infotext(first.path) == text and first.txt_path is None
    (day / "00099-3.png").write_bytes(b"")
    assert save_image(picture(), out, seed=4, now=NOW).path.name == "00100-4.png"
    assert not list(day.glob("*.tmp")) and not list(day.glob(".*"))


def test_output_dirs_follow_settings(tmp_path: Path) -> None:
    assert output_dir("img2img", {}, grid=True, base_dir=tmp_path) == tmp_path / "outputs/img2img-grids"
    assert output_dir("extras", {}, base_dir=tmp_path) == tmp_path / "outputs/extras-images"
    assert output_dir("txt2img", {"outdir_samples": "all"}, base_dir=tmp_path) == tmp_path / "all"
    assert output_dir("txt2img", {"outdir_grids": "g"}, grid=True, base_dir=tmp_path) == tmp_path / "g"
    with pytest.raises(ValueError, match="extras"):
        output_dir("extras", {}, grid=True)


def test_grid_names(tmp_path: Path) -> None:
    out = output_dir("txt2img", {}, grid=True, base_dir=tmp_path)
    a = save_grid(picture((64, 64)), out, seed=5, prompt="cat", info="cat\nSteps: 1, Seed: 5, CFG scale: 7", now=NOW)
    b = save_grid(picture((64, 64)), out, seed=5, prompt="cat", now=NOW)
    assert a.path == out / "2024-05-01" / "grid-0000.png" and b.path.name == "grid-0001.png"
    extended = save_grid(picture(), out, seed=5, prompt="cat", settings={"grid_extended_filename": True}, now=NOW)
    assert extended.path.name == "grid-0002-5.png"


def test_patterns_without_dirs_and_formats(tmp_path: Path) -> None:
    settings = {"save_to_dirs": False, "samples_format": "jpg", "save_txt": True, "jpeg_quality": 70}
    saved = save_image(picture(), tmp_path, seed=9, prompt="a red: fox?", info="a red fox\nSteps: 1, Seed: 9, CFG scale: 7",
                       settings=settings, now=NOW)
    assert saved.path == tmp_path / "00000-9-a red_ fox_.jpg"
    assert saved.txt_path == tmp_path / "00000-9-a red_ fox_.txt"
    assert saved.txt_path.read_text(encoding="utf-8") == "a red fox\nSteps: 1, Seed: 9, CFG scale: 7\n"
    assert read_infotext(saved.path) == "a red fox\nSteps: 1, Seed: 9, CFG scale: 7"
    custom = save_image(picture(), tmp_path, seed=9, prompt="p", job=job(), now=NOW, extension="webp",
                        settings={"samples_filename_pattern": "[model_name]-[datetime<%H%M>]", "save_to_dirs": False,
                                  "save_images_add_number": False})
    assert custom.path == tmp_path / "v1-5-pruned-1345.webp"
    dirs = save_image(picture(), tmp_path, seed=1, prompt="Big cat, small dog!", now=NOW,
                      settings={"directories_filename_pattern": "", "directories_max_prompt_words": 2})
    assert dirs.path == tmp_path / "Big cat" / "00000-1.png"


def test_oversized_jpeg_and_webp_fall_back_to_png(tmp_path: Path) -> None:
    wide = Image.new("RGB", (16384, 1))
    assert save_image(wide, tmp_path, seed=1, extension="webp", settings={"export_for_4chan": False},
                      now=NOW).path.suffix == ".png"


def test_export_for_4chan_writes_downscaled_jpg(tmp_path: Path) -> None:
    settings = {"target_side_length": 40, "save_to_dirs": False, "samples_filename_pattern": "[seed]"}
    saved = save_image(picture((100, 50)), tmp_path, seed=3, prompt="", info="x\nSteps: 1, Seed: 3, CFG scale: 7",
                       settings=settings, now=NOW)
    assert saved.path.name == "00000-3.png" and [p.name for p in saved.extra_paths] == ["00000-3.jpg"]
    with Image.open(saved.extra_paths[0]) as im:
        assert im.size == (40, 20)
    assert read_infotext(saved.extra_paths[0]) == "x\nSteps: 1, Seed: 3, CFG scale: 7"
    small = save_image(picture((30, 30)), tmp_path, seed=4, prompt="", settings=settings, now=NOW)
    assert small.extra_paths == []


def test_failure_mid_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"save_to_dirs": False, "save_images_add_number": False, "samples_filename_pattern": "fixed"}
    good = save_image(picture(color=(1, 2, 3)), tmp_path, seed=1, info="old\nSteps: 1, Seed: 1, CFG scale: 7",
                      settings=settings, now=NOW)
    before = good.path.read_bytes()

    def crash(image, geninfo, target, *args, **kwargs):
        target.write(b"\x89PNG\r\n\x1a\n partial data")
        raise OSError("disk full")

    monkeypatch.setattr(saving, "save_image_with_geninfo", crash)
    with pytest.raises(OSError, match="disk full"):
        save_image(picture(color=(9, 9, 9)), tmp_path, seed=1, settings=settings, now=NOW)
    with pytest.raises(OSError, match="disk full"):
        save_image(picture(), tmp_path, seed=2, settings={"save_to_dirs": False}, now=NOW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.png"]  # no temp file, no new partial image
    assert good.path.read_bytes() == before  # the existing image is untouched


def test_atomic_write_add_number_suffix(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    atomic_write(target, lambda fh: fh.write(b"1"))
    second = atomic_write(target, lambda fh: fh.write(b"2"), replace_existing=False)
    assert second == tmp_path / "a-1.png" and target.read_bytes() == b"1" and second.read_bytes() == b"2"
    saved = save_image(picture(), tmp_path, forced_filename="a", now=NOW,
                       settings={"save_images_replace_action": "Add number suffix", "save_to_dirs": False})
    assert saved.path == tmp_path / "a-2.png"


def test_long_names_are_cut_to_the_filesystem_limit(tmp_path: Path) -> None:
    prompt = "ü" * 120 + " tail"
    saved = save_image(picture(), tmp_path, seed=1, prompt=prompt, now=NOW,
                       settings={"save_to_dirs": False, "samples_filename_pattern": "[prompt_spaces]-[prompt_spaces]"})
    assert saved.path.exists() and len(saved.path.name.encode()) <= 255 and saved.path.suffix == ".png"


def test_params_txt(tmp_path: Path) -> None:
    path = write_params_txt(tmp_path, "cat\nSteps: 1, Seed: 2, CFG scale: 3")
    assert path.read_text(encoding="utf-8") == "cat\nSteps: 1, Seed: 2, CFG scale: 3"


def test_metadata_module_never_touches_pixel_limit() -> None:
    assert "MAX_IMAGE_PIXELS" not in Path(metadata.__file__).read_text(encoding="utf-8").replace(
        "`PIL.Image.MAX_IMAGE_PIXELS`", "")
