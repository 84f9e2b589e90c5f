"""The GAN task: G and D (optionally conditional), an EMA copy of G, Adam for each, and one
training step of the adversarial game with any registered loss, R1, WGAN-GP, label smoothing,
n_critic and differentiable augmentation."""

from __future__ import annotations

import copy
import math
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils import parametrize
from torchvision.utils import make_grid

from ..augment import AdaptiveAugment, diff_augment
from ..config import STYLE_ARCHS, GanConfig
from ..losses import LOSSES, d_real_and_r1, wgan_gradient_penalty
from ..nets import GanNetSpec, build_gan
from ..nets.gradfix import double_backward_convs
from ..nets.layers import ConditionalBatchNorm2d, ProjectionHead, dcgan_init
from ..nets.progan import num_levels, reals_at_stage, stage_at
from .ema import ema_beta, ema_update, has_batchnorm, recalibrate_batchnorm
from .task import StepContext
from .watchdog import Action, LostGameWatchdog

PROBABILITY_LOSSES = ("minimax", "non-saturating")  # D outputs are logits of a probability


def _reinit(module: nn.Module, scheme: str) -> None:
    if scheme == "dcgan":
        for m in module.modules():
            if parametrize.is_parametrized(m, "weight"):
                nn.init.normal_(m.parametrizations.weight.original, 0.0, 0.02)
        dcgan_init(module)
    elif scheme == "default":
        for m in module.modules():
            if m is not module and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        for m in module.modules():  # deliberate zero starts that reset_parameters undid
            if isinstance(m, ConditionalBatchNorm2d):  # start as plain BN: gain 1, bias 0
                nn.init.zeros_(m.gain.weight)
                nn.init.zeros_(m.bias.weight)
            elif isinstance(m, ProjectionHead):  # small class embedding, not nn.Embedding's N(0, 1)
                m.reset_embedding()


def mode_seeking_penalty(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN (Mao et al. 2019): 1 / (|G(z1) - G(z2)| / |z1 - z2|) over the two halves of a batch
    whose labels match, so G cannot map different z of one class to one image."""
    half = fake.shape[0] // 2
    if half == 0:
        return fake.new_zeros(())
    images = (fake[:half] - fake[half:2 * half]).float().abs().mean()
    latents = (z[:half] - z[half:2 * half]).float().abs().mean()
    return 1.0 / (images / latents + eps)


def _networks(cfg: GanConfig, spec: GanNetSpec) -> tuple[nn.Module, nn.Module, dict | None]:
    """(G, D, G_ema's initial state or None): the architecture's fresh networks, or with ``--init``
    the source network's (:mod:`ganforge.published.finetune`)."""
    if not cfg.init:
        G, D = build_gan(cfg.arch, spec)
        return G, D, None
    from ..published.finetune import init_networks

    return init_networks(cfg, spec)


def _is_spectral(D: torch.nn.Module) -> bool:
    return any(torch.nn.utils.parametrize.is_parametrized(m) for m in D.modules())


class GanTask:
    name = "gan"

    def __init__(self, cfg: GanConfig, spec: GanNetSpec, device: torch.device, dp_plan=None) -> None:
        cfg = cfg.resolved()  # the architecture's own optimiser settings where the options say auto
        self.cfg, self.spec = cfg, spec
        torch.manual_seed(cfg.seed)  # network initialisation
        G, D, ema_init = _networks(cfg, spec)
        init = cfg.weight_init if cfg.weight_init != "auto" else ("dcgan" if cfg.arch == "dcgan" else "keep")
        if init in ("dcgan", "default") and not cfg.init:
            _reinit(G, init)
            _reinit(D, init)
        per_example = cfg.d_norm in ("group", "none")
        if cfg.arch == "dcgan" and cfg.d_mbstd == "off" and not per_example:  # (--init: already as its source)
            from ..nets.dcgan import without_minibatch_stddev

            D = without_minibatch_stddev(D)
        if cfg.arch == "dcgan" and cfg.d_norm == "spectral" and not _is_spectral(D):  # (--init: already)
            from ..nets.dcgan import spectral_discriminator

            D = spectral_discriminator(D)
        if cfg.arch == "dcgan" and per_example and has_batchnorm(D):  # per-example D (DP runs; --init: already)
            from ..nets.dcgan import per_example_discriminator

            D = per_example_discriminator(D, cfg.d_norm)
        memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.G = G.to(device, memory_format=memory)
        self.D = D.to(device, memory_format=memory)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        if ema_init is not None:  # --init: the source's EMA generator (a resume restores the checkpoint's)
            self.G_ema.load_state_dict(ema_init, strict=True)
        self._ema_bn = cfg.ema > 0 and has_batchnorm(self.G_ema)  # settle(): its own BatchNorm statistics
        self._ema_step: int | None = None  # the step of an EMA update not settled yet
        self.G_fwd = torch.compile(self.G) if cfg.compile else self.G
        self.D_fwd = torch.compile(self.D) if cfg.compile else self.D
        self._d_params = list(self.D.parameters())
        self._ema_pair = None  # the EMA's cached parameter/buffer lists (ema.EmaPair)
        betas = (cfg.beta1, cfg.beta2)
        # fused: one kernel for all parameters (CPU and CUDA); 5x faster than the foreach step on the CPU
        fused = device.type in ("cpu", "cuda")
        self.opt = {"G": torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas, fused=fused),
                    "D": torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas, fused=fused)}
        self.loss = LOSSES.get(cfg.loss)
        self.private = None  # DP-SGD on D (train/dp.py): a dp.PrivateDiscriminator with its accountant
        if dp_plan is not None:
            from .dp import PrivateDiscriminator

            self.private = PrivateDiscriminator(self.D, dp_plan)
        self.aug_ops = cfg.augment_ops  # the lost-game watchdog may turn augmentation on
        self.ada = AdaptiveAugment(p=cfg.augment_p if cfg.augment_ops else 0.0,
                                   target=cfg.ada_target if cfg.augment_ops else None)
        self.watchdog = LostGameWatchdog(cfg.watchdog if cfg.loss in PROBABILITY_LOSSES else "off")
        self.conditional = spec.num_classes > 0
        self.mode_seeking = cfg.mode_seeking_weight
        # Fixed inputs for snapshots: one row per class when conditional.
        g = torch.Generator().manual_seed(cfg.seed + 12345)
        per_row = 8
        rows = spec.num_classes if self.conditional else 8
        self.fixed_z = torch.randn(rows * per_row, spec.z_dim, generator=g).to(device)
        self.fixed_labels = (torch.arange(rows).repeat_interleave(per_row).to(device)
                             if self.conditional else None)
        self.per_row = per_row
        self.style_based = cfg.arch in STYLE_ARCHS  # mapping/synthesis: style mixing, path length, w_avg
        self.pl_mean = torch.zeros((), device=device)  # path-length EMA target (checkpointed)
        # progan: the stage (level, fade alpha) is a function of the step; the networks carry it
        self.progressive = cfg.arch == "progan"
        self.levels = num_levels(spec.resolution) if self.progressive else 0
        # R1/GP/PL double backward through nets.gradfix (None: the device's policy); off where it
        # measured slower (the resnet family's D on the CPU) and under torch.compile
        self.gradfix = False if cfg.compile or (device.type == "cpu" and cfg.arch == "resnet") else None

    # --- Task protocol ---------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opt

    def extra_state(self) -> dict[str, Any]:
        state = {"ada": self.ada.state_dict(), "augment_ops": list(self.aug_ops), "ada_target": self.ada.target,
                 "watchdog": self.watchdog.state_dict()}
        if self.style_based:
            state["pl_mean"] = self.pl_mean.detach().cpu().clone()
        if self.private is not None:
            state["dp"] = self.private.state_dict()
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.ada.load_state_dict(state["ada"])
        if "watchdog" in state:  # older checkpoints: no watchdog, the options' augmentation
            self.watchdog.load_state_dict(state["watchdog"])
            self.aug_ops, self.ada.target = tuple(state["augment_ops"]), state["ada_target"]
        if self.style_based:
            self.pl_mean = state["pl_mean"].to(self.pl_mean.device)
        if self.private is not None:
            self.private.load_state_dict(state["dp"])

    def after_log(self, step: int, logged: dict[str, float]) -> Action | None:
        """The loop's hook at each log step: the lost-game watchdog reads the logged values and may
        turn augmentation on or up here; an LR change it asks for is the loop's to apply."""
        action = self.watchdog.observe(step, logged, augment_ops=self.aug_ops, augment_p=self.ada.p,
                                       ada_target=self.ada.target)
        if action is not None and action.augment:
            self.aug_ops = tuple(action.augment["ops"].split(","))
            self.ada.p, self.ada.target = action.augment["p"], action.augment["target"]
        return action

    # --- StyleGAN2 ---------------------------------------------------------------------------------
    def _mixed_ws(self, z: torch.Tensor, y: torch.Tensor | None, ctx: StepContext,
                  update_w_avg: bool = False) -> torch.Tensor:
        """ws for ``z``; with probability ``style_mixing`` per sample, the layers from a random
        crossover index on take the ws of a second latent (Karras et al. 2019, style mixing
        regularisation). All draws come from the run's generator."""
        ws = self.G.mapping(z, y, update_w_avg=update_w_avg)
        p = self.cfg.style_mixing
        if p <= 0:
            return ws
        n, num_ws = ws.shape[0], ws.shape[1]
        z2 = ctx.randn(n, z.shape[1])
        mix = torch.rand(n, device=z.device, generator=ctx.generator) < p
        cutoff = torch.randint(1, num_ws, (n,), device=z.device, generator=ctx.generator)
        cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, num_ws))
        ws2 = self.G.mapping(z2, y)
        take_second = torch.arange(num_ws, device=z.device)[None, :] >= cutoff[:, None]
        return torch.where(take_second[:, :, None], ws2, ws)

    def _generate(self, z: torch.Tensor, y: torch.Tensor | None, ctx: StepContext, last: bool) -> torch.Tensor:
        if self.progressive:  # the stage's own resolution, as the reals
            return self.G_fwd(z, y, full_size=False)
        if not self.style_based:
            return self.G_fwd(z, y)
        return self.G.synthesis(self._mixed_ws(z, y, ctx, update_w_avg=last), ctx.generator)

    def _path_length_penalty(self, ctx: StepContext, n: int, y: torch.Tensor | None) -> torch.Tensor:
        """Karras et al. 2020: E[(|J_w^T u| - a)^2] for image-space noise u ~ N(0, I/(H W)), with
        ``a`` the running mean of the lengths (decay 0.01); half a batch, fp32 outside autocast
        (a double backward, like R1)."""
        n = max(1, n // 2)
        z = ctx.randn(n, self.spec.z_dim)
        y = y[:n] if y is not None else None
        with torch.autocast(ctx.device.type, enabled=False), double_backward_convs(ctx.device, self.gradfix):
            ws = self._mixed_ws(z, y, ctx)
            img = self.G.synthesis(ws, ctx.generator).float()
            u = torch.randn(img.shape, device=img.device, generator=ctx.generator) / math.sqrt(img.shape[2] * img.shape[3])
            (grad,) = torch.autograd.grad((img * u).sum(), ws, create_graph=True)
            lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()
            mean = lengths.mean().detach()
            reduce = getattr(ctx, "all_reduce_sum", None)
            if reduce is not None:  # one pl_mean on every rank (rank 0's is checkpointed)
                total, ranks = reduce([float(mean), 1.0])
                mean = torch.tensor(total / ranks, dtype=mean.dtype, device=mean.device)
            self.pl_mean = self.pl_mean.lerp(mean, 0.01)
            return (lengths - self.pl_mean).square().mean()

    def _aug(self, x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return diff_augment(x, self.aug_ops, self.ada.p, ctx.generator)

    def _labels(self, labels: torch.Tensor) -> torch.Tensor | None:
        return labels if self.conditional else None

    def _enter_stage(self, step: int) -> tuple[int, float]:
        """progan: put G, G_ema and D at the step's stage (a function of the step alone, so a run
        resumed in the middle of a fade continues exactly)."""
        level, alpha = stage_at(step, self.cfg.grow_interval, self.levels)
        for net in (self.G, self.G_ema, self.D):
            net.set_stage(level, alpha)
        return level, alpha

    def step(self, ctx: StepContext) -> dict[str, float]:
        if self.private is not None:
            from .dp import private_step

            return private_step(self, ctx, mode_seeking_penalty)
        cfg, D = self.cfg, self.D_fwd
        real_target = 1.0 - cfg.label_smoothing
        fake = None
        stage = self._enter_stage(ctx.step) if self.progressive else None
        for i in range(cfg.n_critic):
            batch = ctx.next_batch()
            real, labels = batch["image"], batch["label"]
            if stage is not None:
                real = reals_at_stage(real, *stage)
            if cfg.channels_last:
                real = real.contiguous(memory_format=torch.channels_last)
            y_real = y = self._labels(labels)
            z = ctx.randn(real.shape[0], self.spec.z_dim)
            last = i == cfg.n_critic - 1
            if self.mode_seeking > 0 and y is not None:
                half = y.shape[0] // 2  # fakes in pairs (z1, y), (z2, y) for the mode-seeking term
                y = torch.cat([y[:half], y[:half], y[2 * half:]])
            r1_now = cfg.r1_gamma > 0 and ctx.step % cfg.r1_interval == 0  # lazy R1: every r1_interval steps
            with ctx.autocast():
                if last:  # reuse this forward for the G step (one G forward per iteration)
                    fake = self._generate(z, y, ctx, last)
                    fake_d = fake.detach()
                else:
                    with torch.no_grad():
                        fake_d = self._generate(z, y, ctx, last)
                real_in = self._aug(real, ctx)
                if r1_now:  # this pass in fp32 outside autocast: R1's double backward
                    d_real, r1 = d_real_and_r1(D, real_in, y_real, self.gradfix)
                else:
                    d_real = D(real_in, y_real).float()
                d_fake = D(self._aug(fake_d, ctx), y).float()
                loss_d = self.loss.d_loss(d_real, d_fake, real_target)
                if self.loss.gradient_penalty:  # fp32 outside autocast inside
                    loss_d = loss_d + cfg.gp_weight * wgan_gradient_penalty(D, real, fake_d.float(), y_real, ctx.generator,
                                                                                 self.gradfix)
                if r1_now:
                    loss_d = loss_d + 0.5 * cfg.r1_gamma * cfg.r1_interval * r1
            self.ada.observe(d_real, getattr(ctx, "all_reduce_sum", None))  # summed over ranks: one p
            ctx.optimize(loss_d, "D", [self.D])
        terms: dict[str, torch.Tensor] = {}

        def g_loss() -> torch.Tensor:
            with ctx.autocast():
                d_gen = D(self._aug(fake, ctx), y).float()
                loss_g = terms["adversarial"] = self.loss.g_loss(d_gen)
                if self.mode_seeking > 0:
                    loss_g = loss_g + self.mode_seeking * mode_seeking_penalty(fake, z)
            terms["mode_seeking"] = loss_g - terms["adversarial"]
            if self.style_based and cfg.pl_weight > 0 and ctx.step % cfg.pl_every == 0:
                terms["pl"] = self._path_length_penalty(ctx, z.shape[0], y)  # lazy: weight x interval
                loss_g = loss_g + cfg.pl_weight * cfg.pl_every * terms["pl"]
            return loss_g

        self._generator_step(ctx, g_loss)
        self.ada.update(ctx.step, real.shape[0])
        as_prob = self.loss.name in PROBABILITY_LOSSES
        show = (lambda t: torch.sigmoid(t).mean()) if as_prob else (lambda t: t.mean())
        # 0-d tensors left on the device: the loop averages them there and reads them when it logs
        scalars = {"loss_G": terms["adversarial"].detach(), "loss_D": loss_d.detach(),
                   "D_real": show(d_real.detach()), "D_fake": show(d_fake.detach()), "augment_p": self.ada.p}
        if self.mode_seeking > 0:
            scalars["mode_seeking"] = terms["mode_seeking"].detach()
        if "pl" in terms:
            scalars["pl_penalty"] = terms["pl"].detach()
        if self.style_based and cfg.pl_weight > 0:
            scalars["pl_mean"] = self.pl_mean.detach()
        if stage is not None:
            scalars["level"], scalars["alpha"] = float(stage[0]), stage[1]
        return scalars

    def _generator_step(self, ctx: StepContext, g_loss: Callable[[], torch.Tensor],
                        d_params: list[torch.Tensor] | None = None) -> bool:
        """G's update through a frozen D (``d_params``, default all of D's: a list, no module walk
        per step): ``g_loss()`` builds G's loss while D's parameters take no gradient; the EMA
        follows an applied step. Returns whether the step was applied (not skipped as non-finite)."""
        d_params = self._d_params if d_params is None else d_params
        for p in d_params:
            p.requires_grad_(False)
        try:
            ok = ctx.optimize(g_loss(), "G", [self.G])
        finally:
            for p in d_params:
                p.requires_grad_(True)
        if ok:
            self._update_ema(ctx.step)
        return ok

    def eval_condition(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """G's condition for ``n`` samples drawn with ``generator``: uniform labels (None when
        unconditional); a text run's :class:`TextGanTask` draws training captions."""
        if not self.conditional:
            return None
        return torch.randint(0, self.spec.num_classes, (n,), generator=generator).to(self.fixed_z.device)

    def settle(self) -> None:
        """Before a checkpoint, a snapshot or an evaluation reads G_ema: its BatchNorm statistics
        recomputed for its own weights (:func:`recalibrate_batchnorm`; the EMA update copies G's),
        once per EMA update, from a generator seeded by the run's seed and step (no global RNG).
        Training never reads them (the next update copies G's again), so a resumed run goes on
        exactly; networks without BatchNorm (StyleGAN2, ProGAN) have nothing to settle."""
        if not self._ema_bn or self._ema_step is None:
            return
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self._ema_step)
        device = self.fixed_z.device

        def inputs(n: int) -> tuple:
            return torch.randn(n, self.spec.z_dim, generator=gen).to(device), self.eval_condition(n, gen)

        recalibrate_batchnorm(self.G_ema, inputs, batch=self.cfg.batch_size)
        self._ema_step = None

    @torch.no_grad()
    def _update_ema(self, step: int) -> None:
        self._ema_step = step
        if self.cfg.ema <= 0:
            self.G_ema.load_state_dict(self.G.state_dict())
            return
        cfg = self.cfg
        beta = None
        if cfg.ema_kimg > 0:  # half-life in images, ramped up with the images seen (StyleGAN2-ADA)
            beta = ema_beta(cfg.batch_size, (step + 1) * cfg.batch_size, cfg.ema_kimg, cfg.ema_rampup)
        self._ema_pair = ema_update(self.G_ema, self.G, cfg.ema, step, beta, pair=self._ema_pair)

    @torch.no_grad()
    def snapshot(self, ctx: StepContext) -> torch.Tensor:
        self.settle()
        images = self.G_ema(self.fixed_z, self.fixed_labels).float()
        return make_grid(images.add(1).div(2).clamp(0, 1).cpu(), nrow=self.per_row, padding=2, pad_value=1.0)
