"""Adversarial losses by name, and the gradient penalties (R1, WGAN-GP).

Each loss maps discriminator logits to a D loss and a G loss. ``real_target`` < 1 gives one-sided
label smoothing for the losses that have a target (minimax, non-saturating, least squares).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .nets.gradfix import double_backward_convs
from .registry import Registry


@dataclass(frozen=True)
class AdversarialLoss:
    name: str
    d_loss: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]  # (real, fake, real_target)
    g_loss: Callable[[torch.Tensor], torch.Tensor]  # (fake)
    gradient_penalty: bool = False  # WGAN-GP needs the interpolation penalty


LOSSES: Registry[AdversarialLoss] = Registry("loss")


def _bce_d(real: torch.Tensor, fake: torch.Tensor, real_target: float) -> torch.Tensor:
    target = torch.full_like(real, real_target)
    return F.binary_cross_entropy_with_logits(real, target) + F.softplus(fake).mean()


LOSSES.register("minimax", AdversarialLoss(
    "minimax", _bce_d,
    g_loss=lambda fake: -F.softplus(fake).mean(),  # minimise log(1 - D(G(z))) (saturates early)
))
LOSSES.register("non-saturating", AdversarialLoss(
    "non-saturating", _bce_d,
    g_loss=lambda fake: F.softplus(-fake).mean(),  # maximise log D(G(z))
))
LOSSES.register("lsgan", AdversarialLoss(
    "lsgan",
    lambda real, fake, t: 0.5 * ((real - t) ** 2).mean() + 0.5 * (fake**2).mean(),
    g_loss=lambda fake: 0.5 * ((fake - 1) ** 2).mean(),
))
LOSSES.register("hinge", AdversarialLoss(
    "hinge",
    lambda real, fake, t: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
    g_loss=lambda fake: -fake.mean(),
))
LOSSES.register("wgan-gp", AdversarialLoss(
    "wgan-gp",
    lambda real, fake, t: fake.mean() - real.mean(),
    g_loss=lambda fake: -fake.mean(),
    gradient_penalty=True,
))


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Mescheder et al. 2018: squared gradient norm of D at real data (``real_images`` must
    require grad and have produced ``real_logits``); multiply by gamma/2. Under mixed precision
    use :func:`d_real_and_r1`, which keeps the double backward in fp32."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


def d_real_and_r1(discriminator: Callable[..., torch.Tensor], real: torch.Tensor,
                  labels: torch.Tensor | None, gradfix: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(D(real) logits in fp32, R1 penalty): the forward and its double backward run in fp32 with
    autocast off, whatever the caller's autocast; bf16/fp16 gradients of gradients lose the small
    values the penalty is made of (and fp16 ones overflow). D's convolutions get first-order
    derivatives of every order (:mod:`ganforge.nets.gradfix`; ``gradfix`` None: the device's policy)."""
    with torch.autocast(real.device.type, enabled=False), double_backward_convs(real.device, gradfix):
        x = real.detach().float().requires_grad_(True)
        logits = discriminator(x, labels).float()
        return logits, r1_penalty(logits, x)


def wgan_gradient_penalty(discriminator: Callable[..., torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                          labels: torch.Tensor | None, generator: torch.Generator,
                          gradfix: bool | None = None) -> torch.Tensor:
    """Gulrajani et al. 2017: (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake."""
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=generator)
    # fp32 double backward (see d_real_and_r1), first-order convolution derivatives (gradfix)
    with torch.autocast(real.device.type, enabled=False), double_backward_convs(real.device, gradfix):
        mixed = (eps * real.detach().float() + (1 - eps) * fake.detach().float()).requires_grad_(True)
        out = discriminator(mixed, labels).float()
        (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
        return (grad.float().flatten(1).norm(dim=1) - 1).square().mean()
