"""The latent decoder's upsampling choice (``target.latent_up``): the shuffle decoder paints a fixed
2x2-cell pattern wherever the codes are uncertain; the resize decoder does not, and starts from a
shuffle decoder's weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mrt.errors import ConfigError
from mrt.models.config import MRTConfig, TargetConfig
from mrt.models.generator import LatentDecoder
from mrt.train.checkpoint import load_matching


def _busy(cfg: TargetConfig, seed: int) -> LatentDecoder:
    """A latent decoder whose zero-initialised residual convs are not zero."""
    torch.manual_seed(seed)
    net = LatentDecoder(cfg)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 1.0 / (m.in_channels * m.kernel_size[0] * m.kernel_size[1]) ** 0.5)
            nn.init.normal_(m.bias, 0.0, 0.1)
    return net.eval()


def test_latent_up_is_a_config_choice_whose_default_keeps_ids() -> None:
    assert "latent_up" not in MRTConfig().to_dict()["target"]
    cfg = MRTConfig.from_dict({**MRTConfig().to_dict(), "target": {"latent_up": "resize"}})
    assert cfg.target.latent_up == "resize" and cfg.to_dict()["target"]["latent_up"] == "resize"
    with pytest.raises(ConfigError, match="latent_up"):
        TargetConfig(latent_up="bicubic")  # type: ignore[arg-type]


def _interior_spread(latent: torch.Tensor) -> float:
    """Largest spatial std over channels, away from the border (the zero padding of the 3x3 convs
    reaches 2 cells in at 1/16 and 4 more at 1/8)."""
    inner = latent[0, :, 10:-10, 10:-10]  # [32, h, w]
    return float(inner.flatten(1).std(dim=1).max())


def test_uncertain_codes_give_a_periodic_pattern_with_shuffle_and_a_flat_latent_with_resize() -> None:
    """All-zero codes (every bit 50/50) are the same at every cell: the shuffle decoder still
    writes a 2x2 pattern per cell (the 16-px texture seen in decoded images), resize-conv does not."""
    codes = torch.zeros(1, 16, 16, 16)
    small = dict(bits=16, dim=16, depth=1)
    with torch.no_grad():
        shuffle = _busy(TargetConfig(**small), 0)(codes)  # [1, 32, 32, 32]
        resize = _busy(TargetConfig(**small, latent_up="resize"), 0)(codes)
    assert shuffle.shape == resize.shape == (1, 32, 32, 32)
    assert _interior_spread(shuffle) > 1e-2
    assert _interior_spread(resize) < 1e-5


def test_resize_decoder_starts_from_a_shuffle_decoders_weights() -> None:
    small = dict(bits=16, dim=16, depth=1)
    shuffle = _busy(TargetConfig(**small), 1)
    resize = LatentDecoder(TargetConfig(**small, latent_up="resize")).eval()
    state = {f"g.{k}": v for k, v in shuffle.state_dict().items()}
    wrapper = nn.Module()
    wrapper.g = resize
    report = load_matching(wrapper, state)
    assert report.missing == [] and report.mismatched == [] and report.unexpected == []
    assert "g.up.0.weight" in state  # the caller's dict is left as it was
    w = shuffle.up[0].weight[:, :, 0, 0].reshape(16, 4, 16)  # [c_out, sub-position, c_in]
    torch.testing.assert_close(resize.up[1].weight[:, :, 1, 1], w.mean(1))
    assert resize.up[1].weight[:, :, 0].abs().max() == 0 and resize.up[1].weight[:, :, :, 2].abs().max() == 0
    torch.testing.assert_close(resize.up[1].bias, shuffle.up[0].bias.reshape(16, 4).mean(1))
    torch.testing.assert_close(resize.blocks2[0].conv1.weight, shuffle.blocks2[0].conv1.weight)
    # on codes that are constant over a cell's neighbourhood, the resize decoder's first 1/8 map is
    # the mean of the shuffle decoder's 2x2 pattern
    codes = torch.full((1, 16, 6, 6), 0.3)
    with torch.no_grad():
        x = shuffle.blocks1(shuffle.stem(codes))
        pattern = shuffle.up[1](shuffle.up[0](x))  # [1, 16, 12, 12]
        flat = resize.up(x)
    mean = pattern.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2))  # [1, 16, 6, 6] mean of each 2x2
    torch.testing.assert_close(flat[:, :, 4:8:2, 4:8:2], mean[:, :, 2:4, 2:4], atol=1e-5, rtol=1e-5)
