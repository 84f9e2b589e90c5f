"""pix2pix / CycleGAN networks in the public layout, and the pretrained-generator zoo.

The reference networks below are written here, from the published structure of
junyanz/pytorch-CycleGAN-and-pix2pix (ResnetGenerator, UnetGenerator of nested
UnetSkipConnectionBlocks, NLayerDiscriminator), independently of ganforge.nets.translators: files
saved from them stand in for the published ``latest_net_G.pth`` files (no network here)."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from torch import nn

from ganforge import weights as W
from ganforge.errors import GanforgeError, WeightsError
from ganforge.nets.translators import (PatchDiscriminator, ResnetGenerator, UnetGenerator, init_weights,
                                       norm_layer)
from ganforge.translate import zoo
from ganforge.translate.zoo import ZOO, build_zoo_generator

pytestmark = pytest.mark.usefixtures("one_thread")


# --- reference networks (the upstream module tree, written out by hand) ----------------------------

class _Holder(nn.Module):
    """An upstream container: its layers live in ``self.model`` (or ``self.conv_block``)."""

    def __init__(self, layers, attr="model", mode="plain"):
        super().__init__()
        setattr(self, attr, nn.Sequential(*layers))
        self.attr, self.mode = attr, mode

    def forward(self, x):
        y = getattr(self, self.attr)(x)
        if self.mode == "skip":
            return torch.cat([x, y], 1)
        return x + y if self.mode == "residual" else y


class _Top(nn.Module):
    """Upstream UnetGenerator: the outermost block held directly as ``self.model``."""

    def __init__(self, block):
        super().__init__()
        self.model = block

    def forward(self, x):
        return self.model(x)


def ref_resnet(in_nc=3, out_nc=3, ngf=4, blocks=9):
    """Upstream ResnetGenerator with --norm instance (affine-free, bias on every conv)."""
    inorm = lambda c: nn.InstanceNorm2d(c)  # noqa: E731  (PyTorch default: affine=False, no running stats)
    seq = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7), inorm(ngf), nn.ReLU(True),
           nn.Conv2d(ngf, 2 * ngf, 3, 2, 1), inorm(2 * ngf), nn.ReLU(True),
           nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1), inorm(4 * ngf), nn.ReLU(True)]
    d = 4 * ngf
    for _ in range(blocks):
        seq.append(_Holder([nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3), inorm(d), nn.ReLU(True),
                            nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3), inorm(d)], "conv_block", "residual"))
    seq += [nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, 2, 1, 1), inorm(2 * ngf), nn.ReLU(True),
            nn.ConvTranspose2d(2 * ngf, ngf, 3, 2, 1, 1), inorm(ngf), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7), nn.Tanh()]
    return _Holder(seq)


def ref_unet(in_nc=3, out_nc=3, ngf=4, downs=8):
    """Upstream UnetGenerator with --norm batch (no conv bias except the outermost up-conv) and
    dropout in the ngf*8 middle levels."""
    bn = nn.BatchNorm2d
    c8 = 8 * ngf
    block = _Holder([nn.LeakyReLU(0.2, True), nn.Conv2d(c8, c8, 4, 2, 1, bias=False), nn.ReLU(True),
                     nn.ConvTranspose2d(c8, c8, 4, 2, 1, bias=False), bn(c8)], mode="skip")
    levels = [(c8, c8, True)] * (downs - 5) + [(4 * ngf, c8, False), (2 * ngf, 4 * ngf, False), (ngf, 2 * ngf, False)]
    for outer, inner, dropout in levels:
        layers = [nn.LeakyReLU(0.2, True), nn.Conv2d(outer, inner, 4, 2, 1, bias=False), bn(inner), block,
                  nn.ReLU(True), nn.ConvTranspose2d(2 * inner, outer, 4, 2, 1, bias=False), bn(outer)]
        block = _Holder(layers + ([nn.Dropout(0.5)] if dropout else []), mode="skip")
    outer = _Holder([nn.Conv2d(in_nc, ngf, 4, 2, 1, bias=False), block, nn.ReLU(True),
                     nn.ConvTranspose2d(2 * ngf, out_nc, 4, 2, 1), nn.Tanh()])
    return _Top(outer)


def _randomise(net: nn.Module) -> nn.Module:
    """Non-trivial weights and BatchNorm running statistics, so any mis-wiring shows."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
    return net


def _batch_statistics(net: nn.Module) -> nn.Module:
    """Upstream test.py without --eval: everything in train mode; Dropout off here (deterministic)."""
    net.train()
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.eval()
    return net


@pytest.fixture(scope="module")
def resnet_ref():
    torch.manual_seed(0)
    return _randomise(ref_resnet()).eval()


@pytest.fixture(scope="module")
def unet_ref():
    torch.manual_seed(0)
    return _randomise(ref_unet()).eval()


# --- key layout and loading of official-layout files -----------------------------------------------

def test_key_layout_is_upstreams(resnet_ref, unet_ref):
    ours_r = ResnetGenerator(ngf=4).state_dict()
    assert list(ours_r) == list(resnet_ref.state_dict())
    assert {"model.1.weight", "model.1.bias", "model.10.conv_block.1.weight", "model.26.weight"} <= set(ours_r)
    ours_u = UnetGenerator(ngf=4).state_dict()
    assert list(ours_u) == list(unet_ref.state_dict())
    assert {"model.model.0.weight", "model.model.1.model.1.weight", "model.model.1.model.5.weight",
            "model.model.1.model.3.model.1.weight", "model.model.3.weight", "model.model.3.bias"} <= set(ours_u)
    assert "model.model.1.model.3.weight" not in ours_u  # index 3 of a middle level is the inner level
    assert "model.model.0.bias" not in ours_u  # BatchNorm: no conv bias
    for ours, ref in ((ours_r, resnet_ref.state_dict()), (ours_u, unet_ref.state_dict())):
        assert all(ours[k].shape == ref[k].shape for k in ref)


def test_resnet9_instance_loads_and_matches(tmp_path, resnet_ref):
    state = resnet_ref.state_dict()
    legacy = dict(state)  # older upstream files: InstanceNorm with running statistics saved
    for name, m in resnet_ref.named_modules():
        if isinstance(m, nn.InstanceNorm2d):
            legacy[f"{name}.running_mean"] = torch.randn(m.num_features)
            legacy[f"{name}.running_var"] = torch.rand(m.num_features) + 0.5
            legacy[f"{name}.num_batches_tracked"] = torch.tensor(3)
    files = {"plain": state, "legacy": legacy, "dataparallel": {f"module.{k}": v for k, v in legacy.items()}}
    x = torch.rand(2, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        expected = resnet_ref(x)
    for label, sd in files.items():
        path = tmp_path / f"{label}.pth"
        torch.save(sd, path)
        net = build_zoo_generator(str(path))
        assert isinstance(net, ResnetGenerator) and net.n_blocks == 9 and net.norm == "instance", label
        assert not net.training and net.norm_eval
        with torch.no_grad():
            assert torch.allclose(net(x), expected, atol=1e-5), label
    explicit = build_zoo_generator(str(tmp_path / "legacy.pth"), arch="resnet_9blocks", norm="instance")
    with torch.no_grad():
        assert torch.allclose(explicit(x), expected, atol=1e-5)


def test_unet256_batchnorm_loads_and_matches(tmp_path, unet_ref):
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    path = tmp_path / "latest_net_G.pth"
    torch.save({f"module.{k}": v for k, v in unet_ref.state_dict().items()}, path)
    net = build_zoo_generator(str(path))
    assert isinstance(net, UnetGenerator) and net.num_downs == 8 and net.multiple == 256 and net.norm == "batch"
    assert net.norm_eval is False  # upstream test.py: BatchNorm on the test batch's statistics
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    with torch.no_grad():
        expected_eval = unet_ref.eval()(x)
        out = net(x)
        assert torch.allclose(out, _batch_statistics(unet_ref)(x), atol=1e-5)
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # running stats untouched
        assert torch.allclose(net(x), out)  # Dropout is off: deterministic
        net.eval()
        assert torch.allclose(net(x), expected_eval, atol=1e-5)  # the running averages, if asked
    with pytest.raises(WeightsError) as exc:  # the wrong family: strict, one line
        build_zoo_generator(str(path), arch="resnet_9blocks")
    assert "\n" not in str(exc.value) and "missing keys" in str(exc.value)
    with pytest.raises(WeightsError):
        build_zoo_generator(str(path), arch="unet_128")


def test_zoo_name_resolves_through_weights_dir(tmp_path, monkeypatch, resnet_ref, unet_ref):
    """A registered name finds ``<name>.pth`` in GANFORGE_WEIGHTS_DIR (a small stand-in: ngf 4)."""
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    for name, ref in (("cyclegan-horse2zebra", resnet_ref), ("pix2pix-facades_label2photo", unet_ref)):
        monkeypatch.setitem(ZOO, name, dataclasses.replace(ZOO[name], ngf=4))
        torch.save(ref.state_dict(), tmp_path / W.WEIGHTS.get(name).filename)
        with pytest.warns(UserWarning, match="no published sha256"):
            net = build_zoo_generator(name)
        assert net.zoo is ZOO[name] and net.norm_eval == ZOO[name].norm_eval
    assert isinstance(net, UnetGenerator) and any(m.training for m in net.modules() if isinstance(m, nn.BatchNorm2d))


def test_truncated_file_is_one_line(tmp_path, resnet_ref):
    path = tmp_path / "broken.pth"
    torch.save(resnet_ref.state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError) as exc:
        build_zoo_generator(str(path))
    assert "\n" not in str(exc.value) and "broken.pth" in str(exc.value)


def test_missing_file_and_bad_names_are_one_line(tmp_path):
    with pytest.raises(WeightsError) as exc:
        build_zoo_generator(str(tmp_path / "nope.pth"))
    assert "\n" not in str(exc.value) and "cyclegan-horse2zebra" in str(exc.value)
    path = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(2, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match="neither"):
        build_zoo_generator(str(path))
    with pytest.raises(GanforgeError, match="unknown generator arch"):
        build_zoo_generator(str(path), arch="vgg")


# --- the registry ------------------------------------------------------------------------------

UPSTREAM_CYCLEGAN = ("apple2orange orange2apple summer2winter_yosemite winter2summer_yosemite horse2zebra "
                     "zebra2horse monet2photo style_monet style_cezanne style_ukiyoe style_vangogh sat2map map2sat "
                     "cityscapes_photo2label cityscapes_label2photo facades_photo2label facades_label2photo "
                     "iphone2dslr_flower").split()
UPSTREAM_PIX2PIX = "edges2shoes sat2map map2sat facades_label2photo day2night".split()


def test_registry_covers_upstream_scripts():
    expected = {f"cyclegan-{n}" for n in UPSTREAM_CYCLEGAN} | {f"pix2pix-{n}" for n in UPSTREAM_PIX2PIX}
    assert set(ZOO) == expected and set(zoo.zoo_names("pix2pix")) == {f"pix2pix-{n}" for n in UPSTREAM_PIX2PIX}
    filenames = [W.WEIGHTS.get(n).filename for n in ZOO]
    assert len(set(filenames)) == len(filenames)  # upstream's names collide across the families
    for name, model in ZOO.items():
        entry = W.WEIGHTS.get(name)
        upstream = name.split("-", 1)[1]
        base = ("https://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/" if model.family == "cyclegan"
                else "https://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/")
        assert entry.url == f"{base}{upstream}.pth"
        assert entry.sha256 == "" and "no sha256" in entry.description  # none published upstream
        assert (model.arch, model.norm, model.norm_eval) == (
            ("resnet_9blocks", "instance", True) if model.family == "cyclegan" else ("unet_256", "batch", False))
        assert "→" in model.direction


def test_offline_missing_zoo_weights_name_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    for name in ZOO:
        with pytest.raises(WeightsError) as exc:
            build_zoo_generator(name)
        message = str(exc.value)
        assert "\n" not in message and f"ganforge weights fetch {name}" in message
        assert "GANFORGE_WEIGHTS_DIR" in message and "GANFORGE_OFFLINE=1" in message


# --- shapes and helpers --------------------------------------------------------------------------

def test_generators_keep_size_and_range():
    torch.manual_seed(0)
    r = init_weights(ResnetGenerator(3, 2, ngf=4, n_blocks=2))
    y = r(torch.randn(1, 3, 20, 28))
    assert y.shape == (1, 2, 20, 28) and y.abs().max() <= 1
    u = UnetGenerator(1, 3, num_downs=5, ngf=4, norm="instance")
    assert u.multiple == 32 and "model.model.0.bias" in u.state_dict()  # InstanceNorm: convs keep the bias
    assert u(torch.randn(2, 1, 32, 64)).shape == (2, 3, 32, 64)
    with pytest.raises(GanforgeError, match="multiples of 32"):
        u(torch.randn(1, 1, 48, 48))


def test_patch_discriminator_is_70x70():
    d = PatchDiscriminator(6, ndf=4)
    assert d(torch.randn(1, 6, 256, 256)).shape == (1, 1, 30, 30) and d.receptive_field == 70
    assert PatchDiscriminator(3, ndf=4, n_layers=1, norm="none")(torch.randn(1, 3, 64, 64)).shape == (1, 1, 30, 30)


def test_norm_and_init():
    assert isinstance(norm_layer("batch")(4), nn.BatchNorm2d)
    inst = norm_layer("instance")(4)
    assert isinstance(inst, nn.InstanceNorm2d) and not inst.affine and not inst.track_running_stats
    assert isinstance(norm_layer("none")(4), nn.Identity)
    with pytest.raises(GanforgeError, match="unknown norm 'group'") as exc:
        norm_layer("group")
    assert "\n" not in str(exc.value)
    torch.manual_seed(1)
    d = init_weights(PatchDiscriminator(3, ndf=64))
    conv, bn = d.model[2], d.model[3]
    assert abs(conv.weight.std().item() - 0.02) < 0.002 and abs(conv.weight.mean().item()) < 0.002
    assert abs(bn.weight.mean().item() - 1) < 0.01 and torch.all(bn.bias == 0) and torch.all(d.model[0].bias == 0)
    torch.manual_seed(1)
    again = init_weights(PatchDiscriminator(3, ndf=64))
    assert torch.equal(again.model[2].weight, conv.weight)  # reproducible after manual_seed
    with pytest.raises(GanforgeError):
        init_weights(d, "uniform")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        UnetGenerator(ngf=2)  # builds silently
