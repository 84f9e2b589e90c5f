"""Differentially private GAN training: DP-SGD on the discriminator (Abadi et al. 2016; Xie et al.
2018), with Opacus' per-sample gradients and privacy accountants.

What is private, and why the generator is covered: only D reads the training images. Each D step
takes a Poisson-sampled batch (every image in independently with probability q = batch / N), and
D's update is the sum of the *per-example* gradients, each clipped to norm C, plus Gaussian noise
of standard deviation sigma x C, divided by the expected number of examples. The examples of a D
step (``DPPlan.fakes``): "own" (the default) — each real image and each of the step's fake images
is an example of its own, clipped on its own; the fakes are a fixed number (the expected batch)
with uniformly drawn labels, so they depend on nothing private and adding or removing one image
changes the sum by at most C, and a real image's gradient has the whole of C to itself
("Private GANs, revisited", Bie et al. 2023, whose code does the same). "paired" (runs planned
before session 14) — example i is real image i plus a fake drawn with image i's label, one
combined gradient clipped to C (Opacus' DCGAN example). G learns only from D's outputs on its
own samples, with labels drawn uniformly and a fixed batch size (never the private batch's size
or labels), so G, G_ema and every sample are post-processing of the private D updates. The
accountant (RDP or PRV, Opacus') turns (sigma, q, number of D steps) into epsilon at ``--dp-delta``;
sigma is chosen up front, by Opacus' ``get_noise_multiplier``, so that the run's planned D steps
(``--steps`` x D steps per G step) spend exactly the budget ``--dp-epsilon``, and the run stops there.

Not covered by the guarantee: the training log's D statistics (loss_D, D_real, D_fake are
computed on the private batch without noise; fine for the operator, not for publication).

Options that would break the guarantee are refused or rerouted by :func:`check_options` /
:func:`reroutes` (each with one line saying why). Exact resume: the Poisson batch ``k`` is a
function of (seed, k) alone, the noise comes from the run's checkpointed generator, and the
accountant's history is checkpointed with the task's state."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import GanforgeError
from .batches import Batch, apply_flip, flip_mask, to_unit_range

MAX_NOISE = 100.0  # the largest noise multiplier a plan may choose (noise 100 x C per coordinate)
# A DP run's auto D: a per-example D without normalisation and 2 D steps per G step (session 15: MNIST ε = 10,
# the same 20,000 D steps and σ: utility 82.5 % against 63.3 % with GroupNorm and 10 D steps; docs/benchmarks.md).
# Runs made before keep theirs (run.json "resolved"; one without n_critic there used 10).
DP_D_STEPS, DP_D_NORM = 2, "none"
DP_D_STEPS_BEFORE = 10  # the auto of runs made before 2026-12-08
ACCOUNTANTS = ("rdp", "prv")
SEPARABLE_LOSSES = ("minimax", "non-saturating", "lsgan", "hinge")  # a mean over real terms + a mean over fake terms


def enabled(cfg: Any) -> bool:
    return bool(getattr(cfg, "dp_epsilon", 0.0))


def check_options(cfg: Any) -> None:
    """Refuse, in one line each, what would break the guarantee (``cfg``: the options as given)."""
    if cfg.dp_epsilon < 0 or not math.isfinite(cfg.dp_epsilon):
        raise GanforgeError(f"--dp-epsilon must be > 0 (0: no differential privacy), got {cfg.dp_epsilon}")
    if not enabled(cfg):
        return
    why = "would break the differential-privacy guarantee"
    if not 0 < cfg.dp_delta < 1:
        raise GanforgeError(f"--dp-delta must be in (0, 1) (usually < 1 / the number of images), got {cfg.dp_delta}")
    if not cfg.dp_max_grad_norm > 0:
        raise GanforgeError(f"--dp-max-grad-norm must be > 0, got {cfg.dp_max_grad_norm}")
    if cfg.dp_accountant not in ACCOUNTANTS:
        raise GanforgeError(f"--dp-accountant must be one of {', '.join(ACCOUNTANTS)}, got {cfg.dp_accountant!r}")
    if cfg.arch != "dcgan":
        raise GanforgeError(f"--dp-epsilon needs --arch dcgan (its GroupNorm discriminator has per-example gradients); "
                            f"{cfg.arch}'s discriminator mixes examples or has no per-sample gradients in Opacus")
    if cfg.init:
        raise GanforgeError("--dp-epsilon trains from scratch: --init's discriminator (BatchNorm or spectral norm) "
                            "has no per-sample gradients")
    if cfg.d_norm == "batch":
        raise GanforgeError(f"--d-norm batch {why}: BatchNorm mixes the examples of a batch (use --d-norm group or none)")
    if cfg.d_norm == "spectral":
        raise GanforgeError("--d-norm spectral cannot be trained privately: Opacus has no per-sample gradients for "
                            "spectral norm (use --d-norm group or none)")
    if cfg.loss not in SEPARABLE_LOSSES or cfg.r1_gamma > 0:
        raise GanforgeError("--dp-epsilon: gradient penalties (wgan-gp, R1) need a per-example double backward, which "
                            f"Opacus does not provide; use --loss {' / '.join(SEPARABLE_LOSSES)} with --r1-gamma 0")
    if cfg.eval_every:
        raise GanforgeError(f"--eval-every {why}: in-training evaluation and 'best' selection read the private data "
                            "without noise (evaluate the finished run instead)")
    if cfg.ada_target is not None:
        raise GanforgeError(f"--ada-target {why}: ADA steers augmentation from D's un-noised outputs on private images "
                            "(a fixed --augment-p is fine)")
    if cfg.watchdog == "act":
        raise GanforgeError(f"--watchdog act {why}: it changes training from D's un-noised statistics on private images "
                            "(use warn or off)")
    if cfg.nan_policy == "reload":
        raise GanforgeError(f"--nan-policy reload {why}: a reload discards D steps the accountant must still count "
                            "(use skip)")
    if cfg.compile:
        raise GanforgeError("--compile is not supported with --dp-epsilon (Opacus' per-sample gradient hooks)")
    if cfg.precision in ("bf16", "fp16"):
        raise GanforgeError(f"--precision {cfg.precision}: DP training computes per-sample gradients in fp32 "
                            "(use fp32 or auto)")
    if cfg.n_critic < 0:
        raise GanforgeError("--n-critic must be >= 0 (0: auto)")


def reroutes(cfg: Any) -> list[str]:
    """What ``auto`` becomes in a DP run, one phrase each (the caller prints them as one line)."""
    if not enabled(cfg):
        return []
    out = []
    if cfg.d_norm == "auto":
        out.append(f"--d-norm auto -> {DP_D_NORM} (a per-example D: Opacus has no per-sample gradients for spectral "
                   "norm; BatchNorm mixes examples)")
    if cfg.watchdog == "auto":
        out.append("--watchdog auto -> off (it would steer training from un-noised statistics of the private data)")
    if cfg.n_critic == 0:
        out.append(f"--n-critic auto -> {DP_D_STEPS} D steps per G step (docs/benchmarks.md: more let a per-example D win)")
    if cfg.precision == "auto":
        out.append("--precision auto -> fp32 (per-sample gradients)")
    if cfg.channels_last:
        out.append("channels-last off (Opacus' per-sample conv gradients need NCHW tensors)")
    return out


# --- accounting ------------------------------------------------------------------------------------
def make_accountant(name: str):
    from opacus.accountants import create_accountant

    return create_accountant(mechanism=name)


def epsilon_of(accountant, delta: float) -> float:
    """Epsilon spent so far at ``delta`` (0 before the first private step)."""
    if not accountant.history:
        return 0.0
    return float(accountant.get_epsilon(delta=delta))


@dataclass
class DPPlan:
    """A DP run's privacy parameters, fixed before its first step."""

    target_epsilon: float
    delta: float
    max_grad_norm: float
    noise_multiplier: float
    sample_rate: float
    expected_batch: int
    dataset_size: int
    d_steps: int  # the budget: D steps planned (--steps x D steps per G step)
    accountant: str
    fakes: str = "own"  # "own": every fake image its own clipped example; "paired": in real image i's (older runs)

    @property
    def expected_examples(self) -> int:
        """What the noised sum is divided by: the expected real images, plus the fixed fakes when
        they are examples of their own."""
        return self.expected_batch * (2 if self.fakes == "own" else 1)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plan(cfg: Any, dataset_size: int) -> DPPlan:
    """The noise multiplier that spends exactly ``cfg.dp_epsilon`` over the run's planned D steps
    (``cfg``: resolved options; Opacus' ``get_noise_multiplier``: epsilon at the end <= target)."""
    from opacus.accountants.utils import get_noise_multiplier

    if cfg.batch_size >= dataset_size:
        raise GanforgeError(f"--batch-size {cfg.batch_size} must be below the number of images ({dataset_size}) "
                            "for Poisson sampling")
    q = cfg.batch_size / dataset_size
    d_steps = cfg.steps * cfg.n_critic
    ceiling = make_accountant(cfg.dp_accountant)  # more noise than this trains nothing: say so at once
    ceiling.history = [(MAX_NOISE, q, d_steps)]
    floor = epsilon_of(ceiling, cfg.dp_delta)
    if floor > cfg.dp_epsilon:
        raise GanforgeError(f"--dp-epsilon {cfg.dp_epsilon} is too small for {d_steps} D steps at sample rate {q:.3g}: "
                            f"even noise x{MAX_NOISE:g} spends epsilon {floor:.3g}; use fewer --steps / --n-critic, "
                            f"a smaller --batch-size or more images")
    try:
        sigma = get_noise_multiplier(target_epsilon=cfg.dp_epsilon, target_delta=cfg.dp_delta, sample_rate=q,
                                     steps=d_steps, accountant=cfg.dp_accountant, epsilon_tolerance=0.01)
    except ValueError as exc:  # "The privacy budget is too low."
        raise GanforgeError(f"--dp-epsilon {cfg.dp_epsilon} is too small for {d_steps} D steps at sample rate "
                            f"{q:.3g}: {exc}") from None
    return DPPlan(cfg.dp_epsilon, cfg.dp_delta, cfg.dp_max_grad_norm, float(sigma), q, cfg.batch_size, dataset_size,
                  d_steps, cfg.dp_accountant)


# --- Poisson batches -------------------------------------------------------------------------------
class PoissonBatches:
    """``{"image", "label"}`` batches in which every image is present independently with
    probability ``sample_rate`` (the sampling DP-SGD's accounting assumes; the size varies, and may
    be 0). Batch ``index`` is a function of (seed, index) alone, so resume is exact. ``images``:
    uint8 N×C×H×W in memory, or a prepared dataset (``len()`` and ``read(indices)``)."""

    count_key = "image"

    def __init__(self, images, labels: torch.Tensor, sample_rate: float, seed: int, hflip: bool = False) -> None:
        self.images, self.labels, self.q, self.seed, self.hflip = images, labels, sample_rate, seed, hflip
        self.n = len(labels)

    def indices(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed((self.seed * 2_147_483_647 + index * 7_919 + 0x5EED) % (2 ** 63))
        return torch.nonzero(torch.rand(self.n, generator=g) < self.q).squeeze(1)

    def get(self, index, rank, world, generator, device) -> Batch:
        if world > 1:
            raise GanforgeError("differentially private training runs in one process")
        idx = self.indices(index)
        if isinstance(self.images, torch.Tensor):
            raw = self.images[idx]
        else:  # a prepared dataset (an empty batch: one image read for its shape, none kept)
            raw = torch.from_numpy(self.images.read((idx if len(idx) else torch.zeros(1, dtype=torch.long)).numpy()))
            raw = raw[:len(idx)]
        x = to_unit_range(raw, device)
        if self.hflip and len(idx):
            x = apply_flip(x, flip_mask(len(idx), generator, device))
        return {"image": x, "label": self.labels[idx].to(device)}


# --- the private discriminator ---------------------------------------------------------------------
class PrivateDiscriminator:
    """D's per-sample gradients (Opacus ``GradSampleModule``, hooks on only during a private D
    step), clipped, summed, noised from the run's generator; and the accountant."""

    def __init__(self, D: nn.Module, plan: DPPlan) -> None:
        from opacus import GradSampleModule

        self.D, self.plan = D, plan
        D.to(memory_format=torch.contiguous_format)  # channels-last gives wrong per-sample conv gradients
        self.gsm = GradSampleModule(D, batch_first=True, loss_reduction="sum", strict=True)
        self.gsm.disable_hooks()
        self.params = [p for p in D.parameters() if p.requires_grad]
        self.accountant = make_accountant(plan.accountant)

    @property
    def steps_done(self) -> int:
        return sum(n for _, _, n in self.accountant.history)

    def epsilon(self) -> float:
        return epsilon_of(self.accountant, self.plan.delta)

    def state_dict(self) -> dict[str, Any]:
        return {"accountant": self.accountant.state_dict(), "plan": self.plan.to_json()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.accountant.load_state_dict(state["accountant"])
        self.plan.fakes = state["plan"].get("fakes", "paired")  # a run planned before "own": as it began

    def per_sample_grads(self, loss_sum_fn, n: int) -> list[torch.Tensor] | None:
        """Per-example gradients (n × param shape, one per parameter) of ``loss_sum_fn()``, a sum
        of per-example losses computed by forwards of D while its hooks are on (None if n = 0)."""
        if n == 0:
            return None
        self.gsm.enable_hooks()
        try:
            with warnings.catch_warnings():  # the images need no gradient: the hooks fire on outputs, as meant
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                loss = loss_sum_fn()
                loss.backward()
        finally:
            self.gsm.disable_hooks()
        grads = []
        for p in self.params:
            gs = p.grad_sample
            if isinstance(gs, list) or gs is None or gs.shape[0] != n:
                raise RuntimeError("per-sample gradients missing or not one per example: D is not per-example")
            grads.append(gs)
            p.grad_sample, p.grad = None, None
        return grads

    def private_gradient(self, grads: list[torch.Tensor] | None, generator: torch.Generator) -> list[torch.Tensor]:
        """(sum of the per-example gradients clipped to C + N(0, (sigma C)^2)) / expected examples."""
        C, sigma = self.plan.max_grad_norm, self.plan.noise_multiplier
        if grads is None:
            total = [torch.zeros_like(p) for p in self.params]
        else:
            norms = torch.stack([g.reshape(g.shape[0], -1).norm(dim=1) for g in grads], dim=1).norm(dim=1)
            factor = (C / (norms + 1e-6)).clamp(max=1.0)
            total = [torch.einsum("i,i...->...", factor, g) for g in grads]
        out = []
        for t in total:
            noise = torch.randn(t.shape, device=t.device, generator=generator, dtype=t.dtype)
            out.append((t + sigma * C * noise) / self.plan.expected_examples)
        self.accountant.step(noise_multiplier=sigma, sample_rate=self.plan.sample_rate)
        return out


def apply_gradient(ctx, opt_name: str, D: nn.Module, params: list[torch.Tensor], grads: list[torch.Tensor]) -> bool:
    """Step D's optimiser with ``grads`` through the loop's ``optimize`` (its NaN guard, schedule
    and device-side flags): the backward of sum(p * g) leaves exactly g in p.grad."""
    surrogate = sum((p * g.detach()).sum() for p, g in zip(params, grads))
    return ctx.optimize(surrogate, opt_name, [D])


def _d_step_terms(task, ctx, real: torch.Tensor, y: torch.Tensor | None):
    """One private D step's loss as a sum of per-example terms (``loss_sum()``, to be run with D's
    hooks on), the number of examples, and the dict ``loss_sum`` fills with D's outputs. "own"
    fakes: the expected batch of them, labels drawn uniformly (nothing of the private batch), each
    its own example; "paired": fake i drawn with real i's label, in example i's term."""
    cfg, D, n = task.cfg, task.D, real.shape[0]
    real_target = 1.0 - cfg.label_smoothing
    out: dict[str, torch.Tensor] = {}
    if task.private.plan.fakes == "paired":
        with torch.no_grad():
            fake = task.G_fwd(ctx.randn(n, task.spec.z_dim), y) if n else None

        def paired() -> torch.Tensor:
            d_real = D(task._aug(real, ctx), y).float()
            d_fake = D(task._aug(fake, ctx), y).float()
            out.update(d_real=d_real.detach(), d_fake=d_fake.detach())
            return task.loss.d_loss(d_real, d_fake, real_target) * n  # = sum over i of example i's loss

        return paired, n, out
    m = task.private.plan.expected_batch
    y_fake = None
    if y is not None:
        y_fake = torch.randint(0, task.spec.num_classes, (m,), device=ctx.device, generator=ctx.generator)
    with torch.no_grad():
        fake = task.G_fwd(ctx.randn(m, task.spec.z_dim), y_fake)

    def own() -> torch.Tensor:
        x = torch.cat([task._aug(real, ctx), task._aug(fake, ctx)]) if n else task._aug(fake, ctx)
        labels = None if y is None else (torch.cat([y, y_fake]) if n else y_fake)
        scores = D(x, labels).float()
        d_real, d_fake = scores[:n], scores[n:]
        out.update(d_real=d_real.detach(), d_fake=d_fake.detach(), fake=fake, fake_labels=y_fake)
        # a separable loss is mean(real terms) + mean(fake terms): each half times its count, the other
        # half held constant, has the gradient of its sum (the value is not needed, only the gradient)
        fakes = task.loss.d_loss(d_real.detach() if n else d_fake.detach()[:1], d_fake, real_target) * m
        if not n:
            return fakes
        return task.loss.d_loss(d_real, d_fake.detach(), real_target) * n + fakes

    return own, n + m, out


def private_step(task, ctx, mode_seeking_penalty) -> dict[str, Any]:
    """One iteration of a DP GAN run (``task``: a ``GanTask``): ``n_critic`` private D steps, then
    one G step through D (hooks off, D frozen) on uniformly drawn labels and a fixed batch size;
    ``mode_seeking_penalty(fake, z)``: the task's MSGAN term (pairs of halves with equal labels)."""
    cfg, priv = task.cfg, task.private
    if priv.steps_done + cfg.n_critic > priv.plan.d_steps:
        raise GanforgeError(f"the privacy budget is spent: {priv.steps_done} of {priv.plan.d_steps} planned D steps "
                            f"done (epsilon {priv.epsilon():.3f})")
    stats = []
    for _ in range(cfg.n_critic):
        batch = ctx.next_batch()
        real, labels = batch["image"], batch["label"]
        loss_sum, n_examples, out = _d_step_terms(task, ctx, real, task._labels(labels))
        grads = priv.private_gradient(priv.per_sample_grads(loss_sum, n_examples), ctx.generator)
        apply_gradient(ctx, "D", task.D, priv.params, grads)
        if real.shape[0]:
            stats.append(out)
    m = cfg.batch_size  # G: a fixed size and uniform labels, nothing of the private batch
    z = ctx.randn(m, task.spec.z_dim)
    y = None
    if task.conditional:  # halves with the same labels: the mode-seeking pairs (z1, y), (z2, y)
        draw = torch.randint(0, task.spec.num_classes, (m - m // 2,), device=ctx.device, generator=ctx.generator)
        y = torch.cat([draw[:m // 2], draw])  # y[:m//2] == y[m//2:2(m//2)]
    terms: dict[str, torch.Tensor] = {}

    def g_loss() -> torch.Tensor:
        fake = task.G_fwd(z, y)
        loss_g = terms["adversarial"] = task.loss.g_loss(task.D(task._aug(fake, ctx), y).float())
        if task.mode_seeking > 0 and y is not None:
            loss_g = loss_g + task.mode_seeking * mode_seeking_penalty(fake, z)
        return loss_g

    task._generator_step(ctx, g_loss, priv.params)
    scalars: dict[str, Any] = {"loss_G": terms["adversarial"].detach()}
    if stats:
        d_real = torch.cat([s["d_real"] for s in stats])
        d_fake = torch.cat([s["d_fake"] for s in stats])
        scalars.update(loss_D=task.loss.d_loss(d_real, d_fake, 1.0 - cfg.label_smoothing).detach(),
                       D_real=torch.sigmoid(d_real).mean(), D_fake=torch.sigmoid(d_fake).mean())
    if (ctx.step + 1) % cfg.log_every == 0 or ctx.step + 1 == cfg.steps:
        scalars["dp_epsilon"] = priv.epsilon()  # a plain number: logged as it is, not averaged
    return scalars


# --- the run directory ------------------------------------------------------------------------------
def report(task) -> dict[str, Any]:
    """The ``"dp"`` block of run.json and summary.json: epsilon spent so far and how."""
    priv = task.private
    return {"epsilon": priv.epsilon(), "delta": priv.plan.delta, "noise_multiplier": priv.plan.noise_multiplier,
            "max_grad_norm": priv.plan.max_grad_norm, "target_epsilon": priv.plan.target_epsilon,
            "sample_rate": priv.plan.sample_rate, "d_steps_done": priv.steps_done, "d_steps_planned": priv.plan.d_steps,
            "d_steps_per_g_step": task.cfg.n_critic, "accountant": priv.plan.accountant,
            "dataset_size": priv.plan.dataset_size, "fakes": priv.plan.fakes}


def attach_to_run(prepared, task) -> None:
    """Wire a DP task into ``run_task``'s files: run.json's ``dp`` block (rewritten with the epsilon
    spent when training ends) and summary.json's."""
    import json

    from .checkpoint import write_text_atomic

    prepared.run_info["dp"] = report(task)
    previous = prepared.write_outputs

    def write_outputs(loop) -> None:
        if previous is not None:
            previous(loop)
        path = loop.run_dir / "run.json"
        info = json.loads(path.read_text())
        info["dp"] = report(task)
        write_text_atomic(path, json.dumps(info, indent=2) + "\n")

    prepared.write_outputs = write_outputs
    prepared.final_summary = lambda loop: {"dp": report(task)}


def refuse_nearest(source: str) -> None:
    """``ganforge eval RUN ... --nearest``: refused for a DP run, whose nearest-neighbour report
    would publish its private training images (the guarantee covers the model, not such reports)."""
    import json
    from pathlib import Path

    info = Path(source) / "run.json"
    try:
        private = info.is_file() and "dp" in json.loads(info.read_text())
    except (OSError, ValueError):
        return  # not a readable run: the loader reports it
    if private:
        raise GanforgeError(f"--nearest would show {source}'s private training images beside its samples, which its "
                            "differential-privacy guarantee does not cover; leave --nearest out for a --dp-epsilon run")
