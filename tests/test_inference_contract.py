"""One inference contract for every family: the loaded object has ``.to(device, precision)`` (through
the one policy in ``ganforge.device``, so fp16 on the CPU is refused in one line everywhere) and is
called (or ``generate``s) the same way; moving it changes no fp32 output."""

from __future__ import annotations

import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.generator import Generator
from ganforge.nets import GanNetSpec, build_gan
from ganforge.nets.rrdb import RRDBNet
from ganforge.restore.upscale import Upscaler, load_upscaler, upscale_image
from ganforge.style import Stylizer

pytestmark = pytest.mark.usefixtures("one_thread")


def _generator() -> Generator:
    torch.manual_seed(0)
    spec = GanNetSpec(resolution=16, channels=1, z_dim=8, num_classes=3, width=8)
    G, _ = build_gan("dcgan", spec)
    return Generator(G, G, spec, ["a", "b", "c"], 0, None, arch="dcgan")


def _upscaler_net() -> RRDBNet:
    torch.manual_seed(0)
    return RRDBNet(nf=8, nb=1, gc=4, scale=2).eval()


def test_every_family_object_moves_with_to_and_refuses_fp16_on_the_cpu_in_one_line(tmp_path):
    objects = {"generator": _generator(), "upscaler": Upscaler(_upscaler_net()), "stylizer": Stylizer("adain")}
    for name, obj in objects.items():
        assert obj.to("cpu", "fp32") is obj, name
        assert (str(obj.device), obj.precision) == ("cpu", "fp32"), name
        with pytest.raises(GanforgeError) as exc:
            obj.to("cpu", "fp16")
        assert "\n" not in str(exc.value) and "fp16" in str(exc.value), name


def test_upscaler_object_equals_the_function_and_loads_files(tmp_path):
    net = _upscaler_net()
    x = torch.rand(3, 10, 7)
    up = Upscaler(net).to("cpu", "fp32")
    assert torch.equal(up(x), upscale_image(net, x, precision="fp32", device="cpu"))
    assert up(x).shape == (3, 20, 14) and up.scale == 2
    torch.save(net.state_dict(), tmp_path / "net.pth")
    loaded = load_upscaler(tmp_path / "net.pth").to("cpu", "fp32")
    assert torch.equal(loaded(x), up(x))
    with pytest.raises(GanforgeError, match="scale"):
        Upscaler(torch.nn.Conv2d(3, 3, 1))


def test_generator_to_keeps_fp32_samples_and_labels_are_public():
    gen = _generator()
    before = gen.sample(4, labels=[0, 1, 2, 0], seed=1)
    assert torch.equal(gen.to("cpu", "fp32").sample(4, labels=[0, 1, 2, 0], seed=1), before)
    assert gen.labels(3, 2).tolist() == [2, 2, 2] and gen.labels(5, None, 7).shape == (5,)
    with pytest.raises(GanforgeError, match="class must be in 0..2"):
        gen.labels(2, 5)
