"""The 2-D latent codec (``model.kind: latent2d``) as a model of the package: a tiny random model
saved as a model file goes through the real codec, container, CLI and training/release paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_tiny_model, structured_image
from mrt.bitstream import unpack
from mrt.cli.main import main
from mrt.codec import Codec, list_models, open_for
from mrt.errors import BitstreamError, ConfigError, ModelError
from mrt.models.config import MRTConfig, RCMConfig, TargetConfig, canonical_json, model_id
from mrt.models.latent2d import Latent2DCodecModel
from mrt.models.modelfile import build_codec_model, load_model_file, read_model_info, save_model_file

TOLERANCE_BITS = 32  # range-coder termination and table quantisation, beyond the 1% (as for MRT)


def tiny_2d_config(**changes: object) -> MRTConfig:
    """Windows of 64 px (4 x 4 latents), 8 bits per latent in 4 groups of 2 bits, checkerboard."""
    cfg = MRTConfig(name="tiny2d", kind="latent2d", window=64, n_tokens=4, token_bits=8,
                    rcm=RCMConfig(dim=16, depth=1, groups=4, passes=2), target=TargetConfig(bits=8, dim=16, depth=1))
    return cfg.replace(**changes) if changes else cfg


def make_tiny_2d(seed: int = 0, **changes: object) -> Latent2DCodecModel:
    """A random model whose context model is far from uniform (its zero-initialised head perturbed)."""
    torch.manual_seed(seed)
    model = build_codec_model(tiny_2d_config(**changes))
    assert isinstance(model, Latent2DCodecModel)
    with torch.no_grad():
        for p in model.rcm.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models2d") / "tiny2d.mrtm"
    save_model_file(make_tiny_2d(), path, variants={"tiny2d-k1": 1, "tiny2d-k2": 2, "tiny2d-k4": 4},
                    default_variant="tiny2d-k2", description="tiny random 2-D latent codec")
    return path


@pytest.fixture(scope="module")
def codec(model_file: Path) -> Codec:
    return Codec.load(str(model_file))


# ----- round trips -----
@pytest.mark.parametrize("shape", [(1, 1), (17, 33), (70, 130), (200, 65)])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_round_trip_is_bit_exact(codec: Codec, shape: tuple[int, int], k: int) -> None:
    img = structured_image(*shape, seed=shape[1])
    data = codec.compress(img, k=k)
    out = codec.decompress(data)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.array_equal(out, codec.model.decode_bits(codec.model.encode_bits(img, k), *shape))
    if k == codec.model.k_code:
        assert np.array_equal(out, codec.reconstruct(img))
        assert np.array_equal(Codec.load(str(codec.info.path)).decompress(data), out)  # a fresh load decodes it too


def test_model_file_kind_variants_and_lookup(model_file: Path, codec: Codec, monkeypatch: pytest.MonkeyPatch) -> None:
    info = read_model_info(model_file)
    assert info.config.kind == "latent2d" and '"kind":"latent2d"' in canonical_json(info.config.to_dict())
    model, _, variant = load_model_file(model_file, "tiny2d-k1")
    assert isinstance(model, Latent2DCodecModel) and model.k_code == 1 and variant.name == "tiny2d-k1"
    assert codec.max_tokens == 4 and codec.name == "tiny2d-k2"
    img = structured_image(64, 96, seed=2)
    sizes = [len(codec.compress(img, k=k)) for k in (1, 2, 3, 4)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    monkeypatch.setenv("MRT_MODEL_PATH", str(model_file))
    assert {m.name for m in list_models()} >= {"tiny2d-k1", "tiny2d-k2", "tiny2d-k4"}
    for k in (2, 3):  # a variant's k and any other k: version 4, the file's id
        data = codec.compress(img, k=k)
        assert (unpack(data).version, unpack(data).model_id, unpack(data).k) == (4, codec.file_id, k)
        assert np.array_equal(open_for(data).decompress(data), codec.decompress(data))


def test_rate_control_fits_a_budget(codec: Codec) -> None:
    img = structured_image(128, 192, seed=4)
    full = len(codec.compress(img, k=4))
    rep = codec.encode(img, max_bytes=full - 1)
    assert len(rep.data) <= full - 1 and 1 <= rep.k < 4
    assert np.array_equal(codec.decompress(rep.data), codec.model.decode_bits(codec.model.encode_bits(img, rep.k), 128, 192))


def test_same_bytes_across_threads(codec: Codec) -> None:
    img = structured_image(90, 140, seed=3)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = codec.compress(img, k=3)
        torch.set_num_threads(2)
        b = codec.compress(img, k=3)
    finally:
        torch.set_num_threads(before)
    assert a == b


# ----- bad files -----
def test_every_truncation_and_flipped_bit_is_refused(codec: Codec) -> None:
    img = structured_image(20, 30, seed=7)
    data = codec.compress(img, k=4)
    ref = codec.decompress(data)
    for cut in range(len(data)):
        with pytest.raises((BitstreamError, ModelError)):
            codec.decompress(data[:cut])
    for i in range(len(data) * 8):
        bad = bytearray(data)
        bad[i // 8] ^= 1 << (i % 8)
        try:
            out = codec.decompress(bytes(bad))
        except (BitstreamError, ModelError):
            continue
        assert np.array_equal(out, ref), f"bit {i} flipped gave a different image without an error"


def test_payload_garbage_is_a_bitstream_error(codec: Codec) -> None:
    data = codec.compress(structured_image(64, 64, seed=8), k=4)
    header = len(data) - len(unpack(data).payload)
    rng = np.random.default_rng(0)
    for _ in range(5):
        junk = data[:header] + rng.integers(0, 256, len(data) - header, dtype=np.uint8).tobytes()
        with pytest.raises(BitstreamError):
            codec.decompress(junk)


def test_wrong_model_is_refused(codec: Codec) -> None:
    other = Codec.from_model(make_tiny_2d(seed=1))
    mrt = Codec.from_model(make_tiny_model())
    data = codec.compress(structured_image(16, 16), k=2)
    for wrong in (other, mrt):
        with pytest.raises(ModelError, match="made by model"):
            wrong.decompress(data)
    with pytest.raises(ModelError, match="made by model"):
        codec.decompress(mrt.compress(structured_image(16, 16)))


# ----- the context model -----
def test_training_rate_matches_the_payload(codec: Codec) -> None:
    """``forward(...).rate_bits`` (all steps batched) is what the range coder writes (step by step)."""
    model = codec.model
    for name, img in (("structured", structured_image(128, 192, seed=5)),
                      ("noise", np.random.default_rng(1).integers(0, 256, (128, 192, 3), dtype=np.uint8)),
                      ("flat", np.full((128, 192, 3), 90, np.uint8))):
        for k in (1, 2, 4):
            with torch.no_grad():
                out = model(model.analyse(model.image_to_tensor(img)), k)
            coded = model.rcm.encode(model.encode_bits(img, k)[0])
            rate, bits = float(out.rate_bits[0]), len(coded.payload) * 8
            assert abs(bits - rate) <= 0.01 * rate + TOLERANCE_BITS, (name, k, bits, rate)
            assert abs(coded.estimated_bits - rate) <= 1e-3 * rate + 1e-2, (name, k)
            assert float(out.bpp[0]) == pytest.approx(rate / img.shape[0] / img.shape[1])


def test_rate_trains_the_context_model_only() -> None:
    """The rate's gradient reaches the context model, never the encoder (rate points come from k)."""
    model = make_tiny_2d().train()
    latent = torch.randn(2, 32, 16, 8)
    out = model(latent, 3)
    out.rate_bits.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in model.encoder.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.rcm.parameters())
    assert out.codes[:, 6:].abs().sum() == 0 and out.codes[:, :6].abs().min() == 1  # groups >= k are unknown (0)


def test_a_step_sees_only_what_the_decoder_knows() -> None:
    """Changing every bit not yet decoded before a step leaves that step's tables unchanged, and
    the bits a step codes are among those it does not know."""
    rcm = make_tiny_2d().rcm
    c, gb, groups = rcm.cells, rcm.group_bits, rcm.groups
    bits = torch.randint(0, 2, (3, groups, c * c * gb), generator=torch.Generator().manual_seed(0))  # [nW, K, c*c*gb]
    for planned in rcm.plan(groups):
        # the step's known mask [d, c, c] in the window layout [K, c*c*gb]
        known = rcm.known_mask(planned.step).reshape(groups, gb, c, c).permute(0, 2, 3, 1).reshape(groups, -1) > 0
        changed = torch.where(known, bits, 1 - bits)
        with torch.no_grad():
            a = rcm.step_tables(bits[None].float() * 2 - 1, planned).freqs
            b = rcm.step_tables(changed[None].float() * 2 - 1, planned).freqs
        assert np.array_equal(a, b), planned.step
        coded = known.reshape(groups, c * c, gb)[planned.step.group, planned.tokens]
        assert not coded.any(), planned.step
    # ... while a change of a known bit does change some later step's tables
    last = rcm.plan(groups)[-1]
    flipped = bits.clone()
    flipped[:, 0] = 1 - flipped[:, 0]
    with torch.no_grad():
        assert not np.array_equal(rcm.step_tables(bits[None].float() * 2 - 1, last).freqs,
                                  rcm.step_tables(flipped[None].float() * 2 - 1, last).freqs)


def test_groups_are_nested(codec: Codec) -> None:
    """Coding k groups codes the first k groups exactly as coding more groups does (group-major order)."""
    model = codec.model
    bits = model.encode_bits(structured_image(128, 128, seed=6), 4)[0]
    full = model.rcm.encode(bits)
    for k in (1, 2, 3):
        part = model.rcm.encode(bits[:, :k].contiguous())
        assert np.array_equal(part.symbols, full.symbols[: len(part.symbols)])
        decoded, _ = model.rcm.decode(part.payload, bits.shape[0], k)
        assert torch.equal(decoded, bits[:, :k])


def test_random_bits_decode_exactly() -> None:
    rcm = make_tiny_2d(seed=3).rcm
    bits = torch.randint(0, 2, (5, 3, 32), generator=torch.Generator().manual_seed(2))
    coded = rcm.encode(bits)
    decoded, symbols = rcm.decode(coded.payload, 5, 3)
    assert torch.equal(decoded, bits) and np.array_equal(symbols, coded.symbols)
    with torch.no_grad():
        rate = float(rcm.rate_bits(bits[None].float() * 2 - 1)[0])
    assert abs(len(coded.payload) * 8 - rate) <= 0.01 * rate + TOLERANCE_BITS


# ----- config, ids, CLI, training -----
def test_existing_model_ids_are_unchanged() -> None:
    """``kind`` is left out of the canonical JSON at its default: every MRT id stays what it was."""
    assert "kind" not in MRTConfig().to_dict()
    assert model_id(MRTConfig(), "x") == 0x0D61B2  # recorded before the field existed
    assert model_id(MRTConfig(name="tiny", window=64), "abc") == 0x97EE20
    shipped = Path(__file__).resolve().parents[1] / "src" / "mrt" / "weights" / "mrt-s.mrtm"
    if shipped.is_file():
        info = read_model_info(shipped)
        assert info.config.kind == "mrt"
        assert info.file_id == 0x5730AF
        assert {v.name: v.model_id for v in info.variants} == {
            "mrt-s-k8": 0xAC1A95, "mrt-s-k16": 0xAF955A, "mrt-s-k32": 0xE94731}
    two_d = tiny_2d_config()
    assert MRTConfig.from_dict(json.loads(canonical_json(two_d.to_dict()))) == two_d
    assert model_id(two_d, "x") != model_id(two_d.replace(kind="mrt", rcm=RCMConfig(dim=16, depth=1, groups=4)), "x")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_tokens": 2}, "n_tokens .2. must equal rcm.groups .4."),
        ({"token_bits": 16}, "token_bits .16. must equal target.bits .8."),
        ({"rcm": RCMConfig(dim=16, depth=1, groups=4, passes=3)}, "rcm.passes must be 1 or 2"),
        ({"kind": "3d"}, "unknown model kind"),
    ],
)
def test_bad_latent2d_configs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_2d_config(**changes)


def test_channel_context_only_variant_round_trips() -> None:
    """``rcm.passes: 1``: every latent of a group at once (no spatial context pass)."""
    codec = Codec.from_model(make_tiny_2d(rcm=RCMConfig(dim=16, depth=1, groups=4, passes=1)))
    img = structured_image(40, 70, seed=9)
    assert np.array_equal(codec.decompress(codec.compress(img)), codec.reconstruct(img))


def test_cli_compress_with_model_path_and_decompress_by_id(
    tmp_path: Path, model_file: Path, codec: Codec, monkeypatch: pytest.MonkeyPatch
) -> None:
    img = structured_image(50, 90, seed=11)
    Image.fromarray(img).save(tmp_path / "in.png")
    assert main(["compress", str(tmp_path / "in.png"), "-o", str(tmp_path / "x.mrt"), "--model", str(model_file), "-q"]) == 0
    data = (tmp_path / "x.mrt").read_bytes()
    assert unpack(data).model_id == codec.file_id  # the model file's id (version 4)
    monkeypatch.setenv("MRT_MODEL_PATH", str(model_file.parent))
    assert main(["decompress", str(tmp_path / "x.mrt"), "-o", str(tmp_path / "out.png"), "-q"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), codec.reconstruct(img))
    assert main(["models", "--json"]) == 0


def test_mrt_stages_refuse_a_latent2d_model_and_vice_versa() -> None:
    from conftest import tiny_config
    from mrt.train.config import TrainConfig
    from mrt.train.tasks import build_task

    with pytest.raises(ConfigError, match="trains MRT models"):
        build_task(TrainConfig.from_dict({"task": "stage1", "model": tiny_2d_config().to_dict()}))
    with pytest.raises(ConfigError, match="needs model.kind: latent2d"):
        build_task(TrainConfig.from_dict({"task": "latent2d", "model": tiny_config().to_dict(),
                                          "task_args": {"init_taef2": False}}))


def test_train_release_and_code(tmp_path: Path) -> None:
    """A few steps of each task through the real loop, ``mrt release``, then the codec."""
    from _synthetic import synthetic_items
    from mrt.train.config import TrainConfig
    from mrt.train.loop import train

    items = synthetic_items(4, 128, 128, seed=0)
    run = {"steps": 6, "log_every": 3, "ckpt_every": 1000, "threads": 1, "ema_decay": None, "progress": False,
           "tensorboard": False}
    base = {"model": tiny_2d_config().to_dict(), "data": {"crop": 64, "batch_size": 2, "with_latents": True},
            "optim": {"lr": 1e-3, "warmup_steps": 1, "schedule": "constant"}}
    phase1 = TrainConfig.from_dict({**base, "task": "latent2d", "run": {**run, "out_dir": str(tmp_path / "p1")},
                                    "task_args": {"init_taef2": False, "k_choices": [1, 2, 4], "w_rate": 1.0,
                                                  "rate_steps": 3},
                                    "data": {**base["data"], "with_pixels": False}})
    train(phase1, items=items)
    phase2 = TrainConfig.from_dict({**base, "task": "latent2d_ft",
                                    "run": {**run, "out_dir": str(tmp_path / "p2"), "init_from": str(tmp_path / "p1")},
                                    "task_args": {"init_taef2": False, "k_choices": [2, 4], "w_rate": 1.0, "w_pixel": 10.0},
                                    "data": {**base["data"], "with_pixels": True}})
    train(phase2, items=items)
    from mrt.train.checkpoint import export_weights

    w1, w2 = (export_weights(tmp_path / d, use_ema=False, prefix="model.") for d in ("p1", "p2"))
    assert all(torch.equal(w1[n], w2[n]) for n in w1 if n.startswith("encoder."))  # phase 2 froze the encoder
    assert not all(torch.equal(w1[n], w2[n]) for n in w1 if n.startswith("rcm."))  # ... not the context model
    out = tmp_path / "fam2d.mrtm"
    assert main(["release", str(tmp_path / "p2"), "-o", str(out), "--name", "fam2d", "--tokens", "1,2,4"]) == 0
    released = Codec.load(str(out))
    assert released.name == "fam2d-k2" and released.info.config.kind == "latent2d"
    img = structured_image(70, 100, seed=12)
    for k in (1, 4):
        data = released.compress(img, k=k)
        assert np.array_equal(released.decompress(data), released.model.decode_bits(released.model.encode_bits(img, k), 70, 100))
