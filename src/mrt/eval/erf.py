"""Effective receptive fields (the paper's Figure 4): which input pixels one output depends on.

For a chosen window of an image, the *target* is either the encoder's continuous latent tokens
of that window (``target="tokens"``: how far the analysis of one window reaches) or the decoded
pixels of that window (``target="pixels"``: the whole codec, through LFQ's straight-through
gradient and the soft codes). The ERF is ``|d target / d input|`` summed over colour channels,
normalised by its maximum; ``erf_extent`` measures the area above a threshold, as the figure
thresholds its maps. Works for any model (mixing ``birwkv``, ``none``, ``global_vit``).

``wrt="pixels"`` differentiates with respect to the input image (through the frozen TAEF2
encoder, whose own reach is over 100 px and which has GroupNorm layers with image-wide
statistics); ``wrt="latent"`` with respect to the TAEF2 latent, which isolates the MRT
transform's mixing (each latent cell's value is shown over its 8 x 8 pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mrt.models.codec_model import MRTCodecModel


@dataclass(frozen=True)
class ERF:
    """A normalised receptive-field map of one window of one image."""

    map: np.ndarray  # float32 [H, W] in [0, 1] (1 = the largest gradient magnitude)
    window: tuple[int, int]  # (row, col) of the target window
    window_box: tuple[int, int, int, int]  # (y0, x0, y1, x1) of that window in pixels, clipped to the image

    def extent(self, threshold: float = 0.01) -> float:
        """Fraction of the image's pixels whose normalised gradient exceeds ``threshold``."""
        return float((self.map > threshold).mean())

    def outside_window(self, threshold: float = 0.01) -> float:
        """Fraction of the above-threshold pixels that lie outside the target window."""
        above = self.map > threshold
        y0, x0, y1, x1 = self.window_box
        inside = int(above[y0:y1, x0:x1].sum())
        total = int(above.sum())
        return 0.0 if total == 0 else (total - inside) / total


def effective_receptive_field(
    model: MRTCodecModel,
    img: np.ndarray,
    window: tuple[int, int] | None = None,
    target: str = "tokens",
    wrt: str = "pixels",
) -> ERF:
    """ERF of ``window`` (row, col; default the centre window) of ``img`` (uint8 [H, W, 3])."""
    if target not in ("tokens", "pixels"):
        raise ValueError(f"target must be 'tokens' or 'pixels', got {target!r}")
    if wrt not in ("pixels", "latent"):
        raise ValueError(f"wrt must be 'pixels' or 'latent', got {wrt!r}")
    h, w = img.shape[:2]
    geo = model.geometry(h, w)
    row, col = window if window is not None else (geo.rows // 2, geo.cols // 2)
    if not (0 <= row < geo.rows and 0 <= col < geo.cols):
        raise ValueError(f"window {(row, col)} is outside the {geo.rows}x{geo.cols} window grid")
    x = model.image_to_tensor(img).requires_grad_(wrt == "pixels")  # [1, 3, Hp, Wp]
    with torch.enable_grad():
        latent = model.analyse(x)  # [1, 32, Hp/8, Wp/8]
        if wrt == "latent":
            latent = latent.detach().requires_grad_(True)
        source = x if wrt == "pixels" else latent
        tokens = model.encoder(latent)  # [1, nW, K, d] continuous
        index = row * geo.cols + col
        if target == "tokens":
            value = tokens[0, index].abs().sum()
        else:
            q = model.lfq(tokens[:, :, : model.k_code]).quantized
            rgb = model.render(model.synthesize_latent(model.codes_from_logits(model.decoder(q, geo.rows, geo.cols))))
            s = geo.window
            value = rgb[0, :, row * s : (row + 1) * s, col * s : (col + 1) * s].sum()
        (grad,) = torch.autograd.grad(value, source)
    mag = grad[0].abs().sum(0)  # [Hp, Wp] or [Hp/8, Wp/8]
    if wrt == "latent":
        stride = x.shape[-1] // latent.shape[-1]
        mag = mag.repeat_interleave(stride, 0).repeat_interleave(stride, 1)  # each cell over its pixels
    mag = mag[:h, :w]
    peak = float(mag.max())
    erf_map = (mag / peak if peak > 0 else mag).float().numpy()
    s = geo.window
    box = (row * s, col * s, min((row + 1) * s, h), min((col + 1) * s, w))
    return ERF(erf_map, (row, col), box)


def erf_image(erf: ERF, img: np.ndarray, gamma: float = 0.25) -> np.ndarray:
    """uint8 [H, W, 3] picture: the image darkened, the ERF in red-yellow on top (``map ** gamma``)."""
    heat = np.clip(erf.map, 0.0, 1.0) ** gamma  # gamma < 1 shows the small gradients far away
    base = img.astype(np.float32) * 0.35
    over = np.stack([255.0 * np.minimum(1.0, 2 * heat), 255.0 * np.clip(2 * heat - 1, 0, 1), np.zeros_like(heat)], -1)
    out = base * (1 - heat[..., None]) + over * heat[..., None]
    y0, x0, y1, x1 = erf.window_box
    box_colour = (80, 200, 255)  # the target window's outline
    out[y0:y1, x0] = out[y0:y1, x1 - 1] = box_colour
    out[y0, x0:x1] = out[y1 - 1, x0:x1] = box_colour
    return out.clip(0, 255).astype(np.uint8)
