"""SPADE / GauGAN networks: shapes for square and non-square label maps, the label map actually
steering the output where it changes, the discriminator's per-scale features, and a few optimiser
steps that really fit a tiny label->image mapping."""

from __future__ import annotations

import pytest
import torch

from ganforge.errors import DataError, GanforgeError
from ganforge.nets.spade import SPADE, MultiscaleDiscriminator, SpadeGenerator, SpadeResBlock, one_hot

pytestmark = pytest.mark.usefixtures("one_thread")


def _labels(n: int, h: int, w: int) -> torch.Tensor:
    lab = torch.zeros(n, h, w, dtype=torch.long)
    lab[:, h // 4:h // 2, w // 4:w // 2] = 1
    lab[:, h // 2:, w // 2:] = 2
    return lab


def test_one_hot_and_errors():
    lab = torch.tensor([[[0, 1], [2, 1]]])
    oh = one_hot(lab, 3)
    assert oh.shape == (1, 3, 2, 2) and oh.dtype == torch.float32
    assert torch.equal(oh.argmax(1), lab) and torch.equal(oh.sum(1), torch.ones(1, 2, 2))
    assert torch.equal(one_hot(lab.unsqueeze(1).to(torch.uint8), 3), oh)
    with pytest.raises(DataError, match=r"max id 5.*num_classes=3"):
        one_hot(torch.tensor([[[0, 5]]]), 3)
    with pytest.raises(DataError, match="-1"):
        one_hot(torch.tensor([[[0, -1]]]), 3)


@pytest.mark.parametrize("h,w", [(64, 64), (64, 96)])
def test_generator_output_shape(h, w):
    torch.manual_seed(0)
    g = SpadeGenerator(3, ngf=8, nhidden=16)
    assert g.multiple == 32
    out = g(_labels(2, h, w))
    assert out.shape == (2, 3, h, w)
    assert out.abs().max() <= 1
    # a float one-hot map gives the same image as the ids
    g.eval()
    with torch.no_grad():
        assert torch.allclose(g(_labels(1, h, w)), g(one_hot(_labels(1, h, w), 3)), atol=1e-6)


def test_generator_options_and_size_errors():
    torch.manual_seed(0)
    g = SpadeGenerator(3, out_channels=1, ngf=8, nhidden=8, num_upsampling_layers="more", z_dim=4,
                       crop_size=64, norm="batch", spectral=False)
    assert g.multiple == 64
    assert g(_labels(2, 64, 128), torch.randn(2, 4)).shape == (2, 1, 64, 128)  # z map resized to 1×2
    assert g(_labels(2, 64, 64)).shape == (2, 1, 64, 64)  # z drawn when not given
    g_most = SpadeGenerator(2, ngf=8, nhidden=8, num_upsampling_layers="most")
    assert g_most.multiple == 128 and g_most(torch.zeros(1, 128, 128, dtype=torch.long)).shape == (1, 3, 128, 128)
    with pytest.raises(GanforgeError, match="multiples of 32"):
        SpadeGenerator(3, ngf=8, nhidden=8)(_labels(1, 48, 64))
    with pytest.raises(DataError, match="max id 2"):
        SpadeGenerator(2, ngf=8, nhidden=8)(_labels(1, 32, 32))
    with pytest.raises(GanforgeError, match="num_upsampling_layers"):
        SpadeGenerator(2, num_upsampling_layers="many")


def test_spade_blocks():
    x = torch.randn(2, 6, 8, 8)
    seg = one_hot(_labels(2, 16, 16), 3)
    spade = SPADE(6, 3, nhidden=8)
    assert spade(x, seg).shape == x.shape
    assert SpadeResBlock(6, 4, 3, nhidden=8)(x, seg).shape == (2, 4, 8, 8)
    same = SpadeResBlock(6, 6, 3, nhidden=8, spectral=False)
    assert not same.learned_shortcut and same(x, seg).shape == x.shape


def test_output_follows_the_label_map_locally():
    torch.manual_seed(1)
    g = SpadeGenerator(4, ngf=8, nhidden=16).eval()
    lab = _labels(1, 64, 96)
    changed = lab.clone()
    changed[:, 40:60, 8:40] = 3  # a new region in the lower-left quarter
    with torch.no_grad():
        diff = (g(lab) - g(changed)).abs().mean(1)[0]
    inside = torch.zeros(64, 96, dtype=torch.bool)
    inside[40:60, 8:40] = True
    assert diff[inside].mean() > 0.01
    assert diff[inside].mean() > 2 * diff[~inside].mean()


def test_multiscale_discriminator():
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(3 + 3, ndf=8, n_layers=4, num_d=3)
    out = d(torch.randn(2, 6, 64, 96))
    assert len(out) == 3
    assert all(len(scale) == 5 for scale in out)
    logits = [scale[-1] for scale in out]
    assert all(t.shape[:2] == (2, 1) for t in logits)
    assert logits[0].shape[-1] > logits[1].shape[-1] > logits[2].shape[-1]
    assert out[0][0].shape[1] == 8 and out[0][3].shape[1] == 64
    assert len(MultiscaleDiscriminator(4, ndf=8, num_d=1, norm="batch", spectral=False)(torch.randn(2, 4, 32, 32))) == 1


def test_generator_fits_a_tiny_mapping():
    """Each class paints its own colour: a few Adam steps must cut the L1 error substantially."""
    torch.manual_seed(0)
    lab = _labels(2, 32, 32)
    lab[1] = lab[1].flip(-1)
    colours = torch.tensor([[-0.8, 0.2, 0.6], [0.7, -0.5, 0.0], [0.1, 0.8, -0.7]])
    target = colours[lab].permute(0, 3, 1, 2)
    g = SpadeGenerator(3, ngf=8, nhidden=16)
    opt = torch.optim.Adam(g.parameters(), lr=5e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(12):
        loss = (g(lab) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-3:]) < 0.4 * losses[0], losses
