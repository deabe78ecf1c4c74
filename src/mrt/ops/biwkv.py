"""Bidirectional WKV (Vision-RWKV formulation): exact O(T^2) reference and a linear-time form.

Per channel ``c`` with raw decay ``w`` and bonus ``u`` (both divided by the sequence length T)::

    wkv_t = (sum_{i!=t} exp(-(|t-i|-1) w/T + k_i) v_i + exp(u/T + k_t) v_t)
          / (sum_{i!=t} exp(-(|t-i|-1) w/T + k_i)       + exp(u/T + k_t))

``biwkv`` (what models run) splits the sum into a forward part (i < t), a backward part (i > t)
and the bonus term (i = t), in chunks of L tokens, all in plain differentiable PyTorch (time
O(B*T*C*L), memory O(B*T*C), Python work O(log T) per call):

* inside a chunk, k is shifted by the chunk max (log domain, detached: the shift cancels exactly in
  the ratio, so the gradients stay exact) and one batched matmul per channel with a small
  ``[L, L+2]`` matrix gives, for every token, the within-chunk forward + backward + bonus sums,
  plus the chunk's forward and backward totals;
* across chunks, the totals form a sequence of length T/L with per-step decay ``d^L``
  (``d = exp(-w/T)``); its exclusive decayed prefix sums (one per direction) are the same problem
  again, solved by the recursive chunked scan ``_scan`` (log-scaled states, no loop over chunks);
* the carries enter each chunk as a rank-2 update (``F d^j + G d^(L-1-j)``) after log-sum-exp
  rescaling to a common per-chunk scale.

That fused path runs when ``|w| <= 30`` and ``|u|/T <= 30`` (every decay/bonus factor within
``e^+-30``; Vision-RWKV init has ``w in [-5, 3]``, ``u ~ -1.2``). Otherwise an any-range path runs
(two directional ``_scan``s with chunks shrunk so that within-chunk factors stay within
``e^+-20``, falling back to a per-token loop when ``|w|/T > 20``); it is ~2x slower but exact.
Accumulation is fp32 (fp64 for fp64 inputs), also under autocast; the result has the dtype of k.

Range: shifting by a per-chunk max means that, in fp32, a term more than ~80 nats below the
dominant term of its output is dropped; this is below fp32 resolution of the result as long as
``|w|`` stays within the fused limits (total decay over the sequence <= e^|w|).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["biwkv", "biwkv_reference", "DEFAULT_CHUNK_SIZE", "BOUND"]

# Chosen from benchmarks/bench_biwkv.py (docs/benchmarks_biwkv.md).
DEFAULT_CHUNK_SIZE = 32
# Max |log| of any decay factor used inside one chunk (keeps fp32 far from overflow).
_DECAY_CAP = 20.0
# Fused fast path when |w| and |u|/T are at most this (every factor stays within e^+-30).
_FUSED_LIMIT = 30.0
BOUND = _FUSED_LIMIT  # public name of the range promised by ``biwkv(..., bounded=True)``


def _compute_dtype(k: Tensor) -> torch.dtype:
    return torch.float64 if k.dtype == torch.float64 else torch.float32


def _check(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> None:
    if k.dim() != 3 or k.shape != v.shape:
        raise ValueError(f"k and v must both be [B, T, C], got {tuple(k.shape)} and {tuple(v.shape)}")
    c = k.shape[-1]
    if w.shape != (c,) or u.shape != (c,):
        raise ValueError(f"w and u must be [C={c}], got {tuple(w.shape)} and {tuple(u.shape)}")


def biwkv_reference(w: Tensor, u: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Exact O(T^2) Bi-WKV (tests only). ``k, v: [B, T, C]``, ``w, u: [C]`` -> ``[B, T, C]``."""
    _check(w, u, k, v)
    out_dtype = k.dtype
    cd = _compute_dtype(k)
    with torch.autocast(device_type=k.device.type, enabled=False):
        w, u, k, v = (x.to(cd) for x in (w, u, k, v))
        t_len = k.shape[1]
        pos = torch.arange(t_len, device=k.device)
        dist = (pos[:, None] - pos[None, :]).abs().to(cd)  # [T(t), T(i)]
        # logits[b, t, i, c] = -(|t-i|-1) w/T + k_i  (i != t);  u/T + k_t  (i == t)
        logits = -(dist - 1.0)[None, :, :, None] * (w / t_len) + k[:, None, :, :]
        eye = torch.eye(t_len, dtype=torch.bool, device=k.device)[None, :, :, None]
        logits = torch.where(eye, (u / t_len + k)[:, :, None, :], logits)
        logits = logits - logits.amax(dim=2, keepdim=True).detach()
        p = logits.exp()  # [B, T, T, C]
        out = (p * v[:, None, :, :]).sum(2) / p.sum(2)
    return out.to(out_dtype)


def _decay_matrix(wt: Tensor, n: int) -> Tensor:
    """``D[c, i, j] = exp(-(i-j-1) wt[c])`` for ``j < i`` else 0; shape ``[C, n+1, n]``."""
    i = torch.arange(n + 1, device=wt.device)[:, None]
    j = torch.arange(n, device=wt.device)[None, :]
    steps = (i - j - 1).clamp(min=0).to(wt.dtype)  # [n+1, n]; clamp keeps masked entries finite
    mask = (j < i).to(wt.dtype)
    return torch.exp(-steps[None] * wt[:, None, None]) * mask[None]


def _pick_chunk(wmax: float, n: int, chunk_size: int) -> int:
    """Largest chunk <= chunk_size whose decay factors stay within e^+-_DECAY_CAP (``wmax >= max|wt|``)."""
    limit = n if wmax <= 0.0 else 1 + int(_DECAY_CAP / wmax)
    return max(1, min(chunk_size, n, limit))


def _scan_loop(a: Tensor, b: Tensor | None, s: Tensor, wt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-token fallback of ``_scan`` for very large ``|wt|`` (slow, exact)."""
    n = s.shape[-1]
    wtc = wt[:, None]  # [C, 1]
    sa = torch.zeros_like(s[..., 0])
    sb = torch.zeros_like(s[..., 0])
    ss = s[..., 0].detach()
    outs_a, outs_b, outs_s = [], [], []
    for t in range(n):
        outs_a.append(sa)
        outs_b.append(sb)
        outs_s.append(ss)
        st = s[..., t]
        m = torch.maximum(ss - wtc, st).detach()
        keep = torch.exp(ss - wtc - m)
        new = torch.exp(st - m)
        sa = sa * keep + a[..., t] * new
        sb = sb * keep + (new if b is None else b[..., t] * new)
        ss = m
    return torch.stack(outs_a, -1), torch.stack(outs_b, -1), torch.stack(outs_s, -1)


def _scan(
    a: Tensor, b: Tensor | None, s: Tensor, wt: Tensor, chunk_size: int, wt_bound: float | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Exclusive decayed prefix sums in log-scaled form.

    Inputs ``a, b, s: [C, R, N]`` represent values ``a_i e^{s_i}`` and ``b_i e^{s_i}`` (``b=None``
    means ones); ``wt: [C]`` is the per-step decay and ``wt_bound >= max|wt|`` (None: read it from
    ``wt``, a device->host sync). Returns ``(A, Bs, S)`` ``[C, R, N]`` with
    ``sum_{i<t} exp(-(t-i-1) wt) a_i e^{s_i} = A_t e^{S_t}`` (same for b); ``S`` is detached.
    """
    c, r, n = s.shape
    if n == 1:
        zero = torch.zeros_like(s) + 0.0 * wt[:, None, None]  # keeps w in the graph (DDP)
        return zero, zero, s.detach()
    if wt_bound is None:
        wt_bound = float(wt.detach().abs().max()) if wt.numel() else 0.0
    chunk = _pick_chunk(wt_bound, n, chunk_size)
    if chunk == 1:
        return _scan_loop(a, b, s, wt)
    n_chunks = -(-n // chunk)
    pad = n_chunks * chunk - n
    if pad:
        a = torch.nn.functional.pad(a, (0, pad))
        s = torch.nn.functional.pad(s, (0, pad), value=-math.inf)
        if b is not None:
            b = torch.nn.functional.pad(b, (0, pad))
    s4 = s.reshape(c, r, n_chunks, chunk)
    smax = s4.amax(-1, keepdim=True).detach()  # [C, R, nC, 1]
    e = torch.exp(s4 - smax)  # <= 1; padded positions are exactly 0
    xa = a.reshape(c, r, n_chunks, chunk) * e
    xb = e if b is None else b.reshape(c, r, n_chunks, chunk) * e
    x = torch.cat([xa, xb], dim=1).view(c, 2 * r * n_chunks, chunk)  # [C, 2R*nC, L]
    dmat = _decay_matrix(wt, chunk)  # [C, L+1, L]
    p = torch.bmm(x, dmat.transpose(1, 2)).view(c, 2 * r, n_chunks, chunk + 1)
    pa, pb = p[:, :r], p[:, r:]  # [C, R, nC, L+1]
    if n_chunks == 1:
        sm = smax.expand(c, r, 1, chunk).reshape(c, r, chunk)
        return pa[..., 0, :n], pb[..., 0, :n], sm[..., :n]
    # Carry into each chunk = exclusive scan over chunk totals with per-step decay d^L.
    ca, cb, cs = _scan(pa[..., chunk], pb[..., chunk], smax[..., 0], wt * chunk, chunk_size, wt_bound * chunk)
    cs = cs[..., None]  # [C, R, nC, 1]
    m = torch.maximum(cs, smax)  # [C, R, nC, 1]
    jpos = torch.arange(chunk, device=s.device, dtype=s.dtype)
    dj = torch.exp(-jpos[None, :] * wt[:, None])[:, None, None, :]  # [C, 1, 1, L]
    carry_scale = torch.exp(cs - m) * dj  # [C, R, nC, L]
    intra_scale = torch.exp(smax - m)  # [C, R, nC, 1]
    out_a = ca[..., None] * carry_scale + pa[..., :chunk] * intra_scale
    out_b = cb[..., None] * carry_scale + pb[..., :chunk] * intra_scale
    out_s = m.expand(c, r, n_chunks, chunk)
    shape = (c, r, n_chunks * chunk)
    return (
        out_a.reshape(shape)[..., :n],
        out_b.reshape(shape)[..., :n],
        out_s.reshape(shape)[..., :n],
    )


def _biwkv_general(w: Tensor, u: Tensor, k: Tensor, v: Tensor, chunk_size: int) -> Tensor:
    """Any-range path: two directional scans (stacked as rows) + separate bonus term.

    ``k, v: [C, B, T]`` (compute dtype) -> ``[C, B, T]``.
    """
    bsz, t_len = k.shape[1], k.shape[2]
    wt = w / t_len
    # Both directions in one scan: rows [0, B) forward, rows [B, 2B) time-reversed.
    k2 = torch.cat([k, k.flip(-1)], dim=1)  # [C, 2B, T]
    v2 = torch.cat([v, v.flip(-1)], dim=1)
    sa, sb, ss = _scan(v2, None, k2, wt, chunk_size)
    fa, fb, fs = sa[:, :bsz], sb[:, :bsz], ss[:, :bsz]
    ba, bb, bs = sa[:, bsz:].flip(-1), sb[:, bsz:].flip(-1), ss[:, bsz:].flip(-1)
    bonus = k + (u / t_len)[:, None, None]  # [C, B, T] log scale of the i == t term
    m = torch.maximum(torch.maximum(fs, bs), bonus.detach())
    ef, eb, eu = torch.exp(fs - m), torch.exp(bs - m), torch.exp(bonus - m)
    num = fa * ef + ba * eb + v * eu
    den = fb * ef + bb * eb + eu  # >= eu > 0 for finite k
    return num / den


def _fused_matrix(wt: Tensor, ut: Tensor, n: int) -> Tensor:
    """Per-channel ``[C, n, n+2]`` map from chunk inputs (rows i) to outputs (columns).

    Columns ``j < n``: weight of token i in output j, ``exp(-(|j-i|-1) wt)`` (``exp(ut)`` on the
    diagonal); column n: forward chunk total ``d^(n-1-i)``; column n+1: backward total ``d^i``.
    """
    i = torch.arange(n, device=wt.device)[:, None]
    j = torch.arange(n, device=wt.device)[None, :]
    dist = ((i - j).abs() - 1).clamp(min=0).to(wt.dtype)  # [n, n]
    eye = (i == j)
    inner = torch.where(eye[None], ut[:, None, None], -dist[None] * wt[:, None, None])
    pos = torch.arange(n, device=wt.device, dtype=wt.dtype)
    fwd_tot = -(n - 1 - pos)[None, :, None] * wt[:, None, None]  # [C, n, 1]
    bwd_tot = -pos[None, :, None] * wt[:, None, None]
    return torch.exp(torch.cat([inner, fwd_tot, bwd_tot], dim=2))


def _biwkv_fused(w: Tensor, u: Tensor, k: Tensor, v: Tensor, chunk_size: int) -> Tensor:
    """Fast path for ``|w| <= _FUSED_LIMIT`` and ``|u|/T <= _FUSED_LIMIT`` (all factors in e^+-30).

    Inside a chunk both directions and the bonus are one matmul with ``_fused_matrix``; the carries
    from earlier/later chunks are added as a rank-2 update. ``k, v: [C, B, T]`` -> ``[C, B, T]``.
    """
    c, bsz, t_len = k.shape
    wt, ut = w / t_len, u / t_len
    chunk = min(chunk_size, t_len)
    n_chunks = -(-t_len // chunk)
    pad = n_chunks * chunk - t_len
    if pad:
        k = torch.nn.functional.pad(k, (0, pad), value=-math.inf)
        v = torch.nn.functional.pad(v, (0, pad))
    k4 = k.reshape(c, bsz, n_chunks, chunk)
    kmax = k4.amax(-1, keepdim=True).detach()  # [C, B, nC, 1]
    e = (k4 - kmax).exp_()  # [C, B, nC, L], <= 1, padding exactly 0 (in-place exp is autograd-safe)
    xv = e * v.reshape(c, bsz, n_chunks, chunk)
    del k, k4, v  # lets no-grad callers free the padded copies early
    mat = _fused_matrix(wt, ut, chunk)  # [C, L, L+2]
    pv = torch.bmm(xv.view(c, bsz * n_chunks, chunk), mat).view(c, bsz, n_chunks, chunk + 2)
    del xv
    pe = torch.bmm(e.view(c, bsz * n_chunks, chunk), mat).view(c, bsz, n_chunks, chunk + 2)
    del e
    if n_chunks == 1:
        num, den = pv[..., :chunk], pe[..., :chunk]
    else:
        # Carries: exclusive scans over chunk totals (forward; backward = reversed chunk order).
        km = kmax[..., 0]  # [C, B, nC]
        ta = torch.cat([pv[..., chunk], pv[..., chunk + 1].flip(-1)], dim=1)  # [C, 2B, nC]
        tb = torch.cat([pe[..., chunk], pe[..., chunk + 1].flip(-1)], dim=1)
        sc = torch.cat([km, km.flip(-1)], dim=1)
        # |w| <= _FUSED_LIMIT bounds the per-chunk decay without reading w back from the device
        ca, cb, cs = _scan(ta, tb, sc, wt * chunk, chunk_size, _FUSED_LIMIT / t_len * chunk)
        fa, fb, fs = ca[:, :bsz], cb[:, :bsz], cs[:, :bsz]  # carry into chunk from the left
        ga, gb, gs = ca[:, bsz:].flip(-1), cb[:, bsz:].flip(-1), cs[:, bsz:].flip(-1)  # from the right
        m = torch.maximum(torch.maximum(fs, gs), km)  # [C, B, nC] common scale per chunk
        alpha = torch.exp(km - m)[..., None]  # [C, B, nC, 1]
        ef, eg = torch.exp(fs - m), torch.exp(gs - m)
        # rank-2 carry update: row j gets F d^j + G d^(L-1-j)
        pos = torch.arange(chunk, device=wt.device, dtype=wt.dtype)
        dcar = torch.exp(-torch.stack([pos, chunk - 1 - pos])[None] * wt[:, None, None])  # [C, 2, L]
        coef_a = torch.stack([fa * ef, ga * eg], dim=-1).view(c, bsz * n_chunks, 2)
        coef_b = torch.stack([fb * ef, gb * eg], dim=-1).view(c, bsz * n_chunks, 2)
        # bmm does not save its output, so accumulating into it in place is autograd-safe
        num = torch.bmm(coef_a, dcar).view(c, bsz, n_chunks, chunk).addcmul_(pv[..., :chunk], alpha)
        del pv
        den = torch.bmm(coef_b, dcar).view(c, bsz, n_chunks, chunk).addcmul_(pe[..., :chunk], alpha)
        del pe
    out = num.div_(den) if not torch.is_grad_enabled() and n_chunks > 1 else num / den  # [C, B, nC, L]
    return out.reshape(c, bsz, n_chunks * chunk)[..., :t_len]


def biwkv(
    w: Tensor,
    u: Tensor,
    k: Tensor,
    v: Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    bounded: bool = False,
) -> Tensor:
    """Linear-time Bi-WKV. ``k, v: [B, T, C]``, ``w, u: [C]`` raw (divided by T here) -> ``[B, T, C]``.

    Differentiable w.r.t. all inputs; fp32 accumulation (fp64 for fp64 ``k``), autocast disabled
    inside; returns the dtype of ``k``. ``chunk_size`` only affects speed (and rounding).
    ``bounded=True`` promises ``|w| <= BOUND`` and ``|u| <= BOUND * T`` (``BOUND = 30``, e.g. by
    clamping as ``BiRWKVBlock`` does): the fast path is then taken without reading w, u back to the
    host (no device sync; friendlier to CUDA graphs / torch.compile). Otherwise the path is chosen
    by inspecting w and u (one sync).
    """
    return _biwkv(w, u, k, v, chunk_size, True if bounded else None)


def _biwkv(w: Tensor, u: Tensor, k: Tensor, v: Tensor, chunk_size: int, fused: bool | None) -> Tensor:
    _check(w, u, k, v)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    out_dtype = k.dtype
    cd = _compute_dtype(k)
    t_len = k.shape[1]
    if t_len == 0:
        return torch.empty_like(k)
    with torch.autocast(device_type=k.device.type, enabled=False):
        w, u = w.to(cd), u.to(cd)
        if fused is None:
            lim = float(torch.maximum(w.detach().abs().max(), u.detach().abs().max() / t_len))
            fused = lim <= _FUSED_LIMIT
        impl = _biwkv_fused if fused else _biwkv_general
        # [C, B, T] contiguous (keeps amax/bmm on fast paths); no other references are kept
        out = impl(w, u, k.permute(2, 0, 1).contiguous().to(cd), v.permute(2, 0, 1).contiguous().to(cd), chunk_size)
        out = out.permute(1, 2, 0)  # [B, T, C] view
    return out.to(out_dtype).contiguous()
