"""Format version 3 (coding a downscaled copy) and the scale policy (issue 15)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from conftest import structured_image
from mrt.bitstream import (
    MAX_SCALE_CODE,
    SCALE_FACTORS,
    code_for_factor,
    coded_size,
    min_body_bytes,
    pack,
    read_header,
    scale_factor,
    unpack,
)
from mrt.codec import Codec
from mrt.errors import BitstreamError
from mrt.io.resample import resize_rgb, roundtrip_psnr
from mrt.scaling import ScalePolicy, allowed_codes, choose_scale_code, fit_budget


def test_scale_ladder_is_exact_and_ordered() -> None:
    factors = [scale_factor(c) for c in range(MAX_SCALE_CODE + 1)]
    assert factors[0] == 1 and factors == sorted(factors) and len(set(factors)) == len(factors)
    for code, (num, den) in SCALE_FACTORS.items():
        for side in (1, 2, 7, 511, 512, 1080, 1920, 65536):
            exact = Fraction(side * den, num)
            got = coded_size(side, side, code)[0]
            assert got >= 1 and (abs(got - exact) <= Fraction(1, 2) or got == 1)  # rounded to nearest
    assert coded_size(1080, 1920, 3) == (540, 960) and coded_size(1080, 1920, 2) == (720, 1280)
    assert [code_for_factor(f) for f in (1, 1.1, 1.3, 2, 2.2, 3.3, 6, 100)] == [0, 0, 1, 3, 3, 5, 7, 7]
    with pytest.raises(ValueError):
        code_for_factor(0.5)
    with pytest.raises(ValueError):
        coded_size(10, 10, MAX_SCALE_CODE + 1)


def test_version3_header_round_trip_and_floor() -> None:
    payload = bytes(range(200))
    data = pack(0x123456, 1080, 1920, payload, b"digest", k=7, scale_code=3)
    assert data[2] >> 4 == 3 and len(data) == 13 + len(payload)
    c = unpack(data)
    assert (c.version, c.k, c.scale_code, c.coded_size, c.height, c.width) == (3, 7, 3, (540, 960), 1080, 1920)
    # the floor counts the coded image's windows: 960x540 has 8*5 = 40 blocks, 1920x1080 has 135
    assert min_body_bytes(540, 960, 7) == 35
    small = pack(0x123456, 1080, 1920, b"\x01" * 10, b"d", k=7, scale_code=3)
    c = unpack(small)
    assert c.payload == b"\x01" * 10 and len(c.padding) == 35 - 10  # padded up to the coded floor


def test_version3_without_scale_and_unscaled_version2_flags_are_refused() -> None:
    data = bytearray(pack(0x123456, 64, 64, b"\x00" * 20, b"", k=3, scale_code=2))
    data[2] = 3 << 4  # version 3, scale code 0
    with pytest.raises(BitstreamError, match="version-3 file without a scale"):
        read_header(bytes(data))
    v2 = bytearray(pack(0x123456, 64, 64, b"\x00" * 20, b"", k=3))
    v2[2] |= 2 << 1  # a scale code in a version-2 header: an unknown flag there
    with pytest.raises(BitstreamError, match="feature flags"):
        read_header(bytes(v2))
    with pytest.raises(ValueError):
        pack(0x123456, 64, 64, b"\x00" * 20, b"", scale_code=2)  # a scale needs k (version 3)


def test_resize_and_roundtrip_psnr() -> None:
    img = structured_image(90, 130)
    assert resize_rgb(img, 90, 130) is img
    assert resize_rgb(img, 45, 65).shape == (45, 65, 3)
    smooth = np.asarray(Image.fromarray(img).resize((520, 360), Image.Resampling.BICUBIC))
    noise = np.random.default_rng(0).integers(0, 256, (360, 520, 3), dtype=np.uint8)
    assert roundtrip_psnr(smooth, 180, 260) > roundtrip_psnr(noise, 180, 260) + 10


def test_policy_downscales_flat_large_images_only() -> None:
    policy = ScalePolicy(min_coded_pixels=100 * 100)
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (50, 75, 3), dtype=np.uint8)
    upscaled = np.asarray(Image.fromarray(base).resize((600, 400), Image.Resampling.BICUBIC))
    noise = rng.integers(0, 256, (400, 600, 3), dtype=np.uint8)
    assert choose_scale_code(noise, policy) == 0
    assert choose_scale_code(upscaled, policy) >= 3  # an 8x upscale loses nothing at 2x
    assert allowed_codes(400, 600, policy)[-1] == max(
        c for c in SCALE_FACTORS if coded_size(400, 600, c)[0] * coded_size(400, 600, c)[1] >= 100 * 100
    )
    # the default policy never scales an image of Kodak's size or smaller
    assert allowed_codes(512, 768) == [0] and choose_scale_code(upscaled) == 0


def test_scaled_file_round_trip(tiny_model_file, one_thread: None) -> None:
    codec = Codec.load(str(tiny_model_file))
    img = structured_image(100, 140, seed=3)
    plain = codec.compress(img, scale=1)
    half = codec.encode(img, scale=2)
    assert half.scale_code == 3 and half.version == 4 and len(half.data) < len(plain)
    out = codec.decompress(half.data)
    assert out.shape == img.shape
    assert np.array_equal(out, codec.reconstruct(img, scale=2))
    bits, h, w = codec.decode_symbols(half.data)
    assert (h, w) == (50, 70)
    assert codec.compress(img) == plain  # small images: the default policy codes them as they are


def test_corrupt_scaled_file_is_refused(tiny_model_file, one_thread: None) -> None:
    codec = Codec.load(str(tiny_model_file))
    data = bytearray(codec.compress(structured_image(100, 140, seed=4), scale=2))
    data[2] ^= 0x2  # another scale code: the symbols no longer match the checksum or the floor
    with pytest.raises(BitstreamError):
        codec.decompress(bytes(data))


def test_rate_control_over_scales(tiny_model_file, one_thread: None) -> None:
    codec = Codec.load(str(tiny_model_file))
    img = structured_image(128, 256, seed=5)
    full = codec.encode(img, scale=1, k=codec.max_tokens)
    budget = len(full.data) // 3  # at full scale only a few tokens per window fit
    rep = fit_budget(codec, img, budget, strict=True, codes=[0, 3], policy=ScalePolicy(min_token_share=1.0))
    assert len(rep.data) <= budget and rep.scale_code == 3
    assert codec.decompress(rep.data).shape == img.shape
    only_full = fit_budget(codec, img, budget, strict=True, codes=[0])
    assert only_full.scale_code == 0 and only_full.k < rep.k


def test_cli_scale_option_and_info(tiny_model_file, tmp_path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch, one_thread: None) -> None:
    from mrt.cli.main import main
    from mrt.codec import MODEL_PATH_ENV
    from mrt.io import load_image

    monkeypatch.setenv(MODEL_PATH_ENV, str(tiny_model_file))

    src = tmp_path / "a.png"
    Image.fromarray(structured_image(100, 140, seed=6)).save(src)
    out = tmp_path / "a.mrt"
    assert main(["compress", str(src), "--model", str(tiny_model_file), "--scale", "2", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith(", coded at 70x50")
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "format version  4" in text and "coded size      70 x 50" in text
    back = tmp_path / "b.png"
    assert main(["decompress", str(out), "-o", str(back)]) == 0
    assert load_image(back).shape == (100, 140, 3)
    capsys.readouterr()
    for bad in ("0.5", "nan", "inf", "x"):
        assert main(["compress", str(src), "--scale", bad]) == 2
        assert "usage" in capsys.readouterr().err
