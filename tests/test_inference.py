"""The lean inference path (issue 10): bf16/fp32 selection and its fallback, the planned
convolutions against the reference, the light generator at odd image sizes, and an entropy path
that no inference setting changes.

This machine's CPU has no native bf16, so bf16 runs are forced by injecting the CPU's features
(``CpuFeatures(bf16=True)``): oneDNN then emulates bf16 (slowly, but correctly).
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model, structured_image
from test_light_generator import _busy_light_decoder

from mrt.cli._common import PRECISION_CHOICES, long_lived_objects, passive_omp_wait
from mrt.codec import Codec
from mrt.errors import ConfigError, MRTWarning
from mrt.models import inference
from mrt.models.config import TargetConfig
from mrt.models.inference import REFERENCE, ConvPlan, CpuFeatures, InferenceSettings, planned, resolve
from mrt.models.taef2 import TAEF2Encoder

BF16_CPU, FP32_CPU = CpuFeatures(bf16=True), CpuFeatures(bf16=False)
BF16_PLAN = ConvPlan(torch.bfloat16, channels_last=True)
DATA = Path(__file__).parent / "data"


def _light_codec(precision: str = "fp32") -> Codec:
    model = make_tiny_model(3, target=TargetConfig(bits=8, dim=16, depth=1, pixel_generator="light"))
    model.generator.rgb_decoder = _busy_light_decoder(2)  # blocks that are not the identity
    return Codec.from_model(model, "tiny-light", precision=precision)


# ----- selection and fallback -----
@pytest.mark.parametrize(
    "precision,cpu,expected",
    [("auto", BF16_CPU, BF16_PLAN), ("auto", FP32_CPU, REFERENCE), ("bf16", BF16_CPU, BF16_PLAN),
     ("fp32", BF16_CPU, REFERENCE), ("fp32", FP32_CPU, REFERENCE)],
)
def test_precision_is_resolved_per_cpu(precision: str, cpu: CpuFeatures, expected: ConvPlan) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these warns
        assert resolve(InferenceSettings(precision), cpu) == expected  # type: ignore[arg-type]


def test_bf16_on_a_cpu_without_it_falls_back_to_fp32_with_a_warning() -> None:
    with pytest.warns(MRTWarning, match="no native bf16"):
        plan = resolve(InferenceSettings("bf16"), FP32_CPU)
    assert plan == REFERENCE and plan.reference and plan.name == "fp32"


def test_channels_last_follows_the_precision_unless_forced() -> None:
    assert resolve(InferenceSettings("fp32", channels_last=True), BF16_CPU) == ConvPlan(torch.float32, True)
    assert resolve(InferenceSettings("auto", channels_last=False), BF16_CPU) == ConvPlan(torch.bfloat16, False)
    assert not ConvPlan(torch.float32, True).reference and BF16_PLAN.name == "bf16+channels-last"


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="precision"):
        InferenceSettings("fp16")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="precision"):
        Codec.load("mrt-s-k16", precision="half")  # type: ignore[arg-type]


def test_detection_needs_onednn_and_on_x86_the_bf16_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CpuFeatures.detect() == CpuFeatures(inference.native_bf16())
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert not inference.native_bf16()
    monkeypatch.undo()
    monkeypatch.setattr(inference.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert not inference.native_bf16()  # oneDNN may accept bf16 (emulated), which does not pay off


def test_cli_offers_the_same_precisions() -> None:
    assert PRECISION_CHOICES == inference.PRECISIONS


def test_codec_sets_its_models_plan() -> None:
    codec = _light_codec("fp32")
    assert codec.conv_plan == REFERENCE and codec.model.conv_plan == REFERENCE
    assert codec.set_inference(InferenceSettings("auto"), BF16_CPU) == BF16_PLAN
    assert codec.model.conv_plan == BF16_PLAN
    with pytest.warns(MRTWarning):
        assert codec.set_inference(InferenceSettings("bf16"), FP32_CPU) == REFERENCE


# ----- the planned convolutions against the reference -----
@pytest.mark.parametrize("plan,tol", [(ConvPlan(torch.float32, True), 1e-5), (BF16_PLAN, 0.05)])
def test_planned_nets_agree_with_the_reference(plan: ConvPlan, tol: float) -> None:
    torch.manual_seed(0)
    for net, x in ((TAEF2Encoder().eval(), torch.rand(1, 3, 40, 24)), (_busy_light_decoder(1), torch.randn(1, 32, 5, 3))):
        before = {k: v.clone() for k, v in net.state_dict().items()}
        with torch.inference_mode():
            ref, out = net(x), planned(net, plan)(x)
        assert out.dtype == torch.float32 and out.is_contiguous() and out.shape == ref.shape
        assert (out - ref).abs().max() <= tol * ref.abs().max()
        for k, v in net.state_dict().items():  # the net itself is not cast or changed
            assert v.dtype == torch.float32 and torch.equal(v, before[k])
    assert planned(net, REFERENCE) is net


def test_a_planned_net_sees_weights_loaded_after_the_plan_was_set() -> None:
    codec = _light_codec("fp32")
    codec.set_inference(InferenceSettings("bf16"), BF16_CPU)
    latent = torch.randn(1, 32, 2, 3)
    with torch.inference_mode():
        first = codec.model.render(latent)
        codec.model.generator.rgb_decoder.load_state_dict(_busy_light_decoder(5).state_dict())
        second = codec.model.render(latent)
    assert not torch.equal(first, second)


# ----- the light generator at odd image sizes, both precisions -----
@pytest.mark.parametrize("h,w", [(1, 1), (7, 5), (37, 53), (65, 129)])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_light_codec_round_trips_odd_image_sizes(h: int, w: int, precision: str) -> None:
    codec = _light_codec()
    codec.set_inference(InferenceSettings(precision), BF16_CPU)  # type: ignore[arg-type]
    img = structured_image(h, w, seed=h)
    out = codec.decompress(codec.compress(img, scale=1))
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, codec.reconstruct(img, scale=1))  # decode == the eval forward


def test_light_decoder_pixels_do_not_depend_on_the_thread_count() -> None:
    """With a 1x1 convolution that adds its (trained, non-zero) bias, they did."""
    net, latent = _busy_light_decoder(4), torch.randn(1, 32, 24, 40)
    for block in (*net.level8, *net.level4, *net.level2):
        torch.nn.init.normal_(block.mix.bias, 0.0, 0.1)
    before = torch.get_num_threads()
    outs = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.inference_mode():
                outs.append(net(latent))
    finally:
        torch.set_num_threads(before)
    # bit-identical on the AVX2 machine; with oneDNN on AVX-512 the 3x3 convolutions sum in another
    # order for 2 threads: equal to float32 rounding (before the bias fix: off by far more)
    assert torch.allclose(outs[0], outs[1], rtol=0, atol=1e-5), (outs[0] - outs[1]).abs().max()


# ----- the entropy path does not change -----
def _capture_decoded_bits(codec: Codec) -> list[torch.Tensor]:
    """Record the token bits the codec hands to the generator side on every decode."""
    seen: list[torch.Tensor] = []
    decode_bits = codec.model.decode_bits

    def spy(bits01: torch.Tensor, height: int, width: int) -> np.ndarray:
        seen.append(bits01.clone())
        return decode_bits(bits01, height, width)

    codec.model.decode_bits = spy  # type: ignore[method-assign]
    return seen


def test_a_file_decodes_to_the_same_symbols_under_fp32_and_bf16() -> None:
    codec = _light_codec("fp32")
    img = structured_image(70, 130, seed=5)
    data = codec.compress(img, scale=1)
    rcm_state = {k: v.clone() for k, v in codec.model.rcm.state_dict().items()}
    seen = _capture_decoded_bits(codec)
    outs = {}
    for precision in ("fp32", "bf16"):
        codec.set_inference(InferenceSettings(precision), BF16_CPU)  # type: ignore[arg-type]
        outs[precision] = codec.decompress(data)
        bits, _, _ = codec.decode_symbols(data)
        assert torch.equal(bits, seen[-1])
    assert torch.equal(seen[0], seen[1])  # the same tokens reach the generator
    assert np.abs(outs["fp32"].astype(int) - outs["bf16"]).max() <= 8  # only the pixels differ, a little
    for k, v in codec.model.rcm.state_dict().items():  # the entropy model stays fp32 and untouched
        assert v.dtype == rcm_state[k].dtype and torch.equal(v, rcm_state[k])
    # and it codes given tokens into the same bytes under either plan
    tokens = codec.model.encode_bits(img)[0]
    payloads = []
    for precision in ("fp32", "bf16"):
        codec.set_inference(InferenceSettings(precision), BF16_CPU)  # type: ignore[arg-type]
        payloads.append(codec.model.rcm.encode(tokens).payload)
    assert payloads[0] == payloads[1]


def test_a_bf16_encoded_file_is_valid_and_decodes_to_its_own_tokens() -> None:
    codec = _light_codec("fp32")
    codec.set_inference(InferenceSettings("bf16"), BF16_CPU)
    img = structured_image(64, 128, seed=6)
    tokens = codec.model.encode_bits(img)  # [1, nW, k, d] under bf16 analysis
    data = codec.compress(img, scale=1)
    codec.set_inference(InferenceSettings("fp32"))
    bits, h, w = codec.decode_symbols(data)
    assert (h, w) == (64, 128) and torch.equal(bits, tokens)


def test_fp32_writes_the_golden_bytes_even_where_bf16_is_native() -> None:
    """tests/test_codec_golden.py pins fp32; here fp32 is chosen on a (simulated) bf16 CPU."""
    from mrt.io import load_image

    codec = Codec.load("mrt-s-k16", precision="fp32")
    golden = (DATA / "golden_v4_mrt-s_k16.mrt").read_bytes()  # (its tokens hash to c1c64...: see below)
    assert codec.set_inference(InferenceSettings("fp32"), BF16_CPU) == REFERENCE
    assert codec.compress(load_image(DATA / "golden_input.png")) == golden
    codec.set_inference(InferenceSettings("auto"), BF16_CPU)
    bits, _, _ = codec.decode_symbols(golden)  # the symbols do not depend on the plan
    assert hashlib.sha256(bits.numpy().astype(np.uint8).tobytes()).hexdigest()[:16] == "c1c64ecdf433ab9b"


# ----- thread use -----
def test_encoding_leaves_the_thread_count_unchanged() -> None:
    codec = _light_codec()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        codec.compress(structured_image(40, 40), scale=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_cli_asks_for_passive_omp_waiting_only_before_torch_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    passive_omp_wait()  # torch is loaded in this process: too late, nothing set
    assert "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.delitem(sys.modules, "torch")
    passive_omp_wait()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    passive_omp_wait()  # the user's choice stays
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize("enabled_before", [True, False])
def test_cli_builds_models_without_gc_passes_and_freezes_what_they_made(enabled_before: bool) -> None:
    import gc

    (gc.enable if enabled_before else gc.disable)()
    try:
        frozen_before = gc.get_freeze_count()
        with long_lived_objects():
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]  # tracked containers made while loading
        assert gc.isenabled() == enabled_before  # the caller's setting comes back
        assert gc.get_freeze_count() >= frozen_before + len(made)  # out of the collector's view
        with pytest.raises(KeyError), long_lived_objects():
            raise KeyError("a failed load")
        assert gc.isenabled() == enabled_before
    finally:
        gc.unfreeze()
        gc.enable()
