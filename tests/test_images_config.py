"""images.py (lossless encoding, limits, hashes) and config.py (errors that name the file and field)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from thinkimg.config import ConfigError, ToolsConfig, load_yaml
from thinkimg.images import (
    ImageCache,
    ImageError,
    decode_base64,
    decode_image,
    encode_png,
    image_hash,
    load_image,
)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"])
def test_encode_png_is_lossless_for_every_mode(mode):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)).convert(mode)
    back = Image.open(io.BytesIO(encode_png(img)))
    assert back.mode == img.mode and back.size == img.size
    assert back.tobytes() == img.tobytes()


def test_decode_refuses_what_it_should_and_names_the_field():
    png = encode_png(Image.new("RGB", (100, 100), "white"))
    assert decode_image(png).size == (100, 100)
    with pytest.raises(ImageError, match="photo: image is 100x100 = 10000 pixels, more than the limit of 9999") as e:
        decode_image(png, field="photo", max_pixels=9_999)
    assert e.value.status == 413
    with pytest.raises(ImageError, match="not an image"):
        decode_image(b"%PDF-1.4 definitely not a picture")
    with pytest.raises(ImageError, match="larger than the limit"):
        decode_image(png, max_bytes=10)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        decode_image(png[: len(png) // 2])
    with pytest.raises(ImageError, match="invalid base64"):
        decode_base64("***")
    assert decode_base64("data:image/png;base64," + base64.b64encode(png).decode()) == png


def test_decompression_bomb_is_refused_before_decoding():
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, format="PNG")  # ~20 kB on disk, 144 MP when decoded
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(ImageError, match="decompression bomb refused|more than the limit") as e:
        decode_image(bomb.getvalue())
    assert e.value.status == 413


def test_load_image_names_the_file(tmp_path):
    with pytest.raises(ImageError, match="missing.png: cannot read image file"):
        load_image(tmp_path / "missing.png")


def test_hash_depends_on_pixels_not_encoding_and_cache_evicts_by_pixels():
    img = Image.new("RGB", (10, 10), "red")
    jpeg_free_copy = Image.open(io.BytesIO(encode_png(img)))
    assert image_hash(img) == image_hash(jpeg_free_copy)
    assert image_hash(img) != image_hash(Image.new("RGB", (10, 10), "blue"))
    cache = ImageCache(max_pixels=250)
    keys = [cache.put(Image.new("RGB", (10, 10), c)) for c in ("red", "green", "blue")]
    assert cache.get(keys[0]) is None and cache.get(keys[2]) is not None and len(cache) == 2


def test_config_errors_name_file_line_and_field(tmp_path):
    bad_field = tmp_path / "tools.yaml"
    bad_field.write_text("server:\n  port: 99999\nocr:\n  backend: paddle\n")
    with pytest.raises(ConfigError) as e:
        load_yaml(bad_field, ToolsConfig)
    assert f"{bad_field}: server.port" in str(e.value) and f"{bad_field}: ocr.backend" in str(e.value)

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("limits:\n  call_timeout: 3\n")
    with pytest.raises(ConfigError, match="limits.call_timeout: Extra inputs are not permitted"):
        load_yaml(unknown, ToolsConfig)

    broken = tmp_path / "broken.yaml"
    broken.write_text("server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+ invalid YAML"):
        load_yaml(broken, ToolsConfig)


def test_shipped_tools_config_is_valid():
    from pathlib import Path

    cfg = load_yaml(Path(__file__).resolve().parents[1] / "configs" / "tools.yaml", ToolsConfig)
    assert cfg.server.host == "127.0.0.1" and len(cfg.tools) == 8 and cfg.tools[-1] == "Calculate"
