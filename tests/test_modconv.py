"""StyleGAN2's modulated convolution (nets/modconv.py): the fused and non-fused forms give the same
result, with and without upsampling and demodulation, and the automatic choice follows its rule."""

from __future__ import annotations

import torch

from ganforge.nets.modconv import CPU_FUSED_MIN_PIXELS_PER_TAP, choose_fused, modulated_conv2d
from ganforge.nets.stylegan2 import UpBlur


def _case(n=3, cin=5, cout=4, k=3, size=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, size, size, generator=g, dtype=torch.float64)
    w = torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64)
    s = torch.randn(n, cin, generator=g, dtype=torch.float64) + 1.0
    return x, w, s


def test_fused_equals_non_fused_in_every_variant():
    for k, demod, up in ((3, True, False), (3, False, False), (1, False, False), (3, True, True), (3, False, True)):
        x, w, s = _case(k=k)
        up_fn = UpBlur(w.shape[0]).double() if up else None
        kw = dict(demodulate=demod, padding=k // 2, up=up_fn)
        a = modulated_conv2d(x, w, s, fused=False, **kw)
        b = modulated_conv2d(x, w, s, fused=True, **kw)
        assert a.shape == b.shape == (3, 4, 12 if up else 6, 12 if up else 6)
        assert torch.allclose(a, b, atol=1e-10), (k, demod, up, (a - b).abs().max())
    # against the definition: each sample convolved with its own modulated, demodulated weight
    x, w, s = _case(n=2)
    out = modulated_conv2d(x, w, s, demodulate=True, padding=1, fused=False)
    for i in range(2):
        wi = w * s[i][None, :, None, None]
        wi = wi / wi.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
        ref = torch.nn.functional.conv2d(x[i:i + 1], wi, padding=1)
        assert torch.allclose(out[i:i + 1], ref, atol=1e-10)


def test_fused_form_back_propagates_like_the_non_fused_one():
    x, w, s = _case()
    grads = []
    for fused in (False, True):
        xs, ws, ss = (t.clone().requires_grad_(True) for t in (x, w, s))
        modulated_conv2d(xs, ws, ss, demodulate=True, padding=1, fused=fused).square().sum().backward()
        grads.append([xs.grad, ws.grad, ss.grad])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-9)


def test_automatic_choice():
    w = torch.zeros(4, 32, 3, 3)  # 288 taps per output channel
    need = CPU_FUSED_MIN_PIXELS_PER_TAP * 32 * 9
    big = torch.zeros(1, 32, 64, 64)  # 4096 pixels >= need (2304)
    small = torch.zeros(1, 32, 16, 16)  # 256 pixels
    assert 4096 >= need > 256
    with torch.no_grad():
        assert choose_fused(big, w, training=False) is True
        assert choose_fused(small, w, training=False) is False
        assert choose_fused(torch.zeros(1, 32, 32, 32), w, training=False, upsample=True) is True  # 64² out
        assert choose_fused(big, w, training=True) is False  # trains as the official code: non-fused
    assert choose_fused(big, w.requires_grad_(True), training=False) is False  # back-propagates into it
