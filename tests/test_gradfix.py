"""nets.gradfix: convolutions whose derivatives of every order are first-order convolutions.

Its derivatives must equal autograd's on the stock ops: checked to second order in float64 against
finite differences (gradgradcheck) for every convolution shape the architectures use, and in fp32
(1e-5) for the R1 penalty and its gradients w.r.t. D's parameters on random networks, for the path
length penalty through StyleGAN2's synthesis, and for a 20-step StyleGAN2 run's losses.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

from ganforge.losses import d_real_and_r1, wgan_gradient_penalty
from ganforge.nets import GanNetSpec, build_gan
from ganforge.nets import gradfix


@pytest.mark.parametrize("transposed,stride,padding,groups,out_pad", [
    (False, 1, 1, 1, 0), (False, 2, 0, 3, 0), (False, 2, 2, 1, 0),
    (True, 2, 0, 1, 0), (True, 2, 1, 3, 1), (True, 1, 1, 3, 0),
])
def test_second_derivatives_match_finite_differences(transposed, stride, padding, groups, out_pad):
    g = torch.Generator().manual_seed(0)
    cin, cout = 3, 3
    x = torch.randn(1, cin, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    shape = (cin, cout // groups, 3, 3) if transposed else (cout, cin // groups, 3, 3)
    w = torch.randn(*shape, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(cout, dtype=torch.float64, generator=g, requires_grad=True)
    if transposed:
        fn = lambda x, w, b: gradfix.conv_transpose2d(x, w, b, stride, padding, out_pad, groups)  # noqa: E731
        ref = F.conv_transpose2d(x, w, b, stride, padding, out_pad, groups)
    else:
        fn = lambda x, w, b: gradfix.conv2d(x, w, b, stride, padding, 1, groups)  # noqa: E731
        ref = F.conv2d(x, w, b, stride, padding, 1, groups)
    assert torch.allclose(fn(x, w, b), ref)
    # fast mode: finite differences along random directions (cheap, and still fails on any wrong term)
    assert torch.autograd.gradcheck(fn, (x, w, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, w, b), fast_mode=True)


def _r1_and_grads(D, real, enabled, state):
    D.load_state_dict(state)  # the same weights and buffers (spectral norm's power iteration moves them)
    D.zero_grad(set_to_none=True)
    logits, r1 = d_real_and_r1(D, real, None, gradfix=enabled)
    (F.softplus(-logits).mean() + 5.0 * r1).backward()
    return r1.detach(), {n: p.grad.clone() for n, p in D.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("arch", ["stylegan2", "dcgan", "resnet", "progan"])
def test_r1_penalty_and_its_gradients_equal_stock_autograd(arch):
    torch.manual_seed(1)
    _, D = build_gan(arch, GanNetSpec(16, 3, width=8))
    for p in D.parameters():  # a random network, not the initialisation's special values
        with torch.no_grad():
            p.add_(torch.randn_like(p) * 0.1)
    real = torch.randn(4, 3, 16, 16)
    state = copy.deepcopy(D.state_dict())
    r1_ref, grads_ref = _r1_and_grads(D, real, False, state)
    r1, grads = _r1_and_grads(D, real, True, state)
    assert r1_ref > 0
    assert torch.allclose(r1, r1_ref, rtol=1e-5, atol=1e-7)
    assert grads.keys() == grads_ref.keys() and grads
    for name in grads:
        scale = grads_ref[name].abs().max().clamp(min=1e-6)
        assert ((grads[name] - grads_ref[name]).abs().max() / scale) < 1e-5, name


def test_wgan_gradient_penalty_equals_stock_autograd():
    torch.manual_seed(2)
    _, D = build_gan("dcgan", GanNetSpec(16, 1, width=8))
    real, fake = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)
    out, state = [], copy.deepcopy(D.state_dict())
    for enabled in (False, True):
        D.load_state_dict(state)
        D.zero_grad(set_to_none=True)
        gp = wgan_gradient_penalty(D, real, fake, None, torch.Generator().manual_seed(3), gradfix=enabled)
        gp.backward()
        out.append((gp.detach(), [p.grad.clone() for p in D.parameters() if p.grad is not None]))
    assert torch.allclose(out[0][0], out[1][0], rtol=1e-5) and len(out[0][1]) == len(out[1][1]) > 0
    for a, b in zip(out[0][1], out[1][1]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7 * max(1.0, float(a.abs().max())))


def test_path_length_gradients_through_synthesis_equal_stock_autograd():
    torch.manual_seed(4)
    G, _ = build_gan("stylegan2", GanNetSpec(16, 3, width=8))
    G.train()
    z = torch.randn(3, G.z_dim)
    results = []
    for enabled in (False, True):
        G.zero_grad(set_to_none=True)
        with gradfix.double_backward_convs("cpu", enabled):
            ws = G.mapping(z)
            img = G.synthesis(ws, torch.Generator().manual_seed(5))
            u = torch.randn(img.shape, generator=torch.Generator().manual_seed(6))
            (grad,) = torch.autograd.grad((img * u).sum(), ws, create_graph=True)
        penalty = grad.square().sum(2).mean(1).sqrt().sub(0.5).square().mean()
        penalty.backward()
        results.append((penalty.detach(), {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}))
    (p0, g0), (p1, g1) = results
    assert torch.allclose(p0, p1, rtol=1e-5)
    assert g0.keys() == g1.keys()
    for name in g0:
        scale = g0[name].abs().max().clamp(min=1e-6)
        assert ((g1[name] - g0[name]).abs().max() / scale) < 1e-5, name


def test_routing_is_scoped_to_the_block_and_to_graphs():
    conv = torch.nn.Conv2d(2, 3, 3)
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    with gradfix.double_backward_convs("cpu", enabled=True):
        inside = conv(x)
        with torch.no_grad():
            no_graph = conv(x)
    outside = conv(x)
    assert type(inside.grad_fn).__name__ == "_ConvBackward"
    assert no_graph.grad_fn is None
    assert type(outside.grad_fn).__name__ == "ConvolutionBackward0"
    assert torch.allclose(inside, outside)
    with gradfix.double_backward_convs("cpu", enabled=False):
        assert type(conv(x).grad_fn).__name__ == "ConvolutionBackward0"


def _losses(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


@pytest.mark.timeout(300)
def test_stylegan2_losses_match_stock_autograd_and_the_host_side_guard_for_8_steps(tmp_path, monkeypatch):
    """The new double backward and the device-side NaN guard (skip) against stock autograd and
    the per-step host check (reload policy, the old code path): the same 8 logged losses, with
    lazy R1 (every 4) and path length (every 2) both taken twice or more."""
    from ganforge.config import GanConfig
    from ganforge.train.gan import GanTask
    from ganforge.train.loop import TensorBatches, TrainingLoop, make_accelerator

    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    logs = {}
    for name, enabled, policy in [("stock", False, "reload"), ("gradfix", True, "skip")]:
        monkeypatch.setitem(gradfix.ENABLED, "cpu", enabled)
        cfg = GanConfig(arch="stylegan2", resolution=8, width=8, batch_size=4, steps=8, log_every=1, r1_every=4, pl_every=2,
                        sample_every=0, ckpt_every=0, progress=False, tensorboard=False, nan_policy=policy)
        task = GanTask(cfg, cfg_spec(cfg), torch.device("cpu"))
        assert task.gradfix is None  # the device's policy, patched above
        run = tmp_path / name
        run.mkdir()
        loop = TrainingLoop(task, TensorBatches(images, torch.zeros(32, dtype=torch.long), 4, 0), cfg.loop_config(),
                            run, make_accelerator(cpu=True))
        assert loop.device_nan_guard == (policy == "skip")
        loop.run()
        logs[name] = _losses(run)
    assert len(logs["stock"]) == len(logs["gradfix"]) == 8
    assert any("pl_penalty" in r for r in logs["stock"])
    for a, b in zip(logs["stock"], logs["gradfix"]):
        for key in ("loss_D", "loss_G", "D_real", "D_fake", "pl_mean"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a["step"], key)


def cfg_spec(cfg):
    from ganforge.nets import GanNetSpec

    return GanNetSpec(cfg.resolution, 3, z_dim=cfg.z_dim, width=cfg.width)
